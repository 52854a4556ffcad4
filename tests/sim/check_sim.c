/*
 * check_sim.c - tests of dlsched-sim, the inference-cluster simulator of
 * examples/clustersim (its own program: the simulator is not part of the
 * library, so it is not in the main suite's tests/check_*.c).
 *
 * Oracles, not the simulator's own output:
 *   - completion: every request completes exactly once (the on_complete
 *     hook), never before it arrived, on a server that loads its variant;
 *     the request counts come from the arrival streams alone;
 *   - the latency model of sim.h computed by hand for a three-request trace
 *     (batch slow-down, FIFO wait for a slot);
 *   - M/M/1: the closed forms 1/(mu - lambda) (mean time in system) and
 *     ln 2/(mu - lambda) (median: the sojourn time is exponential);
 *   - determinism: same seed, bitwise-identical results; other seed, other
 *     results;
 *   - scenario and trace files: every error names "file:LINE: field:";
 *   - greedy: the variant a hand computation of the latency model picks.
 *
 * Environment: DLSCHED_TOP (source tree, for data/; default ".").
 * Nothing is timed: every figure is simulated time.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "simtest.h"

/* ---- a small heterogeneous scenario -------------------------------------------
   Two GPU types, two variants, "large" only where it fits (big). */
#define HETERO                                                                  \
    "[scenario]\n"                                                              \
    "name = hetero\n"                                                           \
    "seed = 5\n"                                                                \
    "eval_seed = 6\n"                                                           \
    "warmup_s = 100\n"                                                          \
    "eval_s = 100\n"                                                            \
    "window_s = 5\n"                                                            \
    "slo_base_ms = 1000\n"                                                      \
    "slo_per_token_ms = 20\n"                                                   \
    "[gpu big]\n"                                                               \
    "count = 2\n"                                                               \
    "slots = 4\n"                                                               \
    "memory_gb = 80\n"                                                          \
    "load = small large\n"                                                      \
    "[gpu little]\n"                                                            \
    "count = 2\n"                                                               \
    "slots = 2\n"                                                               \
    "memory_gb = 24\n"                                                          \
    "load = small\n"                                                            \
    "[variant small]\n"                                                         \
    "accuracy = 0.5\n"                                                          \
    "memory_gb = 14\n"                                                          \
    "profile big = 10 20000 5 0.05\n"                                           \
    "profile little = 20 5000 15 0.1\n"                                         \
    "[variant large]\n"                                                         \
    "accuracy = 0.8\n"                                                          \
    "memory_gb = 40\n"                                                          \
    "profile big = 30 5000 20 0.08\n"                                           \
    "[arrivals]\n"                                                              \
    "process = poisson\n"                                                       \
    "load = 0.8\n"                                                              \
    "load_variant = small\n"                                                    \
    "input_tokens = lognormal 300 0.8 4000\n"                                   \
    "output_tokens = lognormal 80 0.7 600\n"                                    \
    "[learning]\n"                                                              \
    "apprentice = 200\n"                                                        \
    "qtable = epsilon_decay_steps=500\n"                                        \
    "dqn = hidden=16 batch=16 learning_starts=100 train_every=2 target_update=200 " \
    "epsilon_decay_steps=500 replay=2000\n"

/* ---- completion: each request exactly once ------------------------------------- */

typedef struct {
    uint8_t *seen;
    double *arrive;
    size_t cap;
    uint64_t calls, dup, early, bad_place, max_id;
    const sim_scenario *sc;
    int server_type[SIM_MAX_SERVERS];
} tally;

static void tally_init(tally *t, const sim_scenario *sc)
{
    memset(t, 0, sizeof *t);
    t->sc = sc;
    int k = 0;
    for (int g = 0; g < sc->n_gpu; g++)
        for (int c = 0; c < sc->gpu[g].count; c++)
            t->server_type[k++] = g;
}

static void tally_free(tally *t)
{
    free(t->seen);
    free(t->arrive);
}

static void on_done(void *user, uint64_t id, double arrive_ms, double done_ms, int server,
                    int variant)
{
    tally *t = user;
    if (id >= t->cap) {
        size_t nc = t->cap ? 2 * t->cap : 4096;
        while (nc <= id)
            nc *= 2;
        t->seen = realloc(t->seen, nc);
        t->arrive = realloc(t->arrive, nc * sizeof *t->arrive);
        ck_assert(t->seen && t->arrive);
        memset(t->seen + t->cap, 0, nc - t->cap);
        t->cap = nc;
    }
    t->calls++;
    if (t->seen[id]++)
        t->dup++;
    t->arrive[id] = arrive_ms;
    if (id > t->max_id)
        t->max_id = id;
    if (!(done_ms >= arrive_ms))
        t->early++;
    /* the pair must be feasible: the variant loaded on that server's GPU type */
    if (server < 0 || server >= t->sc->n_servers || variant < 0 || variant >= t->sc->n_var ||
        !(t->sc->gpu[t->server_type[server]].load_mask >> variant & 1))
        t->bad_place++;
}

/* number of requests in the stream of `seed` over `secs` seconds: the
   evaluation stream of a copy whose evaluation is that stream, counted by a
   heuristic run (the arrival process does not depend on the policy) */
static uint64_t stream_count(const sim_scenario *sc, uint64_t seed, double secs)
{
    sim_scenario copy = *sc;
    copy.eval_seed = seed;
    copy.eval_s = secs;
    sim_options opt = {.quiet = 1};
    sim_result r;
    run_ok(&copy, "rr:small", &opt, &r);
    uint64_t n = r.n;
    sim_result_free(&r);
    return n;
}

START_TEST(test_each_request_completes_once)
{
    sim_scenario sc;
    parse_ok(HETERO, &sc);
    const char *pols[] = {"random:small", "rr:small", "jsq:small", "lwl:small", "p2c:small",
                          "sed:small", "jsq:large", "greedy", "qtable", "dqn"};
    uint64_t n_eval = stream_count(&sc, sc.eval_seed, sc.eval_s);
    uint64_t n_warm = stream_count(&sc, sc.seed, sc.warmup_s);
    ck_assert_uint_gt(n_eval, 500);
    ck_assert_uint_gt(n_warm, 500);
    for (size_t i = 0; i < sizeof pols / sizeof *pols; i++) {
        tally t;
        tally_init(&t, &sc);
        sim_options opt = {.quiet = 1, .on_complete = on_done, .user = &t};
        sim_result r;
        run_ok(&sc, pols[i], &opt, &r);
        int learned = !strcmp(pols[i], "qtable") || !strcmp(pols[i], "dqn");
        /* learned policies also complete the warm-up stream's requests,
           numbered before the evaluation's */
        uint64_t want = n_eval + (learned ? n_warm : 0);
        ck_assert_msg(t.calls == want, "%s: %llu completions, %llu requests arrived", pols[i],
                      (unsigned long long)t.calls, (unsigned long long)want);
        ck_assert_msg(t.dup == 0, "%s: %llu requests completed twice", pols[i],
                      (unsigned long long)t.dup);
        ck_assert_msg(t.max_id + 1 == want, "%s: ids up to %llu for %llu requests", pols[i],
                      (unsigned long long)t.max_id, (unsigned long long)want);
        for (uint64_t id = 0; id < want; id++)
            ck_assert_msg(t.seen[id] == 1, "%s: request %llu completed %d times", pols[i],
                          (unsigned long long)id, t.seen[id]);
        ck_assert_msg(t.early == 0, "%s: %llu completed before they arrived", pols[i],
                      (unsigned long long)t.early);
        ck_assert_msg(t.bad_place == 0, "%s: %llu ran where their variant is not loaded",
                      pols[i], (unsigned long long)t.bad_place);
        /* ids follow arrival order within the evaluation */
        for (uint64_t id = want - n_eval + 1; id < want; id++)
            ck_assert_msg(t.arrive[id] >= t.arrive[id - 1], "%s: request %llu arrived before %llu",
                          pols[i], (unsigned long long)id, (unsigned long long)id - 1);
        ck_assert_uint_eq(r.n, n_eval);
        ck_assert_uint_eq(r.submitted, n_eval);
        ck_assert_uint_le(r.met, r.n);
        uint64_t vsum = 0;
        for (int v = 0; v < SIM_MAX_VAR; v++)
            vsum += r.variant_count[v];
        ck_assert_uint_eq(vsum, r.n);
        if (!strcmp(pols[i], "jsq:large"))
            ck_assert_uint_eq(r.variant_count[1], r.n);
        if (learned)
            ck_assert_uint_gt(r.n_learn, 0);
        sim_result_free(&r);
        tally_free(&t);
    }
}
END_TEST

