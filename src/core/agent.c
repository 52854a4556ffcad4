/*
 * agent.c - the agent core: input checks, tickets, exploration, counters,
 * and the background learner
 *
 * Every public entry point checks all of its inputs before it changes
 * anything, so a rejected call changes nothing. Nothing here allocates
 * after dlsched_agent_new().
 *
 * Locks, always taken in this order: the agent's lock (the model: the
 * backend's learning state), then tmu (tickets, their counters, reward and
 * apprenticeship statistics), then a staging shard's lock.
 *  - learner=inline: act, observe and train hold the agent's lock for their
 *    whole (short) work; one thread at a time learns, deterministically.
 *  - learner=thread: a thread owned by the agent holds the agent's lock
 *    while it trains. Acting reads the model last published by the backend
 *    (q_shared) with a per-call context (scratch and RNG) and takes only
 *    tmu; observing takes tmu, then appends the transition to one of
 *    DLS_SHARDS staging buffers that the learner drains.
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../backends/cpu/blasinfo.h"
#include "backend.h"
#include "config.h"
#include "explore.h"
#include "plugin.h"
#include "rng.h"
#include "tickets.h"

#include "agent_impl.h"

/* ---- input checks (no lock, no side effect) ------------------------------ */

static int dls_check_state(const dlsched_agent *ag, const dlsched_state_t *st, const char *what,
                           uint32_t *allowed)
{
    DLS_FAIL_IF(!st, DLSCHED_EINVAL, "%s is NULL", what);
    DLS_FAIL_IF(st->reserved != 0, DLSCHED_EINVAL, "%s: reserved is %u; must be 0", what,
                st->reserved);
    DLS_FAIL_IF(st->n_features != ag->nf, DLSCHED_EINVAL,
                "%s: n_features is %u but the agent has n_features=%u", what, st->n_features,
                ag->nf);
    DLS_FAIL_IF(!st->features, DLSCHED_EINVAL, "%s: features is NULL", what);
    for (uint32_t i = 0; i < st->n_features; i++) {
        if (DLS_UNLIKELY(!isfinite(st->features[i]))) {
            char b[16];
            return dls_fail(DLSCHED_EINVAL, "%s: feature %u is %s", what, i,
                            dls_fmt_float(st->features[i], b, sizeof b));
        }
    }
    uint32_t k = ag->na;
    if (st->n_mask == 0) {
        DLS_FAIL_IF(st->mask != NULL, DLSCHED_EINVAL,
                    "%s: mask is not NULL but n_mask is 0 (set n_mask to n_actions=%u)", what,
                    ag->na);
    } else {
        DLS_FAIL_IF(st->n_mask != ag->na, DLSCHED_EINVAL,
                    "%s: n_mask is %u; must be 0 or n_actions=%u", what, st->n_mask, ag->na);
        DLS_FAIL_IF(!st->mask, DLSCHED_EINVAL, "%s: mask is NULL but n_mask is %u", what,
                    st->n_mask);
        k = 0;
        for (uint32_t a = 0; a < ag->na; a++)
            k += st->mask[a] != 0;
    }
    DLS_FAIL_IF(st->hint < -1 || st->hint >= (int32_t)ag->na, DLSCHED_EINVAL,
                "%s: hint %d is out of range -1 .. %u", what, st->hint, ag->na - 1);
    DLS_FAIL_IF(st->hint >= 0 && st->n_mask && !st->mask[st->hint], DLSCHED_EINVAL,
                "%s: hint %d is masked out", what, st->hint);
    *allowed = k;
    return DLSCHED_OK;
}

static int dls_check_reward(float reward)
{
    if (DLS_UNLIKELY(!isfinite(reward))) {
        char b[16];
        return dls_fail(DLSCHED_EINVAL, "reward is %s", dls_fmt_float(reward, b, sizeof b));
    }
    return DLSCHED_OK;
}

static int dls_check_next(const dlsched_agent *ag, const dlsched_state_t *next, uint32_t flags)
{
    DLS_FAIL_IF(flags & ~(DLSCHED_OBS_TERMINAL | DLSCHED_OBS_TRUNCATED), DLSCHED_EINVAL,
                "flags 0x%x has unknown bits (allowed: DLSCHED_OBS_TERMINAL, "
                "DLSCHED_OBS_TRUNCATED)",
                flags);
    /* DLSCHED_OBS_TERMINAL | DLSCHED_OBS_TRUNCATED together is a step that
       both ended and was cut off (Gymnasium may say so): terminal wins */
    if (!next) {
        DLS_FAIL_IF(!(flags & DLSCHED_OBS_TERMINAL), DLSCHED_EINVAL,
                    "next is NULL but flags lack DLSCHED_OBS_TERMINAL");
        return DLSCHED_OK;
    }
    uint32_t allowed;
    DLS_TRY(dls_check_state(ag, next, "next", &allowed));
    DLS_FAIL_IF(allowed == 0 && !(flags & DLSCHED_OBS_TERMINAL), DLSCHED_ENOACTION,
                "next: the mask allows no action and the episode is not terminal");
    return DLSCHED_OK;
}

/* ---- locks ------------------------------------------------------------------ */

/* Critical sections are a few hundred nanoseconds: spin briefly before
   sleeping in the kernel (glibc's adaptive mutex). */
static int dls_mutex_init(pthread_mutex_t *m)
{
    pthread_mutexattr_t a;
    if (pthread_mutexattr_init(&a) != 0)
        return -1;
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
    int rc = pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
    return rc;
}

/* The mutex is not fair: a thread that unlocks and locks again at once (a
   training loop) could starve the others. Callers announce that they wait,
   and trainers step aside between steps while anyone does. */
static void dls_lock(dlsched_agent *ag)
{
    if (pthread_mutex_trylock(&ag->lock) == 0)
        return;
    atomic_fetch_add_explicit(&ag->waiting, 1, memory_order_relaxed);
    pthread_mutex_lock(&ag->lock);
    atomic_fetch_sub_explicit(&ag->waiting, 1, memory_order_relaxed);
}

static void dls_unlock(dlsched_agent *ag)
{
    pthread_mutex_unlock(&ag->lock);
}

/* let waiting callers take the agent's lock (bounded) */
static void dls_step_aside(dlsched_agent *ag)
{
    for (int spins = 0;
         spins < 64 && atomic_load_explicit(&ag->waiting, memory_order_relaxed); spins++)
        sched_yield();
}

static uint64_t dls_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- call contexts (learner=thread) ------------------------------------------ */

