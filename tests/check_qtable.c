/* check_qtable.c - the tabular backend against oracles computed in the test:
   value iteration on small MDPs, hand-computed Bellman updates, the
   documented discretisation, replay training, reproducibility, limits. */
#include <stdio.h>

#include "tests.h"

/* the test's own generator: tst_next() of tests.h */
static uint64_t tq_rng;

#define tq_next() tst_next(&tq_rng)
#define tq_unif() tst_unif(&tq_rng)
#define tq_below(n) tst_below(&tq_rng, (n))

/* ---- a deterministic MDP: 6 states x 3 actions, gamma 0.9 ---------------- */

#define DS 6
#define DA 3
#define TQ_TERM (-1)

/* next state per (s, a); TQ_TERM ends the episode */
static const int det_next[DS][DA] = {
    {0, 1, 3}, {0, 2, 4}, {1, 3, 5}, {2, 4, 0}, {3, 5, 1}, {4, TQ_TERM, 2},
};
static const float det_rew[DS][DA] = {
    {0.0f, 0.1f, -0.5f}, {0.2f, 0.0f, -0.3f}, {0.0f, 0.3f, -1.0f},
    {0.5f, 0.0f, 0.4f},  {-0.2f, 0.1f, 0.6f}, {0.0f, 1.0f, 0.2f},
};

#define DET_SPEC(extra)                                                                     \
    "algo=qtable n_features=1 n_actions=3 bins=6 feature_low=0 feature_high=6 gamma=0.9 " \
    extra

/* Q* of the deterministic MDP, computed by the fixture */
static double det_qstar[DS][DA];

static void det_setup(void)
{
    static double p[DS * DA * DS], r[DS * DA];
    memset(p, 0, sizeof p);
    for (int s = 0; s < DS; s++)
        for (int a = 0; a < DA; a++) {
            r[s * DA + a] = det_rew[s][a];
            if (det_next[s][a] != TQ_TERM)
                p[(s * DA + a) * DS + det_next[s][a]] = 1.0;
        }
    tst_value_iteration(DS, DA, p, r, NULL, 0.9, &det_qstar[0][0]);
    tq_rng = 12345;
}

static void det_teardown(void)
{
}

/* ---- small helpers ------------------------------------------------------- */

/* learn one transition of a one-feature agent; nx NULL = terminal */
static void tq_learn1(dlsched_agent *ag, float x, int32_t a, float r, const float *nx,
                      uint32_t flags)
{
    dlsched_state_t s = tst_state(&x, 1);
    int rc;
    if (nx) {
        dlsched_state_t n = tst_state(nx, 1);
        rc = dlsched_observe_transition(ag, &s, a, r, &n, flags);
    } else {
        rc = dlsched_observe_transition(ag, &s, a, r, NULL, flags | DLSCHED_OBS_TERMINAL);
    }
    ck_assert_msg(rc == DLSCHED_OK, "observe_transition: %s", dlsched_last_error());
}

/* Q(x, .) of a one-feature agent */
static void tq_q1(dlsched_agent *ag, float x, float *q, uint32_t n)
{
    dlsched_state_t s = tst_state(&x, 1);
    ck_assert_int_eq(dlsched_q_values(ag, &s, q, n), DLSCHED_OK);
}

/* feed one transition (s, a) of the deterministic MDP */
static void det_feed(dlsched_agent *ag, int s, int a)
{
    int s2 = det_next[s][a];
    float nx = (float)s2 + 0.5f;
    tq_learn1(ag, (float)s + 0.5f, a, det_rew[s][a], s2 == TQ_TERM ? NULL : &nx, 0);
}

/* max |Q - Q*| over the deterministic MDP */
static double det_max_error(dlsched_agent *ag)
{
    double err = 0;
    for (int s = 0; s < DS; s++) {
        float q[DA];
        tq_q1(ag, (float)s + 0.5f, q, DA);
        for (int a = 0; a < DA; a++)
            err = fmax(err, fabs((double)q[a] - det_qstar[s][a]));
    }
    return err;
}

/* ---- core: oracles ------------------------------------------------------- */

START_TEST(test_det_mdp_sweeps_reach_qstar)
{
    /* the oracle itself: a few hand-checked values */
    ck_assert_double_eq_tol(det_qstar[5][1], 1.0, 1e-12);
    ck_assert(tst_min_gap(&det_qstar[0][0], DS, DA) > 0.05);

    dlsched_agent *ag = tst_agent(DET_SPEC("lr=0.5 seed=7"));
    for (int sweep = 0; sweep < 600; sweep++)
        for (int s = 0; s < DS; s++)
            for (int a = 0; a < DA; a++)
                det_feed(ag, s, a);
    double err = det_max_error(ag);
    ck_assert_msg(err < 1e-3, "max |Q - Q*| = %g", err);

    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_eq(st.transitions, 600u * DS * DA);
    ck_assert_uint_eq(st.train_steps, 600u * DS * DA);
    ck_assert_uint_eq(st.model_version, st.train_steps);
    ck_assert_uint_eq(st.transitions_stored, 0); /* qtable default: replay=0 */
    dlsched_agent_free(ag);
}
END_TEST

