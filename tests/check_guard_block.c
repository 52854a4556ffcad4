/* check_guard_block.c - the guard's switchback (guard_block = B > 1) and its
 * regime check (dlsched(7), GUARD); part of the "guard" suite:
 *   (a) bookkeeping: the statistics against an oracle that re-implements
 *       the documented rules decision by decision (blocks, arms, tails,
 *       burn-in, tags, pair completion with out-of-order outcomes and
 *       expired tickets, pairs forced when the ring needs their slot,
 *       tests, epochs, the regime check's batches and checks);
 *   (b) interference: a backlog that an action leaves to the next
 *       decisions fools the per-decision experiment, not switchback with
 *       tails; a truly better action switches within a derived bound;
 *   (c) the regime check: a learned policy whose harm outlasts the pairs
 *       is switched in by the blocks and falls back by the regime check
 *       within a derived bound; a truly better one never falls back.
 * Deterministic: fixed library seeds and the test's own generator. */
#include <stdio.h>

#include "core/guard.h"
#include "tests.h"

/* ---- (a) bookkeeping against an oracle ---------------------------------------------- */

/*
 * One state, two actions, hint 0 on every decision, no exploration
 * (epsilon 0); the learned policy always prefers action 1 (every decision
 * also logs "action 1 paid 3" and "action 0 paid -3": Q(1) > Q(0),
 * checked) and action 1 is supported (min_visits 1): every decision is a
 * supported disagreement, decided by action 1 (learned) or 0 (incumbent).
 * The world: action 0 pays Normal(0, 1); action 1 Normal(+1, 1) while the
 * incumbent leads and Normal(-1, 1) while the learned policy leads, so the
 * guard switches, falls back (by a test or by the regime check), and so on.
 *
 * The oracle keeps the guard's state by the documented rules: blocks of B
 * decisions by their arm and DLS_GUARD_TAIL x B by the leader; pairs of
 * blocks 2j, 2j + 1; a pair is an experiment (one block per arm) or not
 * (the leader decides all); a block's tickets are tagged, counted from
 * position B/4; a block is closed when the next one starts; a pair is
 * done when both are closed and every ticket is resolved (observed or
 * expired); a block whose ring slot is needed while its pair waits forces
 * the pair (pending tickets count as the lowest reward seen, or the pair
 * is dropped); the paired test at m 2^k pairs; a new epoch forgets open
 * pairs (and the second block of a pair whose first is gone is no
 * experiment); the regime check's batches of (1 + TAIL) B outcomes.
 * Whether a pair is an experiment comes from the library's generator; the
 * oracle reads it from the actions of a first, identical run: at a pair's
 * start the first block's first action differs from the leader's choice
 * (an experiment, that arm first) or, if not, the second block's first
 * action does (the incumbent or learned block first) or neither (no
 * experiment). Every action of the second run is then predicted and
 * checked, and after every step every guard statistic must match.
 *
 * Tickets: every 7th is observed 3 decisions late (out of order); one in
 * 1000 is held 700 decisions (the ring of 64 blocks, 512 decisions, needs
 * its slot first: its pair is forced); one in 1000 is never observed and
 * a burst of 7 held tickets then fills ticket_capacity 8: the oldest
 * pending tickets expire (their blocks count them resolved).
 */
#define TB_B 4
#define TB_BLK ((1 + DLS_GUARD_TAIL) * TB_B) /* decisions per block */
#define TB_M 2
#define TB_TESTS 8
#define TB_RISK 0.2
#define TB_CAP 8
#define TB_N 10000

typedef struct tb_block {
    uint64_t id; /* block number + 1; 0 = free */
    int arm, closed;
    uint32_t issued, resolved, count;
    float rmin;
    double sum;
} tb_block;

typedef struct tb_reg {
    uint64_t n, in_batch;
    double sum, sumsq, acc;
} tb_reg;

typedef struct tb_oracle {
    /* the guard */
    uint32_t state, k, reg_k;
    uint64_t epoch, switches, fallbacks, regime_fallbacks, decisions, by_l, by_i;
    double n[3], sum[3], sumsq[3], dsum, dsumsq;
    tb_reg inc, led;
    /* switchback */
    tb_block ring[DLS_GUARD_RING];
    uint64_t blk, pos;
    int blk_arm, second_arm;
    /* what the run exercised */
    uint64_t pairs, forced, dropped, experiments[3], none_pairs, expired, late;
    uint64_t test_fallbacks;
    uint64_t hidden_blk, hidden_epoch; /* a pair to check at its second block (+ 1) */
} tb_oracle;

/* a ticket of the test: its tag's parts as the oracle gave them */
typedef struct tb_ticket {
    uint64_t ticket, blk;
    int action, arm, counted, led, due;
    float r;
} tb_ticket;

static int tb_learned(const tb_oracle *o) { return o->state == DLSCHED_GUARD_LEARNED; }

static void tb_new_epoch(tb_oracle *o)
{
    o->epoch++;
    o->k = 0;
    memset(o->n, 0, sizeof o->n);
    memset(o->sum, 0, sizeof o->sum);
    memset(o->sumsq, 0, sizeof o->sumsq);
    o->dsum = o->dsumsq = 0;
    for (int i = 0; i < DLS_GUARD_RING; i++)
        o->ring[i].id = 0;
}

/* d = m_L - m_I; se from the paired differences (sd / sqrt n, n >= 2) */
static void tb_estimate(const tb_oracle *o, double *d, double *se)
{
    double ml = o->n[2] > 0 ? o->sum[2] / o->n[2] : 0, mi = o->n[1] > 0 ? o->sum[1] / o->n[1] : 0;
    *d = ml - mi;
    double n = o->n[2];
    *se = INFINITY;
    if (n >= 2) {
        double md = o->dsum / n;
        *se = sqrt(fmax(0.0, (o->dsumsq - n * md * md) / (n - 1)) / n);
    }
}

