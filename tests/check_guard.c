/* check_guard.c - the guard (guard.c; dlsched(7), GUARD) through the public
 * API: with a hint, after apprenticeship, the learned policy decides only
 * once proven better than the incumbent (the hint).
 *
 *   core:       the statistics against an oracle that re-implements the
 *               documented rules (arms, epochs, tests, z_k); the reported
 *               probability against the guarded behaviour policy and the
 *               empirical frequencies (egreedy, softmax; INCUMBENT and
 *               LEARNED); SPIBB support (qtable cells, dqn); greedy
 *               evaluation; guard=0 is the 1.0 behaviour; expired tickets
 *               do not count; the stats size prefix.
 *   learning, threads: check_guard_learn.c (the same suite).
 *   limits:     bad configuration values.
 * Every run is deterministic: fixed library seeds and the test's own
 * generator (tst_next() of tests.h). */
#include <stddef.h>
#include <stdio.h>

#include "tests.h"

/* ---- core: the statistics against an oracle ---------------------------------------- */

/* The oracle follows the documented rules, decision by decision, in a
   one-state bandit whose two actions pay Normal(mean[a], 1): it knows the
   greedy choice c (the Q-values read before each act; no ties, checked),
   counts every visit itself, classifies each non-exploratory decision
   (agreed; unsupported: visits[c] < guard_min_visits; else an arm),
   checks the flags, keeps the per-epoch sums of the arms, runs the tests at
   min(n_L, n_I) = m 2^k with its own z_k, and moves state, epoch and k.
   Every fifth ticket is held back and observed three decisions later, so
   that some outcomes arrive in a later epoch (and must not count). After
   every step every guard field of the statistics must match. */
#define TG_OR_M 10
#define TG_OR_TESTS 3
#define TG_OR_VISITS 5
#define TG_OR_SHARE 0.3
#define TG_OR_RISK 0.2

typedef struct tg_oracle {
    uint32_t state, k;
    uint64_t epoch, switches, fallbacks, decisions, agreed, unsupported, by_l, by_i;
    double n[3], sum[3], sumsq[3];
    uint32_t visits[2];
} tg_oracle;

static void tg_or_estimate(const tg_oracle *o, double *d, double *se)
{
    double m[3] = {0, 0, 0}, v[3] = {0, 0, 0};
    for (int a = 1; a <= 2; a++) {
        if (o->n[a] < 1)
            continue;
        m[a] = o->sum[a] / o->n[a];
        if (o->n[a] > 1)
            v[a] = fmax(0.0, (o->sumsq[a] - o->n[a] * m[a] * m[a]) / (o->n[a] - 1));
    }
    *d = m[2] - m[1];
    *se = o->n[1] >= 1 && o->n[2] >= 1 ? sqrt(v[2] / o->n[2] + v[1] / o->n[1]) : INFINITY;
}

static void tg_or_outcome(tg_oracle *o, int arm, uint64_t epoch, double r)
{
    if (arm == 0 || epoch != o->epoch)
        return;
    o->n[arm] += 1;
    o->sum[arm] += r;
    o->sumsq[arm] += r * r;
    if (fmin(o->n[1], o->n[2]) < TG_OR_M * ldexp(1.0, (int)o->k))
        return;
    double d, se;
    tg_or_estimate(o, &d, &se);
    double z = tst_guard_z(TG_OR_RISK, (int)o->k);
    o->k++;
    int fresh = 0;
    if (o->state != DLSCHED_GUARD_LEARNED && d - z * se > 0) {
        o->state = DLSCHED_GUARD_LEARNED;
        o->switches++;
        fresh = 1;
    } else if (o->state == DLSCHED_GUARD_LEARNED && d + z * se < 0) {
        o->state = DLSCHED_GUARD_FALLEN_BACK;
        o->fallbacks++;
        fresh = 1;
    } else if (o->k >= TG_OR_TESTS) {
        fresh = 1;
    }
    if (fresh) {
        o->epoch++;
        o->k = 0;
        memset(o->n, 0, sizeof o->n);
        memset(o->sum, 0, sizeof o->sum);
        memset(o->sumsq, 0, sizeof o->sumsq);
    }
}

