/*
 * bench_serving.c - the serving path: act latency while the background
 * learner trains, and act+observe throughput across threads
 *
 *   1. act latency   DQN 16-256-256-8, learner=thread, cpu_threads=1, with
 *                    1, 2 and 4 acting threads. Each dlsched_act() is timed
 *                    alone (median empty clock pair subtracted), on states
 *                    cycled from a ring of random ones. Two learners:
 *                      idle  learning_starts huge: the learner never trains;
 *                            it wakes once per ms to take in what was
 *                            observed (nothing at all for ACT_GREEDY)
 *                      busy  a replay buffer pre-filled with PREFILL random
 *                            transitions and replay_ratio=1e9: the learner
 *                            trains back to back for the whole window (its
 *                            steps/s and publications are reported, and
 *                            checked to grow)
 *                    Two kinds of decision: flags 0 (a ticket is kept and
 *                    observed, untimed, ACT_LAG decisions later on the same
 *                    thread) and DLSCHED_ACT_GREEDY (no ticket). Samples of
 *                    all acting threads are pooled; idle and busy rounds
 *                    alternate, LAT_ROUNDS each, a fresh agent every round.
 *   2. throughput    act+observe pairs per second: each thread acts, then
 *                    at once observes its own ticket (flags 0, next state
 *                    given), with no pause, for TP_NS per round; the median
 *                    of TP_ROUNDS rounds, a fresh agent every round. qtable
 *                    4 features x 8 bins x 8 actions (learner=inline and
 *                    thread) and DQN 16-64-64-8 (thread; inline for
 *                    reference), 2 threads against 1 (the "reference").
 *
 * No thread is pinned (the library's learner cannot be): on a machine with
 * fewer cores than runnable threads (acting threads + the learner) the
 * scheduler time-slices them, and the tails show it. OpenBLAS is set to one
 * thread (the agents set it so anyway). Exits 0 whether or not a target is
 * met; a library error exits 1.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>

#include <dlsched.h>

#include "bench.h"

#define HUGE_STARTS "4611686018427387904" /* learning_starts: never train */

#define RING 4096u           /* states cycled through */
#define MAX_THREADS 4

#define LAT_WARM 3000u       /* untimed acts per thread before the window */
#define LAT_N 25000u         /* timed acts per thread and round */
#define LAT_ROUNDS 2
#define ACT_LAG 64u          /* tickets in flight per acting thread */
#define PREFILL 20000u       /* transitions in the busy learner's buffer */

#define TP_ROUNDS 3
#define TP_NS 600000000ull   /* 0.6 s per throughput round */
#define TP_BLOCK 64          /* pairs between looks at the stop flag */

#define TARGET_P50_RATIO 1.5
#define TARGET_P99_NS 50000.0
#define TARGET_QTABLE_PAIRS 1e6
#define TARGET_DQN_PAIRS 2e5

static bench_machine g_machine;
static uint64_t g_clock_ns;
static char g_date[32];

/* ---- helpers -------------------------------------------------------------------- */

static void die(const char *what, int rc, const char *detail)
{
    bench_die("bench_serving", what, rc, detail);
}

static void *xmalloc(size_t n)
{
    return bench_xmalloc("bench_serving", n);
}

static float *rand_floats(size_t n, bench_rng *r)
{
    float *p = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = (float)bench_rng_uniform(r);
    return p;
}

static dlsched_agent *make_agent(const char *spec)
{
    return bench_agent("bench_serving", spec);
}

static void get_stats(dlsched_agent *ag, dlsched_stats_t *st)
{
    int rc = dlsched_stats(ag, st, sizeof *st);
    if (rc)
        die("dlsched_stats", rc, dlsched_last_error());
}

static void sleep_ns(long ns)
{
    struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
    nanosleep(&ts, NULL);
}

static inline float reward_of(size_t i)
{
    return -(float)((i * 2654435761u) % 1000u) * 0.001f;
}

static inline uint64_t lap(uint64_t t0, uint64_t t1)
{
    uint64_t dt = t1 - t0;
    return dt > g_clock_ns ? dt - g_clock_ns : 0;
}

