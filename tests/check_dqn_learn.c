/* check_dqn_learn.c - the DQN (algo=dqn, device=cpu; bench/gpu/run.sh runs
   it again with DLSCHED_TEST_DEVICE=cuda, see tst_agent()) learns, through
   the public API only, against oracles computed in the test: bit-exact
   reproducibility by seed, a noisy contextual bandit, Q* of a random
   stochastic MDP by value iteration, a sparse-reward chain, a variant head
   and replay (dueling, prioritized, normalized), and the action masks in
   acting and in the target's max. Every run is deterministic: fixed library
   seeds and the test's own generator (tst_next() of tests.h). */
#include <stdio.h>

#include "tests.h"

/* the test's own generator */
static uint64_t tl_rng;

#define tl_unif() tst_unif(&tl_rng)
#define tl_below(n) tst_below(&tl_rng, (n))

/* the common part of every spec: the DQN on the CPU, single-threaded BLAS */
#define TL_BASE "algo=dqn device=cpu cpu_threads=1 "

#define TL_MAXS 16 /* most states of a test MDP */
#define TL_MAXA 8  /* most actions */

/* ---- helpers ------------------------------------------------------------- */

/* x = e_i of width n */
static void tl_onehot(float *x, uint32_t n, uint32_t i)
{
    memset(x, 0, n * sizeof *x);
    x[i] = 1.0f;
}

/* Q(e_s, .) of an agent over one-hot states of width n */
static void tl_q_onehot(dlsched_agent *ag, uint32_t n, uint32_t s, float *q, uint32_t na)
{
    float x[TL_MAXS];
    tl_onehot(x, n, s);
    dlsched_state_t st = tst_state(x, n);
    int rc = dlsched_q_values(ag, &st, q, na);
    ck_assert_msg(rc == DLSCHED_OK, "q_values: %s", dlsched_last_error());
}

/* the greedy action in one-hot state s */
static int tl_greedy_onehot(dlsched_agent *ag, uint32_t n, uint32_t s)
{
    float x[TL_MAXS];
    tl_onehot(x, n, s);
    dlsched_state_t st = tst_state(x, n);
    dlsched_decision_t d;
    int rc = dlsched_act(ag, &st, DLSCHED_ACT_GREEDY, &d);
    ck_assert_msg(rc == DLSCHED_OK, "greedy act: %s", dlsched_last_error());
    ck_assert_uint_eq(d.ticket, 0);
    return d.action;
}

/* ---- a. reproducibility ---------------------------------------------------- */

#define RP_NF 4
#define RP_NA 3
#define RP_PROBES 6

/* The same act/observe sequence into two agents in lockstep: states, rewards,
   next masks and episode ends come from the test's generator; agent a's
   action drives the episode; both observe the same outcome. Returns how many
   decisions differed between the two agents. */
static int rp_drive(dlsched_agent *a, dlsched_agent *b, int n, uint64_t seed)
{
    tl_rng = seed;
    float x[RP_NF], x2[RP_NF];
    for (int j = 0; j < RP_NF; j++)
        x[j] = (float)tl_unif();
    int differ = 0;
    for (int i = 0; i < n; i++) {
        dlsched_state_t st = tst_state(x, RP_NF);
        dlsched_decision_t da, db;
        ck_assert_int_eq(dlsched_act(a, &st, 0, &da), DLSCHED_OK);
        ck_assert_int_eq(dlsched_act(b, &st, 0, &db), DLSCHED_OK);
        differ += da.action != db.action || memcmp(&da.value, &db.value, sizeof da.value) != 0;
        /* reward depends on the state and the action, plus noise */
        float rw = x[da.action] - 0.5f * x[(da.action + 1) % RP_NA] + (float)(tl_unif() - 0.5);
        for (int j = 0; j < RP_NF; j++)
            x2[j] = (float)tl_unif();
        uint8_t m2[RP_NA];
        for (int k = 0; k < RP_NA; k++)
            m2[k] = tl_below(3) != 0;
        m2[tl_below(RP_NA)] = 1;
        dlsched_state_t nx = tst_state(x2, RP_NF);
        if (tl_below(2)) {
            nx.n_mask = RP_NA;
            nx.mask = m2;
        }
        uint32_t end = tl_below(10);
        uint32_t flags = end == 0 ? DLSCHED_OBS_TERMINAL : end == 1 ? DLSCHED_OBS_TRUNCATED : 0;
        const dlsched_state_t *np = flags == DLSCHED_OBS_TERMINAL ? NULL : &nx;
        ck_assert_int_eq(dlsched_observe(a, da.ticket, rw, np, flags), DLSCHED_OK);
        ck_assert_int_eq(dlsched_observe(b, db.ticket, rw, np, flags), DLSCHED_OK);
        memcpy(x, x2, sizeof x);
    }
    return differ;
}

