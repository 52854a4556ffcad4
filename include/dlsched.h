/*
 * dlsched.h - libdlsched, learned scheduling decisions for inference servers
 *
 * The one public header of libdlsched. A host program describes its current
 * resource state as a vector of numbers (dlsched_state_t), asks
 * dlsched_act() for a decision among n_actions discrete choices, and later
 * reports what that decision earned with dlsched_observe(). The library
 * learns, online and in-process, which decision maximises long-term reward.
 *
 * Sections, from simplest to most advanced:
 *   1. version          6. act and observe
 *   2. errors           7. persistence
 *   3. configuration    8. statistics
 *   4. agent            9. backends
 *   5. state and decision
 *
 * Conventions
 *   - Every function that can fail returns int: DLSCHED_OK (0) or one of
 *     the DLSCHED_E* codes below; outputs go through pointer arguments.
 *   - After a failure, dlsched_last_error() names the culprit (thread-local).
 *   - A rejected call changes nothing: every input is checked first.
 *   - The library never aborts, exits or prints.
 *   - Opaque handles (dlsched_config, dlsched_agent) have no _t suffix;
 *     plain value structs the host fills or reads end in _t.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DLSCHED_H
#define DLSCHED_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(DLSCHED_BUILDING) && defined(__GNUC__)
#define DLSCHED_API __attribute__((visibility("default")))
#else
#define DLSCHED_API
#endif

/* ======================================================================
 * 1. Version
 * ====================================================================== */

#define DLSCHED_VERSION_MAJOR 1
#define DLSCHED_VERSION_MINOR 4
#define DLSCHED_VERSION_PATCH 0
#define DLSCHED_VERSION_NUMBER \
    (DLSCHED_VERSION_MAJOR * 10000 + DLSCHED_VERSION_MINOR * 100 + DLSCHED_VERSION_PATCH)

/*
 * dlsched_version - version of the loaded library
 *
 * Returns MAJOR*10000 + MINOR*100 + PATCH of the library actually loaded at
 * run time, to compare with DLSCHED_VERSION_NUMBER the caller compiled
 * against. Never fails. Thread safety: safe from any thread. Since 1.0.
 */
DLSCHED_API unsigned dlsched_version(void);

/*
 * dlsched_version_string - version of the loaded library as "MAJOR.MINOR.PATCH"
 *
 * Returns a static string owned by the library; never NULL. Thread safety:
 * safe from any thread. Since 1.0.
 */
DLSCHED_API const char *dlsched_version_string(void);

/* ======================================================================
 * 2. Errors
 * ====================================================================== */

/* Status codes. Values are explicit and never renumbered or reused. */
enum {
    DLSCHED_OK        = 0,  /* success */
    DLSCHED_EINVAL    = 1,  /* invalid argument: NULL, NaN, wrong size, bad flag */
    DLSCHED_ENOMEM    = 2,  /* out of memory */
    DLSCHED_ECONFIG   = 3,  /* unknown key, bad value, missing or contradictory config */
    DLSCHED_ETICKET   = 4,  /* unknown, expired or already-observed ticket */
    DLSCHED_ENOACTION = 5,  /* the mask allows no action */
    DLSCHED_EIO       = 6,  /* file system error */
    DLSCHED_EFORMAT   = 7,  /* malformed, truncated or foreign checkpoint */
    DLSCHED_EMISMATCH = 8,  /* checkpoint and overrides disagree on a shape */
    DLSCHED_ENODEVICE = 9,  /* the requested device is not usable */
    DLSCHED_EBACKEND  = 10  /* the compute backend failed */
};

/*
 * dlsched_strerror - static description of a status code
 *
 * Returns a static string for any int; an unknown code gives
 * "unknown error code". Never NULL. Thread safety: safe from any thread.
 * Since 1.0.
 */
DLSCHED_API const char *dlsched_strerror(int status);

/*
 * dlsched_last_error - detail of this thread's last failure
 *
 * Like errno: meaningful straight after a libdlsched call on the same thread
 * returned non-zero, and names the culprit, e.g. "feature 3 is NaN" or
 * "key 'lr': -1 is below the minimum 0". Successful calls do not clear it.
 * Returns a thread-local string owned by the library, valid until the next
 * failing call on this thread; "" before any failure; never NULL.
 * Thread safety: each thread has its own. Since 1.0.
 */
DLSCHED_API const char *dlsched_last_error(void);