/* a thread's failure, reported by main (workers never exit the process) */
typedef struct fail_info {
    int rc;
    const char *what;
    char msg[256];
} fail_info;

static void fail_note(fail_info *f, const char *what, int rc)
{
    if (f->rc)
        return;
    f->rc = rc;
    f->what = what;
    snprintf(f->msg, sizeof f->msg, "%s", dlsched_last_error());
}

static void line_tail(bench_line *l, int threads)
{
    bench_line_num(l, "threads", threads);
    bench_line_str(l, "pinning", "none (threads unpinned; the scheduler places them)");
    bench_line_str(l, "date", g_date);
    bench_line_env(l, &g_machine);
    bench_line_end(l);
}

/* ---- 1. act latency under the learner ------------------------------------------- */

typedef struct lat_arg {
    dlsched_agent *ag;
    const float *xs; /* RING x 16 */
    uint32_t offset, flags;
    uint64_t *out;   /* LAT_N samples */
    pthread_barrier_t *bar;
    fail_info fail;
} lat_arg;

static void *lat_main(void *p)
{
    lat_arg *a = p;
    uint64_t ring[ACT_LAG] = {0};
    for (size_t i = 0; i < LAT_WARM + LAT_N; i++) {
        if (i == LAT_WARM)
            pthread_barrier_wait(a->bar);
        size_t k = a->offset + i;
        dlsched_state_t st = {a->xs + (k % RING) * 16, 16, 0, NULL, -1, 0};
        dlsched_decision_t d;
        uint64_t t0 = bench_now_ns();
        BENCH_BARRIER();
        int rc = dlsched_act(a->ag, &st, a->flags, &d);
        BENCH_BARRIER();
        uint64_t t1 = bench_now_ns();
        if (rc) {
            fail_note(&a->fail, "dlsched_act", rc);
            continue;
        }
        if (i >= LAT_WARM)
            a->out[i - LAT_WARM] = lap(t0, t1);
        if (d.ticket == 0)
            continue;
        /* observe the decision made ACT_LAG calls ago (untimed) */
        uint64_t *slot = &ring[i % ACT_LAG];
        if (*slot) {
            dlsched_state_t nx = {a->xs + ((k + 1) % RING) * 16, 16, 0, NULL, -1, 0};
            rc = dlsched_observe(a->ag, *slot, reward_of(k), &nx, 0);
            if (rc)
                fail_note(&a->fail, "dlsched_observe", rc);
        }
        *slot = d.ticket;
    }
    for (size_t j = 0; j < ACT_LAG; j++) /* leave nothing pending */
        if (ring[j]) {
            int rc = dlsched_observe(a->ag, ring[j], 0.0f, NULL, DLSCHED_OBS_TERMINAL);
            if (rc)
                fail_note(&a->fail, "dlsched_observe", rc);
        }
    return NULL;
}

typedef struct lat_window {
    double seconds;
    uint64_t steps, published, staged_end;
} lat_window;

/* one round: nthreads acting threads on ag, samples into out */
static void lat_round(dlsched_agent *ag, const float *xs, int nthreads, uint32_t flags,
                      uint64_t *out, lat_window *w)
{
    pthread_t th[MAX_THREADS];
    lat_arg args[MAX_THREADS];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)nthreads + 1);
    for (int t = 0; t < nthreads; t++) {
        lat_arg a = {ag, xs, (uint32_t)t * (RING / MAX_THREADS), flags,
                     out + (size_t)t * LAT_N, &bar, {0, NULL, ""}};
        args[t] = a;
        if (pthread_create(&th[t], NULL, lat_main, &args[t]) != 0) {
            fprintf(stderr, "bench_serving: pthread_create failed\n");
            exit(1);
        }
    }
    pthread_barrier_wait(&bar); /* every thread warmed up: the window opens */
    dlsched_stats_t s0, s1;
    get_stats(ag, &s0);
    uint64_t t0 = bench_now_ns();
    for (int t = 0; t < nthreads; t++)
        pthread_join(th[t], NULL);
    uint64_t t1 = bench_now_ns();
    get_stats(ag, &s1);
    pthread_barrier_destroy(&bar);
    for (int t = 0; t < nthreads; t++)
        if (args[t].fail.rc)
            die(args[t].fail.what, args[t].fail.rc, args[t].fail.msg);
    w->seconds = (double)(t1 - t0) / 1e9;
    w->steps = s1.train_steps - s0.train_steps;
    w->published = s1.published_version - s0.published_version;
    w->staged_end = s1.staged;
}

