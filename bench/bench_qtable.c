/*
 * bench_qtable.c - act latency and observe throughput of algo=qtable
 *
 * Two tables, single thread:
 *   small  4 features x 8 bins x 8 actions   (4096 states, 128 KiB)
 *   large  6 features x 10 bins x 8 actions  (1e6 states, 32 MB)
 *
 * Each library figure sits next to a reference measured in the same run:
 * a bare C loop doing the same arithmetic without the library (no input
 * checks, no lock, no tickets, no exploration). Lines carry value,
 * reference and ratio = value / reference.
 *
 * States: a random walk (each feature moves by at most +-WALK_STEP per
 * request, reflected into [0, 1)), so consecutive requests hit nearby
 * cells like a real server's load; for the large table also uniform random
 * states (every request a random cell: the cache-miss case).
 *
 * Act latency: every call timed alone with a clock_gettime pair, minus the
 * median cost of an empty pair measured in this run (reported), plus a
 * cross-check timed as batches of 32 calls. While acting, each ticket is
 * observed (untimed) ACT_LAG decisions later, as a server with ACT_LAG
 * requests in flight would, so the tickets never fill up. The reference
 * does the same with its own untimed update.
 *
 * Observe throughput: ticket_capacity tickets are issued by dlsched_act
 * (untimed), then all are observed in issue order (timed) with the next
 * state and flags 0 (bootstrapping from next). observe_transition is timed
 * on the same transitions. Median over rounds; library and reference
 * rounds alternate so that noise hits both.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sched.h>

#include <dlsched.h>

#include "bench.h"

#define WALK_STEP 0.03        /* per feature per request */
#define ACT_RING (1u << 16)   /* states cycled through by the act benchmark */
#define ACT_WARMUP 50000u     /* > epsilon_decay_steps: epsilon at its end value */
#define ACT_SAMPLES 1000000u  /* single-call timings per variant */
#define ACT_BATCH 32u
#define ACT_LAG 64u           /* requests in flight while acting */
#define OBS_N 65536u          /* tickets per round = the default ticket_capacity */
#define OBS_ROUNDS 15
#define N_ACTIONS 8u

#define TARGET_ACT_P50_NS 100.0

typedef struct table_spec {
    const char *name;
    uint32_t nf, bins, na;
    double observe_target_mps;
} table_spec;

typedef struct states {
    float *x; /* n rows of nf features */
    size_t n;
    uint32_t nf;
    const char *kind; /* "random walk" or "uniform random" */
} states;

static bench_machine g_machine;
static uint64_t g_clock_ns;
static volatile int32_t g_sink;

static void die(const char *what, int rc)
{
    bench_die("bench_qtable", what, rc, dlsched_last_error());
}

static void *xmalloc(size_t n)
{
    return bench_xmalloc("bench_qtable", n);
}

static void gen_states(states *s, size_t n, uint32_t nf, int walk, uint64_t seed)
{
    bench_rng r = {seed};
    s->x = xmalloc(n * nf * sizeof(float));
    s->n = n;
    s->nf = nf;
    s->kind = walk ? "random walk" : "uniform random";
    for (uint32_t f = 0; f < nf; f++)
        s->x[f] = (float)bench_rng_uniform(&r);
    for (size_t i = 1; i < n; i++) {
        for (uint32_t f = 0; f < nf; f++) {
            double v;
            if (walk) {
                v = s->x[(i - 1) * nf + f] + WALK_STEP * (2 * bench_rng_uniform(&r) - 1);
                if (v < 0)
                    v = -v;
                if (v >= 1)
                    v = 2 - v - 1e-6;
            } else {
                v = bench_rng_uniform(&r);
            }
            s->x[i * nf + f] = (float)v;
        }
    }
}

static inline const float *row(const states *s, size_t i)
{
    return s->x + (i % s->n) * s->nf;
}

static inline dlsched_state_t mkstate(const float *x, uint32_t nf)
{
    dlsched_state_t st = {x, nf, 0, NULL, -1, 0};
    return st;
}

/* ---- the reference: the same arithmetic in bare C ------------------------ */

typedef struct ref_table {
    uint32_t nf, na, bins;
    float low, scale;
    uint64_t stride[16];
    float *q;
    float lr, gamma;
} ref_table;