/* stochastic MDP: 5 states x 3 actions, P(s'|s,a) and R(s,a) from a fixed
   generator seed (chosen so the optimal action gaps exceed 0.2) */
#define SS 5
#define SA 3
#define STOCH_SEED 16

START_TEST(test_stoch_mdp_qstar_and_policy)
{
    static double p[SS * SA * SS], r[SS * SA], qs[SS * SA];
    static double cdf[SS * SA * SS];
    tq_rng = STOCH_SEED;
    tst_random_mdp(SS, SA, &tq_rng, p, r, cdf);
    tst_value_iteration(SS, SA, p, r, NULL, 0.9, qs);
    double gap = tst_min_gap(qs, SS, SA);
    ck_assert_msg(gap > 0.2, "the MDP's optimal action gap %g is too small", gap);

    dlsched_agent *ag = tst_agent("algo=qtable n_features=1 n_actions=3 bins=5 feature_low=0 "
                                  "feature_high=5 gamma=0.9 lr=0.01 seed=3");
    tq_rng = 999;
    for (int sweep = 0; sweep < 20000; sweep++)
        for (int s = 0; s < SS; s++)
            for (int a = 0; a < SA; a++) {
                int s2 = tst_mdp_next(cdf, SS, SA, s, a, tq_unif());
                float nx = (float)s2 + 0.5f;
                tq_learn1(ag, (float)s + 0.5f, a, (float)r[s * SA + a], &nx, 0);
            }
    double err = 0;
    for (int s = 0; s < SS; s++) {
        float q[SA];
        tq_q1(ag, (float)s + 0.5f, q, SA);
        for (int a = 0; a < SA; a++)
            err = fmax(err, fabs((double)q[a] - qs[s * SA + a]));
        ck_assert_msg(tst_argmax_f(q, SA) == tst_argmax_d(qs + s * SA, SA),
                      "state %d: greedy action %d, optimal %d", s, tst_argmax_f(q, SA),
                      tst_argmax_d(qs + s * SA, SA));
    }
    ck_assert_msg(err < 0.15, "max |Q - Q*| = %g", err);
    dlsched_agent_free(ag);
}
END_TEST

START_TEST(test_det_mdp_ticket_episodes)
{
    dlsched_agent *ag = tst_agent(DET_SPEC("lr=0.5 seed=11 explore=egreedy epsilon_start=1 "
                                           "epsilon_end=0.5 epsilon_decay_steps=1000"));
    int s = (int)tq_below(DS), len = 0;
    uint64_t truncated = 0, terminal = 0;
    for (int step = 0; step < 60000; step++) {
        float x = (float)s + 0.5f;
        dlsched_state_t st = tst_state(&x, 1);
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &st, 0, &d), DLSCHED_OK);
        ck_assert_uint_ne(d.ticket, 0);
        int a = d.action, s2 = det_next[s][a];
        len++;
        if (s2 == TQ_TERM) {
            ck_assert_int_eq(dlsched_observe(ag, d.ticket, det_rew[s][a], NULL,
                                             DLSCHED_OBS_TERMINAL), DLSCHED_OK);
            terminal++;
            s = (int)tq_below(DS);
            len = 0;
            continue;
        }
        float nx = (float)s2 + 0.5f;
        dlsched_state_t n = tst_state(&nx, 1);
        if (len == 25) { /* time limit: cut off, still bootstrap */
            ck_assert_int_eq(dlsched_observe(ag, d.ticket, det_rew[s][a], &n,
                                             DLSCHED_OBS_TRUNCATED), DLSCHED_OK);
            truncated++;
            s = (int)tq_below(DS);
            len = 0;
            continue;
        }
        ck_assert_int_eq(dlsched_observe(ag, d.ticket, det_rew[s][a], &n, 0), DLSCHED_OK);
        s = s2;
    }
    ck_assert_uint_gt(truncated, 0);
    ck_assert_uint_gt(terminal, 0);
    double err = det_max_error(ag);
    ck_assert_msg(err < 0.05, "max |Q - Q*| = %g", err);
    for (int i = 0; i < DS; i++) {
        float x = (float)i + 0.5f;
        dlsched_state_t st = tst_state(&x, 1);
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &st, DLSCHED_ACT_GREEDY, &d), DLSCHED_OK);
        ck_assert_int_eq(d.action, tst_argmax_d(det_qstar[i], DA));
        ck_assert_uint_eq(d.ticket, 0);
    }
    dlsched_stats_t sts = tst_stats(ag);
    ck_assert_uint_eq(sts.observed, 60000);
    ck_assert_uint_eq(sts.tickets_pending, 0);
    ck_assert_uint_eq(sts.train_steps, 60000);
    dlsched_agent_free(ag);
}
END_TEST

