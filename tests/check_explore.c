/* check_explore.c - behaviour policies: masks, exploration rates, the
   epsilon schedule, decision probabilities and flags against the documented
   formulas computed in the test, and bad act input. */
#include <stdio.h>

#include "tests.h"

/* the test's own generator: tst_next() of tests.h */
static uint64_t te_rng;

#define te_next() tst_next(&te_rng)
#define te_unif() tst_unif(&te_rng)
#define te_below(n) tst_below(&te_rng, (n))

/* The first failure of a hot loop, reported once after it (an assertion per
   iteration would dominate the run time). */
static char te_msg[256];
static uint64_t te_bad;

#define te_check(cond, ...)                                                     \
    do {                                                                       \
        if (!(cond) && te_bad++ == 0)                                          \
            snprintf(te_msg, sizeof te_msg, __VA_ARGS__);                      \
    } while (0)

#define te_check_done() ck_assert_msg(te_bad == 0, "%llu failures, first: %s", \
                                      (unsigned long long)te_bad, te_msg)

static void te_setup(void)
{
    te_rng = 20240601;
    te_bad = 0;
    te_msg[0] = '\0';
}

static void te_teardown(void)
{
}

/* ---- the documented behaviour policy, computed here ---------------------- */

enum { TE_EGREEDY, TE_SOFTMAX, TE_HINT, TE_GREEDY };

/* P(a) for every action (0 for masked ones) */
static void te_theory(int mode, double eps, double temp, const float *q, const uint8_t *mask,
                      int n, int hint, double *p)
{
    int k = 0, m = 0;
    double qmax = -INFINITY;
    for (int a = 0; a < n; a++)
        if (!mask || mask[a]) {
            k++;
            if (q[a] > qmax)
                qmax = q[a];
        }
    for (int a = 0; a < n; a++)
        if ((!mask || mask[a]) && q[a] == qmax)
            m++;
    if (mode == TE_SOFTMAX) {
        double z = 0;
        for (int a = 0; a < n; a++)
            if (!mask || mask[a])
                z += exp(((double)q[a] - qmax) / temp);
        for (int a = 0; a < n; a++)
            p[a] = (!mask || mask[a]) ? exp(((double)q[a] - qmax) / temp) / z : 0.0;
        return;
    }
    if (mode == TE_GREEDY)
        eps = 0;
    for (int a = 0; a < n; a++) {
        if (mask && !mask[a]) {
            p[a] = 0;
            continue;
        }
        double explore = (mode == TE_HINT && hint >= 0) ? (a == hint ? 1.0 : 0.0) : 1.0 / k;
        p[a] = eps * explore + (q[a] == qmax ? (1.0 - eps) / m : 0.0);
    }
}

/* the documented epsilon schedule after t ticketed decisions */
static double te_eps(double start, double end, double decay, double t)
{
    return t >= decay ? end : end + (start - end) * (1.0 - t / decay);
}

/* a single-state agent (bins=1) whose Q-values are exactly q: lr 1 and one
   terminal reward per action. guard=0: these tests check the 1.0 behaviour
   policies; the guard would take over the decisions with a hint (its own
   probabilities are checked in check_guard.c) */
static dlsched_agent *te_controlled(const char *explore, const float *q, int n)
{
    char spec[512];
    snprintf(spec, sizeof spec,
             "algo=qtable n_features=1 n_actions=%d bins=1 lr=1 ticket_capacity=8 seed=9 "
             "guard=0 %s",
             n,
             explore);
    dlsched_agent *ag = tst_agent(spec);
    float x = 0.5f;
    dlsched_state_t s = tst_state(&x, 1);
    for (int a = 0; a < n; a++)
        ck_assert_int_eq(dlsched_observe_transition(ag, &s, a, q[a], NULL, DLSCHED_OBS_TERMINAL),
                         DLSCHED_OK);
    float got[8];
    ck_assert_int_le(n, 8);
    ck_assert_int_eq(dlsched_q_values(ag, &s, got, (uint32_t)n), DLSCHED_OK);
    for (int a = 0; a < n; a++)
        ck_assert_float_eq(got[a], q[a]);
    return ag;
}

/* N decisions in the single state: every reported probability equals p of
   the returned action, and each action's frequency is within 0.01 of p */