static void ref_init(ref_table *t, const table_spec *sp)
{
    t->nf = sp->nf;
    t->na = sp->na;
    t->bins = sp->bins;
    t->low = 0.0f;
    t->scale = (float)sp->bins; /* feature range [0, 1) */
    uint64_t n = 1;
    for (uint32_t i = 0; i < sp->nf; i++) {
        t->stride[i] = n;
        n *= sp->bins;
    }
    t->q = xmalloc(n * sp->na * sizeof(float));
    /* distinct values, so argmax has a real winner (no tie shortcut) */
    bench_rng r = {99};
    for (uint64_t i = 0; i < n * sp->na; i++)
        t->q[i] = (float)-bench_rng_uniform(&r);
    t->lr = 0.1f;
    t->gamma = 0.99f;
}

static inline uint64_t ref_encode(const ref_table *t, const float *x)
{
    uint64_t idx = 0;
    for (uint32_t i = 0; i < t->nf; i++) {
        float f = (x[i] - t->low) * t->scale;
        uint32_t b = !(f >= 1.0f) ? 0 : f >= (float)t->bins ? t->bins - 1 : (uint32_t)f;
        idx += b * t->stride[i];
    }
    return idx;
}

static inline int32_t ref_argmax(const ref_table *t, uint64_t s)
{
    const float *q = t->q + s * t->na;
    int32_t best = 0;
    for (uint32_t a = 1; a < t->na; a++)
        if (q[a] > q[best])
            best = (int32_t)a;
    return best;
}

static inline void ref_update(ref_table *t, uint64_t s, int32_t a, float r, uint64_t s2)
{
    const float *q2 = t->q + s2 * t->na;
    float best = q2[0];
    for (uint32_t b = 1; b < t->na; b++)
        best = q2[b] > best ? q2[b] : best;
    float *qa = t->q + s * t->na + a;
    *qa += t->lr * (r + t->gamma * best - *qa);
}

/* ---- output ---------------------------------------------------------------- */

static void line_head(bench_line *l, const char *bench, const table_spec *sp, const states *s)
{
    char cfg[96];
    snprintf(cfg, sizeof cfg, "%uf x %u bins x %u actions", sp->nf, sp->bins, sp->na);
    bench_line_begin(l);
    bench_line_str(l, "bench", bench);
    bench_line_str(l, "table", sp->name);
    bench_line_str(l, "config", cfg);
    bench_line_str(l, "states", s->kind);
}

static void line_tail(bench_line *l)
{
    bench_line_str(l, "threads", "1");
    bench_line_env(l, &g_machine);
    bench_line_end(l);
}

static void print_latency(const table_spec *sp, const states *s, const char *stat, double v,
                          double ref, const char *timing, int with_target)
{
    bench_line l;
    line_head(&l, "qtable_act_latency", sp, s);
    bench_line_str(&l, "stat", stat);
    bench_line_num(&l, "value", v);
    bench_line_str(&l, "unit", "ns");
    bench_line_num(&l, "reference", ref);
    bench_line_str(&l, "reference_name", "bare C discretise+argmax, same states");
    bench_line_num(&l, "ratio", ref > 0 ? v / ref : NAN);
    bench_line_str(&l, "timing", timing);
    bench_line_num(&l, "clock_overhead_ns", (double)g_clock_ns);
    if (with_target) {
        bench_line_str(&l, "target", "<=100");
        bench_line_bool(&l, "met", v <= TARGET_ACT_P50_NS);
    }
    line_tail(&l);
}

/* ---- act latency ----------------------------------------------------------- */

static dlsched_agent *new_agent(const table_spec *sp, uint32_t ticket_capacity)
{
    char spec[256];
    snprintf(spec, sizeof spec,
             "algo=qtable n_features=%u n_actions=%u bins=%u feature_low=0 feature_high=1 "
             "seed=7 ticket_capacity=%u",
             sp->nf, sp->na, sp->bins, ticket_capacity);
    return bench_agent("bench_qtable", spec);
}

static inline float reward_of(size_t i)
{
    return -(float)((i * 2654435761u) % 1000u) * 0.001f;
}

/* observe the ticket issued at request j, with the state of request j + 1 */
static inline void lib_observe_lagged(dlsched_agent *ag, const states *s, uint64_t ticket,
                                      size_t j)
{
    dlsched_state_t nx = mkstate(row(s, j + 1), s->nf);
    int rc = dlsched_observe(ag, ticket, reward_of(j), &nx, 0);
    if (rc)
        die("dlsched_observe", rc);
}

