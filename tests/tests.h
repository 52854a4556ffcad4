/* tests.h - shared helpers of the Check suites */
#ifndef DLS_TESTS_H
#define DLS_TESTS_H

#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlsched.h"

Suite *suite_config(void);
Suite *suite_errors(void);
Suite *suite_rng(void);
Suite *suite_tickets(void);
Suite *suite_agent(void);
Suite *suite_explore(void);
Suite *suite_qtable(void);
Suite *suite_replay(void);
Suite *suite_dqn(void);
Suite *suite_dqn_learn(void);
Suite *suite_serving(void);
Suite *suite_checkpoint(void);
Suite *suite_guard(void);
TCase *tcase_guard_learning(void); /* check_guard_learn.c, in suite_guard */
TCase *tcase_guard_threads(void);
TCase *tcase_guard_block(void); /* check_guard_block.c, in suite_guard */
TCase *tcase_guard_units(void); /* check_guard_unit.c, in suite_guard */
Suite *suite_threads(void);
Suite *suite_meta(void);
Suite *suite_cuda(void);
Suite *suite_blasinfo(void);
Suite *suite_kernels(void);
Suite *suite_exchange(void);

/* An agent from a config spec; fails the test with the library's message
   when creation fails. With DLSCHED_TEST_DEVICE set (bench/gpu/run.sh sets
   "cuda" for the dqn_learn suite), an algo=dqn spec's agent learns on that
   device instead, but for per=1 specs: prioritized replay is CPU-only. */
static inline dlsched_agent *tst_agent(const char *spec)
{
    dlsched_config *cfg = NULL;
    ck_assert_int_eq(dlsched_config_new(&cfg), DLSCHED_OK);
    int rc = dlsched_config_parse(cfg, spec);
    ck_assert_msg(rc == DLSCHED_OK, "parse '%s': %s", spec, dlsched_last_error());
    const char *dev = getenv("DLSCHED_TEST_DEVICE");
    if (!(dev && *dev && strstr(spec, "algo=dqn") && !strstr(spec, "per=1")))
        dev = NULL;
    if (dev) {
        rc = dlsched_config_set(cfg, "device", dev);
        ck_assert_msg(rc == DLSCHED_OK, "DLSCHED_TEST_DEVICE=%s: %s", dev, dlsched_last_error());
    }
    dlsched_agent *ag = NULL;
    rc = dlsched_agent_new(cfg, &ag);
    ck_assert_msg(rc == DLSCHED_OK, "agent_new '%s'%s%s: %s", spec,
                  dev ? " with device=" : "", dev ? dev : "", dlsched_last_error());
    dlsched_config_free(cfg);
    return ag;
}

/* Status of agent creation from a spec (the agent, if any, is freed). */
static inline int tst_agent_rc(const char *spec)
{
    dlsched_config *cfg = NULL;
    ck_assert_int_eq(dlsched_config_new(&cfg), DLSCHED_OK);
    int rc = dlsched_config_parse(cfg, spec);
    if (rc == DLSCHED_OK) {
        dlsched_agent *ag = NULL;
        rc = dlsched_agent_new(cfg, &ag);
        dlsched_agent_free(ag);
    }
    dlsched_config_free(cfg);
    return rc;
}

/* A state over host-owned features, no mask, no hint. */
static inline dlsched_state_t tst_state(const float *x, uint32_t n)
{
    dlsched_state_t s;
    memset(&s, 0, sizeof s);
    s.features = x;
    s.n_features = n;
    s.hint = -1;
    return s;
}

static inline dlsched_stats_t tst_stats(dlsched_agent *ag)
{
    dlsched_stats_t st;
    ck_assert_int_eq(dlsched_stats(ag, &st, sizeof st), DLSCHED_OK);
    return st;
}

/* The tests' own generator (splitmix64), independent of the library's. */
static inline uint64_t tst_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* uniform in [0, 1) */
static inline double tst_unif(uint64_t *state)
{
    return (double)(tst_next(state) >> 11) * 0x1.0p-53;
}

/* uniform in [0, n) (modulo bias is irrelevant for tests) */
static inline uint32_t tst_below(uint64_t *state, uint32_t n)
{
    return (uint32_t)(tst_next(state) % n);
}