static void te_draws(dlsched_agent *ag, const uint8_t *mask, int n, int hint, uint32_t flags,
                     const double *p, const float *q)
{
    enum { N = 100000 };
    float x = 0.5f;
    dlsched_state_t s = tst_state(&x, 1);
    if (mask) {
        s.n_mask = (uint32_t)n;
        s.mask = mask;
    }
    s.hint = hint;
    uint64_t count[8] = {0};
    for (int i = 0; i < N; i++) {
        dlsched_decision_t d;
        int rc = dlsched_act(ag, &s, flags, &d);
        te_check(rc == DLSCHED_OK, "act: %s", dlsched_last_error());
        if (rc != DLSCHED_OK)
            continue;
        te_check(d.action >= 0 && d.action < n, "action %d out of range", d.action);
        if (d.action < 0 || d.action >= n)
            continue;
        count[d.action]++;
        te_check(p[d.action] > 0, "action %d has theoretical probability 0", d.action);
        te_check(fabs(d.probability - p[d.action]) < 1e-5,
                 "action %d: probability %.9g, theory %.9g", d.action, d.probability,
                 p[d.action]);
        te_check(d.value == q[d.action], "action %d: value %g, Q %g", d.action, d.value,
                 q[d.action]);
        te_check(((flags & DLSCHED_ACT_GREEDY) != 0) == (d.ticket == 0), "ticket %llu",
                 (unsigned long long)d.ticket);
    }
    te_check_done();
    for (int a = 0; a < n; a++)
        ck_assert_msg(fabs((double)count[a] / N - p[a]) < 0.01,
                      "action %d: frequency %.4f, theory %.4f", a, (double)count[a] / N, p[a]);
}

/* ---- core ---------------------------------------------------------------- */