/* ---- the latency model by hand ----------------------------------------------------
   One server, 2 slots, overhead 0, no input tokens, tpot 1 ms, growth 0.5:
   with n requests decoding, each advances at 1/(1 + 0.5 (n - 1)) tokens/ms.
   Three requests arrive together (ids 0, 1, 2; 100, 200, 50 output tokens):
     0 and 1 start, decode at n = 2 (x1.5): 0 is done at 150 ms, 1 has 100 left;
     2 waits for the slot, starts at 150: 1 and 2 at x1.5; 2 (50 tokens) is
     done at 150 + 75 = 225, when 1 has 50 left, alone: done at 275. */
START_TEST(test_latency_model_by_hand)
{
    char trace[256], text[2048];
    /* the first row is the training part (train_share = 0 keeps one row) */
    temp_file(trace, sizeof trace, "lat",
              "arrival_s,input_tokens,output_tokens\n0,0,1\n10,0,100\n10,0,200\n10,0,50\n");
    snprintf(text, sizeof text,
             "[scenario]\nslo_base_ms = 1000\nslo_per_token_ms = 0\n"
             "[gpu g]\ncount = 1\nslots = 2\nload = v\n"
             "[variant v]\nmemory_gb = 1\nprofile g = 0 1000 1 0.5\n"
             "[arrivals]\nprocess = trace\ntrace = %s\nformat = csv\ntrain_share = 0\n",
             trace);
    sim_scenario sc;
    parse_ok(text, &sc);
    done_log l = {{0}, 0};
    sim_options opt = {.quiet = 1, .on_complete = log_done, .user = &l};
    sim_result r;
    run_ok(&sc, "jsq", &opt, &r);
    ck_assert_int_eq(l.n, 3);
    ck_assert_double_eq_tol(l.done[0], 150.0, 1e-9);
    ck_assert_double_eq_tol(l.done[1], 275.0, 1e-9);
    ck_assert_double_eq_tol(l.done[2], 225.0, 1e-9);
    ck_assert_double_eq_tol(r.mean_ms, (150.0 + 275.0 + 225.0) / 3, 1e-3);
    /* SLO 1000 ms: all met; the p50 is the middle latency */
    ck_assert_uint_eq(r.met, 3);
    ck_assert_double_eq_tol(r.p50_ms, 225.0, 1e-3);
    /* the slots were busy 150 + 275 + 75 slot-ms out of 2 x 275 */
    ck_assert_double_eq_tol(r.util[0], (150.0 + 275.0 + 75.0) / (2 * 275.0), 1e-9);
    sim_result_free(&r);
    sim_scenario_free(&sc);
    unlink(trace);
}
END_TEST

/* ---- M/M/1 ------------------------------------------------------------------
   One server, one slot, service = exponential(100) output tokens x 0.1 ms:
   mean 10 ms (mu = 100/s), nothing else; Poisson arrivals at lambda.
   The sample mean of an M/M/1 sojourn time has a large variance at high
   load (autocorrelated waits): 3e6 requests at load 0.8 give a relative
   standard error near 0.5% (measured over 20 seeds), so 3% is about six
   standard errors; 1e6 at load 0.5 give about 0.2%. */
static void mm1_check(double rho, double n_req, uint64_t seed)
{
    const double mu = 100.0, lambda = rho * mu;
    char text[1024];
    snprintf(text, sizeof text,
             "[scenario]\nseed = %llu\neval_seed = %llu\nwarmup_s = 0\neval_s = %.3f\n"
             "window_s = 1000\nslo_base_ms = 20\nslo_per_token_ms = 0\n"
             "[gpu cpu]\ncount = 1\nslots = 1\nmemory_gb = 1\nload = only\n"
             "[variant only]\nmemory_gb = 1\nprofile cpu = 0 1e9 0.1 0\n"
             "[arrivals]\nprocess = poisson\nrate = %g\ninput_tokens = const 0\n"
             "output_tokens = exponential 100\n",
             (unsigned long long)seed, (unsigned long long)seed + 1, n_req / lambda, lambda);
    sim_scenario sc;
    parse_ok(text, &sc);
    sim_options opt = {.quiet = 1};
    sim_result r;
    run_ok(&sc, "jsq", &opt, &r);
    double mean = 1000.0 / (mu - lambda), median = log(2.0) * mean;
    ck_assert_msg(r.n > 0.99 * n_req, "load %g: %llu requests", rho, (unsigned long long)r.n);
    ck_assert_msg(fabs(r.mean_ms / mean - 1) < 0.03,
                  "load %g: mean time in system %.4f ms, M/M/1: %.4f ms", rho, r.mean_ms, mean);
    ck_assert_msg(fabs(r.p50_ms / median - 1) < 0.03,
                  "load %g: median time in system %.4f ms, M/M/1: %.4f ms", rho, r.p50_ms,
                  median);
    /* the server is busy a fraction rho of the time */
    ck_assert_msg(fabs(r.util[0] / rho - 1) < 0.03, "load %g: utilisation %.4f", rho, r.util[0]);
    sim_result_free(&r);
}

START_TEST(test_mm1_load_05)
{
    mm1_check(0.5, 1e6, 11);
}
END_TEST

START_TEST(test_mm1_load_08)
{
    mm1_check(0.8, 3e6, 21);
}
END_TEST

/* M/M/c: one server with c = 4 slots and growth 0 is c exponential
   servers sharing one FIFO queue. Erlang C: with a = lambda/mu, rho = a/c,
     P(wait) = (a^c / c! / (1 - rho)) / (sum_{k<c} a^k / k! + a^c / c! / (1 - rho))
     mean time in system = 1/mu + P(wait) / (c mu - lambda). */
START_TEST(test_mmc_erlang_c)
{
    const int c = 4;
    const double mu = 100.0, rho = 0.8, lambda = rho * c * mu, a = lambda / mu;
    double term = 1, sum = 0; /* a^k / k! */
    for (int k = 0; k < c; k++) {
        sum += term;
        term *= a / (k + 1);
    }
    double tail = term / (1 - rho), p_wait = tail / (sum + tail);
    double want = 1000.0 * (1 / mu + p_wait / (c * mu - lambda));
    char text[1024];
    snprintf(text, sizeof text,
             "[scenario]\nseed = 31\neval_seed = 32\nwarmup_s = 0\neval_s = %.3f\n"
             "window_s = 1000\n"
             "[gpu cpu]\ncount = 1\nslots = %d\nmemory_gb = 1\nload = only\n"
             "[variant only]\nmemory_gb = 1\nprofile cpu = 0 1e9 0.1 0\n"
             "[arrivals]\nprocess = poisson\nrate = %g\ninput_tokens = const 0\n"
             "output_tokens = exponential 100\n",
             2e6 / lambda, c, lambda);
    sim_scenario sc;
    parse_ok(text, &sc);
    sim_options opt = {.quiet = 1};
    sim_result r;
    run_ok(&sc, "jsq", &opt, &r);
    ck_assert_msg(fabs(r.mean_ms / want - 1) < 0.03, "M/M/4 at 0.8: mean %.4f ms, Erlang C %.4f ms",
                  r.mean_ms, want);
    ck_assert_msg(fabs(r.util[0] / rho - 1) < 0.03, "M/M/4: utilisation %.4f", r.util[0]);
    sim_result_free(&r);
}
END_TEST

/* M/D/1 through the fixed parts of the model: overhead 5 ms + 500 input
   tokens at 100,000 tokens/s = 10 ms, no output. Pollaczek-Khinchine:
   mean time in system = S + rho S / (2 (1 - rho)); at rho 0.7: 21.667 ms. */