/* contextual bandit: 4 contexts x 5 arms, Bernoulli rewards */
START_TEST(test_contextual_bandit)
{
    static const double pr[4][5] = {
        {0.2, 0.8, 0.4, 0.3, 0.5},
        {0.5, 0.1, 0.3, 0.85, 0.45},
        {0.75, 0.4, 0.2, 0.45, 0.3},
        {0.3, 0.5, 0.1, 0.2, 0.9},
    };
    static const int best[4] = {1, 3, 0, 4};
    dlsched_agent *ag = tst_agent("algo=qtable n_features=1 n_actions=5 bins=4 feature_low=0 "
                                  "feature_high=4 lr=0.02 explore=egreedy epsilon_start=1 "
                                  "epsilon_end=0.05 epsilon_decay_steps=20000 seed=5");
    for (int i = 0; i < 40000; i++) {
        int c = (int)tq_below(4);
        float x = (float)c + 0.5f;
        dlsched_state_t st = tst_state(&x, 1);
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &st, 0, &d), DLSCHED_OK);
        float rw = tq_unif() < pr[c][d.action] ? 1.0f : 0.0f;
        ck_assert_int_eq(dlsched_observe(ag, d.ticket, rw, NULL, DLSCHED_OBS_TERMINAL),
                         DLSCHED_OK);
    }
    ck_assert_double_eq_tol(tst_stats(ag).epsilon, 0.05, 1e-12);
    int hits = 0;
    for (int i = 0; i < 10000; i++) {
        int c = (int)tq_below(4);
        /* anywhere in the context's bin */
        float x = (float)c + (float)tq_unif() * 0.999f;
        dlsched_state_t st = tst_state(&x, 1);
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &st, DLSCHED_ACT_GREEDY, &d), DLSCHED_OK);
        hits += d.action == best[c];
    }
    ck_assert_msg(hits >= 9500, "best arm chosen %d of 10000 times", hits);
    dlsched_agent_free(ag);
}
END_TEST

START_TEST(test_terminal_vs_truncated_update)
{
    /* states 0..3 (one bin each); lr 0.5, gamma 0.9 */
    dlsched_agent *ag = tst_agent("algo=qtable n_features=1 n_actions=3 bins=4 feature_low=0 "
                                  "feature_high=4 gamma=0.9 lr=0.5 seed=1");
    const float s = 0.5f, s2 = 1.5f;
    float q[3];
    /* Q(s', .) = (2, -1, 0.5) by one terminal update each */
    tq_learn1(ag, s2, 0, 4.0f, NULL, 0);
    tq_learn1(ag, s2, 1, -2.0f, NULL, 0);
    tq_learn1(ag, s2, 2, 1.0f, NULL, 0);
    tq_q1(ag, s2, q, 3);
    ck_assert_float_eq(q[0], 2.0f);
    ck_assert_float_eq(q[1], -1.0f);
    ck_assert_float_eq(q[2], 0.5f);

    /* terminal: no bootstrap even though next is given */
    tq_learn1(ag, s, 0, 1.0f, &s2, DLSCHED_OBS_TERMINAL);
    tq_q1(ag, s, q, 3);
    ck_assert_float_eq(q[0], 0.5f); /* lr * r */
    ck_assert_float_eq(q[1], 0.0f);

    /* truncated: bootstrap from max Q(s') = 2 */
    tq_learn1(ag, s, 1, 1.0f, &s2, DLSCHED_OBS_TRUNCATED);
    tq_q1(ag, s, q, 3);
    ck_assert_float_eq_tol(q[1], 0.5 * (1.0 + 0.9 * 2.0), 1e-6); /* 1.4 */
    ck_assert_float_eq(q[0], 0.5f);

    /* plain (no flag) bootstraps the same way */
    tq_learn1(ag, s, 2, 1.0f, &s2, 0);
    tq_q1(ag, s, q, 3);
    ck_assert_float_eq_tol(q[2], 1.4, 1e-6);

    /* a second truncated update from Q = 1.4: 1.4 + 0.5 * (2.8 - 1.4) = 2.1 */
    tq_learn1(ag, s, 1, 1.0f, &s2, DLSCHED_OBS_TRUNCATED);
    tq_q1(ag, s, q, 3);
    ck_assert_float_eq_tol(q[1], 2.1, 1e-6);

    /* the same through tickets, in state 2 (fresh, all zero) */
    float x = 2.5f;
    dlsched_state_t st = tst_state(&x, 1);
    dlsched_state_t nst = tst_state(&s2, 1);
    dlsched_decision_t d1, d2;
    ck_assert_int_eq(dlsched_act(ag, &st, 0, &d1), DLSCHED_OK);
    ck_assert_float_eq(d1.value, 0.0f);
    ck_assert_int_eq(dlsched_observe(ag, d1.ticket, -3.0f, &nst, DLSCHED_OBS_TERMINAL),
                     DLSCHED_OK);
    tq_q1(ag, x, q, 3);
    ck_assert_float_eq(q[d1.action], -1.5f);
    /* state 3 (fresh) */
    x = 3.5f;
    ck_assert_int_eq(dlsched_act(ag, &st, 0, &d2), DLSCHED_OK);
    ck_assert_int_eq(dlsched_observe(ag, d2.ticket, -3.0f, &nst, DLSCHED_OBS_TRUNCATED),
                     DLSCHED_OK);
    tq_q1(ag, x, q, 3);
    ck_assert_float_eq_tol(q[d2.action], 0.5 * (-3.0 + 0.9 * 2.0), 1e-6); /* -0.6 */

    /* terminated and truncated on the same step (Gymnasium allows it):
       terminated wins, no bootstrap. Q(s, 2) = 1.4 -> 1.4 + 0.5 (1 - 1.4) = 1.2,
       where bootstrapping would give 1.4 + 0.5 (2.8 - 1.4) = 2.1 */
    tq_learn1(ag, s, 2, 1.0f, &s2, DLSCHED_OBS_TERMINAL | DLSCHED_OBS_TRUNCATED);
    tq_q1(ag, s, q, 3);
    ck_assert_float_eq_tol(q[2], 1.2, 1e-6);
    /* ... also with next NULL: 1.2 + 0.5 (1 - 1.2) = 1.1 */
    tq_learn1(ag, s, 2, 1.0f, NULL, DLSCHED_OBS_TRUNCATED);
    tq_q1(ag, s, q, 3);
    ck_assert_float_eq_tol(q[2], 1.1, 1e-6);
    /* ... and through a ticket in state 3, where Q(3, a) is -0.6 or 0:
       Q += 0.5 (1 - Q), not 0.5 (1 + 0.9 * 2 - Q) */
    const uint32_t both = DLSCHED_OBS_TERMINAL | DLSCHED_OBS_TRUNCATED;
    dlsched_decision_t d3;
    ck_assert_int_eq(dlsched_act(ag, &st, 0, &d3), DLSCHED_OK);
    tq_q1(ag, x, q, 3);
    const float before = q[d3.action];
    ck_assert_int_eq(dlsched_observe(ag, d3.ticket, 1.0f, &nst, both), DLSCHED_OK);
    ck_assert_int_eq(dlsched_observe(ag, d3.ticket, 1.0f, &nst, both), DLSCHED_ETICKET);
    tq_q1(ag, x, q, 3);
    ck_assert_float_eq_tol(q[d3.action], before + 0.5 * (1.0 - before), 1e-6);
    dlsched_agent_free(ag);
}
END_TEST