static void tb_test(tb_oracle *o)
{
    double d, se;
    tb_estimate(o, &d, &se);
    double z = tst_guard_z(TB_RISK, (int)o->k);
    o->k++;
    if (!tb_learned(o) && d - z * se > 0) {
        o->state = DLSCHED_GUARD_LEARNED;
        o->switches++;
        memset(&o->led, 0, sizeof o->led);
        o->reg_k = 0;
        tb_new_epoch(o);
    } else if (tb_learned(o) && d + z * se < 0) {
        o->state = DLSCHED_GUARD_FALLEN_BACK;
        o->fallbacks++;
        o->test_fallbacks++;
        memset(&o->inc, 0, sizeof o->inc);
        memset(&o->led, 0, sizeof o->led);
        tb_new_epoch(o);
    } else if (o->k >= TB_TESTS) {
        tb_new_epoch(o);
    }
}

static void tb_pair_done(tb_oracle *o, tb_block *x, tb_block *y)
{
    if (x->count > 0 && y->count > 0) {
        const tb_block *bl = x->arm == 2 ? x : y, *bi = bl == x ? y : x;
        double vl = bl->sum / bl->count, vi = bi->sum / bi->count;
        o->n[1] += 1;
        o->n[2] += 1;
        o->sum[2] += vl;
        o->sum[1] += vi;
        o->sumsq[2] += vl * vl;
        o->sumsq[1] += vi * vi;
        o->dsum += vl - vi;
        o->dsumsq += (vl - vi) * (vl - vi);
        o->pairs++;
    } else {
        o->dropped++;
    }
    x->id = y->id = 0;
    if (o->n[2] >= TB_M * ldexp(1.0, (int)o->k))
        tb_test(o);
}

static void tb_try_pair(tb_oracle *o, uint64_t b)
{
    uint64_t b0 = b & ~(uint64_t)1;
    tb_block *x = &o->ring[b0 % DLS_GUARD_RING], *y = &o->ring[(b0 + 1) % DLS_GUARD_RING];
    if (x->id == b0 + 1 && y->id == b0 + 2 && x->closed && y->closed &&
        x->resolved == x->issued && y->resolved == y->issued)
        tb_pair_done(o, x, y);
}

/* the ring needs the slot of a pair still waiting */
static void tb_force_pair(tb_oracle *o, uint64_t b)
{
    uint64_t b0 = b & ~(uint64_t)1;
    tb_block *x = &o->ring[b0 % DLS_GUARD_RING], *y = &o->ring[(b0 + 1) % DLS_GUARD_RING];
    int hx = x->id == b0 + 1, hy = y->id == b0 + 2;
    float worst = x->rmin < y->rmin ? x->rmin : y->rmin;
    if (!hx || !hy || !isfinite(worst)) {
        if (hx)
            x->id = 0;
        if (hy)
            y->id = 0;
        o->dropped++;
        return;
    }
    tb_block *bb[2] = {x, y};
    for (int i = 0; i < 2; i++) {
        uint32_t left = bb[i]->issued - bb[i]->resolved;
        bb[i]->sum += (double)left * worst;
        bb[i]->count += left;
        bb[i]->resolved = bb[i]->issued;
    }
    o->forced++;
    tb_pair_done(o, x, y);
}

static void tb_reg_add(tb_reg *r, float reward)
{
    r->acc += reward;
    if (++r->in_batch < TB_BLK)
        return;
    double m = r->acc / TB_BLK;
    r->n++;
    r->sum += m;
    r->sumsq += m * m;
    r->acc = 0;
    r->in_batch = 0;
}

static void tb_reg_moments(const tb_reg *r, double *m, double *v)
{
    *m = r->n > 0 ? r->sum / (double)r->n : 0;
    *v = r->n > 1 ? fmax(0.0, (r->sumsq - (double)r->n * *m * *m) / (double)(r->n - 1)) : 0;
}

/* the regime check's part of an outcome decided while led (led: learned) */
static void tb_regime(tb_oracle *o, int led, float reward)
{
    if (led != tb_learned(o))
        return;
    if (!led) {
        tb_reg_add(&o->inc, reward);
        if (o->inc.n >= 64) {
            o->inc.n /= 2;
            o->inc.sum *= 0.5;
            o->inc.sumsq *= 0.5;
        }
        return;
    }
    uint64_t before = o->led.n;
    tb_reg_add(&o->led, reward);
    if (o->led.n == before || o->led.n < ((uint64_t)8 << o->reg_k) || o->inc.n < 2 ||
        o->reg_k >= TB_TESTS)
        return;
    double ml, vl, mi, vi;
    tb_reg_moments(&o->led, &ml, &vl);
    tb_reg_moments(&o->inc, &mi, &vi);
    double hi = (ml - mi) + tst_guard_z(TB_RISK, (int)o->reg_k) *
                                sqrt(vl / (double)o->led.n + vi / (double)o->inc.n);
    o->reg_k++;
    if (hi < 0) {
        o->state = DLSCHED_GUARD_FALLEN_BACK;
        o->fallbacks++;
        o->regime_fallbacks++;
        memset(&o->inc, 0, sizeof o->inc);
        memset(&o->led, 0, sizeof o->led);
        tb_new_epoch(o);
    }
}

static tb_block *tb_live(tb_oracle *o, const tb_ticket *t)
{
    if (t->arm == 0)
        return NULL;
    tb_block *b = &o->ring[t->blk % DLS_GUARD_RING];
    return b->id == t->blk + 1 ? b : NULL;
}

static void tb_observed(tb_oracle *o, const tb_ticket *t)
{
    tb_regime(o, t->led, t->r);
    tb_block *b = tb_live(o, t);
    if (!b)
        return;
    b->resolved++;
    if (t->r < b->rmin)
        b->rmin = t->r;
    if (t->counted) {
        b->sum += t->r;
        b->count++;
    }
    tb_try_pair(o, b->id - 1);
}

static void tb_expired(tb_oracle *o, const tb_ticket *t)
{
    o->expired++;
    tb_block *b = tb_live(o, t);
    if (b) {
        b->resolved++;
        tb_try_pair(o, b->id - 1);
    }
}

/* the first run's record: actions, and the epoch after each step */
typedef struct tb_script {
    int action[TB_N];
    int leader[TB_N]; /* the learned policy led before the decision */
} tb_script;