/* train both to at least `steps` gradient steps */
static void rp_train_to(dlsched_agent *ag, uint64_t steps)
{
    uint64_t have = tst_stats(ag).train_steps;
    if (have < steps)
        ck_assert_int_eq(dlsched_train(ag, (uint32_t)(steps - have)), DLSCHED_OK);
    ck_assert_uint_ge(tst_stats(ag).train_steps, steps);
}

/* how many of the probe states give bitwise different Q-values */
static int rp_compare(dlsched_agent *a, dlsched_agent *b)
{
    uint64_t g = 4242;
    int differ = 0;
    for (int i = 0; i < RP_PROBES; i++) {
        float x[RP_NF];
        for (int j = 0; j < RP_NF; j++)
            x[j] = (float)(2.0 * tst_unif(&g) - 0.5);
        if (i < RP_NF)
            tl_onehot(x, RP_NF, (uint32_t)i);
        dlsched_state_t st = tst_state(x, RP_NF);
        float qa[RP_NA], qb[RP_NA];
        ck_assert_int_eq(dlsched_q_values(a, &st, qa, RP_NA), DLSCHED_OK);
        ck_assert_int_eq(dlsched_q_values(b, &st, qb, RP_NA), DLSCHED_OK);
        for (int k = 0; k < RP_NA; k++)
            ck_assert_msg(isfinite(qa[k]) && isfinite(qb[k]), "probe %d: Q not finite", i);
        differ += memcmp(qa, qb, sizeof qa) != 0;
    }
    return differ;
}

static const char *const rp_specs[] = {
    /* the plain DQN: double target, hard copies */
    TL_BASE "n_features=4 n_actions=3 hidden=32,32 batch=32 replay=4096 learning_starts=64 "
            "train_every=1 target_update=50 gamma=0.9 epsilon_decay_steps=1000 "
            "epsilon_end=0.1",
    /* every other path: dueling, PER, normalisation, n-step, plain target,
       Polyak, several gradient steps per run, a small ring that wraps */
    TL_BASE "n_features=4 n_actions=3 hidden=32,32 batch=32 replay=1000 learning_starts=64 "
            "train_every=2 gradient_steps=2 target_update=0.01 gamma=0.9 dueling=1 per=1 "
            "normalize=1 nstep=3 double=0 explore=softmax temperature=0.5",
};