START_TEST(test_next_mask_restricts_max)
{
    dlsched_agent *ag = tst_agent("algo=qtable n_features=1 n_actions=3 bins=4 feature_low=0 "
                                  "feature_high=4 gamma=0.9 lr=0.5 replay=16 seed=1");
    const float s2 = 3.5f;
    /* Q(s', .) = (10, 1, -3) */
    tq_learn1(ag, s2, 0, 20.0f, NULL, 0);
    tq_learn1(ag, s2, 1, 2.0f, NULL, 0);
    tq_learn1(ag, s2, 2, -6.0f, NULL, 0);

    float x = 0.5f;
    dlsched_state_t st = tst_state(&x, 1);
    dlsched_state_t nst = tst_state(&s2, 1);
    uint8_t m12[3] = {0, 1, 1}, m2[3] = {0, 0, 1};
    float q[3];

    nst.n_mask = 3;
    nst.mask = m12; /* max over {1, 2} = 1, not 10 */
    ck_assert_int_eq(dlsched_observe_transition(ag, &st, 0, 1.0f, &nst, 0), DLSCHED_OK);
    tq_q1(ag, x, q, 3);
    ck_assert_float_eq_tol(q[0], 0.5 * (1.0 + 0.9 * 1.0), 1e-6);

    nst.mask = m2; /* only action 2: the max is -3, not floored at 0 */
    ck_assert_int_eq(dlsched_observe_transition(ag, &st, 1, 1.0f, &nst, 0), DLSCHED_OK);
    tq_q1(ag, x, q, 3);
    ck_assert_float_eq_tol(q[1], 0.5 * (1.0 - 0.9 * 3.0), 1e-6);

    /* unmasked for comparison (state 1): max is 10 */
    nst.n_mask = 0;
    nst.mask = NULL;
    x = 1.5f;
    ck_assert_int_eq(dlsched_observe_transition(ag, &st, 2, 1.0f, &nst, 0), DLSCHED_OK);
    tq_q1(ag, x, q, 3);
    ck_assert_float_eq_tol(q[2], 0.5 * (1.0 + 0.9 * 10.0), 1e-6);

    /* the ticket path honours next's mask too (state 2) */
    x = 2.5f;
    nst.n_mask = 3;
    nst.mask = m12;
    dlsched_decision_t d;
    ck_assert_int_eq(dlsched_act(ag, &st, 0, &d), DLSCHED_OK);
    ck_assert_int_eq(dlsched_observe(ag, d.ticket, 1.0f, &nst, 0), DLSCHED_OK);
    tq_q1(ag, x, q, 3);
    ck_assert_float_eq_tol(q[d.action], 0.5 * (1.0 + 0.9 * 1.0), 1e-6);

    /* replay keeps each transition's mask: with Q(s', .) -> (20, 2, -6) the
       targets are r + gamma * Q(s', 1) under m12, r + gamma * Q(s', 2) under
       m2 and r + gamma * Q(s', 0) unmasked */
    ck_assert_uint_eq(tst_stats(ag).transitions_stored, 7);
    ck_assert_int_eq(dlsched_train(ag, 20000), DLSCHED_OK);
    tq_q1(ag, s2, q, 3);
    ck_assert_float_eq_tol(q[0], 20.0, 1e-3);
    ck_assert_float_eq_tol(q[1], 2.0, 1e-3);
    ck_assert_float_eq_tol(q[2], -6.0, 1e-3);
    tq_q1(ag, 0.5f, q, 3);
    ck_assert_float_eq_tol(q[0], 1.0 + 0.9 * 2.0, 1e-3);
    ck_assert_float_eq_tol(q[1], 1.0 - 0.9 * 6.0, 1e-3);
    ck_assert_float_eq(q[2], 0.0f);
    tq_q1(ag, 1.5f, q, 3);
    ck_assert_float_eq_tol(q[2], 1.0 + 0.9 * 20.0, 1e-3);
    tq_q1(ag, 2.5f, q, 3);
    ck_assert_float_eq_tol(q[d.action], 1.0 + 0.9 * 2.0, 1e-3);
    dlsched_agent_free(ag);
}
END_TEST