/* ======================================================================
 * 3. Configuration
 *
 * A dlsched_config is an opaque set of key=value settings, checked as they
 * are set against one registry of keys (name, type, default, bounds); see
 * dlsched(7) for the table. A config is copied into an agent at creation
 * and may be freed or reused afterwards.
 * ====================================================================== */

typedef struct dlsched_config dlsched_config;

/*
 * dlsched_config_new - create a configuration holding every default
 *
 * On success *out owns a new config; free it with dlsched_config_free().
 * Returns DLSCHED_OK, DLSCHED_EINVAL (out is NULL) or DLSCHED_ENOMEM.
 * Thread safety: safe from any thread. Since 1.0.
 */
DLSCHED_API int dlsched_config_new(dlsched_config **out);

/*
 * dlsched_config_free - free a configuration; NULL is a no-op. Since 1.0.
 * Thread safety: the caller must not use cfg concurrently with this.
 */
DLSCHED_API void dlsched_config_free(dlsched_config *cfg);

/*
 * dlsched_config_set - set one key from its text form
 *
 * The value is parsed by the key's type and checked against its bounds.
 * value NULL resets the key to its default (or to unset for keys without
 * one, such as default_reward). On failure the config is unchanged.
 * Returns DLSCHED_OK, DLSCHED_EINVAL (cfg or key NULL), DLSCHED_ECONFIG
 * (unknown key, unparsable or out-of-range value; dlsched_last_error()
 * names the key, the value and the allowed range) or DLSCHED_ENOMEM.
 * Thread safety: not against concurrent use of the same cfg. Since 1.0.
 */
DLSCHED_API int dlsched_config_set(dlsched_config *cfg, const char *key, const char *value);

/*
 * dlsched_config_parse - set several keys from "key=value key=value ..."
 *
 * Tokens are separated by spaces, tabs or newlines; an empty spec is valid.
 * All or nothing: if any token fails, no key of the spec is applied.
 * Returns as dlsched_config_set(), plus DLSCHED_ECONFIG for a token without
 * '='. Thread safety: not against concurrent use of the same cfg. Since 1.0.
 */
DLSCHED_API int dlsched_config_parse(dlsched_config *cfg, const char *spec);

/*
 * dlsched_config_get - text form of a key's current value
 *
 * Writes the value (the default when the key was not set; for lr the
 * default of the configured algo; "" for an unset key without default) as a
 * NUL-terminated string into buf of len bytes.
 * Returns DLSCHED_OK, DLSCHED_EINVAL (NULL argument, or len too small: the
 * message gives the size needed; buf then holds "" when len > 0) or
 * DLSCHED_ECONFIG (unknown key). Thread safety: safe against concurrent
 * dlsched_config_get() on the same cfg. Since 1.0.
 */
DLSCHED_API int dlsched_config_get(const dlsched_config *cfg, const char *key,
                                   char *buf, size_t len);

/* ======================================================================
 * 4. Agent
 * ====================================================================== */

typedef struct dlsched_agent dlsched_agent;

/*
 * dlsched_agent_new - create a learning agent from a configuration
 *
 * n_features and n_actions are required. Every buffer the agent will use is
 * allocated (and touched) here, so acting and observing never allocate.
 * cfg is copied; the caller keeps ownership. On success *out owns the
 * agent; free it with dlsched_agent_free().
 * Returns DLSCHED_OK, DLSCHED_EINVAL (NULL argument), DLSCHED_ECONFIG
 * (missing key, contradictory keys, a table larger than max_table_bytes, a
 * replay buffer larger than max_replay_bytes, device=cuda with algo=qtable,
 * nstep > 1 or cpu_threads > 1 with learner=thread, device=cuda with
 * per=1), DLSCHED_ENODEVICE (device=cuda and no usable CUDA backend: the
 * message gives the reason, e.g. the plugin was not found, has another ABI
 * version, or found no usable GPU) or DLSCHED_ENOMEM (also when the learner
 * thread of learner=thread cannot start).
 * Devices: algo=dqn with device=auto (the default) trains on the GPU when
 * the CUDA plugin libdlsched_cuda.so loads and finds a usable GPU, else on
 * the CPU; then the call succeeds, and both dlsched_last_error() and
 * stats.backend_reason tell why the CPU was used. The plugin is looked for
 * in DLSCHED_PLUGIN_PATH (an absolute directory or file name) or beside
 * libdlsched.so, once per process. algo=qtable always learns on the CPU.
 * BLAS (Since 1.2): algo=dqn acts with OpenBLAS on the CPU on either
 * device (and trains with it on the CPU). When OpenBLAS runs older kernels
 * than the CPU allows (its generic Prescott kernels on an AVX-512 Xeon it
 * does not know), the call still succeeds, and both dlsched_last_error()
 * and stats.blas_reason give the finding and the remedy (the
 * OPENBLAS_CORETYPE to set); with a device=auto fallback too,
 * dlsched_last_error() gives both, the fallback first, joined by "; ".
 * Thread safety: safe from any thread. Since 1.0.
 */