static dls_ctx *dls_ctx_acquire(dlsched_agent *ag)
{
    /* start where this thread likely left off: a hash of its id */
    uint32_t start = (uint32_t)(((uintptr_t)pthread_self() >> 6) * 2654435761u) % DLS_CTX;
    for (;;) {
        for (uint32_t i = 0; i < DLS_CTX; i++) {
            dls_ctx *c = &ag->ctx[(start + i) % DLS_CTX];
            if (!atomic_flag_test_and_set_explicit(&c->busy, memory_order_acquire))
                return c;
        }
        sched_yield(); /* more than DLS_CTX calls at once: wait for one */
    }
}

static void dls_ctx_release(dls_ctx *c)
{
    atomic_flag_clear_explicit(&c->busy, memory_order_release);
}

/* ---- learning ----------------------------------------------------------------- */

static void dls_count_reward(dlsched_agent *ag, float r)
{
    ag->n_rewards++;
    uint64_t n = ag->n_rewards < DLS_REWARD_HORIZON ? ag->n_rewards : DLS_REWARD_HORIZON;
    ag->mean_reward += ((double)r - ag->mean_reward) / (double)n;
}

/* an outcome for the guard: the visit and, for a tagged ticket, the
   experiment (tmu held). For dqn the key is the features. */
static void dls_guard_note(dlsched_agent *ag, uint32_t tag, const void *key, int32_t action,
                           float reward)
{
    if (!ag->guard.enabled)
        return;
    const float *x = ag->is_dqn ? (const float *)key : NULL;
    dls_guard_observe(&ag->guard, tag, dls_guard_region(&ag->guard, key, x), action, x, reward);
}

/* a logged transition's reward and guard visit, under one hold of tmu
   (key: the state's encoding) */
static void dls_note_transition(dlsched_agent *ag, const void *key, int32_t action, float reward)
{
    pthread_mutex_lock(&ag->tmu);
    dls_count_reward(ag, reward);
    dls_guard_note(ag, 0, key, action, reward);
    pthread_mutex_unlock(&ag->tmu);
}

/* one transition into the backend; the agent's lock is held */
static void dls_learn(dlsched_agent *ag, const dls_transition *t)
{
    double loss = atomic_load_explicit(&ag->last_loss, memory_order_relaxed);
    uint64_t done = ag->ops->learn(ag->impl, t, &ag->rng, &loss);
    atomic_fetch_add_explicit(&ag->train_steps, done, memory_order_relaxed);
    atomic_store_explicit(&ag->last_loss, loss, memory_order_relaxed);
    atomic_store_explicit(&ag->stored, ag->ops->stored(ag->impl), memory_order_relaxed);
}

/* the device failure that stopped training, as this call's error */
static int dls_backend_health(dlsched_agent *ag)
{
    const char *msg = ag->ops->failure ? ag->ops->failure(ag->impl) : NULL;
    DLS_FAIL_IF(msg, DLSCHED_EBACKEND, "%s", msg);
    return DLSCHED_OK;
}

/* move a shard's transitions into the backend (agent's lock held) */
static uint64_t dls_drain_shard(dlsched_agent *ag, dls_shard *sh)
{
    pthread_mutex_lock(&sh->mu);
    uint32_t n = sh->count;
    size_t kb = ag->key_bytes, kpad = (kb + 7) & ~(size_t)7;
    for (uint32_t i = 0; i < n; i++) {
        unsigned char *e = sh->buf + (size_t)i * ag->stage_stride;
        dls_stage_hdr h;
        memcpy(&h, e, sizeof h);
        const unsigned char *key = e + sizeof h, *next = key + kpad, *mask = next + kpad;
        dls_transition t = {key, h.action, h.reward,
                            (h.flags & DLS_STAGE_TERMINAL) ? NULL : next,
                            (h.flags & DLS_STAGE_MASK) ? mask : NULL,
                            (h.flags & DLS_STAGE_TERMINAL) != 0,
                            (h.flags & DLS_STAGE_TRUNCATED) != 0};
        dls_learn(ag, &t);
    }
    sh->count = 0;
    atomic_fetch_sub_explicit(&ag->staged, n, memory_order_relaxed);
    pthread_mutex_unlock(&sh->mu);
    ag->stored_total += n;
    return n;
}

/* hand a transition to the learner (learner=thread); never loses one: a
   full shard is drained by the caller itself */
static void dls_stage(dlsched_agent *ag, const dls_ctx *c, const void *key, int32_t action,
                      float reward, const void *next_key, const uint8_t *next_mask,
                      unsigned terminal, unsigned truncated)
{
    dls_shard *sh = &ag->shards[c->index % DLS_SHARDS];
    size_t kb = ag->key_bytes, kpad = (kb + 7) & ~(size_t)7;
    for (;;) {
        pthread_mutex_lock(&sh->mu);
        if (sh->count < DLS_SHARD_CAP)
            break;
        pthread_mutex_unlock(&sh->mu);
        dls_lock(ag);
        dls_drain_shard(ag, sh);
        dls_unlock(ag);
    }
    unsigned char *e = sh->buf + (size_t)sh->count * ag->stage_stride;
    dls_stage_hdr h = {action, reward,
                       (terminal ? DLS_STAGE_TERMINAL : 0u) |
                           (truncated ? DLS_STAGE_TRUNCATED : 0u) |
                           (next_mask ? DLS_STAGE_MASK : 0u),
                       0};
    memcpy(e, &h, sizeof h);
    memcpy(e + sizeof h, key, kb);
    if (next_key)
        memcpy(e + sizeof h + kpad, next_key, kb);
    if (next_mask)
        memcpy(e + sizeof h + 2 * kpad, next_mask, ag->na);
    sh->count++;
    atomic_fetch_add(&ag->staged, 1);
    pthread_mutex_unlock(&sh->mu);
    /* wake a sleeping learner (staged before sleeping is read: the learner
       re-reads staged after announcing its sleep, so one of them sees it) */
    if (atomic_load(&ag->sleeping)) {
        pthread_mutex_lock(&ag->idle_mu);
        pthread_cond_signal(&ag->idle_cv);
        pthread_mutex_unlock(&ag->idle_mu);
    }
}

void dls_agent_count_reward(dlsched_agent *ag, float reward)
{
    pthread_mutex_lock(&ag->tmu);
    dls_count_reward(ag, reward);
    pthread_mutex_unlock(&ag->tmu);
}

uint64_t dls_agent_version(dlsched_agent *ag)
{
    if (ag->learner_none)
        return atomic_load_explicit(&ag->imported_version, memory_order_relaxed);
    return atomic_load_explicit(&ag->train_steps, memory_order_relaxed);
}

