/*
 * check_edge.c - tests of dlsched-sim's edge workload (examples/clustersim
 * edge*.c), linked into check_sim.
 *
 * Oracles computed by hand, not the simulator's output:
 *   - one stream on an idle device: every frame on time at the model's run
 *     time, the utilisation, the power and the weighted goodput in closed
 *     form;
 *   - non-preemptive priority: a low-priority frame blocking a
 *     high-priority one, the deadline-aware greedy's choice worked out by
 *     hand for both streams, and the same frames with a late outcome;
 *   - the response-time analysis of the worst-case heuristic on a two-stream
 *     set computed by hand;
 *   - the thermal model: the temperature after t seconds of a steady duty
 *     cycle against the first-order closed form;
 *   - scenario errors name the file, line and key; generated edge scenarios
 *     parse and are the same text for the same (seed, index); every policy
 *     sees the same frames; a run is deterministic.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

Suite *suite_edge(void);

static void parse_edge(const char *text, sim_scenario *sc)
{
    sim_err e = {{0}};
    int rc = sim_scenario_parse(text, "edge.scn", sc, &e);
    ck_assert_msg(rc == 0, "parse: %s", e.msg);
    ck_assert(sc->is_edge);
}

static void run_edge(const sim_scenario *sc, const char *name, sim_result *r)
{
    sim_policy_spec p;
    sim_err e = {{0}};
    ck_assert_msg(sim_policy_parse(sc, name, &p, &e) == 0, "%s", e.msg);
    sim_options opt = {.quiet = 1};
    ck_assert_msg(sim_run_policy(sc, &p, &opt, r, &e) == 0, "%s: %s", name, e.msg);
}

/* an action's count by its name ("big@640", "skip") */
static unsigned long long count_of(const sim_scenario *sc, const sim_result *r, const char *name)
{
    char buf[64];
    for (int a = 0; a < SIM_EDGE_ACTIONS; a++)
        if (a <= sc->edge.n_models * sc->edge.n_res &&
            !strcmp(sim_edge_action_name(sc, a, buf, sizeof buf), name))
            return (unsigned long long)r->action_count[a];
    ck_abort_msg("no action %s", name);
    return 0;
}

#define EDGE_HEAD                                                                          \
    "[scenario]\nworkload = edge\nseed = 5\neval_seed = 6\nwarmup_s = 0\neval_s = %g\n"   \
    "window_s = 10\nmiss_penalty = 1\nskip_penalty = 0.5\n"                                \
    "[device d]\nresolutions = 640\nreference_px = 640\njitter = 1 1\nidle_w = 2\n"      \
    "[mode m]\nmhz = 1000\nwatts = 12\n"

/* ---- one stream: closed form --------------------------------------------------
   10 Hz, 100 ms deadline, a 20 ms model, no objects, no jitter: every frame
   is on time at 20 ms; the device is busy 20% of the time; power = idle +
   (12 - 2) x 0.2; weighted goodput = 10 frames/s x weight 2 x accuracy 0.4 */
START_TEST(test_one_stream_by_hand)
{
    char text[2048];
    snprintf(text, sizeof text,
             EDGE_HEAD "[stream cam]\nrate_hz = 10\ndeadline_ms = 100\n"
                       "[model v]\naccuracy = 0.4\nlatency_ms = 20\n"
                       "[scene only]\nobjects = 0\nweights = cam:2\n",
             100.0);
    sim_scenario sc;
    parse_edge(text, &sc);
    ck_assert_double_eq_tol(sc.rate, 10, 1e-12);
    ck_assert_double_eq_tol(sc.capacity, 50, 1e-9); /* 1000 / 20 frames/s */
    static const char *const pols[] = {"deadline", "worst-case", "scene-rules"};
    for (size_t i = 0; i < 3; i++) {
        sim_result r;
        run_edge(&sc, pols[i], &r);
        ck_assert_uint_eq(r.n, 1000);
        ck_assert_uint_eq(r.met, 1000);
        ck_assert_uint_eq(r.late + r.dropped + r.skipped, 0);
        ck_assert_double_eq_tol(r.p50_ms, 20, 1e-9);
        ck_assert_double_eq_tol(r.p99_ms, 20, 1e-9);
        ck_assert_double_eq_tol(r.weighted_goodput, 10 * 2 * 0.4, 1e-9);
        ck_assert_double_eq(r.safety_misses, 0);
        /* the last frame (arriving at 99.9 s) ends at 99.92 s */
        ck_assert_double_eq_tol(r.util[0], 1000 * 20.0 / 99920.0, 1e-9);
        ck_assert_double_eq_tol(r.power_w, 2 + 10 * 1000 * 20.0 / 99920.0, 1e-9);
        ck_assert_double_eq_tol(r.mean_reward, 2 * 0.4, 1e-12);
        sim_result_free(&r);
    }
}
END_TEST