START_TEST(test_masks_never_violated)
{
    enum { NA = 6, N = 100000 };
    static const char *modes[3] = {"explore=egreedy", "explore=softmax temperature=0.3",
                                   "explore=hint"};
    dlsched_agent *ag[3];
    for (int i = 0; i < 3; i++) {
        char spec[256];
        snprintf(spec, sizeof spec,
                 "algo=qtable n_features=2 n_actions=6 bins=3 feature_low=0 feature_high=1 "
                 "lr=0.2 gamma=0.9 epsilon_start=0.6 epsilon_end=0.1 epsilon_decay_steps=20000 "
                 "ticket_capacity=32 seed=%d guard=0 %s",
                 100 + i, modes[i]);
        /* guard=0: te_theory is the 1.0 policy; the guard would take over
           the decisions with a hint */
        ag[i] = tst_agent(spec);
    }
    uint64_t ticketed[3] = {0}, greedy_n = 0, hint_returned = 0;
    for (int i = 0; i < N; i++) {
        int w = (int)te_below(3);
        float x[2] = {(float)(te_unif() * 1.4 - 0.2), (float)(te_unif() * 1.4 - 0.2)};
        uint8_t mask[NA];
        int k = 0;
        uint32_t bits = (uint32_t)te_below(63) + 1; /* non-empty */
        for (int a = 0; a < NA; a++) {
            mask[a] = (uint8_t)((bits >> a) & 1);
            k += mask[a];
        }
        dlsched_state_t s = tst_state(x, 2);
        s.n_mask = NA;
        s.mask = mask;
        if (te_unif() < 0.5) {
            uint32_t r = te_below((uint32_t)k);
            for (int a = 0; a < NA; a++)
                if (mask[a] && r-- == 0)
                    s.hint = a;
        }
        uint32_t flags = te_unif() < 0.25 ? DLSCHED_ACT_GREEDY : 0;
        int mode = flags ? TE_GREEDY : w;

        float q[NA];
        te_check(dlsched_q_values(ag[w], &s, q, NA) == DLSCHED_OK, "q_values: %s",
                 dlsched_last_error());
        for (int a = 0; a < NA; a++)
            te_check(mask[a] || q[a] == -INFINITY, "q_values: masked action %d reads %g", a,
                     q[a]);
        double p[NA];
        double eps = te_eps(0.6, 0.1, 20000, (double)ticketed[w]);
        te_theory(mode, eps, 0.3, q, mask, NA, s.hint, p);

        dlsched_decision_t d;
        int rc = dlsched_act(ag[w], &s, flags, &d);
        te_check(rc == DLSCHED_OK, "act: %s", dlsched_last_error());
        if (rc != DLSCHED_OK)
            continue;
        te_check(d.action >= 0 && d.action < NA, "action %d out of range", d.action);
        if (d.action < 0 || d.action >= NA)
            continue;
        te_check(mask[d.action], "decision %d: action %d is masked out (mask bits 0x%x)", i,
                 d.action, bits);
        te_check(fabs(d.probability - p[d.action]) < 1e-5,
                 "decision %d (mode %d): probability %.9g, theory %.9g", i, mode, d.probability,
                 p[d.action]);
        te_check(d.value == q[d.action], "value %g, Q %g", d.value, q[d.action]);
        if (d.flags & DLSCHED_DECISION_HINT) {
            te_check(d.action == s.hint, "HINT flag on action %d, hint %d", d.action, s.hint);
            hint_returned++;
        }
        if (flags) {
            greedy_n++;
            te_check(d.ticket == 0 && d.flags == 0, "greedy: ticket %llu flags %u",
                     (unsigned long long)d.ticket, d.flags);
            continue;
        }
        ticketed[w]++;
        if (te_unif() < 0.1)
            continue; /* left to expire */
        float nx[2] = {(float)te_unif(), (float)te_unif()};
        uint8_t nmask[NA];
        uint32_t nbits = (uint32_t)te_below(63) + 1;
        for (int a = 0; a < NA; a++)
            nmask[a] = (uint8_t)((nbits >> a) & 1);
        dlsched_state_t ns = tst_state(nx, 2);
        ns.n_mask = NA;
        ns.mask = nmask;
        static const uint32_t oflags[3] = {0, DLSCHED_OBS_TERMINAL, DLSCHED_OBS_TRUNCATED};
        rc = dlsched_observe(ag[w], d.ticket, (float)(2 * te_unif() - 1), &ns,
                             oflags[te_below(3)]);
        te_check(rc == DLSCHED_OK, "observe: %s", dlsched_last_error());
    }
    te_check_done();
    ck_assert_uint_gt(greedy_n, 20000);
    ck_assert_uint_gt(hint_returned, 1000);
    uint64_t decisions = 0;
    for (int i = 0; i < 3; i++) {
        dlsched_stats_t st = tst_stats(ag[i]);
        decisions += st.decisions;
        ck_assert_uint_eq(st.tickets_issued, ticketed[i]);
        ck_assert_uint_eq(st.tickets_issued, st.observed + st.tickets_expired + st.tickets_pending);
        ck_assert_uint_gt(st.tickets_expired, 0);
        ck_assert_uint_gt(st.observed, 0);
        dlsched_agent_free(ag[i]);
    }
    ck_assert_uint_eq(decisions, N);
}
END_TEST

START_TEST(test_explore_rate_fixed_epsilon)
{
    enum { N = 100000 };
    dlsched_agent *ag = tst_agent("algo=qtable n_features=1 n_actions=4 bins=4 lr=0.1 "
                                  "explore=egreedy epsilon_start=0.3 epsilon_end=0.3 "
                                  "ticket_capacity=16 seed=31");
    uint64_t explored = 0;
    for (int i = 0; i < N; i++) {
        float x = (float)te_unif();
        dlsched_state_t s = tst_state(&x, 1);
        dlsched_decision_t d;
        int rc = dlsched_act(ag, &s, 0, &d);
        te_check(rc == DLSCHED_OK, "act: %s", dlsched_last_error());
        explored += (d.flags & DLSCHED_DECISION_EXPLORED) != 0;
        te_check((d.flags & DLSCHED_DECISION_HINT) == 0, "HINT flag under egreedy");
        if (i % 2 == 0) /* keep the table moving; the rest expire */
            te_check(dlsched_observe(ag, d.ticket, (float)te_unif(), NULL,
                                     DLSCHED_OBS_TERMINAL) == DLSCHED_OK,
                     "observe: %s", dlsched_last_error());
    }
    te_check_done();
    double rate = (double)explored / N;
    ck_assert_msg(fabs(rate - 0.3) <= 0.01, "explored fraction %.4f, epsilon 0.3", rate);
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_eq(st.explored, explored);
    ck_assert_uint_eq(st.decisions, N);
    ck_assert_uint_eq(st.hinted, 0);
    ck_assert_double_eq_tol(st.epsilon, 0.3, 1e-12);
    dlsched_agent_free(ag);
}
END_TEST