void dls_agent_complete(dlsched_agent *ag, dls_ctx *c, const void *key, int32_t action,
                        float reward, const void *next_key, const uint8_t *next_mask,
                        unsigned terminal, unsigned truncated, uint64_t version)
{
    if (ag->xr.cap)
        dls_xring_record(ag, key, action, reward, next_key, next_mask, terminal, truncated,
                         version);
    if (ag->learner_none)
        return;
    if (ag->threaded) {
        dls_stage(ag, c, key, action, reward, next_key, next_mask, terminal, truncated);
    } else {
        dls_transition t = {key, action, reward, next_key, next_mask, terminal, truncated};
        dls_learn(ag, &t);
    }
}

/* the background learner: drain, train within the replay ratio, publish */
static void *dls_learner_main(void *arg)
{
    dlsched_agent *ag = arg;
    dls_lock(ag);
    while (!atomic_load(&ag->stop)) {
        uint64_t drained = 0;
        for (int s = 0; s < DLS_SHARDS; s++)
            drained += dls_drain_shard(ag, &ag->shards[s]);
        int stepped = 0;
        if (ag->is_dqn && ag->stored_total > 0 && ag->stored_total >= ag->learning_starts &&
            (double)(ag->sampled_total + ag->batch) <= ag->replay_ratio * ag->stored_total) {
            double loss = 0;
            uint64_t done = ag->ops->train(ag->impl, &ag->rng, 1, &loss);
            atomic_fetch_add_explicit(&ag->train_steps, done, memory_order_relaxed);
            atomic_store_explicit(&ag->last_loss, loss, memory_order_relaxed);
            ag->sampled_total += ag->batch;
            if (++ag->since_publish >= ag->publish_every && ag->ops->publish(ag->impl)) {
                atomic_store(&ag->published_version, atomic_load(&ag->train_steps));
                ag->since_publish = 0;
            }
            stepped = 1;
        }
        if (stepped || drained) {
            if (atomic_load_explicit(&ag->waiting, memory_order_relaxed)) {
                dls_unlock(ag);
                dls_step_aside(ag);
                dls_lock(ag);
            }
            continue;
        }
        /* nothing to do: publish what there is, then sleep a little */
        if (ag->since_publish && ag->ops->publish(ag->impl)) {
            atomic_store(&ag->published_version, atomic_load(&ag->train_steps));
            ag->since_publish = 0;
        }
        dls_unlock(ag);
        pthread_mutex_lock(&ag->idle_mu);
        atomic_store(&ag->sleeping, 1);
        if (!atomic_load(&ag->stop) && atomic_load(&ag->staged) == 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += DLS_LEARNER_IDLE_NS;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&ag->idle_cv, &ag->idle_mu, &ts);
        }
        atomic_store(&ag->sleeping, 0);
        pthread_mutex_unlock(&ag->idle_mu);
        dls_lock(ag);
    }
    dls_unlock(ag);
    return NULL;
}

void dls_agent_lock(dlsched_agent *ag)
{
    dls_lock(ag);
}

void dls_agent_unlock(dlsched_agent *ag)
{
    dls_unlock(ag);
}

void dls_agent_drain(dlsched_agent *ag)
{
    if (ag->threaded && ag->shards)
        for (int s = 0; s < DLS_SHARDS; s++)
            dls_drain_shard(ag, &ag->shards[s]);
}

/* ---- tickets (tmu held) ---------------------------------------------------------- */

/* Expire a pending ticket. With default_reward it is kept in the context
   c, to be learned (terminal, with default_reward) by dls_flush_expired()
   once tmu is released: a learning step never runs under tmu. */
static void dls_expire_one(dlsched_agent *ag, dls_ctx *c, int *n_buf, uint32_t slot,
                           int timed_out)
{
    if (ag->has_default_reward) {
        memcpy(c->expired_keys + (size_t)*n_buf * ag->key_bytes,
               dls_tickets_key(&ag->tickets, slot), ag->key_bytes);
        c->expired_actions[*n_buf] = dls_tickets_action(&ag->tickets, slot);
        c->expired_versions[*n_buf] = dls_tickets_slot(&ag->tickets, slot)->version;
        (*n_buf)++;
    }
    if (ag->guard.enabled)
        dls_guard_expired(&ag->guard, dls_tickets_slot(&ag->tickets, slot)->pad);
    dls_tickets_release(&ag->tickets, slot);
    ag->expired++;
    ag->timed_out += timed_out != 0;
}

/* expire tickets older than ticket_timeout_ms (at most DLS_EXPIRE_BATCH) */
static void dls_expire_aged(dlsched_agent *ag, dls_ctx *c, int *n_buf, uint64_t now)
{
    for (int k = 0; k < DLS_EXPIRE_BATCH && dls_tickets_pending(&ag->tickets) > 0; k++) {
        uint32_t slot = dls_tickets_oldest(&ag->tickets);
        if (now - dls_tickets_slot(&ag->tickets, slot)->born_ns <= ag->timeout_ns)
            break;
        dls_expire_one(ag, c, n_buf, slot, 1);
    }
}

/* learn the expired tickets a context collected (tmu released): inline
   under the agent's lock the caller holds, else through the learner */
static void dls_flush_expired(dlsched_agent *ag, dls_ctx *c, int n)
{
    for (int i = 0; i < n; i++) {
        const unsigned char *key = c->expired_keys + (size_t)i * ag->key_bytes;
        dls_agent_complete(ag, c, key, c->expired_actions[i], ag->default_reward, NULL, NULL, 1,
                           0, c->expired_versions[i]);
    }
}

/* ---- agent lifetime ------------------------------------------------------------- */

static int dls_agent_fail(dlsched_agent *ag, int code)
{
    dlsched_agent_free(ag);
    return code;
}

