/* check_guard_unit.c - the guard's unit design (guard_unit = key: a cluster-
 * randomised experiment over the host's units, dlsched_act_unit; guard.h,
 * dlsched(7) GUARD, Units); part of the "guard" suite:
 *   (1) Student's t quantile (dls_t_quantile) against published table
 *       values, the closed forms for 1 and 2 degrees of freedom and the
 *       test's own quantile: Simpson's rule on the density (adaptive, with
 *       lgamma) and a Newton search kept in a bracket by bisection;
 *   (2) an oracle that re-implements the documented rules decision by
 *       decision (the per-epoch salt, the non-leader's slots, each unit's
 *       slot and arm, the CR1 estimate, Welch-Satterthwaite degrees of
 *       freedom, the t test at the alpha-spending level, the ramp, the
 *       redraws (arms short of 2 slots with outcomes; units too uneven),
 *       late and expired tickets, the regime check's batches) and checks
 *       every action and every guard statistic after every step;
 *   (3) behaviour: one arm per unit and epoch; the incumbent's arm never
 *       explores; guard_share 0 runs no experiment; guard_unit=decision
 *       ignores the unit; greedy decisions follow the leader; bad input;
 *   (4) checkpoints: an exact continuation from mid-epoch, corrupt unit
 *       blocks, and loads that change guard_unit.
 * Deterministic: fixed library seeds and the test's own generator. */
#include <stdio.h>
#include <zlib.h>

#include "core/guard.h"
#include "tests.h"

/* ---- (1) Student's t ------------------------------------------------------------- */

/* the density c (1 + x^2 / nu)^e, c = Gamma((nu + 1) / 2) / (sqrt(nu pi)
   Gamma(nu / 2)), e = -(nu + 1) / 2 */
typedef struct tu_tdist {
    double nu, c, e;
} tu_tdist;

static tu_tdist tu_tdist_new(double nu)
{
    tu_tdist t;
    t.nu = nu;
    t.c = exp(lgamma((nu + 1) / 2) - lgamma(nu / 2)) / sqrt(nu * M_PI);
    t.e = -(nu + 1) / 2;
    return t;
}

static double tu_tpdf(const tu_tdist *t, double x)
{
    return t->c * pow(1 + x * x / t->nu, t->e);
}

/* adaptive Simpson on [a, b] (fm at the midpoint; whole: Simpson's rule
   over [a, b]) with Richardson's correction; stops at eps or where the
   halves agree to rounding */
static double tu_simpson(const tu_tdist *t, double a, double b, double fa, double fm, double fb,
                         double whole, double eps, int depth)
{
    double m = 0.5 * (a + b), flm = tu_tpdf(t, 0.5 * (a + m)), frm = tu_tpdf(t, 0.5 * (m + b));
    double left = (m - a) / 6 * (fa + 4 * flm + fm), right = (b - m) / 6 * (fm + 4 * frm + fb);
    double diff = left + right - whole;
    if (depth <= 0 || fabs(diff) <= 15 * eps || fabs(diff) <= 1e-15 * fabs(left + right))
        return left + right + diff / 15;
    return tu_simpson(t, a, m, fa, flm, fm, left, eps / 2, depth - 1) +
           tu_simpson(t, m, b, fm, frm, fb, right, eps / 2, depth - 1);
}

/* P(a <= T <= b) */
static double tu_tmass(const tu_tdist *t, double a, double b)
{
    double fa = tu_tpdf(t, a), fb = tu_tpdf(t, b), fm = tu_tpdf(t, 0.5 * (a + b));
    return tu_simpson(t, a, b, fa, fm, fb, (b - a) / 6 * (fa + 4 * fm + fb), 1e-13, 40);
}

/* t with P(T <= t) = p, p in (0.5, 1), nu >= 1: Newton's method on
   g(t) = P(0 <= T <= t) - (p - 1/2) from start, each step adding the mass
   between its iterates; a step that leaves the bracket [lo, hi] of the
   root is replaced by bisection (by doubling while no upper end is known) */
static double tu_t_quantile(double p, double nu, double start)
{
    tu_tdist t = tu_tdist_new(nu);
    double x = start > 0 && isfinite(start) ? start : 1.0;
    double g = tu_tmass(&t, 0, x) - (p - 0.5), lo = 0, hi = INFINITY;
    for (int i = 0; i < 400; i++) {
        if (g < 0)
            lo = x;
        else
            hi = x;
        double x1 = x - g / tu_tpdf(&t, x);
        if (!(x1 > lo && x1 < hi))
            x1 = isfinite(hi) ? 0.5 * (lo + hi) : 2 * x;
        if (fabs(x1 - x) <= 1e-13 * x)
            return x1;
        g += x1 > x ? tu_tmass(&t, x, x1) : -tu_tmass(&t, x1, x);
        x = x1;
    }
    ck_abort_msg("t quantile (p %g, df %g) did not converge", p, nu);
    return NAN;
}

static double tu_rel(double a, double b)
{
    return fabs(a - b) / fabs(b);
}

START_TEST(test_unit_t_quantile)
{
    /* published tables (8 significant digits) */
    static const struct {
        double p, df, t;
    } table[] = {
        {0.975, 1, 12.7062047}, {0.975, 3, 3.1824463},  {0.995, 10, 3.1692727},
        {0.975, 30, 2.0422725}, {0.9995, 5, 6.8688266}, {0.95, 1, 6.3137515},
        {0.99, 2, 6.9645567},   {0.95, 4, 2.1318468},   {0.9, 120, 1.2886462},
        {0.99, 20, 2.5279770},  {0.995, 60, 2.6602830},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        double lib = dls_t_quantile(table[i].p, table[i].df);
        double own = tu_t_quantile(table[i].p, table[i].df, 1.0);
        ck_assert_msg(tu_rel(lib, table[i].t) < 1e-6, "t_{%g,%g}: dls_t_quantile %.9g, table %.9g",
                      table[i].p, table[i].df, lib, table[i].t);
        ck_assert_msg(tu_rel(own, table[i].t) < 1e-6, "t_{%g,%g}: the test's own %.9g, table %.9g",
                      table[i].p, table[i].df, own, table[i].t);
    }
    /* closed forms: df 1 (Cauchy) t = tan(pi (p - 1/2)); df 2
       t = (2p - 1) / sqrt(2 p (1 - p)) */
    static const double ps[] = {0.6, 0.9, 0.975, 0.99, 0.9995};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        double p = ps[i], c1 = tan(M_PI * (p - 0.5)), c2 = (2 * p - 1) / sqrt(2 * p * (1 - p));
        ck_assert_msg(tu_rel(dls_t_quantile(p, 1), c1) < 1e-9, "df 1, p %g: %.12g, exact %.12g",
                      p, dls_t_quantile(p, 1), c1);
        ck_assert_msg(tu_rel(dls_t_quantile(p, 2), c2) < 1e-9, "df 2, p %g: %.12g, exact %.12g",
                      p, dls_t_quantile(p, 2), c2);
        ck_assert_msg(tu_rel(tu_t_quantile(p, 1, 1.0), c1) < 1e-9, "own, df 1, p %g", p);
        ck_assert_msg(tu_rel(tu_t_quantile(p, 2, 1.0), c2) < 1e-9, "own, df 2, p %g", p);
    }
    /* fractional degrees of freedom (Welch-Satterthwaite gives them) and
       the levels of the guard's tests: against the test's own quantile */
    double t2_5 = dls_t_quantile(0.99, 2.5), own2_5 = tu_t_quantile(0.99, 2.5, 1.0);
    ck_assert_msg(tu_rel(t2_5, own2_5) < 1e-8, "t_{0.99,2.5}: dls_t_quantile %.12g, own %.12g",
                  t2_5, own2_5);
    static const double dfs[] = {1.0, 1.3, 2.5, 4.75, 9.2, 17.0, 41.5, 150.0};
    static const double levels[] = {0.9, 0.95, 1 - 0.1 / 6, 0.99, 0.9995};
    for (size_t i = 0; i < sizeof dfs / sizeof dfs[0]; i++)
        for (size_t j = 0; j < sizeof levels / sizeof levels[0]; j++) {
            double lib = dls_t_quantile(levels[j], dfs[i]), own = tu_t_quantile(levels[j], dfs[i], 2);
            ck_assert_msg(tu_rel(lib, own) < 1e-8, "t_{%.6g,%g}: dls_t_quantile %.12g, own %.12g",
                          levels[j], dfs[i], lib, own);
        }
    /* many degrees of freedom: the normal quantile */
    for (int k = 0; k < 4; k++)
        ck_assert_msg(tu_rel(dls_t_quantile(1 - 0.05 / ((k + 1.0) * (k + 2.0)), 1e8),
                             tst_guard_z(0.05, k)) < 1e-6,
                      "k %d: df 1e8 is not the normal quantile", k);
    fprintf(stderr, "check_guard (units, t): t_{0.99,2.5} = %.10f (own %.10f)\n", t2_5, own2_5);
}
END_TEST

/* ---- (2) the oracle -------------------------------------------------------------- */

#define TU_SLOTS 64  /* DLS_GUARD_UNITS (checked) */
#define TU_BATCH 1024 /* the regime check's batch with guard_block 1 */
#define TU_POOL 200  /* the units of a run */
#define TU_MAXAG 2

/* the documented mixing function (splitmix64's finaliser) */
static uint64_t tu_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

typedef struct tu_reg {
    uint64_t n, in_batch;
    double sum, sumsq, acc;
} tu_reg;

