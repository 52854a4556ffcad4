/*
 * bench_kernels.c - a dqn agent as a new user gets it, next to the same
 * agent on the best OpenBLAS kernels this CPU allows, in the same run
 *
 * OpenBLAS picks its kernels once, when it is loaded, so every setting
 * runs in its own process: this program runs itself again ("--child") with
 * the environment and key of each setting, rounds alternating, and reports
 * medians over rounds:
 *
 *   user        the environment this program was started with (normally
 *               OPENBLAS_CORETYPE unset; under scripts/best-blas.sh, as
 *               make bench runs it, the value before that script),
 *               cpu_kernels=auto (the default)
 *   best        OPENBLAS_CORETYPE=<the best core for this CPU>,
 *               cpu_kernels=openblas: the reference
 *   generic     OPENBLAS_CORETYPE=Prescott, cpu_kernels=auto: what a CPU
 *               newer than the OpenBLAS build gets (OpenBLAS falls back to
 *               its generic Prescott kernels there), with the remedy: the
 *               agent runs libdlsched's own kernels
 *   generic_openblas  the same without the remedy (cpu_kernels=openblas)
 *
 * Each child: the 16-256-256-8 net, one thread (cpu_threads=1) pinned to
 * one core; act p50 of dlsched_act() (each call timed alone, clock pair
 * subtracted), and the training step dlsched_train(agent, k) / k at batch
 * 32, 64, 256 and 1024 (median of reps) on a replay buffer of random
 * transitions. Target (issue 14): user and generic within 1.2x of best.
 * The generic settings need a DYNAMIC_ARCH OpenBLAS on an x86 CPU with AVX2
 * and FMA; elsewhere only user and best run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <sys/wait.h>

#include <cblas.h>

#include "bench.h"

#define PROG "bench_kernels"
#define NET "algo=dqn n_features=16 n_actions=8 hidden=256,256 cpu_threads=1 device=cpu "
#define ROUNDS 3

extern char **environ;

static const int batches[] = {32, 64, 256, 1024};
#define NB (int)(sizeof batches / sizeof batches[0])

typedef struct {
    double act_ns;
    double step_us[NB];
    char core[32];
    char reason[256];
} figures;

/* ---- child ----------------------------------------------------------------- */

static void child_fill(dlsched_agent *ag, int n, bench_rng *r)
{
    float x[16], y[16];
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < 16; j++) {
            x[j] = (float)bench_rng_uniform(r);
            y[j] = (float)bench_rng_uniform(r);
        }
        dlsched_state_t s = {x, 16, 0, NULL, -1, 0};
        dlsched_state_t nx = {y, 16, 0, NULL, -1, 0};
        int rc = dlsched_observe_transition(ag, &s, (uint32_t)(bench_rng_next(r) % 8),
                                            (float)bench_rng_uniform(r), &nx, 0);
        if (rc)
            bench_die(PROG, "dlsched_observe_transition", rc, dlsched_last_error());
    }
}

