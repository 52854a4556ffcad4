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

TCase *tcase_guard_block(void)
{
    TCase *tc = tcase_create("switchback");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_block_oracle);
    return tc;
}