static void tg_or_compare(dlsched_agent *ag, const tg_oracle *o, int step)
{
    dlsched_stats_t s = tst_stats(ag);
#define TG_EQ(f, v)                                                                       \
    ck_assert_msg(s.f == (v), "step %d: stats." #f " %llu, oracle %llu", step,             \
                  (unsigned long long)s.f, (unsigned long long)(v))
    TG_EQ(guard_state, o->state);
    TG_EQ(guard_epoch, o->epoch);
    TG_EQ(guard_switches, o->switches);
    TG_EQ(guard_fallbacks, o->fallbacks);
    TG_EQ(guard_decisions, o->decisions);
    TG_EQ(guard_agreed, o->agreed);
    TG_EQ(guard_unsupported, o->unsupported);
    TG_EQ(guard_by_learned, o->by_l);
    TG_EQ(guard_by_incumbent, o->by_i);
    TG_EQ(guard_samples_learned, (uint64_t)o->n[2]);
    TG_EQ(guard_samples_incumbent, (uint64_t)o->n[1]);
    TG_EQ(guard_reserved, 0);
#undef TG_EQ
    double d, se;
    tg_or_estimate(o, &d, &se);
    double z = tst_guard_z(TG_OR_RISK, (int)o->k);
    double vl = o->n[2] > 0 ? o->sum[2] / o->n[2] : 0, vi = o->n[1] > 0 ? o->sum[1] / o->n[1] : 0;
    ck_assert_msg(fabs(s.guard_value_learned - vl) < 1e-9, "step %d: value_learned %g, oracle %g",
                  step, s.guard_value_learned, vl);
    ck_assert_msg(fabs(s.guard_value_incumbent - vi) < 1e-9,
                  "step %d: value_incumbent %g, oracle %g", step, s.guard_value_incumbent, vi);
    ck_assert_msg(fabs(s.guard_advantage - d) < 1e-9, "step %d: advantage %g, oracle %g", step,
                  s.guard_advantage, d);
    if (isfinite(se)) {
        ck_assert_msg(fabs(s.guard_advantage_low - (d - z * se)) < 1e-7 &&
                          fabs(s.guard_advantage_high - (d + z * se)) < 1e-7,
                      "step %d: interval [%.12g, %.12g], oracle [%.12g, %.12g]", step,
                      s.guard_advantage_low, s.guard_advantage_high, d - z * se, d + z * se);
    } else {
        ck_assert_msg(s.guard_advantage_low == -INFINITY && s.guard_advantage_high == INFINITY,
                      "step %d: interval [%g, %g] before both arms have outcomes", step,
                      s.guard_advantage_low, s.guard_advantage_high);
    }
}

static void tg_oracle_run(double mean1, uint64_t seed, tg_oracle *o, int steps)
{
    dlsched_agent *ag = tst_agentf(
        "algo=qtable n_features=1 n_actions=2 bins=1 gamma=0 lr=0.1 epsilon_start=0.2 "
        "epsilon_end=0.2 guard_share=%g guard_risk=%g guard_min_samples=%d guard_tests=%d "
        "guard_min_visits=%d guard_block=1 seed=%llu",
        TG_OR_SHARE, TG_OR_RISK, TG_OR_M, TG_OR_TESTS, TG_OR_VISITS, (unsigned long long)seed);
    memset(o, 0, sizeof *o);
    o->state = DLSCHED_GUARD_INCUMBENT;
    const double mean[2] = {0.0, mean1};
    uint64_t rng = seed * 7919;
    /* distinct Q-values from the start (ties would hide c from the oracle) */
    tst_log1(ag, 0, 0.0);
    tst_log1(ag, 1, 0.01);
    o->visits[0] = o->visits[1] = 1;
    enum { HOLD = 4 };
    struct {
        uint64_t ticket, epoch;
        int arm, action;
        double r;
    } held[HOLD];
    int n_held = 0;
    float x = 0.5f;
    dlsched_state_t st = tst_state(&x, 1);
    st.hint = 0;
    for (int i = 0; i < steps; i++) {
        float q[2];
        ck_assert_int_eq(dlsched_q_values(ag, &st, q, 2), DLSCHED_OK);
        ck_assert_msg(q[0] != q[1], "step %d: tied Q-values", i);
        int c = q[1] > q[0];
        dlsched_decision_t d = tst_act1(ag, 0, 0);
        int learned = o->state == DLSCHED_GUARD_LEARNED, arm = 0;
        if (!(d.flags & DLSCHED_DECISION_EXPLORED)) {
            o->decisions++;
            uint32_t want_flags;
            if (c == 0) {
                o->agreed++;
                ck_assert_int_eq(d.action, 0);
                want_flags = learned ? 0 : DLSCHED_DECISION_INCUMBENT;
            } else if (o->visits[1] < TG_OR_VISITS) {
                o->unsupported++;
                ck_assert_int_eq(d.action, 0);
                want_flags = DLSCHED_DECISION_INCUMBENT;
            } else {
                arm = d.action == 1 ? 2 : 1;
                if (arm == 2)
                    o->by_l++;
                else
                    o->by_i++;
                want_flags = arm == 2 ? 0 : DLSCHED_DECISION_INCUMBENT;
            }
            ck_assert_msg(d.flags == want_flags, "step %d: flags %u, want %u (c %d, action %d)",
                          i, d.flags, want_flags, c, d.action);
        }
        double r = (double)(float)(mean[d.action] + tst_normal(&rng));
        if (i % 5 == 0 && n_held < HOLD) {
            held[n_held].ticket = d.ticket;
            held[n_held].epoch = o->epoch;
            held[n_held].arm = arm;
            held[n_held].action = d.action;
            held[n_held].r = r;
            n_held++;
        } else {
            tst_observe1(ag, d.ticket, r);
            o->visits[d.action]++;
            tg_or_outcome(o, arm, o->epoch, r);
        }
        if (i % 5 == 3) { /* the held ones, three decisions later */
            for (int h = 0; h < n_held; h++) {
                tst_observe1(ag, held[h].ticket, held[h].r);
                o->visits[held[h].action]++;
                tg_or_outcome(o, held[h].arm, held[h].epoch, held[h].r);
            }
            n_held = 0;
        }
        tg_or_compare(ag, o, i);
    }
    dlsched_agent_free(ag);
}