/* index of the first largest of n values: the oracle's greedy action */
static inline int tst_argmax_d(const double *q, int n)
{
    int b = 0;
    for (int a = 1; a < n; a++)
        if (q[a] > q[b])
            b = a;
    return b;
}

static inline int tst_argmax_f(const float *q, int n)
{
    int b = 0;
    for (int a = 1; a < n; a++)
        if (q[a] > q[b])
            b = a;
    return b;
}

/* The random MDPs of the learning tests (qtable, dqn, serving): ns states,
   na actions; P(.|s,a) from cubed uniforms, normalised (uneven rows), R
   uniform in [-1, 1), all drawn from *rng in that order. cdf gets each
   row's cumulative sums (the last forced to 1) for tst_mdp_next(). */
static inline void tst_random_mdp(int ns, int na, uint64_t *rng, double *p, double *r,
                                  double *cdf)
{
    for (int sa = 0; sa < ns * na; sa++) {
        double t = 0;
        for (int k = 0; k < ns; k++) {
            double u = tst_unif(rng);
            p[sa * ns + k] = u * u * u;
            t += p[sa * ns + k];
        }
        for (int k = 0; k < ns; k++)
            p[sa * ns + k] /= t;
        r[sa] = 2 * tst_unif(rng) - 1;
    }
    for (int sa = 0; sa < ns * na; sa++) {
        double c = 0;
        for (int k = 0; k < ns; k++)
            cdf[sa * ns + k] = (c += p[sa * ns + k]);
        cdf[sa * ns + ns - 1] = 1.0;
    }
}

/* s' of (s, a) for a uniform u in [0, 1), from tst_random_mdp()'s cdf */
static inline int tst_mdp_next(const double *cdf, int ns, int na, int s, int a, double u)
{
    int s2 = 0;
    while (u >= cdf[(s * na + a) * ns + s2])
        s2++;
    return s2;
}

/*
 * The oracle of the learning tests, value iteration in double:
 *   Q(s,a) = R(s,a) + gamma * sum_s' P(s'|s,a) * max_{a' allowed} Q(s',a')
 * p is ns x na x ns; a row summing to less than 1 terminates with the
 * missing mass. nmask (ns x na x na, or NULL for "all allowed") is the mask
 * the next state carries after (s,a): the max runs over its allowed a' only.
 * Iterates until no value changes by 1e-13.
 */
static inline void tst_value_iteration(int ns, int na, const double *p, const double *r,
                                       const uint8_t *nmask, double gamma, double *q)
{
    for (int i = 0; i < ns * na; i++)
        q[i] = 0;
    for (int it = 0; it < 100000; it++) {
        double change = 0;
        for (int s = 0; s < ns; s++)
            for (int a = 0; a < na; a++) {
                const uint8_t *m = nmask ? nmask + (size_t)(s * na + a) * na : NULL;
                double t = r[s * na + a];
                for (int s2 = 0; s2 < ns; s2++) {
                    double pr = p[(s * na + a) * ns + s2];
                    if (pr == 0.0)
                        continue;
                    double v = -INFINITY;
                    for (int a2 = 0; a2 < na; a2++)
                        if (!m || m[a2])
                            v = fmax(v, q[s2 * na + a2]);
                    t += gamma * pr * v;
                }
                change = fmax(change, fabs(t - q[s * na + a]));
                q[s * na + a] = t;
            }
        if (change < 1e-13)
            return;
    }
    ck_abort_msg("value iteration did not converge");
}

/* smallest gap between the best and the second-best action over states */
static inline double tst_min_gap(const double *q, int ns, int na)
{
    double g = INFINITY;
    for (int s = 0; s < ns; s++) {
        int b = tst_argmax_d(q + s * na, na);
        for (int a = 0; a < na; a++)
            if (a != b)
                g = fmin(g, q[s * na + b] - q[s * na + a]);
    }
    return g;
}

/* The contextual bandit of the learning tests: TST_CB_NC contexts, each a
   one-hot vector with +-0.1 jitter on every feature, and TST_CB_NA arms
   whose mean reward differs per context; the best arm leads the second
   best by 0.3 or more. */
#define TST_CB_NC 4
#define TST_CB_NA 5