typedef struct tu_oracle {
    /* configuration */
    uint64_t seed;
    double share, risk;
    uint32_t min_samples, tests;
    /* the guard */
    uint32_t state, stage, k, nl, reg_k;
    uint64_t epoch, switches, fallbacks, reg_fb, decisions, by_l, by_i, expired;
    uint64_t salt, mask; /* this epoch's salt; the non-leader's slots */
    double un[TU_SLOTS], usum[TU_SLOTS], rmin[3], n[3], sum[3], sumsq[3];
    double ud[3]; /* decisions per arm in the current run of min_samples */
    tu_reg inc, led;
    double tq; /* the last t quantile (the next search's start) */
    /* what the run went through */
    uint64_t ups, downs_worse, downs_spent, spent0, spent_led, redraws, uneven, tests_run, stale,
        exp_counted, exp_dropped, late;
} tu_oracle;

static int tu_led(const tu_oracle *o)
{
    return o->state == DLSCHED_GUARD_LEARNED;
}

/* the epoch's salt and the non-leader's slots: m = ceil(64 share), at
   least 2 (0 with share 0), raised by the ramp while the incumbent leads
   to 16 (stage 1) or 32 (stage 2), and to 16 while the learned policy
   leads; the m slots with the smallest hashes
   mix64(salt + 0x632be59bd9b4e019 (i + 1)); fresh per-slot statistics */