DLSCHED_API int dlsched_agent_new(const dlsched_config *cfg, dlsched_agent **out);

/*
 * dlsched_agent_free - free an agent and everything it owns; NULL is a
 * no-op. With learner=thread it first stops the learner and joins it (at
 * most one training step's wait). Pending tickets and transitions not yet
 * taken in by the learner are discarded. Free every agent before the
 * process exits. Thread safety: no other call may use the agent
 * concurrently or afterwards. Since 1.0.
 */
DLSCHED_API void dlsched_agent_free(dlsched_agent *agent);

/* ======================================================================
 * 5. State and decision
 * ====================================================================== */

/* The resource state the host feeds in. Host-owned; read during the call
 * only. This struct is frozen for major version 1. */
typedef struct dlsched_state_t {
    const float   *features;   /* n_features finite values */
    uint32_t       n_features; /* must equal the agent's n_features */
    uint32_t       n_mask;     /* 0 (no mask) or the agent's n_actions */
    const uint8_t *mask;       /* NULL when n_mask is 0, else n_mask bytes:
                                  nonzero = action allowed */
    int32_t        hint;       /* the host's own (heuristic) choice, or -1 */
    uint32_t       reserved;   /* must be 0 */
} dlsched_state_t;

/* decision flags */
#define DLSCHED_DECISION_EXPLORED 1u /* chosen by exploration, not greedily */
#define DLSCHED_DECISION_HINT     2u /* the host's hint was returned as such */
#define DLSCHED_DECISION_INCUMBENT 4u /* the guard decided for the incumbent: the
                                         action is the hint (Since 1.1) */

/* The decision handed back. Frozen for major version 1. */
typedef struct dlsched_decision_t {
    uint64_t ticket;        /* pass to dlsched_observe(); 0 when none kept */
    uint64_t model_version; /* which weights decided (learning updates so far) */
    int32_t  action;        /* 0 .. n_actions-1, always allowed by the mask */
    uint32_t flags;         /* DLSCHED_DECISION_* */
    float    value;         /* the agent's estimate Q(s, action) */
    float    probability;   /* chance the behaviour policy had of picking
                               this action (for off-policy evaluation) */
} dlsched_decision_t;

/* ======================================================================
 * 6. Act and observe
 * ====================================================================== */

#define DLSCHED_ACT_GREEDY    1u /* evaluation: no exploration, no ticket kept */
#define DLSCHED_OBS_TERMINAL  1u /* episode ended: no bootstrap from next */
#define DLSCHED_OBS_TRUNCATED 2u /* episode cut off: still bootstrap from next */

