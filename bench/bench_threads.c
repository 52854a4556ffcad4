/*
 * bench_threads.c - two cores for training: the gradient step of algo=dqn,
 * MLP 16-256-256-8 (double=1 dueling=0), with cpu_threads=2 against
 * cpu_threads=1, measured in the same run (issue 14, item 5).
 *
 * Target: cpu_threads=2 at least 1.3x faster per training step at batch
 * >= 256, and no slower (>= 1.0x) at batch 32 and 64.
 *
 * Per batch size (32, 64, 256, 1024), two lines:
 *
 *   dqn_gemm_threads   the GEMMs of one training step, recorded through a
 *                      recording ops table on a dls_dqn driven directly,
 *                      each timed alone with cblas_sgemm on OpenBLAS 1 and
 *                      2 threads (alternating, median of reps), next to the
 *                      thread count the CPU backend's rule gives it
 *                      (dls_cpu_gemm_threads). This is the measurement the
 *                      rule's thresholds come from, repeated on whatever
 *                      machine and OpenBLAS core runs the bench.
 *   dqn_train_threads  dlsched_train(agent, k) / k for two agents that
 *                      differ only in cpu_threads (1 and 2), same seed,
 *                      same replay contents; rounds alternate between them
 *                      (order swapped every round) so that load from other
 *                      processes hits both. ratio = median 1-thread step /
 *                      median 2-thread step (> 1: two threads are faster);
 *                      ratio_paired_median: median over rounds of the same
 *                      round's quotient. Also timed in the same rounds: the
 *                      earlier behaviour (OpenBLAS on 2 threads for the
 *                      whole training call, every GEMM threaded), through
 *                      a dls_dqn driven directly with an ops table that
 *                      does that. After the rounds the two agents, having
 *                      trained the same steps on the same data, are asked
 *                      for Q-values on the same states: q_max_abs_diff.
 *
 * The process is not pinned (it needs two cores), and a second core busy
 * with other work makes the 2-thread figures meaningless (a 2-thread GEMM
 * waits for its other half: up to 10x slower on a loaded 2-core machine).
 * So each measurement waits (up to QUIET_WAIT_S) for half a second in which
 * other processes used under 5% of a core, measures, and is repeated (up to
 * TRIES times) when others used BUSY_CORES or more meanwhile; the least
 * busy try is reported, with the CPU other processes used during it
 * (others_cpu_cores, from /proc/stat minus this process's own time).
 * Exits 0 whether or not a target is met.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <cblas.h>
#include <sys/resource.h>

#include <dlsched.h>

#include "core/backend.h"
#include "core/config.h"
#include "core/rng.h"
#include "dqn/dqn.h"

#include "bench.h"

#define NF 16u
#define NA 8u
#define HUGE_STARTS "4611686018427387904" /* learning_starts: never train inline */
#define REPLAY_FILL 10000u
#define STEP_ROUNDS 31      /* rounds per batch size (medians) */
#define STEP_ROUND_NS 8e6   /* ~8 ms of steps per variant and round */
#define GEMM_ROUNDS 15
#define GEMM_ROUND_NS 0.5e6 /* ~0.5 ms of one GEMM per thread count and round */
#define Q_STATES 64
#define QUIET_WAIT_S 10.0   /* the longest wait for a quiet machine per try */
#define TRIES 3             /* a batch measured again while others were busy */
#define BUSY_CORES 0.1      /* others' CPU above which a try counts as busy */
#define MAX_REC 64

static const char *const PROG = "bench_threads";
static bench_machine g_machine;
static char g_date[32];
static const dls_ops *g_cpu;
static volatile float g_sinkf;

static void die(const char *what, int rc)
{
    bench_die(PROG, what, rc, dlsched_last_error());
}

static void *xmalloc(size_t n)
{
    return bench_xmalloc(PROG, n);
}

static double loadavg1(void)
{
    double v = NAN;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &v) != 1)
            v = NAN;
        fclose(f);
    }
    return v;
}

/* ---- how busy the machine is with other work ------------------------------------ */

/* CPU time used on all CPUs since boot (user, nice, system, irq, softirq,
   steal), in seconds */
static double cpu_busy_s(void)
{
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return NAN;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n != 8)
        return NAN;
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

/* the CPUs other processes used over an interval, in cores (1.0: one core
   busy all along); clock-tick resolution, so a few hundredths either way */
typedef struct others_meter {
    double busy, self;
    uint64_t t;
} others_meter;

