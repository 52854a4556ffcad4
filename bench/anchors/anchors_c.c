/*
 * anchors_c.c - the libdlsched side of bench/anchors/anchors.py: the same
 * figures the Python script measures for PyTorch, timed in C so that no
 * Python overhead is counted against the library. One JSON line per
 * invocation on stdout (bench/bench.h); diagnostics on stderr.
 *
 *   anchors_c info
 *       OpenBLAS's core, configuration and thread count as this process
 *       sees them after creating a dqn agent, and the library version.
 *   anchors_c act [--threads T] [--calls N] [--warmup W]
 *       dlsched_act(DLSCHED_ACT_GREEDY) on one state of a dqn agent
 *       16-256-256-8 (cpu_threads=T, learning_starts huge: never trains),
 *       each call timed alone with a clock_gettime pair, the median cost of
 *       an empty pair subtracted; p50, p99, mean over N calls after W
 *       untimed ones. States cycle through 4096 pre-generated rows.
 *   anchors_c step --batch B [--threads T] [--reps R] [--rep-ms M]
 *       dlsched_train(agent, k) / k (one double-DQN gradient step each:
 *       uniform replay sampling, forward, Huber loss, backward, clip at 10,
 *       Adam, hard target copy every 1000 steps) on a replay buffer of
 *       10000 random transitions, k sized so a repetition lasts about M ms;
 *       median and minimum over R repetitions.
 *
 * The process is not pinned (the Python side is not either). Agents run on
 * the CPU (device=cpu) with the library's defaults otherwise (double=1
 * dueling=0 normalize=0 nstep=1 target_update=1000 huber_delta=1
 * grad_clip=10).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <cblas.h>

#include <dlsched.h>

#include "../bench.h"

#define NF 16u
#define NA 8u
#define HUGE_STARTS "4611686018427387904"
#define ACT_RING 4096u
#define REPLAY_FILL 10000u

static const char *const PROG = "anchors_c";
static bench_machine g_machine;
static char g_date[32];

static void die(const char *what, int rc)
{
    bench_die(PROG, what, rc, dlsched_last_error());
}

static void usage(void)
{
    fprintf(stderr, "usage: anchors_c info\n"
                    "       anchors_c act [--threads T] [--calls N] [--warmup W]\n"
                    "       anchors_c step --batch B [--threads T] [--reps R] [--rep-ms M]\n");
    exit(2);
}

static long opt_long(int argc, char **argv, const char *name, long def, long lo, long hi)
{
    for (int i = 2; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            char *end;
            long v = strtol(argv[i + 1], &end, 10);
            if (*end || v < lo || v > hi) {
                fprintf(stderr, "%s: %s %s: expected an integer in %ld..%ld\n", PROG, name,
                        argv[i + 1], lo, hi);
                exit(2);
            }
            return v;
        }
    }
    return def;
}

static float *rand_floats(size_t n, bench_rng *r)
{
    float *p = bench_xmalloc(PROG, n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = (float)bench_rng_uniform(r);
    return p;
}

static inline dlsched_state_t mkstate(const float *x)
{
    dlsched_state_t st = {x, NF, 0, NULL, -1, 0};
    return st;
}

static dlsched_agent *agent(long threads, long batch, long replay)
{
    char spec[512];
    snprintf(spec, sizeof spec,
             "algo=dqn device=cpu n_features=%u n_actions=%u hidden=256,256 cpu_threads=%ld "
             "batch=%ld replay=%ld seed=7 learning_starts=" HUGE_STARTS,
             NF, NA, threads, batch, replay);
    return bench_agent(PROG, spec);
}

static void line_common(bench_line *l, const char *what, long threads)
{
    bench_line_begin(l);
    bench_line_str(l, "bench", "anchors_c");
    bench_line_str(l, "what", what);
    bench_line_str(l, "library_version", dlsched_version_string());
    bench_line_str(l, "net", "16-256-256-8 (dueling=0 double=1)");
    bench_line_num(l, "cpu_threads", (double)threads);
    bench_line_str(l, "openblas_core", openblas_get_corename());
    bench_line_num(l, "openblas_threads_after", openblas_get_num_threads());
}

static void line_tail(bench_line *l)
{
    bench_line_str(l, "date", g_date);
    bench_line_env(l, &g_machine);
    bench_line_end(l);
}

static int cmd_info(void)
{
    dlsched_agent *ag = agent(1, 64, 1024);
    bench_line l;
    line_common(&l, "info", 1);
    bench_line_str(&l, "openblas_config", openblas_get_config());
    line_tail(&l);
    dlsched_agent_free(ag);
    return 0;
}

static int cmd_act(long threads, long calls, long warmup)
{
    bench_rng r = {0x1234567ULL};
    float *xs = rand_floats((size_t)ACT_RING * NF, &r);
    uint64_t *lap = bench_xmalloc(PROG, (size_t)calls * sizeof *lap);
    uint64_t *scratch = bench_xmalloc(PROG, 100000 * sizeof *scratch);
    uint64_t clock_ns = bench_clock_overhead(100000, scratch);
    free(scratch);
    dlsched_agent *ag = agent(threads, 64, 65536);
    for (long i = -warmup; i < calls; i++) {
        dlsched_state_t st = mkstate(xs + ((size_t)(i + warmup) % ACT_RING) * NF);
        dlsched_decision_t d;
        uint64_t t0 = bench_now_ns();
        BENCH_BARRIER();
        int rc = dlsched_act(ag, &st, DLSCHED_ACT_GREEDY, &d);
        BENCH_BARRIER();
        uint64_t t1 = bench_now_ns();
        if (rc)
            die("dlsched_act", rc);
        if (i >= 0)
            lap[i] = t1 - t0 > clock_ns ? t1 - t0 - clock_ns : 0;
    }
    double sum = 0;
    for (long i = 0; i < calls; i++)
        sum += (double)lap[i];
    bench_sort_u64(lap, (size_t)calls);
    bench_line l;
    line_common(&l, "act", threads);
    bench_line_str(&l, "call", "dlsched_act(agent, state, DLSCHED_ACT_GREEDY, &decision)");
    bench_line_num(&l, "p50_ns", (double)bench_percentile(lap, (size_t)calls, 50));
    bench_line_num(&l, "p99_ns", (double)bench_percentile(lap, (size_t)calls, 99));
    bench_line_num(&l, "mean_ns", sum / (double)calls);
    bench_line_num(&l, "samples", (double)calls);
    bench_line_num(&l, "warmup", (double)warmup);
    bench_line_num(&l, "clock_overhead_ns", (double)clock_ns);
    line_tail(&l);
    dlsched_agent_free(ag);
    free(lap);
    free(xs);
    return 0;
}

static int cmd_step(long threads, long batch, long reps, long rep_ms)
{
    dlsched_agent *ag = agent(threads, batch, 100000);
    bench_rng r = {4242 + (uint64_t)batch};
    float *x = rand_floats((size_t)(REPLAY_FILL + 1) * NF, &r);
    for (size_t i = 0; i < REPLAY_FILL; i++) {
        dlsched_state_t s = mkstate(x + i * NF), nx = mkstate(x + (i + 1) * NF);
        int32_t a = (int32_t)(bench_rng_next(&r) % NA);
        float rew = (float)(2 * bench_rng_uniform(&r) - 1);
        int rc = dlsched_observe_transition(ag, &s, a, rew, &nx,
                                            i % 50 == 49 ? DLSCHED_OBS_TERMINAL : 0);
        if (rc)
            die("dlsched_observe_transition", rc);
    }
    int rc;
    uint64_t t0 = bench_now_ns();
    if ((rc = dlsched_train(ag, 5)))
        die("dlsched_train", rc);
    double est = (double)(bench_now_ns() - t0) / 5.0;
    long k = (long)((double)rep_ms * 1e6 / est);
    k = k < 1 ? 1 : k > 100000 ? 100000 : k;
    double *v = bench_xmalloc(PROG, (size_t)reps * sizeof *v);
    double mn = INFINITY;
    for (long i = 0; i < reps; i++) {
        t0 = bench_now_ns();
        if ((rc = dlsched_train(ag, (uint32_t)k)))
            die("dlsched_train", rc);
        v[i] = (double)(bench_now_ns() - t0) / (double)k / 1e3;
        mn = v[i] < mn ? v[i] : mn;
    }
    dlsched_stats_t st;
    if ((rc = dlsched_stats(ag, &st, sizeof st)))
        die("dlsched_stats", rc);
    bench_line l;
    line_common(&l, "step", threads);
    bench_line_num(&l, "batch", (double)batch);
    bench_line_num(&l, "median_us", bench_median(v, (size_t)reps));
    bench_line_num(&l, "min_us", mn);
    bench_line_num(&l, "reps", (double)reps);
    bench_line_num(&l, "steps_per_rep", (double)k);
    bench_line_num(&l, "train_steps_done", (double)st.train_steps);
    bench_line_num(&l, "last_loss", st.last_loss);
    bench_line_str(&l, "call", "dlsched_train(agent, k) / k, replay of 10000 random transitions");
    line_tail(&l);
    free(v);
    free(x);
    dlsched_agent_free(ag);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    bench_machine_read(&g_machine);
    bench_utc_date(g_date, sizeof g_date);
    long threads = opt_long(argc, argv, "--threads", 1, 1, 256);
    if (strcmp(argv[1], "info") == 0)
        return cmd_info();
    if (strcmp(argv[1], "act") == 0)
        return cmd_act(threads, opt_long(argc, argv, "--calls", 20000, 1, 100000000),
                       opt_long(argc, argv, "--warmup", 2000, 0, 100000000));
    if (strcmp(argv[1], "step") == 0) {
        long batch = opt_long(argc, argv, "--batch", 0, 1, 65536);
        if (!batch)
            usage();
        return cmd_step(threads, batch, opt_long(argc, argv, "--reps", 9, 1, 10000),
                        opt_long(argc, argv, "--rep-ms", 40, 1, 100000));
    }
    usage();
    return 2;
}
