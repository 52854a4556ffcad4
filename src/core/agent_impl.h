/* agent_impl.h - the agent's state, shared by agent.c and checkpoint.c */
#ifndef DLS_AGENT_IMPL_H
#define DLS_AGENT_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "backend.h"
#include "config.h"
#include "guard.h"
#include "rng.h"
#include "tickets.h"

/* mean_reward: exact mean over the first N rewards, then EMA with 1/N */
#define DLS_REWARD_HORIZON 1000
/* apprenticeship: agreement measured over this many hinted decisions */
#define DLS_APPRENTICE_WINDOW 1000
/* learner=thread: call contexts, staging shards and their capacity */
#define DLS_CTX 64
#define DLS_SHARDS 8
#define DLS_SHARD_CAP 4096
/* tickets expired by age per call (the rest expire on later calls) */
#define DLS_EXPIRE_BATCH 16
/* an idle learner sleeps until a transition is staged, or this long */
#define DLS_LEARNER_IDLE_NS 100000000L

/* the per-call state of learner=thread: scratch, keys and an RNG stream */
typedef struct dls_ctx {
    atomic_flag busy;
    uint32_t index;
    dls_rng rng;
    unsigned char *key, *key_next, *key_prev;
    float *scratch;
    /* tickets expired during one call: up to DLS_EXPIRE_BATCH by age, plus
       one at capacity */
    unsigned char *expired_keys;
    int32_t expired_actions[DLS_EXPIRE_BATCH + 1];
    uint64_t expired_versions[DLS_EXPIRE_BATCH + 1];
} dls_ctx;

/* transitions waiting for the learner; entry: header, key, next key, mask */
typedef struct dls_stage_hdr {
    int32_t action;
    float reward;
    uint32_t flags; /* DLS_STAGE_* */
    uint32_t pad;
} dls_stage_hdr;

enum { DLS_STAGE_TERMINAL = 1, DLS_STAGE_TRUNCATED = 2, DLS_STAGE_MASK = 4 };

typedef struct dls_shard {
    pthread_mutex_t mu;
    uint32_t count;
    unsigned char *buf;
} dls_shard;

/* completed transitions kept for dlsched_export_transitions (exchange.c):
   a ring of cap entries, each a header, key, next key and mask */
typedef struct dls_xhdr {
    uint64_t version; /* the model version that decided */
    int32_t action;
    float reward;
    uint32_t flags; /* DLS_STAGE_* */
    uint32_t pad;
} dls_xhdr;
typedef struct dls_xring {
    pthread_mutex_t mu;
    unsigned char *buf;
    size_t stride;
    uint32_t cap, head, count; /* oldest at head */
    uint64_t dropped;          /* overwritten since the last export */
} dls_xring;
struct dlsched_agent {
    pthread_mutex_t lock; /* the model */
    atomic_uint waiting;  /* callers blocked on it, so trainers step aside */
    pthread_mutex_t tmu;  /* tickets and statistics */
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
    dls_rng rng; /* inline: every draw; thread: the learner's */
    dls_tickets tickets;
    uint64_t timeout_ns;
    unsigned char *key_next; /* inline scratch: encoding of a next state */
    unsigned char *key_cur;  /* inline scratch: encoding of a current state */
    float *q_scratch;        /* inline scratch for q() */
    size_t bytes;
    /* learner=thread (and learner=none, which acts the same way but has no
       learner: learner_none) */
    int threaded, is_dqn, learner_none;
    /* exchange (exchange.c): the ring of completed transitions when
       exchange_capacity > 0, and learner=none's imported model version */
    dls_xring xr;
    atomic_uint_fast64_t imported_version;
    dls_ctx *ctx;      /* learner=thread: DLS_CTX call contexts */
    dls_ctx ictx;      /* learner=inline: the one context (expired tickets) */
    dls_shard *shards;
    size_t stage_stride;
    atomic_uint_fast64_t staged;
    pthread_t learner;
    int learner_started;
    atomic_int stop;
    pthread_mutex_t idle_mu;
    pthread_cond_t idle_cv;
    atomic_int sleeping; /* the learner waits on idle_cv */
    uint64_t stored_total, sampled_total, since_publish;
    uint64_t learning_starts, batch, publish_every;
    double replay_ratio;
    atomic_uint_fast64_t published_version;
    /* apprenticeship (under tmu, but for the flag) */
    atomic_int appr_active;
    uint64_t appr_left;
    double appr_agreement;
    unsigned char appr_window[DLS_APPRENTICE_WINDOW];
    uint32_t appr_pos, appr_fill, appr_agree;
    /* the safe-improvement guard (under tmu) */
    dls_guard guard;
    /* counters: under tmu, or atomic where written outside it */
    uint64_t tickets_issued, observed, expired, timed_out, n_rewards;
    double mean_reward;
    atomic_uint_fast64_t decisions, explored, hinted, transitions, train_steps, stored;
    _Atomic double last_loss;
    /* where learning runs (DLSCHED_BACKEND_*) and, on the CPU under
       device=auto, why not on the GPU */
    uint32_t backend;
    char backend_reason[sizeof(((dlsched_stats_t *)0)->backend_reason)];
};

/* the agent's lock (the model), for checkpoint.c */
void dls_agent_lock(dlsched_agent *ag);
void dls_agent_unlock(dlsched_agent *ag);
/* learner=thread: take every staged transition into the model (lock held) */
void dls_agent_drain(dlsched_agent *ag);
/* the model version decisions report now: learner=none's imported one,
   else the training steps */
uint64_t dls_agent_version(dlsched_agent *ag);
/* a reward into the agent's statistics (takes tmu) */
void dls_agent_count_reward(dlsched_agent *ag, float reward);
/* a completed transition: recorded for export (exchange_capacity), then
   learned as the learner mode says (inline: the agent's lock is held) */
void dls_agent_complete(dlsched_agent *ag, dls_ctx *c, const void *key, int32_t action,
                        float reward, const void *next_key, const uint8_t *next_mask,
                        unsigned terminal, unsigned truncated, uint64_t version);
/* exchange.c: the ring's setup and teardown, and recording one transition */
int dls_xring_init(dlsched_agent *ag, uint32_t cap);
void dls_xring_free(dlsched_agent *ag);
void dls_xring_record(dlsched_agent *ag, const void *key, int32_t action, float reward,
                      const void *next_key, const uint8_t *next_mask, unsigned terminal,
                      unsigned truncated, uint64_t version);

#endif