START_TEST(test_md1_pollaczek_khinchine)
{
    const double svc = 10.0, rho = 0.7, lambda = rho / svc * 1000.0;
    char text[1024];
    snprintf(text, sizeof text,
             "[scenario]\nseed = 41\neval_seed = 42\nwarmup_s = 0\neval_s = %.3f\n"
             "window_s = 1000\n"
             "[gpu cpu]\ncount = 1\nslots = 1\nmemory_gb = 1\nload = only\n"
             "[variant only]\nmemory_gb = 1\nprofile cpu = 5 100000 0.1 0\n"
             "[arrivals]\nprocess = poisson\nrate = %g\ninput_tokens = const 500\n"
             "output_tokens = const 0\n",
             1e6 / lambda, lambda);
    sim_scenario sc;
    parse_ok(text, &sc);
    sim_options opt = {.quiet = 1};
    sim_result r;
    run_ok(&sc, "jsq", &opt, &r);
    double want = svc + rho * svc / (2 * (1 - rho));
    ck_assert_msg(fabs(r.mean_ms / want - 1) < 0.03, "M/D/1 at 0.7: mean %.4f ms, P-K %.4f ms",
                  r.mean_ms, want);
    /* nobody is faster than the service time itself */
    ck_assert_msg(r.p50_ms >= svc - 1e-3, "p50 %.4f below the service time", r.p50_ms);
    sim_result_free(&r);
}
END_TEST

/* the shipped mm1.scn: lambda 50/s, mu 100/s: 20 ms */
START_TEST(test_mm1_shipped)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/data/scenarios/mm1.scn", top_dir());
    sim_scenario sc;
    sim_err e = {{0}};
    ck_assert_msg(sim_scenario_load(path, &sc, &e) == 0, "%s", e.msg);
    ck_assert_double_eq_tol(sc.capacity, 100.0, 1e-9);
    sim_options opt = {.quiet = 1};
    sim_result r;
    run_ok(&sc, "jsq", &opt, &r);
    ck_assert_msg(fabs(r.mean_ms / 20.0 - 1) < 0.03, "mm1.scn: mean %.4f ms, M/M/1: 20 ms",
                  r.mean_ms);
    sim_result_free(&r);
}
END_TEST

/* an SLO of 0 ms (allowed: slo_base_ms is in [0, 1e9]) misses every request
   but must not break the policies (the learned ones' features divide by it) */
START_TEST(test_zero_slo)
{
    sim_scenario sc;
    parse_ok(HETERO, &sc);
    sc.slo_base_ms = 0;
    sc.slo_per_token_ms = 0;
    sc.warmup_s = 20;
    sc.eval_s = 20;
    const char *pols[] = {"jsq:small", "greedy", "qtable", "dqn"};
    for (size_t i = 0; i < sizeof pols / sizeof *pols; i++) {
        sim_options opt = {.quiet = 1};
        sim_result r;
        run_ok(&sc, pols[i], &opt, &r);
        ck_assert_uint_gt(r.n, 0);
        ck_assert_uint_eq(r.met, 0);
        sim_result_free(&r);
    }
}
END_TEST

/* ---- determinism ------------------------------------------------------------------ */

static int arrays_equal(const double *a, const double *b, size_t n)
{
    return n == 0 || (a && b && memcmp(a, b, n * sizeof *a) == 0);
}

/* every field, bitwise; train_s is wall-clock time and decision_ns is only
   measured with time_decisions (off here, so 0) */
static void assert_same(const sim_result *a, const sim_result *b, const char *what)
{
    ck_assert_msg(!strcmp(a->name, b->name), "%s: name", what);
    ck_assert_msg(a->n == b->n && a->met == b->met && a->submitted == b->submitted,
                  "%s: counts %llu/%llu", what, (unsigned long long)a->n,
                  (unsigned long long)b->n);
#define SAME(f) ck_assert_msg(memcmp(&a->f, &b->f, sizeof a->f) == 0, "%s: " #f " differs", what)
    SAME(duration_s);
    SAME(p50_ms);
    SAME(p95_ms);
    SAME(p99_ms);
    SAME(mean_ms);
    SAME(slo_attainment);
    SAME(goodput);
    SAME(weighted_goodput);
    SAME(mean_accuracy);
    SAME(util);
    SAME(decision_ns);
    SAME(variant_count);
    SAME(n_windows);
    SAME(n_learn);
#undef SAME
    ck_assert_msg(arrays_equal(a->window_attain, b->window_attain, a->n_windows),
                  "%s: window_attain differs", what);
    ck_assert_msg(arrays_equal(a->learn_reward, b->learn_reward, a->n_learn),
                  "%s: learn_reward differs", what);
    ck_assert_msg(arrays_equal(a->learn_attain, b->learn_attain, a->n_learn),
                  "%s: learn_attain differs", what);
}

static int differs(const sim_result *a, const sim_result *b)
{
    return a->n != b->n || a->met != b->met ||
           memcmp(&a->mean_ms, &b->mean_ms, sizeof a->mean_ms) ||
           memcmp(&a->p99_ms, &b->p99_ms, sizeof a->p99_ms);
}

START_TEST(test_determinism)
{
    const char *pols[] = {"p2c:small", "random:small", "greedy", "qtable", "dqn"};
    sim_scenario sc, other;
    parse_ok(HETERO, &sc);
    other = sc;
    other.seed = 55;
    other.eval_seed = 66;
    sim_options opt = {.quiet = 1};
    for (size_t i = 0; i < sizeof pols / sizeof *pols; i++) {
        sim_result a, b, c;
        run_ok(&sc, pols[i], &opt, &a);
        run_ok(&sc, pols[i], &opt, &b);
        assert_same(&a, &b, pols[i]);
        run_ok(&other, pols[i], &opt, &c);
        ck_assert_msg(differs(&a, &c), "%s: seed 55/66 gives the results of seed 5/6", pols[i]);
        sim_result_free(&a);
        sim_result_free(&b);
        sim_result_free(&c);
    }
    /* learned: the warm-up seed alone changes what is learned */
    sim_scenario warm = sc;
    warm.seed = 77;
    sim_result a, c;
    run_ok(&sc, "dqn", &opt, &a);
    run_ok(&warm, "dqn", &opt, &c);
    ck_assert_msg(!arrays_equal(a.learn_reward, c.learn_reward,
                                a.n_learn < c.n_learn ? a.n_learn : c.n_learn),
                  "dqn: another warm-up seed, the same learning curve");
    sim_result_free(&a);
    sim_result_free(&c);
}
END_TEST

/* ---- scenario-file errors ------------------------------------------------------
   A valid scenario; each case overwrites lines FROM.. with its own lines and
   expects the message to start with "t.scn:LINE: FIELD:". */
static const char *const base_lines[] = {
    /*  1 */ "[scenario]",
    /*  2 */ "name = t",
    /*  3 */ "seed = 1",
    /*  4 */ "warmup_s = 10",
    /*  5 */ "eval_s = 10",
    /*  6 */ "[gpu big]",
    /*  7 */ "count = 2",
    /*  8 */ "slots = 4",
    /*  9 */ "memory_gb = 80",
    /* 10 */ "load = small large",
    /* 11 */ "[gpu little]",
    /* 12 */ "count = 1",
    /* 13 */ "memory_gb = 24",
    /* 14 */ "load = small",
    /* 15 */ "[variant small]",
    /* 16 */ "accuracy = 0.5",
    /* 17 */ "memory_gb = 14",
    /* 18 */ "profile big = 10 20000 5 0.05",
    /* 19 */ "profile little = 20 5000 15 0.1",
    /* 20 */ "[variant large]",
    /* 21 */ "accuracy = 0.8",
    /* 22 */ "memory_gb = 40",
    /* 23 */ "profile big = 30 5000 20 0.08",
    /* 24 */ "[arrivals]",
    /* 25 */ "process = poisson",
    /* 26 */ "load = 0.5",
    /* 27 */ "input_tokens = const 100",
    /* 28 */ "output_tokens = const 50",
};
#define N_BASE (sizeof base_lines / sizeof *base_lines)

typedef struct {
    int from;            /* first line overwritten (1-based); 0: none */
    const char *lines;   /* '\n'-separated; may add lines past the end */
    const char *prefix;  /* the expected start of the message */
    const char *has;     /* and a word of its text (or NULL) */
} bad_case;