static void bench_act(const table_spec *sp, const states *s)
{
    uint64_t *lat = xmalloc(ACT_SAMPLES * sizeof *lat);
    uint64_t ring[ACT_LAG];
    const size_t total = ACT_WARMUP + ACT_SAMPLES;
    double lib_p50, lib_p99, lib_mean, ref_p50, ref_p99, ref_mean;

    /* library, one call per timing */
    dlsched_agent *ag = new_agent(sp, 65536);
    for (size_t i = 0; i < total; i++) {
        dlsched_state_t st = mkstate(row(s, i), s->nf);
        dlsched_decision_t d;
        uint64_t t0 = bench_now_ns();
        BENCH_BARRIER();
        int rc = dlsched_act(ag, &st, 0, &d);
        BENCH_BARRIER();
        uint64_t t1 = bench_now_ns();
        if (rc)
            die("dlsched_act", rc);
        if (i >= ACT_WARMUP) {
            uint64_t dt = t1 - t0;
            lat[i - ACT_WARMUP] = dt > g_clock_ns ? dt - g_clock_ns : 0;
        }
        if (i >= ACT_LAG)
            lib_observe_lagged(ag, s, ring[i % ACT_LAG], i - ACT_LAG);
        ring[i % ACT_LAG] = d.ticket;
    }
    bench_sort_u64(lat, ACT_SAMPLES);
    lib_p50 = (double)bench_percentile(lat, ACT_SAMPLES, 50);
    lib_p99 = (double)bench_percentile(lat, ACT_SAMPLES, 99);
    dlsched_agent_free(ag);

    /* library, batches of ACT_BATCH calls (same agent setup, fresh agent) */
    ag = new_agent(sp, 65536);
    uint64_t batch_ns = 0, batches = 0;
    uint64_t tickets[ACT_BATCH];
    for (size_t i = 0; i < total; i += ACT_BATCH) {
        dlsched_state_t st[ACT_BATCH];
        dlsched_decision_t d[ACT_BATCH];
        for (uint32_t k = 0; k < ACT_BATCH; k++)
            st[k] = mkstate(row(s, i + k), s->nf);
        uint64_t t0 = bench_now_ns();
        BENCH_BARRIER();
        for (uint32_t k = 0; k < ACT_BATCH; k++) {
            int rc = dlsched_act(ag, &st[k], 0, &d[k]);
            if (rc)
                die("dlsched_act", rc);
        }
        BENCH_BARRIER();
        uint64_t t1 = bench_now_ns();
        if (i >= ACT_WARMUP) {
            batch_ns += t1 - t0;
            batches++;
        }
        for (uint32_t k = 0; k < ACT_BATCH; k++)
            tickets[k] = d[k].ticket;
        for (uint32_t k = 0; k < ACT_BATCH; k++)
            lib_observe_lagged(ag, s, tickets[k], i + k);
    }
    lib_mean = (double)batch_ns / (double)(batches * ACT_BATCH);
    dlsched_agent_free(ag);

    /* reference, one call per timing */
    ref_table rt;
    ref_init(&rt, sp);
    uint64_t rs[ACT_LAG];
    int32_t ra[ACT_LAG];
    for (size_t i = 0; i < total; i++) {
        const float *x = row(s, i);
        uint64_t t0 = bench_now_ns();
        BENCH_BARRIER();
        uint64_t idx = ref_encode(&rt, x);
        int32_t a = ref_argmax(&rt, idx);
        g_sink = a;
        BENCH_BARRIER();
        uint64_t t1 = bench_now_ns();
        if (i >= ACT_WARMUP) {
            uint64_t dt = t1 - t0;
            lat[i - ACT_WARMUP] = dt > g_clock_ns ? dt - g_clock_ns : 0;
        }
        if (i >= ACT_LAG) {
            size_t j = i - ACT_LAG;
            ref_update(&rt, rs[i % ACT_LAG], ra[i % ACT_LAG], reward_of(j),
                       ref_encode(&rt, row(s, j + 1)));
        }
        rs[i % ACT_LAG] = idx;
        ra[i % ACT_LAG] = a;
    }
    bench_sort_u64(lat, ACT_SAMPLES);
    ref_p50 = (double)bench_percentile(lat, ACT_SAMPLES, 50);
    ref_p99 = (double)bench_percentile(lat, ACT_SAMPLES, 99);

    /* reference, batches */
    batch_ns = 0;
    batches = 0;
    for (size_t i = 0; i < total; i += ACT_BATCH) {
        uint64_t bs[ACT_BATCH];
        int32_t ba[ACT_BATCH];
        uint64_t t0 = bench_now_ns();
        BENCH_BARRIER();
        for (uint32_t k = 0; k < ACT_BATCH; k++) {
            bs[k] = ref_encode(&rt, row(s, i + k));
            ba[k] = ref_argmax(&rt, bs[k]);
            BENCH_BARRIER(); /* one decision at a time, as act is called */
        }
        BENCH_BARRIER();
        uint64_t t1 = bench_now_ns();
        if (i >= ACT_WARMUP) {
            batch_ns += t1 - t0;
            batches++;
        }
        for (uint32_t k = 0; k < ACT_BATCH; k++)
            ref_update(&rt, bs[k], ba[k], reward_of(i + k), ref_encode(&rt, row(s, i + k + 1)));
    }
    ref_mean = (double)batch_ns / (double)(batches * ACT_BATCH);
    free(rt.q);
    free(lat);

    const char *single = "each call timed alone; median empty clock_gettime pair subtracted";
    print_latency(sp, s, "p50", lib_p50, ref_p50, single, 1);
    print_latency(sp, s, "p99", lib_p99, ref_p99, single, 0);
    print_latency(sp, s, "mean", lib_mean, ref_mean, "batches of 32 calls, total / 32", 0);
}