START_TEST(test_epsilon_schedule)
{
    dlsched_agent *ag = tst_agent("algo=qtable n_features=1 n_actions=3 lr=0.1 "
                                  "explore=egreedy epsilon_start=1 epsilon_end=0.1 "
                                  "epsilon_decay_steps=1000 ticket_capacity=4 seed=2");
    float x = 0.5f;
    dlsched_state_t s = tst_state(&x, 1);
    for (int t = 0; t <= 1500; t++) {
        double want = t < 1000 ? 0.1 + 0.9 * (1.0 - t / 1000.0) : 0.1;
        dlsched_stats_t st = tst_stats(ag);
        ck_assert_uint_eq(st.tickets_issued, (uint64_t)t);
        ck_assert_msg(fabs(st.epsilon - want) <= 1e-9, "t=%d: epsilon %.12g, want %.12g", t,
                      st.epsilon, want);
        dlsched_decision_t d;
        /* greedy decisions do not advance the schedule */
        if (t % 100 == 7) {
            ck_assert_int_eq(dlsched_act(ag, &s, DLSCHED_ACT_GREEDY, &d), DLSCHED_OK);
            ck_assert_double_eq_tol(tst_stats(ag).epsilon, want, 1e-9);
        }
        ck_assert_int_eq(dlsched_act(ag, &s, 0, &d), DLSCHED_OK);
    }
    dlsched_agent_free(ag);

    /* the same schedule under explore=hint; softmax reports no epsilon */
    ag = tst_agent("algo=qtable n_features=1 n_actions=3 explore=hint epsilon_start=0.8 "
                   "epsilon_end=0.2 epsilon_decay_steps=10 ticket_capacity=4 seed=2");
    for (int t = 0; t < 15; t++) {
        ck_assert_double_eq_tol(tst_stats(ag).epsilon, te_eps(0.8, 0.2, 10, t), 1e-9);
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &s, 0, &d), DLSCHED_OK);
    }
    dlsched_agent_free(ag);

    /* epsilon_decay_steps=0: epsilon_end from the first decision */
    ag = tst_agent("algo=qtable n_features=1 n_actions=3 epsilon_start=1 epsilon_end=0.25 "
                   "epsilon_decay_steps=0 seed=2");
    ck_assert_double_eq_tol(tst_stats(ag).epsilon, 0.25, 1e-12);
    dlsched_agent_free(ag);
}
END_TEST

static const float te_q5[5] = {0.3f, 1.0f, -0.5f, 0.8f, 0.1f}; /* argmax 1 */
static const uint8_t te_m5[5] = {1, 0, 1, 1, 0};                 /* allowed 0, 2, 3; argmax 3 */

START_TEST(test_probability_egreedy)
{
    double p[5];
    dlsched_agent *ag = te_controlled("explore=egreedy epsilon_start=0.2 epsilon_end=0.2", te_q5,
                                      5);
    te_theory(TE_EGREEDY, 0.2, 1, te_q5, NULL, 5, -1, p);
    ck_assert_double_eq_tol(p[1], 0.2 / 5 + 0.8, 1e-12);
    te_draws(ag, NULL, 5, -1, 0, p, te_q5);

    te_theory(TE_EGREEDY, 0.2, 1, te_q5, te_m5, 5, -1, p);
    ck_assert_double_eq_tol(p[3], 0.2 / 3 + 0.8, 1e-12);
    ck_assert_double_eq_tol(p[0], 0.2 / 3, 1e-12);
    te_draws(ag, te_m5, 5, -1, 0, p, te_q5);

    /* greedy evaluation: the argmax with probability 1 */
    te_theory(TE_GREEDY, 0.2, 1, te_q5, te_m5, 5, -1, p);
    ck_assert_double_eq_tol(p[3], 1.0, 1e-12);
    te_draws(ag, te_m5, 5, -1, DLSCHED_ACT_GREEDY, p, te_q5);
    dlsched_agent_free(ag);

    /* ties: two greedy actions share (1 - eps) */
    static const float qt[5] = {0.5f, 1.0f, 1.0f, -1.0f, 0.0f};
    ag = te_controlled("explore=egreedy epsilon_start=0.4 epsilon_end=0.4", qt, 5);
    te_theory(TE_EGREEDY, 0.4, 1, qt, NULL, 5, -1, p);
    ck_assert_double_eq_tol(p[2], 0.4 / 5 + 0.6 / 2, 1e-12);
    te_draws(ag, NULL, 5, -1, 0, p, qt);
    dlsched_agent_free(ag);
}
END_TEST