/*
 * dlsched_act - choose an action for a state
 *
 * Picks an action allowed by state->mask with the configured exploration
 * (egreedy, softmax or hint; none with DLSCHED_ACT_GREEDY) and fills *out.
 * Unless DLSCHED_ACT_GREEDY is given, a ticket is kept so the outcome can be
 * reported later, from any thread, with dlsched_observe(); when
 * ticket_capacity tickets are pending, the oldest is expired to make room
 * (learned as a terminal transition with default_reward when that key is
 * set, else dropped; counted in tickets_expired).
 * Ties between equal Q-values are broken uniformly at random, and
 * out->probability accounts for that. With ticket_timeout_ms, tickets older
 * than that are expired too (checked here and in dlsched_observe(), no
 * timer thread). With apprentice=N, the first N ticketed decisions that
 * carry a hint return the hint (flag DLSCHED_DECISION_HINT, probability 1)
 * and learn from its outcome; apprenticeship ends early once the agent's
 * greedy choice agreed with the hint on apprentice_agreement of the last
 * 1000 such decisions.
 * The guard (key guard, on by default; Since 1.1): after apprenticeship, a
 * decision that carries a hint takes the learned policy's choice only
 * where the guard allows it: the hint's policy (the incumbent) stays in
 * charge until the learned policy has proven better on the outcomes of
 * the decisions where the two disagree, a small share (guard_share) of
 * which it hands to the policy not in charge; it falls back by itself
 * when the learned policy stops being better, and keeps the hint where the
 * learned choice was observed fewer than guard_min_visits times in that
 * state's region. DLSCHED_DECISION_INCUMBENT marks decisions where the
 * guard returned the hint. With DLSCHED_ACT_GREEDY the policy in charge
 * decides (no experiment). Exploration (egreedy, softmax) stays outside
 * the guard. Without a hint (-1) the learned policy decides as in 1.0.
 * See dlsched(7), GUARD, for the statistics.
 * Returns DLSCHED_OK, DLSCHED_EINVAL (NULL argument, unknown flag, wrong
 * n_features, non-finite feature, bad mask size, hint out of range or
 * masked out, reserved not 0) or DLSCHED_ENOACTION (the mask allows no
 * action). On failure *out is untouched and the agent unchanged.
 * Thread safety: may be called concurrently with act, observe,
 * observe_transition, q_values, stats and train on the same agent. With
 * learner=inline, calls on one agent are serialised with learning (an
 * observe that runs inline training steps delays a concurrent act by up to
 * those steps). With learner=thread, acting reads the model the learner
 * last published and never waits for a training step; it takes only a
 * short lock for the ticket. Does not allocate. Since 1.0.
 */
DLSCHED_API int dlsched_act(dlsched_agent *agent, const dlsched_state_t *state,
                            uint32_t flags, dlsched_decision_t *out);

/*
 * dlsched_act_unit - dlsched_act() for a decision of a named unit
 *
 * The same as dlsched_act(agent, state, flags, out), with the unit the
 * decision belongs to: an opaque 64-bit key of the host's, e.g. a hash of
 * the request's shared prompt, its tenant or its stream. With guard_unit=key
 * the guard's experiment assigns whole units, not single decisions or
 * blocks of time, to the incumbent or to the learned policy: every ticketed
 * decision of a unit is taken by the arm its unit drew for the guard's
 * epoch (a unit of the incumbent's arm gets the hint, without exploration),
 * and the arms are compared on the mean reward of all their decisions.
 * Use it when a decision leaves state behind that later decisions of the
 * same unit inherit (where a shared prompt's KV cache lives): a time-block
 * experiment cannot credit a policy for that state, both arms share it.
 * dlsched_act() is dlsched_act_unit() with unit 0 (one unit). Under
 * guard_unit=decision (the default), with the guard off, without a hint
 * and with DLSCHED_ACT_GREEDY the unit is ignored. See dlsched(7), GUARD.
 * Returns, thread safety and allocation: as dlsched_act(). Since 1.4
 * (symbol node DLSCHED_1.1).
 */
DLSCHED_API int dlsched_act_unit(dlsched_agent *agent, const dlsched_state_t *state,
                                 uint64_t unit, uint32_t flags, dlsched_decision_t *out);

/*
 * dlsched_observe - report the reward a ticketed decision earned
 *
 * Learns from the transition (state at act time, action, reward, next) and
 * releases the ticket. With learner=inline: algo=qtable applies one
 * Bellman update; algo=dqn stores it for replay and, every train_every
 * transitions once learning_starts were seen, runs gradient_steps training
 * steps before returning. With learner=thread the transition is handed to
 * the background learner (a short per-shard lock) and observe returns at
 * once. next may be NULL only with DLSCHED_OBS_TERMINAL. Both flags
 * together (a step that ended the episode and hit a time limit, which
 * Gymnasium allows) count as DLSCHED_OBS_TERMINAL: no bootstrap (Since 1.1).
 * Returns DLSCHED_OK, DLSCHED_EINVAL (NULL agent, non-finite reward, bad
 * next state, unknown flags), DLSCHED_ENOACTION (next's
 * mask allows no action and the episode goes on), DLSCHED_ETICKET
 * (unknown, expired or already-observed ticket) or DLSCHED_EBACKEND
 * (learner=inline on the GPU: the transition was stored but the training
 * it triggered failed; see dlsched_train()). On a failure other than
 * DLSCHED_EBACKEND nothing changes: a ticket whose observe was rejected
 * for bad input can still be observed. Thread safety: as dlsched_act(); the ticket may be observed on
 * any thread, in any order relative to other tickets. Does not allocate.
 * Since 1.0.
 */