START_TEST(test_statistics_oracle)
{
    /* learned a little better (switches, epochs by exhaustion), equal
       (epochs, perhaps a false switch), and a lot better */
    static const double means[3] = {0.15, 0.0, 1.0};
    uint64_t switches = 0, epochs = 0;
    for (int i = 0; i < 3; i++) {
        tg_oracle o;
        tg_oracle_run(means[i], 100 + (uint64_t)i, &o, 4000);
        switches += o.switches;
        epochs += o.epoch;
        ck_assert_uint_gt(o.by_l, 0);
        ck_assert_uint_gt(o.by_i, 0);
    }
    ck_assert_uint_ge(switches, 1);
    ck_assert_uint_ge(epochs, 3); /* the oracle saw epochs end */
}
END_TEST

/* ---- core: the reported probability ----------------------------------------------- */

/* P(a) under the guarded behaviour policy, from the documented rules: the
   behaviour policy's choice (egreedy: uniform over the allowed actions
   with eps, else uniform over the allowed maxima T; softmax: Boltzmann);
   an exploratory choice passes; a greedy choice t (egreedy: a maximum
   chosen without exploring; softmax: a pick in T) goes to the guard: t ==
   hint or t unsupported gives the hint, else t with probability pl (the
   learned policy's share: guard_share when the incumbent is in charge,
   1 - guard_share when the learned policy is) and the hint otherwise. */
static void tg_theory(int softmax, double eps, double temp, const float *q, const uint8_t *mask,
                      const int *supported, int n, int hint, double pl, double *p)
{
    float qmax = -INFINITY;
    int k = 0, m = 0;
    for (int a = 0; a < n; a++) {
        p[a] = 0;
        if (mask && !mask[a])
            continue;
        k++;
        qmax = fmaxf(qmax, q[a]);
    }
    for (int a = 0; a < n; a++)
        m += (!mask || mask[a]) && q[a] == qmax;
    double zsum = 0;
    for (int a = 0; a < n; a++)
        if (!mask || mask[a])
            zsum += exp(((double)q[a] - qmax) / temp);
    for (int a = 0; a < n; a++) {
        if (mask && !mask[a])
            continue;
        double w_explore = softmax ? (q[a] == qmax ? 0 : exp(((double)q[a] - qmax) / temp) / zsum)
                                   : eps / k;
        p[a] += w_explore;
        if (q[a] != qmax)
            continue;
        double w = softmax ? 1.0 / zsum : (1.0 - eps) / m; /* t = a, greedy */
        if (a == hint || !supported[a]) {
            p[hint] += w;
        } else {
            p[a] += w * pl;
            p[hint] += w * (1.0 - pl);
        }
    }
}

/* N decisions from one state, none observed (the tickets expire unlearned:
   the Q-values and the guard stay as they are): the reported probability
   is the theory's, and each action's frequency is within 4 standard
   deviations of it */