/* ---- observe throughput ---------------------------------------------------- */

static void print_throughput(const table_spec *sp, const states *s, const char *bench,
                             const char *ref_name, double mps, double ref_mps, int with_target)
{
    bench_line l;
    line_head(&l, bench, sp, s);
    bench_line_str(&l, "stat", "median");
    bench_line_num(&l, "value", mps);
    bench_line_str(&l, "unit", "M/s");
    bench_line_num(&l, "reference", ref_mps);
    bench_line_str(&l, "reference_name", ref_name);
    bench_line_num(&l, "ratio", mps / ref_mps);
    bench_line_num(&l, "ns_per_call", 1e3 / mps);
    char timing[128];
    snprintf(timing, sizeof timing,
             "%u calls in issue order timed as one run, median of %d rounds; flags 0 "
             "(bootstrap)",
             OBS_N, OBS_ROUNDS);
    bench_line_str(&l, "timing", timing);
    if (with_target) {
        char t[32];
        snprintf(t, sizeof t, ">=%g", sp->observe_target_mps);
        bench_line_str(&l, "target", t);
        bench_line_bool(&l, "met", mps >= sp->observe_target_mps);
    }
    line_tail(&l);
}

static void bench_observe(const table_spec *sp, const states *s)
{
    double obs[OBS_ROUNDS], obs_ref[OBS_ROUNDS], tr[OBS_ROUNDS], tr_ref[OBS_ROUNDS];
    uint64_t *tickets = xmalloc(OBS_N * sizeof *tickets);
    int32_t *actions = xmalloc(OBS_N * sizeof *actions);
    uint64_t *keys = xmalloc(OBS_N * sizeof *keys);
    dlsched_agent *ag = new_agent(sp, OBS_N);
    ref_table rt;
    ref_init(&rt, sp);

    /* warm-up round, not recorded: first touches, epsilon decay */
    for (int round = -1; round < OBS_ROUNDS; round++) {
        size_t base = (size_t)(round + 1) * OBS_N;
        /* issue OBS_N tickets, untimed */
        for (size_t i = 0; i < OBS_N; i++) {
            dlsched_state_t st = mkstate(row(s, base + i), s->nf);
            dlsched_decision_t d;
            int rc = dlsched_act(ag, &st, 0, &d);
            if (rc)
                die("dlsched_act", rc);
            tickets[i] = d.ticket;
            actions[i] = d.action;
        }
        /* library: observe them all */
        uint64_t t0 = bench_now_ns();
        for (size_t i = 0; i < OBS_N; i++) {
            dlsched_state_t nx = mkstate(row(s, base + i + 1), s->nf);
            int rc = dlsched_observe(ag, tickets[i], reward_of(base + i), &nx, 0);
            if (rc)
                die("dlsched_observe", rc);
        }
        uint64_t t1 = bench_now_ns();
        /* reference: the ticket's key was stored at act time, as the
           library's is; encode next, max over its row, update */
        for (size_t i = 0; i < OBS_N; i++)
            keys[i] = ref_encode(&rt, row(s, base + i));
        uint64_t t2 = bench_now_ns();
        for (size_t i = 0; i < OBS_N; i++) {
            ref_update(&rt, keys[i], actions[i], reward_of(base + i),
                       ref_encode(&rt, row(s, base + i + 1)));
            BENCH_BARRIER();
        }
        uint64_t t3 = bench_now_ns();
        /* library: observe_transition on the same transitions */
        for (size_t i = 0; i < OBS_N; i++) {
            dlsched_state_t st = mkstate(row(s, base + i), s->nf);
            dlsched_state_t nx = mkstate(row(s, base + i + 1), s->nf);
            int rc = dlsched_observe_transition(ag, &st, actions[i], reward_of(base + i), &nx, 0);
            if (rc)
                die("dlsched_observe_transition", rc);
        }
        uint64_t t4 = bench_now_ns();
        /* reference: encode both states, update */
        for (size_t i = 0; i < OBS_N; i++) {
            ref_update(&rt, ref_encode(&rt, row(s, base + i)), actions[i], reward_of(base + i),
                       ref_encode(&rt, row(s, base + i + 1)));
            BENCH_BARRIER();
        }
        uint64_t t5 = bench_now_ns();
        if (round < 0)
            continue;
        obs[round] = OBS_N * 1e3 / (double)(t1 - t0);
        obs_ref[round] = OBS_N * 1e3 / (double)(t3 - t2);
        tr[round] = OBS_N * 1e3 / (double)(t4 - t3);
        tr_ref[round] = OBS_N * 1e3 / (double)(t5 - t4);
    }
    dlsched_stats_t st;
    int rc = dlsched_stats(ag, &st, sizeof st);
    if (rc)
        die("dlsched_stats", rc);
    if (st.tickets_expired != 0 || st.tickets_pending != 0)
        fprintf(stderr, "bench_qtable: unexpected tickets: %llu expired, %llu pending\n",
                (unsigned long long)st.tickets_expired, (unsigned long long)st.tickets_pending);
    dlsched_agent_free(ag);
    free(rt.q);
    free(tickets);
    free(actions);
    free(keys);

    print_throughput(sp, s, "qtable_observe_throughput",
                     "bare C: stored s,a; discretise next; max over its row; one Bellman "
                     "update on a same-size float table",
                     bench_median(obs, OBS_ROUNDS), bench_median(obs_ref, OBS_ROUNDS), 1);
    print_throughput(sp, s, "qtable_observe_transition_throughput",
                     "bare C: discretise s and next; max over next's row; one Bellman update "
                     "on a same-size float table",
                     bench_median(tr, OBS_ROUNDS), bench_median(tr_ref, OBS_ROUNDS), 0);
}