static int dls_agent_threads(dlsched_agent *ag)
{
    size_t kb = ag->key_bytes, kpad = (kb + 7) & ~(size_t)7;
    size_t sf = ag->ops->scratch_floats(ag->impl);
    ag->ctx = calloc(DLS_CTX, sizeof *ag->ctx);
    if (!ag->ctx)
        return dls_fail(DLSCHED_ENOMEM, "out of memory for the learner's buffers");
    uint64_t seed = (uint64_t)dls_config_int(ag->cfg, DLS_KEY_SEED);
    for (uint32_t i = 0; i < DLS_CTX; i++) {
        dls_ctx *c = &ag->ctx[i];
        atomic_flag_clear(&c->busy);
        c->index = i;
        /* stream i: the seed mixed with the context's index */
        dls_rng_seed(&c->rng, seed ^ (0x9e3779b97f4a7c15ULL * (i + 1)));
        c->key = calloc(1, kb);
        c->key_next = calloc(1, kb);
        c->key_prev = calloc(1, kb);
        c->scratch = calloc(sf ? sf : 1, sizeof(float));
        c->expired_keys = calloc(DLS_EXPIRE_BATCH + 1, kb);
        if (!c->key || !c->key_next || !c->key_prev || !c->scratch || !c->expired_keys)
            return dls_fail(DLSCHED_ENOMEM, "out of memory for the learner's buffers");
        ag->bytes += 3 * kb + sf * sizeof(float) + (DLS_EXPIRE_BATCH + 1) * kb;
    }
    if (pthread_mutex_init(&ag->idle_mu, NULL) != 0 || pthread_cond_init(&ag->idle_cv, NULL) != 0)
        return dls_fail(DLSCHED_ENOMEM, "cannot create the learner's condition");
    if (ag->learner_none) /* acts like learner=thread; nothing to stage, no learner */
        return DLSCHED_OK;
    ag->shards = calloc(DLS_SHARDS, sizeof *ag->shards);
    if (!ag->shards)
        return dls_fail(DLSCHED_ENOMEM, "out of memory for the learner's buffers");
    ag->stage_stride = sizeof(dls_stage_hdr) + 2 * kpad + ((ag->na + 7) & ~(size_t)7);
    for (int s = 0; s < DLS_SHARDS; s++) {
        dls_shard *sh = &ag->shards[s];
        if (dls_mutex_init(&sh->mu) != 0)
            return dls_fail(DLSCHED_ENOMEM, "cannot create a staging lock");
        sh->buf = malloc(DLS_SHARD_CAP * ag->stage_stride);
        if (!sh->buf)
            return dls_fail(DLSCHED_ENOMEM, "out of memory for the staging buffers");
        memset(sh->buf, 0, DLS_SHARD_CAP * ag->stage_stride);
        ag->bytes += DLS_SHARD_CAP * ag->stage_stride;
    }
    ag->learning_starts = (uint64_t)dls_config_int(ag->cfg, DLS_KEY_LEARNING_STARTS);
    ag->batch = (uint64_t)dls_config_int(ag->cfg, DLS_KEY_BATCH);
    ag->publish_every = (uint64_t)dls_config_int(ag->cfg, DLS_KEY_PUBLISH_EVERY);
    ag->replay_ratio = dls_config_float(ag->cfg, DLS_KEY_REPLAY_RATIO);
    if (ag->replay_ratio == 0) /* the inline schedule's ratio */
        ag->replay_ratio = (double)ag->batch * (double)dls_config_int(ag->cfg, DLS_KEY_GRADIENT_STEPS) /
                           (double)dls_config_int(ag->cfg, DLS_KEY_TRAIN_EVERY);
    if (pthread_create(&ag->learner, NULL, dls_learner_main, ag) != 0)
        return dls_fail(DLSCHED_ENOMEM, "cannot start the learner thread");
    ag->learner_started = 1;
    return DLSCHED_OK;
}

