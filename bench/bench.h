/*
 * bench.h - small helpers shared by the micro-benchmarks (header only)
 *
 *   bench_now_ns()        monotonic clock in ns (CLOCK_MONOTONIC)
 *   bench_clock_overhead  median cost of one back-to-back clock read pair
 *   bench_sort_u64, bench_percentile   nearest-rank percentiles
 *   bench_rng             xorshift64* for pre-generated inputs
 *   bench_line_*          one JSON object per line on stdout, with the
 *                         machine and OpenBLAS environment recorded in it
 *
 * Every benchmark prints one JSON line per figure; nothing else goes to
 * stdout (diagnostics go to stderr).
 */
#ifndef DLS_BENCH_H
#define DLS_BENCH_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dlsched.h"

/* ---- clock ---------------------------------------------------------------- */

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Keep the compiler from moving or dropping work across this point. */
#define BENCH_BARRIER() __asm__ __volatile__("" ::: "memory")

/* ---- percentiles ---------------------------------------------------------- */

static inline int bench_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static inline void bench_sort_u64(uint64_t *v, size_t n)
{
    qsort(v, n, sizeof *v, bench_cmp_u64);
}

/* nearest-rank percentile p (0..100) of a sorted array of n >= 1 values */
static inline uint64_t bench_percentile(const uint64_t *sorted, size_t n, double p)
{
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* median of n >= 1 doubles (sorts in place) */
static inline double bench_median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/*
 * Cost of the timing itself: the median of n back-to-back reads
 * (t1 - t0 with nothing between). Subtract it from single-call timings.
 */
/* A benchmark stops at the first failure: what failed, its status text and
   the library's detail (read by the caller: it is per thread). */
static inline void bench_die(const char *prog, const char *what, int rc, const char *detail)
{
    fprintf(stderr, "%s: %s failed: %s: %s\n", prog, what, dlsched_strerror(rc), detail);
    exit(1);
}

/* an agent from a config spec; any failure ends the benchmark, naming the
   call and the library's message */
static inline dlsched_agent *bench_agent(const char *prog, const char *spec)
{
    dlsched_config *cfg;
    dlsched_agent *ag;
    int rc = dlsched_config_new(&cfg);
    if (rc)
        bench_die(prog, "dlsched_config_new", rc, dlsched_last_error());
    if ((rc = dlsched_config_parse(cfg, spec)))
        bench_die(prog, "dlsched_config_parse", rc, dlsched_last_error());
    if ((rc = dlsched_agent_new(cfg, &ag)))
        bench_die(prog, "dlsched_agent_new", rc, dlsched_last_error());
    dlsched_config_free(cfg);
    return ag;
}

/* zeroed memory, every page faulted in before any timing */
static inline void *bench_xmalloc(const char *prog, size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "%s: out of memory (%zu bytes)\n", prog, n);
        exit(1);
    }
    memset(p, 0, n);
    return p;
}

/* Pin the calling thread to the CPU it runs on, so its caches stay put;
   returns that CPU, or -1 when pinning is not possible. */
static inline int bench_pin_cpu(void)
{
    int cpu = sched_getcpu();
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0)
            cpu = -1;
    }
    return cpu;
}

static inline uint64_t bench_clock_overhead(size_t n, uint64_t *scratch)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t t0 = bench_now_ns();
        BENCH_BARRIER();
        uint64_t t1 = bench_now_ns();
        scratch[i] = t1 - t0;
    }
    bench_sort_u64(scratch, n);
    return bench_percentile(scratch, n, 50);
}

/* ---- inputs --------------------------------------------------------------- */

typedef struct bench_rng {
    uint64_t s;
} bench_rng;

static inline uint64_t bench_rng_next(bench_rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* uniform in [0, 1) */
static inline double bench_rng_uniform(bench_rng *r)
{
    return (double)(bench_rng_next(r) >> 11) * 0x1.0p-53;
}

/* the current UTC time as 2026-11-27T03:04:05Z (left as is on failure) */
static inline void bench_utc_date(char *buf, size_t n)
{
    time_t now = time(NULL);
    struct tm tmv;
    if (gmtime_r(&now, &tmv))
        strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tmv);
}

/* ---- machine description -------------------------------------------------- */

