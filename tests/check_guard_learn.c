/* check_guard_learn.c - the guard (dlsched(7), GUARD) learning and under
 * threads; part of the "guard" suite (check_guard.c has the rest):
 *   learning: (i) a truly better learned policy switches within a derived
 *             bound; (ii) a truly worse one rarely does (<= guard_risk);
 *             (iii) after the world changes, the guard falls back within a
 *             derived bound.
 *   threads:  learner=thread, four threads acting and observing with
 *             hints (guard_block 1 and 4): the counters reconcile (run
 *             under TSan by CI:
 *             CK_RUN_SUITE=guard make check SANITIZE=thread).
 * Deterministic: fixed library seeds, the test's own generator. */
#include <pthread.h>
#include <stdio.h>

#include "tests.h"

/* ---- learning: (i) learned truly better ------------------------------------------ */

/*
 * One state, two actions, hint 0 always; action 0 pays Normal(0, 1),
 * action 1 Normal(D, 1) with D = 0.5 (sigma = 1). egreedy with eps = 0.1,
 * lr 0.05, guard_share s = 0.1, guard_min_samples m = 100, guard_risk 0.05,
 * guard_min_visits 20.
 *
 * The derivation of the bound. A disagreement is a non-exploratory
 * decision whose greedy choice is 1 (!= hint); its learned arm always plays
 * 1 and its incumbent arm 0, so the arms' rewards are Normal(D, 1) and
 * Normal(0, 1) whatever the Q-values are: d estimates D with
 * se = sqrt(v_L / n_L + v_I / n_I) <= sigma sqrt(2 / n), n = min(n_L, n_I)
 * (here n_L: the learned arm gets s = 0.1 of the disagreements). The k-th
 * test (at n = m 2^k) switches unless d - z_k se <= 0; with d ~ N(D, se^2)
 * that fails with chance <= Phi(-4) once D >= (z_k + 4) se, i.e. once
 *     m 2^k >= 2 (z_k + 4)^2 sigma^2 / D^2.
 * z_0 = 1.960, z_1 = 2.394, z_2 = 2.638: k* = 2, n* = 400 (>= 353; k = 1
 * needs 327 > 200). The decisions it takes:
 *   support: action 1 is visited only by exploration (eps / 2 = 0.05 a
 *   decision) until it has 20 visits: T_s = tst_trials(20, 0.05) = 952;
 *   then a non-exploratory decision (0.9) is a disagreement unless
 *   Q(1) <= Q(0): after >= 20 rewards E Q(1) >= D (1 - 0.95^20) = 0.32,
 *   sd(Q(1) - Q(0)) <= sqrt(2 * 0.05 / 1.95) = 0.23, so P <= Phi(-1.4) <
 *   0.1, less and less as Q(1) sees more; the learned arm's rate is
 *   >= s * 0.9 * 0.9 = 0.081, and n* = 400 of its outcomes come within
 *   tst_trials(400, 0.081) = 6028 decisions.
 * Bound: T_s + 6028 = 6982 decisions (computed below from the same
 * formulas; the measured times are below it).
 * After the switch the learned policy is in charge: a disagreement goes
 * to it with chance 1 - s = 0.9.
 */
#define TG_I_D 0.5
#define TG_I_EPS 0.1
#define TG_I_SHARE 0.1
#define TG_I_M 100
#define TG_I_RISK 0.05
#define TG_I_VISITS 20
/* measured over the 20 seeds: switches after 1344 .. 1866 decisions (bound
   6982; most switch at the first or second test already) */

/* the bandit agent of (i) and (iii) */
static dlsched_agent *tg_bandit(int seed)
{
    return tst_agentf(
        "algo=qtable n_features=1 n_actions=2 bins=1 gamma=0 lr=0.05 epsilon_start=%g "
        "epsilon_end=%g guard_share=%g guard_min_samples=%d guard_risk=%g guard_tests=8 "
        "guard_min_visits=%d guard_block=1 seed=%d",
        TG_I_EPS, TG_I_EPS, TG_I_SHARE, TG_I_M, TG_I_RISK, TG_I_VISITS, seed);
}

/* act with hint 0 and observe Normal(mean[a], 1) until the guard switches
   (at most bound decisions); the decisions it took */
