/*
 * bench_guard.c - what the guard costs on the act path
 *
 * A guard=1 agent (the default) acts on the same states with a hint (the
 * guard rules) and without one (the 1.0 path, the reference: same weights,
 * same memory); a guard=0 agent with hints is reported beside it (separate
 * agents differ by their memory layout: dqn by several hundred ns either
 * way, run to run). Each call is
 * timed alone (the clock pair's median cost subtracted) and every ticket is
 * observed, untimed, ACT_LAG calls later, so the guarded agent runs its
 * experiment, its counts and its tests as in service. Rounds of the two
 * agents alternate so that noise hits both. Two shapes: qtable with 4
 * features x 8 bins and 16 actions, and dqn 16-256-256-8 (never training:
 * learning_starts is huge). The guarded agent is measured in both states:
 * with the incumbent in charge (fresh) and with the learned policy in charge
 * (rewards favour its choices until it switched).
 *
 * Targets (issue: the guard's cost): p50 at most +20 ns (qtable) and
 * +100 ns (dqn) over the unguarded agent. Exits 0 whether or not met.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dlsched.h>

#include "bench.h"

#define ACT_LAG 32u
#define RING 4096u
#define ROUNDS 11
#define PER_ROUND 20000u
#define WARMUP 20000u

static bench_machine g_machine;
static uint64_t g_clock_ns;
static char g_date[32] = "unknown";

static void die(const char *what, int rc)
{
    bench_die("bench_guard", what, rc, dlsched_last_error());
}

typedef struct runner {
    dlsched_agent *ag;
    uint64_t ring[ACT_LAG];
    uint64_t seq;
    int favour_learned; /* reward: 1 for a non-hint action, else 0 */
} runner;

typedef struct shape {
    const char *name, *spec;
    uint32_t nf, na;
    const float *xs;
} shape;

/* one timed ticketed decision (hint = seq % 7, or none) and one lagged
   observe */
static uint64_t step(runner *r, const shape *sh, int with_hint)
{
    const float *x = sh->xs + (r->seq % RING) * sh->nf;
    dlsched_state_t st = {.features = x, .n_features = sh->nf,
                          .hint = with_hint ? (int32_t)(r->seq % 7 % sh->na) : -1};
    dlsched_decision_t d;
    uint64_t t0 = bench_now_ns();
    BENCH_BARRIER();
    int rc = dlsched_act(r->ag, &st, 0, &d);
    BENCH_BARRIER();
    uint64_t t1 = bench_now_ns();
    if (rc)
        die("dlsched_act", rc);
    if (r->seq >= ACT_LAG) {
        uint64_t j = r->seq - ACT_LAG;
        dlsched_state_t nx = {.features = sh->xs + ((j + 1) % RING) * sh->nf,
                              .n_features = sh->nf, .hint = -1};
        float rew = r->favour_learned ? (float)((r->ring[r->seq % ACT_LAG] & 1) ? 1 : 0)
                                      : (float)((j * 2654435761u) % 1000u) * 0.001f;
        rc = dlsched_observe(r->ag, r->ring[r->seq % ACT_LAG] >> 1, rew, &nx, 0);
        if (rc)
            die("dlsched_observe", rc);
    }
    /* the low bit remembers whether the learned policy's choice was taken */
    r->ring[r->seq % ACT_LAG] = d.ticket << 1 | (st.hint >= 0 &&
                                                 (d.flags & DLSCHED_DECISION_INCUMBENT) == 0 &&
                                                 d.action != st.hint);
    r->seq++;
    uint64_t dt = t1 - t0;
    return dt > g_clock_ns ? dt - g_clock_ns : 0;
}

static double p50_of(runner *r, const shape *sh, int with_hint, uint64_t *buf)
{
    for (uint32_t i = 0; i < PER_ROUND; i++)
        buf[i] = step(r, sh, with_hint);
    bench_sort_u64(buf, PER_ROUND);
    return (double)bench_percentile(buf, PER_ROUND, 50);
}

