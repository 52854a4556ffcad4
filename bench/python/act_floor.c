/*
 * act_floor.c - the C floor of bench_python.py: dlsched_act (and
 * dlsched_act + dlsched_observe) timed in a C loop inside the Python
 * process, on the same agent type, states and protocol as the Python
 * variants, without Python's per-call overhead.
 *
 * bench_python.py compiles this file at run time into a temporary shared
 * object (cc -O2 -shared -fPIC -Iinclude -Ibench) and calls it through
 * ctypes once per figure. It does not link libdlsched: Python passes the
 * addresses of dlsched_act and dlsched_observe from the library it loaded,
 * so the floor calls exactly the code the bindings call.
 *
 * Protocol, the same as bench_qtable's act latency and as the Python side:
 *   states   rows of nf floats, cycled through (row i % rows);
 *   act      every call timed alone with a clock_gettime pair, minus the
 *            median cost of an empty pair (batch == 1), or timed as batches
 *            of `batch` calls (the total per batch is written out);
 *   tickets  observed, untimed, `lag` requests later (batches: right after
 *            the batch), with the state of the next request and reward_of;
 *   warmup   `warmup` calls first, untimed (epsilon at its end value).
 */
#include <stddef.h>
#include <stdint.h>

#include "bench.h"

typedef int (*act_fn)(dlsched_agent *, const dlsched_state_t *, uint32_t, dlsched_decision_t *);
typedef int (*observe_fn)(dlsched_agent *, uint64_t, float, const dlsched_state_t *, uint32_t);

#define MAX_LAG 4096u
#define MAX_BATCH 256u

int floor_version(void);
uint64_t floor_clock_overhead(uint64_t *scratch, size_t n);
int floor_act(act_fn act, observe_fn observe, dlsched_agent *ag, const float *x, size_t rows,
              uint32_t nf, uint32_t act_flags, size_t warmup, size_t n, uint32_t lag,
              uint32_t batch, uint64_t clock_ns, uint64_t *out);
int floor_pair(act_fn act, observe_fn observe, dlsched_agent *ag, const float *x, size_t rows,
               uint32_t nf, size_t warmup, size_t n, uint64_t clock_ns, uint64_t *out);

/* the same reward sequence as bench_qtable.c and bench_python.py */
static inline float reward_of(size_t i)
{
    return -(float)((i * 2654435761u) % 1000u) * 0.001f;
}

static inline dlsched_state_t mkstate(const float *x, size_t rows, uint32_t nf, size_t i)
{
    dlsched_state_t st = {x + (i % rows) * nf, nf, 0, NULL, -1, 0};
    return st;
}

int floor_version(void)
{
    return 1;
}

uint64_t floor_clock_overhead(uint64_t *scratch, size_t n)
{
    return bench_clock_overhead(n, scratch);
}

int floor_act(act_fn act, observe_fn observe, dlsched_agent *ag, const float *x, size_t rows,
              uint32_t nf, uint32_t act_flags, size_t warmup, size_t n, uint32_t lag,
              uint32_t batch, uint64_t clock_ns, uint64_t *out)
{
    uint64_t ring[MAX_LAG];
    int rc;
    if (lag < 1 || lag > MAX_LAG || batch < 1 || batch > MAX_BATCH)
        return -1;
    if (batch == 1) {
        const size_t total = warmup + n;
        for (size_t i = 0; i < total; i++) {
            dlsched_state_t st = mkstate(x, rows, nf, i);
            dlsched_decision_t d;
            uint64_t t0 = bench_now_ns();
            BENCH_BARRIER();
            rc = act(ag, &st, act_flags, &d);
            BENCH_BARRIER();
            uint64_t t1 = bench_now_ns();
            if (rc)
                return rc;
            if (i >= warmup) {
                uint64_t dt = t1 - t0;
                out[i - warmup] = dt > clock_ns ? dt - clock_ns : 0;
            }
            if (i >= lag && ring[i % lag]) {
                size_t j = i - lag;
                dlsched_state_t nx = mkstate(x, rows, nf, j + 1);
                if ((rc = observe(ag, ring[i % lag], reward_of(j), &nx, 0)))
                    return rc;
            }
            ring[i % lag] = d.ticket;
        }
        return 0;
    }
    /* batches: n is the number of timed batches */
    dlsched_decision_t d[MAX_BATCH];
    const size_t wb = (warmup + batch - 1) / batch;
    for (size_t b = 0; b < wb + n; b++) {
        size_t i0 = b * batch;
        uint64_t t0 = bench_now_ns();
        BENCH_BARRIER();
        for (uint32_t k = 0; k < batch; k++) {
            dlsched_state_t st = mkstate(x, rows, nf, i0 + k);
            if ((rc = act(ag, &st, act_flags, &d[k])))
                return rc;
        }
        BENCH_BARRIER();
        uint64_t t1 = bench_now_ns();
        if (b >= wb)
            out[b - wb] = t1 - t0;
        for (uint32_t k = 0; k < batch; k++) {
            if (!d[k].ticket)
                continue;
            dlsched_state_t nx = mkstate(x, rows, nf, i0 + k + 1);
            if ((rc = observe(ag, d[k].ticket, reward_of(i0 + k), &nx, 0)))
                return rc;
        }
    }
    return 0;
}

/* act, then observe its ticket at once with the next request's state: the
   pair timed together, one timing per pair */
int floor_pair(act_fn act, observe_fn observe, dlsched_agent *ag, const float *x, size_t rows,
               uint32_t nf, size_t warmup, size_t n, uint64_t clock_ns, uint64_t *out)
{
    const size_t total = warmup + n;
    int rc;
    for (size_t i = 0; i < total; i++) {
        dlsched_state_t st = mkstate(x, rows, nf, i);
        dlsched_state_t nx = mkstate(x, rows, nf, i + 1);
        dlsched_decision_t d;
        uint64_t t0 = bench_now_ns();
        BENCH_BARRIER();
        rc = act(ag, &st, 0, &d);
        if (!rc)
            rc = observe(ag, d.ticket, reward_of(i), &nx, 0);
        BENCH_BARRIER();
        uint64_t t1 = bench_now_ns();
        if (rc)
            return rc;
        if (i >= warmup) {
            uint64_t dt = t1 - t0;
            out[i - warmup] = dt > clock_ns ? dt - clock_ns : 0;
        }
    }
    return 0;
}