DLSCHED_API int dlsched_agent_new(const dlsched_config *cfg, dlsched_agent **out)
{
    DLS_FAIL_IF(!cfg, DLSCHED_EINVAL, "cfg is NULL");
    DLS_FAIL_IF(!out, DLSCHED_EINVAL, "out is NULL");
    for (int i = 0; i < DLS_N_KEYS; i++)
        DLS_FAIL_IF((dls_keys[i].flags & DLS_K_REQUIRED) && !dls_config_isset(cfg, i),
                    DLSCHED_ECONFIG, "key '%s' is required (%s)", dls_keys[i].name,
                    dls_keys[i].help);
    int64_t algo = dls_config_int(cfg, DLS_KEY_ALGO);
    int64_t device = dls_config_int(cfg, DLS_KEY_DEVICE);
    DLS_FAIL_IF(algo == DLS_ALGO_QTABLE && device == DLS_DEVICE_CUDA, DLSCHED_ECONFIG,
                "device=cuda: algo=qtable runs on the CPU only (use device=auto or cpu)");
    /* the device: the CUDA plugin for dqn unless device=cpu; device=auto
       falls back to the CPU with the reason kept for stats and last_error */
    const dls_gpu_ops *gpu = NULL;
    char reason[DLS_REASON_LEN] = "";
    if (algo == DLS_ALGO_DQN && device != DLS_DEVICE_CPU) {
        const char *no = dls_dqn_gpu_refusal(cfg);
        char why[DLS_REASON_LEN - 40];
        if (no) {
            DLS_FAIL_IF(device == DLS_DEVICE_CUDA, DLSCHED_ECONFIG, "device=cuda: %s", no);
            snprintf(reason, sizeof reason, "%s", no);
        } else if (!(gpu = dls_cuda_backend(why, sizeof why))) {
            DLS_FAIL_IF(device == DLS_DEVICE_CUDA, DLSCHED_ENODEVICE,
                        "device=cuda: no usable CUDA backend: %s (use device=auto to fall back "
                        "to the CPU)",
                        why);
            snprintf(reason, sizeof reason, "no usable CUDA backend: %s", why);
        }
    } else if (algo == DLS_ALGO_QTABLE && device == DLS_DEVICE_AUTO) {
        snprintf(reason, sizeof reason, "algo=qtable learns on the CPU only");
    }

    DLS_FAIL_IF(dls_config_int(cfg, DLS_KEY_LEARNER) == DLS_LEARNER_THREAD &&
                    dls_config_int(cfg, DLS_KEY_CPU_THREADS) > 1,
                DLSCHED_ECONFIG,
                "key 'cpu_threads' is %lld but learner=thread needs 1: OpenBLAS's thread count "
                "is process-wide, so acting threads would wait on BLAS threads while the "
                "learner trains",
                (long long)dls_config_int(cfg, DLS_KEY_CPU_THREADS));

    dlsched_agent *ag = calloc(1, sizeof *ag);
    DLS_FAIL_IF(!ag, DLSCHED_ENOMEM, "out of memory for an agent");
    atomic_init(&ag->waiting, 0);
    atomic_init(&ag->stop, 0);
    atomic_init(&ag->sleeping, 0);
    if (dls_mutex_init(&ag->lock) != 0) {
        free(ag);
        return dls_fail(DLSCHED_ENOMEM, "cannot create the agent's lock");
    }
    if (dls_mutex_init(&ag->tmu) != 0) {
        pthread_mutex_destroy(&ag->lock);
        free(ag);
        return dls_fail(DLSCHED_ENOMEM, "cannot create the agent's lock");
    }
    int rc = dls_config_dup(cfg, &ag->cfg);
    if (rc != DLSCHED_OK)
        return dls_agent_fail(ag, rc);
    ag->nf = (uint32_t)dls_config_int(cfg, DLS_KEY_N_FEATURES);
    ag->na = (uint32_t)dls_config_int(cfg, DLS_KEY_N_ACTIONS);
    ag->explore_mode = (int)dls_config_int(cfg, DLS_KEY_EXPLORE);
    ag->eps_start = dls_config_float(cfg, DLS_KEY_EPSILON_START);
    ag->eps_end = dls_config_float(cfg, DLS_KEY_EPSILON_END);
    ag->eps_decay = (uint64_t)dls_config_int(cfg, DLS_KEY_EPSILON_DECAY_STEPS);
    ag->temperature = dls_config_float(cfg, DLS_KEY_TEMPERATURE);
    ag->has_default_reward = dls_config_isset(cfg, DLS_KEY_DEFAULT_REWARD);
    ag->default_reward = (float)dls_config_float(cfg, DLS_KEY_DEFAULT_REWARD);
    ag->replay = (uint64_t)dls_config_int(cfg, DLS_KEY_REPLAY);
    ag->timeout_ns = (uint64_t)dls_config_int(cfg, DLS_KEY_TICKET_TIMEOUT_MS) * 1000000ull;
    ag->learner_none = dls_config_int(cfg, DLS_KEY_LEARNER) == DLS_LEARNER_NONE;
    ag->threaded = dls_config_int(cfg, DLS_KEY_LEARNER) == DLS_LEARNER_THREAD || ag->learner_none;
    atomic_init(&ag->imported_version, 0);
    ag->is_dqn = algo == DLS_ALGO_DQN;
    ag->appr_left = (uint64_t)dls_config_int(cfg, DLS_KEY_APPRENTICE);
    ag->appr_agreement = dls_config_float(cfg, DLS_KEY_APPRENTICE_AGREEMENT);
    atomic_init(&ag->appr_active, ag->appr_left > 0);
    dls_rng_seed(&ag->rng, (uint64_t)dls_config_int(cfg, DLS_KEY_SEED));

    if (algo == DLS_ALGO_QTABLE) {
        rc = dls_qtable_new(cfg, &ag->ops, &ag->impl, &ag->key_bytes);
    } else {
        rc = dls_dqn_new_on(cfg, &ag->rng, gpu, &ag->ops, &ag->impl, &ag->key_bytes);
        if (rc == DLSCHED_ENODEVICE && device == DLS_DEVICE_AUTO) {
            /* the GPU is there but training cannot be set up on it: the CPU,
               from the same seed */
            snprintf(reason, sizeof reason, "%s", dlsched_last_error());
            gpu = NULL;
            dls_rng_seed(&ag->rng, (uint64_t)dls_config_int(cfg, DLS_KEY_SEED));
            rc = dls_dqn_new_on(cfg, &ag->rng, NULL, &ag->ops, &ag->impl, &ag->key_bytes);
        }
    }
    if (rc != DLSCHED_OK)
        return dls_agent_fail(ag, rc);
    ag->backend = gpu ? DLSCHED_BACKEND_CUDA : DLSCHED_BACKEND_CPU;
    if (!gpu && reason[0])
        snprintf(ag->backend_reason, sizeof ag->backend_reason, "%s", reason);
    /* the guard's regions: a tabular backend's states, else SimHash buckets */
    rc = dls_guard_init(&ag->guard, cfg, algo == DLS_ALGO_DQN, ag->nf, ag->na,
                        ag->ops->states ? ag->ops->states(ag->impl) : 0);
    if (rc != DLSCHED_OK)
        return dls_agent_fail(ag, rc);
    uint32_t cap = (uint32_t)dls_config_int(cfg, DLS_KEY_TICKET_CAPACITY);
    if (dls_tickets_init(&ag->tickets, cap, ag->key_bytes) != 0)
        return dls_agent_fail(ag, dls_fail(DLSCHED_ENOMEM,
                                           "out of memory for %u tickets", cap));
    ag->key_next = calloc(1, ag->key_bytes);
    ag->key_cur = calloc(1, ag->key_bytes);
    ag->q_scratch = calloc(ag->na, sizeof(float));
    ag->ictx.expired_keys = calloc(DLS_EXPIRE_BATCH + 1, ag->key_bytes);
    if (!ag->key_next || !ag->key_cur || !ag->q_scratch || !ag->ictx.expired_keys)
        return dls_agent_fail(ag, dls_fail(DLSCHED_ENOMEM, "out of memory for an agent"));
    ag->bytes = sizeof *ag + 2 * ag->key_bytes + ag->na * sizeof(float) +
                dls_tickets_bytes(cap, ag->key_bytes) + ag->ops->memory(ag->impl) +
                ag->guard.bytes;
    uint32_t xcap = (uint32_t)dls_config_int(cfg, DLS_KEY_EXCHANGE_CAPACITY);
    if (xcap) {
        rc = dls_xring_init(ag, xcap);
        if (rc != DLSCHED_OK)
            return dls_agent_fail(ag, rc);
    }
    if (ag->threaded) {
        rc = dls_agent_threads(ag);
        if (rc != DLSCHED_OK)
            return dls_agent_fail(ag, rc);
    }
    *out = ag;
    /* a fallback or slow BLAS kernels are no failure, but the host may ask
       why; dqn acts with OpenBLAS on either device (qtable uses no BLAS).
       The BLAS facts are found here, once per process, for dlsched_stats */
    int fell_back = algo == DLS_ALGO_DQN && !gpu && reason[0];
    (void)dls_blas_info_get();
    const char *blas = algo == DLS_ALGO_DQN && ag->ops->kernels ? ag->ops->kernels(ag->impl) : "";
    if (fell_back || blas[0])
        (void)dls_fail(DLSCHED_OK, "%s%s%s%s", fell_back ? "device=auto: learning on the CPU: " : "",
                       fell_back ? reason : "", fell_back && blas[0] ? "; " : "", blas);
    return DLSCHED_OK;
}

DLSCHED_API void dlsched_agent_free(dlsched_agent *ag)
{
    if (!ag)
        return;
    if (ag->learner_started) {
        atomic_store(&ag->stop, 1);
        pthread_mutex_lock(&ag->idle_mu);
        pthread_cond_signal(&ag->idle_cv);
        pthread_mutex_unlock(&ag->idle_mu);
        pthread_join(ag->learner, NULL);
    }
    if (ag->threaded) {
        pthread_mutex_destroy(&ag->idle_mu);
        pthread_cond_destroy(&ag->idle_cv);
    }
    if (ag->ctx) {
        for (uint32_t i = 0; i < DLS_CTX; i++) {
            free(ag->ctx[i].key);
            free(ag->ctx[i].key_next);
            free(ag->ctx[i].key_prev);
            free(ag->ctx[i].scratch);
            free(ag->ctx[i].expired_keys);
        }
        free(ag->ctx);
    }
    if (ag->shards) {
        for (int s = 0; s < DLS_SHARDS; s++) {
            if (ag->shards[s].buf)
                pthread_mutex_destroy(&ag->shards[s].mu);
            free(ag->shards[s].buf);
        }
        free(ag->shards);
    }
    if (ag->impl)
        ag->ops->destroy(ag->impl);
    dls_xring_free(ag);
    dls_guard_free(&ag->guard);
    dls_tickets_free(&ag->tickets);
    free(ag->key_next);
    free(ag->key_cur);
    free(ag->q_scratch);
    free(ag->ictx.expired_keys);
    dlsched_config_free(ag->cfg);
    pthread_mutex_destroy(&ag->tmu);
    pthread_mutex_destroy(&ag->lock);
    free(ag);
}