static void tg_draws(dlsched_agent *ag, const uint8_t *mask, int n, int hint, const double *p,
                     const char *what)
{
    enum { N = 40000 };
    float x = 0.5f;
    dlsched_state_t s = tst_state(&x, 1);
    s.hint = hint;
    if (mask) {
        s.mask = mask;
        s.n_mask = (uint32_t)n;
    }
    uint64_t count[8] = {0}, bad = 0;
    int first_bad = -1;
    float first_p = 0;
    for (int i = 0; i < N; i++) {
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &s, 0, &d), DLSCHED_OK);
        ck_assert(d.action >= 0 && d.action < n);
        count[d.action]++;
        if (fabs(d.probability - p[d.action]) > 1e-6) {
            if (bad++ == 0) {
                first_bad = d.action;
                first_p = d.probability;
            }
        }
        if (d.flags & DLSCHED_DECISION_INCUMBENT)
            ck_assert_int_eq(d.action, hint);
    }
    ck_assert_msg(bad == 0, "%s: %llu probabilities off the theory, first: action %d reported "
                            "%.9g, theory %.9g",
                  what, (unsigned long long)bad, first_bad, first_p,
                  first_bad >= 0 ? p[first_bad] : 0.0);
    for (int a = 0; a < n; a++) {
        double f = (double)count[a] / N, sd = sqrt(p[a] * (1 - p[a]) / N);
        ck_assert_msg(fabs(f - p[a]) <= 4 * sd + 1e-12,
                      "%s: action %d frequency %.5f, theory %.5f (4 sd = %.5f)", what, a, f, p[a],
                      4 * sd);
    }
}

/* Q = (0, 1, 0.5, 1) in one state (lr 1: each logged reward is the
   Q-value), every action visited once (guard_min_visits 1, or 2 where
   action 3 is to stay unsupported) */
static const float tg_q4[4] = {0.0f, 1.0f, 0.5f, 1.0f};

static dlsched_agent *tg_controlled(const char *explore, int min_visits, uint64_t seed)
{
    dlsched_agent *ag = tst_agentf(
        "algo=qtable n_features=1 n_actions=4 bins=1 gamma=0 lr=1 %s epsilon_start=0.2 "
        "epsilon_end=0.2 temperature=0.5 guard_share=0.3 guard_min_samples=2 guard_tests=30 "
        "guard_min_visits=%d guard_block=1 ticket_capacity=64 seed=%llu",
        explore, min_visits, (unsigned long long)seed);
    for (int a = 0; a < 4; a++)
        tst_log1(ag, a, tg_q4[a]);
    if (min_visits > 1)
        for (int a = 0; a < 3; a++) /* action 3 stays at one visit */
            for (int v = 1; v < min_visits; v++)
                tst_log1(ag, a, tg_q4[a]);
    return ag;
}

/* act and observe r = Q(a) (lr 1 keeps Q as it is) with hint 0 until the
   guard switches: the learned arm's outcomes are all 1, the incumbent's
   all 0, so the first test switches */
static void tg_drive_to_learned(dlsched_agent *ag)
{
    for (int i = 0; i < 2000 && tst_stats(ag).guard_state != DLSCHED_GUARD_LEARNED; i++) {
        dlsched_decision_t d = tst_act1(ag, 0, 0);
        tst_observe1(ag, d.ticket, tg_q4[d.action]);
    }
    dlsched_stats_t s = tst_stats(ag);
    ck_assert_uint_eq(s.guard_state, DLSCHED_GUARD_LEARNED);
    ck_assert_uint_eq(s.guard_switches, 1);
}

static void tg_probability_case(int softmax)
{
    const char *explore = softmax ? "explore=softmax" : "explore=egreedy";
    double eps = softmax ? 0 : 0.2, p[4];
    int sup[4] = {1, 1, 1, 1};
    static const uint8_t mask[4] = {1, 1, 0, 1};
    char what[96];
    dlsched_agent *ag = tg_controlled(explore, 1, 5 + (uint64_t)softmax);
    for (int learned = 0; learned < 2; learned++) {
        double pl = learned ? 0.7 : 0.3;
        const char *st = learned ? "LEARNED" : "INCUMBENT";
        /* hint 0: both maxima (1, 3) disagree */
        tg_theory(softmax, eps, 0.5, tg_q4, NULL, sup, 4, 0, pl, p);
        snprintf(what, sizeof what, "%s, %s, hint 0", explore, st);
        tg_draws(ag, NULL, 4, 0, p, what);
        /* hint 1, a maximum: a tie of an agreement and a disagreement */
        tg_theory(softmax, eps, 0.5, tg_q4, NULL, sup, 4, 1, pl, p);
        snprintf(what, sizeof what, "%s, %s, hint 1", explore, st);
        tg_draws(ag, NULL, 4, 1, p, what);
        /* hint 2 masked out is not allowed: hint 0 with action 2 masked */
        tg_theory(softmax, eps, 0.5, tg_q4, mask, sup, 4, 0, pl, p);
        snprintf(what, sizeof what, "%s, %s, hint 0, masked", explore, st);
        tg_draws(ag, mask, 4, 0, p, what);
        if (!learned)
            tg_drive_to_learned(ag);
    }
    dlsched_agent_free(ag);
    /* action 3 unsupported (one visit of two): its greedy picks go to the
       hint */
    ag = tg_controlled(explore, 2, 7 + (uint64_t)softmax);
    sup[3] = 0;
    tg_theory(softmax, eps, 0.5, tg_q4, NULL, sup, 4, 0, 0.3, p);
    snprintf(what, sizeof what, "%s, INCUMBENT, action 3 unsupported", explore);
    tg_draws(ag, NULL, 4, 0, p, what);
    /* the draws observed nothing: the guard's experiment has no outcome */
    dlsched_stats_t s = tst_stats(ag);
    ck_assert_uint_eq(s.guard_samples_learned + s.guard_samples_incumbent, 0);
    ck_assert_uint_gt(s.tickets_expired, 0);
    ck_assert_uint_gt(s.guard_unsupported, 0);
    dlsched_agent_free(ag);
}