static const bad_case bad_scenarios[] = {
    {3, "sede = 1", "t.scn:3: sede:", "unknown key"},
    {8, "slots = many", "t.scn:8: slots:", "not a number"},
    {8, "slots = 2.5", "t.scn:8: slots:", "whole number"},
    {7, "count = 0", "t.scn:7: count:", "out of range"},
    {21, "accuracy = 1.5", "t.scn:21: accuracy:", "out of range"},
    {3, "seed = x", "t.scn:3: seed:", "not a number"},
    {3, "seed = 1.5", "t.scn:3: seed:", "whole number"},
    {11, "[gpux little]", "t.scn:11: section:", "unknown section"},
    {1, "[scenario", "t.scn:1: section:", NULL},
    {1, "seed = 3\n[scenario]", "t.scn:1: seed:", "outside a section"},
    {9, "memory = 80", "t.scn:9: memory:", "unknown key"},
    {16, "accuracy 0.5", "t.scn:16: line:", "key = value"},
    {16, "accuracy =", "t.scn:16: accuracy:", "empty"},
    {11, "[gpu big]", "t.scn:11: gpu:", "twice"},
    {20, "[variant small]", "t.scn:20: variant:", "twice"},
    {11, "[gpu abcdefghijklmnopqrstuvwxyz0123456789]", "t.scn:11: gpu:", "longer"},
    /* a rate for mmpp would be silently ignored: refused */
    {25, "process = mmpp\nload = 0.5\nrates = 1 2\ndwell_s = 1 1", "t.scn:26: load:",
     "mmpp"},
    /* names become policy names (jsq:NAME, comma lists), file names, JSON */
    {20, "[variant s:mall]", "t.scn:20: variant:", "letters"},
    {11, "[gpu a,b]", "t.scn:11: gpu:", "letters"},
    {14, "load = small huge", "t.scn:14: load:", "huge"},
    {13, "memory_gb = 10", "t.scn:14: load:", "memory_gb"},
    {13, "load = small", "t.scn:14: load:", "twice"},
    {19, "profile tpu = 20 5000 15 0.1", "t.scn:19: profile:", "tpu"},
    /* missing profile: named at the variant's section */
    {19, "# (none for little)", "t.scn:15: profile:", "little"},
    {23, "profile big = 30 5000 20", "t.scn:23: profile:", "4 numbers"},
    {23, "profile big = 30 fast 20 0.08", "t.scn:23: profile:", "fast"},
    {23, "profile big = 30 5000 20 101", "t.scn:23: profile:", "out of range"},
    /* a GPU type with nothing loaded: named at its section */
    {14, "# (nothing)", "t.scn:11: load:", "little"},
    /* more servers than SIM_MAX_SERVERS: named at the count that crosses it */
    {12, "count = 63", "t.scn:12: count:", "servers"},
    {25, "process = bursty", "t.scn:25: process:", "bursty"},
    {26, "load_variant = huge", "t.scn:26: load_variant:", "huge"},
    {25, "process = mmpp\nrates = 5 10", "t.scn:25: dwell_s:", "mmpp"},
    {25, "process = mmpp\ndwell_s = 60 20", "t.scn:25: rates:", "mmpp"},
    {25, "process = mmpp\nrates = 5 10\ndwell_s = 60", "t.scn:27: dwell_s:", "rates has 2"},
    {25, "process = mmpp\ndwell_s = 60\nrates = 5 10", "t.scn:27: rates:", "dwell_s has 1"},
    {25, "process = mmpp\nrates = 5 10\ndwell_s = 60 0", "t.scn:27: dwell_s:", "out of range"},
    {25, "process = diurnal", "t.scn:25: period_s:", "diurnal"},
    {25, "process = trace", "t.scn:25: trace:", "trace = FILE"},
    {26, "# (no rate, no load)", "t.scn:25: rate:", "'rate' or 'load'"},
    {27, "rate = 5", "t.scn:27: rate:", "not both"},
    {26, "load = 101", "t.scn:26: load:", "out of range"},
    {27, "input_tokens = gamma 3 4", "t.scn:27: input_tokens:", "gamma"},
    {28, "output_tokens = lognormal 100", "t.scn:28: output_tokens:", "parameters"},
    {28, "output_tokens = uniform 10 5", "t.scn:28: output_tokens:", "below"},
    {28, "output_tokens = lognormal 100 6", "t.scn:28: output_tokens:", "sigma"},
    {28, "output_tokens = exponential -3", "t.scn:28: output_tokens:", "out of range"},
    {29, "[learning]\napprentice = 2.5", "t.scn:30: apprentice:", "whole number"},
    {29, "[learning]\napprentice = x", "t.scn:30: apprentice:", "not a number"},
    {29, "[learning]\ndqn_actions = gpu", "t.scn:30: dqn_actions:", "gpu"},
    {29, "[learning]\nepsilon = 1", "t.scn:30: epsilon:", "unknown key"},
};

/* the base with lines [from, from + k) replaced by the case's k lines */
static void build_case(const bad_case *c, char *out, size_t n)
{
    const char *rep[16];
    char buf[512];
    int k = 0;
    snprintf(buf, sizeof buf, "%s", c->lines);
    for (char *p = buf; p && k < 16;) {
        rep[k++] = p;
        char *nl = strchr(p, '\n');
        if (nl)
            *nl++ = 0;
        p = nl;
    }
    size_t len = 0;
    int total = (int)N_BASE;
    if (c->from && c->from + k - 1 > total)
        total = c->from + k - 1;
    for (int line = 1; line <= total; line++) {
        const char *s = c->from && line >= c->from && line < c->from + k ? rep[line - c->from]
                                                                       : base_lines[line - 1];
        len += (size_t)snprintf(out + len, n - len, "%s\n", s);
        ck_assert_uint_lt(len, n);
    }
}