static uint64_t tg_until_switch(dlsched_agent *ag, const double *mean, uint64_t *rng,
                                uint64_t bound, int seed)
{
    uint64_t t = 0;
    while (tst_stats(ag).guard_state != DLSCHED_GUARD_LEARNED) {
        ck_assert_msg(t < bound, "seed %d: no switch within %llu decisions", seed,
                      (unsigned long long)bound);
        dlsched_decision_t d = tst_act1(ag, 0, 0);
        tst_observe1(ag, d.ticket, mean[d.action] + tst_normal(rng));
        t++;
    }
    return t;
}

static uint64_t tg_i_bound(void)
{
    int k = 0;
    while (TG_I_M * ldexp(1.0, k) <
           2 * pow(tst_guard_z(TG_I_RISK, k) + 4, 2) / (TG_I_D * TG_I_D))
        k++;
    ck_assert_int_eq(k, 2); /* the derivation above */
    double ts = tst_trials(TG_I_VISITS, TG_I_EPS / 2);
    double rate = TG_I_SHARE * (1 - TG_I_EPS) * 0.9;
    return (uint64_t)ceil(ts + tst_trials(TG_I_M * ldexp(1.0, k), rate));
}

START_TEST(test_learned_better_switches)
{
    uint64_t bound = tg_i_bound(), worst = 0, best = UINT64_MAX;
    ck_assert_uint_lt(bound, 7000);
    for (int seed = 1; seed <= 20; seed++) {
        dlsched_agent *ag = tg_bandit(seed);
        uint64_t rng = 1000 + (uint64_t)seed;
        const double mean[2] = {0.0, TG_I_D};
        uint64_t t = tg_until_switch(ag, mean, &rng, bound, seed);
        worst = t > worst ? t : worst;
        best = t < best ? t : best;
        /* the learned policy in charge: of the disagreements, 1 - s */
        dlsched_stats_t b = tst_stats(ag);
        uint64_t l = 0, inc = 0;
        for (int i = 0; i < 8000; i++) {
            dlsched_decision_t d = tst_act1(ag, 0, 0);
            if (!(d.flags & DLSCHED_DECISION_EXPLORED)) {
                if (d.action == 1)
                    l++;
                else if (d.flags & DLSCHED_DECISION_INCUMBENT)
                    inc++;
            }
            tst_observe1(ag, d.ticket, mean[d.action] + tst_normal(&rng));
        }
        dlsched_stats_t a = tst_stats(ag);
        ck_assert_uint_eq(a.guard_state, DLSCHED_GUARD_LEARNED);
        ck_assert_uint_eq(a.guard_by_learned - b.guard_by_learned, l);
        ck_assert_uint_eq(a.guard_by_incumbent - b.guard_by_incumbent, inc);
        double n = (double)(l + inc), f = (double)l / n;
        ck_assert_msg(n > 6000, "seed %d: %g disagreements of 8000", seed, n);
        ck_assert_msg(fabs(f - (1 - TG_I_SHARE)) < 4 * sqrt(TG_I_SHARE * (1 - TG_I_SHARE) / n),
                      "seed %d: the learned policy took %.4f of %g disagreements", seed, f, n);
        dlsched_agent_free(ag);
    }
    fprintf(stderr, "check_guard (i): switches after %llu .. %llu decisions (bound %llu)\n",
            (unsigned long long)best, (unsigned long long)worst, (unsigned long long)bound);
}
END_TEST

/* ---- learning: (ii) learned truly worse ------------------------------------------- */

/*
 * A context x in {0, 1}, uniform and hidden from the agent (one bin, a
 * constant feature); the hint is the best action for x: action a pays
 * Normal(delta [a == x], 1), delta = 0.1. The learned policy sees both
 * actions pay delta / 2 on average, so its greedy choice follows the noise
 * of its Q-values and disagrees with the hint about half the time; in a
 * disagreement it plays the action that pays 0 where the incumbent's pays
 * delta: d = -delta < 0. Each run: 3000 decisions, guard_share 0.5, tests
 * at 50, 100, 200, 400 outcomes (guard_tests 8 is not reached: one epoch,
 * checked), guard_risk 0.1: the chance of a switch is at most
 * sum_k risk / ((k + 1)(k + 2)) < 0.1 per run. Assert <= 20 of 200 runs.
 * Measured: 9 of these 200 runs switched, 6 ended in LEARNED (seeds
 * 1..1000: 20 switched, 2.0%, as the normal approximation predicts for
 * d = -0.1: 1.6% at the first test, 0.2% at the second; with delta = 0,
 * no difference at all, 79 of 1000: 7.9% <= 0.1).
 */