/* the arm of the block whose arm part starts at decision t, read from the
   first run: a decision that is not the leader's choice is the arm's (no
   such decision: no arm, or the leader's own) */
static int tb_arm_seen(const tb_script *sc, int t)
{
    for (int u = t; u < t + TB_B && u < TB_N; u++)
        if (sc->action[u] != sc->leader[u])
            return sc->action[u] ? 2 : 1;
    return 0;
}

/* one decision's bookkeeping (before its ticket is issued); t its index;
   sc the first run; returns the action the oracle predicts, fills the
   ticket's tag */
static int tb_decide(tb_oracle *o, const tb_script *sc, int t, tb_ticket *tk)
{
    /* the decision's leader: as it was before its block step (a pair that
       the step completes may switch it) */
    int lc = tb_learned(o);
    if (o->pos == 0 && o->blk + 1 == o->hidden_blk)
        ck_assert_msg(o->epoch == o->hidden_epoch,
                      "decision %d: the pair's arms are hidden (choose other seeds)", t);
    if (o->pos == 0) {
        if (o->blk > 0 && o->ring[(o->blk - 1) % DLS_GUARD_RING].id == o->blk) {
            o->ring[(o->blk - 1) % DLS_GUARD_RING].closed = 1;
            tb_try_pair(o, o->blk - 1);
        }
        if ((o->blk & 1) == 0) {
            int a1 = tb_arm_seen(sc, t), a2 = tb_arm_seen(sc, t + TB_BLK);
            o->blk_arm = a1 ? a1 : a2 ? 3 - a2 : 0;
            /* neither block showed an arm: no experiment, or a first block
               of the leader's arm whose pair a new epoch ended before the
               second; the two differ only where an experiment block would
               force the pair holding its ring slot: then no new epoch may
               come before the second block (checked there) */
            if (!o->blk_arm && o->ring[o->blk % DLS_GUARD_RING].id != 0) {
                o->hidden_blk = o->blk + 1;
                o->hidden_epoch = o->epoch;
            }
            o->second_arm = o->blk_arm ? 3 - o->blk_arm : 0;
            if (o->blk_arm)
                o->experiments[o->blk_arm]++;
            else
                o->none_pairs++;
        } else {
            o->blk_arm = o->ring[(o->blk - 1) % DLS_GUARD_RING].id == o->blk ? o->second_arm : 0;
        }
        if (o->blk_arm) {
            tb_block *b = &o->ring[o->blk % DLS_GUARD_RING];
            if (b->id != 0)
                tb_force_pair(o, b->id - 1);
            memset(b, 0, sizeof *b);
            b->id = o->blk + 1;
            b->arm = o->blk_arm;
            b->rmin = INFINITY;
        }
    }
    tb_block *b = &o->ring[o->blk % DLS_GUARD_RING];
    tk->arm = 0;
    if (o->blk_arm && b->id == o->blk + 1) {
        b->issued++;
        tk->arm = o->blk_arm;
        tk->blk = o->blk;
        tk->counted = o->pos >= TB_B / 4;
    }
    int decides = o->pos < TB_B ? o->blk_arm : 0;
    if (++o->pos == TB_BLK) {
        o->pos = 0;
        o->blk++;
    }
    tk->led = lc;
    int action = decides ? decides == 2 : lc;
    o->decisions++;
    if (action)
        o->by_l++;
    else
        o->by_i++;
    return action;
}

static void tb_compare(dlsched_agent *ag, const tb_oracle *o, int step)
{
    dlsched_stats_t s = tst_stats(ag);
#define TB_EQ(f, v)                                                                       \
    ck_assert_msg(s.f == (v), "step %d: stats." #f " %llu, oracle %llu", step,             \
                  (unsigned long long)s.f, (unsigned long long)(v))
    TB_EQ(guard_state, o->state);
    TB_EQ(guard_epoch, o->epoch);
    TB_EQ(guard_switches, o->switches);
    TB_EQ(guard_fallbacks, o->fallbacks);
    TB_EQ(guard_regime_fallbacks, o->regime_fallbacks);
    TB_EQ(guard_decisions, o->decisions);
    TB_EQ(guard_agreed, 0);
    TB_EQ(guard_unsupported, 0);
    TB_EQ(guard_by_learned, o->by_l);
    TB_EQ(guard_by_incumbent, o->by_i);
    TB_EQ(guard_samples_learned, (uint64_t)o->n[2]);
    TB_EQ(guard_samples_incumbent, (uint64_t)o->n[1]);
    TB_EQ(tickets_expired, o->expired);
#undef TB_EQ
    double d, se, ml, vl, mi, vi;
    tb_estimate(o, &d, &se);
    tb_reg_moments(&o->led, &ml, &vl);
    tb_reg_moments(&o->inc, &mi, &vi);
    double z = tst_guard_z(TB_RISK, (int)(o->k < TB_TESTS ? o->k : TB_TESTS - 1));
    double vl1 = o->n[2] > 0 ? o->sum[2] / o->n[2] : 0, vi1 = o->n[1] > 0 ? o->sum[1] / o->n[1] : 0;
    const double got[5] = {s.guard_value_learned, s.guard_value_incumbent, s.guard_advantage,
                           s.guard_led_learned, s.guard_led_incumbent};
    const double want[5] = {vl1, vi1, d, ml, mi};
    for (int i = 0; i < 5; i++)
        ck_assert_msg(fabs(got[i] - want[i]) < 1e-9, "step %d: value %d: %.12g, oracle %.12g",
                      step, i, got[i], want[i]);
    if (isfinite(se))
        ck_assert_msg(fabs(s.guard_advantage_low - (d - z * se)) < 1e-7 &&
                          fabs(s.guard_advantage_high - (d + z * se)) < 1e-7,
                      "step %d: interval [%.12g, %.12g], oracle [%.12g, %.12g]", step,
                      s.guard_advantage_low, s.guard_advantage_high, d - z * se, d + z * se);
    else
        ck_assert(s.guard_advantage_low == -INFINITY && s.guard_advantage_high == INFINITY);
}

/* one run; with o (the second run) every action is predicted and every
   step compared */