START_TEST(test_scenario_base_is_valid)
{
    bad_case none = {0, "", "", NULL};
    char text[4096];
    build_case(&none, text, sizeof text);
    sim_scenario sc;
    sim_err e = {{0}};
    ck_assert_msg(sim_scenario_parse(text, "t.scn", &sc, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(sc.n_servers, 3);
    ck_assert_uint_eq(sc.gpu[0].load_mask, 3);
    ck_assert_uint_eq(sc.gpu[1].load_mask, 1);
    sim_scenario_free(&sc);
}
END_TEST

START_TEST(test_scenario_errors)
{
    const bad_case *c = &bad_scenarios[_i];
    char text[4096];
    build_case(c, text, sizeof text);
    sim_scenario sc;
    sim_err e = {{0}};
    int rc = sim_scenario_parse(text, "t.scn", &sc, &e);
    ck_assert_msg(rc == -1, "case %d ('%s'): accepted", _i, c->lines);
    ck_assert_msg(strncmp(e.msg, c->prefix, strlen(c->prefix)) == 0,
                  "case %d ('%s'): '%s' does not start with '%s'", _i, c->lines, e.msg, c->prefix);
    if (c->has)
        ck_assert_msg(strstr(e.msg, c->has) != NULL, "case %d: '%s' lacks '%s'", _i, e.msg,
                      c->has);
    sim_scenario_free(&sc);
}
END_TEST

/* the same through a file: the message names the file's path */
START_TEST(test_scenario_file_error_names_path)
{
    char path[256], want[300];
    temp_file(path, sizeof path, "scn",
              "[scenario]\n# a comment\n\nname = x\n[gpu g]\nslots = 0\n");
    sim_scenario sc;
    sim_err e = {{0}};
    ck_assert_int_eq(sim_scenario_load(path, &sc, &e), -1);
    snprintf(want, sizeof want, "%s:6: slots:", path);
    ck_assert_msg(strncmp(e.msg, want, strlen(want)) == 0, "'%s' vs '%s'", e.msg, want);
    unlink(path);
    ck_assert_int_eq(sim_scenario_load(path, &sc, &e), -1);
    snprintf(want, sizeof want, "%s: file:", path);
    ck_assert_msg(strncmp(e.msg, want, strlen(want)) == 0, "'%s' vs '%s'", e.msg, want);
}
END_TEST

/* ---- trace-file errors ---------------------------------------------------------------- */
typedef struct {
    int format;
    const char *text;
    int line;
    const char *field;
} bad_trace;

#define AZ_HDR "TIMESTAMP,ContextTokens,GeneratedTokens\n"
#define AZ_ROW1 "2023-11-16 18:15:46.6805900,374,44\n"
#define AZ_ROW2 "2023-11-16 18:15:50.9951690,396,109\n"
#define MC_ROW1 "{\"timestamp\": 0, \"input_length\": 6758, \"output_length\": 500}\n"
#define MC_ROW2 "{\"timestamp\": 3000, \"input_length\": 7322, \"output_length\": 490}\n"
#define CSV_HDR "arrival_s,input_tokens,output_tokens\n"

static const bad_trace bad_traces[] = {
    /* azure */
    {SIM_TRACE_AZURE, "TIMESTAMP,ContextTokens,Generated\n" AZ_ROW1 AZ_ROW2, 1, "header"},
    {SIM_TRACE_AZURE, AZ_HDR AZ_ROW1 "2023-11-16 18:15:50.99,39x,109\n", 3, "ContextTokens"},
    {SIM_TRACE_AZURE, AZ_HDR AZ_ROW1 "2023-11-16 18:15:50.99,396,\n", 3, "GeneratedTokens"},
    {SIM_TRACE_AZURE, AZ_HDR AZ_ROW1 "2023-11-16 18:15:50.99,-396,1\n", 3, "ContextTokens"},
    {SIM_TRACE_AZURE, AZ_HDR AZ_ROW1 "2023-11-16 25:15:50.99,396,1\n", 3, "TIMESTAMP"},
    {SIM_TRACE_AZURE, AZ_HDR AZ_ROW2 AZ_ROW1, 3, "TIMESTAMP"},
    {SIM_TRACE_AZURE, AZ_HDR AZ_ROW1 "2023-11-16 18:15:50.99,396\n", 3, "line"},
    {SIM_TRACE_AZURE, AZ_HDR AZ_ROW1 "2023-11-16 18:15:50.99,396,1,7,8\n", 3, "line"},
    {SIM_TRACE_AZURE, AZ_HDR "\n# comment\n" AZ_ROW1 "18:15:50,1,2\n", 5, "TIMESTAMP"},
    /* mooncake */
    {SIM_TRACE_MOONCAKE, MC_ROW1 "{\"timestamp\": 3000, \"input_length\": 7322}\n", 2,
     "output_length"},
    {SIM_TRACE_MOONCAKE, MC_ROW1 "{\"input_length\": 7322, \"output_length\": 490}\n", 2,
     "timestamp"},
    {SIM_TRACE_MOONCAKE, MC_ROW1 "{\"timestamp\": 3000, \"input_length\": \"x\", "
                                 "\"output_length\": 490}\n", 2, "input_length"},
    {SIM_TRACE_MOONCAKE, MC_ROW2 MC_ROW1, 2, "timestamp"},
    {SIM_TRACE_MOONCAKE, MC_ROW1 "timestamp,3000\n", 2, "line"},
    {SIM_TRACE_MOONCAKE, MC_ROW1 "{\"timestamp\": 3000, \"input_length\": -1, "
                                 "\"output_length\": 490}\n", 2, "input_length"},
    /* csv */
    {SIM_TRACE_CSV, "arrival_s,in,out\n0,1,2\n1,1,2\n", 1, "header"},
    {SIM_TRACE_CSV, CSV_HDR "0,1,2\n1.5s,1,2\n", 3, "arrival_s"},
    {SIM_TRACE_CSV, CSV_HDR "0,1,2\n1,one,2\n", 3, "input_tokens"},
    {SIM_TRACE_CSV, CSV_HDR "0,1,2\n1,1,2x\n", 3, "output_tokens"},
    {SIM_TRACE_CSV, CSV_HDR "0,1,2\n1,1,-2\n", 3, "output_tokens"},
    {SIM_TRACE_CSV, CSV_HDR "5,1,2\n4,1,2\n", 3, "arrival_s"},
    {SIM_TRACE_CSV, CSV_HDR "0,1,2\n1,1\n", 3, "line"},
    {SIM_TRACE_CSV, "0,1,2\n1,1,2\n2 1 2\n", 3, "line"},
};

static const char *const format_names[] = {"azure", "mooncake", "csv"};

START_TEST(test_trace_errors)
{
    const bad_trace *c = &bad_traces[_i];
    char path[256], want[320];
    temp_file(path, sizeof path, "trace", c->text);
    sim_trace_row *rows = NULL;
    size_t n = 0;
    sim_err e = {{0}};
    int rc = sim_trace_load(path, c->format, &rows, &n, &e);
    unlink(path);
    ck_assert_msg(rc == -1, "case %d (%s): accepted", _i, format_names[c->format]);
    ck_assert_ptr_null(rows);
    snprintf(want, sizeof want, "%s:%d: %s:", path, c->line, c->field);
    ck_assert_msg(strncmp(e.msg, want, strlen(want)) == 0, "case %d (%s): '%s' vs '%s'", _i,
                  format_names[c->format], e.msg, want);
}
END_TEST

/* good traces of each format, and a bad one reached through a scenario */
START_TEST(test_trace_formats)
{
    static const char *const good[3] = {
        AZ_HDR AZ_ROW1 AZ_ROW2,
        MC_ROW1 MC_ROW1 MC_ROW2,
        "# own trace\n" CSV_HDR "0.5,10,20\n1.5,30,40\n",
    };
    for (int f = 0; f < 3; f++) {
        char path[256];
        temp_file(path, sizeof path, "good", good[f]);
        sim_trace_row *rows = NULL;
        size_t n = 0;
        sim_err e = {{0}};
        ck_assert_msg(sim_trace_load(path, f, &rows, &n, &e) == 0, "%s", e.msg);
        unlink(path);
        ck_assert_uint_eq(n, f == 1 ? 3 : 2);
        ck_assert_double_eq(rows[0].t, 0);
        if (f == 0) {
            ck_assert_double_eq_tol(rows[1].t, 50.9951690 - 46.6805900, 1e-6);
            ck_assert_double_eq(rows[1].in, 396);
            ck_assert_double_eq(rows[1].out, 109);
        } else if (f == 1) {
            /* two requests in one 3 s tick are spread over it */
            ck_assert_double_eq_tol(rows[1].t, 1.5, 1e-12);
            ck_assert_double_eq_tol(rows[2].t, 3.0, 1e-12);
            ck_assert_double_eq(rows[2].in, 7322);
        } else {
            ck_assert_double_eq_tol(rows[1].t, 1.0, 1e-12);
            ck_assert_double_eq(rows[1].out, 40);
        }
        free(rows);
    }
    /* a bad trace behind a scenario: the trace's own file, line and field */
    char tpath[256], text[1024], want[320];
    temp_file(tpath, sizeof tpath, "viascn", CSV_HDR "0,1,2\n1,1,x\n");
    snprintf(text, sizeof text,
             "[gpu g]\nload = v\n[variant v]\nprofile g = 1 1000 1 0\n"
             "[arrivals]\nprocess = trace\ntrace = %s\n",
             tpath);
    sim_scenario sc;
    sim_err e = {{0}};
    ck_assert_int_eq(sim_scenario_parse(text, "t.scn", &sc, &e), -1);
    snprintf(want, sizeof want, "%s:3: output_tokens:", tpath);
    ck_assert_msg(strncmp(e.msg, want, strlen(want)) == 0, "'%s' vs '%s'", e.msg, want);
    unlink(tpath);
    ck_assert_int_eq(sim_scenario_parse(text, "t.scn", &sc, &e), -1);
    snprintf(want, sizeof want, "%s: file:", tpath);
    ck_assert_msg(strncmp(e.msg, want, strlen(want)) == 0, "'%s' vs '%s'", e.msg, want);
}
END_TEST

/* ---- shipped data ---------------------------------------------------------------------- */

/* data lines of a trace file: non-blank, not a comment, not the header */
static size_t count_rows(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char line[8192];
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '\n' || *s == '\r' || *s == 0 || *s == '#' || !strncmp(s, "TIMESTAMP", 9) ||
            !strncmp(s, "arrival_s", 9))
            continue;
        n++;
    }
    fclose(f);
    return n;
}