static void tu_draw(tu_oracle *o)
{
    o->salt = tu_mix64(o->seed ^ 0x9e3779b97f4a7c15ull * (o->epoch + 1));
    uint32_t m = 0;
    if (o->share > 0) {
        m = (uint32_t)ceil(TU_SLOTS * o->share);
        m = m < 2 ? 2 : m;
        uint32_t ramp = tu_led(o)        ? TU_SLOTS / 4
                        : o->stage == 1 ? TU_SLOTS / 4
                        : o->stage == 2 ? TU_SLOTS / 2
                                        : 0;
        m = m < ramp ? ramp : m;
    }
    /* the slots sorted by their hash (insertion sort) */
    uint64_t h[TU_SLOTS];
    int idx[TU_SLOTS];
    for (int i = 0; i < TU_SLOTS; i++) {
        h[i] = tu_mix64(o->salt + 0x632be59bd9b4e019ull * (uint64_t)(i + 1));
        int j = i;
        while (j > 0 && h[idx[j - 1]] > h[i]) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
    o->mask = 0;
    for (uint32_t j = 0; j < m; j++)
        o->mask |= 1ull << idx[j];
    o->nl = m;
    memset(o->un, 0, sizeof o->un);
    memset(o->usum, 0, sizeof o->usum);
    memset(o->ud, 0, sizeof o->ud);
    for (int a = 0; a < 3; a++)
        o->rmin[a] = INFINITY;
}

static void tu_oracle_init(tu_oracle *o, uint64_t seed, double share, double risk,
                           uint32_t min_samples, uint32_t tests)
{
    memset(o, 0, sizeof *o);
    o->seed = seed;
    o->share = share;
    o->risk = risk;
    o->min_samples = min_samples;
    o->tests = tests;
    o->state = DLSCHED_GUARD_INCUMBENT;
    tu_draw(o);
}

/* the arm of a slot: the non-leader's slots belong to the policy not in
   charge; 1 incumbent, 2 learned */
static int tu_slot_arm(const tu_oracle *o, uint32_t s)
{
    int nonleader = (int)(o->mask >> s & 1);
    return tu_led(o) != nonleader ? 2 : 1;
}

static uint32_t tu_slot(const tu_oracle *o, uint64_t unit)
{
    return (uint32_t)(tu_mix64(unit ^ o->salt) % TU_SLOTS);
}

static void tu_new_epoch(tu_oracle *o)
{
    o->epoch++;
    o->k = 0;
    memset(o->n, 0, sizeof o->n);
    memset(o->sum, 0, sizeof o->sum);
    memset(o->sumsq, 0, sizeof o->sumsq);
    tu_draw(o);
}

/* a ticket as the oracle tagged it */
typedef struct tu_ticket {
    uint64_t id[TU_MAXAG];
    uint64_t epoch, due;
    uint32_t slot;
    int arm, led, action;
    float r;
} tu_ticket;

/* a ticketed, hinted decision of unit `unit`: its slot's arm decides (the
   ticket's tag: arm, slot, leader and epoch as they are now); then, in
   runs of 64 (or guard_min_samples, if more) decisions counted from the
   epoch's start: a
   run in which the non-leader's arm took more than (f + 1) / 2 of them,
   f = m / 64, starts a new epoch (units too uneven for this draw) */
static tu_ticket tu_decide(tu_oracle *o, uint64_t unit)
{
    tu_ticket tk;
    memset(&tk, 0, sizeof tk);
    tk.slot = tu_slot(o, unit);
    tk.arm = tu_slot_arm(o, tk.slot);
    tk.led = tu_led(o);
    tk.epoch = o->epoch;
    tk.action = tk.arm == 2;
    o->decisions++;
    if (tk.arm == 2)
        o->by_l++;
    else
        o->by_i++;
    o->ud[tk.arm] += 1;
    double run = o->ud[1] + o->ud[2];
    if (run < (o->min_samples > 64 ? o->min_samples : 64))
        return tk;
    int nl_arm = tu_led(o) ? 1 : 2;
    int uneven = o->nl && o->ud[nl_arm] > run * ((double)o->nl / TU_SLOTS + 1) / 2;
    o->ud[1] = o->ud[2] = 0;
    if (uneven) {
        o->uneven++;
        tu_new_epoch(o);
    }
    return tk;
}

/* the estimate: per arm A its G_A slots with outcomes, m_A = sum y / sum n,
   v_A = G_A / (G_A - 1) sum (y_s - m_A n_s)^2 / (sum n)^2; d = m_L - m_I,
   se = sqrt(v_L + v_I) and df = (v_L + v_I)^2 / (v_L^2 / (G_L - 1) +
   v_I^2 / (G_I - 1)) once both arms have 2 slots (else se = inf, df = 0;
   no spread at all: df = min G - 1, as guard.c does) */
typedef struct tu_est {
    double d, se, df;
    int g[3];
} tu_est;

static tu_est tu_estimate(const tu_oracle *o)
{
    tu_est e;
    memset(&e, 0, sizeof e);
    double nt[3] = {0, 0, 0}, yt[3] = {0, 0, 0}, m[3] = {0, 0, 0}, v[3] = {0, 0, 0};
    for (uint32_t s = 0; s < TU_SLOTS; s++) {
        if (o->un[s] == 0)
            continue;
        int a = tu_slot_arm(o, s);
        nt[a] += o->un[s];
        yt[a] += o->usum[s];
        e.g[a]++;
    }
    for (int a = 1; a <= 2; a++) {
        if (e.g[a] == 0)
            continue;
        m[a] = yt[a] / nt[a];
        double ss = 0;
        for (uint32_t s = 0; s < TU_SLOTS; s++)
            if (o->un[s] > 0 && tu_slot_arm(o, s) == a)
                ss += (o->usum[s] - m[a] * o->un[s]) * (o->usum[s] - m[a] * o->un[s]);
        v[a] = e.g[a] > 1 ? e.g[a] / (e.g[a] - 1.0) * ss / (nt[a] * nt[a]) : 0;
    }
    e.d = m[2] - m[1];
    int gmin = e.g[1] < e.g[2] ? e.g[1] : e.g[2];
    e.se = INFINITY;
    e.df = 0;
    if (gmin >= 2) {
        e.se = sqrt(v[1] + v[2]);
        double den = v[2] * v[2] / (e.g[2] - 1) + v[1] * v[1] / (e.g[1] - 1);
        e.df = den > 0 ? (v[1] + v[2]) * (v[1] + v[2]) / den : gmin - 1.0;
    }
    return e;
}

/* the k-th test's t quantile at level 1 - risk / ((k + 1)(k + 2)), df */
static double tu_quantile(tu_oracle *o, uint32_t k, double df)
{
    double p = 1.0 - o->risk / ((k + 1.0) * (k + 2.0));
    o->tq = tu_t_quantile(p, df, o->tq > 0 ? o->tq : 2.0);
    return o->tq;
}

/* the k-th test; the ramp while the incumbent leads: "learned better" (the
   interval above 0) moves up a stage (a new epoch) and switches only from
   stage 2; "learned worse" (below 0) at stage 1 or 2, or a stage-1/2
   epoch that ran all its tests, goes back to stage 0. While the learned
   policy leads: a fallback when worse. The last test ends the epoch. */
static void tu_test(tu_oracle *o)
{
    tu_est e = tu_estimate(o);
    double q = tu_quantile(o, o->k, e.df), lo = e.d - q * e.se, hi = e.d + q * e.se;
    ck_assert_msg(fabs(lo) > 1e-7 * q * e.se && fabs(hi) > 1e-7 * q * e.se,
                  "epoch %llu, test %u: [%g, %g] too close to 0 to call (choose another seed)",
                  (unsigned long long)o->epoch, o->k, lo, hi);
    o->k++;
    o->tests_run++;
    if (!tu_led(o)) {
        if (lo > 0 && o->stage < 2) {
            o->stage++;
            o->ups++;
            tu_new_epoch(o);
        } else if (lo > 0) {
            o->state = DLSCHED_GUARD_LEARNED;
            o->switches++;
            o->stage = 0;
            memset(&o->led, 0, sizeof o->led);
            o->reg_k = 0;
            tu_new_epoch(o);
        } else if (o->stage > 0 && (hi < 0 || o->k >= o->tests)) {
            if (hi < 0)
                o->downs_worse++;
            else
                o->downs_spent++;
            o->stage = 0;
            tu_new_epoch(o);
        } else if (o->k >= o->tests) {
            o->spent0++;
            tu_new_epoch(o);
        }
    } else if (hi < 0) {
        o->state = DLSCHED_GUARD_FALLEN_BACK;
        o->fallbacks++;
        memset(&o->inc, 0, sizeof o->inc);
        memset(&o->led, 0, sizeof o->led);
        tu_new_epoch(o);
    } else if (o->k >= o->tests) {
        o->spent_led++;
        tu_new_epoch(o);
    }
}

/* the regime check (as with guard_unit = decision; batches of 1024) */
static void tu_reg_add(tu_reg *r, float reward)
{
    r->acc += reward;
    if (++r->in_batch < TU_BATCH)
        return;
    double m = r->acc / TU_BATCH;
    r->n++;
    r->sum += m;
    r->sumsq += m * m;
    r->acc = 0;
    r->in_batch = 0;
}

static void tu_reg_moments(const tu_reg *r, double *m, double *v)
{
    *m = r->n > 0 ? r->sum / (double)r->n : 0;
    *v = r->n > 1 ? fmax(0.0, (r->sumsq - (double)r->n * *m * *m) / (double)(r->n - 1)) : 0;
}

static void tu_regime(tu_oracle *o, int led, float reward)
{
    if (led != tu_led(o))
        return;
    if (!led) {
        tu_reg_add(&o->inc, reward);
        if (o->inc.n >= 64) {
            o->inc.n /= 2;
            o->inc.sum *= 0.5;
            o->inc.sumsq *= 0.5;
        }
        return;
    }
    uint64_t before = o->led.n;
    tu_reg_add(&o->led, reward);
    if (o->led.n == before || o->led.n < ((uint64_t)8 << o->reg_k) || o->inc.n < 2 ||
        o->reg_k >= o->tests)
        return;
    double ml, vl, mi, vi;
    tu_reg_moments(&o->led, &ml, &vl);
    tu_reg_moments(&o->inc, &mi, &vi);
    double hi = (ml - mi) + tst_guard_z(o->risk, (int)o->reg_k) *
                                sqrt(vl / (double)o->led.n + vi / (double)o->inc.n);
    o->reg_k++;
    if (hi < 0) {
        o->state = DLSCHED_GUARD_FALLEN_BACK;
        o->fallbacks++;
        o->reg_fb++;
        memset(&o->inc, 0, sizeof o->inc);
        memset(&o->led, 0, sizeof o->led);
        tu_new_epoch(o);
    }
}

/* an outcome of this epoch's ticket counts for its slot and arm. With
   due = min_samples 2^k: the test once the smaller arm has due outcomes
   and both arms have outcomes in 2 slots; an epoch whose arms still lack
   2 slots with outcomes after 4 due 64 / m outcomes in all (the
   non-leader's expected 4 due) starts a new epoch (another draw) */
static void tu_count(tu_oracle *o, const tu_ticket *t, double r)
{
    if (t->epoch != o->epoch) {
        o->stale++;
        return;
    }
    o->un[t->slot] += 1;
    o->usum[t->slot] += r;
    o->n[t->arm] += 1;
    o->sum[t->arm] += r;
    o->sumsq[t->arm] += r * r;
    double nmin = fmin(o->n[1], o->n[2]), due = o->min_samples * ldexp(1.0, (int)o->k);
    double all = o->n[1] + o->n[2], enough = o->nl ? 4 * due * TU_SLOTS / o->nl : INFINITY;
    tu_est e = tu_estimate(o);
    int two = e.g[1] >= 2 && e.g[2] >= 2;
    if (two && nmin >= due) {
        tu_test(o);
    } else if (!two && all >= enough) {
        o->redraws++;
        tu_new_epoch(o);
    }
}

static void tu_observed(tu_oracle *o, const tu_ticket *t)
{
    tu_regime(o, t->led, t->r);
    if (t->epoch == o->epoch && t->r < o->rmin[t->arm])
        o->rmin[t->arm] = t->r;
    tu_count(o, t, t->r);
}

/* an expired ticket counts as the lowest reward its arm has seen in the
   epoch (none: dropped) */
static void tu_expired(tu_oracle *o, const tu_ticket *t)
{
    o->expired++;
    if (!isfinite(o->rmin[t->arm]) || t->epoch != o->epoch) {
        o->exp_dropped++;
        return;
    }
    o->exp_counted++;
    tu_count(o, t, o->rmin[t->arm]);
}

/* every guard statistic against the oracle */
static void tu_compare(dlsched_agent *ag, tu_oracle *o, uint64_t step)
{
    dlsched_stats_t s = tst_stats(ag);
#define TU_EQ(f, v)                                                                       \
    ck_assert_msg(s.f == (v), "step %llu (epoch %llu, stage %u): stats." #f " %llu, oracle %llu", \
                  (unsigned long long)step, (unsigned long long)o->epoch, o->stage,       \
                  (unsigned long long)s.f, (unsigned long long)(v))
    TU_EQ(guard_state, o->state);
    TU_EQ(guard_epoch, o->epoch);
    TU_EQ(guard_switches, o->switches);
    TU_EQ(guard_fallbacks, o->fallbacks);
    TU_EQ(guard_regime_fallbacks, o->reg_fb);
    TU_EQ(guard_decisions, o->decisions);
    TU_EQ(guard_agreed, 0);
    TU_EQ(guard_unsupported, 0);
    TU_EQ(guard_by_learned, o->by_l);
    TU_EQ(guard_by_incumbent, o->by_i);
    TU_EQ(guard_samples_learned, (uint64_t)o->n[2]);
    TU_EQ(guard_samples_incumbent, (uint64_t)o->n[1]);
    TU_EQ(tickets_expired, o->expired);
#undef TU_EQ
    tu_est e = tu_estimate(o);
    double ml, vl, mi, vi;
    tu_reg_moments(&o->led, &ml, &vl);
    tu_reg_moments(&o->inc, &mi, &vi);
    const double got[5] = {s.guard_value_learned, s.guard_value_incumbent, s.guard_advantage,
                           s.guard_led_learned, s.guard_led_incumbent};
    const double want[5] = {o->n[2] > 0 ? o->sum[2] / o->n[2] : 0,
                            o->n[1] > 0 ? o->sum[1] / o->n[1] : 0, e.d, ml, mi};
    static const char *name[5] = {"value_learned", "value_incumbent", "advantage", "led_learned",
                                  "led_incumbent"};
    for (int i = 0; i < 5; i++)
        ck_assert_msg(fabs(got[i] - want[i]) <= 1e-12 * (1 + fabs(want[i])),
                      "step %llu: %s %.17g, oracle %.17g", (unsigned long long)step, name[i],
                      got[i], want[i]);
    if (e.df > 0) {
        /* the interval at the next test's level */
        double q = tu_quantile(o, o->k < o->tests ? o->k : o->tests - 1, e.df);
        double lo = e.d - q * e.se, hi = e.d + q * e.se, tol = 1e-8 * q * e.se + 1e-12;
        ck_assert_msg(fabs(s.guard_advantage_low - lo) <= tol &&
                          fabs(s.guard_advantage_high - hi) <= tol,
                      "step %llu: interval [%.12g, %.12g], oracle [%.12g, %.12g] (df %.6g, "
                      "slots %d + %d, k %u)",
                      (unsigned long long)step, s.guard_advantage_low, s.guard_advantage_high, lo,
                      hi, e.df, e.g[2], e.g[1], o->k);
    } else {
        ck_assert_msg(s.guard_advantage_low == -INFINITY && s.guard_advantage_high == INFINITY,
                      "step %llu: interval [%g, %g] before both arms have 2 slots",
                      (unsigned long long)step, s.guard_advantage_low, s.guard_advantage_high);
    }
}

/* ---- (2) the runs: a one-state world ---------------------------------------------- */

/*
 * One state, two actions, hint 0 on every decision, no exploration
 * (epsilon 0), guard_min_visits 0 (no unsupported decisions); the learned
 * policy prefers action 1 throughout (every decision also logs "1 paid 3"
 * and "0 paid -3": Q(1) > Q(0), checked), so a unit of the learned arm gets
 * action 1 and one of the incumbent's arm the hint, flag INCUMBENT,
 * probability 1. The world: TU_POOL units (64-bit keys of the test's
 * generator), each with its own effect (Normal(0, 0.5^2)) on every reward
 * of its decisions; a decision pays effect + [action 1] mu1 + Normal(0, 1),
 * mu1 chosen by the run's director. With late tickets on: every 7th ticket
 * is observed 3 decisions late, one in 1000 is never observed and a burst of
 * 7 held for 20 decisions fills ticket_capacity 8: the oldest expire.
 */
typedef struct tu_run {
    tu_oracle o;
    dlsched_agent *ag[TU_MAXAG];
    int n_ag, late;
    uint64_t rng, t;
    uint64_t unit[TU_POOL];
    double effect[TU_POOL];
    tu_ticket pend[64];
    int n_pend;
    uint32_t cap;
} tu_run;

static dlsched_agent *tu_agent(const char *unit, double share, double risk, uint32_t m,
                               uint32_t tests, uint32_t cap, uint64_t seed)
{
    dlsched_agent *ag = tst_agentf(
        "algo=qtable n_features=1 n_actions=2 bins=1 gamma=0 lr=0.1 epsilon_start=0 "
        "epsilon_end=0 guard_unit=%s guard_share=%g guard_risk=%g guard_min_samples=%u "
        "guard_tests=%u guard_min_visits=0 ticket_capacity=%u seed=%llu",
        unit, share, risk, m, tests, cap, (unsigned long long)seed);
    tst_log1(ag, 1, 3.0);
    tst_log1(ag, 0, -3.0);
    return ag;
}

static void tu_pool(uint64_t *rng, uint64_t *unit, double *effect)
{
    for (int j = 0; j < TU_POOL; j++) {
        unit[j] = tst_next(rng);
        for (int i = 0; i < j; i++)
            ck_assert(unit[i] != unit[j]);
        effect[j] = 0.5 * tst_normal(rng);
    }
}

static void tu_run_init(tu_run *r, uint64_t seed, double share, double risk, uint32_t m,
                        uint32_t tests, int late)
{
    ck_assert_int_eq(DLS_GUARD_UNITS, TU_SLOTS);
    memset(r, 0, sizeof *r);
    r->cap = late ? 8 : 65536;
    r->late = late;
    r->ag[0] = tu_agent("key", share, risk, m, tests, r->cap, seed);
    r->n_ag = 1;
    r->rng = seed * 7919 + 1;
    tu_pool(&r->rng, r->unit, r->effect);
    tu_oracle_init(&r->o, seed, share, risk, m, tests);
}

static void tu_run_free(tu_run *r)
{
    for (int a = 0; a < r->n_ag; a++)
        dlsched_agent_free(r->ag[a]);
    r->n_ag = 0;
}

static dlsched_decision_t tu_act(dlsched_agent *ag, uint64_t unit, int32_t hint, uint32_t flags)
{
    float x = 0.5f;
    dlsched_state_t s = tst_state(&x, 1);
    s.hint = hint;
    dlsched_decision_t d;
    int rc = dlsched_act_unit(ag, &s, unit, flags, &d);
    ck_assert_msg(rc == DLSCHED_OK, "act_unit: %s", dlsched_last_error());
    return d;
}

static void tu_observe_all(tu_run *r, tu_ticket *t)
{
    for (int a = 0; a < r->n_ag; a++)
        tst_observe1(r->ag[a], t->id[a], t->r);
    tu_observed(&r->o, t);
}

/* every guard statistic of agent b equals agent a's, bit for bit */
static void tu_same_stats(dlsched_agent *a, dlsched_agent *b, const char *what, uint64_t step)
{
    dlsched_stats_t x = tst_stats(a), y = tst_stats(b);
#define TU_SAME(f)                                                                        \
    ck_assert_msg(memcmp(&x.f, &y.f, sizeof x.f) == 0, "%s, step %llu: stats." #f " differ", \
                  what, (unsigned long long)step)
    TU_SAME(decisions);
    TU_SAME(explored);
    TU_SAME(tickets_expired);
    TU_SAME(tickets_pending);
    TU_SAME(observed);
    TU_SAME(transitions);
    TU_SAME(guard_state);
    TU_SAME(guard_epoch);
    TU_SAME(guard_switches);
    TU_SAME(guard_fallbacks);
    TU_SAME(guard_decisions);
    TU_SAME(guard_agreed);
    TU_SAME(guard_unsupported);
    TU_SAME(guard_by_learned);
    TU_SAME(guard_by_incumbent);
    TU_SAME(guard_samples_learned);
    TU_SAME(guard_samples_incumbent);
    TU_SAME(guard_value_learned);
    TU_SAME(guard_value_incumbent);
    TU_SAME(guard_advantage);
    TU_SAME(guard_advantage_low);
    TU_SAME(guard_advantage_high);
    TU_SAME(guard_led_learned);
    TU_SAME(guard_led_incumbent);
    TU_SAME(guard_regime_fallbacks);
#undef TU_SAME
}

/* one decision of pool unit j in every agent; mu1: action 1's mean */
static void tu_step(tu_run *r, int j, double mu1)
{
    tu_oracle *o = &r->o;
    uint64_t t = r->t;
    float x = 0.5f, q[2];
    dlsched_state_t st = tst_state(&x, 1);
    ck_assert_int_eq(dlsched_q_values(r->ag[0], &st, q, 2), DLSCHED_OK);
    ck_assert_msg(q[1] > q[0], "step %llu: Q(1) %g <= Q(0) %g", (unsigned long long)t, q[1], q[0]);
    /* the prediction, from the state before the decision (the epoch may
       end with it) */
    uint32_t stage_was = o->stage;
    tu_ticket tk = tu_decide(o, r->unit[j]);
    dlsched_decision_t d[TU_MAXAG];
    for (int a = 0; a < r->n_ag; a++) {
        d[a] = tu_act(r->ag[a], r->unit[j], 0, 0);
        ck_assert_msg(d[a].action == tk.action &&
                          d[a].flags == (tk.arm == 1 ? DLSCHED_DECISION_INCUMBENT : 0u) &&
                          d[a].probability == 1.0f,
                      "step %llu, agent %d: unit %d (slot %u, arm %d, epoch %llu, stage %u): "
                      "action %d flags %u p %g, oracle action %d",
                      (unsigned long long)t, a, j, tk.slot, tk.arm,
                      (unsigned long long)tk.epoch, stage_was, d[a].action, d[a].flags,
                      d[a].probability, tk.action);
        ck_assert_uint_ne(d[a].ticket, 0);
        if (a) {
            ck_assert(d[a].model_version == d[0].model_version &&
                      memcmp(&d[a].value, &d[0].value, sizeof d[0].value) == 0);
        }
        tk.id[a] = d[a].ticket;
    }
    /* the act expired the oldest pending ticket when all were in use */
    if ((uint32_t)r->n_pend == r->cap) {
        tu_expired(o, &r->pend[0]);
        memmove(r->pend, r->pend + 1, sizeof r->pend[0] * (size_t)--r->n_pend);
    }
    tk.r = (float)((tk.action ? mu1 : 0.0) + r->effect[j] + tst_normal(&r->rng));
    for (int a = 0; a < r->n_ag; a++) {
        tst_log1(r->ag[a], 1, 3.0);
        tst_log1(r->ag[a], 0, -3.0);
    }
    uint64_t c = t % 1000;
    tk.due = !r->late             ? t
             : c == 300           ? UINT64_MAX /* never: it expires */
             : c >= 340 && c < 347 ? t + 20    /* the burst */
             : t % 7 == 3         ? t + 3      /* out of order */
                                  : t;
    if (tk.due == t) {
        tu_observe_all(r, &tk);
    } else {
        ck_assert_int_lt(r->n_pend, 64);
        r->pend[r->n_pend++] = tk;
    }
    for (int i = r->n_pend - 1; i >= 0; i--) { /* the due ones, newest first */
        if (r->pend[i].due > t)
            continue;
        o->late++;
        tu_observe_all(r, &r->pend[i]);
        memmove(r->pend + i, r->pend + i + 1, sizeof r->pend[0] * (size_t)(r->n_pend - i - 1));
        r->n_pend--;
    }
    tu_compare(r->ag[0], o, t);
    for (int a = 1; a < r->n_ag; a++)
        tu_same_stats(r->ag[0], r->ag[a], "continuation", t);
    r->t++;
}

/* a pool unit in a slot of arm `arm` (and not in slot `not_slot`) */
static int tu_find_unit(const tu_run *r, int arm, uint32_t not_slot)
{
    for (int j = 0; j < TU_POOL; j++) {
        uint32_t s = tu_slot(&r->o, r->unit[j]);
        if (tu_slot_arm(&r->o, s) == arm && s != not_slot)
            return j;
    }
    ck_abort_msg("no unit of arm %d in the pool", arm);
    return -1;
}

/*
 * Run A, a director that leads the guard through every documented rule,
 * each phase until its event has happened (learned better: mu1 = +2;
 * worse: -2; no verdict: 0):
 *   up:     stage 0 -> 1 on "better";
 *   worse:  at stage 1 learned worse: back to stage 0;
 *   spent:  at stage 1 no verdict for all guard_tests tests: back to 0;
 *   few:    three units only, one in a learned slot and two in incumbent
 *           slots: the learned arm's outcomes come from one slot, no test,
 *           and after 4 due 64 / m outcomes in all a redraw (a new epoch);
 *   uneven: nine decisions in ten by one unit of the learned arm: a run
 *           of guard_min_samples decisions where the learned arm took more
 *           than (f + 1) / 2 of them, a redraw;
 *   switch: stage 0 -> 1 -> 2 -> the switch;
 *   led:    learned leads and is better: an epoch runs all its tests;
 *   fall:   learned worse: the fallback;
 *   spent0: the incumbent leads again, learned worse at stage 0: the
 *           epoch runs all its tests and nothing else happens.
 */
enum { TA_UP, TA_WORSE, TA_SPENT, TA_FEW, TA_UNEVEN, TA_SWITCH, TA_LED, TA_FALL, TA_SPENT0,
       TA_DONE };

static uint64_t *tu_goal(tu_oracle *o, int phase)
{
    uint64_t *g[TA_DONE] = {&o->ups,      &o->downs_worse, &o->downs_spent,
                            &o->redraws,  &o->uneven,      &o->switches,
                            &o->spent_led, &o->fallbacks,  &o->spent0};
    return g[phase];
}

START_TEST(test_unit_oracle_ramp_switch)
{
    tu_run r;
    tu_run_init(&r, 11, 0.1, 0.2, 5, 4, 1);
    tu_oracle *o = &r.o;
    ck_assert_uint_eq(o->nl, 7); /* ceil(6.4) */
    int phase = TA_UP, few[3] = {0, 0, 0};
    uint64_t base = 0, few_epoch = UINT64_MAX, steps[TA_DONE] = {0};
    while (phase < TA_DONE) {
        ck_assert_msg(r.t < 8000, "phase %d: its event did not come within 8000 decisions", phase);
        int j = (int)tst_below(&r.rng, TU_POOL);
        double mu;
        switch (phase) {
        case TA_UP:
        case TA_SWITCH:
        case TA_LED:
            mu = 2;
            break;
        case TA_WORSE:
            mu = o->stage > 0 ? -2 : 2;
            break;
        case TA_SPENT:
            mu = o->stage > 0 ? 0 : 2;
            break;
        case TA_FEW:
            if (few_epoch != o->epoch) {
                few[0] = tu_find_unit(&r, 2, TU_SLOTS);
                few[1] = tu_find_unit(&r, 1, TU_SLOTS);
                few[2] = tu_find_unit(&r, 1, tu_slot(o, r.unit[few[1]]));
                few_epoch = o->epoch;
            }
            j = few[r.t % 3];
            mu = 0;
            break;
        case TA_UNEVEN:
            if (tst_below(&r.rng, 10) != 0)
                j = tu_find_unit(&r, 2, TU_SLOTS);
            mu = 0;
            break;
        default:
            mu = -2;
        }
        tu_step(&r, j, mu);
        if (*tu_goal(o, phase) > base) {
            steps[phase] = r.t;
            phase++;
            base = phase < TA_DONE ? *tu_goal(o, phase) : 0;
        }
    }
    ck_assert_uint_ge(o->ups, 3);
    ck_assert_uint_eq(o->switches, 1);
    ck_assert_uint_eq(o->fallbacks, 1);
    ck_assert_uint_eq(o->reg_fb, 0);
    ck_assert_uint_gt(o->stale, 0);       /* late outcomes of an ended epoch */
    ck_assert_uint_gt(o->exp_counted, 0); /* expired, counted as the arm's lowest */
    fprintf(stderr,
            "check_guard (units, oracle A): %llu decisions, phases ended at %llu %llu %llu %llu "
            "%llu %llu %llu %llu %llu; %llu tests, %llu epochs (%llu redraws, %llu uneven), "
            "%llu late (%llu from ended epochs), %llu expired (%llu counted)\n",
            (unsigned long long)r.t, (unsigned long long)steps[0], (unsigned long long)steps[1],
            (unsigned long long)steps[2], (unsigned long long)steps[3],
            (unsigned long long)steps[4], (unsigned long long)steps[5],
            (unsigned long long)steps[6], (unsigned long long)steps[7],
            (unsigned long long)steps[8], (unsigned long long)o->tests_run,
            (unsigned long long)o->epoch, (unsigned long long)o->redraws,
            (unsigned long long)o->uneven,
            (unsigned long long)o->late, (unsigned long long)o->stale,
            (unsigned long long)o->expired, (unsigned long long)o->exp_counted);
    tu_run_free(&r);
}
END_TEST

/* Run B: the learned policy wins on a few units and loses on many (it
   overloads what it wins with): +2 at stage 0, -2 at stages 1 and 2. The
   ramp goes up and falls back to stage 0, again and again; it never
   switches. */
START_TEST(test_unit_oracle_ramp_falls_back)
{
    tu_run r;
    tu_run_init(&r, 12, 0.05, 0.2, 5, 4, 1);
    ck_assert_uint_eq(r.o.nl, 4); /* ceil(3.2) */
    for (int i = 0; i < 2500; i++)
        tu_step(&r, (int)tst_below(&r.rng, TU_POOL), r.o.stage == 0 ? 2.0 : -2.0);
    ck_assert_uint_ge(r.o.ups, 2);
    ck_assert_uint_ge(r.o.downs_worse, 2);
    ck_assert_uint_eq(r.o.switches, 0);
    ck_assert_uint_eq(tst_stats(r.ag[0]).guard_state, DLSCHED_GUARD_INCUMBENT);
    fprintf(stderr, "check_guard (units, oracle B): %llu ramp steps up, %llu back down, %llu tests\n",
            (unsigned long long)r.o.ups, (unsigned long long)r.o.downs_worse,
            (unsigned long long)r.o.tests_run);
    tu_run_free(&r);
}
END_TEST

/* Run C: guard_tests 1, the learned policy clearly better: every test is
   an epoch's last. The documented ramp: "better" moves up a stage (0 -> 1
   -> 2) and switches from stage 2; only a stage-1/2 epoch that runs all its
   tests *without a verdict* goes back to stage 0. So the guard switches
   after three won tests. */
START_TEST(test_unit_oracle_last_test_wins)
{
    tu_run r;
    tu_run_init(&r, 13, 0.1, 0.2, 5, 1, 0);
    for (int i = 0; i < 1500 && r.o.switches == 0; i++)
        tu_step(&r, (int)tst_below(&r.rng, TU_POOL), 2.0);
    ck_assert_uint_eq(r.o.switches, 1);
    ck_assert_uint_eq(tst_stats(r.ag[0]).guard_state, DLSCHED_GUARD_LEARNED);
    tu_run_free(&r);
}
END_TEST

/* ---- (3) behaviour --------------------------------------------------------------- */

/* all ticketed decisions of a unit within an epoch take the same arm (the
   incumbent's: the hint with flag INCUMBENT; the learned one's: action 1);
   over epochs units change arms (a new salt each epoch) */
START_TEST(test_unit_one_arm_per_epoch)
{
    enum { NU = 40 };
    dlsched_agent *ag = tu_agent("key", 0.3, 0.2, 5, 4, 65536, 21);
    uint64_t rng = 2100, unit[NU], seen_epoch[NU], repeats = 0, changed = 0, max_epoch = 0;
    int seen_arm[NU], ever[NU][3];
    memset(ever, 0, sizeof ever);
    for (int i = 0; i < NU; i++) {
        unit[i] = tst_next(&rng);
        seen_epoch[i] = UINT64_MAX;
        seen_arm[i] = 0;
    }
    for (int i = 0; i < 4000; i++) {
        int j = (int)tst_below(&rng, NU);
        uint64_t epoch = tst_stats(ag).guard_epoch;
        dlsched_decision_t d = tu_act(ag, unit[j], 0, 0);
        int arm = (d.flags & DLSCHED_DECISION_INCUMBENT) ? 1 : 2;
        ck_assert_int_eq(d.action, arm == 2);
        if (seen_epoch[j] == epoch) {
            ck_assert_msg(seen_arm[j] == arm, "decision %d: unit %d took arm %d, earlier in epoch "
                                              "%llu arm %d",
                          i, j, arm, (unsigned long long)epoch, seen_arm[j]);
            repeats++;
        } else if (seen_arm[j] && seen_arm[j] != arm) {
            changed++;
        }
        seen_epoch[j] = epoch;
        seen_arm[j] = arm;
        ever[j][arm] = 1;
        max_epoch = epoch;
        /* learned better by 1: the ramp, switches, new epochs */
        tst_observe1(ag, d.ticket, (d.action ? 1.0 : 0.0) + tst_normal(&rng));
        tst_log1(ag, 1, 3.0);
        tst_log1(ag, 0, -3.0);
    }
    int both = 0;
    for (int j = 0; j < NU; j++)
        both += ever[j][1] && ever[j][2];
    ck_assert_uint_gt(repeats, 2000);
    ck_assert_uint_ge(max_epoch, 4);
    ck_assert_uint_gt(changed, 0);
    ck_assert_int_gt(both, 5);
    dlsched_agent_free(ag);
}
END_TEST

/* the incumbent's arm never explores, even with epsilon 1: the hint, flag
   INCUMBENT only, probability 1; the learned arm explores (epsilon 1:
   every decision, each action with probability 1/2). Before any outcome
   the arm of each unit is the oracle's. */
START_TEST(test_unit_incumbent_never_explores)
{
    enum { NU = 60 };
    dlsched_agent *ag = tst_agent("algo=qtable n_features=1 n_actions=2 bins=1 gamma=0 lr=0.1 "
                                  "epsilon_start=1 epsilon_end=1 guard_unit=key guard_share=0.5 "
                                  "guard_min_samples=5 guard_tests=4 seed=5");
    tu_oracle o;
    tu_oracle_init(&o, 5, 0.5, 0.05, 5, 4);
    ck_assert_uint_eq(o.nl, 32);
    uint64_t rng = 500, unit[NU], n_inc = 0, n_exp = 0, exp_a[2] = {0, 0};
    for (int i = 0; i < NU; i++)
        unit[i] = tst_next(&rng);
    for (int i = 0; i < 3000; i++) {
        int j = (int)tst_below(&rng, NU);
        dlsched_decision_t d = tu_act(ag, unit[j], 0, 0);
        if (d.flags & DLSCHED_DECISION_INCUMBENT) {
            ck_assert_msg(d.flags == DLSCHED_DECISION_INCUMBENT && d.action == 0 &&
                              d.probability == 1.0f,
                          "decision %d: incumbent's arm: action %d flags %u p %g", i, d.action,
                          d.flags, d.probability);
            n_inc++;
        } else {
            ck_assert_msg(d.flags == DLSCHED_DECISION_EXPLORED && d.probability == 0.5f,
                          "decision %d: learned arm: action %d flags %u p %g", i, d.action,
                          d.flags, d.probability);
            n_exp++;
            exp_a[d.action]++;
        }
        if (i < 500) { /* no outcome yet: the oracle's arms */
            int arm = tu_decide(&o, unit[j]).arm;
            ck_assert_msg((arm == 1) == ((d.flags & DLSCHED_DECISION_INCUMBENT) != 0),
                          "decision %d: unit %d: oracle arm %d, flags %u", i, j, arm, d.flags);
            continue; /* its ticket is never observed */
        }
        tst_observe1(ag, d.ticket, tst_normal(&rng));
    }
    dlsched_stats_t s = tst_stats(ag);
    ck_assert_uint_gt(n_inc, 600);
    ck_assert_uint_gt(exp_a[0], 100);
    ck_assert_uint_gt(exp_a[1], 100);
    ck_assert_uint_eq(s.explored, n_exp);
    /* the guard ruled the incumbent's arm's decisions; exploration passed */
    ck_assert_uint_eq(s.guard_decisions, n_inc);
    ck_assert_uint_eq(s.guard_by_learned + s.guard_unsupported, 0);
    ck_assert_uint_gt(s.guard_epoch, 0);
    dlsched_agent_free(ag);
}
END_TEST

/* guard_share 0: no slot for the policy not in charge, no experiment:
   every decision follows the leader (the incumbent: the hint, even with
   exploration configured) and every outcome counts for its arm */
START_TEST(test_unit_share0_no_experiment)
{
    dlsched_agent *ag = tst_agent("algo=qtable n_features=1 n_actions=2 bins=1 gamma=0 lr=0.1 "
                                  "epsilon_start=0.3 epsilon_end=0.3 guard_unit=key "
                                  "guard_share=0 guard_min_samples=5 guard_tests=4 "
                                  "guard_min_visits=0 seed=6");
    tst_log1(ag, 1, 3.0);
    tst_log1(ag, 0, -3.0);
    uint64_t rng = 600;
    for (int i = 0; i < 1500; i++) {
        dlsched_decision_t d = tu_act(ag, tst_next(&rng) % 300, 0, 0);
        ck_assert_msg(d.action == 0 && d.flags == DLSCHED_DECISION_INCUMBENT &&
                          d.probability == 1.0f,
                      "decision %d: action %d flags %u p %g", i, d.action, d.flags,
                      d.probability);
        tst_observe1(ag, d.ticket, 1.0 + tst_normal(&rng));
    }
    dlsched_stats_t s = tst_stats(ag);
    ck_assert_uint_eq(s.guard_state, DLSCHED_GUARD_INCUMBENT);
    ck_assert_uint_eq(s.guard_epoch, 0);
    ck_assert_uint_eq(s.guard_by_learned, 0);
    ck_assert_uint_eq(s.guard_samples_learned, 0);
    ck_assert_uint_eq(s.guard_samples_incumbent, 1500);
    ck_assert_uint_eq(s.explored, 0);
    ck_assert(s.guard_advantage_low == -INFINITY && s.guard_advantage_high == INFINITY);
    dlsched_agent_free(ag);
}
END_TEST

/* two agents of one spec fed the same inputs, the first through
   act_unit(units[i]) (NULL: unit 0), the second through dlsched_act;
   hint: -1 .. na-1 drawn (fixed_hint >= -1: that), greedy in a fifth
   (no_greedy: never); every decision and statistic must be equal */
static void tu_same_as_act(const char *spec, int na, int fixed_hint, int no_greedy, int zero_unit,
                           uint64_t seed)
{
    dlsched_agent *a = tst_agent(spec), *b = tst_agent(spec);
    uint64_t rng = seed;
    for (int i = 0; i < 3000; i++) {
        float x = (float)tst_unif(&rng);
        dlsched_state_t s = tst_state(&x, 1);
        s.hint = fixed_hint >= -1 ? fixed_hint : (int32_t)tst_below(&rng, (uint32_t)na + 1) - 1;
        uint32_t fl = !no_greedy && tst_below(&rng, 5) == 0 ? DLSCHED_ACT_GREEDY : 0;
        uint64_t unit = zero_unit ? 0 : tst_next(&rng);
        dlsched_decision_t da, db;
        ck_assert_int_eq(dlsched_act_unit(a, &s, unit, fl, &da), DLSCHED_OK);
        ck_assert_int_eq(dlsched_act(b, &s, fl, &db), DLSCHED_OK);
        ck_assert_msg(da.action == db.action && da.flags == db.flags &&
                          da.probability == db.probability && da.value == db.value &&
                          da.ticket == db.ticket && da.model_version == db.model_version,
                      "%s: decision %d (hint %d, flags %u): act_unit (a %d, flags %u, p %g), "
                      "act (a %d, flags %u, p %g)",
                      spec, i, s.hint, fl, da.action, da.flags, da.probability, db.action,
                      db.flags, db.probability);
        if (fl)
            continue;
        float r = (float)((da.action == 1 ? 1.0 : 0.2 * da.action) + x + tst_normal(&rng));
        ck_assert_int_eq(dlsched_observe(a, da.ticket, r, NULL, DLSCHED_OBS_TERMINAL), DLSCHED_OK);
        ck_assert_int_eq(dlsched_observe(b, db.ticket, r, NULL, DLSCHED_OBS_TERMINAL), DLSCHED_OK);
    }
    tu_same_stats(a, b, spec, 3000);
    dlsched_agent_free(a);
    dlsched_agent_free(b);
}

/* guard_unit=decision ignores the unit; with guard_unit=key the unit is
   ignored without a hint and with DLSCHED_ACT_GREEDY; dlsched_act is
   dlsched_act_unit with unit 0 */
START_TEST(test_unit_ignored_where_documented)
{
    static const char *base = "algo=qtable n_features=1 n_actions=3 bins=4 gamma=0 lr=0.2 "
                              "epsilon_start=0.2 epsilon_end=0.2 guard_share=0.3 "
                              "guard_min_samples=10 guard_min_visits=2 seed=33 ";
    char spec[512];
    snprintf(spec, sizeof spec, "%sguard_unit=decision", base);
    tu_same_as_act(spec, 3, -2, 0, 0, 3301);
    snprintf(spec, sizeof spec, "%sguard_unit=decision guard_block=4", base);
    tu_same_as_act(spec, 3, -2, 0, 0, 3302);
    snprintf(spec, sizeof spec, "%sguard_unit=key", base);
    tu_same_as_act(spec, 3, -1, 0, 0, 3303); /* no hint */
    tu_same_as_act(spec, 3, -2, 0, 1, 3304); /* unit 0 */
    snprintf(spec, sizeof spec, "%sguard_unit=key guard=0", base);
    tu_same_as_act(spec, 3, -2, 0, 0, 3305); /* guard off */
    /* greedy with a hint: the policy in charge, whatever the unit */
    snprintf(spec, sizeof spec, "%sguard_unit=key", base);
    dlsched_agent *a = tst_agent(spec), *b = tst_agent(spec);
    uint64_t rng = 3306;
    for (int i = 0; i < 2000; i++) {
        float x = (float)tst_unif(&rng);
        dlsched_state_t s = tst_state(&x, 1);
        s.hint = (int32_t)tst_below(&rng, 3);
        dlsched_decision_t da, db;
        ck_assert_int_eq(dlsched_act_unit(a, &s, tst_next(&rng), DLSCHED_ACT_GREEDY, &da),
                         DLSCHED_OK);
        ck_assert_int_eq(dlsched_act(b, &s, DLSCHED_ACT_GREEDY, &db), DLSCHED_OK);
        ck_assert(da.action == db.action && da.flags == db.flags &&
                  da.probability == db.probability && da.ticket == 0 && db.ticket == 0);
    }
    tu_same_stats(a, b, "greedy", 2000);
    dlsched_agent_free(a);
    dlsched_agent_free(b);
}
END_TEST

/* greedy decisions follow the policy in charge: before the switch the
   hint (even for units of the learned arm), after it the learned choice
   (even for units of the incumbent's arm); no ticket, no sample */
START_TEST(test_unit_greedy_follows_leader)
{
    dlsched_agent *ag = tu_agent("key", 0.25, 0.2, 5, 4, 65536, 44);
    uint64_t rng = 4400, unit[64];
    for (int i = 0; i < 64; i++)
        unit[i] = tst_next(&rng);
    for (int phase = 0; phase < 2; phase++) {
        int learned = phase == 1, other_arm = 0;
        dlsched_stats_t b = tst_stats(ag);
        for (int i = 0; i < 64; i++) {
            dlsched_decision_t d = tu_act(ag, unit[i], 0, DLSCHED_ACT_GREEDY);
            ck_assert_msg(d.action == learned &&
                              d.flags == (learned ? 0u : DLSCHED_DECISION_INCUMBENT) &&
                              d.probability == 1.0f && d.ticket == 0,
                          "phase %d, unit %d: greedy action %d flags %u p %g", phase, i, d.action,
                          d.flags, d.probability);
            /* the ticketed decision of the same unit (never observed) */
            other_arm += tu_act(ag, unit[i], 0, 0).action != learned;
        }
        dlsched_stats_t a = tst_stats(ag);
        ck_assert_int_gt(other_arm, 0); /* some units are the other arm's */
        ck_assert_uint_eq(a.guard_samples_learned, b.guard_samples_learned);
        ck_assert_uint_eq(a.guard_samples_incumbent, b.guard_samples_incumbent);
        if (phase == 1)
            break;
        /* learned better by 2: the ramp, then the switch */
        for (int i = 0; i < 3000 && tst_stats(ag).guard_state != DLSCHED_GUARD_LEARNED; i++) {
            dlsched_decision_t d = tu_act(ag, unit[tst_below(&rng, 64)], 0, 0);
            tst_observe1(ag, d.ticket, 2.0 * d.action + tst_normal(&rng));
            tst_log1(ag, 1, 3.0);
            tst_log1(ag, 0, -3.0);
        }
        ck_assert_uint_eq(tst_stats(ag).guard_state, DLSCHED_GUARD_LEARNED);
    }
    dlsched_agent_free(ag);
}
END_TEST

/* bad input: act_unit answers as act does (DLSCHED_EINVAL, ENOACTION),
   leaves *out and the agent as they were */
START_TEST(test_unit_bad_input)
{
    for (int key = 0; key < 2; key++) {
        dlsched_agent *ag = tu_agent(key ? "key" : "decision", 0.3, 0.2, 5, 4, 65536, 55);
        float x = 0.5f, nan_x = NAN;
        static const uint8_t none[2] = {0, 0};
        dlsched_state_t good = tst_state(&x, 1);
        good.hint = 0;
        dlsched_state_t bad[6];
        for (int i = 0; i < 6; i++)
            bad[i] = good;
        bad[0].n_features = 2;
        bad[1].reserved = 1;
        bad[2].hint = 2; /* out of range */
        bad[3].features = &nan_x;
        bad[4].n_mask = 2;
        bad[4].mask = none; /* no action allowed (and no hint: a masked-out hint is EINVAL) */
        bad[4].hint = -1;
        bad[5].features = NULL;
        struct {
            dlsched_agent *ag;
            const dlsched_state_t *st;
            uint32_t flags;
            int out;
        } cases[] = {
            {NULL, &good, 0, 1},    {ag, NULL, 0, 1},       {ag, &good, 0, 0},
            {ag, &good, 2, 1},      {ag, &good, 1u << 31, 1}, {ag, &bad[0], 0, 1},
            {ag, &bad[1], 0, 1},    {ag, &bad[2], 0, 1},    {ag, &bad[3], 0, 1},
            {ag, &bad[4], 0, 1},    {ag, &bad[5], 0, 1},
        };
        dlsched_stats_t before = tst_stats(ag);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            dlsched_decision_t da, db;
            memset(&da, 0xa5, sizeof da);
            memset(&db, 0xa5, sizeof db);
            int ra = dlsched_act(cases[i].ag, cases[i].st, cases[i].flags, cases[i].out ? &da : NULL);
            int rb = dlsched_act_unit(cases[i].ag, cases[i].st, 12345, cases[i].flags,
                                      cases[i].out ? &db : NULL);
            ck_assert_msg(ra == rb && ra != DLSCHED_OK,
                          "guard_unit %s, case %zu: act %d, act_unit %d", key ? "key" : "decision",
                          i, ra, rb);
            int want = i == 9 ? DLSCHED_ENOACTION : DLSCHED_EINVAL;
            ck_assert_int_eq(ra, want);
            unsigned char pat[sizeof db];
            memset(pat, 0xa5, sizeof pat);
            ck_assert_msg(memcmp(&db, pat, sizeof db) == 0, "case %zu: *out was written", i);
        }
        dlsched_stats_t after = tst_stats(ag);
        ck_assert_uint_eq(after.decisions, before.decisions);
        ck_assert_uint_eq(after.guard_decisions, before.guard_decisions);
        ck_assert_uint_eq(after.tickets_issued, before.tickets_issued);
        dlsched_agent_free(ag);
    }
}
END_TEST