START_TEST(test_probability_softmax)
{
    double p[5];
    dlsched_agent *ag = te_controlled("explore=softmax temperature=0.5", te_q5, 5);
    te_theory(TE_SOFTMAX, 0, 0.5, te_q5, NULL, 5, -1, p);
    double z = 0;
    for (int a = 0; a < 5; a++)
        z += exp(te_q5[a] / 0.5);
    ck_assert_double_eq_tol(p[2], exp(-0.5 / 0.5) / z, 1e-9);
    te_draws(ag, NULL, 5, -1, 0, p, te_q5);

    te_theory(TE_SOFTMAX, 0, 0.5, te_q5, te_m5, 5, -1, p);
    te_draws(ag, te_m5, 5, -1, 0, p, te_q5);

    /* EXPLORED exactly when the action is not the greedy one */
    float x = 0.5f;
    dlsched_state_t s = tst_state(&x, 1);
    uint64_t explored = 0;
    dlsched_stats_t st0 = tst_stats(ag);
    for (int i = 0; i < 20000; i++) {
        dlsched_decision_t d;
        te_check(dlsched_act(ag, &s, 0, &d) == DLSCHED_OK, "act: %s", dlsched_last_error());
        int expl = (d.flags & DLSCHED_DECISION_EXPLORED) != 0;
        te_check(expl == (d.action != 1), "action %d flags %u", d.action, d.flags);
        te_check((d.flags & DLSCHED_DECISION_HINT) == 0, "HINT flag under softmax");
        explored += (uint64_t)expl;
    }
    te_check_done();
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_eq(st.explored - st0.explored, explored);
    ck_assert_double_eq(st.epsilon, 0.0);
    dlsched_agent_free(ag);

    /* a low temperature is near greedy, a high one near uniform */
    ag = te_controlled("explore=softmax temperature=0.01", te_q5, 5);
    te_theory(TE_SOFTMAX, 0, 0.01, te_q5, NULL, 5, -1, p);
    ck_assert(p[1] > 0.99999);
    te_draws(ag, NULL, 5, -1, 0, p, te_q5);
    dlsched_agent_free(ag);
    ag = te_controlled("explore=softmax temperature=1000", te_q5, 5);
    te_theory(TE_SOFTMAX, 0, 1000, te_q5, te_m5, 5, -1, p);
    te_draws(ag, te_m5, 5, -1, 0, p, te_q5);
    dlsched_agent_free(ag);
}
END_TEST

START_TEST(test_probability_hint)
{
    double p[5];
    dlsched_agent *ag = te_controlled("explore=hint epsilon_start=0.3 epsilon_end=0.3", te_q5, 5);
    /* hint 0 (not greedy): 0.3 / 0.7 */
    te_theory(TE_HINT, 0.3, 1, te_q5, NULL, 5, 0, p);
    ck_assert_double_eq_tol(p[0], 0.3, 1e-12);
    ck_assert_double_eq_tol(p[1], 0.7, 1e-12);
    ck_assert_double_eq_tol(p[2], 0.0, 1e-12);
    te_draws(ag, NULL, 5, 0, 0, p, te_q5);
    /* hint -1: uniform exploration */
    te_theory(TE_HINT, 0.3, 1, te_q5, NULL, 5, -1, p);
    ck_assert_double_eq_tol(p[4], 0.3 / 5, 1e-12);
    te_draws(ag, NULL, 5, -1, 0, p, te_q5);
    /* masked: hint 2 among {0, 2, 3}, argmax 3 */
    te_theory(TE_HINT, 0.3, 1, te_q5, te_m5, 5, 2, p);
    te_draws(ag, te_m5, 5, 2, 0, p, te_q5);
    te_theory(TE_HINT, 0.3, 1, te_q5, te_m5, 5, -1, p);
    te_draws(ag, te_m5, 5, -1, 0, p, te_q5);
    /* the hint is the greedy action: probability 1 */
    te_theory(TE_HINT, 0.3, 1, te_q5, NULL, 5, 1, p);
    ck_assert_double_eq_tol(p[1], 1.0, 1e-12);
    te_draws(ag, NULL, 5, 1, 0, p, te_q5);
    dlsched_agent_free(ag);
}
END_TEST