static void measure(const shape *sh, int learned, double target_ns)
{
    char spec_g[1024], spec_u[1024];
    snprintf(spec_g, sizeof spec_g, "%s guard=1 guard_min_visits=0", sh->spec);
    snprintf(spec_u, sizeof spec_u, "%s guard=0", sh->spec);
    runner g = {.ag = bench_agent("bench_guard", spec_g), .favour_learned = learned};
    runner u = {.ag = bench_agent("bench_guard", spec_u), .favour_learned = learned};
    uint64_t *buf = malloc(PER_ROUND * sizeof *buf);
    if (!buf)
        die("malloc", DLSCHED_ENOMEM);
    for (uint32_t i = 0; i < WARMUP; i++) {
        step(&g, sh, 1);
        step(&u, sh, 1);
    }
    /* the learned state: keep rewarding the learned choices until it switched */
    dlsched_stats_t s;
    for (uint64_t i = 0; learned && i < 4000000; i++) {
        step(&g, sh, 1);
        if ((i & 1023) == 0) {
            dlsched_stats(g.ag, &s, sizeof s);
            if (s.guard_state == DLSCHED_GUARD_LEARNED)
                break;
        }
    }
    /* reference: the guarded agent itself acting without a hint (the 1.0
       path, same weights and memory), and a guard=0 agent with hints */
    double pg[ROUNDS], pn[ROUNDS], pu[ROUNDS];
    for (int k = 0; k < ROUNDS; k++) {
        pg[k] = p50_of(&g, sh, 1, buf);
        pn[k] = p50_of(&g, sh, 0, buf);
        pu[k] = p50_of(&u, sh, 1, buf);
    }
    dlsched_stats(g.ag, &s, sizeof s);
    double vg = bench_median(pg, ROUNDS), vn = bench_median(pn, ROUNDS);
    double vu = bench_median(pu, ROUNDS);
    bench_line l;
    bench_line_begin(&l);
    bench_line_str(&l, "bench", "guard_act_latency");
    bench_line_str(&l, "agent", sh->name);
    bench_line_str(&l, "guard_state", s.guard_state == DLSCHED_GUARD_LEARNED ? "learned"
                                      : s.guard_state == DLSCHED_GUARD_INCUMBENT ? "incumbent"
                                                                                 : "other");
    bench_line_str(&l, "stat", "p50");
    bench_line_num(&l, "value", vg);
    bench_line_str(&l, "unit", "ns");
    bench_line_num(&l, "reference", vn);
    bench_line_str(&l, "reference_name", "the same agent acting without a hint (the unguarded "
                                         "path), same states, rounds alternating");
    bench_line_num(&l, "overhead_ns", vg - vn);
    bench_line_num(&l, "ratio", vn > 0 ? vg / vn : NAN);
    bench_line_num(&l, "guard0_agent_p50_ns", vu);
    bench_line_num(&l, "guard_decisions", (double)s.guard_decisions);
    bench_line_num(&l, "samples", (double)ROUNDS * PER_ROUND);
    char tgt[64];
    snprintf(tgt, sizeof tgt, "overhead_ns <= %.0f", target_ns);
    bench_line_str(&l, "target", tgt);
    bench_line_bool(&l, "met", vg - vn <= target_ns);
    bench_line_str(&l, "threads", "1");
    bench_line_str(&l, "date", g_date);
    bench_line_env(&l, &g_machine);
    bench_line_end(&l);
    free(buf);
    dlsched_agent_free(g.ag);
    dlsched_agent_free(u.ag);
}

int main(void)
{
    bench_machine_read(&g_machine);
    bench_utc_date(g_date, sizeof g_date);
    int cpu = bench_pin_cpu();
    openblas_set_num_threads(1);
    bench_line l;
    g_clock_ns = bench_header_begin(&l, "guard_header");
    bench_line_num(&l, "pinned_cpu", cpu);
    bench_line_env(&l, &g_machine);
    bench_line_end(&l);

    bench_rng r = {0x5eed};
    float *xq = malloc((size_t)RING * 4 * sizeof *xq), *xd = malloc((size_t)RING * 16 * sizeof *xd);
    if (!xq || !xd)
        die("malloc", DLSCHED_ENOMEM);
    for (size_t i = 0; i < (size_t)RING * 4; i++)
        xq[i] = (float)bench_rng_uniform(&r);
    for (size_t i = 0; i < (size_t)RING * 16; i++)
        xd[i] = (float)bench_rng_uniform(&r);
    shape qt = {"qtable 4x8 bins, 16 actions",
                "algo=qtable n_features=4 n_actions=16 bins=8 seed=7 epsilon_start=0.05 "
                "epsilon_end=0.05",
                4, 16, xq};
    shape dq = {"dqn 16-256-256-8",
                "algo=dqn device=cpu n_features=16 n_actions=8 hidden=256,256 seed=7 "
                "cpu_threads=1 replay=65536 epsilon_start=0.05 epsilon_end=0.05 "
                "learning_starts=4611686018427387904",
                16, 8, xd};
    measure(&qt, 0, 20);
    measure(&qt, 1, 20);
    measure(&dq, 0, 100);
    measure(&dq, 1, 100);
    free(xq);
    free(xd);
    return 0;
}
