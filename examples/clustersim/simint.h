/*
 * simint.h - what the units of dlsched-sim's engine share (sim.h is the
 * simulator's interface): a run's state, its requests, servers and events,
 * and each unit's functions
 *   cluster.c     the servers and requests, the latency model's prediction
 *   heuristics.c  greedy and the fixed-variant heuristics, policy names
 *   adapters.c    the learned policies: features, action mask, agent
 *   engine.c      the event loop, accounting and results
 * The arrival processes are behind arrivals.h.
 */
#ifndef DLSCHED_SIM_SIMINT_H
#define DLSCHED_SIM_SIMINT_H

#include "rng.h"
#include "sim.h"

#include <dlsched.h>

#include <stddef.h>
#include <stdint.h>

/* ---- the cluster and a run ------------------------------------------------ */
enum { PH_QUEUED, PH_PREFILL, PH_DECODE };

typedef struct {
    double arrive, in, out, slo, prefill_ms, decode_ms, pf_end, finish_d;
    uint64_t id, ticket;
    int server, variant, phase, next;
    int slot; /* index in its server's active[] */
    /* the KV model: the prompt's prefix blocks (kvcache.c, req_block_key),
       the leading ones found in the cache at admission, the KV the request
       holds outside the prefix cache (kilobytes) */
    const uint64_t *hash; /* a trace's hash_ids, or NULL (generated) */
    uint64_t salt;        /* per stream and trace pass */
    int n_blocks;         /* full prefix blocks of the prompt */
    int n_shared;         /* the first n_shared may be hits; the rest never are */
    int tail;             /* blocks of the rest it cached as one entry */
    int group;            /* shared-prefix group (-1: none) */
    int group_blocks;     /* its blocks */
    int hits;             /* found in the cache at admission */
    int cached;           /* leading blocks it pins (hits, then after its prefill all) */
    double kv_priv;
    uint64_t *keys;       /* its blocks' keys (its variant), then the entries it
                             pins (int32 after the keys); NULL until admitted */
} req;

/* an LRU set of prefix-block keys (kvcache.c): the servers' prefix caches
   (entries pinned by a running request, ref > 0, are off the LRU list) and
   the gateway's index of what it routed where (every entry on the list) */
typedef struct {
    uint64_t key;
    double kb;
    int32_t ref, prev, next;
    uint32_t slot;        /* its place in the table; PC_ANON: none */
    double unit;          /* PC_ANON: the kilobytes of one of its blocks */
} pc_entry;
#define PC_ANON UINT32_MAX /* blocks nobody can hit, as one entry off the table */
typedef struct {
    uint64_t key;
    int32_t i;            /* the entry; -1 empty */
} pc_slot;
typedef struct {
    pc_entry *e;
    pc_slot *table;       /* open addressing, linear probing, keys inline */
    uint32_t mask;
    int32_t n, cap, free_head;
    int32_t head, tail;   /* the LRU list: head is the oldest */
    double lru_kb;        /* kilobytes of the entries on the list */
} pcache;

typedef struct {
    int type, slots, n, qhead, qtail, qlen;
    int active[SIM_MAX_SLOTS];
    double d[SIM_MAX_VAR];  /* per-variant virtual decode clocks (solo ms) */
    double tlast, busy;     /* busy: integral of n dt */
    double work_q;          /* solo ms of the queued requests */
    double ewma;            /* recent latency / SLO */
    uint32_t ver;
    /* the KV model */
    double kv_cap, kv_used, kv_pinned; /* kilobytes: capacity, held, held by running requests */
    double pf_free;         /* the prefill lane is free from then (ms) */
    double pf_q;            /* solo prefill ms of the queued requests */
    pcache pc;              /* the prefix cache */
    int snap_wait, snap_run; /* the signals as last scraped */
    double snap_kv;
} server;

enum { EV_ARRIVAL, EV_PREFILL, EV_DECODE };
typedef struct {
    double t;
    uint64_t seq;
    uint32_t kind, a, b;
} event;