static void tb_run(uint64_t seed, tb_script *sc, tb_oracle *o)
{
    dlsched_agent *ag = tst_agentf(
        "algo=qtable n_features=1 n_actions=2 bins=1 gamma=0 lr=0.1 epsilon_start=0 "
        "epsilon_end=0 guard_block=%d guard_share=0.25 guard_min_samples=%d guard_tests=%d "
        "guard_risk=%g guard_min_visits=1 ticket_capacity=%d seed=%llu",
        TB_B, TB_M, TB_TESTS, TB_RISK, TB_CAP, (unsigned long long)seed);
    tst_log1(ag, 1, 3.0);
    tst_log1(ag, 0, -3.0);
    if (o) {
        memset(o, 0, sizeof *o);
        o->state = DLSCHED_GUARD_INCUMBENT;
    }
    uint64_t rng = seed * 7919 + 1;
    tb_ticket pend[64]; /* pending, in issue order */
    int n_pend = 0;
    float x = 0.5f;
    dlsched_state_t st = tst_state(&x, 1);
    st.hint = 0;
    for (int t = 0; t < TB_N; t++) {
        float q[2];
        ck_assert_int_eq(dlsched_q_values(ag, &st, q, 2), DLSCHED_OK);
        ck_assert_msg(q[1] > q[0], "step %d: Q(1) %g <= Q(0) %g", t, q[1], q[0]);
        uint32_t leader = tst_stats(ag).guard_state;
        tb_ticket tk;
        memset(&tk, 0, sizeof tk);
        int want = o ? tb_decide(o, sc, t, &tk) : -1;
        dlsched_decision_t d = tst_act1(ag, 0, 0);
        /* the act expired the oldest pending ticket when all were in use */
        if (n_pend == TB_CAP) {
            if (o)
                tb_expired(o, &pend[0]);
            memmove(pend, pend + 1, sizeof pend[0] * (size_t)--n_pend);
        }
        if (o) {
            ck_assert_msg(d.action == want, "step %d: action %d, oracle %d (block %llu)", t,
                          d.action, want, (unsigned long long)(o->blk));
            ck_assert_uint_eq(d.flags, d.action ? 0 : DLSCHED_DECISION_INCUMBENT);
        } else {
            sc->action[t] = d.action;
            sc->leader[t] = leader == DLSCHED_GUARD_LEARNED;
        }
        int c = t % 2000; /* 800 decisions of phase A, 1200 of phase B */
        double mu = !d.action                          ? 0.0
                    : leader == DLSCHED_GUARD_LEARNED ? -1.0
                    : c < 800                          ? 1.0
                                                       : 0.0;
        tk.ticket = d.ticket;
        tk.action = d.action;
        tk.r = (float)(mu + tst_normal(&rng));
        tst_log1(ag, 1, 3.0);
        tst_log1(ag, 0, -3.0);
        tk.due = c == 300                ? INT32_MAX /* never: it expires */
                 : c >= 340 && c < 347   ? t + 20    /* the burst */
                 : c == 900              ? t + 700   /* past the ring */
                 : t % 7 == 3            ? t + 3     /* out of order */
                                         : t;
        if (tk.due == t) {
            tst_observe1(ag, tk.ticket, tk.r);
            if (o)
                tb_observed(o, &tk);
        } else {
            ck_assert_int_lt(n_pend, 64);
            pend[n_pend++] = tk;
        }
        /* the due ones, newest first (out of order) */
        for (int i = n_pend - 1; i >= 0; i--) {
            if (pend[i].due > t)
                continue;
            tst_observe1(ag, pend[i].ticket, pend[i].r);
            if (o) {
                o->late++;
                tb_observed(o, &pend[i]);
            }
            memmove(pend + i, pend + i + 1, sizeof pend[0] * (size_t)(n_pend - i - 1));
            n_pend--;
        }
        if (o)
            tb_compare(ag, o, t);
    }
    dlsched_agent_free(ag);
}

START_TEST(test_block_oracle)
{
    static tb_script sc;
    tb_oracle o;
    uint64_t switches = 0, test_fb = 0, regime_fb = 0, forced = 0, dropped = 0, expired = 0,
             none = 0;
    for (uint64_t seed = 1; seed <= 2; seed++) {
        tb_run(seed, &sc, NULL);
        tb_run(seed, &sc, &o);
        switches += o.switches;
        test_fb += o.test_fallbacks;
        regime_fb += o.regime_fallbacks;
        forced += o.forced;
        dropped += o.dropped;
        expired += o.expired;
        none += o.none_pairs;
        ck_assert_uint_gt(o.experiments[1], 0); /* incumbent block first */
        ck_assert_uint_gt(o.experiments[2], 0); /* learned block first */
        ck_assert_uint_gt(o.pairs, 0);
        ck_assert_uint_gt(o.late, 0);
    }
    fprintf(stderr,
            "check_guard (a, switchback): %llu switches, %llu fallbacks by tests, %llu by the "
            "regime check, %llu pairs forced, %llu dropped, %llu tickets expired, %llu pairs "
            "not experiments\n",
            (unsigned long long)switches, (unsigned long long)test_fb,
            (unsigned long long)regime_fb, (unsigned long long)forced, (unsigned long long)dropped,
            (unsigned long long)expired, (unsigned long long)none);
    ck_assert_uint_ge(switches, 2);
    ck_assert_uint_ge(test_fb, 1);
    ck_assert_uint_ge(regime_fb, 1);
    ck_assert_uint_ge(forced, 1);
    ck_assert_uint_ge(expired, 1);
    ck_assert_uint_ge(none, 1);
}
END_TEST

/* ---- (b), (c): worlds where a decision changes the rewards of later ones ---------- */