static void others_start(others_meter *o)
{
    o->busy = cpu_busy_s();
    o->self = self_cpu_s();
    o->t = bench_now_ns();
}

static double others_cores(const others_meter *o)
{
    double wall = (double)(bench_now_ns() - o->t) / 1e9;
    double v = ((cpu_busy_s() - o->busy) - (self_cpu_s() - o->self)) / wall;
    return v < 0 ? 0 : v;
}

/* wait (up to QUIET_WAIT_S) for half a second in which other processes used
   less than a twentieth of a core; returns the seconds waited, negative
   when no such window came */
static double wait_quiet(void)
{
    uint64_t t0 = bench_now_ns();
    while ((double)(bench_now_ns() - t0) / 1e9 < QUIET_WAIT_S) {
        others_meter o;
        others_start(&o);
        usleep(500000);
        if (others_cores(&o) < 0.05)
            return (double)(bench_now_ns() - t0) / 1e9;
    }
    return -(double)(bench_now_ns() - t0) / 1e9;
}

static dlsched_config *make_config(const char *spec)
{
    dlsched_config *cfg;
    int rc = dlsched_config_new(&cfg);
    if (rc)
        die("dlsched_config_new", rc);
    if ((rc = dlsched_config_parse(cfg, spec)))
        die("dlsched_config_parse", rc);
    return cfg;
}

static dlsched_agent *make_agent(const char *spec)
{
    dlsched_config *cfg = make_config(spec);
    dlsched_agent *ag;
    int rc = dlsched_agent_new(cfg, &ag);
    if (rc)
        die("dlsched_agent_new", rc);
    dlsched_config_free(cfg);
    return ag;
}

static inline dlsched_state_t mkstate(const float *x)
{
    dlsched_state_t st = {x, NF, 0, NULL, -1, 0};
    return st;
}

static void line_head(bench_line *l, const char *bench, uint32_t batch)
{
    bench_line_begin(l);
    bench_line_str(l, "bench", bench);
    bench_line_str(l, "net", "16-256-256-8 (dueling=0 double=1)");
    bench_line_num(l, "batch", batch);
}

/* how quiet the machine was while the line's figures were measured */
static void line_quiet(bench_line *l, double others, double waited, int tries, double load)
{
    bench_line_num(l, "others_cpu_cores", round(others * 100) / 100);
    bench_line_str(l, "others_cpu_cores_is", "CPU other processes used during the measurement "
                                             "(/proc/stat minus this process), in cores");
    bench_line_num(l, "quiet_wait_s", round(fabs(waited) * 10) / 10);
    bench_line_bool(l, "quiet_window_found", waited >= 0);
    bench_line_num(l, "tries", tries);
    bench_line_num(l, "loadavg_1min", load);
}

static void line_tail(bench_line *l)
{
    bench_line_str(l, "openblas_core", openblas_get_corename());
    bench_line_str(l, "date", g_date);
    bench_line_env(l, &g_machine);
    bench_line_end(l);
}

/* ---- GEMMs of one step -------------------------------------------------------- */

typedef struct gemm_rec {
    int ta, tb, m, n, k;
} gemm_rec;

static gemm_rec g_rec[MAX_REC];
static int g_nrec;

static void rec_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                     const float *b, int ldb, float beta, float *c, int ldc)
{
    if (g_nrec < MAX_REC) {
        gemm_rec r = {ta, tb, m, n, k};
        g_rec[g_nrec] = r;
    }
    g_nrec++;
    g_cpu->gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* the earlier behaviour: OpenBLAS on n threads for the whole training call */
static void whole_set_threads(int n)
{
    if (openblas_get_num_threads() != n)
        openblas_set_num_threads(n);
}

static void plain_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                       const float *b, int ldb, float beta, float *c, int ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m,
                n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

typedef struct trans_set {
    float *x; /* (n + 1) x NF: state i, next state i + 1 */
    int32_t *a;
    float *r;
    size_t n;
} trans_set;

static void trans_gen(trans_set *t, size_t n, uint64_t seed)
{
    bench_rng r = {seed};
    t->n = n;
    t->x = xmalloc((n + 1) * NF * sizeof(float));
    for (size_t i = 0; i < (n + 1) * NF; i++)
        t->x[i] = (float)bench_rng_uniform(&r);
    t->a = xmalloc(n * sizeof(int32_t));
    t->r = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        t->a[i] = (int32_t)(bench_rng_next(&r) % NA);
        t->r[i] = (float)(2 * bench_rng_uniform(&r) - 1);
    }
}