static int child(const char *kernels)
{
    bench_pin_cpu();
    char spec[512];
    figures f;
    memset(&f, 0, sizeof f);
    bench_rng r = {0x9e3779b97f4a7c15ull};
    enum { N = 20000 };
    uint64_t *lat = bench_xmalloc(PROG, N * sizeof *lat);
    uint64_t clk = bench_clock_overhead(N, lat);
    /* acting: learning_starts never reached */
    snprintf(spec, sizeof spec, NET "cpu_kernels=%s learning_starts=4000000000", kernels);
    dlsched_agent *ag = bench_agent(PROG, spec);
    dlsched_stats_t st;
    st.size = sizeof st;
    dlsched_stats(ag, &st, sizeof st);
    snprintf(f.core, sizeof f.core, "%s", st.blas_core);
    snprintf(f.reason, sizeof f.reason, "%s", st.blas_reason);
    float x[16];
    for (int i = 0; i < N + 2000; i++) {
        for (int j = 0; j < 16; j++)
            x[j] = (float)bench_rng_uniform(&r);
        dlsched_state_t s = {x, 16, 0, NULL, -1, 0};
        dlsched_decision_t d;
        uint64_t t0 = bench_now_ns();
        int rc = dlsched_act(ag, &s, DLSCHED_ACT_GREEDY, &d);
        uint64_t t1 = bench_now_ns();
        if (rc)
            bench_die(PROG, "dlsched_act", rc, dlsched_last_error());
        if (i >= 2000)
            lat[i - 2000] = t1 - t0 > clk ? t1 - t0 - clk : 0;
    }
    bench_sort_u64(lat, N);
    f.act_ns = (double)bench_percentile(lat, N, 50);
    dlsched_agent_free(ag);
    free(lat);
    /* training */
    for (int b = 0; b < NB; b++) {
        snprintf(spec, sizeof spec,
                 NET "cpu_kernels=%s batch=%d replay=20000 learning_starts=4000000000",
                 kernels, batches[b]);
        ag = bench_agent(PROG, spec);
        child_fill(ag, 5000, &r);
        /* about 0.15 s of steps per rep at the best kernels */
        int k = batches[b] <= 64 ? 16 : batches[b] <= 256 ? 4 : 1;
        enum { REPS = 9 };
        double t[REPS];
        if (dlsched_train(ag, (uint64_t)k) != DLSCHED_OK) /* warm-up */
            bench_die(PROG, "dlsched_train", DLSCHED_EBACKEND, dlsched_last_error());
        for (int rep = 0; rep < REPS; rep++) {
            uint64_t t0 = bench_now_ns();
            int rc = dlsched_train(ag, (uint64_t)k);
            uint64_t t1 = bench_now_ns();
            if (rc)
                bench_die(PROG, "dlsched_train", rc, dlsched_last_error());
            t[rep] = (double)(t1 - t0) / 1e3 / k;
        }
        f.step_us[b] = bench_median(t, REPS);
        dlsched_agent_free(ag);
    }
    /* one line for the parent: figures, then core and reason */
    printf("%.1f", f.act_ns);
    for (int b = 0; b < NB; b++)
        printf(" %.2f", f.step_us[b]);
    printf("\n%s\n%s\n", f.core, f.reason);
    return 0;
}

/* ---- parent ---------------------------------------------------------------- */

typedef struct {
    const char *name;
    const char *coretype; /* NULL: as inherited; "": unset */
    const char *kernels;
    const char *what;
    figures round[ROUNDS];
    int runs;
} setting;