/*
 * One state, two actions, hint 0 (the incumbent plays 0); the learned
 * policy prefers action 1 throughout (pinned as in (a): each decision also
 * logs "1 paid 3", "0 paid -3"), no exploration, guard_share 0.25: every
 * pair is an experiment (probability min(1, 2 (1 + TAIL) share) = 1) but
 * after a test that found the learned policy worse (an eighth then).
 * Rewards: action 1 pays delta = 0.5 now, plus Normal(0, sigma = 0.5) noise,
 * minus a penalty that earlier decisions left:
 *   backlog (b): a one-server queue whose backlog drains geometrically:
 *     r_t = delta [a_t = 1] - c q_t,  q_{t+1} = lambda q_t + [a_t = 1],
 *     lambda = 1 - 2 / B: an action 1 costs c / (1 - lambda) = c B / 2 in
 *     all, spread over the next ~B/2 decisions;
 *   window (c): the share of action 1 in the last W = 256 decisions:
 *     r_t = delta [a_t = 1] - c f_t (a slow-building penalty with a long
 *     memory: eight pairs of B = 8).
 */
#define TW_DELTA 0.5
#define TW_SIGMA 0.5
#define TW_W 256
#define TW_B 16     /* (b): guard_block */
#define TW_SEEDS 20

typedef struct tw_world {
    int window;     /* 0: backlog (b), 1: window (c) */
    double c, lambda, q;
    unsigned char hist[TW_W];
    int hpos, ones;
} tw_world;

static double tw_mean(const tw_world *w, int a)
{
    return TW_DELTA * a - w->c * (w->window ? (double)w->ones / TW_W : w->q);
}

static void tw_next(tw_world *w, int a)
{
    if (w->window) {
        w->ones += a - w->hist[w->hpos];
        w->hist[w->hpos] = (unsigned char)a;
        w->hpos = (w->hpos + 1) % TW_W;
    } else {
        w->q = w->lambda * w->q + a;
    }
}

static dlsched_agent *tw_agent(int block, uint64_t seed)
{
    dlsched_agent *ag = tst_agentf(
        "algo=qtable n_features=1 n_actions=2 bins=1 gamma=0 lr=0.1 epsilon_start=0 "
        "epsilon_end=0 guard_block=%d guard_share=%g guard_min_samples=30 guard_tests=8 "
        "guard_risk=0.05 guard_min_visits=1 seed=%llu",
        block, block > 1 ? 0.25 : 0.1, (unsigned long long)seed);
    tst_log1(ag, 1, 3.0);
    tst_log1(ag, 0, -3.0);
    return ag;
}

/* one decision in world w: act with hint 0, the outcome observed at once;
   returns the reward */
static double tw_step(dlsched_agent *ag, tw_world *w, uint64_t *rng)
{
    dlsched_decision_t d = tst_act1(ag, 0, 0);
    double r = tw_mean(w, d.action) + TW_SIGMA * tst_normal(rng);
    tw_next(w, d.action);
    tst_log1(ag, 1, 3.0);
    tst_log1(ag, 0, -3.0);
    tst_observe1(ag, d.ticket, r);
    return r;
}

/* the backlog world (b) with cost c */
static tw_world tw_backlog(double c)
{
    tw_world w;
    memset(&w, 0, sizeof w);
    w.c = c;
    w.lambda = 1 - 2.0 / TW_B;
    return w;
}

/* steps in w until the guard switches (at most bound decisions); the
   decisions it took */
static uint64_t tw_until_switch(dlsched_agent *ag, tw_world *w, uint64_t *rng, uint64_t bound,
                                uint64_t seed)
{
    uint64_t t = 0;
    while (tst_stats(ag).guard_state != DLSCHED_GUARD_LEARNED) {
        ck_assert_msg(t < bound, "seed %llu: no switch within %llu decisions",
                      (unsigned long long)seed, (unsigned long long)bound);
        tw_step(ag, w, rng);
        t++;
    }
    return t;
}

/* The expected paired difference of an experiment pair while the
   incumbent leads (its tails play 0), noise-free: the learned block plays
   1 in its arm's B decisions; a block's value is its mean from position
   B/4. l_first: the learned block first; w's penalty state at the pair's
   start as given. */
static double tw_pair_d(tw_world w, int block, int l_first)
{
    double sum[2] = {0, 0};
    for (int b = 0; b < 2; b++)
        for (int p = 0; p < 2 * block; p++) {
            int learned_block = (b == 0) == (l_first != 0);
            int a = p < block && learned_block;
            if (p >= block / 4)
                sum[learned_block] += tw_mean(&w, a);
            tw_next(&w, a);
        }
    return (sum[1] - sum[0]) / (2 * block - block / 4);
}

/* (b) backlog: the expected d over the pair's order, at the extremes of the
   backlog it starts with (d is linear in it): 0 and 1 / (1 - lambda); *lo
   and *hi bound it, *spread bounds the order's part of the variance */
static void tw_backlog_d(double c, int block, double *lo, double *hi, double *spread)
{
    tw_world w;
    memset(&w, 0, sizeof w);
    w.c = c;
    w.lambda = 1 - 2.0 / block;
    *lo = INFINITY;
    *hi = -INFINITY;
    double dmin = INFINITY, dmax = -INFINITY;
    for (int e = 0; e < 2; e++) {
        w.q = e ? 1 / (1 - w.lambda) : 0;
        double d1 = tw_pair_d(w, block, 1), d0 = tw_pair_d(w, block, 0), m = (d1 + d0) / 2;
        *lo = fmin(*lo, m);
        *hi = fmax(*hi, m);
        dmin = fmin(dmin, fmin(d0, d1));
        dmax = fmax(dmax, fmax(d0, d1));
    }
    *spread = (dmax - dmin) * (dmax - dmin) / 4;
}

/* the paired test's sd bound: a block's mean of n_c = 2B - B/4 outcomes
   has noise variance sigma^2 / n_c, a difference twice that; plus the
   spread of the expected differences; doubled for the sample variance's
   own error at n >= 30 pairs (chi-square: below 2 x with chance
   Phi(-4) > ...) */
static double tw_sd_d(int block, double spread)
{
    double nc = 2 * block - block / 4;
    return sqrt(2 * (2 * TW_SIGMA * TW_SIGMA / nc + spread));
}