#define LAT_SPEC "algo=dqn n_features=16 n_actions=8 hidden=256,256 cpu_threads=1 " \
                 "learner=thread replay=65536 seed=%d "

static dlsched_agent *idle_agent(int seed)
{
    char spec[512];
    snprintf(spec, sizeof spec, LAT_SPEC "learning_starts=" HUGE_STARTS, seed);
    return make_agent(spec);
}

/* a learner training back to back on PREFILL random transitions */
static dlsched_agent *busy_agent(int seed, const float *xs)
{
    char spec[512];
    snprintf(spec, sizeof spec, LAT_SPEC "learning_starts=1000 replay_ratio=1e9", seed);
    dlsched_agent *ag = make_agent(spec);
    for (size_t i = 0; i < PREFILL; i++) {
        dlsched_state_t s = {xs + (i % RING) * 16, 16, 0, NULL, -1, 0};
        dlsched_state_t nx = {xs + ((i * 7 + 1) % RING) * 16, 16, 0, NULL, -1, 0};
        int rc = dlsched_observe_transition(ag, &s, (int32_t)(i % 8), reward_of(i), &nx, 0);
        if (rc)
            die("dlsched_observe_transition", rc, dlsched_last_error());
    }
    /* wait until the learner took everything in and trains */
    dlsched_stats_t st;
    for (int k = 0; k < 5000; k++) {
        get_stats(ag, &st);
        if (st.staged == 0 && st.train_steps >= 20)
            return ag;
        sleep_ns(1000000);
    }
    fprintf(stderr, "bench_serving: the busy learner did not start training (staged %llu, "
                    "train_steps %llu)\n",
            (unsigned long long)st.staged, (unsigned long long)st.train_steps);
    exit(1);
}

static void print_lat(const char *stat, const char *variant, int nthreads, double busy,
                      double idle, const lat_window *bw, const lat_window *iw, double busy_p50,
                      double busy_p99, double idle_p50, double idle_p99, double busy_p999,
                      double idle_p999, double busy_max)
{
    bench_line l;
    bench_line_begin(&l);
    bench_line_str(&l, "bench", "serving_act_latency");
    bench_line_str(&l, "net", "16-256-256-8 (dueling=0 double=1), learner=thread");
    bench_line_str(&l, "stat", stat);
    bench_line_str(&l, "variant", variant);
    bench_line_num(&l, "value", busy);
    bench_line_str(&l, "value_is", "learner busy (training back to back)");
    bench_line_str(&l, "unit", "ns");
    bench_line_num(&l, "reference", idle);
    bench_line_str(&l, "reference_name", "learner idle (learning_starts huge: never trains)");
    bench_line_num(&l, "ratio", idle > 0 ? busy / idle : NAN);
    bench_line_num(&l, "busy_p50", busy_p50);
    bench_line_num(&l, "busy_p99", busy_p99);
    bench_line_num(&l, "busy_p99_9", busy_p999);
    bench_line_num(&l, "busy_max", busy_max);
    bench_line_num(&l, "idle_p50", idle_p50);
    bench_line_num(&l, "idle_p99", idle_p99);
    bench_line_num(&l, "idle_p99_9", idle_p999);
    bench_line_num(&l, "learner_steps_per_s", bw->seconds > 0 ? bw->steps / bw->seconds : 0);
    bench_line_num(&l, "learner_steps_in_window", (double)bw->steps);
    bench_line_num(&l, "published_versions_in_window", (double)bw->published);
    bench_line_bool(&l, "train_steps_grew", bw->steps > 0);
    bench_line_num(&l, "idle_learner_steps_in_window", (double)iw->steps);
    bench_line_num(&l, "window_s", bw->seconds);
    bench_line_num(&l, "samples", (double)LAT_ROUNDS * LAT_N * nthreads);
    bench_line_num(&l, "clock_overhead_ns", (double)g_clock_ns);
    char timing[256];
    snprintf(timing, sizeof timing,
             "each act timed alone, clock pair subtracted; %d threads x %u acts x %d rounds, "
             "pooled; idle and busy rounds alternate; busy: %u random transitions, "
             "replay_ratio=1e9",
             nthreads, LAT_N, LAT_ROUNDS, PREFILL);
    bench_line_str(&l, "timing", timing);
    if (strcmp(stat, "p50") == 0) {
        bench_line_str(&l, "target", "busy p50 <= 1.5 x idle p50");
        bench_line_bool(&l, "met", idle > 0 && busy / idle <= TARGET_P50_RATIO);
    } else {
        bench_line_str(&l, "target", "busy p99 <= 50000 ns");
        bench_line_bool(&l, "met", busy <= TARGET_P99_NS);
    }
    if (nthreads + 1 > g_machine.nproc)
        bench_line_str(&l, "note", "more runnable threads (acting + learner) than CPUs: "
                                   "time-sliced by the scheduler");
    line_tail(&l, nthreads);
}