START_TEST(test_probability_egreedy)
{
    tg_probability_case(0);
}
END_TEST

START_TEST(test_probability_softmax)
{
    tg_probability_case(1);
}
END_TEST

/* ---- core: support (SPIBB) ------------------------------------------------------- */

/* decisions at x with hint h: how many non-exploratory ones returned a */
static uint64_t tg_count_greedy_returns(dlsched_agent *ag, float x, int32_t h, int32_t a, int n)
{
    dlsched_state_t s = tst_state(&x, 1);
    s.hint = h;
    uint64_t hits = 0;
    for (int i = 0; i < n; i++) {
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &s, 0, &d), DLSCHED_OK);
        if (!(d.flags & DLSCHED_DECISION_EXPLORED) && d.action == a)
            hits++;
    }
    return hits;
}

/* qtable: the regions are the cells (bins=2: x < 0.5 and x >= 0.5) */
START_TEST(test_support_qtable)
{
    dlsched_agent *ag = tst_agent("algo=qtable n_features=1 n_actions=3 bins=2 gamma=0 lr=1 "
                                  "epsilon_start=0.3 epsilon_end=0.3 guard_share=0.5 "
                                  "guard_min_visits=5 guard_block=1 ticket_capacity=32 seed=3");
    float lo = 0.25f, hi = 0.75f;
    dlsched_state_t sl = tst_state(&lo, 1), sh = tst_state(&hi, 1);
    /* action 1 is the greedy choice in the low cell after one visit */
    ck_assert_int_eq(dlsched_observe_transition(ag, &sl, 1, 1.0f, NULL, DLSCHED_OBS_TERMINAL),
                     DLSCHED_OK);
    float q[3];
    ck_assert_int_eq(dlsched_q_values(ag, &sl, q, 3), DLSCHED_OK);
    ck_assert(q[1] > q[0] && q[1] > q[2]);
    uint64_t u0 = tst_stats(ag).guard_unsupported;
    ck_assert_uint_eq(tg_count_greedy_returns(ag, lo, 0, 1, 2000), 0);
    ck_assert_uint_gt(tst_stats(ag).guard_unsupported - u0, 1000); /* ~ 0.7 of 2000 */
    for (int v = 2; v <= 4; v++) /* four visits: still unsupported */
        ck_assert_int_eq(dlsched_observe_transition(ag, &sl, 1, 1.0f, NULL,
                                                    DLSCHED_OBS_TERMINAL),
                         DLSCHED_OK);
    ck_assert_uint_eq(tg_count_greedy_returns(ag, lo, 0, 1, 2000), 0);
    /* five in the other cell support it there, not here */
    for (int v = 0; v < 5; v++)
        ck_assert_int_eq(dlsched_observe_transition(ag, &sh, 1, 1.0f, NULL,
                                                    DLSCHED_OBS_TERMINAL),
                         DLSCHED_OK);
    ck_assert_uint_eq(tg_count_greedy_returns(ag, lo, 0, 1, 2000), 0);
    ck_assert_uint_gt(tg_count_greedy_returns(ag, hi, 0, 1, 2000), 500);
    /* the fifth visit here: now a disagreement, decided by the learned
       policy in guard_share (0.5) of them: about 0.7 * 0.5 of 4000 */
    ck_assert_int_eq(dlsched_observe_transition(ag, &sl, 1, 1.0f, NULL, DLSCHED_OBS_TERMINAL),
                     DLSCHED_OK);
    uint64_t hits = tg_count_greedy_returns(ag, lo, 0, 1, 4000);
    ck_assert_msg(hits > 1100 && hits < 1700, "%llu greedy returns of action 1",
                  (unsigned long long)hits);
    dlsched_agent_free(ag);
}
END_TEST