/* ---- act ---------------------------------------------------------------------- */

/* The decision for the Q-values q: apprenticeship first, else the
   behaviour policy. *appr = 1 when the hint was taken as apprentice, with
   *agree = whether the greedy choice equalled it. */
static void dls_decide(dlsched_agent *ag, const float *q, const dlsched_state_t *st,
                       const uint8_t *mask, const void *key, uint64_t unit, int greedy,
                       dls_rng *rng, dls_choice *c, int *appr, int *agree, uint32_t *tag)
{
    *appr = 0;
    *tag = 0;
    if (!greedy && st->hint >= 0 && atomic_load_explicit(&ag->appr_active, memory_order_relaxed)) {
        dls_choice g;
        dls_choose(-1, 0, 1, q, mask, ag->na, -1, rng, &g);
        *appr = 1;
        *agree = g.action == st->hint;
        c->action = st->hint;
        c->flags = DLSCHED_DECISION_HINT;
        c->probability = 1.0f;
        return;
    }
    double eps = dls_epsilon(ag->eps_start, ag->eps_end, ag->eps_decay, ag->tickets_issued);
    dls_choose(greedy ? -1 : ag->explore_mode, eps, ag->temperature, q, mask, ag->na, st->hint,
               rng, c);
    if (ag->guard.enabled && st->hint >= 0) {
        uint64_t region = dls_guard_region(&ag->guard, key, st->features);
        *tag = dls_guard_decide(&ag->guard, q, mask, ag->explore_mode, eps, ag->temperature,
                                st->hint, region, unit, greedy, rng, c);
    }
}

/* apprenticeship bookkeeping for one hinted decision (tmu held) */
static void dls_apprentice_note(dlsched_agent *ag, int agree)
{
    if (!atomic_load_explicit(&ag->appr_active, memory_order_relaxed))
        return;
    if (ag->appr_fill == DLS_APPRENTICE_WINDOW)
        ag->appr_agree -= ag->appr_window[ag->appr_pos];
    else
        ag->appr_fill++;
    ag->appr_window[ag->appr_pos] = (unsigned char)agree;
    ag->appr_agree += (uint32_t)agree;
    ag->appr_pos = (ag->appr_pos + 1) % DLS_APPRENTICE_WINDOW;
    ag->appr_left--;
    /* over after N hinted decisions, or early at agreement over a full window */
    if (ag->appr_left == 0 ||
        (ag->appr_fill == DLS_APPRENTICE_WINDOW &&
         ag->appr_agree >= ag->appr_agreement * DLS_APPRENTICE_WINDOW)) {
        ag->appr_left = 0;
        atomic_store_explicit(&ag->appr_active, 0, memory_order_relaxed);
    }
}

static int dls_act(dlsched_agent *ag, const dlsched_state_t *st, uint64_t unit, uint32_t flags,
                   dlsched_decision_t *out)
{
    DLS_FAIL_IF(!ag, DLSCHED_EINVAL, "agent is NULL");
    DLS_FAIL_IF(!out, DLSCHED_EINVAL, "out is NULL");
    DLS_FAIL_IF(flags & ~DLSCHED_ACT_GREEDY, DLSCHED_EINVAL,
                "flags 0x%x has unknown bits (allowed: DLSCHED_ACT_GREEDY)", flags);
    uint32_t allowed;
    DLS_TRY(dls_check_state(ag, st, "state", &allowed));
    DLS_FAIL_IF(allowed == 0, DLSCHED_ENOACTION, "state: the mask allows no action");
    const uint8_t *mask = st->n_mask ? st->mask : NULL;
    int greedy = (flags & DLSCHED_ACT_GREEDY) != 0;
    dls_ctx *c = NULL;
    unsigned char *key;
    const float *q;
    dls_rng *rng;
    uint64_t version;
    if (ag->threaded) {
        c = dls_ctx_acquire(ag);
        key = c->key;
        rng = &c->rng;
        ag->ops->encode(ag->impl, st->features, key);
        q = ag->ops->q_shared(ag->impl, key, c->scratch, &version);
        if (ag->learner_none && !ag->is_dqn) /* dqn: the snapshot's, the imported one */
            version = atomic_load_explicit(&ag->imported_version, memory_order_relaxed);
        else if (!ag->is_dqn)
            version = atomic_load_explicit(&ag->train_steps, memory_order_relaxed);
    } else {
        dls_lock(ag);
        c = &ag->ictx;
        key = ag->key_cur;
        rng = &ag->rng;
        ag->ops->encode(ag->impl, st->features, key);
        q = ag->ops->q(ag->impl, key, ag->q_scratch);
        version = atomic_load_explicit(&ag->train_steps, memory_order_relaxed);
    }
    dlsched_decision_t d;
    dls_choice ch;
    int appr, agree = 0, n_exp = 0;
    uint32_t tag;
    pthread_mutex_lock(&ag->tmu);
    dls_decide(ag, q, st, mask, key, unit, greedy, rng, &ch, &appr, &agree, &tag);
    d.action = ch.action;
    d.flags = ch.flags;
    d.probability = ch.probability;
    d.value = q[ch.action];
    d.ticket = 0;
    if (!greedy) {
        if (appr)
            dls_apprentice_note(ag, agree);
        if (ag->timeout_ns)
            dls_expire_aged(ag, c, &n_exp, dls_now_ns());
        if (ag->tickets.n_free == 0)
            dls_expire_one(ag, c, &n_exp, dls_tickets_oldest(&ag->tickets), 0);
        uint32_t slot;
        d.ticket = dls_tickets_issue(&ag->tickets, ch.action, &slot);
        memcpy(dls_tickets_key(&ag->tickets, slot), key, ag->key_bytes);
        if (ag->timeout_ns)
            dls_tickets_slot(&ag->tickets, slot)->born_ns = dls_now_ns();
        dls_tickets_slot(&ag->tickets, slot)->pad = tag;
        dls_tickets_slot(&ag->tickets, slot)->version = version;
        ag->tickets_issued++;
    }
    pthread_mutex_unlock(&ag->tmu);
    d.model_version = version;
    atomic_fetch_add_explicit(&ag->decisions, 1, memory_order_relaxed);
    if (ch.flags & DLSCHED_DECISION_EXPLORED)
        atomic_fetch_add_explicit(&ag->explored, 1, memory_order_relaxed);
    if (ch.flags & DLSCHED_DECISION_HINT)
        atomic_fetch_add_explicit(&ag->hinted, 1, memory_order_relaxed);
    dls_flush_expired(ag, c, n_exp);
    if (ag->threaded)
        dls_ctx_release(c);
    else
        dls_unlock(ag);
    *out = d;
    return DLSCHED_OK;
}