/* ---- (4) checkpoints -------------------------------------------------------------- */

#define TU_HEADER 24u

static uint32_t tu_rd32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t tu_rd64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void tu_wr64(unsigned char *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

/* zlib CRC-32 of every byte but the last 4, stored in them; the header's
   body length set to match len (as check_checkpoint.c's ck_fix) */
static void tu_fix(unsigned char *b, size_t len)
{
    tu_wr64(b + 16, (uint64_t)(len - TU_HEADER - 4));
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, b, (uInt)(len - 4));
    uint32_t v = (uint32_t)c;
    memcpy(b + len - 4, &v, 4);
}

/* the guard section's payload (tag 4): its offset and length */
static void tu_guard_section(const unsigned char *b, size_t len, size_t *off, size_t *glen)
{
    size_t p = TU_HEADER;
    while (p + 16 <= len - 4) {
        uint32_t tag = tu_rd32(b + p);
        uint64_t l = tu_rd64(b + p + 8);
        if (tag == 4) {
            *off = p + 16;
            *glen = (size_t)l;
            return;
        }
        p += 16 + (size_t)l;
    }
    ck_abort_msg("the checkpoint has no guard section");
}

/* a copy of b with n bytes at off replaced by v (a valid CRC) */
static unsigned char *tu_patch(const unsigned char *b, size_t len, size_t off, const void *v,
                               size_t n)
{
    unsigned char *o = malloc(len);
    ck_assert_ptr_nonnull(o);
    memcpy(o, b, len);
    memcpy(o + off, v, n);
    tu_fix(o, len);
    return o;
}