/* dqn: the network is never trained (learning_starts beyond the run), so
   its greedy choice in a fixed state stays what the initial weights say;
   the hint is another action. One state: one region. */
START_TEST(test_support_dqn)
{
    dlsched_agent *ag = tst_agent("algo=dqn device=cpu n_features=2 n_actions=3 hidden=8 "
                                  "learning_starts=1000000 replay=64 epsilon_start=0.2 "
                                  "epsilon_end=0.2 guard_share=0.5 guard_min_visits=3 "
                                  "guard_block=1 ticket_capacity=32 seed=4");
    float x[2] = {0.3f, 0.7f};
    dlsched_state_t s = tst_state(x, 2);
    float q[3];
    ck_assert_int_eq(dlsched_q_values(ag, &s, q, 3), DLSCHED_OK);
    int c = tst_argmax_f(q, 3), h = (c + 1) % 3;
    s.hint = h;
    uint64_t hits = 0;
    for (int round = 0; round < 4; round++) {
        hits = 0;
        for (int i = 0; i < 1000; i++) {
            dlsched_decision_t d;
            ck_assert_int_eq(dlsched_act(ag, &s, 0, &d), DLSCHED_OK);
            hits += !(d.flags & DLSCHED_DECISION_EXPLORED) && d.action == c;
        }
        if (round < 3) /* 0, 1, 2 visits of c: never */
            ck_assert_msg(hits == 0, "round %d: %llu greedy returns of action %d", round,
                          (unsigned long long)hits, c);
        ck_assert_int_eq(dlsched_observe_transition(ag, &s, c, 0.0f, NULL,
                                                    DLSCHED_OBS_TERMINAL),
                         DLSCHED_OK);
    }
    /* the last round ran with 3 visits: about 0.8 * 0.5 of 1000 */
    ck_assert_msg(hits > 300 && hits < 500, "%llu greedy returns of action %d after support",
                  (unsigned long long)hits, c);
    dlsched_agent_free(ag);
}
END_TEST

/* ---- core: greedy evaluation, expiry, guard=0, stats size ----------------------------- */

/* DLSCHED_ACT_GREEDY: the policy in charge decides, no draw, no ticket;
   by_incumbent / by_learned follow the state; probability 1 */
START_TEST(test_greedy_runs_no_experiment)
{
    dlsched_agent *ag = tg_controlled("explore=egreedy", 1, 11);
    dlsched_stats_t b = tst_stats(ag);
    for (int i = 0; i < 1000; i++) {
        dlsched_decision_t d = tst_act1(ag, 0, DLSCHED_ACT_GREEDY);
        ck_assert_int_eq(d.action, 0);
        ck_assert_uint_eq(d.flags, DLSCHED_DECISION_INCUMBENT);
        ck_assert_uint_eq(d.ticket, 0);
        ck_assert_float_eq(d.probability, 1.0f);
    }
    dlsched_stats_t a = tst_stats(ag);
    ck_assert_uint_eq(a.guard_by_incumbent - b.guard_by_incumbent, 1000);
    ck_assert_uint_eq(a.guard_by_learned, b.guard_by_learned);
    ck_assert_uint_eq(a.guard_decisions - b.guard_decisions, 1000);
    ck_assert_uint_eq(a.tickets_issued, b.tickets_issued);
    tg_drive_to_learned(ag);
    b = tst_stats(ag);
    for (int i = 0; i < 1000; i++) {
        dlsched_decision_t d = tst_act1(ag, 0, DLSCHED_ACT_GREEDY);
        ck_assert(d.action == 1 || d.action == 3); /* the tied maxima */
        ck_assert_uint_eq(d.flags, 0);
        ck_assert_float_eq(d.probability, 0.5f);
    }
    a = tst_stats(ag);
    ck_assert_uint_eq(a.guard_by_learned - b.guard_by_learned, 1000);
    ck_assert_uint_eq(a.guard_by_incumbent, b.guard_by_incumbent);
    ck_assert_uint_eq(a.guard_samples_learned, b.guard_samples_learned);
    ck_assert_uint_eq(a.guard_samples_incumbent, b.guard_samples_incumbent);
    ck_assert_uint_eq(a.guard_state, DLSCHED_GUARD_LEARNED);
    dlsched_agent_free(ag);
}
END_TEST

