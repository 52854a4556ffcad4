/*
 * bench_edge.c - what the agents of examples/edge.c cost an edge host: act
 * latency against the example's per-decision budgets, and the memory an
 * agent adds to the process
 *
 * The agents are the example's (4 features: stream, slack, temperature,
 * scene; 10 actions: 3 detector variants x 3 resolutions + skip), with the
 * example's specs:
 *   qtable  bins=4,10,5,2 (400 states x 10 actions), guard on
 *   dqn     4-32-32-10, normalize=1, device=cpu, guard on; learning_starts
 *           is huge so acting never trains
 * Every decision carries a hint (the example's incumbent), as the example's
 * learning loop does: flags 0, a ticket kept and observed (untimed)
 * ACT_LAG decisions later with the next state.
 *
 *   act latency  each dlsched_act() timed alone, the median cost of an
 *                empty clock_gettime pair subtracted; p50 and p99 next to a
 *                same-run reference: for qtable the bare discretise (per
 *                feature bins) + argmax over 10 values of a same-size float
 *                table; for dqn a bare chain of standardise + cblas_sgemv +
 *                bias + ReLU at 4->32->32->10 + argmax. Library and
 *                reference rounds alternate. Targets: the example's
 *                budgets, p99 <= 10 us (qtable) and <= 50 us (dqn).
 *   memory       resident set size (/proc/self/statm) before and after
 *                dlsched_agent_new() (the library touches every buffer
 *                there), next to stats.memory_bytes. Measured first, on a
 *                fresh heap, for two agents of each kind in turn: the first
 *                of the process also pays one-time costs (the library's
 *                CPU and BLAS probe, OpenBLAS's buffers for dqn).
 *
 * Finishes in a few seconds. Exits 0 whether or not a target is met.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <cblas.h>
#include <sched.h>

#include <dlsched.h>

#include "bench.h"

#define NF 4u
#define NA 10u
#define HW 32 /* hidden width of the dqn */
#define N_STATES 400u /* 4 x 10 x 5 x 2 */
#define HUGE_STARTS "4611686018427387904"

#define ACT_RING 4096u     /* states cycled through */
#define ACT_WARMUP 25000u  /* > epsilon_decay_steps: epsilon at its end value */
#define ACT_ROUNDS 10
#define ACT_PER_ROUND 20000u
#define ACT_LAG 16u        /* frames in flight */

#define BUDGET_QTABLE_NS 10000.0
#define BUDGET_DQN_NS 50000.0

/* the specs of examples/edge.c (learning keys that acting does not read
   are kept, so the agent is the same object) */
#define COMMON " n_features=4 n_actions=10 gamma=0.9 epsilon_start=1 epsilon_end=0.02 " \
               "epsilon_decay_steps=20000 guard=1 guard_block=30 ticket_capacity=256 " \
               "cpu_threads=1 seed=1"
#define SPEC_QTABLE "algo=qtable bins=4,10,5,2 feature_low=0,-0.25,0,0 " \
                    "feature_high=4,1,1,2 lr=0.1" COMMON
#define SPEC_DQN "algo=dqn device=cpu hidden=32,32 normalize=1 lr=0.001 batch=32 " \
                 "replay=20000 learning_starts=1000 train_every=4 target_update=500" COMMON
#define SPEC_DQN_BENCH SPEC_DQN " learning_starts=" HUGE_STARTS

static const uint32_t q_bins[NF] = {4, 10, 5, 2};
static const float q_low[NF] = {0, -0.25f, 0, 0}, q_high[NF] = {4, 1, 1, 2};

static bench_machine g_machine;
static uint64_t g_clock_ns;
static char g_date[32];
static volatile int32_t g_sink;

static void die(const char *what, int rc)
{
    bench_die("bench_edge", what, rc, dlsched_last_error());
}

static void *xmalloc(size_t n)
{
    return bench_xmalloc("bench_edge", n);
}

static void line_tail(bench_line *l)
{
    bench_line_str(l, "threads", "1");
    bench_line_str(l, "date", g_date);
    bench_line_env(l, &g_machine);
    bench_line_end(l);
}

/* states shaped like the example's: stream 0..3, slack -0.25..1,
   temperature 0..1, scene 0/1; hints 0..9 */
