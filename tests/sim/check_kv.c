/*
 * check_kv.c - tests of dlsched-sim's KV-cache model and the gateway's
 * scorers (examples/clustersim/kvcache.c), beside check_sim.c.
 *
 * Oracles, worked by hand:
 *   - a prefix hit: the second request of a two-request Mooncake-format
 *     trace finds its first two blocks cached and prefills only the third;
 *   - LRU eviction order: a sequence of requests on a 10-block cache whose
 *     hits and misses (hence latencies) follow from evicting the oldest
 *     unpinned block first, a prompt's tail before its head;
 *   - admission: a request whose blocks do not fit waits for the running
 *     one to finish although a slot is free;
 *   - the gateway's score: queue, KV, prefix and no-hit LRU scorers on three
 *     servers, each total computed by hand;
 *   - staleness: the scraped signals change only at scrape ticks;
 *   - a shipped gateway scenario parses, and every request completes once.
 *
 * Environment: DLSCHED_TOP (source tree, for data/; default ".").
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "simint.h"
#include "simtest.h"

/* One server with a cache of exactly 10 blocks of 100 tokens: 1 KB per
   token, 100 KB a block, 1000 KB = (1 GB - weights) x 1 (the weights are
   1 - 1000 / 2^20 GB, exact in binary). 1 ms per prompt token, 1 ms per
   output token, no batch slow-down, no overhead. The trace's first row is
   the (unused) training part. Runs rr on the trace of `rows`. */
static void kv_run(const char *rows, const char *tag, done_log *l, sim_result *r)
{
    char trace[256], text[2048];
    temp_file(trace, sizeof trace, tag, rows);
    snprintf(text, sizeof text,
             "[scenario]\nslo_base_ms = 100000\nslo_per_token_ms = 0\nkv_block_tokens = 100\n"
             "[gpu g]\ncount = 1\nslots = 4\nmemory_gb = 1\nmemory_utilization = 1\nload = v\n"
             "[variant v]\nmemory_gb = 0.99904632568359375\nkv_kb_per_token = 1\n"
             "profile g = 0 1000 1 0\n"
             "[arrivals]\nprocess = trace\ntrace = %s\nformat = mooncake\n"
             "prefix_block_tokens = 100\ntrain_share = 0\n",
             trace);
    sim_scenario sc;
    parse_ok(text, &sc);
    *l = (done_log){{0}, 0};
    sim_options opt = {.quiet = 1, .on_complete = log_done, .user = l};
    run_ok(&sc, "rr", &opt, r);
    sim_scenario_free(&sc);
    unlink(trace);
}

/* a Mooncake line at t seconds (distinct times: no tick spreading) */
static void row(char *buf, size_t n, double t_s, int in, int out, const char *ids)
{
    size_t l = strlen(buf);
    snprintf(buf + l, n - l,
             "{\"timestamp\": %.0f, \"input_length\": %d, \"output_length\": %d, "
             "\"hash_ids\": [%s]}\n",
             t_s * 1000, in, out, ids);
}

START_TEST(test_prefix_hit_by_hand)
{
    char rows[2048] = "";
    row(rows, sizeof rows, 0, 100, 1, "900");
    /* A: 3 blocks (1, 2, 3) prefilled in 300 ms, 100 tokens decoded in
       100 ms: latency 400, TTFT 300 */
    row(rows, sizeof rows, 10, 300, 100, "1, 2, 3");
    /* B: blocks 1 and 2 cached: prefills 100 tokens (100 ms), decodes 100 */
    row(rows, sizeof rows, 20, 300, 100, "1, 2, 9");
    done_log l;
    sim_result r;
    kv_run(rows, "kv_hit", &l, &r);
    ck_assert_int_eq(l.n, 2);
    ck_assert_double_eq_tol(l.done[0], 400.0, 1e-6);
    ck_assert_double_eq_tol(l.done[1], 200.0, 1e-6);
    /* hits: 200 of 600 prompt tokens; TTFT p90 of {300, 100}: 100 + 0.9 x 200 */
    ck_assert_double_eq_tol(r.prefix_hit_rate, 200.0 / 600.0, 1e-12);
    ck_assert_double_eq_tol(r.ttft_p90_ms, 280.0, 1e-3);
    ck_assert_double_eq_tol(r.e2e_p90_ms, 200.0 + 0.9 * 200.0, 1e-3);
    sim_result_free(&r);
}
END_TEST