static void trans_free(trans_set *t)
{
    free(t->x);
    free(t->a);
    free(t->r);
}

typedef struct direct_dqn {
    const dls_backend_ops *bops;
    void *impl;
    dls_rng rng;
} direct_dqn;

static void direct_new(direct_dqn *dd, const char *spec, const trans_set *t)
{
    dlsched_config *cfg = make_config(spec);
    size_t kb;
    dls_rng_seed(&dd->rng, 11);
    int rc = dls_dqn_new(cfg, &dd->rng, &dd->bops, &dd->impl, &kb);
    if (rc)
        die("dls_dqn_new", rc);
    dlsched_config_free(cfg);
    for (size_t i = 0; i < t->n; i++) {
        dls_transition tr = {t->x + i * NF, t->a[i], t->r[i], t->x + (i + 1) * NF, NULL, 0, 0};
        double loss = 0;
        if (dd->bops->learn(dd->impl, &tr, &dd->rng, &loss) != 0) {
            fprintf(stderr, "%s: learn op trained while filling\n", PROG);
            exit(1);
        }
    }
}

static void direct_train(direct_dqn *dd, uint64_t steps)
{
    double loss = 0;
    if (dd->bops->train(dd->impl, &dd->rng, steps, &loss) != steps) {
        fprintf(stderr, "%s: the backend train op did not run %llu steps\n", PROG,
                (unsigned long long)steps);
        exit(1);
    }
}

static double time_gemm(const gemm_rec *g, const float *a, const float *b, float *c, int threads,
                        uint32_t reps)
{
    openblas_set_num_threads(threads);
    int lda = g->ta ? g->m : g->k, ldb = g->tb ? g->k : g->n;
    uint64_t t0 = bench_now_ns();
    for (uint32_t i = 0; i < reps; i++)
        cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans,
                    g->tb ? CblasTrans : CblasNoTrans, g->m, g->n, g->k, 1.0f, a, lda, b, ldb,
                    0.0f, c, g->n);
    double ns = (double)(bench_now_ns() - t0) / reps;
    g_sinkf = c[0];
    return ns;
}

static void appendf(char *buf, size_t len, size_t *o, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void appendf(char *buf, size_t len, size_t *o, const char *fmt, ...)
{
    if (*o >= len)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *o, len - *o, fmt, ap);
    va_end(ap);
    if (w > 0)
        *o = *o + (size_t)w < len ? *o + (size_t)w : len;
}

/* each recorded GEMM alone on 1 and 2 threads: medians in ms1[i], ms2[i] (us) */
static void gemm_try(const float *a, const float *b, float *c, double *ms1, double *ms2)
{
    for (int i = 0; i < g_nrec; i++) {
        const gemm_rec *g = &g_rec[i];
        double flops = 2.0 * g->m * g->n * g->k;
        /* ~0.5 ms per round at a rough 50 GFLOP/s */
        double est = flops / 50.0;
        uint32_t reps = (uint32_t)(GEMM_ROUND_NS / (est > 200 ? est : 200));
        reps = reps < 1 ? 1 : reps;
        time_gemm(g, a, b, c, 1, reps);
        time_gemm(g, a, b, c, 2, reps);
        double t1[GEMM_ROUNDS], t2[GEMM_ROUNDS];
        for (int rd = 0; rd < GEMM_ROUNDS; rd++) {
            if (rd & 1) {
                t2[rd] = time_gemm(g, a, b, c, 2, reps);
                t1[rd] = time_gemm(g, a, b, c, 1, reps);
            } else {
                t1[rd] = time_gemm(g, a, b, c, 1, reps);
                t2[rd] = time_gemm(g, a, b, c, 2, reps);
            }
        }
        ms1[i] = bench_median(t1, GEMM_ROUNDS) / 1e3;
        ms2[i] = bench_median(t2, GEMM_ROUNDS) / 1e3;
    }
    openblas_set_num_threads(1);
}