START_TEST(test_shipped_traces)
{
    static const struct {
        const char *file;
        int format;
    } tr[] = {{"AzureLLMInferenceTrace_code.csv", SIM_TRACE_AZURE},
              {"AzureLLMInferenceTrace_conv.csv", SIM_TRACE_AZURE},
              {"mooncake_conversation_trace.jsonl", SIM_TRACE_MOONCAKE}};
    for (size_t i = 0; i < sizeof tr / sizeof *tr; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/data/traces/%s", top_dir(), tr[i].file);
        sim_trace_row *rows = NULL;
        size_t n = 0;
        sim_err e = {{0}};
        ck_assert_msg(sim_trace_load(path, tr[i].format, &rows, &n, &e) == 0, "%s", e.msg);
        ck_assert_uint_eq(n, count_rows(path));
        ck_assert_uint_gt(n, 5000);
        ck_assert_double_eq(rows[0].t, 0);
        for (size_t k = 1; k < n; k++)
            ck_assert_msg(rows[k].t >= rows[k - 1].t && rows[k].in >= 0 && rows[k].out >= 0,
                          "%s: row %zu", tr[i].file, k);
        /* one hour (azure), about one hour (mooncake) */
        ck_assert_msg(rows[n - 1].t > 1800 && rows[n - 1].t < 7200, "%s: spans %g s",
                      tr[i].file, rows[n - 1].t);
        free(rows);
    }
}
END_TEST

START_TEST(test_shipped_scenarios)
{
    static const char *const files[] = {"a-homogeneous.scn", "b-hetero-bursty.scn",
                                        "c-trace-azure-conv.scn", "mm1.scn"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/data/scenarios/%s", top_dir(), files[i]);
        sim_scenario sc;
        sim_err e = {{0}};
        ck_assert_msg(sim_scenario_load(path, &sc, &e) == 0, "%s", e.msg);
        ck_assert_msg(sc.capacity > 0 && sc.rate > 0, "%s", files[i]);
        if (i == 0) {
            /* 8 x 12 slots; one request: 25 ms + mean input / 6.5 tokens/ms +
               mean output x 17 ms x (1 + 0.06 x 11) (lognormal means m e^(s^2/2)) */
            double in = 800 * exp(0.5), out = 120 * exp(0.32);
            double svc = 25 + in / 6.5 + out * 17 * (1 + 0.06 * 11);
            ck_assert_double_eq_tol(sc.capacity, 96 * 1000 / svc, 1e-6 * sc.capacity);
            ck_assert_double_eq_tol(sc.rate, 0.8 * sc.capacity, 1e-9 * sc.rate);
            ck_assert_int_eq(sc.n_servers, 8);
        } else if (i == 1) {
            ck_assert_int_eq(sc.n_servers, 8);
            ck_assert_int_eq(sc.n_gpu, 3);
            ck_assert_int_eq(sc.n_var, 3);
            ck_assert_int_eq(sc.process, SIM_ARR_MMPP);
            /* calm below the capacity, bursts above it; the long-run rate is
               the dwell-weighted mean of the states' rates */
            ck_assert_int_eq(sc.n_rates, 2);
            ck_assert(sc.rates[0] < sc.capacity && sc.rates[1] > sc.capacity);
            double num = sc.rates[0] * sc.dwell_s[0] + sc.rates[1] * sc.dwell_s[1];
            ck_assert_double_eq_tol(sc.rate, num / (sc.dwell_s[0] + sc.dwell_s[1]),
                                    1e-9 * sc.rate);
        } else if (i == 2) {
            ck_assert_int_eq(sc.process, SIM_ARR_TRACE);
            char tpath[1024];
            snprintf(tpath, sizeof tpath, "%s/data/traces/AzureLLMInferenceTrace_conv.csv",
                     top_dir());
            ck_assert_uint_eq(sc.n_trace, count_rows(tpath));
            /* mean rate 95% of the capacity */
            ck_assert_double_eq_tol(sc.rate, 0.95 * sc.capacity, 1e-9 * sc.rate);
        } else {
            ck_assert_double_eq_tol(sc.capacity, 100, 1e-9);
            ck_assert_double_eq(sc.rate, 50);
        }
        sim_scenario_free(&sc);
    }
}
END_TEST

/* ---- greedy, by hand ------------------------------------------------------------------
   One server, 4 slots; 100 input and 100 output tokens; growth 0. Alone:
     fast:     10 ms + 100 / (1000 tokens/s) + 100 x 1 ms  =  210 ms
     accurate: 10 ms + 100 / (1000 tokens/s) + 100 x 10 ms = 1110 ms
   At 0.01 requests/s requests (almost) never overlap, and fewer than 4 at
   once cost nothing with growth 0. SLO 2000 ms: accurate meets it, so the
   greedy picks it every time; SLO 1000 ms: only fast does. */
static void greedy_case(double slo, double rate, double secs, sim_result *r)
{
    char text[1024];
    snprintf(text, sizeof text,
             "[scenario]\nseed = 3\neval_seed = 4\nwarmup_s = 0\neval_s = %g\n"
             "slo_base_ms = %g\nslo_per_token_ms = 0\n"
             "[gpu g]\ncount = 1\nslots = 4\nmemory_gb = 80\nload = fast accurate\n"
             "[variant fast]\naccuracy = 0.5\nmemory_gb = 10\nprofile g = 10 1000 1 0\n"
             "[variant accurate]\naccuracy = 0.9\nmemory_gb = 10\nprofile g = 10 1000 10 0\n"
             "[arrivals]\nprocess = poisson\nrate = %g\ninput_tokens = const 100\n"
             "output_tokens = const 100\n",
             secs, slo, rate);
    sim_scenario sc;
    parse_ok(text, &sc);
    sim_options opt = {.quiet = 1};
    run_ok(&sc, "greedy", &opt, r);
}

/* azure timestamps across a month and a year boundary: whole dates count */
START_TEST(test_azure_dates)
{
    char path[256];
    temp_file(path, sizeof path, "azure",
              "TIMESTAMP,ContextTokens,GeneratedTokens\n"
              "2023-11-30 23:59:59.0000000,10,1\n"
              "2023-12-01 00:00:01.5000000,10,1\n"
              "2024-01-01 00:00:00.0000000,10,1\n");
    sim_trace_row *rows = NULL;
    size_t n = 0;
    sim_err e = {{0}};
    ck_assert_msg(sim_trace_load(path, SIM_TRACE_AZURE, &rows, &n, &e) == 0, "%s", e.msg);
    ck_assert_uint_eq(n, 3);
    ck_assert_double_eq_tol(rows[1].t, 2.5, 1e-6);
    /* 2023-12-01 00:00:01.5 -> 2024-01-01 00:00:00: 31 days less 1.5 s */
    ck_assert_double_eq_tol(rows[2].t - rows[1].t, 31 * 86400.0 - 1.5, 1e-6);
    free(rows);
    unlink(path);
}
END_TEST

/* a variant that no GPU type loads: no fixed-variant heuristic for it (its
   server list would be empty), by name or in the default list */
START_TEST(test_variant_loaded_nowhere)
{
    static const char text[] = "[gpu g]\nload = a\n[variant a]\nprofile g = 1 1000 1 0\n"
                               "[variant b]\nprofile g = 1 1000 1 0\n"
                               "[arrivals]\nrate = 10\n";
    sim_scenario sc;
    sim_err e = {{0}};
    ck_assert_msg(sim_scenario_parse(text, "t.scn", &sc, &e) == 0, "%s", e.msg);
    sim_policy_spec p, list[64];
    ck_assert_int_eq(sim_policy_parse(&sc, "jsq:b", &p, &e), -1);
    ck_assert_msg(strstr(e.msg, "no GPU type loads variant 'b'") != NULL, "%s", e.msg);
    ck_assert_int_eq(sim_policy_parse(&sc, "jsq:a", &p, &e), 0);
    size_t n = sim_default_policies(&sc, list, 64);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(list[i].kind >= SIM_POL_GREEDY || list[i].variant == 0, "%s",
                      list[i].name);
    ck_assert_uint_eq(n, 6 + 3); /* six heuristics with a, greedy, qtable, dqn */
    p.variant = 1;               /* built by hand: refused by the run */
    sim_options opt = {.quiet = 1, .scale = 0.01};
    sim_result r;
    ck_assert_int_eq(sim_run_policy(&sc, &p, &opt, &r, &e), -1);
    ck_assert_msg(strstr(e.msg, "loaded on no GPU type") != NULL, "%s", e.msg);
    sim_scenario_free(&sc);
}
END_TEST