/* Requests one after another (out = 0: a request holds its prompt's
   blocks only), each latency = 1 ms x the tokens not found cached.
   The cache after each, oldest first (a finished prompt joins last block
   first):
     R0 1 2 3        -> 3 2 1
     R1 4 5 6        -> 3 2 1 6 5 4
     R2 7 8 9 10     -> 3 2 1 6 5 4 10 9 8 7            (full: 10 blocks)
     R3 11 12        evicts 3, 2       -> 1 6 5 4 10 9 8 7 12 11
     R4 1 2 3        hit 1; evicts 6, 5 -> 4 10 9 8 7 12 11 3 2 1     200 ms
     R5 4 5 6        hit 4; evicts 10, 9 -> 8 7 12 11 3 2 1 6 5 4     200 ms
     R6 7 8 9 10     hits 7, 8; evicts 12, 11                         200 ms
   An evict-newest or head-first order gives other hits. */
START_TEST(test_lru_eviction_order)
{
    char rows[4096] = "";
    row(rows, sizeof rows, 0, 100, 0, "900");
    static const struct {
        int in;
        const char *ids;
        double lat;
    } seq[] = {{300, "1, 2, 3", 300}, {300, "4, 5, 6", 300}, {400, "7, 8, 9, 10", 400},
               {200, "11, 12", 200},  {300, "1, 2, 3", 200}, {300, "4, 5, 6", 200},
               {400, "7, 8, 9, 10", 200}};
    int n = (int)(sizeof seq / sizeof *seq);
    for (int i = 0; i < n; i++)
        row(rows, sizeof rows, 10.0 * (i + 1), seq[i].in, 0, seq[i].ids);
    done_log l;
    sim_result r;
    kv_run(rows, "kv_lru", &l, &r);
    ck_assert_int_eq(l.n, n);
    for (int i = 0; i < n; i++)
        ck_assert_msg(fabs(l.done[i] - seq[i].lat) < 1e-6, "R%d: latency %g, by hand %g", i,
                      l.done[i], seq[i].lat);
    sim_result_free(&r);
}
END_TEST

/* R0: 300 + 500 tokens = 8 blocks, done at 300 + 500 = 800 ms. R1 arrives
   1 ms later needing 5 blocks: 8 + 5 > 10, so it waits (a slot is free)
   until 800, prefills 100 ms, decodes 400: latency 1300 - 1 = 1299. */
START_TEST(test_admission_waits_for_blocks)
{
    char rows[2048] = "";
    row(rows, sizeof rows, 0, 100, 0, "900");
    row(rows, sizeof rows, 10, 300, 500, "1, 2, 3");
    row(rows, sizeof rows, 10.001, 100, 400, "4");
    done_log l;
    sim_result r;
    kv_run(rows, "kv_adm", &l, &r);
    ck_assert_int_eq(l.n, 2);
    ck_assert_double_eq_tol(l.done[0], 800.0, 1e-6);
    ck_assert_double_eq_tol(l.done[1], 1299.0, 1e-6);
    sim_result_free(&r);
}
END_TEST

/* ---- the gateway's scorers ------------------------------------------------- */
#define THREE                                                                   \
    "[scenario]\nscrape_ms = 50\n"                                              \
    "[gpu g]\ncount = 3\nslots = 8\nmemory_gb = 80\nload = v\n"                 \
    "[variant v]\nmemory_gb = 16\nkv_kb_per_token = 128\nprofile g = 10 10000 10 0.05\n" \
    "[arrivals]\nprocess = poisson\nrate = 1\nprefix_groups = 2\nprefix_tokens = 2048\n"

static sim_run *three_servers(sim_scenario *sc)
{
    parse_ok(THREE, sc);
    sim_run *s = calloc(1, sizeof *s);
    ck_assert_ptr_nonnull(s);
    s->sc = sc;
    s->ns = 3;
    for (int i = 0; i < 3; i++)
        s->srv[i].slots = 8;
    rng_seed(&s->r, 1);
    ck_assert_int_eq(sim_kv_init(s), 0);
    return s;
}

static void three_free(sim_run *s, sim_scenario *sc)
{
    sim_kv_free(s);
    free(s);
    sim_scenario_free(sc);
}

static req group_req(uint64_t id, int group, int group_blocks, int n_blocks)
{
    req r;
    memset(&r, 0, sizeof r);
    r.id = id;
    r.group = group;
    r.group_blocks = group_blocks;
    r.n_blocks = n_blocks;
    r.variant = 0;
    return r;
}