static void bench_gemms(uint32_t batch)
{
    size_t maxf = 0;
    for (int i = 0; i < g_nrec; i++) {
        size_t fa = (size_t)g_rec[i].m * g_rec[i].k, fb = (size_t)g_rec[i].k * g_rec[i].n,
               fc = (size_t)g_rec[i].m * g_rec[i].n;
        maxf = fa > maxf ? fa : maxf;
        maxf = fb > maxf ? fb : maxf;
        maxf = fc > maxf ? fc : maxf;
    }
    bench_rng r = {99 + batch};
    float *a = xmalloc(maxf * sizeof(float)), *b = xmalloc(maxf * sizeof(float)),
          *c = xmalloc(maxf * sizeof(float));
    for (size_t i = 0; i < maxf; i++) {
        a[i] = (float)bench_rng_uniform(&r) - 0.5f;
        b[i] = (float)bench_rng_uniform(&r) - 0.5f;
    }
    /* tries until one sees no other work (the least busy one is kept) */
    double ms1[MAX_REC], ms2[MAX_REC], best1[MAX_REC], best2[MAX_REC];
    double best_others = INFINITY, waited = 0, load = loadavg1();
    int tries = 0;
    while (tries < TRIES && best_others >= BUSY_CORES) {
        tries++;
        double w = wait_quiet();
        others_meter om;
        others_start(&om);
        gemm_try(a, b, c, ms1, ms2);
        double oc = others_cores(&om);
        if (oc < best_others) {
            best_others = oc;
            waited = w;
            load = loadavg1();
            memcpy(best1, ms1, sizeof ms1);
            memcpy(best2, ms2, sizeof ms2);
        }
    }
    free(a);
    free(b);
    free(c);

    char shapes[1024], us1[768], us2[768], chosen[256];
    size_t os = 0, o1 = 0, o2 = 0, oc = 0;
    double sum1 = 0, sum2 = 0, sum_rule = 0, sum_best = 0;
    int agree = 0;
    for (int i = 0; i < g_nrec; i++) {
        const gemm_rec *g = &g_rec[i];
        double m1 = best1[i], m2 = best2[i];
        int rule = dls_cpu_gemm_threads(g->m, g->n, g->k, 2);
        sum1 += m1;
        sum2 += m2;
        sum_rule += rule > 1 ? m2 : m1;
        sum_best += m1 < m2 ? m1 : m2;
        /* the rule agrees when it picks the faster count, or the two are
           within 5% of each other */
        agree += (rule > 1) == (m2 < m1) || fabs(m1 - m2) <= 0.05 * (m1 < m2 ? m1 : m2);
        appendf(shapes, sizeof shapes, &os, "%s%s%s %dx%dx%d", i ? ", " : "", g->ta ? "T" : "N",
                g->tb ? "T" : "N", g->m, g->n, g->k);
        appendf(us1, sizeof us1, &o1, "%s%.1f", i ? " " : "", m1);
        appendf(us2, sizeof us2, &o2, "%s%.1f", i ? " " : "", m2);
        appendf(chosen, sizeof chosen, &oc, "%s%d", i ? " " : "", rule);
    }

    bench_line l;
    line_head(&l, "dqn_gemm_threads", batch);
    bench_line_str(&l, "gemm_shapes", shapes);
    bench_line_str(&l, "gemm_shapes_are", "op(A) op(B) m x n x k (N: as stored, T: transposed), "
                                          "in the order one training step calls them");
    bench_line_str(&l, "us_1_thread", us1);
    bench_line_str(&l, "us_2_threads", us2);
    bench_line_str(&l, "rule_threads", chosen);
    bench_line_num(&l, "rule_agrees", agree);
    bench_line_num(&l, "gemm_count", g_nrec);
    bench_line_str(&l, "rule_agrees_is", "GEMMs where the rule picks the faster count or the "
                                         "two are within 5%");
    bench_line_num(&l, "sum_us_1_thread", sum1);
    bench_line_num(&l, "sum_us_2_threads", sum2);
    bench_line_num(&l, "sum_us_rule", sum_rule);
    bench_line_num(&l, "sum_us_best", sum_best);
    bench_line_num(&l, "ratio_rule", sum1 / sum_rule);
    bench_line_num(&l, "ratio_all_2_threads", sum1 / sum2);
    char timing[160];
    snprintf(timing, sizeof timing,
             "cblas_sgemm alone on separate random buffers, median of %d rounds alternating "
             "1 and 2 threads",
             GEMM_ROUNDS);
    bench_line_str(&l, "timing", timing);
    line_quiet(&l, best_others, waited, tries, load);
    line_tail(&l);
}

/* ---- the training step -------------------------------------------------------- */