static float *gen_states(bench_rng *r, int32_t *hints)
{
    float *x = xmalloc((size_t)(ACT_RING + 1) * NF * sizeof *x);
    for (size_t i = 0; i <= ACT_RING; i++) {
        float *f = x + i * NF;
        f[0] = (float)(bench_rng_next(r) % 4);
        f[1] = (float)(-0.25 + 1.25 * bench_rng_uniform(r));
        f[2] = (float)bench_rng_uniform(r);
        f[3] = (float)(bench_rng_next(r) % 2);
        hints[i] = (int32_t)(bench_rng_next(r) % NA);
    }
    return x;
}

static inline uint64_t lap(uint64_t t0, uint64_t t1)
{
    uint64_t dt = t1 - t0;
    return dt > g_clock_ns ? dt - g_clock_ns : 0;
}

/* ---- the references ---------------------------------------------------- */

typedef struct ref_table {
    float *q;
} ref_table;

static inline int32_t ref_qtable_act(const ref_table *t, const float *x)
{
    uint32_t idx = 0, stride = 1;
    for (uint32_t i = 0; i < NF; i++) {
        float f = (x[i] - q_low[i]) * ((float)q_bins[i] / (q_high[i] - q_low[i]));
        uint32_t b = !(f >= 1.0f) ? 0 : f >= (float)q_bins[i] ? q_bins[i] - 1 : (uint32_t)f;
        idx += b * stride;
        stride *= q_bins[i];
    }
    const float *q = t->q + (size_t)idx * NA;
    int32_t best = 0;
    for (uint32_t a = 1; a < NA; a++)
        if (q[a] > q[best])
            best = (int32_t)a;
    return best;
}

typedef struct ref_mlp {
    float mean[NF], inv_std[NF];
    float *w1, *b1, *w2, *b2, *w3, *b3;
    float z[NF], h1[HW], h2[HW], q[NA];
} ref_mlp;

static float *rand_floats(size_t n, float lo, float hi, bench_rng *r)
{
    float *p = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = lo + (hi - lo) * (float)bench_rng_uniform(r);
    return p;
}

static void ref_mlp_init(ref_mlp *m, bench_rng *r)
{
    float a1 = sqrtf(6.0f / NF), a2 = sqrtf(6.0f / HW);
    for (uint32_t i = 0; i < NF; i++) {
        m->mean[i] = 0.5f;
        m->inv_std[i] = 2.0f;
    }
    m->w1 = rand_floats((size_t)HW * NF, -a1, a1, r);
    m->b1 = rand_floats(HW, -0.01f, 0.01f, r);
    m->w2 = rand_floats((size_t)HW * HW, -a2, a2, r);
    m->b2 = rand_floats(HW, -0.01f, 0.01f, r);
    m->w3 = rand_floats((size_t)NA * HW, -a2, a2, r);
    m->b3 = rand_floats(NA, -0.01f, 0.01f, r);
}

static void ref_mlp_free(ref_mlp *m)
{
    free(m->w1);
    free(m->b1);
    free(m->w2);
    free(m->b2);
    free(m->w3);
    free(m->b3);
}

/* y = relu?(W x + b), as bench_dqn's reference */
static inline void ref_dense(int out, int in, const float *w, const float *b, const float *x,
                             float *y, int relu)
{
    memcpy(y, b, (size_t)out * sizeof(float));
    cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, w, in, x, 1, 1.0f, y, 1);
    if (relu)
        for (int i = 0; i < out; i++)
            y[i] = y[i] > 0.0f ? y[i] : 0.0f;
}

static inline int32_t ref_mlp_act(ref_mlp *m, const float *x)
{
    for (uint32_t i = 0; i < NF; i++) /* z = (x - mean) / std */
        m->z[i] = (x[i] - m->mean[i]) * m->inv_std[i];
    ref_dense(HW, NF, m->w1, m->b1, m->z, m->h1, 1);
    ref_dense(HW, HW, m->w2, m->b2, m->h1, m->h2, 1);
    ref_dense(NA, HW, m->w3, m->b3, m->h2, m->q, 0);
    int32_t best = 0;
    for (uint32_t a = 1; a < NA; a++)
        if (m->q[a] > m->q[best])
            best = (int32_t)a;
    return best;
}

/* ---- 1. act latency ------------------------------------------------------ */

typedef struct act_case {
    const char *algo, *spec, *net, *reference_name;
    double budget_ns;
} act_case;