START_TEST(test_reproducible_bitwise)
{
    char spec[512];
    for (size_t v = 0; v < sizeof rp_specs / sizeof rp_specs[0]; v++) {
        snprintf(spec, sizeof spec, "%s seed=42", rp_specs[v]);
        dlsched_agent *a = tst_agent(spec), *b = tst_agent(spec);
        ck_assert_int_eq(rp_compare(a, b), 0); /* same initial weights */
        ck_assert_int_eq(rp_drive(a, b, 2500, 99), 0);
        rp_train_to(a, 5000);
        rp_train_to(b, 5000);
        ck_assert_int_eq(rp_compare(a, b), 0);
        dlsched_stats_t sa = tst_stats(a), sb = tst_stats(b);
        ck_assert_uint_eq(sa.train_steps, sb.train_steps);
        ck_assert_uint_eq(sa.model_version, sb.model_version);
        ck_assert_uint_eq(sa.transitions_stored, sb.transitions_stored);
        ck_assert_uint_eq(sa.explored, sb.explored);
        ck_assert_uint_eq(sa.observed, 2500);
        ck_assert_uint_eq(sa.tickets_pending, 0);
        ck_assert_msg(sa.last_loss == sb.last_loss, "last_loss %.17g vs %.17g", sa.last_loss,
                      sb.last_loss);
        ck_assert(isfinite(sa.last_loss));
        /* the same sequence goes on identically after training */
        ck_assert_int_eq(rp_drive(a, b, 200, 7), 0);
        ck_assert_int_eq(rp_compare(a, b), 0);
        dlsched_agent_free(a);
        dlsched_agent_free(b);

        /* another seed: other initial weights, and other Q-values after the
           same states, rewards and episode ends (agent a's decisions drive
           the sequence; b's may differ) */
        snprintf(spec, sizeof spec, "%s seed=42", rp_specs[v]);
        a = tst_agent(spec);
        snprintf(spec, sizeof spec, "%s seed=43", rp_specs[v]);
        b = tst_agent(spec);
        ck_assert_int_eq(rp_compare(a, b), RP_PROBES);
        ck_assert_int_gt(rp_drive(a, b, 2500, 99), 0);
        rp_train_to(a, 5000);
        rp_train_to(b, 5000);
        ck_assert_int_eq(rp_compare(a, b), RP_PROBES);
        dlsched_agent_free(a);
        dlsched_agent_free(b);
    }
}
END_TEST

/* ---- b, e. contextual bandit ----------------------------------------------- */

#define CB_NC TST_CB_NC
#define CB_NA TST_CB_NA

/* trains with egreedy act + terminal observe, then returns how many of
   `evals` greedy decisions pick the best arm */
static int cb_run(const char *extra, int train, int evals)
{
    char spec[512];
    snprintf(spec, sizeof spec,
             TL_BASE "n_features=4 n_actions=5 hidden=32,32 batch=32 replay=10000 "
                     "learning_starts=200 train_every=1 lr=0.0005 target_update=100 "
                     "explore=egreedy epsilon_start=1 epsilon_end=0.05 "
                     "epsilon_decay_steps=3000 %s",
             extra);
    dlsched_agent *ag = tst_agent(spec);
    tl_rng = 77;
    for (int i = 0; i < train; i++) {
        int c = (int)tl_below(CB_NC);
        float x[CB_NC];
        tst_cb_context(x, c, &tl_rng);
        dlsched_state_t st = tst_state(x, CB_NC);
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &st, 0, &d), DLSCHED_OK);
        ck_assert(d.action >= 0 && d.action < CB_NA);
        float rw = tst_cb_mean(c, d.action) + (float)(tl_unif() - 0.5); /* noise +-0.5 */
        ck_assert_int_eq(dlsched_observe(ag, d.ticket, rw, NULL, DLSCHED_OBS_TERMINAL),
                         DLSCHED_OK);
    }
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_double_eq_tol(st.epsilon, 0.05, 1e-12);
    ck_assert_uint_eq(st.observed, (uint64_t)train);
    ck_assert_uint_eq(st.train_steps, (uint64_t)(train - 200 + 1)); /* from the 200th on */
    ck_assert_uint_eq(st.transitions_stored, (uint64_t)train);
    int hits = 0, per_ctx[CB_NC] = {0};
    for (int i = 0; i < evals; i++) {
        int c = (int)tl_below(CB_NC);
        float x[CB_NC];
        tst_cb_context(x, c, &tl_rng);
        dlsched_state_t s = tst_state(x, CB_NC);
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &s, DLSCHED_ACT_GREEDY, &d), DLSCHED_OK);
        ck_assert_uint_eq(d.ticket, 0);
        ck_assert_uint_eq(d.flags & DLSCHED_DECISION_EXPLORED, 0);
        hits += d.action == tst_cb_best(c);
        per_ctx[c] += d.action == tst_cb_best(c);
    }
    /* greedy decisions keep no ticket and do not move epsilon */
    st = tst_stats(ag);
    ck_assert_uint_eq(st.tickets_issued, (uint64_t)train);
    ck_assert_uint_eq(st.decisions, (uint64_t)(train + evals));
    dlsched_agent_free(ag);
    if (hits * 100 < evals * 95)
        fprintf(stderr, "bandit '%s': best arm %d of %d (per context %d %d %d %d)\n", extra,
                hits, evals, per_ctx[0], per_ctx[1], per_ctx[2], per_ctx[3]);
    return hits;
}