/*
 * (b1) guard_block = 1, c = 0.125 (an action 1 costs c B / 2 = 1.0 later:
 * worse than the incumbent by 0.5 a decision in all). The per-decision
 * experiment compares the arms under the same backlog (the arm's draw
 * does not look at it): d = delta = 0.5 exactly. Rewards vary by sigma and
 * the backlog (c q within [0, c / (1 - lambda)] = [0, 1]): v <= sigma^2 +
 * 1/4 = 0.5. As in check_guard_learn.c (i), the k-th test switches but
 * for a chance Phi(-4) once m 2^k >= 2 (z_k + 4)^2 v / delta^2 (k* = 3, 240
 * learned outcomes); the learned arm gets guard_share = 0.1 of the
 * decisions (all are supported disagreements): within tst_trials(240, 0.1)
 * decisions. Then the learned policy leads (it plays 1 in 0.9 of the
 * decisions): the reward per decision is about 0.9 (delta - 1) = -0.45
 * where the incumbent alone earns 0 (asserted: below -0.2 over 4000
 * decisions; the backlog's memory of ~8 decisions makes that mean's sd
 * about sqrt(2 x 8) sigma / sqrt(4000) = 0.03).
 */
/* measured over 10 seeds: (b1) switches after <= 387 decisions (bound
   3105); (b2) 0 of 20 seeds switched, E[d] = -0.294; (b3) switches after
   <= 1921 decisions (bound 15424), E[d] = 0.087 */
START_TEST(test_block1_fooled)
{
    int k = 0;
    while (30 * ldexp(1.0, k) < 2 * pow(tst_guard_z(0.05, k) + 4, 2) * 0.5 / 0.25)
        k++;
    ck_assert_int_eq(k, 3);
    uint64_t bound = (uint64_t)ceil(tst_trials(30 * ldexp(1.0, k), 0.1)), worst = 0;
    for (uint64_t seed = 1; seed <= 10; seed++) {
        dlsched_agent *ag = tw_agent(1, seed);
        tw_world w = tw_backlog(0.125);
        uint64_t rng = 300 + seed, t = tw_until_switch(ag, &w, &rng, bound, seed);
        worst = t > worst ? t : worst;
        double after = 0;
        for (int i = 0; i < 4000; i++)
            after += tw_step(ag, &w, &rng);
        after /= 4000;
        ck_assert_msg(after < -0.2, "seed %llu: reward per decision %.3f after the switch",
                      (unsigned long long)seed, after);
        ck_assert_uint_eq(tst_stats(ag).guard_state, DLSCHED_GUARD_LEARNED);
        dlsched_agent_free(ag);
    }
    fprintf(stderr, "check_guard (b1): guard_block 1 switched to the worse policy after <= %llu "
                    "decisions (bound %llu)\n",
            (unsigned long long)worst, (unsigned long long)bound);
}
END_TEST

/*
 * (b2) the same world with guard_block B = 16 (tails of B, burn-in 4):
 * the learned block's backlog weighs on its own tail, and what outlasts it
 * on the next block. E[d] over the pair's order, for a pair starting with
 * any backlog in [0, 1 / (1 - lambda)] (tw_backlog_d; pairs with no
 * experiment leave none): d <= dmax < 0 (about -0.1). The test switches
 * only if d^ - z_k se > 0, i.e. d^ - d > |dmax| + z_k se with se about
 * sd_d / sqrt n: chance <= Phi(-(|dmax| sqrt(n) / sd_d + z_k)) at the
 * test with n pairs (30, 60, 120, 240 in 16000 decisions: 250 pairs);
 * summed, p (printed) is far below 1/20: 19 of 20 seeds do not switch but
 * for a chance below 20 * 19 / 2 p^2 (asserted <= 1 switched).
 */
START_TEST(test_block_not_fooled)
{
    double lo, hi, spread;
    tw_backlog_d(0.125, TW_B, &lo, &hi, &spread);
    double sd = tw_sd_d(TW_B, spread), p = 0;
    ck_assert_msg(hi < -0.05, "expected d up to %g", hi);
    for (int k = 0; k < 4; k++)
        p += 0.5 * erfc((-hi * sqrt(30 * ldexp(1.0, k)) / sd + tst_guard_z(0.05, k)) / M_SQRT2);
    ck_assert(p < 0.01);
    int switched = 0;
    for (uint64_t seed = 1; seed <= TW_SEEDS; seed++) {
        dlsched_agent *ag = tw_agent(TW_B, seed);
        tw_world w = tw_backlog(0.125);
        uint64_t rng = 500 + seed;
        for (int i = 0; i < 16000; i++)
            tw_step(ag, &w, &rng);
        dlsched_stats_t s = tst_stats(ag);
        switched += s.guard_switches > 0;
        /* the experiment ran: 30 pairs at least (then an eighth of the
           share once a test found the learned policy worse) */
        ck_assert_uint_ge(s.guard_by_learned, 30 * TW_B);
        dlsched_agent_free(ag);
    }
    fprintf(stderr, "check_guard (b2): guard_block %d: E[d] in [%.3f, %.3f], %d of %d seeds "
                    "switched (chance per seed <= %.2g)\n",
            TW_B, lo, hi, switched, TW_SEEDS, p);
    ck_assert_int_le(switched, 1);
}
END_TEST

/*
 * (b3) c = 0.03125 (an action 1 costs 0.25 later: better by 0.25 a decision
 * in all), guard_block 16. E[d] >= dmin > 0 (tw_backlog_d); the k-th test
 * switches but for a chance Phi(-4) once dmin >= (z_k + 4) sd_d / sqrt(n):
 * n* pairs of 4B = 64 decisions (every pair an experiment until a test
 * finds the learned policy worse: chance below Phi(-4) too): within 64 n*
 * + 64 decisions.
 */
START_TEST(test_block_better_switches)
{
    double lo, hi, spread;
    tw_backlog_d(0.03125, TW_B, &lo, &hi, &spread);
    double sd = tw_sd_d(TW_B, spread);
    ck_assert(lo > 0);
    int k = 0;
    while (lo * sqrt(30 * ldexp(1.0, k)) < (tst_guard_z(0.05, k) + 4) * sd)
        k++;
    ck_assert_int_lt(k, 8);
    uint64_t bound = (uint64_t)(30 * ldexp(1.0, k) + 1) * 4 * TW_B, worst = 0;
    for (uint64_t seed = 1; seed <= 10; seed++) {
        dlsched_agent *ag = tw_agent(TW_B, seed);
        tw_world w = tw_backlog(0.03125);
        uint64_t rng = 700 + seed, t = tw_until_switch(ag, &w, &rng, bound, seed);
        worst = t > worst ? t : worst;
        dlsched_agent_free(ag);
    }
    fprintf(stderr, "check_guard (b3): E[d] in [%.3f, %.3f]: switched after <= %llu decisions "
                    "(bound %llu)\n",
            lo, hi, (unsigned long long)worst, (unsigned long long)bound);
}
END_TEST