static int tu_load_rc(const void *b, size_t len, const char *ov, dlsched_agent **out)
{
    dlsched_config *cfg = NULL;
    if (ov) {
        ck_assert_int_eq(dlsched_config_new(&cfg), DLSCHED_OK);
        ck_assert_int_eq(dlsched_config_parse(cfg, ov), DLSCHED_OK);
    }
    dlsched_agent *ag = NULL;
    int rc = dlsched_load_buffer(b, len, cfg, &ag);
    dlsched_config_free(cfg);
    if (out)
        *out = ag;
    else
        dlsched_agent_free(ag);
    return rc;
}

static dlsched_agent *tu_load(const void *b, size_t len, const char *ov)
{
    dlsched_agent *ag = NULL;
    int rc = tu_load_rc(b, len, ov, &ag);
    ck_assert_msg(rc == DLSCHED_OK, "load (overrides '%s'): %s", ov ? ov : "",
                  dlsched_last_error());
    return ag;
}

static void tu_expect_eformat(const unsigned char *b, size_t len, size_t off, const void *v,
                              size_t n, const char *what)
{
    unsigned char *p = tu_patch(b, len, off, v, n);
    int rc = tu_load_rc(p, len, NULL, NULL);
    ck_assert_msg(rc == DLSCHED_EFORMAT, "%s: load gave %d (%s), want DLSCHED_EFORMAT", what, rc,
                  rc ? dlsched_last_error() : "accepted");
    ck_assert_msg(strstr(dlsched_last_error(), "guard") != NULL, "%s: message '%s'", what,
                  dlsched_last_error());
    free(p);
}