/* ---- main ------------------------------------------------------------------ */

int main(void)
{
    bench_machine_read(&g_machine);

    int cpu = bench_pin_cpu();

    bench_line l;
    g_clock_ns = bench_header_begin(&l, "qtable_header");
    bench_line_num(&l, "pinned_cpu", cpu);
    bench_line_str(&l, "ratio", "value / reference (latency: >1 is slower; throughput: <1 "
                                "is slower)");
    bench_line_str(&l, "agent", "algo=qtable feature_low=0 feature_high=1 seed=7, defaults "
                                "otherwise (egreedy; lr 0.1; gamma 0.99; replay 0)");
    bench_line_num(&l, "walk_step", WALK_STEP);
    bench_line_num(&l, "act_in_flight", ACT_LAG);
    line_tail(&l);

    const table_spec tables[2] = {
        {"small", 4, 8, N_ACTIONS, 10.0},
        {"large", 6, 10, N_ACTIONS, 20.0},
    };
    for (int t = 0; t < 2; t++) {
        const table_spec *sp = &tables[t];
        states walk_act, walk_obs;
        gen_states(&walk_act, ACT_RING, sp->nf, 1, 1000 + (uint64_t)t);
        gen_states(&walk_obs, (size_t)(OBS_ROUNDS + 1) * OBS_N + 1, sp->nf, 1,
                   2000 + (uint64_t)t);
        bench_act(sp, &walk_act);
        bench_observe(sp, &walk_obs);
        free(walk_act.x);
        free(walk_obs.x);
        if (t == 1) {
            states uni_act, uni_obs;
            gen_states(&uni_act, ACT_RING, sp->nf, 0, 3000);
            gen_states(&uni_obs, (size_t)(OBS_ROUNDS + 1) * OBS_N + 1, sp->nf, 0, 4000);
            bench_act(sp, &uni_act);
            bench_observe(sp, &uni_obs);
            free(uni_act.x);
            free(uni_obs.x);
        }
    }
    return 0;
}