static inline float tst_cb_mean(int c, int a)
{
    static const float mean[TST_CB_NC][TST_CB_NA] = {
        {0.2f, 0.8f, 0.4f, 0.3f, 0.5f},
        {0.5f, 0.1f, 0.3f, 0.85f, 0.45f},
        {0.75f, 0.4f, 0.2f, 0.45f, 0.3f},
        {0.3f, 0.5f, 0.1f, 0.2f, 0.9f},
    };
    return mean[c][a];
}

static inline int tst_cb_best(int c)
{
    static const int best[TST_CB_NC] = {1, 3, 0, 4};
    return best[c];
}

static inline void tst_cb_context(float *x, int c, uint64_t *rng)
{
    for (int j = 0; j < TST_CB_NC; j++)
        x[j] = (j == c ? 1.0f : 0.0f) + (float)(0.2 * tst_unif(rng) - 0.1);
}

/* a standard normal draw (Box-Muller) from the test's generator */
static inline double tst_normal(uint64_t *r)
{
    double u1 = tst_unif(r), u2 = tst_unif(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* z_k = Phi^-1(1 - risk / ((k + 1)(k + 2))), by Newton's method on
   Phi(z) = erfc(-z / sqrt 2) / 2 from z = 1 (Phi is concave for z > 0: the
   iterates rise monotonically to the root) - another method than the
   library's bisection */
static inline double tst_guard_z(double risk, int k)
{
    double p = 1.0 - risk / ((k + 1.0) * (k + 2.0)), z = 1.0;
    for (int i = 0; i < 200; i++) {
        double f = 0.5 * erfc(-z / M_SQRT2) - p;
        double step = f / (exp(-0.5 * z * z) / sqrt(2.0 * M_PI));
        z -= step;
        if (fabs(step) < 1e-15)
            break;
    }
    return z;
}

/* The number of Bernoulli(p) trials after which at least n successes have
   come but for a chance of about Phi(-4) (3e-5): the count's mean t p less
   4 of its standard deviations (<= sqrt(t p)) reaches n when
   sqrt(t p) >= 2 + sqrt(4 + n). */
static inline double tst_trials(double n, double p)
{
    double s = 2.0 + sqrt(4.0 + n);
    return s * s / p;
}

/* an agent from a printf-style spec */
static inline dlsched_agent *tst_agentf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static inline dlsched_agent *tst_agentf(const char *fmt, ...)
{
    char spec[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(spec, sizeof spec, fmt, ap);
    va_end(ap);
    return tst_agent(spec);
}

/* the guard's tests (check_guard.c, check_guard_learn.c): one-state
   agents (n_features=1, the feature 0.5). A decision with hint and flags: */
static inline dlsched_decision_t tst_act1(dlsched_agent *ag, int32_t hint, uint32_t flags)
{
    float x = 0.5f;
    dlsched_state_t s = tst_state(&x, 1);
    s.hint = hint;
    dlsched_decision_t d;
    int rc = dlsched_act(ag, &s, flags, &d);
    ck_assert_msg(rc == DLSCHED_OK, "act: %s", dlsched_last_error());
    return d;
}

/* the outcome of a ticket (terminal) */
static inline void tst_observe1(dlsched_agent *ag, uint64_t ticket, double r)
{
    int rc = dlsched_observe(ag, ticket, (float)r, NULL, DLSCHED_OBS_TERMINAL);
    ck_assert_msg(rc == DLSCHED_OK, "observe: %s", dlsched_last_error());
}

/* one logged terminal transition in the single state */
static inline void tst_log1(dlsched_agent *ag, int32_t a, double r)
{
    float x = 0.5f;
    dlsched_state_t s = tst_state(&x, 1);
    int rc = dlsched_observe_transition(ag, &s, a, (float)r, NULL, DLSCHED_OBS_TERMINAL);
    ck_assert_msg(rc == DLSCHED_OK, "observe_transition: %s", dlsched_last_error());
}

/* last_error must mention needle */
#define tst_assert_error_has(needle)                                                     \
    ck_assert_msg(strstr(dlsched_last_error(), (needle)) != NULL,                          \
                  "last_error '%s' lacks '%s'", dlsched_last_error(), (needle))

#endif