/* ---- priority and blocking, by hand ---------------------------------------------
   Two streams at 10 Hz; "low" (priority 1, safety weight 1) arrives at 0,
   100, ...; "high" (priority 0, weight 3) at 5, 105, ... with a 10 ms
   deadline. Models: small 4 ms (accuracy 0.3), large 8 ms (0.5); no
   objects, no jitter.
   deadline-aware greedy:
     low at 0: the device is free, no high-priority frame arrives before it
       starts: budget 100 ms: large, runs 0..8.
     high at 5: 3 ms of the running frame ahead: budget 10 - 3 = 7 ms: large
       (8) does not fit, small (4) does: runs 8..12, due at 15: on time.
     weighted goodput 10/s x (3 x 0.3 + 1 x 0.5) = 14.
   worst-case (the response-time analysis, clock 1, no objects, jitter 1):
     both large: high waits for a low frame (8) and runs 8: 16 > 10.
     Cheapest step (weighted accuracy lost per ms saved): low large->small
     (1 x 0.2 / 4 = 0.05) before high (3 x 0.2 / 4 = 0.15): 4 + 8 = 12 > 10.
     Then low small->skip (1 x 0.3 / 4 = 0.075) before high large->small
     (0.15): high alone, 8 <= 10. So: high large, low skipped.
   With only the large model: the greedy skips high (7 ms of budget for an
   8 ms run); the analysis drops low (1 x 0.5 / 8 < 3 x 0.5 / 8). */
static void two_streams(const char *models, sim_scenario *sc)
{
    char text[2048];
    snprintf(text, sizeof text,
             EDGE_HEAD "[stream high]\nrate_hz = 10\ndeadline_ms = 10\nphase_ms = 5\n"
                       "priority = 0\n"
                       "[stream low]\nrate_hz = 10\ndeadline_ms = 100\npriority = 1\n"
                       "%s[scene only]\nobjects = 0\nweights = high:3 low:1\n",
             10.0, models);
    parse_edge(text, sc);
}

START_TEST(test_blocking_by_hand)
{
    sim_scenario sc;
    two_streams("[model small]\naccuracy = 0.3\nlatency_ms = 4\n"
                "[model large]\naccuracy = 0.5\nlatency_ms = 8\n",
                &sc);
    sim_result r;
    run_edge(&sc, "deadline", &r);
    ck_assert_uint_eq(r.n, 200);
    ck_assert_uint_eq(r.met, 200);
    ck_assert_uint_eq(count_of(&sc, &r, "large@640"), 100);
    ck_assert_uint_eq(count_of(&sc, &r, "small@640"), 100);
    /* latencies: low 8 ms, high 12 - 5 = 7 ms */
    ck_assert_double_eq_tol(r.p50_ms, 7.5, 1e-9); /* between 7 and 8 */
    ck_assert_double_eq_tol(r.weighted_goodput, 14, 1e-9);
    sim_result_free(&r);
    run_edge(&sc, "worst-case", &r);
    ck_assert_uint_eq(r.met, 100);
    ck_assert_uint_eq(count_of(&sc, &r, "large@640"), 100);
    ck_assert_uint_eq(r.skipped, 100);
    ck_assert_double_eq_tol(r.weighted_goodput, 10 * 3 * 0.5, 1e-9);
    ck_assert_double_eq_tol(r.safety_misses, 1.0 / 4.0, 1e-12);
    sim_result_free(&r);

    /* only the large model: high is blocked 3 ms and ends at 16 > 15 */
    two_streams("[model large]\naccuracy = 0.5\nlatency_ms = 8\n", &sc);
    run_edge(&sc, "deadline", &r);
    /* the greedy sees 7 ms of budget for an 8 ms run: skips high */
    ck_assert_uint_eq(r.skipped, 100);
    ck_assert_uint_eq(r.met, 100);
    sim_result_free(&r);
    run_edge(&sc, "worst-case", &r);
    ck_assert_uint_eq(count_of(&sc, &r, "large@640"), 100);
    ck_assert_uint_eq(r.skipped, 100);
    ck_assert_uint_eq(r.met, 100);
    ck_assert_uint_eq(r.late, 0);
    sim_result_free(&r);
}
END_TEST