/* run this program as a child in setting s; 0 with its figures in *out */
static int run_child(const setting *s, figures *out)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 2, sizeof *env);
    if (!env)
        return -1;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!s->coretype || strncmp(environ[i], "OPENBLAS_CORETYPE=", 18) != 0)
            env[m++] = environ[i];
    char ct[64];
    if (s->coretype && s->coretype[0]) {
        snprintf(ct, sizeof ct, "OPENBLAS_CORETYPE=%s", s->coretype);
        env[m++] = ct;
    }
    env[m] = NULL;
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) {
        free(env);
        return -1;
    }
    self[sl] = '\0';
    int fd[2];
    if (pipe(fd) != 0) {
        free(env);
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        free(env);
        return -1;
    }
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        char *argv[] = {self, (char *)"--child", (char *)s->kernels, NULL};
        execve(self, argv, env);
        _exit(127);
    }
    close(fd[1]);
    free(env);
    FILE *f = fdopen(fd[0], "r");
    int ok = 0;
    memset(out, 0, sizeof *out);
    if (f) {
        char line[512];
        if (fgets(line, sizeof line, f)) {
            char *p = line, *e;
            out->act_ns = strtod(p, &e);
            ok = e != p;
            for (int b = 0; ok && b < NB; b++) {
                p = e;
                out->step_us[b] = strtod(p, &e);
                ok = e != p;
            }
        }
        if (ok && fgets(out->core, sizeof out->core, f))
            out->core[strcspn(out->core, "\n")] = '\0';
        if (ok && fgets(out->reason, sizeof out->reason, f))
            out->reason[strcspn(out->reason, "\n")] = '\0';
        fclose(f);
    } else {
        close(fd[0]);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return ok && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static double med(const setting *s, int b)
{
    double v[ROUNDS];
    for (int i = 0; i < s->runs; i++)
        v[i] = b < 0 ? s->round[i].act_ns : s->round[i].step_us[b];
    return bench_median(v, (size_t)s->runs);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--child") == 0)
        return child(argv[2]);
    bench_machine mach;
    bench_machine_read(&mach);
    char date[32] = "";
    bench_utc_date(date, sizeof date);

    /* the best core: the remedy's OPENBLAS_CORETYPE when OpenBLAS runs
       older kernels than the CPU allows, else the core it runs */
    dlsched_agent *ag = bench_agent(PROG, NET "cpu_kernels=openblas");
    dlsched_stats_t st;
    st.size = sizeof st;
    dlsched_stats(ag, &st, sizeof st);
    dlsched_agent_free(ag);
    char best[32];
    snprintf(best, sizeof best, "%s", st.blas_core);
    const char *set = strstr(st.blas_reason, "OPENBLAS_CORETYPE=");
    if (set)
        snprintf(best, sizeof best, "%.*s", (int)strcspn(set + 18, " ;)"), set + 18);
    /* the generic settings mean something on a judged CPU with DYNAMIC_ARCH:
       with Prescott forced, the verdict must name a better core */
    int judged = strstr(openblas_get_config(), "DYNAMIC_ARCH") != NULL;

    setting s[] = {
        {"user", NULL, "auto", "the environment as started, default keys", {{0, {0}, "", ""}}, 0},
        {"best", best, "openblas", "OPENBLAS_CORETYPE=best, cpu_kernels=openblas", {{0, {0}, "", ""}}, 0},
        {"generic", "Prescott", "auto",
         "OPENBLAS_CORETYPE=Prescott (an unrecognised CPU), default keys", {{0, {0}, "", ""}}, 0},
        {"generic_openblas", "Prescott", "openblas",
         "OPENBLAS_CORETYPE=Prescott, cpu_kernels=openblas (no remedy)", {{0, {0}, "", ""}}, 0},
    };
    /* make bench runs this under scripts/best-blas.sh, which may have set
       OPENBLAS_CORETYPE: the user's setting gets the original back */
    const char *orig = getenv("DLSCHED_ORIGINAL_OPENBLAS_CORETYPE");
    if (orig)
        s[0].coretype = orig;
    int ns = judged && best[0] ? 4 : 2;
    int tty = isatty(2);
    if (!best[0])
        s[1].coretype = NULL;
    for (int r = 0; r < ROUNDS; r++)
        for (int i = 0; i < ns; i++) {
            if (tty)
                fprintf(stderr, "\r%s: round %d/%d: %-18s", PROG, r + 1, ROUNDS, s[i].name);
            if (run_child(&s[i], &s[i].round[s[i].runs]) == 0)
                s[i].runs++;
            else
                fprintf(stderr, "\n%s: the child for %s failed\n", PROG, s[i].name);
        }
    if (tty)
        fprintf(stderr, "\r%60s\r", "");
    if (s[1].runs == 0) {
        fprintf(stderr, "%s: no reference figures\n", PROG);
        return 1;
    }
    bench_line l;
    bench_header_begin(&l, "kernels_header");
    bench_line_str(&l, "openblas_config", openblas_get_config());
    bench_line_str(&l, "best_core", best);
    bench_line_str(&l, "user_openblas_coretype",
                   s[0].coretype ? (s[0].coretype[0] ? s[0].coretype : NULL)
                                 : getenv("OPENBLAS_CORETYPE"));
    bench_line_num(&l, "rounds", ROUNDS);
    bench_line_str(&l, "net", "16-256-256-8, cpu_threads=1, one pinned core, device=cpu");
    bench_line_str(&l, "date", date);
    bench_line_env(&l, &mach);
    bench_line_end(&l);
    for (int i = 0; i < ns; i++) {
        if (i == 1 || s[i].runs == 0)
            continue;
        for (int b = -1; b < NB; b++) {
            double v = med(&s[i], b), ref = med(&s[1], b);
            bench_line_begin(&l);
            bench_line_str(&l, "bench", b < 0 ? "kernels_act" : "kernels_train_step");
            bench_line_str(&l, "setting", s[i].name);
            bench_line_str(&l, "setting_is", s[i].what);
            if (b >= 0)
                bench_line_num(&l, "batch", batches[b]);
            bench_line_str(&l, "stat", b < 0 ? "p50" : "median");
            bench_line_num(&l, "value", v);
            bench_line_str(&l, "unit", b < 0 ? "ns" : "us");
            bench_line_str(&l, "openblas_core", s[i].round[0].core);
            bench_line_str(&l, "blas_reason", s[i].round[0].reason);
            bench_line_num(&l, "reference", ref);
            bench_line_str(&l, "reference_name", "the same agent, OPENBLAS_CORETYPE=best core, "
                                                 "cpu_kernels=openblas, separate process");
            bench_line_str(&l, "reference_core", s[1].round[0].core);
            bench_line_num(&l, "ratio", v / ref);
            if (i != 3) {
                bench_line_str(&l, "target", "ratio <= 1.2");
                bench_line_bool(&l, "met", v / ref <= 1.2);
            }
            bench_line_num(&l, "rounds", s[i].runs);
            bench_line_str(&l, "date", date);
            bench_line_env(&l, &mach);
            bench_line_end(&l);
        }
    }
    return 0;
}