/* expired tickets (ticket_capacity, default_reward or not) do not count:
   neither as the experiment's outcomes nor as visits */
START_TEST(test_expired_tickets_do_not_count)
{
    for (int dr = 0; dr < 2; dr++) {
        dlsched_agent *ag = tst_agentf(
            "algo=qtable n_features=1 n_actions=2 bins=1 gamma=0 lr=1 epsilon_start=0 "
            "epsilon_end=0 guard_share=0.5 guard_min_samples=2 guard_min_visits=2 "
            "guard_block=1 ticket_capacity=4 seed=8 %s",
            dr ? "default_reward=5" : "");
        tst_log1(ag, 0, 0.0);
        tst_log1(ag, 1, 1.0);
        tst_log1(ag, 1, 1.0); /* action 1: greedy and supported */
        for (int i = 0; i < 500; i++)
            (void)tst_act1(ag, 0, 0);
        dlsched_stats_t s = tst_stats(ag);
        ck_assert_uint_eq(s.tickets_expired, 496);
        ck_assert_uint_eq(s.guard_decisions, 500);
        /* (with default_reward the expired ones are learned: Q may tie) */
        ck_assert_uint_gt(s.guard_by_learned + s.guard_by_incumbent, 100);
        ck_assert_uint_eq(s.guard_samples_learned + s.guard_samples_incumbent, 0);
        ck_assert_uint_eq(s.guard_state, DLSCHED_GUARD_INCUMBENT);
        dlsched_agent_free(ag);
    }
}
END_TEST

/* guard=0 is 1.0: a guard=0 agent given hints decides exactly as a guard=1
   agent given none (explore=egreedy ignores hints), decision by decision;
   no INCUMBENT flag; the guard's statistics stay at their "off" values */
START_TEST(test_guard_off_is_1_0)
{
    static const char *spec = "algo=qtable n_features=2 n_actions=3 bins=4 gamma=0.5 lr=0.2 "
                              "epsilon_decay_steps=2000 seed=21 ";
    char s0[256], s1[256];
    snprintf(s0, sizeof s0, "%sguard=0", spec);
    snprintf(s1, sizeof s1, "%sguard=1", spec);
    dlsched_agent *off = tst_agent(s0), *on = tst_agent(s1);
    uint64_t rng = 5;
    for (int i = 0; i < 5000; i++) {
        float x[2] = {(float)tst_unif(&rng), (float)tst_unif(&rng)};
        dlsched_state_t a = tst_state(x, 2), b = a;
        a.hint = (int32_t)tst_below(&rng, 3);
        uint32_t fl = tst_below(&rng, 5) == 0 ? DLSCHED_ACT_GREEDY : 0;
        dlsched_decision_t da, db;
        ck_assert_int_eq(dlsched_act(off, &a, fl, &da), DLSCHED_OK);
        ck_assert_int_eq(dlsched_act(on, &b, fl, &db), DLSCHED_OK);
        ck_assert_msg(da.action == db.action && da.flags == db.flags &&
                          da.probability == db.probability && da.value == db.value,
                      "decision %d: guard=0 with a hint (a %d, flags %u, p %g), guard=1 "
                      "without (a %d, flags %u, p %g)",
                      i, da.action, da.flags, da.probability, db.action, db.flags,
                      db.probability);
        ck_assert_uint_eq(da.flags & DLSCHED_DECISION_INCUMBENT, 0);
        if (fl)
            continue;
        float r = (float)(x[(uint32_t)da.action % 2] + 0.1 * tst_unif(&rng));
        ck_assert_int_eq(dlsched_observe(off, da.ticket, r, NULL, DLSCHED_OBS_TERMINAL),
                         DLSCHED_OK);
        ck_assert_int_eq(dlsched_observe(on, db.ticket, r, NULL, DLSCHED_OBS_TERMINAL),
                         DLSCHED_OK);
    }
    dlsched_stats_t s = tst_stats(off);
    ck_assert_uint_eq(s.guard_state, DLSCHED_GUARD_OFF);
    ck_assert_uint_eq(s.guard_decisions + s.guard_agreed + s.guard_unsupported +
                          s.guard_by_learned + s.guard_by_incumbent + s.guard_epoch +
                          s.guard_switches + s.guard_fallbacks,
                      0);
    ck_assert_double_eq(s.guard_advantage, 0);
    ck_assert(s.guard_advantage_low == -INFINITY && s.guard_advantage_high == INFINITY);
    s = tst_stats(on);
    ck_assert_uint_eq(s.guard_state, DLSCHED_GUARD_INCUMBENT);
    ck_assert_uint_eq(s.guard_decisions, 0); /* no hint, nothing to guard */
    dlsched_agent_free(off);
    dlsched_agent_free(on);
}
END_TEST