/* bin of x under the documented rule, clamped */
static int tq_doc_bin(double x, double lo, double hi, int bins)
{
    double f = floor(bins * (x - lo) / (hi - lo));
    if (f < 0)
        return 0;
    if (f > bins - 1)
        return bins - 1;
    return (int)f;
}

START_TEST(test_discretisation_one_feature)
{
    /* 4 bins over [0, 1]; Q(bin b, 0) := b + 1 with lr 1 at the bin centres */
    dlsched_agent *ag = tst_agent("algo=qtable n_features=1 n_actions=2 bins=4 feature_low=0 "
                                  "feature_high=1 lr=1 seed=1");
    for (int b = 0; b < 4; b++)
        tq_learn1(ag, 0.125f + 0.25f * (float)b, 0, (float)(b + 1), NULL, 0);
    static const struct {
        float x;
        int bin;
    } pts[] = {
        {-5.0f, 0},  {-1e30f, 0}, {-0.001f, 0}, {0.0f, 0},  {0.1f, 0},   {0.2499f, 0},
        {0.25f, 1},  {0.3f, 1},   {0.4999f, 1}, {0.5f, 2},  {0.74f, 2},  {0.75f, 3},
        {0.99f, 3},  {1.0f, 3},   {1.001f, 3},  {7.0f, 3},  {1e30f, 3},
    };
    for (size_t i = 0; i < sizeof pts / sizeof pts[0]; i++) {
        float q[2];
        tq_q1(ag, pts[i].x, q, 2);
        ck_assert_msg(q[0] == (float)(pts[i].bin + 1), "x=%g: Q=%g, expected bin %d", pts[i].x,
                      q[0], pts[i].bin);
        ck_assert_float_eq(q[1], 0.0f);
        ck_assert_int_eq(tq_doc_bin(pts[i].x, 0, 1, 4), pts[i].bin); /* the table itself */
    }
    dlsched_agent_free(ag);

    /* the out-of-range values train the edge bins */
    ag = tst_agent("algo=qtable n_features=1 n_actions=2 bins=4 feature_low=0 feature_high=1 "
                   "lr=1 seed=1");
    tq_learn1(ag, -3.0f, 1, 5.0f, NULL, 0);
    tq_learn1(ag, 1.0f, 1, 7.0f, NULL, 0); /* exactly feature_high */
    float q[2];
    tq_q1(ag, 0.01f, q, 2);
    ck_assert_float_eq(q[1], 5.0f);
    tq_q1(ag, 0.3f, q, 2);
    ck_assert_float_eq(q[1], 0.0f);
    tq_q1(ag, 0.6f, q, 2);
    ck_assert_float_eq(q[1], 0.0f);
    tq_q1(ag, 0.8f, q, 2);
    ck_assert_float_eq(q[1], 7.0f);
    tq_learn1(ag, 50.0f, 1, 9.0f, NULL, 0);
    tq_q1(ag, 0.76f, q, 2);
    ck_assert_float_eq(q[1], 9.0f);
    dlsched_agent_free(ag);
}
END_TEST

START_TEST(test_discretisation_per_feature_lists)
{
    /* feature 0: 2 bins over [0, 1]; feature 1: 3 bins over [-1, 1] */
    dlsched_agent *ag = tst_agent("algo=qtable n_features=2 n_actions=1 bins=2,3 "
                                  "feature_low=0,-1 feature_high=1,1 lr=1 seed=1");
    static const float c0[2] = {0.25f, 0.75f};
    static const float c1[3] = {-2.0f / 3.0f, 0.0f, 2.0f / 3.0f};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) {
            float x[2] = {c0[i], c1[j]};
            dlsched_state_t s = tst_state(x, 2);
            ck_assert_int_eq(dlsched_observe_transition(ag, &s, 0, (float)(10 * i + j + 1), NULL,
                                                        DLSCHED_OBS_TERMINAL),
                             DLSCHED_OK);
        }
    /* other points of each cell, inside and outside the ranges */
    static const float o0[] = {-4.0f, 0.0f, 0.1f, 0.49f, 0.5f, 0.6f, 0.99f, 1.0f, 3.0f};
    static const float o1[] = {-9.0f, -1.0f, -0.9f, -0.34f, -0.32f, 0.0f,
                               0.32f, 0.34f,  0.9f,  1.0f,   2.0f};
    for (size_t i = 0; i < sizeof o0 / sizeof o0[0]; i++)
        for (size_t j = 0; j < sizeof o1 / sizeof o1[0]; j++) {
            float x[2] = {o0[i], o1[j]};
            dlsched_state_t s = tst_state(x, 2);
            float q;
            ck_assert_int_eq(dlsched_q_values(ag, &s, &q, 1), DLSCHED_OK);
            int b0 = tq_doc_bin(o0[i], 0, 1, 2), b1 = tq_doc_bin(o1[j], -1, 1, 3);
            ck_assert_msg(q == (float)(10 * b0 + b1 + 1), "x=(%g, %g): Q=%g, expected cell (%d, %d)",
                          o0[i], o1[j], q, b0, b1);
        }
    dlsched_agent_free(ag);
}
END_TEST