DLSCHED_API int dlsched_observe(dlsched_agent *agent, uint64_t ticket, float reward,
                                const dlsched_state_t *next, uint32_t flags);

/*
 * dlsched_observe_transition - learn from logged or foreign experience
 *
 * As dlsched_observe() for a transition (state, action, reward, next) that
 * needs no ticket, e.g. from a log of the host's heuristic. action must be
 * in range and allowed by state's mask.
 * Returns as dlsched_observe() except DLSCHED_ETICKET; also
 * DLSCHED_EINVAL for a bad state or an action out of range or masked out,
 * and DLSCHED_ENOACTION when state's mask allows no action.
 * Thread safety: as dlsched_act(). Does not allocate. Since 1.0.
 */
DLSCHED_API int dlsched_observe_transition(dlsched_agent *agent, const dlsched_state_t *state,
                                           int32_t action, float reward,
                                           const dlsched_state_t *next, uint32_t flags);

/*
 * dlsched_train - run learning steps explicitly
 *
 * Runs steps updates on transitions sampled from the replay buffer (key
 * replay). With algo=qtable each step is one Bellman update on one stored
 * transition; with algo=dqn one gradient step on a minibatch of batch
 * transitions (uniform, or prioritized with per=1) and the target network
 * update, regardless of learning_starts and replay_ratio. With
 * learner=thread it first takes in the transitions waiting for the learner
 * and publishes the new model to the act path after each step. An empty
 * buffer does nothing and succeeds (stats.train_steps tells); steps 0 is a
 * no-op.
 * Returns DLSCHED_OK, DLSCHED_EINVAL (agent NULL), DLSCHED_ECONFIG
 * (replay=0: there is no buffer to train from) or DLSCHED_EBACKEND (a
 * CUDA or cuBLAS call failed; the message has its error text; training on
 * the device has stopped, acting goes on with the last weights copied
 * back, and later training calls fail the same way).
 * Thread safety: may run concurrently with act, observe and the other
 * functions of dlsched_act()'s list (it releases the agent's lock between
 * steps and lets waiting callers in); the caller must exclude only
 * dlsched_agent_free(). Since 1.0.
 */
DLSCHED_API int dlsched_train(dlsched_agent *agent, uint32_t steps);

/*
 * dlsched_q_values - the agent's estimates Q(state, a) for every action
 *
 * Writes n = n_actions values into out; actions masked out by state's mask
 * read -INFINITY. state->hint is checked but not used. With
 * learner=thread these are the values of the model acting uses (the last
 * published one).
 * Returns DLSCHED_OK or DLSCHED_EINVAL (NULL argument, n is not n_actions,
 * bad state as for dlsched_act()). Thread safety: as dlsched_act().
 * Since 1.0.
 */
DLSCHED_API int dlsched_q_values(dlsched_agent *agent, const dlsched_state_t *state,
                                 float *out, uint32_t n);

/* ======================================================================
 * 7. Persistence
 *
 * A checkpoint holds the whole learned state: the configuration, the
 * Q-table or the network with its target, Adam moments and normaliser,
 * counters and the RNG state, and the replay buffer when save_replay=1.
 * The format is documented in dlsched-checkpoint(5). Tickets pending at
 * save time are not saved: the loaded agent counts them as expired.
 * ====================================================================== */

/*
 * dlsched_save - write a checkpoint of the agent to path, atomically
 *
 * Writes a temporary file in the same directory, fsyncs it, renames it over
 * path and fsyncs the directory: a crash at any moment leaves either the
 * previous file or the new one. With learner=thread, transitions waiting
 * for the learner are taken in first.
 * Returns DLSCHED_OK, DLSCHED_EINVAL (NULL argument, empty or too long
 * path), DLSCHED_EIO (the file system refused; the message names the path,
 * the step and errno's text), DLSCHED_EBACKEND (the model holds non-finite
 * values: training diverged; or, training on a GPU, the model could not be
 * copied back or training there failed; nothing is written, the previous
 * file stays)
 * or DLSCHED_ENOMEM.
 * Thread safety: may run concurrently with act, observe, observe_transition,
 * q_values, stats and train on the same agent (it holds the agent's locks
 * while it copies the state out). Since 1.0.
 */
DLSCHED_API int dlsched_save(dlsched_agent *agent, const char *path);