static void fill_agent(dlsched_agent *ag, const trans_set *t)
{
    for (size_t i = 0; i < t->n; i++) {
        dlsched_state_t s = mkstate(t->x + i * NF), nx = mkstate(t->x + (i + 1) * NF);
        int rc = dlsched_observe_transition(ag, &s, t->a[i], t->r[i], &nx, 0);
        if (rc)
            die("dlsched_observe_transition", rc);
    }
}

static double time_train(dlsched_agent *ag, uint32_t k)
{
    uint64_t t0 = bench_now_ns();
    int rc = dlsched_train(ag, k);
    if (rc)
        die("dlsched_train", rc);
    return (double)(bench_now_ns() - t0) / k;
}

static double time_direct(direct_dqn *dd, uint32_t k)
{
    uint64_t t0 = bench_now_ns();
    direct_train(dd, k);
    return (double)(bench_now_ns() - t0) / k;
}

typedef struct step_try {
    double t1[STEP_ROUNDS], t2[STEP_ROUNDS], tw[STEP_ROUNDS], pair[STEP_ROUNDS];
} step_try;

/* STEP_ROUNDS rounds of k steps of each variant; 0 when OpenBLAS was on more
   than one thread after a training call returned */
static int step_try_run(step_try *t, dlsched_agent *ag1, dlsched_agent *ag2, direct_dqn *whole,
                        uint32_t k)
{
    int threads_after_ok = 1;
    for (int rd = 0; rd < STEP_ROUNDS; rd++) {
        switch (rd % 3) {
        case 0:
            t->t1[rd] = time_train(ag1, k);
            t->t2[rd] = time_train(ag2, k);
            t->tw[rd] = time_direct(whole, k);
            break;
        case 1:
            t->t2[rd] = time_train(ag2, k);
            t->tw[rd] = time_direct(whole, k);
            t->t1[rd] = time_train(ag1, k);
            break;
        default:
            t->tw[rd] = time_direct(whole, k);
            t->t1[rd] = time_train(ag1, k);
            t->t2[rd] = time_train(ag2, k);
            break;
        }
        /* acting's invariant: OpenBLAS on one thread outside training */
        if (openblas_get_num_threads() != 1)
            threads_after_ok = 0;
        t->pair[rd] = t->t1[rd] / t->t2[rd];
    }
    return threads_after_ok;
}