/*
 * (c) the regime check, window world, guard_block B = 8 (pairs and the
 * check's batches of 4B = 32 decisions), c = 2 (harmful: a learned-led
 * pair plays 1 in 3B of its 32 decisions, f -> 3/4: the reward per
 * decision falls to about 3 delta / 4 - 3c / 4 = -1.1 where the
 * incumbent-led reference, f ~ 1/4, earns about -0.4) and c = 0.1 (truly
 * better: about 0.3 against 0.1).
 * The block test: inside a pair both blocks see the same penalty but for
 * the pair's own actions (tw_pair_d from an empty window: exact) and the
 * pair eight back leaving the window (at most c B / W either way): E[d]
 * >= dmin > 0, and the switch comes within the (b3) bound.
 * The regime check after the switch: every pair's expected mean, over
 * every history of its eight predecessors (experiment pairs either way
 * round, or none), is bounded by enumeration: the reference's batches
 * (pairs while the incumbent leads) >= l_ref; the j-th learned-led batch
 * (one decision later than its pair: +-(delta + c)/32) in [l_j, u_j] (j
 * learned-led pairs in the window). At the k-th check (n = 8 2^k learned
 * batches, the reference n_I >= 30 batches) the bound hi <= (mean u_j -
 * l_ref) + 4 sd + z_k se holds but for a chance Phi(-4), with sd the
 * noise's (sigma^2 / 32 per batch) and se from variances <= 2 (sigma^2 /
 * 32 + the expected means' spread); the first k where that is < 0 bounds
 * the fallback: 32 n + 32 decisions after the switch (check k = 3, 2080
 * decisions). c = 0.1: the same bounds keep m_L - m_I above 4 sd at every
 * check (k = 0..4, run to the fifth): a fallback's chance (printed,
 * 5e-7) is negligible.
 */
#define TC_B 8
#define TC_PAIR (4 * TC_B)

/* pair types: incumbent-led experiment (learned block first or not), no
   experiment, learned-led experiment (either way) */
enum { TC_IL, TC_II, TC_N, TC_LL, TC_LI };

/* the expected mean of a pair of type `ty` after the eight pairs pre[8]
   (oldest first), noise-free */
static double tc_pair_mean(double c, const int *pre, int ty)
{
    tw_world w;
    memset(&w, 0, sizeof w);
    w.window = 1;
    w.c = c;
    double sum = 0;
    for (int i = 0; i <= 8; i++) {
        int t = i < 8 ? pre[i] : ty;
        for (int p = 0; p < TC_PAIR; p++) {
            int blk = p / (2 * TC_B), arm = p % (2 * TC_B) < TC_B;
            int l_block = (blk == 0) == (t == TC_IL || t == TC_LL);
            /* the arm part: the block's arm; the tail: the leader */
            int a = t == TC_N ? 0 : arm ? l_block : t >= TC_LL;
            if (i == 8)
                sum += tw_mean(&w, a);
            tw_next(&w, a);
        }
    }
    return sum / TC_PAIR;
}

/* bounds of the pair mean over predecessors: the last j learned-led, the
   others incumbent-led (any of 3 types); ty learned-led (j >= 0) or, with
   j < 0, an incumbent-led pair */
static void tc_bounds(double c, int j, double *lo, double *hi)
{
    int pre[8];
    *lo = INFINITY;
    *hi = -INFINITY;
    int nl = j < 0 ? 0 : j > 8 ? 8 : j, ni = 8 - nl;
    int combos = 1;
    for (int i = 0; i < ni; i++)
        combos *= 3;
    combos <<= nl;
    for (int code = 0; code < combos; code++) {
        int x = code;
        for (int i = 0; i < ni; i++, x /= 3)
            pre[i] = x % 3;
        for (int i = ni; i < 8; i++, x /= 2)
            pre[i] = TC_LL + x % 2;
        int tys[3] = {j < 0 ? TC_IL : TC_LL, j < 0 ? TC_II : TC_LI, TC_N};
        for (int k = 0; k < (j < 0 ? 3 : 2); k++) {
            double m = tc_pair_mean(c, pre, tys[k]);
            *lo = fmin(*lo, m);
            *hi = fmax(*hi, m);
        }
    }
}

typedef struct tc_bound {
    double dmin, sd, lref, uref, l[9], u[9];
} tc_bound;

static void tc_derive(double c, tc_bound *b)
{
    tw_world w;
    memset(&w, 0, sizeof w);
    w.window = 1;
    w.c = c;
    double d1 = tw_pair_d(w, TC_B, 1), d0 = tw_pair_d(w, TC_B, 0), leave = c * TC_B / TW_W;
    b->dmin = (d1 + d0) / 2 - leave;
    double range = fabs(d1 - d0) + 2 * leave;
    b->sd = tw_sd_d(TC_B, range * range / 4);
    tc_bounds(c, -1, &b->lref, &b->uref);
    double slop = (TW_DELTA + c) / TC_PAIR;
    for (int j = 0; j <= 8; j++) {
        tc_bounds(c, j, &b->l[j], &b->u[j]);
        b->l[j] -= slop;
        b->u[j] += slop;
    }
}

/* the k-th regime check's upper bound (at the 4-sd edge) when the
   learned-led batches have expected means in [l_j, u_j]; hi_side: the
   bound for hi (else: the lower bound of m_L - m_I) */