/* the arms of the pool's units in ag (ticketed decisions, never observed)
   against an oracle in that epoch, state and stage */
/* the arms of units' ticketed decisions (never observed) in ag, an agent
   of guard_min_samples 5 at the start of an epoch (no decision, no test
   yet), against the oracle's in that epoch, state and stage */
static void tu_check_arms(dlsched_agent *ag, const uint64_t *units, int n_units, uint64_t seed,
                          double share, uint64_t epoch, uint32_t state, uint32_t stage,
                          const char *what)
{
    tu_oracle o;
    tu_oracle_init(&o, seed, share, 0.2, 5, 4);
    o.epoch = epoch;
    o.state = state;
    o.stage = stage;
    tu_draw(&o);
    int seen[3] = {0, 0, 0};
    for (int j = 0; j < n_units; j++) {
        tu_ticket tk = tu_decide(&o, units[j]);
        dlsched_decision_t d = tu_act(ag, units[j], 0, 0);
        ck_assert_msg(d.action == tk.action, "%s: unit %d: action %d, oracle arm %d (epoch %llu)",
                      what, j, d.action, tk.arm, (unsigned long long)tk.epoch);
        seen[tk.arm]++;
    }
    ck_assert(seen[1] > 0 && seen[2] > 0);
    ck_assert_uint_eq(tst_stats(ag).guard_epoch, o.epoch);
}

