/*
 * agent.c - the agent core: input checks, tickets, exploration, counters
 *
 * Every public entry point checks all of its inputs before it takes the
 * agent's lock, so a rejected call changes nothing. The lock serialises
 * the short critical sections of act/observe/train/stats (well under a
 * microsecond for the tabular backend); nothing inside allocates.
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "config.h"
#include "explore.h"
#include "rng.h"
#include "tickets.h"

/* mean_reward: exact mean over the first N rewards, then EMA with 1/N */
#define DLS_REWARD_HORIZON 1000

struct dlsched_agent {
    pthread_mutex_t lock;
    atomic_uint waiting; /* callers blocked in dls_lock(), so train() can yield */
    dlsched_config *cfg;
    const dls_backend_ops *ops;
    void *impl;
    uint32_t nf, na;
    int explore_mode;
    double eps_start, eps_end, temperature;
    uint64_t eps_decay;
    int has_default_reward;
    float default_reward;
    uint64_t replay;
    size_t key_bytes;
    dls_rng rng;
    dls_tickets tickets;
    unsigned char *key_next; /* scratch: encoding of a next state */
    unsigned char *key_cur;  /* scratch: encoding of a current state */
    float *q_scratch;        /* n_actions */
    size_t bytes;
    /* counters */
    uint64_t decisions, explored, hinted, tickets_issued, observed, expired;
    uint64_t transitions, train_steps, n_rewards;
    double last_loss, mean_reward;
};

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
    DLS_FAIL_IF((flags & DLSCHED_OBS_TERMINAL) && (flags & DLSCHED_OBS_TRUNCATED),
                DLSCHED_EINVAL, "flags: DLSCHED_OBS_TERMINAL and DLSCHED_OBS_TRUNCATED exclude "
                                "each other");
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

/* ---- the agent's lock ----------------------------------------------------- */

/* The mutex is not fair: a thread that unlocks and locks again at once (a
   training loop) could starve the others. Callers announce that they wait,
   and dlsched_train() steps aside between its chunks while anyone does. */
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

/* ---- helpers under the lock ---------------------------------------------- */

static void dls_count_reward(dlsched_agent *ag, float r)
{
    ag->n_rewards++;
    uint64_t n = ag->n_rewards < DLS_REWARD_HORIZON ? ag->n_rewards : DLS_REWARD_HORIZON;
    ag->mean_reward += ((double)r - ag->mean_reward) / (double)n;
}

static void dls_learn(dlsched_agent *ag, const dls_transition *t)
{
    double loss = ag->last_loss;
    ag->train_steps += ag->ops->learn(ag->impl, t, &ag->rng, &loss);
    ag->last_loss = loss;
}

/* drop the oldest pending ticket; learn it as terminal with default_reward */
static void dls_expire_oldest(dlsched_agent *ag)
{
    uint32_t slot = ag->tickets.head;
    if (ag->has_default_reward) {
        dls_transition t = {dls_tickets_key(&ag->tickets, slot), dls_tickets_action(&ag->tickets, slot),
                            ag->default_reward, NULL, NULL, 1, 0};
        dls_learn(ag, &t);
    }
    dls_tickets_release(&ag->tickets, slot);
    ag->expired++;
}

/* ---- agent lifetime ------------------------------------------------------ */