START_TEST(test_contextual_bandit)
{
    int hits = cb_run("seed=5", 6000, 4000);
    ck_assert_msg(hits >= 3800, "best arm chosen %d of 4000 greedy decisions", hits);
}
END_TEST

START_TEST(test_contextual_bandit_dueling_per_normalize)
{
    int hits = cb_run("seed=5 dueling=1 per=1 normalize=1", 6000, 4000);
    ck_assert_msg(hits >= 3800, "best arm chosen %d of 4000 greedy decisions", hits);
}
END_TEST

/* ---- c. a 12-state stochastic MDP ------------------------------------------ */

#define SM_NS 12
#define SM_NA 3
#define SM_GAMMA 0.9
/* generator seed of P and R: the smallest optimal action gap over the
   states is 0.54 (asserted below) */
#define SM_SEED 1347

START_TEST(test_stochastic_mdp_qstar)
{
    static double p[SM_NS * SM_NA * SM_NS], r[SM_NS * SM_NA], qs[SM_NS * SM_NA];
    static double cdf[SM_NS * SM_NA * SM_NS];
    tl_rng = SM_SEED;
    tst_random_mdp(SM_NS, SM_NA, &tl_rng, p, r, cdf);
    tst_value_iteration(SM_NS, SM_NA, p, r, NULL, SM_GAMMA, qs);
    double gap = tst_min_gap(qs, SM_NS, SM_NA);
    ck_assert_msg(gap > 0.3, "the MDP's optimal action gap %g is too small", gap);
    /* the optimal policy is not trivial: at least two actions are used */
    int used[SM_NA] = {0}, n_used = 0;
    for (int s = 0; s < SM_NS; s++)
        used[tst_argmax_d(qs + s * SM_NA, SM_NA)] = 1;
    for (int a = 0; a < SM_NA; a++)
        n_used += used[a];
    ck_assert_int_ge(n_used, 2);

    dlsched_agent *ag = tst_agent(TL_BASE "n_features=12 n_actions=3 gamma=0.9 hidden=32,32 "
                                          "batch=64 lr=0.0005 target_update=200 replay=20000 "
                                          "learning_starts=1000 train_every=2 seed=3");
    /* uniformly random (s, a), s' ~ P(.|s,a): training inline as they come */
    tl_rng = 999;
    enum { N_TR = 20000, N_TRAIN = 15000 };
    for (int i = 0; i < N_TR; i++) {
        int s = (int)tl_below(SM_NS), a = (int)tl_below(SM_NA);
        int s2 = tst_mdp_next(cdf, SM_NS, SM_NA, s, a, tl_unif());
        float x[SM_NS], x2[SM_NS];
        tl_onehot(x, SM_NS, (uint32_t)s);
        tl_onehot(x2, SM_NS, (uint32_t)s2);
        dlsched_state_t st = tst_state(x, SM_NS), nx = tst_state(x2, SM_NS);
        int rc = dlsched_observe_transition(ag, &st, a, (float)r[s * SM_NA + a], &nx, 0);
        ck_assert_msg(rc == DLSCHED_OK, "observe_transition: %s", dlsched_last_error());
    }
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_eq(st.transitions, N_TR);
    ck_assert_uint_eq(st.transitions_stored, N_TR);
    /* inline runs at transitions 1000, 1002, ..., 20000 */
    ck_assert_uint_eq(st.train_steps, (N_TR - 1000) / 2 + 1);
    ck_assert_int_eq(dlsched_train(ag, N_TRAIN), DLSCHED_OK);
    st = tst_stats(ag);
    ck_assert_uint_eq(st.train_steps, (N_TR - 1000) / 2 + 1 + N_TRAIN);
    ck_assert_uint_eq(st.transitions_stored, N_TR); /* training stores nothing */

    double err = 0;
    int worst_s = 0, worst_a = 0;
    for (int s = 0; s < SM_NS; s++) {
        float q[SM_NA];
        tl_q_onehot(ag, SM_NS, (uint32_t)s, q, SM_NA);
        for (int a = 0; a < SM_NA; a++)
            if (fabs((double)q[a] - qs[s * SM_NA + a]) > err) {
                err = fabs((double)q[a] - qs[s * SM_NA + a]);
                worst_s = s;
                worst_a = a;
            }
        int opt = tst_argmax_d(qs + s * SM_NA, SM_NA);
        ck_assert_msg(tst_argmax_f(q, SM_NA) == opt, "state %d: argmax Q is %d, optimal %d", s,
                      tst_argmax_f(q, SM_NA), opt);
        ck_assert_int_eq(tl_greedy_onehot(ag, SM_NS, (uint32_t)s), opt);
    }
    ck_assert_msg(err < 0.5, "max |Q - Q*| = %g at (%d, %d), Q* = %g", err, worst_s, worst_a,
                  qs[worst_s * SM_NA + worst_a]);
    dlsched_agent_free(ag);
}
END_TEST