static void bench_latency(const float *xs)
{
    static const int counts[] = {1, 2, 4};
    static const struct {
        uint32_t flags;
        const char *name;
    } variants[] = {{0, "flags 0 (ticket kept, observed untimed 64 acts later)"},
                    {DLSCHED_ACT_GREEDY, "DLSCHED_ACT_GREEDY (no ticket)"}};
    const size_t cap = (size_t)LAT_ROUNDS * MAX_THREADS * LAT_N;
    uint64_t *idle = xmalloc(cap * sizeof *idle), *busy = xmalloc(cap * sizeof *busy);
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
            int nt = counts[c];
            size_t per = (size_t)nt * LAT_N, n = (size_t)LAT_ROUNDS * per;
            lat_window iw = {0, 0, 0, 0}, bw = {0, 0, 0, 0};
            for (int r = 0; r < LAT_ROUNDS; r++) {
                lat_window w;
                dlsched_agent *ag = idle_agent(11 + r);
                lat_round(ag, xs, nt, variants[v].flags, idle + (size_t)r * per, &w);
                dlsched_agent_free(ag);
                iw.seconds += w.seconds;
                iw.steps += w.steps;
                ag = busy_agent(21 + r, xs);
                lat_round(ag, xs, nt, variants[v].flags, busy + (size_t)r * per, &w);
                dlsched_agent_free(ag); /* stops and joins the learner */
                bw.seconds += w.seconds;
                bw.steps += w.steps;
                bw.published += w.published;
                if (w.steps == 0)
                    fprintf(stderr, "bench_serving: busy learner made no step in a window\n");
            }
            bench_sort_u64(idle, n);
            bench_sort_u64(busy, n);
            double ip50 = (double)bench_percentile(idle, n, 50);
            double ip99 = (double)bench_percentile(idle, n, 99);
            double bp50 = (double)bench_percentile(busy, n, 50);
            double bp99 = (double)bench_percentile(busy, n, 99);
            double ip999 = (double)bench_percentile(idle, n, 99.9);
            double bp999 = (double)bench_percentile(busy, n, 99.9);
            double bmax = (double)busy[n - 1];
            print_lat("p50", variants[v].name, nt, bp50, ip50, &bw, &iw, bp50, bp99, ip50, ip99,
                      bp999, ip999, bmax);
            print_lat("p99", variants[v].name, nt, bp99, ip99, &bw, &iw, bp50, bp99, ip50, ip99,
                      bp999, ip999, bmax);
        }
    }
    free(idle);
    free(busy);
}

/* ---- 2. act+observe throughput --------------------------------------------------- */