DLSCHED_API int dlsched_act(dlsched_agent *ag, const dlsched_state_t *st, uint32_t flags,
                            dlsched_decision_t *out)
{
    return dls_act(ag, st, 0, flags, out);
}

DLSCHED_API int dlsched_act_unit(dlsched_agent *ag, const dlsched_state_t *st, uint64_t unit,
                                 uint32_t flags, dlsched_decision_t *out)
{
    return dls_act(ag, st, unit, flags, out);
}

/* ---- observe ------------------------------------------------------------------ */

DLSCHED_API int dlsched_observe(dlsched_agent *ag, uint64_t ticket, float reward,
                                const dlsched_state_t *next, uint32_t flags)
{
    DLS_FAIL_IF(!ag, DLSCHED_EINVAL, "agent is NULL");
    DLS_TRY(dls_check_reward(reward));
    DLS_TRY(dls_check_next(ag, next, flags));
    int terminal = (flags & DLSCHED_OBS_TERMINAL) != 0;
    int truncated = !terminal && (flags & DLSCHED_OBS_TRUNCATED) != 0;
    const uint8_t *nmask = (!terminal && next->n_mask) ? next->mask : NULL;
    dls_ctx *c = NULL;
    unsigned char *key_prev, *key_next;
    if (ag->threaded) {
        c = dls_ctx_acquire(ag);
        key_prev = c->key_prev;
        key_next = c->key_next;
    } else {
        dls_lock(ag);
        c = &ag->ictx;
        key_prev = ag->key_cur;
        key_next = ag->key_next;
    }
    int n_exp = 0;
    pthread_mutex_lock(&ag->tmu);
    uint64_t now = ag->timeout_ns ? dls_now_ns() : 0;
    uint32_t slot = dls_tickets_find(&ag->tickets, ticket);
    /* a ticket past ticket_timeout_ms is expired, even if no call did yet */
    int too_old = slot != DLS_NO_SLOT && ag->timeout_ns &&
                  now - dls_tickets_slot(&ag->tickets, slot)->born_ns > ag->timeout_ns;
    if (too_old)
        dls_expire_one(ag, c, &n_exp, slot, 1);
    if (ag->timeout_ns)
        dls_expire_aged(ag, c, &n_exp, now);
    if (slot == DLS_NO_SLOT || too_old) {
        pthread_mutex_unlock(&ag->tmu);
        dls_flush_expired(ag, c, n_exp);
        if (ag->threaded)
            dls_ctx_release(c);
        else
            dls_unlock(ag);
        return dls_fail(DLSCHED_ETICKET,
                        too_old ? "ticket %llu expired: older than ticket_timeout_ms"
                                : "ticket %llu is not pending (unknown, expired or already "
                                  "observed)",
                        (unsigned long long)ticket);
    }
    memcpy(key_prev, dls_tickets_key(&ag->tickets, slot), ag->key_bytes);
    int32_t action = dls_tickets_action(&ag->tickets, slot);
    uint32_t tag = dls_tickets_slot(&ag->tickets, slot)->pad;
    uint64_t version = dls_tickets_slot(&ag->tickets, slot)->version;
    dls_tickets_release(&ag->tickets, slot);
    ag->observed++;
    dls_count_reward(ag, reward);
    dls_guard_note(ag, tag, key_prev, action, reward);
    pthread_mutex_unlock(&ag->tmu);

    if (!terminal)
        ag->ops->encode(ag->impl, next->features, key_next);
    dls_agent_complete(ag, c, key_prev, action, reward, terminal ? NULL : key_next, nmask,
                       (unsigned)terminal, (unsigned)truncated, version);
    if (ag->threaded) {
        dls_flush_expired(ag, c, n_exp);
        dls_ctx_release(c);
    } else {
        dls_flush_expired(ag, c, n_exp);
        int health = dls_backend_health(ag);
        dls_unlock(ag);
        DLS_TRY(health);
    }
    return DLSCHED_OK;
}

DLSCHED_API int dlsched_observe_transition(dlsched_agent *ag, const dlsched_state_t *st,
                                           int32_t action, float reward,
                                           const dlsched_state_t *next, uint32_t flags)
{
    DLS_FAIL_IF(!ag, DLSCHED_EINVAL, "agent is NULL");
    uint32_t allowed;
    DLS_TRY(dls_check_state(ag, st, "state", &allowed));
    DLS_FAIL_IF(allowed == 0, DLSCHED_ENOACTION, "state: the mask allows no action");
    DLS_FAIL_IF(action < 0 || action >= (int32_t)ag->na, DLSCHED_EINVAL,
                "action %d is out of range 0 .. %u", action, ag->na - 1);
    DLS_FAIL_IF(st->n_mask && !st->mask[action], DLSCHED_EINVAL,
                "action %d is masked out in state", action);
    DLS_TRY(dls_check_reward(reward));
    DLS_TRY(dls_check_next(ag, next, flags));
    int terminal = (flags & DLSCHED_OBS_TERMINAL) != 0;
    int truncated = !terminal && (flags & DLSCHED_OBS_TRUNCATED) != 0;
    const uint8_t *nmask = (!terminal && next->n_mask) ? next->mask : NULL;

    atomic_fetch_add_explicit(&ag->transitions, 1, memory_order_relaxed);
    if (ag->threaded) {
        dls_ctx *c = dls_ctx_acquire(ag);
        ag->ops->encode(ag->impl, st->features, c->key);
        dls_note_transition(ag, c->key, action, reward);
        if (!terminal)
            ag->ops->encode(ag->impl, next->features, c->key_next);
        dls_agent_complete(ag, c, c->key, action, reward, terminal ? NULL : c->key_next, nmask,
                           (unsigned)terminal, (unsigned)truncated, dls_agent_version(ag));
        dls_ctx_release(c);
        return DLSCHED_OK;
    }
    dls_lock(ag);
    ag->ops->encode(ag->impl, st->features, ag->key_cur);
    dls_note_transition(ag, ag->key_cur, action, reward);
    if (!terminal)
        ag->ops->encode(ag->impl, next->features, ag->key_next);
    dls_agent_complete(ag, &ag->ictx, ag->key_cur, action, reward,
                       terminal ? NULL : ag->key_next, nmask, (unsigned)terminal,
                       (unsigned)truncated, dls_agent_version(ag));
    int health = dls_backend_health(ag);
    dls_unlock(ag);
    return health;
}