/* ---- d. a 10-state chain with one reward at its end ------------------------- */

#define CH_N 10
#define CH_T 40 /* episode time limit */
#define CH_GAMMA 0.99

/* action 0 = left (stays at 0), 1 = right; reaching CH_N-1 pays 1 and ends */
static int ch_step(int s, int a)
{
    return a ? s + 1 : (s > 0 ? s - 1 : 0);
}

static void ch_run(const char *extra)
{
    /* the oracle: Q* by value iteration (state CH_N-1 is terminal) */
    static double p[CH_N * 2 * CH_N], r[CH_N * 2], qs[CH_N * 2];
    memset(p, 0, sizeof p);
    memset(r, 0, sizeof r);
    for (int s = 0; s < CH_N - 1; s++)
        for (int a = 0; a < 2; a++) {
            int s2 = ch_step(s, a);
            if (s2 == CH_N - 1)
                r[s * 2 + a] = 1.0;
            else
                p[(s * 2 + a) * CH_N + s2] = 1.0;
        }
    tst_value_iteration(CH_N, 2, p, r, NULL, CH_GAMMA, qs);
    for (int s = 0; s < CH_N - 1; s++) {
        ck_assert_double_eq_tol(qs[s * 2 + 1], pow(CH_GAMMA, 8 - s), 1e-9);
        ck_assert(qs[s * 2 + 1] > qs[s * 2]);
    }

    char spec[512];
    snprintf(spec, sizeof spec,
             TL_BASE "n_features=10 n_actions=2 gamma=0.99 hidden=32,32 batch=32 "
                     "learning_starts=200 train_every=1 target_update=200 "
                     "explore=egreedy epsilon_start=1 epsilon_decay_steps=3000 %s",
             extra);
    dlsched_agent *ag = tst_agent(spec);
    int reached = 0, truncated = 0;
    for (int ep = 0; ep < 300; ep++) {
        int s = 0;
        for (int t = 0; t < CH_T; t++) {
            float x[CH_N], x2[CH_N];
            tl_onehot(x, CH_N, (uint32_t)s);
            dlsched_state_t st = tst_state(x, CH_N);
            dlsched_decision_t d;
            ck_assert_int_eq(dlsched_act(ag, &st, 0, &d), DLSCHED_OK);
            int s2 = ch_step(s, d.action);
            if (s2 == CH_N - 1) {
                ck_assert_int_eq(dlsched_observe(ag, d.ticket, 1.0f, NULL, DLSCHED_OBS_TERMINAL),
                                 DLSCHED_OK);
                reached++;
                break;
            }
            tl_onehot(x2, CH_N, (uint32_t)s2);
            dlsched_state_t nx = tst_state(x2, CH_N);
            uint32_t flags = t == CH_T - 1 ? DLSCHED_OBS_TRUNCATED : 0;
            truncated += flags != 0;
            ck_assert_int_eq(dlsched_observe(ag, d.ticket, 0.0f, &nx, flags), DLSCHED_OK);
            s = s2;
        }
    }
    ck_assert_int_gt(reached, 0);
    ck_assert_int_gt(truncated, 0);
    ck_assert_int_eq(dlsched_train(ag, 3000), DLSCHED_OK);

    /* solved: right everywhere, by Q and by greedy decisions */
    double err = 0;
    for (int s = 0; s < CH_N - 1; s++) {
        float q[2];
        tl_q_onehot(ag, CH_N, (uint32_t)s, q, 2);
        ck_assert_msg(q[1] > q[0], "%s: state %d: Q(left) %g >= Q(right) %g", extra, s, q[0],
                      q[1]);
        ck_assert_int_eq(tl_greedy_onehot(ag, CH_N, (uint32_t)s), 1);
        err = fmax(err, fabs((double)q[1] - qs[s * 2 + 1]));
        ck_assert_msg(fabs((double)q[1] - qs[s * 2 + 1]) < 0.15,
                      "%s: state %d: Q(right) %g, Q* %g", extra, s, q[1], qs[s * 2 + 1]);
        ck_assert_msg(fabs((double)q[0] - qs[s * 2]) < 0.15, "%s: state %d: Q(left) %g, Q* %g",
                      extra, s, q[0], qs[s * 2]);
    }
    /* a greedy rollout from 0 reaches the end in CH_N - 1 steps */
    int s = 0, steps = 0;
    while (s != CH_N - 1 && steps < CH_T) {
        s = ch_step(s, tl_greedy_onehot(ag, CH_N, (uint32_t)s));
        steps++;
    }
    ck_assert_int_eq(s, CH_N - 1);
    ck_assert_int_eq(steps, CH_N - 1);
    dlsched_agent_free(ag);
}