typedef struct bench_machine {
    char cpu_model[128];
    long nproc;
} bench_machine;

static inline void bench_machine_read(bench_machine *m)
{
    snprintf(m->cpu_model, sizeof m->cpu_model, "unknown");
    m->nproc = sysconf(_SC_NPROCESSORS_ONLN);
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            const char *v = strchr(line, ':');
            if (v) {
                v++;
                while (*v == ' ' || *v == '\t')
                    v++;
                snprintf(m->cpu_model, sizeof m->cpu_model, "%s", v);
                m->cpu_model[strcspn(m->cpu_model, "\n")] = '\0';
            }
            break;
        }
    }
    fclose(f);
}

/* ---- JSON lines ------------------------------------------------------------ */

typedef struct bench_line {
    char buf[2048];
    size_t len;
    int first;
} bench_line;

static inline void bench_line_raw(bench_line *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static inline void bench_line_raw(bench_line *l, const char *fmt, ...)
{
    if (l->len >= sizeof l->buf)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->buf + l->len, sizeof l->buf - l->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        l->len += (size_t)n;
    if (l->len > sizeof l->buf)
        l->len = sizeof l->buf;
}

static inline void bench_line_key(bench_line *l, const char *key)
{
    bench_line_raw(l, "%s\"%s\":", l->first ? "" : ",", key);
    l->first = 0;
}

static inline void bench_line_begin(bench_line *l)
{
    l->len = 0;
    l->first = 1;
    bench_line_raw(l, "{");
}

/* a JSON string, escaped; NULL prints null */
static inline void bench_line_str(bench_line *l, const char *key, const char *val)
{
    bench_line_key(l, key);
    if (!val) {
        bench_line_raw(l, "null");
        return;
    }
    bench_line_raw(l, "\"");
    for (const unsigned char *p = (const unsigned char *)val; *p; p++) {
        if (*p == '"' || *p == '\\')
            bench_line_raw(l, "\\%c", *p);
        else if (*p < 0x20)
            bench_line_raw(l, "\\u%04x", *p);
        else
            bench_line_raw(l, "%c", *p);
    }
    bench_line_raw(l, "\"");
}

/* a number with up to 4 significant decimals; non-finite prints null */
static inline void bench_line_num(bench_line *l, const char *key, double val)
{
    bench_line_key(l, key);
    if (!isfinite(val))
        bench_line_raw(l, "null");
    else if (val == floor(val) && fabs(val) < 1e15)
        bench_line_raw(l, "%.0f", val);
    else
        bench_line_raw(l, "%.4g", val);
}

static inline void bench_line_bool(bench_line *l, const char *key, int val)
{
    bench_line_key(l, key);
    bench_line_raw(l, "%s", val ? "true" : "false");
}

/* the fields every line carries: machine and the OpenBLAS environment */
static inline void bench_line_env(bench_line *l, const bench_machine *m)
{
    bench_line_str(l, "machine", m->cpu_model);
    bench_line_num(l, "nproc", (double)m->nproc);
    bench_line_str(l, "openblas_coretype", getenv("OPENBLAS_CORETYPE"));
    bench_line_str(l, "openblas_l2_size", getenv("OPENBLAS_L2_SIZE"));
}

static inline void bench_line_end(bench_line *l)
{
    bench_line_raw(l, "}");
    fwrite(l->buf, 1, l->len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

/* Measure the clock's own overhead and open a benchmark's header line with
   the fields every benchmark reports first: its name, the library version,
   the clock and that overhead (median and p99). Returns the median in ns. */
static inline uint64_t bench_header_begin(bench_line *l, const char *name)
{
    enum { N = 200000 };
    uint64_t *scratch = bench_xmalloc(name, N * sizeof *scratch);
    uint64_t ns = bench_clock_overhead(N, scratch);
    bench_line_begin(l);
    bench_line_str(l, "bench", name);
    bench_line_str(l, "library_version", dlsched_version_string());
    bench_line_str(l, "clock", "clock_gettime(CLOCK_MONOTONIC)");
    bench_line_num(l, "clock_overhead_ns", (double)ns);
    bench_line_num(l, "clock_overhead_p99_ns", (double)bench_percentile(scratch, N, 99));
    free(scratch);
    return ns;
}

#endif