START_TEST(test_replay_train_reaches_qstar)
{
    dlsched_agent *ag = tst_agent(DET_SPEC("lr=0.5 replay=1000 seed=21"));
    for (int s = 0; s < DS; s++)
        for (int a = 0; a < DA; a++)
            det_feed(ag, s, a);
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_eq(st.transitions_stored, DS * DA);
    ck_assert_uint_eq(st.transitions, DS * DA);
    ck_assert_uint_eq(st.train_steps, DS * DA);
    ck_assert(det_max_error(ag) > 0.5); /* one pass is far from Q* */

    ck_assert_int_eq(dlsched_train(ag, 0), DLSCHED_OK);
    ck_assert_uint_eq(tst_stats(ag).train_steps, DS * DA);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(dlsched_train(ag, 3000), DLSCHED_OK);
    double err = det_max_error(ag);
    ck_assert_msg(err < 1e-2, "after replay training max |Q - Q*| = %g", err);
    st = tst_stats(ag);
    ck_assert_uint_eq(st.train_steps, DS * DA + 30000);
    ck_assert_uint_eq(st.model_version, st.train_steps);
    ck_assert_uint_eq(st.transitions_stored, DS * DA); /* training stores nothing */
    ck_assert_uint_eq(st.transitions, DS * DA);
    dlsched_agent_free(ag);

    /* the buffer holds at most replay transitions */
    ag = tst_agent(DET_SPEC("lr=0.5 replay=5 seed=21"));
    for (int s = 0; s < DS; s++)
        for (int a = 0; a < DA; a++) {
            det_feed(ag, s, a);
            uint64_t n = (uint64_t)(s * DA + a + 1);
            ck_assert_uint_eq(tst_stats(ag).transitions_stored, n < 5 ? n : 5);
        }
    dlsched_agent_free(ag);

    /* an empty buffer: OK, nothing learned */
    ag = tst_agent(DET_SPEC("lr=0.5 replay=1000 seed=21"));
    ck_assert_int_eq(dlsched_train(ag, 100), DLSCHED_OK);
    st = tst_stats(ag);
    ck_assert_uint_eq(st.train_steps, 0);
    ck_assert_uint_eq(st.transitions_stored, 0);
    dlsched_agent_free(ag);

    /* no buffer: ECONFIG */
    ag = tst_agent(DET_SPEC("lr=0.5 replay=0 seed=21"));
    det_feed(ag, 0, 0);
    ck_assert_int_eq(dlsched_train(ag, 10), DLSCHED_ECONFIG);
    tst_assert_error_has("replay");
    ck_assert_uint_eq(tst_stats(ag).train_steps, 1);
    ck_assert_int_eq(dlsched_train(NULL, 10), DLSCHED_EINVAL);
    dlsched_agent_free(ag);
}
END_TEST

/* n steps of the deterministic MDP acting with two agents on the same
   states; the episode follows a1's actions; acts1/acts2 record the choices */
static void tq_lockstep(dlsched_agent *a1, dlsched_agent *a2, int n, int32_t *acts1,
                        int32_t *acts2)
{
    int s = 0;
    for (int i = 0; i < n; i++) {
        float x = (float)s + 0.5f;
        dlsched_state_t st = tst_state(&x, 1);
        dlsched_decision_t d1, d2;
        ck_assert_int_eq(dlsched_act(a1, &st, 0, &d1), DLSCHED_OK);
        ck_assert_int_eq(dlsched_act(a2, &st, 0, &d2), DLSCHED_OK);
        acts1[i] = d1.action;
        acts2[i] = d2.action;
        /* the episode follows agent 1's action; both learn agent 1's outcome
           for their own action only when they agree, else a fixed penalty */
        int a = d1.action, s2 = det_next[s][a];
        float r1 = det_rew[s][a];
        float r2 = d2.action == a ? r1 : -0.25f;
        if (s2 == TQ_TERM) {
            ck_assert_int_eq(dlsched_observe(a1, d1.ticket, r1, NULL, DLSCHED_OBS_TERMINAL),
                             DLSCHED_OK);
            ck_assert_int_eq(dlsched_observe(a2, d2.ticket, r2, NULL, DLSCHED_OBS_TERMINAL),
                             DLSCHED_OK);
            s = (int)tq_below(DS);
        } else {
            float nx = (float)s2 + 0.5f;
            dlsched_state_t n2 = tst_state(&nx, 1);
            ck_assert_int_eq(dlsched_observe(a1, d1.ticket, r1, &n2, 0), DLSCHED_OK);
            ck_assert_int_eq(dlsched_observe(a2, d2.ticket, r2, &n2, 0), DLSCHED_OK);
            s = s2;
        }
    }
}