/*
 * dlsched_load - create an agent from a checkpoint file
 *
 * overrides (may be NULL) sets run-time keys (lr, exploration, learner,
 * device, cpu_threads, ...) over the stored configuration; a key that fixes
 * the stored state's shape (n_features, n_actions, algo, bins, feature_low,
 * feature_high, hidden, dueling, normalize, replay, per, nstep) must equal
 * the stored value. The loaded agent continues exactly where the saved one
 * stopped (same seed, learner=inline), replay buffer included when it was
 * saved. The stored configuration's max_table_bytes and max_replay_bytes
 * (or their overrides) bound what loading allocates.
 * Returns DLSCHED_OK, DLSCHED_EINVAL (NULL argument), DLSCHED_EIO (cannot
 * read path), DLSCHED_EFORMAT (truncated, corrupt, foreign or newer-format
 * data; the message says which), DLSCHED_EMISMATCH (an override contradicts
 * a shape key; the message names it), DLSCHED_ECONFIG or DLSCHED_ENODEVICE
 * (an override is not usable) or DLSCHED_ENOMEM.
 * Thread safety: safe from any thread. Since 1.0.
 */
DLSCHED_API int dlsched_load(const char *path, const dlsched_config *overrides,
                             dlsched_agent **out);

/*
 * dlsched_save_buffer - a checkpoint in memory
 *
 * On success *buf (free it with dlsched_buffer_free()) holds *len bytes,
 * exactly what dlsched_save() would write.
 * Returns DLSCHED_OK, DLSCHED_EINVAL (NULL argument), DLSCHED_EBACKEND (as
 * dlsched_save()) or DLSCHED_ENOMEM.
 * Thread safety: as dlsched_save(). Since 1.0.
 */
DLSCHED_API int dlsched_save_buffer(dlsched_agent *agent, void **buf, size_t *len);

/*
 * dlsched_buffer_free - free a buffer of dlsched_save_buffer(); NULL is a
 * no-op. Thread safety: safe from any thread. Since 1.0.
 */
DLSCHED_API void dlsched_buffer_free(void *buf);

/*
 * dlsched_load_buffer - create an agent from a checkpoint in memory
 *
 * As dlsched_load() for the len bytes at buf, which are only read. Any
 * truncated, bit-flipped or foreign buffer gives DLSCHED_EFORMAT: every
 * size is checked against len before it is used, and a CRC-32 covers every
 * byte. Returns as dlsched_load() but for DLSCHED_EIO.
 * Thread safety: safe from any thread. Since 1.0.
 */
DLSCHED_API int dlsched_load_buffer(const void *buf, size_t len,
                                    const dlsched_config *overrides, dlsched_agent **out);

/* ---- experience and weights between agents (Since 1.3, symbol node
   DLSCHED_1.1; format in dlsched-exchange(5)) ------------------------------- */

/*
 * dlsched_export_transitions - take the completed transitions an agent
 * recorded (key exchange_capacity > 0) out of it, oldest first
 *
 * Moves up to max transitions (0 = all there are) into a new blob: *buf
 * (free it with dlsched_buffer_free()) holds *len bytes, *count of them
 * transitions (0 gives a valid empty blob). Each is tagged with the model
 * version that decided it. *dropped (may be NULL) gets the transitions the
 * full buffer dropped, oldest first, since the last call. Any learner mode;
 * thread-safe with every other call.
 */
DLSCHED_API int dlsched_export_transitions(dlsched_agent *agent, uint32_t max, void **buf,
                                           size_t *len, uint32_t *count, uint64_t *dropped);

/*
 * dlsched_ingest_transitions - learn from another agent's transitions
 *
 * Checks the whole blob first (DLSCHED_EFORMAT: corrupt, truncated or not
 * a transitions blob; DLSCHED_EMISMATCH: another shape), then takes every
 * transition decided by a model version >= min_model_version as
 * dlsched_observe_transition() would (stored, and trained on as the agent's
 * learner does); older ones are dropped. *accepted and *stale (either may
 * be NULL) get the counts. DLSCHED_ECONFIG for learner=none.
 */
DLSCHED_API int dlsched_ingest_transitions(dlsched_agent *agent, const void *buf, size_t len,
                                           uint64_t min_model_version, uint32_t *accepted,
                                           uint32_t *stale);