START_TEST(test_learned_worse_rarely_switches)
{
    int switched = 0, ended_learned = 0;
    uint64_t samples = 0;
    for (int seed = 1; seed <= 200; seed++) {
        dlsched_agent *ag = tst_agentf(
            "algo=qtable n_features=1 n_actions=2 bins=1 gamma=0 lr=0.1 epsilon_start=0.1 "
            "epsilon_end=0.1 guard_share=0.5 guard_min_samples=50 guard_risk=0.1 "
            "guard_tests=8 guard_min_visits=20 guard_block=1 seed=%d",
            seed);
        uint64_t rng = 50000 + (uint64_t)seed;
        for (int i = 0; i < 3000; i++) {
            int x = (int)tst_below(&rng, 2);
            dlsched_decision_t d = tst_act1(ag, x, 0);
            tst_observe1(ag, d.ticket, 0.1 * (d.action == x) + tst_normal(&rng));
        }
        dlsched_stats_t s = tst_stats(ag);
        switched += s.guard_switches > 0;
        ended_learned += s.guard_state == DLSCHED_GUARD_LEARNED;
        /* no epoch ended but by a switch or fallback: the per-epoch risk
           bound is the whole run's */
        ck_assert_uint_eq(s.guard_epoch, s.guard_switches + s.guard_fallbacks);
        samples += s.guard_by_learned;
        dlsched_agent_free(ag);
    }
    fprintf(stderr, "check_guard (ii): %d of 200 runs switched, %d ended in LEARNED\n", switched,
            ended_learned);
    /* the learned policy did disagree: its arm has >= 50 outcomes by the
       first test (at min(n_L, n_I) = 50); after a test that estimates it
       worse (d < 0) it gets an eighth of guard_share (guard.c), so fewer
       (measured: 214 a run) */
    ck_assert_uint_gt(samples, 200 * 100);
    ck_assert_int_le(ended_learned, 20);
    ck_assert_int_le(switched, 20);
}
END_TEST

/* ---- learning: (iii) the world changes after a switch ------------------------------ */

/*
 * As (i) but D = 1 and guard_share 0.1, until the switch; from the switch
 * on, action 1 pays Normal(-1, 1) (action 0 still Normal(0, 1)). The
 * learned policy is kept stale: with every decision the host also logs 4
 * old transitions "action 1 paid 1" (observe_transition), so Q(1) stays
 * near (4 - 0.9) / 4.9 = 0.63 > Q(0) ~ 0 and it keeps disagreeing.
 *   Switch: k* = 0 (100 >= 2 (1.960 + 4)^2 = 71): within
 *   T_s + tst_trials(100, 0.081) = 952 + 1837 decisions.
 *   Fallback: the new epoch starts at the switch, all of it in the changed
 *   world; the learned arm plays 1 (mean -1), the incumbent arm 0: d = -1;
 *   the incumbent arm gets s of the disagreements; the k-th test falls
 *   back unless d + z_k se >= 0, which has chance <= Phi(-4) once
 *   m 2^k >= 2 (z_k + 4)^2 sigma^2 / 1: k* = 0 again. The disagreement rate
 *   >= 0.9 * 0.9 (non-exploratory, Q(1) > Q(0)): within
 *   tst_trials(100, 0.1 * 0.81) = 1837 decisions of the switch.
 */
/* measured over the 10 seeds: the switch within 1821 decisions (bound
   2789), the fallback within 1275 decisions of it (bound 1837) */