START_TEST(test_reproducible_by_seed)
{
    enum { N = 3000 };
    static int32_t x1[N], x2[N], y1[N], y2[N];
    const char *spec42 = DET_SPEC("lr=0.3 seed=42 epsilon_start=0.6 epsilon_end=0.2 "
                                  "epsilon_decay_steps=2000 replay=64");
    dlsched_agent *a = tst_agent(spec42), *b = tst_agent(spec42);
    tq_rng = 77;
    tq_lockstep(a, b, N, x1, x2);
    ck_assert_int_eq(dlsched_train(a, 500), DLSCHED_OK);
    ck_assert_int_eq(dlsched_train(b, 500), DLSCHED_OK);
    ck_assert_mem_eq(x1, x2, sizeof x1);
    for (int s = 0; s < DS; s++) {
        float qa[DA], qb[DA];
        tq_q1(a, (float)s + 0.5f, qa, DA);
        tq_q1(b, (float)s + 0.5f, qb, DA);
        ck_assert_int_eq(memcmp(qa, qb, sizeof qa), 0);
    }
    dlsched_stats_t sa = tst_stats(a), sb = tst_stats(b);
    ck_assert_uint_eq(sa.explored, sb.explored);
    ck_assert_double_eq(sa.last_loss, sb.last_loss);
    dlsched_agent_free(a);
    dlsched_agent_free(b);

    /* seed 42 against seed 43 on the same states: different choices */
    a = tst_agent(spec42);
    b = tst_agent(DET_SPEC("lr=0.3 seed=43 epsilon_start=0.6 epsilon_end=0.2 "
                           "epsilon_decay_steps=2000 replay=64"));
    tq_rng = 77;
    tq_lockstep(a, b, N, y1, y2);
    ck_assert_mem_eq(y1, x1, sizeof y1); /* seed 42 repeats itself */
    int differ = 0;
    for (int i = 0; i < N; i++)
        differ += y1[i] != y2[i];
    ck_assert_int_gt(differ, 100);
    dlsched_agent_free(a);
    dlsched_agent_free(b);
}
END_TEST

/* ---- limits -------------------------------------------------------------- */

START_TEST(test_limit_table_too_large)
{
    ck_assert_int_eq(tst_agent_rc("algo=qtable n_features=8 n_actions=2 bins=1000"),
                     DLSCHED_ECONFIG);
    tst_assert_error_has("max_table_bytes");
    /* exactly at the limit passes, one byte less fails: 4 x 4 x 2 x 4 = 128 */
    ck_assert_int_eq(tst_agent_rc("algo=qtable n_features=2 n_actions=2 bins=4 "
                                  "max_table_bytes=128"),
                     DLSCHED_OK);
    ck_assert_int_eq(tst_agent_rc("algo=qtable n_features=2 n_actions=2 bins=4 "
                                  "max_table_bytes=127"),
                     DLSCHED_ECONFIG);
    tst_assert_error_has("max_table_bytes");
    /* a product of bins beyond 64 bits is caught, not wrapped */
    ck_assert_int_eq(tst_agent_rc("algo=qtable n_features=8 n_actions=1 bins=1048576 "
                                  "max_table_bytes=9223372036854775807"),
                     DLSCHED_ECONFIG);
    tst_assert_error_has("max_table_bytes");
}
END_TEST

START_TEST(test_limit_bad_lists)
{
    ck_assert_int_eq(tst_agent_rc("algo=qtable n_features=3 n_actions=2 bins=2,3"),
                     DLSCHED_ECONFIG);
    tst_assert_error_has("'bins'");
    ck_assert_int_eq(tst_agent_rc("algo=qtable n_features=1 n_actions=2 bins=2,3"),
                     DLSCHED_ECONFIG);
    tst_assert_error_has("'bins'");
    ck_assert_int_eq(tst_agent_rc("algo=qtable n_features=2 n_actions=2 feature_low=0,0,0"),
                     DLSCHED_ECONFIG);
    tst_assert_error_has("feature_low");
    ck_assert_int_eq(tst_agent_rc("algo=qtable n_features=2 n_actions=2 feature_high=1,1,1"),
                     DLSCHED_ECONFIG);
    tst_assert_error_has("feature_high");
    /* the right lengths pass */
    ck_assert_int_eq(tst_agent_rc("algo=qtable n_features=3 n_actions=2 bins=2,3,4 "
                                  "feature_low=0,-1,5 feature_high=1,1,6"),
                     DLSCHED_OK);
}
END_TEST