/* back to back: 100 Hz, 9 ms runs, 10 ms deadlines: every frame on time, the
   device busy 9 of every 10 ms */
START_TEST(test_fifo_back_to_back)
{
    char text[2048];
    snprintf(text, sizeof text,
             EDGE_HEAD "[stream a]\nrate_hz = 100\ndeadline_ms = 10\n"
                       "[model v]\naccuracy = 0.5\nlatency_ms = 9\n"
                       "[scene only]\nobjects = 0\n",
             1.0);
    sim_scenario sc;
    parse_edge(text, &sc);
    sim_result r;
    run_edge(&sc, "deadline", &r);
    ck_assert_uint_eq(r.n, 100);
    ck_assert_uint_eq(r.met, 100);
    ck_assert_double_eq_tol(r.util[0], 100 * 9.0 / 999.0, 1e-9);
    sim_result_free(&r);
}
END_TEST

/* ---- thermal: first order --------------------------------------------------------
   One stream keeps the device busy 50% (10 Hz x 50 ms); throttling never
   triggers (throttle_c 290). Averaged over a period the temperature obeys
   dT/dt = (ambient + rise x 0.5 - T) / tau, so after t seconds
   T = A + 0.5 R (1 - exp(-t / tau)); with tau = 20 s the period's ripple
   is under 0.1% of R. */
START_TEST(test_thermal_first_order)
{
    char text[2048];
    snprintf(text, sizeof text,
             EDGE_HEAD "[stream a]\nrate_hz = 10\ndeadline_ms = 100\n"
                       "[model v]\naccuracy = 0.5\nlatency_ms = 50\n"
                       "[scene only]\nobjects = 0\n",
             60.0);
    /* thermal keys into the device section */
    char *dev = strstr(text, "idle_w = 2\n");
    ck_assert_ptr_nonnull(dev);
    char tail[2048];
    snprintf(tail, sizeof tail, "%s", dev + strlen("idle_w = 2\n"));
    snprintf(dev, sizeof text - (size_t)(dev - text),
             "idle_w = 2\nthermal = on\nambient_c = 30\nrise_c = 40\ntau_s = 20\n"
             "throttle_c = 290\nrecover_c = 280\n%s", tail);
    sim_scenario sc;
    parse_edge(text, &sc);
    sim_result r;
    run_edge(&sc, "deadline", &r);
    ck_assert_uint_eq(r.n_windows, 6);
    for (size_t w = 0; w < r.n_windows; w++) {
        /* the state at the window's last arrival: t = 10 (w + 1) - 0.1 s,
           just before a frame starts (the device idle 50 ms before it) */
        double t = 10.0 * (double)(w + 1) - 0.1;
        double want = 30 + 0.5 * 40 * (1 - exp(-t / 20));
        ck_assert_msg(fabs(r.timeline[w].temp_c - want) < 0.05 * 40 * 0.02 + 0.3,
                      "window %zu: %g C, closed form %g C", w, r.timeline[w].temp_c, want);
    }
    ck_assert_double_eq(r.throttled_share, 0);
    sim_result_free(&r);
}
END_TEST

/* throttling: at full load the temperature crosses throttle_c, the clock
   drops (runs take 1 / throttle_clock longer) and recovers below recover_c */