START_TEST(test_chain_sparse_reward)
{
    ch_run("lr=0.001 replay=20000 epsilon_end=0.1 seed=2");
}
END_TEST

START_TEST(test_chain_sparse_reward_nstep)
{
    /* n-step returns over the trajectory-ordered observes, flushed at
       terminal and truncated ends. Uncorrected n-step returns carry the
       behaviour policy's exploration, and the optimal gaps here are only
       0.009 .. 0.02: a recent-only buffer, little final exploration and a
       smaller step keep that bias below the gaps. */
    ch_run("lr=0.0005 replay=1000 epsilon_end=0.02 nstep=3 seed=2");
}
END_TEST

/* ---- f. limits: action masks ------------------------------------------------ */

#define MK_NF 5
#define MK_NA 6

/* a random mask with at least one allowed action; sometimes exactly one */
static void mk_random_mask(uint8_t *m)
{
    if (tl_below(5) == 0) {
        memset(m, 0, MK_NA);
        m[tl_below(MK_NA)] = 1;
        return;
    }
    for (int a = 0; a < MK_NA; a++)
        m[a] = tl_below(2) ? (uint8_t)(1 + tl_below(255)) : 0; /* any nonzero byte allows */
    m[tl_below(MK_NA)] = 7;
}

static void mk_run(const char *extra, int n)
{
    char spec[512];
    snprintf(spec, sizeof spec,
             TL_BASE "n_features=5 n_actions=6 hidden=16,16 batch=16 replay=2000 "
                     "learning_starts=32 train_every=1 target_update=50 lr=0.003 %s",
             extra);
    dlsched_agent *ag = tst_agent(spec);
    tl_rng = 31337;
    float x[MK_NF], x2[MK_NF];
    uint8_t m[MK_NA], m2[MK_NA];
    for (int j = 0; j < MK_NF; j++)
        x[j] = (float)tl_unif();
    mk_random_mask(m);
    int explored = 0;
    for (int i = 0; i < n; i++) {
        dlsched_state_t st = tst_state(x, MK_NF);
        st.n_mask = MK_NA;
        st.mask = m;
        float q[MK_NA];
        ck_assert_int_eq(dlsched_q_values(ag, &st, q, MK_NA), DLSCHED_OK);
        int best = -1;
        for (int a = 0; a < MK_NA; a++) {
            if (!m[a]) {
                ck_assert_msg(isinf(q[a]) && q[a] < 0, "masked Q[%d] = %g", a, q[a]);
                continue;
            }
            ck_assert(isfinite(q[a]));
            if (best < 0 || q[a] > q[best])
                best = a;
        }
        /* greedy: allowed, and the argmax over the allowed actions */
        dlsched_decision_t g;
        ck_assert_int_eq(dlsched_act(ag, &st, DLSCHED_ACT_GREEDY, &g), DLSCHED_OK);
        ck_assert_msg(g.action >= 0 && g.action < MK_NA && m[g.action],
                      "greedy decision %d is masked out", g.action);
        ck_assert_float_eq(q[g.action], q[best]);
        ck_assert_float_eq(g.value, q[g.action]);
        /* ticketed, exploring */
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &st, 0, &d), DLSCHED_OK);
        ck_assert_msg(d.action >= 0 && d.action < MK_NA && m[d.action],
                      "decision %d is masked out", d.action);
        ck_assert(d.probability > 0.0f && d.probability <= 1.0f);
        explored += (d.flags & DLSCHED_DECISION_EXPLORED) != 0;

        float rw = (float)(x[d.action % MK_NF] - 0.5 * tl_unif()) + (d.action == 5 ? 3.0f : 0.0f);
        for (int j = 0; j < MK_NF; j++)
            x2[j] = (float)tl_unif();
        mk_random_mask(m2);
        dlsched_state_t nx = tst_state(x2, MK_NF);
        nx.n_mask = MK_NA;
        nx.mask = m2;
        uint32_t end = tl_below(8);
        if (end == 0) {
            ck_assert_int_eq(dlsched_observe(ag, d.ticket, rw, NULL, DLSCHED_OBS_TERMINAL),
                             DLSCHED_OK);
        } else {
            ck_assert_int_eq(
                dlsched_observe(ag, d.ticket, rw, &nx, end == 1 ? DLSCHED_OBS_TRUNCATED : 0),
                DLSCHED_OK);
        }
        memcpy(x, x2, sizeof x);
        memcpy(m, m2, sizeof m);
    }
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_eq(st.observed, (uint64_t)n);
    ck_assert_uint_gt(st.train_steps, (uint64_t)n / 2);
    ck_assert_int_gt(explored, 0);
    ck_assert(isfinite(st.last_loss));
    dlsched_agent_free(ag);
}