START_TEST(test_gateway_score_by_hand)
{
    sim_scenario sc;
    sim_run *s = three_servers(&sc);
    int cand[3] = {0, 1, 2};
    /* X (group 0, 4 blocks) goes to server 0: a cold request */
    req x = group_req(1, 0, 4, 4);
    sim_gw_match(s, &x, cand, 3);
    ck_assert_int_eq(s->gw_cold, 1);
    x.server = 0;
    sim_gw_routed(s, &x);
    /* Y: the same 4 group blocks and 4 of its own. Waiting 3, 1, 1; KV 0.5,
       0.8, 0.2. prefix 4/8 on server 0; warm: LRU 0.5 everywhere; queue
       (3 - q) / (3 - 1) = 0, 1, 1. Totals (2 2 3 2):
         s0 = 2x0 + 2x0.5 + 3x0.5 + 2x0.5 = 3.5
         s1 = 2x1 + 2x0.2 + 0     + 1     = 3.4
         s2 = 2x1 + 2x0.8 + 0     + 1     = 4.6   -> server 2 */
    s->srv[0].snap_wait = 3, s->srv[1].snap_wait = 1, s->srv[2].snap_wait = 1;
    s->srv[0].snap_kv = 0.5, s->srv[1].snap_kv = 0.8, s->srv[2].snap_kv = 0.2;
    req y = group_req(2, 0, 4, 8);
    sim_gw_match(s, &y, cand, 3);
    ck_assert_int_eq(s->gw_cold, 0);
    ck_assert_double_eq_tol(s->gw_match[0], 0.5, 1e-12);
    ck_assert_double_eq_tol(s->gw_match[1], 0.0, 1e-12);
    ck_assert_int_eq(sim_gw_pick(s, cand, 3), 2);
    /* equal queues: every queue score 1: s0 = 2 + 1 + 1.5 + 1 = 5.5 wins */
    s->srv[0].snap_wait = 1;
    ck_assert_int_eq(sim_gw_pick(s, cand, 3), 0);
    /* Z: cold (its own blocks only). KV 0.5 everywhere. No-hit LRU: server
       0 had the only cold request; never used first in candidate order:
       s1 = 1 - 0/2 = 1, s2 = 1 - 1/2 = 0.5, then s0 = 1 - (2 + 0)/2 = 0.
       Totals: s0 = 2 + 1 + 0 + 0 = 3, s1 = 2 + 1 + 2 = 5, s2 = 4 -> 1 */
    for (int i = 0; i < 3; i++)
        s->srv[i].snap_kv = 0.5;
    req z = group_req(3, -1, 0, 3);
    sim_gw_match(s, &z, cand, 3);
    ck_assert_int_eq(s->gw_cold, 1);
    ck_assert_int_eq(sim_gw_pick(s, cand, 3), 1);
    z.server = 1;
    sim_gw_routed(s, &z);
    /* W: cold again. Cold order now s0 (1), s1 (2); never used: s2 -> 1;
       s0: 1 - (1 + 0)/2 = 0.5, s1: 1 - (1 + 1)/2 = 0. LRU weight 2 decides
       with all else equal: server 2 */
    req w = group_req(4, -1, 0, 3);
    sim_gw_match(s, &w, cand, 3);
    ck_assert_int_eq(sim_gw_pick(s, cand, 3), 2);
    three_free(s, &sc);
}
END_TEST

START_TEST(test_scrape_staleness)
{
    sim_scenario sc;
    sim_run *s = three_servers(&sc);
    s->now = 0;
    s->srv[0].qlen = 2;
    sim_scrape(s);
    ck_assert_int_eq(s->srv[0].snap_wait, 2);
    /* 30 ms later: the scrape of t = 0 still holds */
    s->now = 30;
    s->srv[0].qlen = 5;
    sim_scrape(s);
    ck_assert_int_eq(s->srv[0].snap_wait, 2);
    /* the tick at 50 ms */
    s->now = 50;
    sim_scrape(s);
    ck_assert_int_eq(s->srv[0].snap_wait, 5);
    /* scrape_ms = 0: always current */
    sc.scrape_ms = 0;
    s->now = 51;
    s->srv[0].qlen = 7;
    sim_scrape(s);
    ck_assert_int_eq(s->srv[0].snap_wait, 7);
    three_free(s, &sc);
}
END_TEST

/* LRU set: find after insert and removal (backward-shift deletion keeps
   every other key reachable), growth past the initial size */
START_TEST(test_pcache_set)
{
    pcache pc;
    ck_assert_int_eq(pc_init(&pc, 8), 0);
    int32_t idx[1000];
    for (int i = 0; i < 1000; i++) {
        idx[i] = pc_insert(&pc, (uint64_t)i * 7919u, 1);
        ck_assert_int_ge(idx[i], 0);
    }
    for (int i = 0; i < 1000; i += 3)
        pc_remove(&pc, pc_find(&pc, (uint64_t)i * 7919u));
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(pc_find(&pc, (uint64_t)i * 7919u) >= 0, i % 3 != 0);
    ck_assert_int_eq(pc.n, 1000 - 334);
    pc_free(&pc);
}
END_TEST

static void count_done(void *user, uint64_t id, double arrive_ms, double done_ms, int srv,
                       int variant)
{
    (void)id, (void)srv, (void)variant;
    ck_assert(done_ms >= arrive_ms);
    (*(uint64_t *)user)++;
}