/*
 * dlsched_export_weights - the acting model as a blob
 *
 * *buf (free with dlsched_buffer_free()) holds *len bytes: the weights
 * decisions are made with (the Q table, or the network with its feature
 * normaliser) and their model version, also in *model_version (may be NULL).
 */
DLSCHED_API int dlsched_export_weights(dlsched_agent *agent, void **buf, size_t *len,
                                       uint64_t *model_version);

/*
 * dlsched_import_weights - act with another agent's weights
 *
 * For learner=none agents (DLSCHED_ECONFIG otherwise: a learning agent's
 * weights are its own; load a checkpoint instead). The blob is checked
 * whole before anything changes (DLSCHED_EFORMAT, DLSCHED_EMISMATCH); then
 * decisions use the new weights and report their version (also in
 * *model_version, may be NULL). Acting threads never wait for it.
 */
DLSCHED_API int dlsched_import_weights(dlsched_agent *agent, const void *buf, size_t len,
                                       uint64_t *model_version);

/* ======================================================================
 * 8. Statistics
 * ====================================================================== */

#define DLSCHED_BACKEND_CPU  0u /* learning runs on the CPU (OpenBLAS) */
#define DLSCHED_BACKEND_CUDA 1u /* learning runs on an NVIDIA GPU (the CUDA plugin) */

/* Counters and gauges of one agent. Size-prefixed: new members are only
 * ever added at the end, so callers compiled against an older header keep
 * working. Counters count since agent creation. */
typedef struct dlsched_stats_t {
    uint32_t size;               /* bytes the library filled */
    uint32_t backend;            /* DLSCHED_BACKEND_*: where learning runs */
    uint64_t decisions;          /* successful dlsched_act() calls */
    uint64_t explored;           /* decisions flagged DLSCHED_DECISION_EXPLORED */
    uint64_t hinted;             /* decisions flagged DLSCHED_DECISION_HINT */
    uint64_t tickets_issued;     /* decisions that kept a ticket */
    uint64_t observed;           /* tickets resolved by dlsched_observe() */
    uint64_t tickets_pending;    /* tickets issued, not yet observed or expired */
    uint64_t tickets_expired;    /* tickets dropped at capacity */
    uint64_t transitions;        /* accepted by dlsched_observe_transition() */
    uint64_t transitions_stored; /* in the replay buffer now */
    uint64_t train_steps;        /* learning updates applied, all sources */
    uint64_t model_version;      /* as in dlsched_decision_t */
    uint64_t memory_bytes;       /* bytes the agent allocated */
    double   epsilon;            /* current exploration rate (egreedy, hint) */
    double   last_loss;          /* loss of the last update: qtable 0.5 * TD
                                    error^2; dqn the batch's weighted Huber loss */
    double   mean_reward;        /* running mean: exact over the first 1000
                                    rewards, then exponential, horizon 1000 */
    uint64_t tickets_timed_out;  /* of tickets_expired: older than
                                    ticket_timeout_ms */
    uint64_t apprentice_left;    /* hinted decisions of apprenticeship left;
                                    0 once it is over (or never began) */
    double   apprentice_agreement; /* share of the last (up to) 1000
                                    apprenticeship decisions whose greedy
                                    choice equalled the hint */
    uint64_t staged;             /* learner=thread: observed transitions not
                                    yet taken in by the learner */
    uint64_t published_version;  /* learner=thread: the model acting reads
                                    (its training steps); else model_version */
    char     backend_reason[256]; /* why learning runs on the CPU although
                                    device=auto allowed the GPU (e.g. "no
                                    usable CUDA backend: ..."), NUL-terminated;
                                    "" when learning runs where asked. Added
                                    with the CUDA backend: a caller passing
                                    the older, smaller size gets none */
    /* the guard (Since 1.1; a caller passing the 1.0 size gets none). Its
       decisions: those with a hint, after apprenticeship, not exploratory;
       guard_decisions = guard_agreed + guard_unsupported +
       guard_by_learned + guard_by_incumbent */
    uint32_t guard_state;        /* DLSCHED_GUARD_* */
    uint32_t guard_reserved;     /* 0 */
    uint64_t guard_epoch;        /* statistics restarts: switches, fallbacks,
                                    and epochs that ran all guard_tests;
                                    guard_unit=key also: ramp steps and new
                                    draws (dlsched(7), GUARD, Units) */
    uint64_t guard_switches;     /* incumbent -> learned */
    uint64_t guard_fallbacks;    /* learned -> incumbent */
    uint64_t guard_decisions;    /* decisions the guard ruled */
    uint64_t guard_agreed;       /* the learned choice was the hint */
    uint64_t guard_unsupported;  /* the learned choice had too few visits:
                                    the hint was taken */
    uint64_t guard_by_learned;   /* disagreements the learned policy decided */
    uint64_t guard_by_incumbent; /* disagreements the incumbent decided */
    uint64_t guard_samples_learned;   /* outcomes of the experiment's arms */
    uint64_t guard_samples_incumbent; /* in this epoch */
    double   guard_value_learned;     /* their mean rewards per disagreement */
    double   guard_value_incumbent;
    double   guard_advantage;     /* learned - incumbent, this epoch */
    double   guard_advantage_low; /* its interval at the next test's level */
    double   guard_advantage_high; /* (-Inf / +Inf before any sample) */
    double   guard_led_incumbent; /* regime check: mean reward per decision
                                     while the incumbent led (the recent
                                     reference) */
    double   guard_led_learned;   /* ... and while the learned policy has led
                                     since the switch */
    uint64_t guard_regime_fallbacks; /* of guard_fallbacks: by the regime check */
    /* the BLAS (Since 1.2; a caller passing the 1.1 size gets none). The
       core is found once per process; see dlsched(7) BLAS */
    char     blas_core[32];      /* the kernels OpenBLAS runs
                                    (openblas_get_corename(): "SkylakeX",
                                    "Haswell", "Prescott", ...),
                                    NUL-terminated; "" when unknown */
    char     blas_reason[256];   /* algo=dqn: which kernels this agent's
                                    matrix products run on and why, when
                                    not simply OpenBLAS's fitting ones: e.g.
                                    "OpenBLAS runs its Prescott kernels on a
                                    CPU with AVX-512F, AVX2 and FMA (...):
                                    this agent runs libdlsched's own AVX-512
                                    kernels (self-test passed); for the
                                    host's BLAS set OPENBLAS_CORETYPE=
                                    SkylakeX (...)" (key cpu_kernels),
                                    NUL-terminated; "" when OpenBLAS's
                                    kernels fit the CPU, when either is
                                    unknown, and for algo=qtable (no BLAS) */
} dlsched_stats_t;