static void print_act(const act_case *c, const char *stat, double v, double ref, int target)
{
    bench_line l;
    bench_line_begin(&l);
    bench_line_str(&l, "bench", "edge_act_latency");
    bench_line_str(&l, "algo", c->algo);
    bench_line_str(&l, "agent", c->net);
    bench_line_str(&l, "variant", "flags 0 with a hint (guard on, ticket kept)");
    bench_line_str(&l, "stat", stat);
    bench_line_num(&l, "value", v);
    bench_line_str(&l, "unit", "ns");
    bench_line_num(&l, "reference", ref);
    bench_line_str(&l, "reference_name", c->reference_name);
    bench_line_num(&l, "ratio", ref > 0 ? v / ref : NAN);
    bench_line_str(&l, "timing", "each call timed alone; median empty clock_gettime pair "
                                 "subtracted; library and reference rounds alternate");
    bench_line_num(&l, "samples", (double)ACT_ROUNDS * ACT_PER_ROUND);
    bench_line_num(&l, "clock_overhead_ns", (double)g_clock_ns);
    if (target) {
        char t[64];
        snprintf(t, sizeof t, "p99 <= %.0f ns (examples/edge.c's budget)", c->budget_ns);
        bench_line_str(&l, "target", t);
        bench_line_bool(&l, "met", v <= c->budget_ns);
    }
    line_tail(&l);
}

static void bench_act(const act_case *c, int dqn)
{
    const size_t n = (size_t)ACT_ROUNDS * ACT_PER_ROUND;
    uint64_t *lib = xmalloc(n * sizeof *lib), *ref = xmalloc(n * sizeof *ref);
    int32_t *hints = xmalloc((ACT_RING + 1) * sizeof *hints);
    bench_rng r = {dqn ? 0x5EEDu : 0xED6Eu};
    float *xs = gen_states(&r, hints);
    ref_table rt = {NULL};
    ref_mlp m;
    if (dqn) {
        ref_mlp_init(&m, &r);
    } else {
        rt.q = xmalloc((size_t)N_STATES * NA * sizeof *rt.q);
        for (size_t i = 0; i < (size_t)N_STATES * NA; i++)
            rt.q[i] = (float)-bench_rng_uniform(&r); /* distinct: a real argmax */
    }

    dlsched_agent *ag = bench_agent("bench_edge", c->spec);
    uint64_t ring[ACT_LAG];
    size_t seq = 0;
    for (int round = -1; round < ACT_ROUNDS; round++) {
        size_t cnt = round < 0 ? ACT_WARMUP : ACT_PER_ROUND;
        uint64_t *out = round < 0 ? NULL : lib + (size_t)round * ACT_PER_ROUND;
        for (size_t i = 0; i < cnt; i++, seq++) {
            size_t k = seq % ACT_RING;
            dlsched_state_t st = {xs + k * NF, NF, 0, NULL, hints[k], 0};
            dlsched_decision_t d;
            uint64_t t0 = bench_now_ns();
            BENCH_BARRIER();
            int rc = dlsched_act(ag, &st, 0, &d);
            BENCH_BARRIER();
            uint64_t t1 = bench_now_ns();
            if (rc)
                die("dlsched_act", rc);
            if (out)
                out[i] = lap(t0, t1);
            if (seq >= ACT_LAG) { /* the frame ACT_LAG decisions ago completes */
                size_t j = (seq - ACT_LAG) % ACT_RING;
                dlsched_state_t nx = {xs + (j + 1) * NF, NF, 0, NULL, hints[j + 1], 0};
                float reward = (float)((j * 2654435761u) % 1000u) * 0.002f - 1.0f;
                rc = dlsched_observe(ag, ring[seq % ACT_LAG], reward, &nx, 0);
                if (rc)
                    die("dlsched_observe", rc);
            }
            ring[seq % ACT_LAG] = d.ticket;
        }
        out = round < 0 ? NULL : ref + (size_t)round * ACT_PER_ROUND;
        for (size_t i = 0; i < cnt; i++) {
            const float *x = xs + ((seq + i) % ACT_RING) * NF;
            uint64_t t0 = bench_now_ns();
            BENCH_BARRIER();
            g_sink = dqn ? ref_mlp_act(&m, x) : ref_qtable_act(&rt, x);
            BENCH_BARRIER();
            uint64_t t1 = bench_now_ns();
            if (out)
                out[i] = lap(t0, t1);
        }
    }
    dlsched_stats_t st;
    int rc = dlsched_stats(ag, &st, sizeof st);
    if (rc)
        die("dlsched_stats", rc);
    if (dqn && st.train_steps != 0)
        fprintf(stderr, "bench_edge: acting trained %llu steps (expected 0)\n",
                (unsigned long long)st.train_steps);
    dlsched_agent_free(ag);

    bench_sort_u64(lib, n);
    bench_sort_u64(ref, n);
    print_act(c, "p50", (double)bench_percentile(lib, n, 50),
              (double)bench_percentile(ref, n, 50), 0);
    print_act(c, "p99", (double)bench_percentile(lib, n, 99),
              (double)bench_percentile(ref, n, 99), 1);
    print_act(c, "max", (double)lib[n - 1], (double)ref[n - 1], 0);
    if (dqn)
        ref_mlp_free(&m);
    free(rt.q);
    free(xs);
    free(hints);
    free(lib);
    free(ref);
}