/* the shipped gateway scenarios: they parse, and the KV policies complete
   every request (a short evaluation) */
START_TEST(test_shipped_gateway)
{
    static const char *const files[] = {"g-gateway.scn", "h-gateway-hetero.scn"};
    static const char *const pols[] = {"rr", "fewest-waiting", "least-kv", "gateway"};
    char path[1024];
    snprintf(path, sizeof path, "%s/data/scenarios/%s", top_dir(), files[_i]);
    sim_scenario sc;
    sim_err e = {{0}};
    ck_assert_msg(sim_scenario_load(path, &sc, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(sc.kv, 1);
    for (size_t k = 0; k < sizeof pols / sizeof *pols; k++) {
        uint64_t n = 0;
        sim_options opt = {.quiet = 1, .scale = 0.05, .on_complete = count_done, .user = &n};
        sim_result r;
        run_ok(&sc, pols[k], &opt, &r);
        ck_assert_uint_eq(n, r.n);
        ck_assert_uint_eq(r.n, r.submitted);
        ck_assert(r.ttft_p90_ms <= r.e2e_p90_ms + 1e-6);
        sim_result_free(&r);
    }
    sim_scenario_free(&sc);
}
END_TEST

/* The blocks nobody can hit kept as one entry per request (the default)
   give what caching them block by block gives (kv_exact), bitwise, on the
   shipped gateway scenarios. */
START_TEST(test_merged_blocks_exact)
{
    static const char *const files[] = {"g-gateway.scn", "h-gateway-hetero.scn"};
    static const char *const pols[] = {"rr", "least-kv", "gateway"};
    char path[1024];
    snprintf(path, sizeof path, "%s/data/scenarios/%s", top_dir(), files[_i]);
    sim_scenario sc;
    sim_err e = {{0}};
    ck_assert_msg(sim_scenario_load(path, &sc, &e) == 0, "%s", e.msg);
    for (size_t k = 0; k < sizeof pols / sizeof *pols; k++) {
        sim_result a, b;
        sim_options o1 = {.quiet = 1, .scale = 0.1}, o2 = o1;
        o2.kv_exact = 1;
        run_ok(&sc, pols[k], &o1, &a);
        run_ok(&sc, pols[k], &o2, &b);
        ck_assert_msg(a.prefix_hit_rate > 0, "%s %s: no prefix hit", files[_i], pols[k]);
        ck_assert_uint_eq(a.n, b.n);
        ck_assert_uint_eq(a.met, b.met);
        ck_assert_uint_eq(a.events, b.events);
        ck_assert(a.p50_ms == b.p50_ms && a.p99_ms == b.p99_ms && a.mean_ms == b.mean_ms);
        ck_assert(a.ttft_p90_ms == b.ttft_p90_ms);
        ck_assert(a.prefix_hit_rate == b.prefix_hit_rate);
        sim_result_free(&a);
        sim_result_free(&b);
    }
    sim_scenario_free(&sc);
}
END_TEST

/* the KV policies refuse scenarios without the model */
START_TEST(test_kv_policies_need_model)
{
    sim_scenario sc;
    parse_ok("[gpu g]\nload = v\n[variant v]\nprofile g = 10 10000 10 0.05\n"
             "[arrivals]\nrate = 1\n",
             &sc);
    sim_policy_spec p;
    sim_err e = {{0}};
    ck_assert_int_ne(sim_policy_parse(&sc, "gateway", &p, &e), 0);
    ck_assert_ptr_nonnull(strstr(e.msg, "KV model"));
    /* and the default list of such a scenario has none of them */
    sim_policy_spec list[64];
    size_t n = sim_default_policies(&sc, list, 64);
    for (size_t i = 0; i < n; i++)
        ck_assert(list[i].kind < SIM_POL_FEWEST_WAITING || list[i].kind >= SIM_POL_GREEDY);
    sim_scenario_free(&sc);
}
END_TEST

static Suite *suite_kv(void)
{
    Suite *s = suite_create("sim-kv");
    TCase *tc = tcase_create("kv");
    tcase_add_test(tc, test_prefix_hit_by_hand);
    tcase_add_test(tc, test_lru_eviction_order);
    tcase_add_test(tc, test_admission_waits_for_blocks);
    tcase_add_test(tc, test_pcache_set);
    tcase_add_test(tc, test_gateway_score_by_hand);
    tcase_add_test(tc, test_scrape_staleness);
    tcase_add_test(tc, test_kv_policies_need_model);
    tcase_add_loop_test(tc, test_shipped_gateway, 0, 2);
    tcase_add_loop_test(tc, test_merged_blocks_exact, 0, 2);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite_kv());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