START_TEST(test_throttle_hysteresis)
{
    char text[2048];
    snprintf(text, sizeof text,
             "[scenario]\nworkload = edge\nseed = 5\neval_seed = 6\nwarmup_s = 0\n"
             "eval_s = 600\nwindow_s = 10\n"
             "[device d]\nresolutions = 640\njitter = 1 1\nthermal = on\nambient_c = 30\n"
             "rise_c = 60\ntau_s = 10\nthrottle_c = 80\nrecover_c = 70\nthrottle_clock = 0.5\n"
             "[stream a]\nrate_hz = 20\ndeadline_ms = 50\n"
             "[model v]\naccuracy = 0.5\nlatency_ms = 45\n"
             "[scene only]\nobjects = 0\n");
    sim_scenario sc;
    parse_edge(text, &sc);
    sim_result r;
    run_edge(&sc, "deadline", &r);
    /* unthrottled: 45 ms of every 50 (90%): steady state 30 + 54 = 84 > 80:
       it throttles; throttled the 90 ms run no longer fits the 50 ms
       deadline: the greedy skips, the device cools below 70 and recovers.
       So the time throttled is neither 0 nor all of it, every run frame is
       on time, and a throttled window is one with skips */
    ck_assert(r.throttled_share > 0.05 && r.throttled_share < 0.95);
    ck_assert_uint_eq(r.late + r.dropped, 0);
    ck_assert(r.skipped > 0);
    int saw_slow = 0;
    for (size_t w = 0; w < r.n_windows; w++)
        saw_slow |= r.timeline[w].clock == 0.5;
    ck_assert(saw_slow);
    sim_result_free(&r);
}
END_TEST

/* ---- files -------------------------------------------------------------------------- */

static const struct {
    const char *text, *want;
} bad_edge[] = {
    {"[scenario]\nworkload = edge\n[device d]\n[stream s]\n[model m]\n[scene x]\n[gpu g]\n",
     "edge.scn:7: section: workload = edge (line 2) takes no gpu"},
    {"[scenario]\n[stream s]\n", "edge.scn:2: section: an edge section in a cluster scenario"},
    {"[scenario]\nworkload = edge\n[device d]\nspeed = 2\n", "edge.scn:4: speed: unknown key"},
    {"[scenario]\nworkload = edge\n[device d]\nresolutions = 640 320\n",
     "edge.scn:4: resolutions: sizes must ascend"},
    {"[scenario]\nworkload = edge\n[device d]\nresolutions = 320 640\n[stream s]\n"
     "[model m]\n[scene x]\nres_accuracy = 0.5\n",
     "edge.scn:8: res_accuracy: 1 values, but the device has 2"},
    {"[scenario]\nworkload = edge\n[device d]\n[stream s]\n[model m]\n[scene x]\n"
     "weights = t:2\n", "edge.scn:7: weights: no stream 't'"},
    {"[scenario]\nworkload = edge\n[device d]\n[stream s]\nrate_hz = 30\ndeadline_ms = 50\n"
     "[model m]\n[scene x]\n", "edge.scn:4: deadline_ms: stream s: 50 ms is longer"},
    {"[scenario]\nworkload = edge\n[device d]\n[device e]\n", "edge.scn:4: device: a second"},
    {"[scenario]\nworkload = edge\n[stream s]\n[model m]\n[scene x]\n",
     "edge.scn: device: workload = edge needs a [device NAME] section"},
    {"[scenario]\nworkload = fog\n", "edge.scn:2: workload: 'fog' is not one of cluster, edge"},
    {"[scenario]\nworkload = edge\n[device d]\nthermal = on\nthrottle_c = 70\nrecover_c = 80\n"
     "[stream s]\n[model m]\n[scene x]\n", "edge.scn:3: recover_c: 80 must be below"},
    {"[scenario]\nworkload = edge\n[device d]\n[stream a b]\n", "edge.scn:4: section: "},
    {"[scenario]\nworkload = edge\n[device d]\n[stream s]\n[stream s]\n",
     "edge.scn:5: stream: 's' is declared twice"},
};

START_TEST(test_edge_errors)
{
    sim_scenario sc;
    sim_err e = {{0}};
    ck_assert_int_eq(sim_scenario_parse(bad_edge[_i].text, "edge.scn", &sc, &e), -1);
    ck_assert_msg(strstr(e.msg, bad_edge[_i].want) != NULL, "case %d: got '%s', want '%s'", _i,
                  e.msg, bad_edge[_i].want);
}
END_TEST

/* data/scenarios/f-edge-drive.scn (DLSCHED_TOP: the source tree) */
static void load_drive(sim_scenario *sc)
{
    char path[1024];
    const char *top = getenv("DLSCHED_TOP");
    snprintf(path, sizeof path, "%s/data/scenarios/f-edge-drive.scn", top && *top ? top : ".");
    sim_err e = {{0}};
    ck_assert_msg(sim_scenario_load(path, sc, &e) == 0, "%s", e.msg);
}