START_TEST(test_ties_greedy_uniform)
{
    enum { N = 100000 };
    dlsched_agent *ag = tst_agent("algo=qtable n_features=1 n_actions=6 bins=3 seed=17");
    static const uint8_t mask[6] = {1, 0, 1, 1, 0, 1};
    static const float zero[6] = {0, 0, 0, 0, 0, 0};
    double p[6];
    te_theory(TE_GREEDY, 0, 1, zero, mask, 6, -1, p);
    for (int a = 0; a < 6; a++)
        ck_assert_double_eq_tol(p[a], mask[a] ? 0.25 : 0.0, 1e-12);
    float x = 0.5f;
    dlsched_state_t s = tst_state(&x, 1);
    s.n_mask = 6;
    s.mask = mask;
    uint64_t count[6] = {0};
    for (int i = 0; i < N; i++) {
        dlsched_decision_t d;
        te_check(dlsched_act(ag, &s, DLSCHED_ACT_GREEDY, &d) == DLSCHED_OK, "act: %s",
                 dlsched_last_error());
        te_check(d.action >= 0 && d.action < 6 && mask[d.action], "action %d", d.action);
        te_check(d.probability == 0.25f, "probability %.9g", d.probability);
        te_check(d.flags == 0 && d.ticket == 0 && d.value == 0.0f, "flags %u ticket %llu",
                 d.flags, (unsigned long long)d.ticket);
        if (d.action >= 0 && d.action < 6)
            count[d.action]++;
    }
    te_check_done();
    for (int a = 0; a < 6; a++)
        ck_assert_msg(fabs((double)count[a] / N - p[a]) < 0.01, "action %d: frequency %.4f", a,
                      (double)count[a] / N);
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_eq(st.decisions, N);
    ck_assert_uint_eq(st.tickets_issued, 0);
    ck_assert_uint_eq(st.explored, 0);
    dlsched_agent_free(ag);
}
END_TEST