START_TEST(test_limit_low_not_below_high)
{
    ck_assert_int_eq(tst_agent_rc("algo=qtable n_features=1 n_actions=2 feature_low=1 "
                                  "feature_high=1"),
                     DLSCHED_ECONFIG);
    tst_assert_error_has("feature_low");
    ck_assert_int_eq(tst_agent_rc("algo=qtable n_features=1 n_actions=2 feature_low=2 "
                                  "feature_high=1"),
                     DLSCHED_ECONFIG);
    /* one feature of a list suffices */
    ck_assert_int_eq(tst_agent_rc("algo=qtable n_features=2 n_actions=2 feature_low=0,5 "
                                  "feature_high=1,5"),
                     DLSCHED_ECONFIG);
    tst_assert_error_has("feature 1");
    /* the defaults (0 and 1) are fine; a high below the default low is not */
    ck_assert_int_eq(tst_agent_rc("algo=qtable n_features=1 n_actions=2 feature_high=-1"),
                     DLSCHED_ECONFIG);
}
END_TEST

START_TEST(test_limit_algo_and_device)
{
    ck_assert_int_eq(tst_agent_rc("algo=qtable device=cuda n_features=1 n_actions=2"),
                     DLSCHED_ECONFIG);
    tst_assert_error_has("cuda");
    ck_assert_int_eq(tst_agent_rc("algo=qtable device=cpu n_features=1 n_actions=2"),
                     DLSCHED_OK);
    ck_assert_int_eq(tst_agent_rc("algo=qtable device=auto n_features=1 n_actions=2"),
                     DLSCHED_OK);
    /* no CUDA backend in this build: device=cuda is refused, auto falls back */
    ck_assert_int_eq(tst_agent_rc("algo=dqn device=cuda n_features=1 n_actions=2 hidden=4"),
                     DLSCHED_ENODEVICE);
    tst_assert_error_has("cuda");
    /* dqn is the default algo */
    ck_assert_int_eq(tst_agent_rc("n_features=1 n_actions=2 hidden=4 replay=10"), DLSCHED_OK);
    ck_assert_int_eq(tst_agent_rc("algo=qtable n_actions=2"), DLSCHED_ECONFIG);
    tst_assert_error_has("n_features");
    ck_assert_int_eq(tst_agent_rc("algo=qtable n_features=2"), DLSCHED_ECONFIG);
    tst_assert_error_has("n_actions");
}
END_TEST

START_TEST(test_limit_million_states)
{
    dlsched_agent *ag = tst_agent("algo=qtable n_features=6 bins=10 n_actions=8 "
                                  "feature_low=0 feature_high=10 lr=1");
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_ge(st.memory_bytes, 32000000u);
    /* the far corner and the origin are distinct states */
    float hi[6] = {9.5f, 9.5f, 9.5f, 9.5f, 9.5f, 9.5f}, lo[6] = {0};
    float mid[6] = {9.5f, 9.5f, 9.5f, 9.5f, 9.5f, 8.5f};
    dlsched_state_t sh = tst_state(hi, 6), sl = tst_state(lo, 6), sm = tst_state(mid, 6);
    ck_assert_int_eq(dlsched_observe_transition(ag, &sh, 7, 3.0f, NULL, DLSCHED_OBS_TERMINAL),
                     DLSCHED_OK);
    float q[8];
    ck_assert_int_eq(dlsched_q_values(ag, &sh, q, 8), DLSCHED_OK);
    ck_assert_float_eq(q[7], 3.0f);
    ck_assert_int_eq(dlsched_q_values(ag, &sl, q, 8), DLSCHED_OK);
    ck_assert_float_eq(q[7], 0.0f);
    ck_assert_int_eq(dlsched_q_values(ag, &sm, q, 8), DLSCHED_OK);
    ck_assert_float_eq(q[7], 0.0f);
    dlsched_decision_t d;
    ck_assert_int_eq(dlsched_act(ag, &sh, DLSCHED_ACT_GREEDY, &d), DLSCHED_OK);
    ck_assert_int_eq(d.action, 7);
    ck_assert_float_eq(d.value, 3.0f);
    dlsched_agent_free(ag);
}
END_TEST

Suite *suite_qtable(void)
{
    Suite *s = suite_create("qtable");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, det_setup, det_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_det_mdp_sweeps_reach_qstar);
    tcase_add_test(tc, test_stoch_mdp_qstar_and_policy);
    tcase_add_test(tc, test_det_mdp_ticket_episodes);
    tcase_add_test(tc, test_contextual_bandit);
    tcase_add_test(tc, test_terminal_vs_truncated_update);
    tcase_add_test(tc, test_next_mask_restricts_max);
    tcase_add_test(tc, test_discretisation_one_feature);
    tcase_add_test(tc, test_discretisation_per_feature_lists);
    tcase_add_test(tc, test_replay_train_reaches_qstar);
    tcase_add_test(tc, test_reproducible_by_seed);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_limit_table_too_large);
    tcase_add_test(tc, test_limit_bad_lists);
    tcase_add_test(tc, test_limit_low_not_below_high);
    tcase_add_test(tc, test_limit_algo_and_device);
    tcase_add_test(tc, test_limit_million_states);
    suite_add_tcase(s, tc);
    return s;
}