START_TEST(test_fallback_after_world_change)
{
    double ts = tst_trials(TG_I_VISITS, TG_I_EPS / 2);
    ck_assert(TG_I_M >= 2 * pow(tst_guard_z(TG_I_RISK, 0) + 4, 2));
    uint64_t bound1 = (uint64_t)ceil(ts + tst_trials(TG_I_M, TG_I_SHARE * 0.81));
    uint64_t bound2 = (uint64_t)ceil(tst_trials(TG_I_M, TG_I_SHARE * 0.81));
    uint64_t worst1 = 0, worst2 = 0;
    for (int seed = 1; seed <= 10; seed++) {
        dlsched_agent *ag = tg_bandit(40 + seed);
        uint64_t rng = 7000 + (uint64_t)seed;
        double mean[2] = {0.0, 1.0};
        uint64_t t = tg_until_switch(ag, mean, &rng, bound1, seed);
        worst1 = t > worst1 ? t : worst1;
        mean[1] = -1.0; /* the world changes */
        t = 0;
        while (tst_stats(ag).guard_state == DLSCHED_GUARD_LEARNED) {
            ck_assert_msg(t < bound2, "seed %d: no fallback within %llu decisions of the switch",
                          seed, (unsigned long long)bound2);
            dlsched_decision_t d = tst_act1(ag, 0, 0);
            tst_observe1(ag, d.ticket, mean[d.action] + tst_normal(&rng));
            for (int j = 0; j < 4; j++)
                tst_log1(ag, 1, 1.0);
            t++;
        }
        worst2 = t > worst2 ? t : worst2;
        dlsched_stats_t s = tst_stats(ag);
        ck_assert_uint_eq(s.guard_state, DLSCHED_GUARD_FALLEN_BACK);
        ck_assert_uint_eq(s.guard_fallbacks, 1);
        ck_assert_uint_eq(s.guard_switches, 1);
        ck_assert_uint_eq(s.guard_epoch, 2);
        /* fallen back: the incumbent decides again, greedily and mostly */
        dlsched_decision_t d = tst_act1(ag, 0, DLSCHED_ACT_GREEDY);
        ck_assert_int_eq(d.action, 0);
        ck_assert_uint_eq(d.flags, DLSCHED_DECISION_INCUMBENT);
        dlsched_agent_free(ag);
    }
    fprintf(stderr,
            "check_guard (iii): switch within %llu (bound %llu), fallback within %llu of it "
            "(bound %llu)\n",
            (unsigned long long)worst1, (unsigned long long)bound1, (unsigned long long)worst2,
            (unsigned long long)bound2);
}
END_TEST

/* ---- threads ----------------------------------------------------------------------- */

#define TG_THREADS 4

typedef struct tg_thr {
    dlsched_agent *ag;
    uint32_t nf, na;
    int n, id;
    /* what this thread saw */
    uint64_t decisions, guarded, learned_arm, flagged, errors;
} tg_thr;

static void *tg_worker(void *arg)
{
    tg_thr *t = arg;
    uint64_t rng = 0xABC + (uint64_t)t->id;
    for (int i = 0; i < t->n; i++) {
        float x[4];
        for (uint32_t j = 0; j < t->nf; j++)
            x[j] = (float)tst_unif(&rng);
        dlsched_state_t s = tst_state(x, t->nf);
        s.hint = 0;
        uint32_t fl = i % 8 == 7 ? DLSCHED_ACT_GREEDY : 0;
        dlsched_decision_t d;
        if (dlsched_act(t->ag, &s, fl, &d) != DLSCHED_OK) {
            t->errors++;
            continue;
        }
        t->decisions++;
        if (!(d.flags & DLSCHED_DECISION_EXPLORED)) {
            t->guarded++;
            t->learned_arm += d.action != 0;
        }
        if (d.flags & DLSCHED_DECISION_INCUMBENT) {
            t->flagged++;
            if (d.action != 0)
                t->errors++;
        }
        if (d.ticket) {
            /* action a pays x[a % nf]: better than the hint where x[0] is small */
            float r = x[(uint32_t)d.action % t->nf] + 0.1f * (float)tst_unif(&rng);
            if (dlsched_observe(t->ag, d.ticket, r, NULL, DLSCHED_OBS_TERMINAL) != DLSCHED_OK)
                t->errors++;
        }
        if (i % 16 == 5) {
            int32_t a = (int32_t)tst_below(&rng, t->na);
            if (dlsched_observe_transition(t->ag, &s, a, x[(uint32_t)a % t->nf], NULL,
                                           DLSCHED_OBS_TERMINAL) != DLSCHED_OK)
                t->errors++;
        }
        if (t->id == 0 && i % 64 == 0) {
            dlsched_stats_t st;
            if (dlsched_stats(t->ag, &st, sizeof st) != DLSCHED_OK ||
                st.guard_decisions !=
                    st.guard_agreed + st.guard_unsupported + st.guard_by_learned +
                        st.guard_by_incumbent)
                t->errors++;
        }
        if (t->id == 1 && i % 500 == 250) { /* a save while the others act */
            void *buf = NULL;
            size_t len = 0;
            if (dlsched_save_buffer(t->ag, &buf, &len) != DLSCHED_OK)
                t->errors++;
            dlsched_buffer_free(buf);
        }
    }
    return NULL;
}