START_TEST(test_hint_flags_and_counters)
{
    enum { N = 60000 };
    dlsched_agent *ag = te_controlled("explore=hint epsilon_start=0.35 epsilon_end=0.35", te_q5,
                                      5);
    float x = 0.5f;
    dlsched_state_t s = tst_state(&x, 1);
    uint64_t decisions = 0, explored = 0, hinted = 0, hint_hits = 0, ticketed = 0;
    uint64_t eligible = 0; /* ticketed decisions with a hint */
    for (int i = 0; i < N; i++) {
        int kind = (int)te_below(4);
        uint32_t flags = kind == 3 ? DLSCHED_ACT_GREEDY : 0;
        /* kind 0: hint 0 (not greedy); 1: hint 1 (the greedy action); 2: none */
        s.hint = kind == 0 ? 0 : kind == 1 ? 1 : kind == 2 ? -1 : (int32_t)te_below(5);
        dlsched_decision_t d;
        te_check(dlsched_act(ag, &s, flags, &d) == DLSCHED_OK, "act: %s", dlsched_last_error());
        decisions++;
        ticketed += flags == 0;
        eligible += kind <= 1;
        int ex = (d.flags & DLSCHED_DECISION_EXPLORED) != 0;
        int hi = (d.flags & DLSCHED_DECISION_HINT) != 0;
        explored += (uint64_t)ex;
        hinted += (uint64_t)hi;
        te_check((d.flags & ~3u) == 0, "unknown decision flags %u", d.flags);
        switch (kind) {
        case 0: /* the hint can only come from exploration */
            te_check(d.action == 0 || d.action == 1, "hint 0: action %d", d.action);
            te_check(d.action == 0 ? d.flags == (DLSCHED_DECISION_HINT |
                                                 DLSCHED_DECISION_EXPLORED)
                                   : d.flags == 0,
                     "hint 0: action %d flags %u", d.action, d.flags);
            hint_hits += d.action == 0;
            break;
        case 1: /* always action 1; flagged only when exploration returned it */
            te_check(d.action == 1, "hint 1: action %d", d.action);
            te_check(d.flags == 0 || d.flags == (DLSCHED_DECISION_HINT |
                                                 DLSCHED_DECISION_EXPLORED),
                     "hint 1: flags %u", d.flags);
            hint_hits += (uint64_t)hi;
            break;
        case 2: /* no hint: never HINT; unflagged means greedy */
            te_check(!hi, "HINT flag without a hint");
            te_check(ex || d.action == 1, "unflagged non-greedy action %d", d.action);
            break;
        default: /* evaluation: greedy, no flag, whatever the hint */
            te_check(d.action == 1 && d.flags == 0 && d.ticket == 0, "greedy: action %d "
                     "flags %u", d.action, d.flags);
            break;
        }
    }
    te_check_done();
    /* the hint was returned in about eps of its explore-eligible decisions */
    double frac = (double)hint_hits / (double)eligible;
    ck_assert_msg(fabs(frac - 0.35) < 0.02, "hint returned in %.4f of hinted decisions", frac);
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_eq(st.decisions, decisions);
    ck_assert_uint_eq(st.explored, explored);
    ck_assert_uint_eq(st.hinted, hinted);
    ck_assert_uint_eq(st.tickets_issued, ticketed);
    ck_assert_uint_eq(st.hinted, hint_hits);
    dlsched_agent_free(ag);
}
END_TEST

/* ---- limits -------------------------------------------------------------- */

/* act must fail with rc, leave *out and the counters alone */
static void te_act_fails(dlsched_agent *ag, const dlsched_state_t *s, uint32_t flags, int rc,
                         const char *needle)
{
    dlsched_stats_t before = tst_stats(ag);
    dlsched_decision_t d, sentinel;
    memset(&d, 0xab, sizeof d);
    memcpy(&sentinel, &d, sizeof d);
    ck_assert_int_eq(dlsched_act(ag, s, flags, &d), rc);
    if (needle)
        tst_assert_error_has(needle);
    ck_assert_int_eq(memcmp(&d, &sentinel, sizeof d), 0);
    dlsched_stats_t after = tst_stats(ag);
    ck_assert_uint_eq(after.decisions, before.decisions);
    ck_assert_uint_eq(after.tickets_issued, before.tickets_issued);
    ck_assert_uint_eq(after.tickets_pending, before.tickets_pending);
}