static void bench_step(uint32_t batch)
{
    char spec[512], spec1[600], spec2[600];
    snprintf(spec, sizeof spec,
             "algo=dqn n_features=%u n_actions=%u hidden=256,256 batch=%u seed=11 replay=%u "
             "learning_starts=" HUGE_STARTS,
             NF, NA, batch, REPLAY_FILL);
    snprintf(spec1, sizeof spec1, "%s cpu_threads=1", spec);
    snprintf(spec2, sizeof spec2, "%s cpu_threads=2", spec);
    trans_set ts;
    trans_gen(&ts, REPLAY_FILL, 7000 + batch);

    /* the GEMMs of one step, recorded */
    direct_dqn rec_dd;
    direct_new(&rec_dd, spec1, &ts);
    dls_ops rec = *g_cpu;
    rec.gemm = rec_gemm;
    g_nrec = 0;
    dls_dqn_set_ops((dls_dqn *)rec_dd.impl, &rec);
    direct_train(&rec_dd, 1);
    rec_dd.bops->destroy(rec_dd.impl);
    if (g_nrec > MAX_REC) {
        fprintf(stderr, "%s: %d GEMMs in a step, more than %d\n", PROG, g_nrec, MAX_REC);
        exit(1);
    }
    bench_gemms(batch);

    /* the earlier behaviour: the whole call on 2 threads */
    direct_dqn whole;
    direct_new(&whole, spec2, &ts);
    dls_ops whole_ops = *g_cpu;
    whole_ops.set_threads = whole_set_threads;
    whole_ops.gemm = plain_gemm;
    dls_dqn_set_ops((dls_dqn *)whole.impl, &whole_ops);

    dlsched_agent *ag1 = make_agent(spec1), *ag2 = make_agent(spec2);
    fill_agent(ag1, &ts);
    fill_agent(ag2, &ts);

    /* warm-up; size the rounds from it */
    double est = time_train(ag1, 3);
    time_train(ag2, 3);
    time_direct(&whole, 3);
    uint32_t k = (uint32_t)(STEP_ROUND_NS / est);
    k = k < 1 ? 1 : k > 256 ? 256 : k;

    /* tries until one sees no other work (the least busy one is kept); both
       agents train the same steps in every try */
    static step_try cur, best;
    double best_others = INFINITY, waited = 0, load = loadavg1();
    int tries = 0, threads_after_ok = 1;
    while (tries < TRIES && best_others >= BUSY_CORES) {
        tries++;
        double w = wait_quiet();
        others_meter om;
        others_start(&om);
        threads_after_ok &= step_try_run(&cur, ag1, ag2, &whole, k);
        double oc = others_cores(&om);
        if (oc < best_others) {
            best_others = oc;
            waited = w;
            load = loadavg1();
            best = cur;
        }
    }

    /* same steps on the same data: the Q-values agree */
    double qdiff = 0;
    for (uint32_t i = 0; i < Q_STATES; i++) {
        dlsched_state_t s = mkstate(ts.x + (size_t)i * 97 % ts.n * NF);
        float q1[NA], q2[NA];
        int rc = dlsched_q_values(ag1, &s, q1, NA);
        if (!rc)
            rc = dlsched_q_values(ag2, &s, q2, NA);
        if (rc)
            die("dlsched_q_values", rc);
        for (uint32_t j = 0; j < NA; j++)
            qdiff = fmax(qdiff, fabs((double)q1[j] - q2[j]));
    }

    double m1 = bench_median(best.t1, STEP_ROUNDS) / 1e3,
           m2 = bench_median(best.t2, STEP_ROUNDS) / 1e3,
           mw = bench_median(best.tw, STEP_ROUNDS) / 1e3;
    double ratio = m1 / m2, target = batch >= 256 ? 1.3 : 1.0;

    bench_line l;
    line_head(&l, "dqn_train_threads", batch);
    bench_line_str(&l, "stat", "median");
    bench_line_num(&l, "us_cpu_threads_1", m1);
    bench_line_num(&l, "us_cpu_threads_2", m2);
    bench_line_num(&l, "ratio", ratio);
    bench_line_num(&l, "ratio_paired_median", bench_median(best.pair, STEP_ROUNDS));
    bench_line_str(&l, "ratio_is", "step time with cpu_threads=1 / with cpu_threads=2 (> 1: two "
                                   "threads are faster)");
    bench_line_str(&l, "target", batch >= 256 ? "ratio >= 1.3" : "ratio >= 1.0");
    bench_line_bool(&l, "met", ratio >= target);
    bench_line_num(&l, "us_whole_call_2_threads", mw);
    bench_line_num(&l, "ratio_whole_call_2_threads", m1 / mw);
    bench_line_str(&l, "whole_call_is", "the earlier behaviour: OpenBLAS on 2 threads for the "
                                        "whole training call (dls_dqn driven directly)");
    bench_line_num(&l, "q_max_abs_diff", qdiff);
    bench_line_bool(&l, "openblas_threads_1_after_train", threads_after_ok);
    char timing[200];
    snprintf(timing, sizeof timing,
             "dlsched_train(agent, %u) / %u, median of %d rounds, the variants' order rotated "
             "every round; replay %u random transitions",
             k, k, STEP_ROUNDS, REPLAY_FILL);
    bench_line_str(&l, "timing", timing);
    line_quiet(&l, best_others, waited, tries, load);
    line_tail(&l);

    dlsched_agent_free(ag1);
    dlsched_agent_free(ag2);
    whole.bops->destroy(whole.impl);
    trans_free(&ts);
}

int main(void)
{
    bench_machine_read(&g_machine);
    bench_utc_date(g_date, sizeof g_date);
    g_cpu = dls_cpu_ops();

    bench_line l;
    bench_header_begin(&l, "threads_header");
    bench_line_str(&l, "openblas_config", openblas_get_config());
    bench_line_str(&l, "openblas_core", openblas_get_corename());
    bench_line_num(&l, "loadavg_1min", loadavg1());
    bench_line_str(&l, "agent", "algo=dqn n_features=16 n_actions=8 hidden=256,256 "
                                "learning_starts=huge, cpu_threads=1 and 2, defaults otherwise "
                                "(double=1 dueling=0 normalize=0 nstep=1 target_update=1000)");
    bench_line_str(&l, "rule", "dls_cpu_gemm_threads (src/backends/cpu/cpu_ops.c)");
    bench_line_str(&l, "date", g_date);
    bench_line_env(&l, &g_machine);
    bench_line_end(&l);

    static const uint32_t batches[] = {32, 64, 256, 1024};
    for (size_t i = 0; i < sizeof batches / sizeof batches[0]; i++)
        bench_step(batches[i]);
    return 0;
}