START_TEST(test_shipped_drive)
{
    sim_scenario sc;
    sim_err e = {{0}};
    load_drive(&sc);
    ck_assert(sc.is_edge);
    ck_assert_int_eq(sc.edge.n_streams, 4);
    ck_assert_int_eq(sc.edge.n_scenes, 4);
    ck_assert_double_eq_tol(sc.rate, 60, 1e-12);
    ck_assert_double_eq(sc.eval_s, 1800);
    sim_policy_spec p[8];
    ck_assert_uint_eq(sim_default_policies(&sc, p, 8), 5);
    /* a cluster policy name is refused with the edge list */
    ck_assert_int_eq(sim_policy_parse(&sc, "jsq", &p[0], &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "worst-case, deadline, scene-rules"));
}
END_TEST

/* every policy sees the same frames; the same seed gives the same results */
START_TEST(test_edge_determinism)
{
    sim_scenario sc;
    load_drive(&sc);
    sc.eval_s = 120;
    sim_result a, b, c;
    run_edge(&sc, "deadline", &a);
    run_edge(&sc, "deadline", &b);
    run_edge(&sc, "scene-rules", &c);
    ck_assert_uint_eq(a.n, b.n);
    ck_assert_uint_eq(a.n, c.n);
    ck_assert(a.n >= 120 * 60 - 1 && a.n <= 120 * 60 + 1);
    ck_assert_double_eq(a.weighted_goodput, b.weighted_goodput);
    ck_assert_double_eq(a.p99_ms, b.p99_ms);
    /* the scene at each window's end is the drive's, not the policy's */
    for (size_t w = 0; w < a.n_windows; w++)
        ck_assert_int_eq(a.timeline[w].scene, c.timeline[w].scene);
    sim_result_free(&a);
    sim_result_free(&b);
    sim_result_free(&c);
}
END_TEST

START_TEST(test_generate_edge)
{
    static char t1[SIM_GENERATE_LEN], t2[SIM_GENERATE_LEN];
    int seen_streams[5] = {0}, seen_thermal[2] = {0};
    for (unsigned i = 0; i < 16; i++) {
        sim_err e = {{0}};
        ck_assert_msg(sim_generate_edge(7, i, t1, sizeof t1, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(sim_generate_edge(7, i, t2, sizeof t2, &e), 0);
        ck_assert_str_eq(t1, t2);
        sim_scenario sc;
        ck_assert_msg(sim_scenario_parse(t1, "gen.scn", &sc, &e) == 0, "%u: %s", i, e.msg);
        ck_assert(sc.is_edge);
        ck_assert_int_eq(sc.n_servers, 1);
        ck_assert(sc.edge.n_streams >= 1 && sc.edge.n_streams <= 4);
        seen_streams[sc.edge.n_streams]++;
        seen_thermal[sc.edge.thermal]++;
        char want[32];
        snprintf(want, sizeof want, "ge7-%u-", i);
        ck_assert_msg(!strncmp(sc.name, want, strlen(want)), "%s", sc.name);
    }
    for (int k = 1; k <= 4; k++)
        ck_assert_int_eq(seen_streams[k], 4);
    ck_assert_int_eq(seen_thermal[0], 8);
    ck_assert_int_eq(seen_thermal[1], 8);
}
END_TEST

Suite *suite_edge(void)
{
    Suite *s = suite_create("sim-edge");
    TCase *tc = tcase_create("model");
    tcase_add_test(tc, test_one_stream_by_hand);
    tcase_add_test(tc, test_blocking_by_hand);
    tcase_add_test(tc, test_fifo_back_to_back);
    tcase_add_test(tc, test_thermal_first_order);
    tcase_add_test(tc, test_throttle_hysteresis);
    tcase_add_test(tc, test_edge_determinism);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    tc = tcase_create("files");
    tcase_add_loop_test(tc, test_edge_errors, 0, (int)(sizeof bad_edge / sizeof *bad_edge));
    tcase_add_test(tc, test_shipped_drive);
    tcase_add_test(tc, test_generate_edge);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}