START_TEST(test_limit_masked_never_chosen)
{
    mk_run("explore=egreedy epsilon_start=1 epsilon_end=0.3 epsilon_decay_steps=500 seed=9", 3000);
    mk_run("explore=softmax temperature=0.3 seed=10", 1500);
    mk_run("explore=egreedy epsilon_start=0.5 dueling=1 per=1 nstep=3 double=0 seed=11", 1500);
}
END_TEST

/* Two states, two actions. In B: action 0 pays 10, action 1 pays 1, both
   end the episode. In A: action 0 pays 0 and leads to B where only action 1
   is allowed; action 1 pays 2 and ends. With the mask honoured
   Q*(A) = (0.9, 2) and the best action in A is 1; a max that ignored the
   mask would give Q(A, 0) = 9 and choose action 0. */
static void nm_run(const char *extra)
{
    enum { A = 0, B = 1 };
    static const uint8_t allow1[2] = {0, 1};
    /* the oracle, with the next-state mask per (s, a) */
    double p[2 * 2 * 2] = {0}, r[4] = {0}, qs[4];
    uint8_t nmask[2 * 2 * 2];
    memset(nmask, 1, sizeof nmask);
    p[(A * 2 + 0) * 2 + B] = 1.0;
    nmask[(A * 2 + 0) * 2 + 0] = 0;
    r[A * 2 + 1] = 2.0;
    r[B * 2 + 0] = 10.0;
    r[B * 2 + 1] = 1.0;
    tst_value_iteration(2, 2, p, r, nmask, 0.9, qs);
    ck_assert_double_eq_tol(qs[A * 2 + 0], 0.9, 1e-12);
    ck_assert_double_eq_tol(qs[A * 2 + 1], 2.0, 1e-12);
    ck_assert_double_eq_tol(qs[B * 2 + 0], 10.0, 1e-12);

    char spec[512];
    snprintf(spec, sizeof spec,
             TL_BASE "n_features=2 n_actions=2 gamma=0.9 hidden=16,16 batch=32 replay=4000 "
                     "learning_starts=100 train_every=1 target_update=100 lr=0.001 "
                     "explore=egreedy epsilon_start=1 epsilon_end=1 %s",
             extra);
    dlsched_agent *ag = tst_agent(spec);
    float xa[2] = {1.0f, 0.0f}, xb[2] = {0.0f, 1.0f};
    dlsched_state_t sa = tst_state(xa, 2), sb = tst_state(xb, 2);
    dlsched_state_t sb_masked = sb;
    sb_masked.n_mask = 2;
    sb_masked.mask = allow1;
    for (int i = 0; i < 2000; i++) {
        /* A through tickets: random actions (epsilon 1) */
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &sa, 0, &d), DLSCHED_OK);
        if (d.action == 0)
            ck_assert_int_eq(dlsched_observe(ag, d.ticket, 0.0f, &sb_masked, 0), DLSCHED_OK);
        else
            ck_assert_int_eq(dlsched_observe(ag, d.ticket, 2.0f, NULL, DLSCHED_OBS_TERMINAL),
                             DLSCHED_OK);
        /* B as logged transitions, both actions allowed there */
        int b = i & 1;
        ck_assert_int_eq(dlsched_observe_transition(ag, &sb, b, b ? 1.0f : 10.0f, NULL,
                                                    DLSCHED_OBS_TERMINAL),
                         DLSCHED_OK);
    }
    ck_assert_int_eq(dlsched_train(ag, 3000), DLSCHED_OK);

    float q[2];
    ck_assert_int_eq(dlsched_q_values(ag, &sb, q, 2), DLSCHED_OK);
    ck_assert_msg(fabs(q[0] - qs[B * 2 + 0]) < 0.3 && fabs(q[1] - qs[B * 2 + 1]) < 0.3,
                  "%s: Q(B) = (%g, %g), Q* = (10, 1)", extra, q[0], q[1]);
    ck_assert_int_eq(dlsched_q_values(ag, &sa, q, 2), DLSCHED_OK);
    ck_assert_msg(fabs(q[0] - qs[A * 2 + 0]) < 0.3 && fabs(q[1] - qs[A * 2 + 1]) < 0.3,
                  "%s: Q(A) = (%g, %g), Q* = (0.9, 2) (9 for action 0 would ignore the mask)",
                  extra, q[0], q[1]);
    /* greedy: 1 in A; in B 0 unmasked, 1 under the mask */
    dlsched_decision_t d;
    ck_assert_int_eq(dlsched_act(ag, &sa, DLSCHED_ACT_GREEDY, &d), DLSCHED_OK);
    ck_assert_int_eq(d.action, 1);
    ck_assert_int_eq(dlsched_act(ag, &sb, DLSCHED_ACT_GREEDY, &d), DLSCHED_OK);
    ck_assert_int_eq(d.action, 0);
    ck_assert_int_eq(dlsched_act(ag, &sb_masked, DLSCHED_ACT_GREEDY, &d), DLSCHED_OK);
    ck_assert_int_eq(d.action, 1);
    ck_assert_int_eq(dlsched_q_values(ag, &sb_masked, q, 2), DLSCHED_OK);
    ck_assert(isinf(q[0]) && q[0] < 0);
    ck_assert_msg(fabs(q[1] - 1.0) < 0.3, "Q(B, 1) under the mask = %g", q[1]);
    dlsched_agent_free(ag);
}

START_TEST(test_limit_next_mask_in_target)
{
    nm_run("double=1 seed=4");           /* a* by the online net */
    nm_run("double=0 seed=4");           /* a* by the target net */
    nm_run("double=1 dueling=1 seed=5"); /* through the dueling head */
}
END_TEST

Suite *suite_dqn_learn(void)
{
    Suite *s = suite_create("dqn_learn");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_reproducible_bitwise);
    tcase_add_test(tc, test_contextual_bandit);
    tcase_add_test(tc, test_stochastic_mdp_qstar);
    tcase_add_test(tc, test_chain_sparse_reward);
    tcase_add_test(tc, test_chain_sparse_reward_nstep);
    tcase_add_test(tc, test_contextual_bandit_dueling_per_normalize);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_limit_masked_never_chosen);
    tcase_add_test(tc, test_limit_next_mask_in_target);
    suite_add_tcase(s, tc);
    return s;
}