/*
 * Save a guard_unit=key agent mid-epoch (stage 1, a test done, outcomes in
 * both arms, no ticket pending), load it, and drive both with the same
 * inputs through the ramp and the switch: the same decisions and
 * statistics, bit for bit, and the oracle's. Then corrupt unit blocks
 * (DLSCHED_EFORMAT) and loads that change guard_unit (a new epoch).
 */
START_TEST(test_unit_checkpoint)
{
    tu_run r;
    tu_run_init(&r, 11, 0.1, 0.2, 5, 4, 0);
    tu_oracle *o = &r.o;
    /* better at stage 0, no verdict at stage 1 */
    while (!(o->stage == 1 && o->k >= 1 && o->n[1] > 0 && o->n[2] > 0)) {
        ck_assert_uint_lt(r.t, 4000);
        tu_step(&r, (int)tst_below(&r.rng, TU_POOL), o->stage == 0 ? 2.0 : 0.0);
    }
    dlsched_stats_t at = tst_stats(r.ag[0]);
    ck_assert_uint_eq(at.tickets_pending, 0);
    void *lib = NULL;
    size_t len = 0;
    ck_assert_int_eq(dlsched_save_buffer(r.ag[0], &lib, &len), DLSCHED_OK);
    unsigned char *buf = malloc(len);
    ck_assert_ptr_nonnull(buf);
    memcpy(buf, lib, len);
    dlsched_buffer_free(lib);

    /* the continuation */
    r.ag[1] = tu_load(buf, len, NULL);
    r.n_ag = 2;
    tu_same_stats(r.ag[0], r.ag[1], "loaded", r.t);
    uint64_t t0 = r.t, epoch0 = o->epoch;
    for (int i = 0; i < 1500 && o->switches == 0; i++)
        tu_step(&r, (int)tst_below(&r.rng, TU_POOL), 2.0);
    for (int i = 0; i < 200; i++)
        tu_step(&r, (int)tst_below(&r.rng, TU_POOL), 2.0);
    ck_assert_uint_eq(o->switches, 1);
    ck_assert_uint_gt(o->epoch, epoch0 + 1);

    /* the unit block (dlsched-checkpoint(5)): after the visits (offset 320,
       2 bytes per region and action: 1 x 2 here) and the open blocks' head
       (their number, 0 with guard_block 1, and a 0), the section's last
       1072 bytes: mark 1 (offset 0), stage (4), the epoch's salt (8), per
       slot its outcomes (a whole number) and their reward sum (16), the
       arms' lowest rewards (1040, 1048) and ticketed decisions (1056, 1064;
       whole numbers) */
    size_t g, gl;
    tu_guard_section(buf, len, &g, &gl);
    size_t ub = g + 320 + 2 * 2 + 8, so = ub + 16, ro = ub + 1040, dd = ub + 1056;
    ck_assert_uint_eq(tu_rd32(buf + ub - 8), 0);
    ck_assert_uint_eq(g + gl - ub, 1072);
    ck_assert_uint_eq(tu_rd32(buf + ub), 1);
    ck_assert_uint_eq(tu_rd32(buf + ub + 4), 1);
    ck_assert_uint_eq(tu_rd64(buf + ub + 8),
                      tu_mix64(11 ^ 0x9e3779b97f4a7c15ull * (at.guard_epoch + 1)));
    double total = 0, v;
    for (int s = 0; s < TU_SLOTS; s++) {
        memcpy(&v, buf + so + 16 * (size_t)s, 8);
        ck_assert(v >= 0 && v == floor(v));
        total += v;
    }
    ck_assert_double_eq(total, (double)(at.guard_samples_learned + at.guard_samples_incumbent));
    for (int a = 0; a < 2; a++) {
        memcpy(&v, buf + dd + 8 * (size_t)a, 8);
        ck_assert(v >= 0 && v == floor(v));
    }
    /* unchanged, with its CRC recomputed: loads */
    uint32_t u32 = 1;
    unsigned char *p = tu_patch(buf, len, ub, &u32, 4);
    ck_assert_int_eq(tu_load_rc(p, len, NULL, NULL), DLSCHED_OK);
    free(p);
    /* stage 0 and 2 are valid (the same epoch goes on) */
    for (u32 = 0; u32 <= 2; u32 += 2) {
        p = tu_patch(buf, len, ub + 4, &u32, 4);
        dlsched_agent *s2 = tu_load(p, len, NULL);
        ck_assert_uint_eq(tst_stats(s2).guard_epoch, at.guard_epoch);
        dlsched_agent_free(s2);
        free(p);
    }
    /* corrupt: stage 3 or more; another mark; a negative, NaN or infinite
       count; a NaN or infinite sum; a NaN or -inf lowest reward; negative,
       NaN or infinite decisions; stage 1 while the learned policy leads */
    static const uint32_t bad_stage[3] = {3, 7, UINT32_MAX};
    for (int i = 0; i < 3; i++)
        tu_expect_eformat(buf, len, ub + 4, &bad_stage[i], 4, "stage > 2");
    static const uint32_t bad_mark[2] = {0, 2};
    for (int i = 0; i < 2; i++)
        tu_expect_eformat(buf, len, ub, &bad_mark[i], 4, "mark");
    const double dneg = -1, dnan = NAN, dinf = INFINITY, dminf = -INFINITY;
    for (int s = 0; s < TU_SLOTS; s += 21) {
        size_t co = so + 16 * (size_t)s;
        tu_expect_eformat(buf, len, co, &dneg, 8, "count < 0");
        tu_expect_eformat(buf, len, co, &dnan, 8, "count NaN");
        tu_expect_eformat(buf, len, co, &dinf, 8, "count infinite");
        tu_expect_eformat(buf, len, co + 8, &dnan, 8, "sum NaN");
        tu_expect_eformat(buf, len, co + 8, &dinf, 8, "sum infinite");
    }
    for (int a = 0; a < 2; a++) {
        size_t o1 = ro + 8 * (size_t)a, o2 = dd + 8 * (size_t)a;
        tu_expect_eformat(buf, len, o1, &dnan, 8, "lowest reward NaN");
        tu_expect_eformat(buf, len, o1, &dminf, 8, "lowest reward -inf");
        tu_expect_eformat(buf, len, o2, &dneg, 8, "decisions < 0");
        tu_expect_eformat(buf, len, o2, &dnan, 8, "decisions NaN");
        tu_expect_eformat(buf, len, o2, &dinf, 8, "decisions infinite");
    }
    u32 = DLSCHED_GUARD_LEARNED; /* the guard's state: the section's first field */
    tu_expect_eformat(buf, len, g, &u32, 4, "stage 1 while the learned policy leads");
    /* truncated: the section without its last 8 bytes */
    {
        size_t tl = len - 8;
        unsigned char *tb = malloc(tl);
        ck_assert_ptr_nonnull(tb);
        memcpy(tb, buf, g + gl - 8);
        memcpy(tb + g + gl - 8, buf + g + gl, len - (g + gl));
        tu_wr64(tb + g - 8, (uint64_t)(gl - 8));
        tu_fix(tb, tl);
        int rc = tu_load_rc(tb, tl, NULL, NULL);
        ck_assert_msg(rc == DLSCHED_EFORMAT, "truncated unit block: %d", rc);
        free(tb);
    }

    /* key -> decision: a new epoch, the statistics afresh, the state kept */
    dlsched_agent *dec = tu_load(buf, len, "guard_unit=decision");
    dlsched_stats_t ds = tst_stats(dec);
    ck_assert_uint_eq(ds.guard_epoch, at.guard_epoch + 1);
    ck_assert_uint_eq(ds.guard_state, at.guard_state);
    ck_assert_uint_eq(ds.guard_samples_learned + ds.guard_samples_incumbent, 0);
    for (int i = 0; i < 200; i++) {
        dlsched_decision_t d = tu_act(dec, r.unit[i], 0, 0);
        tst_observe1(dec, d.ticket, d.action ? 2.0 : 0.0);
    }
    ck_assert_uint_eq(tst_stats(dec).guard_decisions, ds.guard_decisions + 200);
    dlsched_agent_free(dec);
    /* key -> key: the same epoch */
    dlsched_agent *same = tu_load(buf, len, "guard_unit=key");
    ck_assert_uint_eq(tst_stats(same).guard_epoch, at.guard_epoch);
    dlsched_agent_free(same);
    /* another seed (an override): the salt is drawn from it, so the saved
       slots' outcomes no longer fit the arms: a new epoch (the stage
       kept), its arms that seed's draw */
    dlsched_agent *os = tu_load(buf, len, "seed=99");
    dlsched_stats_t oss = tst_stats(os);
    ck_assert_uint_eq(oss.guard_epoch, at.guard_epoch + 1);
    ck_assert_uint_eq(oss.guard_samples_learned + oss.guard_samples_incumbent, 0);
    tu_check_arms(os, r.unit, TU_POOL, 99, 0.1, oss.guard_epoch, oss.guard_state, 1,
                  "seed override");
    dlsched_agent_free(os);
    /* decision -> key: a new epoch, drawn as documented for it (stage 0) */
    dlsched_agent *da = tu_agent("decision", 0.1, 0.2, 5, 4, 65536, 11);
    uint64_t rng = 77;
    for (int i = 0; i < 700; i++) {
        dlsched_decision_t d = tu_act(da, 0, 0, 0);
        tst_observe1(da, d.ticket, 2.0 * d.action + tst_normal(&rng));
    }
    dlsched_stats_t dst = tst_stats(da);
    ck_assert_uint_gt(dst.guard_epoch, 0);
    void *lb = NULL;
    size_t ll = 0;
    ck_assert_int_eq(dlsched_save_buffer(da, &lb, &ll), DLSCHED_OK);
    dlsched_agent *k = tu_load(lb, ll, "guard_unit=key");
    dlsched_stats_t ks = tst_stats(k);
    ck_assert_uint_eq(ks.guard_epoch, dst.guard_epoch + 1);
    ck_assert_uint_eq(ks.guard_state, dst.guard_state);
    ck_assert_uint_eq(ks.guard_samples_learned + ks.guard_samples_incumbent, 0);
    tu_check_arms(k, r.unit, TU_POOL, 11, 0.1, ks.guard_epoch, ks.guard_state, 0, "decision -> key");
    dlsched_agent_free(k);
    dlsched_buffer_free(lb);
    dlsched_agent_free(da);
    fprintf(stderr, "check_guard (units, checkpoint): saved at decision %llu (epoch %llu, stage "
                    "1), continued %llu decisions to the switch and past it\n",
            (unsigned long long)t0, (unsigned long long)at.guard_epoch,
            (unsigned long long)(r.t - t0));
    free(buf);
    tu_run_free(&r);
}
END_TEST