START_TEST(test_limit_bad_hint_and_mask)
{
    dlsched_agent *ag = tst_agent("algo=qtable n_features=1 n_actions=4 explore=hint seed=1");
    float x = 0.5f;
    dlsched_state_t s = tst_state(&x, 1);
    dlsched_decision_t d;
    float q[4];

    s.hint = 4;
    te_act_fails(ag, &s, 0, DLSCHED_EINVAL, "hint");
    ck_assert_int_eq(dlsched_q_values(ag, &s, q, 4), DLSCHED_EINVAL); /* checked there too */
    s.hint = -2;
    te_act_fails(ag, &s, 0, DLSCHED_EINVAL, "hint");
    s.hint = INT32_MIN;
    te_act_fails(ag, &s, DLSCHED_ACT_GREEDY, DLSCHED_EINVAL, "hint");
    s.hint = 3;
    ck_assert_int_eq(dlsched_act(ag, &s, 0, &d), DLSCHED_OK);

    uint8_t m[4] = {1, 0, 1, 1};
    s.n_mask = 4;
    s.mask = m;
    s.hint = 1; /* masked out */
    te_act_fails(ag, &s, 0, DLSCHED_EINVAL, "hint");
    te_act_fails(ag, &s, DLSCHED_ACT_GREEDY, DLSCHED_EINVAL, "masked");
    s.hint = 2;
    ck_assert_int_eq(dlsched_act(ag, &s, 0, &d), DLSCHED_OK);
    ck_assert(d.action != 1);

    uint8_t none[4] = {0, 0, 0, 0};
    s.mask = none;
    s.hint = -1;
    te_act_fails(ag, &s, 0, DLSCHED_ENOACTION, NULL);
    te_act_fails(ag, &s, DLSCHED_ACT_GREEDY, DLSCHED_ENOACTION, NULL);

    s.mask = m;
    s.n_mask = 3;
    te_act_fails(ag, &s, 0, DLSCHED_EINVAL, "n_mask");
    s.n_mask = 5;
    te_act_fails(ag, &s, 0, DLSCHED_EINVAL, "n_mask");
    s.n_mask = 0; /* a mask without its size */
    te_act_fails(ag, &s, 0, DLSCHED_EINVAL, "n_mask");
    s.n_mask = 4;
    s.mask = NULL;
    te_act_fails(ag, &s, 0, DLSCHED_EINVAL, "mask");

    s.n_mask = 0;
    te_act_fails(ag, &s, 2u, DLSCHED_EINVAL, "flags");
    te_act_fails(ag, &s, 0x80000000u, DLSCHED_EINVAL, "flags");
    te_act_fails(ag, &s, DLSCHED_ACT_GREEDY | 4u, DLSCHED_EINVAL, "flags");
    ck_assert_int_eq(dlsched_act(ag, &s, DLSCHED_ACT_GREEDY, &d), DLSCHED_OK);

    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_eq(st.decisions, 3);
    ck_assert_uint_eq(st.tickets_issued, 2);
    dlsched_agent_free(ag);
}
END_TEST

START_TEST(test_limit_temperature)
{
    dlsched_config *cfg = NULL;
    ck_assert_int_eq(dlsched_config_new(&cfg), DLSCHED_OK);
    ck_assert_int_eq(dlsched_config_set(cfg, "temperature", "0"), DLSCHED_ECONFIG);
    tst_assert_error_has("temperature");
    ck_assert_int_eq(dlsched_config_set(cfg, "temperature", "-1"), DLSCHED_ECONFIG);
    tst_assert_error_has("temperature");
    ck_assert_int_eq(dlsched_config_parse(cfg, "explore=softmax temperature=0"),
                     DLSCHED_ECONFIG);
    /* unchanged: still the default */
    char buf[64];
    ck_assert_int_eq(dlsched_config_get(cfg, "temperature", buf, sizeof buf), DLSCHED_OK);
    ck_assert_double_eq_tol(strtod(buf, NULL), 1.0, 1e-12);
    ck_assert_int_eq(dlsched_config_get(cfg, "explore", buf, sizeof buf), DLSCHED_OK);
    ck_assert_str_eq(buf, "egreedy");
    ck_assert_int_eq(dlsched_config_set(cfg, "temperature", "1e-6"), DLSCHED_OK);
    ck_assert_int_eq(dlsched_config_set(cfg, "explore", "boltzmann"), DLSCHED_ECONFIG);
    ck_assert_int_eq(dlsched_config_set(cfg, "epsilon_start", "1.5"), DLSCHED_ECONFIG);
    ck_assert_int_eq(dlsched_config_set(cfg, "epsilon_end", "-0.1"), DLSCHED_ECONFIG);
    dlsched_config_free(cfg);
}
END_TEST

Suite *suite_explore(void)
{
    Suite *s = suite_create("explore");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, te_setup, te_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_masks_never_violated);
    tcase_add_test(tc, test_explore_rate_fixed_epsilon);
    tcase_add_test(tc, test_epsilon_schedule);
    tcase_add_test(tc, test_probability_egreedy);
    tcase_add_test(tc, test_probability_softmax);
    tcase_add_test(tc, test_probability_hint);
    tcase_add_test(tc, test_ties_greedy_uniform);
    tcase_add_test(tc, test_hint_flags_and_counters);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_checked_fixture(tc, te_setup, te_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_limit_bad_hint_and_mask);
    tcase_add_test(tc, test_limit_temperature);
    suite_add_tcase(s, tc);
    return s;
}