typedef struct sim_run sim_run;
struct sim_run {
    const sim_scenario *sc;
    const sim_options *opt;
    server srv[SIM_MAX_SERVERS];
    int ns;
    req *rq;
    int rq_cap, free_head;
    event *heap;
    size_t nh, heap_cap;
    uint64_t seq, next_id;
    double now;
    rng r;
    /* policy */
    const sim_policy_spec *pol;
    dlsched_agent *agent;
    int learning;   /* warm-up: tickets kept, outcomes observed */
    int arrivals_over; /* the stream ended: the cluster drains */
    int rr;
    double rate_est, rate_t; /* arrivals per second, EWMA (tau 5 s) */
    float *feat;
    uint8_t *mask; /* the learned policy's action mask, the same for every decision */
    int n_feat, n_act;
    int by_class;  /* actions are (GPU type, variant); else (server, variant) */
    /* Q-learning across decisions: a transition's next state is the state
       of the next decision. nfeat/nmask: per request slot, that state once
       known; last: the request decided last (its next state is not known
       yet); pend_*: its outcome when it completed before the next arrival */
    float *nfeat;
    uint8_t *nmask, *has_next;
    int last;
    int pend;
    uint64_t pend_ticket;
    float pend_reward;
    /* accounting */
    uint64_t done, met, submitted;
    double acc_met, acc_sum;
    float *lat;
    size_t nlat, lat_cap;
    double t_first, t_last_arrival, t_end;
    uint64_t vcount[SIM_MAX_VAR];
    size_t nwin;
    double *win_n, *win_met, *win_rew;
    double decide_ns;
    uint64_t decide_n;
    int failed;
    sim_err *err;
    /* the KV model */
    double block_kb[SIM_MAX_VAR]; /* one KV block of variant v */
    int pb_blocks;                /* KV blocks in a prefix block */
    double scrape_next;
    uint64_t hit_tokens, prompt_tokens;
    uint64_t events;
    /* the gateway's own state: an index of what it routed where, the
       no-hit LRU (the order of the servers' last cold request) and the
       prefix-match fraction of the request being decided */
    int gw_on;
    pcache gw_index[SIM_MAX_SERVERS];
    int gw_index_cap;
    uint64_t gw_clock, gw_cold_at[SIM_MAX_SERVERS];
    double restart_ms, next_restart; /* warm-up restarts (ms; 0: none) */
    double gw_match[SIM_MAX_SERVERS];
    int gw_cold;
    float *ttft;
    size_t nttft, ttft_cap;
};