START_TEST(test_greedy_by_hand)
{
    sim_result r;
    greedy_case(2000, 0.01, 100000, &r);
    ck_assert_uint_gt(r.n, 800);
    ck_assert_uint_eq(r.variant_count[1], r.n); /* accurate, always */
    ck_assert_double_eq_tol(r.p50_ms, 1110, 1e-3);
    ck_assert_double_eq_tol(r.p99_ms, 1110, 1e-3);
    ck_assert_uint_eq(r.met, r.n);
    ck_assert_double_eq_tol(r.mean_accuracy, 0.9, 1e-12);
    sim_result_free(&r);

    greedy_case(1000, 0.01, 100000, &r);
    ck_assert_uint_eq(r.variant_count[0], r.n); /* fast, always */
    ck_assert_double_eq_tol(r.p50_ms, 210, 1e-3);
    ck_assert_uint_eq(r.met, r.n);
    sim_result_free(&r);

    /* 10 requests/s: accurate alone serves at most 4 / 1.11 s = 3.6/s, so the
       greedy must send some to fast, and keeps (almost) every SLO */
    greedy_case(2000, 10, 1000, &r);
    ck_assert_uint_gt(r.variant_count[0], r.n / 10);
    ck_assert_uint_gt(r.variant_count[1], r.n / 10);
    ck_assert_msg(r.slo_attainment > 0.95, "attainment %g", r.slo_attainment);
    sim_result_free(&r);
}
END_TEST

/* ---- arrival processes ------------------------------------------------------------
   Counted through the completion hook's arrival times. */
typedef struct {
    double period_ms;
    uint64_t n, first_half;
} arr_count;

static void count_arrival(void *user, uint64_t id, double arrive_ms, double done_ms, int server,
                          int variant)
{
    arr_count *a = user;
    (void)id, (void)done_ms, (void)server, (void)variant;
    a->n++;
    if (a->period_ms > 0 && fmod(arrive_ms, a->period_ms) < a->period_ms / 2)
        a->first_half++;
}

static arr_count arrivals_of(const char *arrivals, double eval_s, double period_s,
                             sim_scenario *sc)
{
    char text[1024];
    snprintf(text, sizeof text,
             "[scenario]\nseed = 51\neval_seed = 52\nwarmup_s = 0\neval_s = %g\n"
             "window_s = 1000\n"
             "[gpu g]\ncount = 4\nslots = 64\nload = v\n"
             "[variant v]\nprofile g = 0 1e9 0.01 0\n"
             "[arrivals]\n%sinput_tokens = const 0\noutput_tokens = const 1\n",
             eval_s, arrivals);
    parse_ok(text, sc);
    arr_count a = {period_s * 1000, 0, 0};
    sim_options opt = {.quiet = 1, .on_complete = count_arrival, .user = &a};
    sim_result r;
    run_ok(sc, "rr", &opt, &r);
    ck_assert_uint_eq(r.n, a.n);
    sim_result_free(&r);
    return a;
}

START_TEST(test_arrival_processes)
{
    sim_scenario sc;
    /* Poisson: rate x time */
    arr_count a = arrivals_of("process = poisson\nrate = 50\n", 20000, 0, &sc);
    ck_assert_msg(fabs((double)a.n / (50.0 * 20000) - 1) < 0.01, "poisson: %llu arrivals",
                  (unsigned long long)a.n);
    /* MMPP: 5/s for a mean 1.2 s, 20/s for a mean 0.4 s: long-run
       (5 x 1.2 + 20 x 0.4) / 1.6 = 8.75/s (about 50,000 state cycles) */
    a = arrivals_of("process = mmpp\nrates = 5 20\ndwell_s = 1.2 0.4\n", 80000, 0, &sc);
    ck_assert_double_eq_tol(sc.rate, 8.75, 1e-12);
    ck_assert_msg(fabs((double)a.n / (8.75 * 80000) - 1) < 0.03, "mmpp: %llu arrivals",
                  (unsigned long long)a.n);
    /* diurnal: 10/s x (1 + 0.5 sin(2 pi t / 100 s)) over 100 periods: the
       mean is 10/s; the first half of each period (sin > 0) gets
       (1 + 1/pi) / (1 - 1/pi) = 1.934 times as many as the second */
    a = arrivals_of("process = diurnal\nrate = 10\namplitude = 0.5\nperiod_s = 100\n", 10000,
                    100, &sc);
    ck_assert_msg(fabs((double)a.n / (10.0 * 10000) - 1) < 0.02, "diurnal: %llu arrivals",
                  (unsigned long long)a.n);
    double ratio = (double)a.first_half / (double)(a.n - a.first_half);
    double want = (1 + 1 / M_PI) / (1 - 1 / M_PI);
    ck_assert_msg(fabs(ratio / want - 1) < 0.03, "diurnal: halves %.4f, want %.4f", ratio, want);
}
END_TEST

/* trace replay: the evaluation is the rows after train_share of the trace,
   at `load` x capacity; the arrival times are the trace's, compressed */
START_TEST(test_trace_replay)
{
    char trace[256], text[1024], rows[8192];
    size_t len = (size_t)snprintf(rows, sizeof rows, "arrival_s,input_tokens,output_tokens\n");
    for (int i = 0; i < 100; i++)
        len += (size_t)snprintf(rows + len, sizeof rows - len, "%d,%d,%d\n", 2 * i, 10 + i,
                                20 + i % 7);
    temp_file(trace, sizeof trace, "replay", rows);
    snprintf(text, sizeof text,
             "[gpu g]\ncount = 2\nslots = 4\nload = v\n"
             "[variant v]\nprofile g = 1 1000 1 0\n"
             "[arrivals]\nprocess = trace\ntrace = %s\nformat = csv\nload = 0.5\n"
             "train_share = 0.75\nwarmup_passes = 3\n",
             trace);
    sim_scenario sc;
    parse_ok(text, &sc);
    unlink(trace);
    ck_assert_uint_eq(sc.n_trace, 100);
    /* native rate: 100 requests over 198 s; replayed at 0.5 x capacity */
    ck_assert_double_eq_tol(sc.speedup, 0.5 * sc.capacity / (100.0 / 198.0), 1e-9 * sc.speedup);
    ck_assert_double_eq_tol(sc.rate, 0.5 * sc.capacity, 1e-9 * sc.rate);
    tally t;
    tally_init(&t, &sc);
    sim_options opt = {.quiet = 1, .on_complete = on_done, .user = &t};
    sim_result r;
    run_ok(&sc, "jsq", &opt, &r);
    /* the last 25 rows, 2 s apart in the trace: 24 gaps of 2 s / speedup */
    ck_assert_uint_eq(r.n, 25);
    ck_assert_uint_eq(t.calls, 25);
    ck_assert_double_eq_tol(r.duration_s, 48.0 / sc.speedup, 1e-9);
    for (uint64_t id = 1; id < 25; id++)
        ck_assert_double_eq_tol(t.arrive[id] - t.arrive[id - 1], 2000.0 / sc.speedup, 1e-6);
    sim_result_free(&r);
    tally_free(&t);
    /* a learned policy trains on the first 75 rows, warmup_passes times */
    tally_init(&t, &sc);
    run_ok(&sc, "qtable", &opt, &r);
    ck_assert_uint_eq(r.n, 25);
    ck_assert_uint_eq(t.calls, 3 * 75 + 25);
    ck_assert_uint_eq(t.dup, 0);
    sim_result_free(&r);
    tally_free(&t);
    sim_scenario_free(&sc);
}
END_TEST

/* ---- generated scenarios (generate.c) ---------------------------------------------------- */

static void generate_ok(uint64_t seed, unsigned index, char *buf, size_t len)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/data/traces", top_dir());
    sim_err e = {{0}};
    ck_assert_msg(sim_generate(seed, index, dir, buf, len, &e) == 0, "g%llu-%u: %s",
                  (unsigned long long)seed, index, e.msg);
}

static const uint64_t gen_seeds[3] = {1, 7, 12345678901234567ull};

/* 300 indexes of each of 3 families: they parse (sim_scenario_finish
   included) and keep the promises of dlsched-sim(1), RANDOM SCENARIOS */