/* a caller compiled against 1.0 passes the 1.0 size (up to guard_state):
   it gets no guard field, and out->size says so */
START_TEST(test_stats_size_1_0)
{
    dlsched_agent *ag = tg_controlled("explore=egreedy", 1, 12);
    size_t old = offsetof(dlsched_stats_t, guard_state);
    dlsched_stats_t st;
    memset(&st, 0xab, sizeof st);
    ck_assert_int_eq(dlsched_stats(ag, &st, old), DLSCHED_OK);
    ck_assert_uint_eq(st.size, old);
    const unsigned char *p = (const unsigned char *)&st;
    for (size_t i = old; i < sizeof st; i++)
        ck_assert_msg(p[i] == 0xab, "byte %zu past the 1.0 size was written", i);
    ck_assert_int_eq(dlsched_stats(ag, &st, sizeof st), DLSCHED_OK);
    ck_assert_uint_eq(st.size, sizeof st);
    ck_assert_uint_eq(st.guard_state, DLSCHED_GUARD_INCUMBENT);
    ck_assert_uint_eq(st.guard_reserved, 0);
    dlsched_agent_free(ag);
}
END_TEST

/* ---- limits ------------------------------------------------------------------------ */

START_TEST(test_limit_bad_config)
{
    static const struct {
        const char *key, *value;
    } bad[] = {
        {"guard", "2"},           {"guard", "-1"},         {"guard_share", "0.6"},
        {"guard_share", "-0.1"},  {"guard_risk", "0"},     {"guard_risk", "0.6"},
        {"guard_tests", "0"},     {"guard_tests", "31"},   {"guard_hash_bits", "0"},
        {"guard_hash_bits", "17"}, {"guard_min_samples", "1"}, {"guard_min_visits", "65536"},
        {"guard_share", "nan"},   {"guard_risk", "x"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dlsched_config *cfg = NULL;
        ck_assert_int_eq(dlsched_config_new(&cfg), DLSCHED_OK);
        int rc = dlsched_config_set(cfg, bad[i].key, bad[i].value);
        ck_assert_msg(rc == DLSCHED_ECONFIG, "%s=%s gave %d", bad[i].key, bad[i].value, rc);
        char quoted[64];
        snprintf(quoted, sizeof quoted, "'%s'", bad[i].key);
        ck_assert_msg(strstr(dlsched_last_error(), quoted) != NULL,
                      "%s=%s: message '%s' does not name the key", bad[i].key, bad[i].value,
                      dlsched_last_error());
        dlsched_config_free(cfg);
    }
    /* the bounds themselves are accepted */
    ck_assert_int_eq(tst_agent_rc("algo=qtable n_features=1 n_actions=2 guard_share=0.5 "
                                  "guard_risk=0.5 guard_tests=30 guard_min_samples=2 "
                                  "guard_min_visits=0"),
                     DLSCHED_OK);
    ck_assert_int_eq(tst_agent_rc("algo=dqn device=cpu n_features=2 n_actions=2 hidden=4 "
                                  "guard_hash_bits=16"),
                     DLSCHED_OK);
    ck_assert_int_eq(tst_agent_rc("algo=dqn device=cpu n_features=2 n_actions=2 hidden=4 "
                                  "guard_hash_bits=1 guard_share=0"),
                     DLSCHED_OK);
}
END_TEST

Suite *suite_guard(void)
{
    Suite *s = suite_create("guard");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_statistics_oracle);
    tcase_add_test(tc, test_probability_egreedy);
    tcase_add_test(tc, test_probability_softmax);
    tcase_add_test(tc, test_support_qtable);
    tcase_add_test(tc, test_support_dqn);
    tcase_add_test(tc, test_greedy_runs_no_experiment);
    tcase_add_test(tc, test_expired_tickets_do_not_count);
    tcase_add_test(tc, test_guard_off_is_1_0);
    tcase_add_test(tc, test_stats_size_1_0);
    suite_add_tcase(s, tc);

    suite_add_tcase(s, tcase_guard_learning()); /* check_guard_learn.c */
    suite_add_tcase(s, tcase_guard_block()); /* check_guard_block.c */
    suite_add_tcase(s, tcase_guard_units()); /* check_guard_unit.c */
    suite_add_tcase(s, tcase_guard_threads());

    tc = tcase_create("limits");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_limit_bad_config);
    suite_add_tcase(s, tc);
    return s;
}