typedef struct tp_arg {
    dlsched_agent *ag;
    const float *xs;
    uint32_t nf, offset;
    atomic_int *stop;
    pthread_barrier_t *bar;
    uint64_t pairs, t0, t1;
    fail_info fail;
} tp_arg;

static void *tp_main(void *p)
{
    tp_arg *a = p;
    size_t k = a->offset;
    uint64_t n = 0;
    pthread_barrier_wait(a->bar);
    a->t0 = bench_now_ns();
    while (!atomic_load_explicit(a->stop, memory_order_relaxed)) {
        for (int b = 0; b < TP_BLOCK; b++, k++) {
            dlsched_state_t st = {a->xs + (k % RING) * a->nf, a->nf, 0, NULL, -1, 0};
            dlsched_state_t nx = {a->xs + ((k + 1) % RING) * a->nf, a->nf, 0, NULL, -1, 0};
            dlsched_decision_t d;
            int rc = dlsched_act(a->ag, &st, 0, &d);
            if (rc) {
                fail_note(&a->fail, "dlsched_act", rc);
                goto out;
            }
            rc = dlsched_observe(a->ag, d.ticket, reward_of(k), &nx, 0);
            if (rc) {
                fail_note(&a->fail, "dlsched_observe", rc);
                goto out;
            }
        }
        n += TP_BLOCK;
    }
out:
    a->t1 = bench_now_ns();
    a->pairs = n;
    return NULL;
}

typedef struct tp_result {
    double pairs_per_s, steps_per_s, staged_end, pending_end;
} tp_result;

static void tp_round(const char *spec, uint32_t nf, const float *xs, int nthreads, tp_result *res)
{
    dlsched_agent *ag = make_agent(spec);
    pthread_t th[MAX_THREADS];
    tp_arg args[MAX_THREADS];
    pthread_barrier_t bar;
    atomic_int stop;
    atomic_init(&stop, 0);
    pthread_barrier_init(&bar, NULL, (unsigned)nthreads + 1);
    for (int t = 0; t < nthreads; t++) {
        tp_arg a = {ag, xs, nf, (uint32_t)t * (RING / MAX_THREADS), &stop, &bar, 0, 0, 0,
                    {0, NULL, ""}};
        args[t] = a;
        if (pthread_create(&th[t], NULL, tp_main, &args[t]) != 0) {
            fprintf(stderr, "bench_serving: pthread_create failed\n");
            exit(1);
        }
    }
    dlsched_stats_t s0, s1;
    get_stats(ag, &s0);
    pthread_barrier_wait(&bar);
    sleep_ns((long)TP_NS);
    atomic_store(&stop, 1);
    uint64_t lo = UINT64_MAX, hi = 0, pairs = 0;
    for (int t = 0; t < nthreads; t++) {
        pthread_join(th[t], NULL);
        if (args[t].fail.rc)
            die(args[t].fail.what, args[t].fail.rc, args[t].fail.msg);
        lo = args[t].t0 < lo ? args[t].t0 : lo;
        hi = args[t].t1 > hi ? args[t].t1 : hi;
        pairs += args[t].pairs;
    }
    get_stats(ag, &s1);
    pthread_barrier_destroy(&bar);
    double sec = (double)(hi - lo) / 1e9;
    res->pairs_per_s = (double)pairs / sec;
    res->steps_per_s = (double)(s1.train_steps - s0.train_steps) / sec;
    res->staged_end = (double)s1.staged;
    res->pending_end = (double)s1.tickets_pending;
    dlsched_agent_free(ag);
}