/* ---- train, q_values ------------------------------------------------------------ */

DLSCHED_API int dlsched_train(dlsched_agent *ag, uint32_t steps)
{
    DLS_FAIL_IF(!ag, DLSCHED_EINVAL, "agent is NULL");
    DLS_FAIL_IF(ag->learner_none, DLSCHED_ECONFIG,
                "learner=none never trains (it acts and records for "
                "dlsched_export_transitions; a learning agent ingests them)");
    DLS_FAIL_IF(ag->replay == 0, DLSCHED_ECONFIG,
                "dlsched_train needs a replay buffer but key 'replay' is 0");
    uint32_t left = steps;
    while (left > 0) {
        uint32_t chunk = left < ag->ops->train_chunk ? left : ag->ops->train_chunk;
        dls_lock(ag);
        if (ag->threaded) /* train on everything observed so far */
            for (int s = 0; s < DLS_SHARDS; s++)
                dls_drain_shard(ag, &ag->shards[s]);
        double loss = atomic_load_explicit(&ag->last_loss, memory_order_relaxed);
        uint64_t done = ag->ops->train(ag->impl, &ag->rng, chunk, &loss);
        atomic_fetch_add_explicit(&ag->train_steps, done, memory_order_relaxed);
        atomic_store_explicit(&ag->last_loss, loss, memory_order_relaxed);
        if (ag->threaded && done) {
            if (ag->ops->publish(ag->impl)) {
                atomic_store(&ag->published_version, atomic_load(&ag->train_steps));
                ag->since_publish = 0;
            } else {
                ag->since_publish++; /* the learner publishes it when idle */
            }
        }
        int health = dls_backend_health(ag);
        dls_unlock(ag);
        DLS_TRY(health);
        if (done == 0)
            break;
        left -= chunk;
        dls_step_aside(ag);
    }
    return DLSCHED_OK;
}

DLSCHED_API int dlsched_q_values(dlsched_agent *ag, const dlsched_state_t *st, float *out,
                                 uint32_t n)
{
    DLS_FAIL_IF(!ag, DLSCHED_EINVAL, "agent is NULL");
    DLS_FAIL_IF(!out, DLSCHED_EINVAL, "out is NULL");
    DLS_FAIL_IF(n != ag->na, DLSCHED_EINVAL, "n is %u but the agent has n_actions=%u", n,
                ag->na);
    uint32_t allowed;
    DLS_TRY(dls_check_state(ag, st, "state", &allowed));
    const float *q;
    dls_ctx *c = NULL;
    uint64_t version;
    if (ag->threaded) {
        c = dls_ctx_acquire(ag);
        ag->ops->encode(ag->impl, st->features, c->key);
        q = ag->ops->q_shared(ag->impl, c->key, c->scratch, &version);
    } else {
        dls_lock(ag);
        ag->ops->encode(ag->impl, st->features, ag->key_cur);
        q = ag->ops->q(ag->impl, ag->key_cur, ag->q_scratch);
    }
    for (uint32_t a = 0; a < n; a++)
        out[a] = (st->n_mask && !st->mask[a]) ? -INFINITY : q[a];
    if (c)
        dls_ctx_release(c);
    else
        dls_unlock(ag);
    return DLSCHED_OK;
}

/* ---- statistics ------------------------------------------------------------------- */

DLSCHED_API int dlsched_stats(dlsched_agent *ag, dlsched_stats_t *out, size_t size)
{
    DLS_FAIL_IF(!ag, DLSCHED_EINVAL, "agent is NULL");
    DLS_FAIL_IF(!out, DLSCHED_EINVAL, "out is NULL");
    DLS_FAIL_IF(size < sizeof(uint32_t), DLSCHED_EINVAL,
                "size %zu is smaller than the size member (pass sizeof(dlsched_stats_t))", size);
    dlsched_stats_t s;
    memset(&s, 0, sizeof s);
    s.backend = ag->backend;
    memcpy(s.backend_reason, ag->backend_reason, sizeof s.backend_reason);
    /* the process's, found at the first agent (blasinfo.h) */
    const dls_blas_info *blas = dls_blas_info_get();
    memcpy(s.blas_core, blas->core, sizeof s.blas_core);
    if (ag->is_dqn && ag->ops->kernels)
        snprintf(s.blas_reason, sizeof s.blas_reason, "%s", ag->ops->kernels(ag->impl));
    s.memory_bytes = ag->bytes;
    pthread_mutex_lock(&ag->tmu);
    s.tickets_issued = ag->tickets_issued;
    s.observed = ag->observed;
    s.tickets_pending = dls_tickets_pending(&ag->tickets);
    s.tickets_expired = ag->expired;
    s.tickets_timed_out = ag->timed_out;
    s.mean_reward = ag->mean_reward;
    s.epsilon = ag->explore_mode == DLS_EXPLORE_SOFTMAX
                    ? 0.0
                    : dls_epsilon(ag->eps_start, ag->eps_end, ag->eps_decay, ag->tickets_issued);
    s.apprentice_left = ag->appr_left;
    s.apprentice_agreement = ag->appr_fill ? (double)ag->appr_agree / ag->appr_fill : 0.0;
    dls_guard_stats(&ag->guard, &s);
    pthread_mutex_unlock(&ag->tmu);
    uint64_t pv = atomic_load(&ag->published_version); /* before train_steps */
    s.decisions = atomic_load_explicit(&ag->decisions, memory_order_relaxed);
    s.explored = atomic_load_explicit(&ag->explored, memory_order_relaxed);
    s.hinted = atomic_load_explicit(&ag->hinted, memory_order_relaxed);
    s.transitions = atomic_load_explicit(&ag->transitions, memory_order_relaxed);
    s.transitions_stored = atomic_load_explicit(&ag->stored, memory_order_relaxed);
    s.train_steps = atomic_load_explicit(&ag->train_steps, memory_order_relaxed);
    s.model_version = ag->learner_none
                          ? atomic_load_explicit(&ag->imported_version, memory_order_relaxed)
                          : s.train_steps;
    s.last_loss = atomic_load_explicit(&ag->last_loss, memory_order_relaxed);
    s.staged = atomic_load_explicit(&ag->staged, memory_order_relaxed);
    s.published_version = ag->threaded && ag->is_dqn && !ag->learner_none ? pv : s.model_version;
    size_t n = size < sizeof s ? size : sizeof s;
    s.size = (uint32_t)n;
    memcpy(out, &s, n);
    return DLSCHED_OK;
}