/* ---- 2. memory --------------------------------------------------------------- */

/* resident bytes of this process (/proc/self/statm, second field), or -1 */
static double rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    int ok = f && fscanf(f, "%lu %lu", &size, &resident) == 2;
    if (f)
        fclose(f);
    return ok ? (double)resident * (double)sysconf(_SC_PAGESIZE) : -1.0;
}

static void bench_memory(void)
{
    static const struct {
        const char *algo, *spec, *agent;
    } kinds[2] = {
        {"qtable", SPEC_QTABLE, "qtable 400 states x 10 actions (examples/edge.c)"},
        {"dqn", SPEC_DQN, "dqn 4-32-32-10, replay=20000 (examples/edge.c --dqn)"},
    };
    dlsched_agent *keep[4];
    int nkeep = 0;
    for (int k = 0; k < 2; k++) {
        for (int nth = 1; nth <= 2; nth++) {
            double before = rss_bytes();
            dlsched_agent *ag = bench_agent("bench_edge", kinds[k].spec);
            double after = rss_bytes();
            dlsched_stats_t st;
            int rc = dlsched_stats(ag, &st, sizeof st);
            if (rc)
                die("dlsched_stats", rc);
            keep[nkeep++] = ag; /* freed at the end: a freed agent's pages
                                   would serve the next one */
            bench_line l;
            bench_line_begin(&l);
            bench_line_str(&l, "bench", "edge_agent_memory");
            bench_line_str(&l, "algo", kinds[k].algo);
            bench_line_str(&l, "agent", kinds[k].agent);
            bench_line_str(&l, "which", nth == 1 ? "first agent of its kind in the process"
                                                 : "second agent of the same kind");
            bench_line_num(&l, "value", after - before);
            bench_line_str(&l, "unit", "bytes");
            bench_line_str(&l, "value_is", "RSS after dlsched_agent_new - RSS before "
                                           "(/proc/self/statm resident x page size)");
            bench_line_num(&l, "reference", (double)st.memory_bytes);
            bench_line_str(&l, "reference_name", "stats.memory_bytes of that agent");
            bench_line_num(&l, "ratio", st.memory_bytes ? (after - before) /
                                                              (double)st.memory_bytes
                                                        : NAN);
            bench_line_num(&l, "rss_before", before);
            bench_line_num(&l, "rss_after", after);
            line_tail(&l);
        }
    }
    while (nkeep > 0)
        dlsched_agent_free(keep[--nkeep]);
}

/* ---- main ---------------------------------------------------------------------- */

int main(void)
{
    bench_machine_read(&g_machine);
    bench_utc_date(g_date, sizeof g_date);
    openblas_set_num_threads(1);
    double rss_start = rss_bytes();
    int cpu = bench_pin_cpu();

    bench_line l;
    g_clock_ns = bench_header_begin(&l, "edge_header");
    bench_line_num(&l, "pinned_cpu", cpu);
    bench_line_str(&l, "openblas_core", openblas_get_corename());
    bench_line_str(&l, "ratio", "value / reference (>1: the library takes more)");
    bench_line_str(&l, "qtable_spec", SPEC_QTABLE);
    bench_line_str(&l, "dqn_spec", SPEC_DQN_BENCH);
    bench_line_num(&l, "act_in_flight", ACT_LAG);
    bench_line_num(&l, "rss_at_start", rss_start);
    line_tail(&l);

    bench_memory(); /* first: on a heap no benchmark has grown yet */

    static const act_case cases[2] = {
        {"qtable", SPEC_QTABLE, "qtable 400 states x 10 actions",
         "bare C: per-feature discretise (4,10,5,2 bins) + argmax over 10, same-size float "
         "table",
         BUDGET_QTABLE_NS},
        {"dqn", SPEC_DQN_BENCH, "dqn 4-32-32-10, normalize=1",
         "bare chain: standardise + bias copy + cblas_sgemv(beta=1) + ReLU, 4->32->32->10, "
         "+ argmax; own weights",
         BUDGET_DQN_NS},
    };
    bench_act(&cases[0], 0);
    bench_act(&cases[1], 1);
    return 0;
}