static int dls_agent_fail(dlsched_agent *ag, int code)
{
    dlsched_agent_free(ag);
    return code;
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
    DLS_FAIL_IF(device == DLS_DEVICE_CUDA && !dlsched_backend_available("cuda"),
                DLSCHED_ENODEVICE,
                "device=cuda: this build of libdlsched %s has no CUDA backend (use device=auto "
                "to fall back to the CPU)",
                dlsched_version_string());

    dlsched_agent *ag = calloc(1, sizeof *ag);
    DLS_FAIL_IF(!ag, DLSCHED_ENOMEM, "out of memory for an agent");
    atomic_init(&ag->waiting, 0);
    if (pthread_mutex_init(&ag->lock, NULL) != 0) {
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
    dls_rng_seed(&ag->rng, (uint64_t)dls_config_int(cfg, DLS_KEY_SEED));

    if (algo == DLS_ALGO_QTABLE)
        rc = dls_qtable_new(cfg, &ag->ops, &ag->impl, &ag->key_bytes);
    else
        rc = dls_dqn_new(cfg, &ag->rng, &ag->ops, &ag->impl, &ag->key_bytes);
    if (rc != DLSCHED_OK)
        return dls_agent_fail(ag, rc);
    uint32_t cap = (uint32_t)dls_config_int(cfg, DLS_KEY_TICKET_CAPACITY);
    if (dls_tickets_init(&ag->tickets, cap, ag->key_bytes) != 0)
        return dls_agent_fail(ag, dls_fail(DLSCHED_ENOMEM,
                                           "out of memory for %u tickets", cap));
    ag->key_next = calloc(1, ag->key_bytes);
    ag->key_cur = calloc(1, ag->key_bytes);
    ag->q_scratch = calloc(ag->na, sizeof(float));
    if (!ag->key_next || !ag->key_cur || !ag->q_scratch)
        return dls_agent_fail(ag, dls_fail(DLSCHED_ENOMEM, "out of memory for an agent"));
    ag->bytes = sizeof *ag + 2 * ag->key_bytes + ag->na * sizeof(float) +
                dls_tickets_bytes(cap, ag->key_bytes) + ag->ops->memory(ag->impl);
    *out = ag;
    return DLSCHED_OK;
}

DLSCHED_API void dlsched_agent_free(dlsched_agent *ag)
{
    if (!ag)
        return;
    if (ag->impl)
        ag->ops->destroy(ag->impl);
    dls_tickets_free(&ag->tickets);
    free(ag->key_next);
    free(ag->key_cur);
    free(ag->q_scratch);
    dlsched_config_free(ag->cfg);
    pthread_mutex_destroy(&ag->lock);
    free(ag);
}

/* ---- act and observe ----------------------------------------------------- */

DLSCHED_API int dlsched_act(dlsched_agent *ag, const dlsched_state_t *st, uint32_t flags,
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

    dls_lock(ag);
    ag->ops->encode(ag->impl, st->features, ag->key_cur);
    const float *q = ag->ops->q(ag->impl, ag->key_cur, ag->q_scratch);
    double eps = dls_epsilon(ag->eps_start, ag->eps_end, ag->eps_decay, ag->tickets_issued);
    dls_choice c;
    dls_choose(greedy ? -1 : ag->explore_mode, eps, ag->temperature, q, mask, ag->na, st->hint,
               &ag->rng, &c);
    dlsched_decision_t d;
    d.action = c.action;
    d.flags = c.flags;
    d.probability = c.probability;
    d.value = q[c.action];
    d.ticket = 0;
    if (!greedy) {
        if (ag->tickets.n_free == 0)
            dls_expire_oldest(ag);
        uint32_t slot;
        d.ticket = dls_tickets_issue(&ag->tickets, c.action, &slot);
        memcpy(dls_tickets_key(&ag->tickets, slot), ag->key_cur, ag->key_bytes);
        ag->tickets_issued++;
    }
    d.model_version = ag->train_steps;
    ag->decisions++;
    ag->explored += (c.flags & DLSCHED_DECISION_EXPLORED) != 0;
    ag->hinted += (c.flags & DLSCHED_DECISION_HINT) != 0;
    dls_unlock(ag);
    *out = d;
    return DLSCHED_OK;
}

DLSCHED_API int dlsched_observe(dlsched_agent *ag, uint64_t ticket, float reward,
                                const dlsched_state_t *next, uint32_t flags)
{
    DLS_FAIL_IF(!ag, DLSCHED_EINVAL, "agent is NULL");
    DLS_TRY(dls_check_reward(reward));
    DLS_TRY(dls_check_next(ag, next, flags));
    int terminal = (flags & DLSCHED_OBS_TERMINAL) != 0;

    dls_lock(ag);
    uint32_t slot = dls_tickets_find(&ag->tickets, ticket);
    if (slot == DLS_NO_SLOT) {
        dls_unlock(ag);
        return dls_fail(DLSCHED_ETICKET,
                        "ticket %llu is not pending (unknown, expired or already observed)",
                        (unsigned long long)ticket);
    }
    if (!terminal)
        ag->ops->encode(ag->impl, next->features, ag->key_next);
    dls_transition t = {dls_tickets_key(&ag->tickets, slot), dls_tickets_action(&ag->tickets, slot), reward,
                        terminal ? NULL : ag->key_next,
                        (!terminal && next->n_mask) ? next->mask : NULL, (unsigned)terminal,
                        (flags & DLSCHED_OBS_TRUNCATED) != 0};
    dls_learn(ag, &t);
    dls_tickets_release(&ag->tickets, slot);
    ag->observed++;
    dls_count_reward(ag, reward);
    dls_unlock(ag);
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

    dls_lock(ag);
    ag->ops->encode(ag->impl, st->features, ag->key_cur);
    if (!terminal)
        ag->ops->encode(ag->impl, next->features, ag->key_next);
    dls_transition t = {ag->key_cur, action, reward, terminal ? NULL : ag->key_next,
                        (!terminal && next->n_mask) ? next->mask : NULL, (unsigned)terminal,
                        (flags & DLSCHED_OBS_TRUNCATED) != 0};
    dls_learn(ag, &t);
    ag->transitions++;
    dls_count_reward(ag, reward);
    dls_unlock(ag);
    return DLSCHED_OK;
}

DLSCHED_API int dlsched_train(dlsched_agent *ag, uint32_t steps)
{
    DLS_FAIL_IF(!ag, DLSCHED_EINVAL, "agent is NULL");
    DLS_FAIL_IF(ag->replay == 0, DLSCHED_ECONFIG,
                "dlsched_train needs a replay buffer but key 'replay' is 0");
    uint32_t left = steps;
    while (left > 0) {
        uint32_t chunk = left < ag->ops->train_chunk ? left : ag->ops->train_chunk;
        dls_lock(ag);
        double loss = ag->last_loss;
        uint64_t done = ag->ops->train(ag->impl, &ag->rng, chunk, &loss);
        ag->train_steps += done;
        ag->last_loss = loss;
        dls_unlock(ag);
        if (done == 0)
            break;
        left -= chunk;
        /* let the acting threads in before the next chunk (bounded: a
           waiter may be slow to wake) */
        for (int spins = 0; spins < 64 && atomic_load_explicit(&ag->waiting, memory_order_relaxed);
             spins++)
            sched_yield();
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
    dls_lock(ag);
    ag->ops->encode(ag->impl, st->features, ag->key_cur);
    const float *q = ag->ops->q(ag->impl, ag->key_cur, ag->q_scratch);
    for (uint32_t a = 0; a < n; a++)
        out[a] = (st->n_mask && !st->mask[a]) ? -INFINITY : q[a];
    dls_unlock(ag);
    return DLSCHED_OK;
}

/* ---- statistics ---------------------------------------------------------- */

DLSCHED_API int dlsched_stats(dlsched_agent *ag, dlsched_stats_t *out, size_t size)
{
    DLS_FAIL_IF(!ag, DLSCHED_EINVAL, "agent is NULL");
    DLS_FAIL_IF(!out, DLSCHED_EINVAL, "out is NULL");
    DLS_FAIL_IF(size < sizeof(uint32_t), DLSCHED_EINVAL,
                "size %zu is smaller than the size member (pass sizeof(dlsched_stats_t))", size);
    dlsched_stats_t s;
    memset(&s, 0, sizeof s);
    dls_lock(ag);
    s.backend = DLSCHED_BACKEND_CPU;
    s.decisions = ag->decisions;
    s.explored = ag->explored;
    s.hinted = ag->hinted;
    s.tickets_issued = ag->tickets_issued;
    s.observed = ag->observed;
    s.tickets_pending = dls_tickets_pending(&ag->tickets);
    s.tickets_expired = ag->expired;
    s.transitions = ag->transitions;
    s.transitions_stored = ag->ops->stored(ag->impl);
    s.train_steps = ag->train_steps;
    s.model_version = ag->train_steps;
    s.memory_bytes = ag->bytes;
    s.epsilon = ag->explore_mode == DLS_EXPLORE_SOFTMAX
                    ? 0.0
                    : dls_epsilon(ag->eps_start, ag->eps_end, ag->eps_decay, ag->tickets_issued);
    s.last_loss = ag->last_loss;
    s.mean_reward = ag->mean_reward;
    dls_unlock(ag);
    size_t n = size < sizeof s ? size : sizeof s;
    s.size = (uint32_t)n;
    memcpy(out, &s, n);
    return DLSCHED_OK;
}

DLSCHED_API int dlsched_backend_available(const char *device)
{
    if (!device)
        return 0;
    return strcmp(device, "cpu") == 0;
}