/* guard states (dlsched_stats_t.guard_state) */
#define DLSCHED_GUARD_OFF         0u /* guard=0 */
#define DLSCHED_GUARD_INCUMBENT   1u /* the incumbent decides; the learned policy
                                        is being measured */
#define DLSCHED_GUARD_LEARNED     2u /* the learned policy proved better: it decides */
#define DLSCHED_GUARD_FALLEN_BACK 3u /* it stopped being better: the incumbent
                                        decides again, and is measured against */

/*
 * dlsched_stats - read counters and gauges
 *
 * size is sizeof(dlsched_stats_t) as the caller compiled it: the library
 * writes at most size bytes and sets out->size to the bytes it filled.
 * The snapshot is consistent (tickets_issued = observed + tickets_expired +
 * tickets_pending holds in it).
 * Returns DLSCHED_OK or DLSCHED_EINVAL (NULL argument, size smaller than
 * the size member). Thread safety: as dlsched_act(). Since 1.0.
 */
DLSCHED_API int dlsched_stats(dlsched_agent *agent, dlsched_stats_t *out, size_t size);

/* ======================================================================
 * 9. Backends
 * ====================================================================== */

/*
 * dlsched_backend_available - can this build learn on a device?
 *
 * device is "cpu" or "cuda". Returns 1 when the backend is usable now, else
 * 0 (also for NULL or unknown names). "cpu" is always 1. "cuda" is 1 when
 * the plugin libdlsched_cuda.so (from DLSCHED_PLUGIN_PATH, else beside
 * libdlsched.so) loads, has this library's plugin ABI, and finds a GPU that
 * runs its kernels; the first call in a process finds out (loading the
 * CUDA runtime), later calls return the same answer. Creating an agent with
 * device=cuda gives the reason when it is 0. The first call with "cpu"
 * finds out, once per process, which kernels OpenBLAS runs and what the
 * CPU allows (a few CPUID instructions; see stats.blas_reason). Thread
 * safety: safe from any thread. Since 1.0.
 */
DLSCHED_API int dlsched_backend_available(const char *device);

#ifdef __cplusplus
}
#endif

#endif /* DLSCHED_H */