static double tc_check_edge(const tc_bound *b, int k, int hi_side)
{
    int n = 8 << k;
    double s = 0, mid = (b->l[8] + b->u[8]) / 2, spread = 0;
    for (int j = 0; j < n; j++) {
        int jj = j < 8 ? j : 8;
        s += hi_side ? b->u[jj] : b->l[jj];
        spread += fmax(pow(b->u[jj] - mid, 2), pow(b->l[jj] - mid, 2));
    }
    double v0 = TW_SIGMA * TW_SIGMA / TC_PAIR;
    double vl = 2 * (v0 + spread / (n - 1)), vi = 2 * (v0 + pow(b->uref - b->lref, 2) / 4 * 30 / 29);
    double sd = sqrt(v0 / n + v0 / 30), se = sqrt(vl / n + vi / 30);
    if (hi_side)
        return (s / n - b->lref) + 4 * sd + tst_guard_z(0.05, k) * se;
    return (s / n - b->uref) - 4 * sd;
}

/* run seed until the switch (within bound1), then until the state leaves
   LEARNED or `after` decisions pass; *t1, *t2: the decisions each took */
static dlsched_stats_t tc_run(double c, uint64_t seed, uint64_t bound1, uint64_t after,
                              uint64_t *t1, uint64_t *t2)
{
    dlsched_agent *ag = tw_agent(TC_B, seed);
    tw_world w;
    memset(&w, 0, sizeof w);
    w.window = 1;
    w.c = c;
    uint64_t rng = 900 + seed;
    *t1 = tw_until_switch(ag, &w, &rng, bound1, seed);
    *t2 = 0;
    while (tst_stats(ag).guard_state == DLSCHED_GUARD_LEARNED && *t2 < after) {
        tw_step(ag, &w, &rng);
        (*t2)++;
    }
    dlsched_stats_t s = tst_stats(ag);
    dlsched_agent_free(ag);
    return s;
}

static uint64_t tc_switch_bound(const tc_bound *b)
{
    ck_assert(b->dmin > 0);
    int k = 0;
    while (b->dmin * sqrt(30 * ldexp(1.0, k)) < (tst_guard_z(0.05, k) + 4) * b->sd)
        k++;
    ck_assert_int_lt(k, 8);
    return (uint64_t)(30 * ldexp(1.0, k) + 1) * TC_PAIR;
}

/* measured over 10 seeds: (c1) the switch after <= 961 decisions (bound
   7712), the regime's fallback <= 512 decisions after it (bound 2080) */
START_TEST(test_regime_falls_back)
{
    tc_bound b;
    tc_derive(2.0, &b);
    uint64_t bound1 = tc_switch_bound(&b);
    int k = 0;
    while (k < 8 && tc_check_edge(&b, k, 1) >= 0)
        k++;
    ck_assert_int_lt(k, 8);
    uint64_t bound2 = (uint64_t)(8 << k) * TC_PAIR + TC_PAIR, w1 = 0, w2 = 0;
    for (uint64_t seed = 1; seed <= 10; seed++) {
        uint64_t t1, t2;
        dlsched_stats_t s = tc_run(2.0, seed, bound1, bound2, &t1, &t2);
        ck_assert_msg(s.guard_state == DLSCHED_GUARD_FALLEN_BACK,
                      "seed %llu: no fallback within %llu decisions of the switch",
                      (unsigned long long)seed, (unsigned long long)bound2);
        ck_assert_uint_eq(s.guard_regime_fallbacks, 1);
        ck_assert_uint_eq(s.guard_fallbacks, 1);
        ck_assert_uint_eq(s.guard_switches, 1);
        w1 = t1 > w1 ? t1 : w1;
        w2 = t2 > w2 ? t2 : w2;
    }
    fprintf(stderr,
            "check_guard (c1): E[d] >= %.3f, reference >= %.3f, learned-led <= %.3f: switch "
            "after <= %llu (bound %llu), regime fallback <= %llu after it (bound %llu, check "
            "%d)\n",
            b.dmin, b.lref, b.u[8], (unsigned long long)w1, (unsigned long long)bound1,
            (unsigned long long)w2, (unsigned long long)bound2, k);
}
END_TEST

/* measured: (c2) no fallback on 20 seeds */
START_TEST(test_regime_keeps_better)
{
    tc_bound b;
    tc_derive(0.1, &b);
    uint64_t bound1 = tc_switch_bound(&b);
    /* every check's m_L - m_I stays above 0 but for the printed chance */
    double p = 0;
    for (int k = 0; k < 5; k++) {
        double edge = tc_check_edge(&b, k, 0);
        ck_assert_msg(edge > 0, "check %d: m_L - m_I may reach %g", k, edge);
        p += 0.5 * erfc((edge / sqrt(2 * TW_SIGMA * TW_SIGMA / TC_PAIR / 8) + 4) / M_SQRT2);
    }
    uint64_t after = (uint64_t)(8 << 4) * TC_PAIR + 2 * TC_PAIR;
    for (uint64_t seed = 1; seed <= TW_SEEDS; seed++) {
        uint64_t t1, t2;
        dlsched_stats_t s = tc_run(0.1, 100 + seed, bound1, after, &t1, &t2);
        ck_assert_msg(s.guard_state == DLSCHED_GUARD_LEARNED,
                      "seed %llu: fell back %llu decisions after the switch (regime: %llu)",
                      (unsigned long long)seed, (unsigned long long)t2,
                      (unsigned long long)s.guard_regime_fallbacks);
        ck_assert_uint_eq(s.guard_regime_fallbacks, 0);
        ck_assert_double_gt(s.guard_led_learned, s.guard_led_incumbent);
    }
    fprintf(stderr, "check_guard (c2): reference <= %.3f, learned-led >= %.3f: no fallback on "
                    "%d seeds over 5 checks (chance <= %.2g)\n",
            b.uref, b.l[8], TW_SEEDS, p);
}
END_TEST

TCase *tcase_guard_block(void)
{
    TCase *tc = tcase_create("switchback");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_block_oracle);
    tcase_add_test(tc, test_block1_fooled);
    tcase_add_test(tc, test_block_not_fooled);
    tcase_add_test(tc, test_block_better_switches);
    tcase_add_test(tc, test_regime_falls_back);
    tcase_add_test(tc, test_regime_keeps_better);
    return tc;
}