START_TEST(test_generate_parses)
{
    static char text[SIM_GENERATE_LEN];
    for (int si = 0; si < 3; si++)
        for (unsigned idx = 0; idx < 300; idx++) {
            uint64_t seed = gen_seeds[si];
            generate_ok(seed, idx, text, sizeof text);
            sim_scenario sc;
            sim_err e = {{0}};
            int rc = sim_scenario_parse(text, "generated.scn", &sc, &e);
            ck_assert_msg(rc == 0, "g%llu-%u: %s\n%s", (unsigned long long)seed, idx, e.msg,
                          text);
            char prefix[64];
            snprintf(prefix, sizeof prefix, "g%llu-%u-", (unsigned long long)seed, idx);
            ck_assert_msg(!strncmp(sc.name, prefix, strlen(prefix)), "name %s", sc.name);
            ck_assert_msg(strstr(text, "\n# summary: ") != NULL, "%s", sc.name);
            ck_assert_int_ge(sc.n_gpu, 1);
            ck_assert_int_le(sc.n_gpu, 4);
            ck_assert_int_ge(sc.n_var, 1);
            ck_assert_int_le(sc.n_var, 4);
            ck_assert_int_le(sc.n_servers, 24);
            uint32_t any = 0;
            for (int g = 0; g < sc.n_gpu; g++) {
                ck_assert_int_ge(sc.gpu[g].count, 1);
                ck_assert_int_le(sc.gpu[g].count, 6);
                ck_assert_int_ge(sc.gpu[g].slots, 4);
                ck_assert_int_le(sc.gpu[g].slots, 32);
                /* the smallest variant everywhere: fixed-variant heuristics exist */
                ck_assert_msg(sc.gpu[g].load_mask & 1u, "%s: gpu %s", sc.name, sc.gpu[g].name);
                any |= sc.gpu[g].load_mask;
            }
            for (int v = 0; v < sc.n_var; v++) {
                ck_assert_msg(any >> v & 1, "%s: variant %s loaded nowhere", sc.name,
                              sc.var[v].name);
                if (v) {
                    ck_assert(sc.var[v].memory_gb > sc.var[v - 1].memory_gb);
                    ck_assert(sc.var[v].accuracy > sc.var[v - 1].accuracy);
                }
            }
            ck_assert_msg(sc.capacity > 0 && isfinite(sc.capacity), "%s", sc.name);
            double load = sc.rate / sc.capacity;
            ck_assert_msg(load >= 0.5 - 1e-9 && load <= 1.1 + 1e-9, "%s: load %g", sc.name,
                          load);
            if (sc.process == SIM_ARR_MMPP) {
                double num = 0, den = 0;
                for (int i = 0; i < sc.n_rates; i++)
                    num += sc.rates[i] / sc.capacity * sc.dwell_s[i], den += sc.dwell_s[i];
                ck_assert_double_eq_tol(num / den, load, 1e-9);
                ck_assert(sc.n_rates == 2 || sc.n_rates == 3);
            }
            ck_assert(sc.slo_base_ms >= 500 && sc.slo_base_ms <= 4000);
            ck_assert(sc.slo_per_token_ms >= 15 && sc.slo_per_token_ms <= 80);
            ck_assert(sc.miss_penalty >= 0.5 && sc.miss_penalty <= 2);
            ck_assert_double_eq(sc.window_s, 20);
            ck_assert_uint_eq(sc.apprentice, 5000);
            ck_assert(sc.seed != sc.eval_seed);
            /* 100k-200k warm-up requests, at most 1800 s of evaluation */
            double warm = sc.process == SIM_ARR_TRACE
                              ? sc.warmup_passes * floor(sc.train_share * (double)sc.n_trace)
                              : sc.warmup_s * sc.rate;
            ck_assert_msg(warm > 0.98e5 && warm < (sc.process == SIM_ARR_TRACE ? 2.3e5 : 2.02e5),
                          "%s: %g warm-up requests", sc.name, warm);
            if (sc.process != SIM_ARR_TRACE)
                ck_assert_msg(sc.eval_s <= 1800 && sc.eval_s * sc.rate <= 30300 + sc.rate, "%s: eval %g s",
                              sc.name, sc.eval_s);
            sim_scenario_free(&sc);
        }
}
END_TEST

START_TEST(test_generate_deterministic)
{
    static char a[SIM_GENERATE_LEN], b[SIM_GENERATE_LEN], c[SIM_GENERATE_LEN];
    for (unsigned idx = 0; idx < 50; idx++) {
        generate_ok(7, idx, a, sizeof a);
        generate_ok(7, idx + 1, c, sizeof c); /* another index in between */
        generate_ok(7, idx, b, sizeof b);
        ck_assert_str_eq(a, b);
        ck_assert_str_ne(a, c);
        generate_ok(8, idx, c, sizeof c);
        ck_assert_str_ne(a, c);
    }
    /* too small a buffer: an error, not a truncated scenario */
    sim_err e = {{0}};
    ck_assert_int_eq(sim_generate(7, 0, "data/traces", a, 100, &e), -1);
    ck_assert_msg(strstr(e.msg, "buffer") != NULL, "%s", e.msg);
}
END_TEST

/* every arrival process, and a replay of every shipped trace, among the
   first 200 indexes of each family */
START_TEST(test_generate_processes)
{
    static char text[SIM_GENERATE_LEN];
    static const char *const want[] = {
        "process = poisson\n", "process = mmpp\n", "process = diurnal\n",
        "/AzureLLMInferenceTrace_code.csv\nformat = azure\n",
        "/AzureLLMInferenceTrace_conv.csv\nformat = azure\n",
        "/mooncake_conversation_trace.jsonl\nformat = mooncake\n"};
    for (int si = 0; si < 3; si++) {
        int seen[6] = {0};
        for (unsigned idx = 0; idx < 200; idx++) {
            generate_ok(gen_seeds[si], idx, text, sizeof text);
            for (int k = 0; k < 6; k++)
                seen[k] += strstr(text, want[k]) != NULL;
        }
        for (int k = 0; k < 6; k++)
            ck_assert_msg(seen[k] > 0, "seed %llu: no '%s'", (unsigned long long)gen_seeds[si],
                          want[k]);
    }
}
END_TEST

/* ---- the suite ----------------------------------------------------------------------------- */
static Suite *suite_sim(void)
{
    Suite *s = suite_create("sim");
    TCase *tc = tcase_create("files");
    tcase_add_test(tc, test_scenario_base_is_valid);
    tcase_add_test(tc, test_variant_loaded_nowhere);
    tcase_add_test(tc, test_azure_dates);
    tcase_add_loop_test(tc, test_scenario_errors, 0,
                        (int)(sizeof bad_scenarios / sizeof *bad_scenarios));
    tcase_add_test(tc, test_scenario_file_error_names_path);
    tcase_add_loop_test(tc, test_trace_errors, 0, (int)(sizeof bad_traces / sizeof *bad_traces));
    tcase_add_test(tc, test_trace_formats);
    tcase_add_test(tc, test_shipped_traces);
    tcase_add_test(tc, test_shipped_scenarios);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("engine");
    tcase_add_test(tc, test_latency_model_by_hand);
    tcase_add_test(tc, test_each_request_completes_once);
    tcase_add_test(tc, test_determinism);
    tcase_add_test(tc, test_zero_slo);
    tcase_add_test(tc, test_greedy_by_hand);
    tcase_add_test(tc, test_arrival_processes);
    tcase_add_test(tc, test_trace_replay);
    tcase_set_timeout(tc, 300);
    suite_add_tcase(s, tc);

    tc = tcase_create("mm1");
    tcase_add_test(tc, test_mm1_load_05);
    tcase_add_test(tc, test_mm1_load_08);
    tcase_add_test(tc, test_mm1_shipped);
    tcase_add_test(tc, test_mmc_erlang_c);
    tcase_add_test(tc, test_md1_pollaczek_khinchine);
    tcase_set_timeout(tc, 600);
    suite_add_tcase(s, tc);

    tc = tcase_create("generate");
    tcase_add_test(tc, test_generate_parses);
    tcase_add_test(tc, test_generate_deterministic);
    tcase_add_test(tc, test_generate_processes);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}

Suite *suite_edge(void); /* check_edge.c */

int main(void)
{
    SRunner *sr = srunner_create(suite_sim());
    srunner_add_suite(sr, suite_edge());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