/* the draw at epoch 0, per guard_share: m = ceil(64 share) slots, at least 2,
   for the learned policy (the incumbent leads); every unit of 400 takes
   its slot's arm */
START_TEST(test_unit_slots_per_share)
{
    static const struct {
        double share;
        uint32_t m;
    } cases[] = {{0.001, 2}, {0.01, 2}, {0.03, 2}, {0.05, 4}, {0.1, 7}, {0.3, 20}, {0.5, 32}};
    uint64_t rng = 7700, units[400];
    for (int i = 0; i < 400; i++)
        units[i] = tst_next(&rng);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint64_t seed = 70 + c;
        tu_oracle o;
        tu_oracle_init(&o, seed, cases[c].share, 0.2, 5, 4);
        ck_assert_uint_eq(o.nl, cases[c].m);
        dlsched_agent *ag = tu_agent("key", cases[c].share, 0.2, 5, 4, 65536, seed);
        char what[64];
        snprintf(what, sizeof what, "guard_share %g", cases[c].share);
        tu_check_arms(ag, units, 400, seed, cases[c].share, 0, DLSCHED_GUARD_INCUMBENT, 0, what);
        /* the learned arm's share of the decisions: about m / 64 */
        uint64_t nl = tst_stats(ag).guard_by_learned;
        ck_assert_msg(fabs(nl / 400.0 - cases[c].m / 64.0) < 4 * sqrt(cases[c].m / 64.0 / 400) + 0.01,
                      "%s: %llu of 400 decisions by the learned arm", what, (unsigned long long)nl);
        dlsched_agent_free(ag);
    }
}
END_TEST

TCase *tcase_guard_units(void)
{
    TCase *tc = tcase_create("units");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_unit_t_quantile);
    tcase_add_test(tc, test_unit_oracle_ramp_switch);
    tcase_add_test(tc, test_unit_oracle_ramp_falls_back);
    tcase_add_test(tc, test_unit_oracle_last_test_wins);
    tcase_add_test(tc, test_unit_slots_per_share);
    tcase_add_test(tc, test_unit_one_arm_per_epoch);
    tcase_add_test(tc, test_unit_incumbent_never_explores);
    tcase_add_test(tc, test_unit_share0_no_experiment);
    tcase_add_test(tc, test_unit_ignored_where_documented);
    tcase_add_test(tc, test_unit_greedy_follows_leader);
    tcase_add_test(tc, test_unit_bad_input);
    tcase_add_test(tc, test_unit_checkpoint);
    return tc;
}