static void bench_throughput(const float *xs16, const float *xs4)
{
    static const struct {
        const char *name, *spec;
        uint32_t nf;
        double target; /* 0: reference only */
    } cfgs[] = {
        {"qtable 4x8 bins x 8 actions, learner=inline",
         "algo=qtable n_features=4 n_actions=8 bins=8 seed=5 learner=inline", 4,
         TARGET_QTABLE_PAIRS},
        {"qtable 4x8 bins x 8 actions, learner=thread",
         "algo=qtable n_features=4 n_actions=8 bins=8 seed=5 learner=thread", 4,
         TARGET_QTABLE_PAIRS},
        {"dqn 16-64-64-8, learner=thread",
         "algo=dqn n_features=16 n_actions=8 hidden=64,64 cpu_threads=1 seed=5 learner=thread",
         16, TARGET_DQN_PAIRS},
        {"dqn 16-64-64-8, learner=inline (reference)",
         "algo=dqn n_features=16 n_actions=8 hidden=64,64 cpu_threads=1 seed=5 learner=inline",
         16, 0},
    };
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        const float *xs = cfgs[c].nf == 4 ? xs4 : xs16;
        double one[TP_ROUNDS], two[TP_ROUNDS], st1[TP_ROUNDS], st2[TP_ROUNDS];
        tp_result r2 = {0, 0, 0, 0};
        for (int r = 0; r < TP_ROUNDS; r++) {
            tp_result r1;
            tp_round(cfgs[c].spec, cfgs[c].nf, xs, 1, &r1);
            tp_round(cfgs[c].spec, cfgs[c].nf, xs, 2, &r2);
            one[r] = r1.pairs_per_s;
            two[r] = r2.pairs_per_s;
            st1[r] = r1.steps_per_s;
            st2[r] = r2.steps_per_s;
        }
        double v = bench_median(two, TP_ROUNDS), ref = bench_median(one, TP_ROUNDS);
        bench_line l;
        bench_line_begin(&l);
        bench_line_str(&l, "bench", "serving_act_observe_throughput");
        bench_line_str(&l, "agent", cfgs[c].name);
        bench_line_str(&l, "spec", cfgs[c].spec);
        bench_line_str(&l, "stat", "median");
        bench_line_num(&l, "value", v);
        bench_line_str(&l, "value_is", "2 threads, each: act (flags 0) then observe its ticket");
        bench_line_str(&l, "unit", "pairs/s");
        bench_line_num(&l, "reference", ref);
        bench_line_str(&l, "reference_name", "the same with 1 thread");
        bench_line_num(&l, "ratio", v / ref);
        bench_line_num(&l, "ns_per_pair_per_thread", 2e9 / v);
        bench_line_num(&l, "train_steps_per_s_2threads", bench_median(st2, TP_ROUNDS));
        bench_line_num(&l, "train_steps_per_s_1thread", bench_median(st1, TP_ROUNDS));
        bench_line_num(&l, "staged_at_end_last_round", r2.staged_end);
        char timing[160];
        snprintf(timing, sizeof timing,
                 "pairs over %.1f s per round, median of %d rounds, a fresh agent per round; "
                 "1- and 2-thread rounds alternate",
                 (double)TP_NS / 1e9, TP_ROUNDS);
        bench_line_str(&l, "timing", timing);
        if (cfgs[c].target > 0) {
            char tg[64];
            snprintf(tg, sizeof tg, "value >= %.0f pairs/s", cfgs[c].target);
            bench_line_str(&l, "target", tg);
            bench_line_bool(&l, "met", v >= cfgs[c].target);
        }
        line_tail(&l, 2);
    }
}

/* ---- main ------------------------------------------------------------------------- */

int main(void)
{
    bench_machine_read(&g_machine);
    bench_utc_date(g_date, sizeof g_date);
    openblas_set_num_threads(1);

    bench_line l;
    g_clock_ns = bench_header_begin(&l, "serving_header");
    bench_line_str(&l, "openblas_config", openblas_get_config());
    bench_line_str(&l, "openblas_core", openblas_get_corename());
    bench_line_num(&l, "openblas_threads", openblas_get_num_threads());
    bench_line_str(&l, "ratio", "value / reference (latency: >1 is slower; throughput: "
                                "2 threads / 1 thread)");
    line_tail(&l, 0);

    bench_rng r = {0x5eed5eedULL};
    float *xs16 = rand_floats((size_t)RING * 16, &r);
    float *xs4 = rand_floats((size_t)RING * 4, &r);
    bench_latency(xs16);
    bench_throughput(xs16, xs4);
    free(xs16);
    free(xs4);
    return 0;
}