/* ---- engine.c ---- */
/* the run fails with this message (the first failure's stays) */
void sim_run_fail(sim_run *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_heap_push(sim_run *s, double t, uint32_t kind, uint32_t a, uint32_t b);

/* ---- cluster.c: servers and requests ---- */
/* a free request slot (-1: out of memory, the run failed) */
int sim_req_alloc(sim_run *s);
/* returns request ri's slot to the free list */
void sim_req_free(sim_run *s, int ri);
/* decode slow-down of variant v on GPU type g at batch n */
double sim_slow(const sim_scenario *sc, int v, int g, int n);
/* advances sv's busy integral and decode clocks to now */
void sim_srv_advance(sim_run *s, server *sv);
/* the next decode completion of server si, scheduled as an event */
void sim_srv_reschedule(sim_run *s, int si);
/* request ri starts its prefill on server si */
void sim_srv_start(sim_run *s, int si, int ri);
/* request ri (server and variant decided) starts on its server or queues */
void sim_srv_submit(sim_run *s, int ri);
/* request ri's prefill ended: it decodes */
void sim_srv_prefilled(sim_run *s, int ri);
/* the request of server si whose decode is due now (-1: none) */
int sim_srv_due(sim_run *s, int si);
/* request ri leaves server si's active set */
void sim_srv_remove(sim_run *s, int si, int ri);
/* starts queued requests while server si has free slots */
void sim_srv_fill(sim_run *s, int si);
/* solo milliseconds of work the server still has (active + queued) */
double sim_srv_work(const sim_run *s, const server *sv);

/* ---- cluster.c: the latency model's prediction (greedy, SED, features) ---- */
void sim_solo_times(const sim_scenario *sc, int v, int g, double in, double out, double *pf,
                    double *dec);
double sim_predict(const sim_run *s, int si, int v, double in, double out, double work);
/* some GPU type loads variant v */
int sim_variant_loaded(const sim_scenario *sc, int v);
/* server si loads variant v */
int sim_loaded(const sim_run *s, int si, int v);
double sim_slo_of(const sim_scenario *sc, double out);

/* ---- kvcache.c: the KV model and the gateway's scorers ---- */
int pc_init(pcache *pc, int cap);
void pc_free(pcache *pc);
void pc_clear(pcache *pc);
int32_t pc_find(const pcache *pc, uint64_t key);
/* a new entry (ref 0, off the list); -1: out of memory */
int32_t pc_insert(pcache *pc, uint64_t key, double kb);
void pc_remove(pcache *pc, int32_t i);
void pc_lru_push(pcache *pc, int32_t i);  /* at the newest end */
void pc_lru_unlink(pcache *pc, int32_t i);
/* the key of request r's prefix block k for variant v */
uint64_t req_block_key(const req *r, int k, int v);
/* sets up the servers' caches (sc->kv); 0 or -1 (the run failed) */
int sim_kv_init(sim_run *s);
void sim_kv_reset(sim_run *s);
void sim_kv_free(sim_run *s);
/* admits request ri on server si if its KV blocks fit (pins its prefix
   hits, evicts unpinned cached blocks as needed): 1 admitted, 0 not now */
int sim_kv_admit(sim_run *s, int si, int ri);
/* ri's prefill ended: its prompt's blocks join the prefix cache */
void sim_kv_prefilled(sim_run *s, int si, int ri);
/* a restart in the warm-up: the servers' prefix caches (what no running
   request pins) and the picker's index are emptied */
void sim_kv_flush(sim_run *s);
/* ri completed: its blocks are unpinned (cached) or freed */
void sim_kv_release(sim_run *s, int si, int ri);
/* refreshes the scraped signals if a scrape is due */
void sim_scrape(sim_run *s);
/* the gateway's prefix-match fractions (gw_match) and cold flag for r over
   the candidates */
void sim_gw_match(sim_run *s, const req *r, const int *cand, int nc);
/* the gateway's pick among cand (sim_gw_match called) */
int sim_gw_pick(sim_run *s, const int *cand, int nc);
/* its weighted totals per candidate (tests/sim/gw_scores.c compares them
   with the Python picker's dlsched.epp.scorers) */
void sim_gw_totals(const sim_run *s, const int *cand, int nc, double *tot);
/* the gateway records where r went (its index, the no-hit LRU) */
void sim_gw_routed(sim_run *s, const req *r);

/* ---- heuristics.c ---- */
void sim_pick_greedy(const sim_run *s, double in, double out, const double *work, int *so,
                     int *vo);
int sim_pick_heuristic(sim_run *s, int kind, int v, double in, double out, const double *work);
/* the KV model's heuristics (fewest-waiting, least-kv, gateway) for r; v < 0:
   every server, each with the one variant it loads */
int sim_pick_kv(sim_run *s, int kind, int v, const req *r);
/* the variant a pool policy (variant -1) runs on server si */
int sim_server_variant(const sim_run *s, int si);
/* every GPU type loads exactly one variant: a pool policy may route over
   all servers */
int sim_one_variant_each(const sim_scenario *sc);

/* ---- incumbent.c ---- */
/* sc->incumbent (not "auto") as a policy: a heuristic, else an error */
int sim_parse_incumbent(const sim_scenario *sc, sim_policy_spec *p, sim_err *err);
/* ---- adapters.c ---- */
/* a learned policy's agent, features and action mask */
int sim_make_agent(sim_run *s, sim_err *err);
/* the learned policy's decision for r: server, variant and ticket */
int sim_decide_learned(sim_run *s, req *r, const double *work);

#endif