static void tg_threads_case(const char *spec, uint32_t nf, uint32_t na, int n)
{
    dlsched_agent *ag = tst_agent(spec);
    pthread_t th[TG_THREADS];
    tg_thr t[TG_THREADS];
    for (int i = 0; i < TG_THREADS; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].ag = ag;
        t[i].nf = nf;
        t[i].na = na;
        t[i].n = n;
        t[i].id = i;
        ck_assert_int_eq(pthread_create(&th[i], NULL, tg_worker, &t[i]), 0);
    }
    uint64_t decisions = 0, guarded = 0, learned_arm = 0, flagged = 0, errors = 0;
    for (int i = 0; i < TG_THREADS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        decisions += t[i].decisions;
        guarded += t[i].guarded;
        learned_arm += t[i].learned_arm;
        flagged += t[i].flagged;
        errors += t[i].errors;
    }
    ck_assert_uint_eq(errors, 0);
    ck_assert_uint_eq(decisions, (uint64_t)TG_THREADS * (uint64_t)n);
    dlsched_stats_t s = tst_stats(ag);
    ck_assert_uint_eq(s.decisions, decisions);
    ck_assert_uint_eq(s.guard_decisions, guarded);
    ck_assert_uint_eq(s.guard_decisions, s.guard_agreed + s.guard_unsupported +
                                             s.guard_by_learned + s.guard_by_incumbent);
    /* a non-exploratory action other than the hint is the learned arm's */
    ck_assert_uint_eq(s.guard_by_learned, learned_arm);
    ck_assert_uint_le(s.guard_samples_learned + s.guard_samples_incumbent,
                      s.guard_by_learned + s.guard_by_incumbent);
    /* flagged: unsupported and incumbent arm always, agreed while the
       incumbent is in charge */
    ck_assert_uint_ge(flagged, s.guard_unsupported + s.guard_by_incumbent);
    ck_assert_uint_le(flagged, s.guard_decisions - s.guard_by_learned);
    ck_assert_uint_gt(s.guard_by_learned + s.guard_by_incumbent, 0);
    ck_assert_uint_eq(s.tickets_issued, s.observed + s.tickets_expired + s.tickets_pending);
    dlsched_agent_free(ag);
}

START_TEST(test_threads_qtable)
{
    tg_threads_case("algo=qtable learner=thread n_features=2 n_actions=3 bins=4 gamma=0 "
                    "lr=0.1 epsilon_decay_steps=2000 guard_share=0.3 guard_min_samples=20 "
                    "guard_min_visits=3 guard_block=1 seed=31",
                    2, 3, 6000);
}
END_TEST

START_TEST(test_threads_dqn)
{
    tg_threads_case("algo=dqn device=cpu learner=thread n_features=3 n_actions=3 hidden=8 "
                    "batch=16 learning_starts=64 replay=2000 gamma=0 lr=0.01 "
                    "epsilon_decay_steps=2000 guard_share=0.3 guard_min_samples=20 "
                    "guard_min_visits=3 guard_hash_bits=4 guard_block=1 seed=32",
                    3, 3, 2000);
}
END_TEST

/* switchback (guard_block 4) under the same four threads: blocks, pairs
   and tags under the agent's lock; the counters reconcile as above, and
   the experiment ran (both arms decided disagreements) */
START_TEST(test_threads_block)
{
    tg_threads_case("algo=qtable learner=thread n_features=2 n_actions=3 bins=4 gamma=0 "
                    "lr=0.1 epsilon_decay_steps=2000 guard_share=0.25 guard_min_samples=5 "
                    "guard_min_visits=3 guard_block=4 seed=33",
                    2, 3, 6000);
}
END_TEST

TCase *tcase_guard_learning(void)
{
    TCase *tc = tcase_create("learning");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_learned_better_switches);
    tcase_add_test(tc, test_learned_worse_rarely_switches);
    tcase_add_test(tc, test_fallback_after_world_change);
    return tc;
}

TCase *tcase_guard_threads(void)
{
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_threads_qtable);
    tcase_add_test(tc, test_threads_dqn);
    tcase_add_test(tc, test_threads_block);
    return tc;
}
