/*
 * guard.c - the safe-improvement guard (see guard.h and dlsched(7), GUARD)
 *
 * Statistics, per epoch and arm A in {incumbent, learned}: n_A outcomes of
 * disagreement decisions taken by A, their mean m_A and unbiased variance
 * v_A. The advantage of the learned policy per disagreement and its
 * standard error:
 *   d = m_L - m_I,  se = sqrt(v_L / n_L + v_I / n_I)
 * The k-th test (k = 0, 1, ...) runs when min(n_L, n_I) reaches
 * guard_min_samples * 2^k, with z_k = Phi^-1(1 - risk / ((k + 1)(k + 2))):
 *   incumbent in charge: switch to the learned policy when d - z_k se > 0
 *   learned in charge:   fall back to the incumbent when d + z_k se < 0
 * A switch, a fallback, or the last of guard_tests tests starts a new
 * epoch (fresh statistics, k = 0): the policy being measured keeps
 * changing as it learns, and the world may drift.
 *
 * guard_unit = key: arm A's outcomes come from its slots s (see guard.h),
 * n_s outcomes with reward sum y_s; m_A = sum y_s / sum n_s and, over the
 * G_A slots of A with outcomes (CR1, the cluster-robust variance of a
 * ratio mean):
 *   v(m_A) = G_A / (G_A - 1) sum_s (y_s - m_A n_s)^2 / (sum n_s)^2
 *   d = m_L - m_I,  se = sqrt(v(m_L) + v(m_I))
 * tested as above with z_k replaced by Student's t quantile at the same
 * level with the Welch-Satterthwaite degrees of freedom
 *   (v_L + v_I)^2 / (v_L^2 / (G_L - 1) + v_I^2 / (G_I - 1)),
 * once both arms have outcomes in at least 2 slots.
 */
#include "guard.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "config.h"

/* a ticket's tag (32 bits): arm (2 bits), guarded (1), leader learned at
   the decision (1), then per design: single decisions: the epoch (28
   bits); switchback: ring slot (6), counted (1), block number (21) */
#define DLS_TAG_GUARDED 4u
#define DLS_TAG_LED_L 8u
#define DLS_EPOCH_MASK 0x0fffffffu
#define DLS_BLK_MASK 0x1fffffu
/* guard_unit = key: the unevenness check's runs of decisions (at least) */
#define DLS_GUARD_RUN 64
/* guard_unit = key: slot (6 bits from bit 4), epoch (22 bits from bit 10) */
#define DLS_UEPOCH_MASK 0x3fffffu
/* the unit block at the end of the guard section: u32 1, u32 stage, u64
   salt, per slot f64 outcomes and f64 reward sum, f64 x 2 lowest rewards
   (incumbent, learned), f64 x 2 decisions (incumbent, learned) */
#define DLS_GUARD_UNIT_BLOCK (4 + 4 + 8 + DLS_GUARD_UNITS * 16 + 16 + 16)
/* the standardiser's horizon: exact mean and variance over the first N
   states, then exponential */
#define DLS_NORM_HORIZON 10000

/* Phi^-1(p) for p in (0.5, 1): bisection on Phi(z) = erfc(-z / sqrt 2) / 2 */
static double dls_norm_quantile(double p)
{
    double lo = 0, hi = 40;
    for (int i = 0; i < 200; i++) {
        double mid = 0.5 * (lo + hi);
        if (0.5 * erfc(-mid / sqrt(2.0)) < p)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

/* the regularised incomplete beta function I_x(a, b) by its continued
   fraction (Lentz's method), for the t distribution's tail */
static double dls_betacf(double a, double b, double x)
{
    const double tiny = 1e-300;
    double qab = a + b, qap = a + 1, qam = a - 1, c = 1, d = 1 - qab * x / qap;
    d = fabs(d) < tiny ? tiny : d;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 300; m++) {
        double m2 = 2.0 * m, aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1 + aa * d;
        d = fabs(d) < tiny ? tiny : d;
        c = 1 + aa / c;
        c = fabs(c) < tiny ? tiny : c;
        d = 1 / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1 + aa * d;
        d = fabs(d) < tiny ? tiny : d;
        c = 1 + aa / c;
        c = fabs(c) < tiny ? tiny : c;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-15)
            break;
    }
    return h;
}

static double dls_ibeta(double a, double b, double x)
{
    if (x <= 0)
        return 0;
    if (x >= 1)
        return 1;
    double lbt = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    if (x < (a + 1) / (a + b + 2))
        return exp(lbt) * dls_betacf(a, b, x) / a;
    return 1 - exp(lbt) * dls_betacf(b, a, 1 - x) / b;
}

/* P(T > t) for t >= 0: I_{df / (df + t^2)}(df / 2, 1 / 2) / 2 */
static double dls_t_upper(double t, double df)
{
    return 0.5 * dls_ibeta(df / 2, 0.5, df / (df + t * t));
}

double dls_t_quantile(double p, double df)
{
    double q = 1 - p, lo = 0, hi = 1;
    while (dls_t_upper(hi, df) > q && hi < 1e300)
        hi *= 2;
    for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
        double mid = 0.5 * (lo + hi);
        if (dls_t_upper(mid, df) > q)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

static inline int dls_leader_learned(const dls_guard *g);

/* guard_unit = key: the epoch's salt, the non-leader's slots (the nl_slots
   with the smallest hashes under the salt), fresh per-slot statistics */
static void dls_guard_units_draw(dls_guard *g)
{
    g->salt = dls_mix64(g->seed ^ 0x9e3779b97f4a7c15ull * (g->epoch + 1));
    uint32_t m = 0;
    if (g->share > 0) {
        m = (uint32_t)ceil(g->share * DLS_GUARD_UNITS);
        m = m < 2 ? 2 : m;
        /* the ramp while the incumbent leads: a quarter, then half of the
           slots to the learned policy; while it leads, the incumbent keeps
           a quarter (the fallback's test needs as many units as the
           switch's had) */
        uint32_t ramp = dls_leader_learned(g) ? DLS_GUARD_UNITS / 4
                        : g->stage == 1       ? DLS_GUARD_UNITS / 4
                        : g->stage == 2       ? DLS_GUARD_UNITS / 2
                                              : 0;
        m = m < ramp ? ramp : m;
    }
    uint64_t h[DLS_GUARD_UNITS], mask = 0;
    for (uint32_t i = 0; i < DLS_GUARD_UNITS; i++)
        h[i] = dls_mix64(g->salt + 0x632be59bd9b4e019ull * (i + 1));
    for (uint32_t j = 0; j < m; j++) {
        int best = -1;
        for (uint32_t i = 0; i < DLS_GUARD_UNITS; i++)
            if (!(mask >> i & 1) && (best < 0 || h[i] < h[best]))
                best = (int)i;
        mask |= 1ull << best;
    }
    g->nl_slots = m;
    g->nl_mask = mask;
    memset(g->un, 0, sizeof g->un);
    memset(g->usum, 0, sizeof g->usum);
    memset(g->ud, 0, sizeof g->ud);
    for (int a = 0; a < 3; a++)
        g->rmin[a] = INFINITY;
}

static inline uint32_t dls_unit_slot(const dls_guard *g, uint64_t unit)
{
    return (uint32_t)(dls_mix64(unit ^ g->salt) & (DLS_GUARD_UNITS - 1));
}

/* the arm slot s belongs to this epoch: the non-leader's slots (nl_mask)
   and the leader's */
static inline uint32_t dls_slot_arm(const dls_guard *g, uint32_t s)
{
    int nonleader = (int)(g->nl_mask >> s & 1);
    return dls_leader_learned(g) != nonleader ? DLS_ARM_LEARNED : DLS_ARM_INCUMBENT;
}

int dls_guard_init(dls_guard *g, const struct dlsched_config *cfg, int is_dqn, uint32_t nf,
                   uint32_t na, uint64_t n_states)
{
    memset(g, 0, sizeof *g);
    g->enabled = dls_config_int(cfg, DLS_KEY_GUARD) != 0;
    g->is_dqn = is_dqn;
    g->nf = nf;
    g->na = na;
    g->share = dls_config_float(cfg, DLS_KEY_GUARD_SHARE);
    g->risk = dls_config_float(cfg, DLS_KEY_GUARD_RISK);
    g->min_samples = (uint64_t)dls_config_int(cfg, DLS_KEY_GUARD_MIN_SAMPLES);
    g->tests = (uint32_t)dls_config_int(cfg, DLS_KEY_GUARD_TESTS);
    g->min_visits = (uint32_t)dls_config_int(cfg, DLS_KEY_GUARD_MIN_VISITS);
    g->bits = (uint32_t)dls_config_int(cfg, DLS_KEY_GUARD_HASH_BITS);
    g->block_len = (uint64_t)dls_config_int(cfg, DLS_KEY_GUARD_BLOCK);
    g->by_key = dls_config_int(cfg, DLS_KEY_GUARD_UNIT) == 1;
    g->seed = (uint64_t)dls_config_int(cfg, DLS_KEY_SEED);
    g->burn = g->block_len >= 4 ? g->block_len / 4 : 0;
    g->state = g->enabled ? DLSCHED_GUARD_INCUMBENT : DLSCHED_GUARD_OFF;
    for (uint32_t k = 0; k < g->tests; k++)
        g->z[k] = dls_norm_quantile(1.0 - g->risk / ((double)(k + 1) * (double)(k + 2)));
    g->last_lo = -INFINITY;
    g->last_hi = INFINITY;
    if (!g->enabled)
        return DLSCHED_OK;
    dls_guard_units_draw(g);
    g->n_regions = is_dqn ? (uint64_t)1 << g->bits : n_states;
    DLS_FAIL_IF(g->n_regions > SIZE_MAX / sizeof(uint16_t) / na, DLSCHED_ENOMEM,
                "out of memory for the guard's counts (%llu regions x %u actions)",
                (unsigned long long)g->n_regions, na);
    g->visits = calloc((size_t)g->n_regions * na, sizeof *g->visits);
    DLS_FAIL_IF(!g->visits, DLSCHED_ENOMEM,
                "out of memory for the guard's counts (%llu regions x %u actions; guard=0 "
                "turns the guard off)",
                (unsigned long long)g->n_regions, na);
    g->bytes = (size_t)g->n_regions * na * sizeof *g->visits;
    if (is_dqn) {
        g->proj = malloc((size_t)g->bits * nf * sizeof *g->proj);
        g->mean = calloc(nf, sizeof *g->mean);
        g->m2 = calloc(nf, sizeof *g->m2);
        g->mean_f = calloc(nf, sizeof *g->mean_f);
        g->isd = calloc(nf, sizeof *g->isd);
        DLS_FAIL_IF(!g->proj || !g->mean || !g->m2 || !g->mean_f || !g->isd, DLSCHED_ENOMEM,
                    "out of memory for the guard's hash");
        g->bytes += (size_t)g->bits * nf * sizeof *g->proj + 2 * nf * sizeof(double) +
                    2 * nf * sizeof(float);
        /* +-1 entries from a generator of their own: the agent's RNG stream
           stays what it was without the guard */
        dls_rng r;
        dls_rng_seed(&r, (uint64_t)dls_config_int(cfg, DLS_KEY_SEED) ^ 0x6a09e667f3bcc909ull);
        for (size_t i = 0; i < (size_t)g->bits * nf; i++)
            g->proj[i] = (dls_rng_next(&r) >> 63) ? 1.0f : -1.0f;
    }
    return DLSCHED_OK;
}

void dls_guard_free(dls_guard *g)
{
    free(g->visits);
    free(g->proj);
    free(g->mean);
    free(g->m2);
    free(g->mean_f);
    free(g->isd);
    g->visits = NULL;
    g->proj = g->mean_f = g->isd = NULL;
    g->mean = g->m2 = NULL;
}

uint64_t dls_guard_region(const dls_guard *g, const void *key, const float *features)
{
    if (!g->is_dqn) {
        uint64_t s;
        memcpy(&s, key, sizeof s);
        return s;
    }
    if (g->n_norm < 2)
        return 0;
    /* bit j = [ sum_i p_ij (x_i - mean_i) / sd_i > 0 ]   (SimHash); p is
       nf x bits so the inner loop runs over the bits */
    float acc[DLS_GUARD_MAX_BITS] = {0};
    for (uint32_t i = 0; i < g->nf; i++) {
        float xc = (features[i] - g->mean_f[i]) * g->isd[i];
        const float *p = g->proj + (size_t)i * g->bits;
        for (uint32_t j = 0; j < g->bits; j++)
            acc[j] += p[j] * xc;
    }
    uint64_t h = 0;
    for (uint32_t j = 0; j < g->bits; j++)
        h |= (uint64_t)(acc[j] > 0) << j;
    return h;
}

static inline int dls_supported(const dls_guard *g, uint64_t region, int32_t a)
{
    return g->visits[region * g->na + (uint64_t)a] >= g->min_visits;
}

static inline int dls_leader_learned(const dls_guard *g)
{
    return g->state == DLSCHED_GUARD_LEARNED;
}

/* P(a) under the guarded behaviour policy. T = the allowed maxima of q (m of
   them), g(t) = t when t is the hint or supported, else the hint; a chosen
   t with g(t) != hint is taken with probability pl, else the hint:
     egreedy, hint: P(a) = eps P_explore(a) + (1 - eps) / m sum_t M(t -> a)
     softmax:       P(a) = [a not in T] sm(a) + sm_max sum_t M(t -> a)
   c carries qmax, the first maximum, m, k and z from dls_choose. */
static inline double dls_guard_mass1(const dls_guard *g, int32_t t, int32_t hint,
                                     uint64_t region, double pl, int all, int32_t a)
{
    int32_t gt = (t == hint || all || dls_supported(g, region, t)) ? t : hint;
    if (gt == hint)
        return a == hint;
    return a == gt ? pl : (a == hint ? 1 - pl : 0);
}

static float dls_guard_prob(const dls_guard *g, const float *q, const uint8_t *mask, int mode,
                            double eps, double temperature, int32_t hint, uint64_t region,
                            double pl, int all, const dls_choice *c, int32_t a)
{
    double mass; /* sum over ties of M(t -> a) */
    if (c->m == 1) {
        mass = dls_guard_mass1(g, c->amax, hint, region, pl, all, a);
    } else {
        mass = 0;
        for (uint32_t t = 0; t < g->na; t++)
            if ((!mask || mask[t]) && q[t] == c->qmax)
                mass += dls_guard_mass1(g, (int32_t)t, hint, region, pl, all, a);
    }
    double p;
    if (mode == DLS_EXPLORE_SOFTMAX) {
        p = (q[a] != c->qmax ? exp(((double)q[a] - c->qmax) / temperature) / c->z : 0) +
            mass / c->z;
    } else {
        double pe = mode == DLS_EXPLORE_HINT ? (a == hint) : 1.0 / c->k;
        p = eps * pe + (1 - eps) * mass / c->m;
    }
    return (float)p;
}

static void dls_guard_test(dls_guard *g);
static void dls_guard_new_epoch(dls_guard *g);
static void dls_regime_reset(dls_regime *r);

static inline uint64_t dls_pair_of(uint64_t blk) { return blk >> 1; }

/* the experiment's share: guard_share, or an eighth of it while the
   incumbent leads and this epoch's last test estimated the learned policy
   worse (its advantage below zero): measuring a policy that looks worse
   costs, and the epoch's next start gives it its full share again */
static double dls_guard_share(const dls_guard *g)
{
    int cautious = !dls_leader_learned(g) && g->k > 0 && g->last_adv < 0;
    return cautious ? g->share / 8 : g->share;
}

/* the pair's two blocks, when both are tracked, closed and resolved, give
   one difference: value(learned block) - value(incumbent block) */
static void dls_guard_pair_done(dls_guard *g, dls_gblock *x, dls_gblock *y)
{
    if (x->count > 0 && y->count > 0) {
        const dls_gblock *bl = x->arm == DLS_ARM_LEARNED ? x : y, *bi = bl == x ? y : x;
        double vl = bl->sum / bl->count, vi = bi->sum / bi->count, d = vl - vi;
        g->n[DLS_ARM_LEARNED] += 1;
        g->n[DLS_ARM_INCUMBENT] += 1;
        g->sum[DLS_ARM_LEARNED] += vl;
        g->sum[DLS_ARM_INCUMBENT] += vi;
        g->sumsq[DLS_ARM_LEARNED] += vl * vl;
        g->sumsq[DLS_ARM_INCUMBENT] += vi * vi;
        g->dsum += d;
        g->dsumsq += d * d;
    } else {
        g->dropped++;
    }
    x->id = y->id = 0;
    if (g->n[DLS_ARM_LEARNED] >= (double)g->min_samples * ldexp(1.0, (int)g->k))
        dls_guard_test(g);
}

static void dls_guard_try_pair(dls_guard *g, uint64_t blk)
{
    uint64_t b0 = dls_pair_of(blk) << 1;
    dls_gblock *x = &g->ring[b0 % DLS_GUARD_RING], *y = &g->ring[(b0 + 1) % DLS_GUARD_RING];
    if (x->id != b0 + 1 || y->id != b0 + 2 || !x->closed || !y->closed ||
        x->resolved < x->issued || y->resolved < y->issued)
        return;
    dls_guard_pair_done(g, x, y);
}

/* the ring needs the slot of a pair still waiting for outcomes (tickets
   pending for 64 blocks: an overloaded system): its pending tickets count
   as the lowest reward the pair has seen (dropping them would hide the
   slowest, worst outcomes); with no reward seen, or half a pair, the pair
   is dropped */
static void dls_guard_force_pair(dls_guard *g, uint64_t blk)
{
    uint64_t b0 = dls_pair_of(blk) << 1;
    dls_gblock *x = &g->ring[b0 % DLS_GUARD_RING], *y = &g->ring[(b0 + 1) % DLS_GUARD_RING];
    int hx = x->id == b0 + 1, hy = y->id == b0 + 2;
    if (!hx || !hy) {
        if (hx)
            x->id = 0;
        if (hy)
            y->id = 0;
        g->dropped++;
        return;
    }
    float worst = x->rmin < y->rmin ? x->rmin : y->rmin;
    if (!isfinite(worst)) {
        x->id = y->id = 0;
        g->dropped++;
        return;
    }
    dls_gblock *b[2] = {x, y};
    for (int i = 0; i < 2; i++) {
        uint32_t left = b[i]->issued - b[i]->resolved;
        b[i]->sum += (double)left * worst;
        b[i]->count += left;
        b[i]->resolved = b[i]->issued;
    }
    dls_guard_pair_done(g, x, y);
}

/* switchback: the block bookkeeping of one ticketed guarded decision;
   returns the block's arm (DLS_ARM_NONE: the policy in charge decides) */
static uint32_t dls_guard_block_step(dls_guard *g, dls_rng *rng, uint32_t *tag)
{
    if (g->pos == 0) {
        if (g->blk > 0) { /* the previous block is complete */
            dls_gblock *p = &g->ring[(g->blk - 1) % DLS_GUARD_RING];
            if (p->id == g->blk) {
                p->closed = 1;
                dls_guard_try_pair(g, g->blk - 1);
            }
        }
        if ((g->blk & 1) == 0) {
            /* a pair starts: an experiment with probability 2 (1 + TAIL)
               share (the policy not in charge decides B of its
               2 (1 + tail) B decisions) */
            double pe = 2.0 * (1 + DLS_GUARD_TAIL) * dls_guard_share(g);
            pe = pe < 1 ? pe : 1;
            if (dls_rng_uniform(rng) < pe) {
                int l_first = dls_rng_uniform(rng) < 0.5;
                g->blk_arm = l_first ? DLS_ARM_LEARNED : DLS_ARM_INCUMBENT;
                g->second_arm = l_first ? DLS_ARM_INCUMBENT : DLS_ARM_LEARNED;
            } else {
                g->blk_arm = g->second_arm = DLS_ARM_NONE;
            }
        } else {
            /* the second block, if its pair's first is still open (a new
               epoch or a load may have ended the pair) */
            g->blk_arm = g->ring[(g->blk - 1) % DLS_GUARD_RING].id == g->blk ? g->second_arm
                                                                            : DLS_ARM_NONE;
        }
        if (g->blk_arm != DLS_ARM_NONE) {
            dls_gblock *b = &g->ring[g->blk % DLS_GUARD_RING];
            if (b->id != 0) /* a pair still waiting for outcomes */
                dls_guard_force_pair(g, b->id - 1);
            memset(b, 0, sizeof *b);
            b->id = g->blk + 1;
            b->arm = g->blk_arm;
            b->rmin = INFINITY;
        }
    }
    /* a block is B decisions by its arm, then DLS_GUARD_TAIL B by the
       policy in charge (its tail: where the block's effect on later
       outcomes shows, counted with the block) */
    uint32_t arm = g->blk_arm;
    dls_gblock *b = &g->ring[g->blk % DLS_GUARD_RING];
    *tag = 0;
    if (arm != DLS_ARM_NONE && b->id == g->blk + 1) {
        b->issued++;
        *tag = arm | (uint32_t)(g->blk % DLS_GUARD_RING) << 4 |
               (uint32_t)(g->pos >= g->burn) << 10 | (uint32_t)(g->blk & DLS_BLK_MASK) << 11;
    }
    uint32_t decides = g->pos < g->block_len ? arm : DLS_ARM_NONE;
    if (++g->pos == (1 + DLS_GUARD_TAIL) * g->block_len) {
        g->pos = 0;
        g->blk++;
    }
    return decides;
}

/* the block a switchback tag names, if it is still open */
static dls_gblock *dls_guard_tag_block(dls_guard *g, uint32_t tag)
{
    dls_gblock *b = &g->ring[(tag >> 4) & (DLS_GUARD_RING - 1)];
    if (b->id == 0 || ((b->id - 1) & DLS_BLK_MASK) != tag >> 11)
        return NULL;
    return b;
}

static void dls_guard_unit_outcome(dls_guard *g, uint32_t tag, double reward);

void dls_guard_expired(dls_guard *g, uint32_t tag)
{
    if (g->by_key) {
        /* counted as the lowest reward its arm has seen in the epoch
           (dropping it would hide the slowest outcomes); none seen: dropped */
        uint32_t arm = tag & 3u;
        if (arm != DLS_ARM_NONE && isfinite(g->rmin[arm]))
            dls_guard_unit_outcome(g, tag, g->rmin[arm]);
        return;
    }
    if (g->block_len <= 1 || (tag & 3u) == DLS_ARM_NONE)
        return;
    dls_gblock *b = dls_guard_tag_block(g, tag);
    if (b) {
        b->resolved++;
        dls_guard_try_pair(g, b->id - 1);
    }
}

/* guard_unit = key: a ticketed decision of unit `unit`, taken by its
   slot's arm */
static uint32_t dls_guard_decide_unit(dls_guard *g, const float *q, const uint8_t *mask,
                                      int mode, double eps, double temperature, int32_t hint,
                                      uint64_t region, uint64_t unit, dls_choice *c)
{
    int learned = dls_leader_learned(g);
    uint32_t slot = dls_unit_slot(g, unit);
    uint32_t arm = dls_slot_arm(g, slot);
    uint32_t nl_arm = learned ? DLS_ARM_INCUMBENT : DLS_ARM_LEARNED;
    int explored = (c->flags & DLSCHED_DECISION_EXPLORED) != 0;
    uint32_t tag = arm | DLS_TAG_GUARDED | (learned ? DLS_TAG_LED_L : 0) | slot << 4 |
                   (uint32_t)(g->epoch & DLS_UEPOCH_MASK) << 10;
    /* units too uneven for this draw (one unit with most of the traffic
       drew the non-leader's slots): in each run of DLS_GUARD_RUN (or
       guard_min_samples, if more) decisions, a non-leader's share past
       halfway between its share of the slots and all of them starts
       another draw (this decision still goes as drawn, in the old epoch);
       runs that long seldom cross that line by chance with even units (at
       half the slots, 49 of 64 or more: p < 1e-4) */
    g->ud[arm] += 1;
    double total = g->ud[DLS_ARM_LEARNED] + g->ud[DLS_ARM_INCUMBENT];
    if (total >= (double)(g->min_samples > DLS_GUARD_RUN ? g->min_samples : DLS_GUARD_RUN)) {
        int uneven = g->nl_slots && g->ud[nl_arm] >
                                        total * ((double)g->nl_slots / DLS_GUARD_UNITS + 1) / 2;
        g->ud[DLS_ARM_LEARNED] = g->ud[DLS_ARM_INCUMBENT] = 0;
        if (uneven)
            dls_guard_new_epoch(g);
    }
    if (arm == DLS_ARM_INCUMBENT) {
        /* the incumbent as it runs alone: its choice, no exploration */
        g->decisions++;
        if (!explored && c->action == hint)
            g->agreed++;
        else
            g->by_incumbent++;
        c->action = hint;
        c->flags = DLSCHED_DECISION_INCUMBENT;
        c->probability = 1.0f;
        return tag;
    }
    /* the experiment's arm while the incumbent leads is measured as a
       whole: its choices need no support there (the units it holds are the
       experiment's risk); the learned policy in charge keeps the
       incumbent's choice where its own lacks support */
    int all = !learned;
    if (!explored) {
        g->decisions++;
        if (c->action == hint) {
            g->agreed++;
        } else if (!all && !dls_supported(g, region, c->action)) {
            g->unsupported++;
            c->action = hint;
            c->flags |= DLSCHED_DECISION_INCUMBENT;
        } else {
            g->by_learned++;
        }
    }
    c->probability = dls_guard_prob(g, q, mask, mode, eps, temperature, hint, region, 1.0, all,
                                    c, c->action);
    return tag;
}

uint32_t dls_guard_decide(dls_guard *g, const float *q, const uint8_t *mask, int mode,
                          double eps, double temperature, int32_t hint, uint64_t region,
                          uint64_t unit, int greedy, dls_rng *rng, dls_choice *c)
{
    if (g->by_key && !greedy)
        return dls_guard_decide_unit(g, q, mask, mode, eps, temperature, hint, region, unit, c);
    int learned = dls_leader_learned(g);
    uint32_t tag = 0, block_arm = DLS_ARM_NONE;
    int switchback = g->block_len > 1 && !greedy;
    if (switchback)
        block_arm = dls_guard_block_step(g, rng, &tag);
    /* the chance that a supported disagreement goes to the learned policy */
    double pl;
    if (greedy)
        pl = learned;
    else if (switchback)
        pl = block_arm == DLS_ARM_NONE ? learned : block_arm == DLS_ARM_LEARNED;
    else
        pl = learned ? 1 - g->share : dls_guard_share(g);
    uint32_t arm = DLS_ARM_NONE;
    if (greedy) {
        mode = -1;
        eps = 0;
    }
    if (!(c->flags & DLSCHED_DECISION_EXPLORED)) {
        int32_t a = c->action;
        g->decisions++;
        if (a == hint) {
            g->agreed++;
            if (!learned)
                c->flags |= DLSCHED_DECISION_INCUMBENT;
        } else if (!dls_supported(g, region, a)) {
            g->unsupported++;
            c->action = hint;
            c->flags |= DLSCHED_DECISION_INCUMBENT;
        } else {
            /* the experiment's draw looks at nothing but the RNG */
            int learned_acts = (pl == 0 || pl == 1) ? pl == 1 : dls_rng_uniform(rng) < pl;
            if (learned_acts) {
                g->by_learned++;
                arm = DLS_ARM_LEARNED;
            } else {
                g->by_incumbent++;
                c->action = hint;
                c->flags |= DLSCHED_DECISION_INCUMBENT;
                arm = DLS_ARM_INCUMBENT;
            }
        }
    }
    c->probability =
        dls_guard_prob(g, q, mask, mode, eps, temperature, hint, region, pl, 0, c, c->action);
    if (greedy)
        return 0;
    uint32_t led = DLS_TAG_GUARDED | (learned ? DLS_TAG_LED_L : 0);
    if (switchback)
        return tag | led;
    if (arm == DLS_ARM_NONE)
        return led;
    return arm | led | (uint32_t)(g->epoch & DLS_EPOCH_MASK) << 4;
}

static void dls_guard_new_epoch(dls_guard *g)
{
    g->epoch++;
    g->k = 0;
    memset(g->n, 0, sizeof g->n);
    memset(g->sum, 0, sizeof g->sum);
    memset(g->sumsq, 0, sizeof g->sumsq);
    g->dsum = g->dsumsq = 0;
    /* pairs still open belong to the old epoch */
    for (int i = 0; i < DLS_GUARD_RING; i++)
        g->ring[i].id = 0;
    if (g->by_key)
        dls_guard_units_draw(g);
}

/* mean and unbiased variance of n samples from their sum and sum of
   squares: (sum x^2 - n mean^2) / (n - 1), floored at 0; 0 for n < 1 and
   n < 2 */
static void dls_mean_var(double n, double sum, double sumsq, double *m, double *v)
{
    *m = n > 0 ? sum / n : 0;
    *v = n > 1 ? fmax(0.0, (sumsq - n * *m * *m) / (n - 1)) : 0;
}

/* guard_unit = key: d, its cluster-robust standard error and the t
   test's degrees of freedom (0: fewer than 2 slots with outcomes in an
   arm, no test) */
static void dls_guard_estimate_units(const dls_guard *g, double *d, double *se, double *df)
{
    double m[3] = {0, 0, 0}, v[3] = {0, 0, 0}, ntot[3] = {0, 0, 0}, ytot[3] = {0, 0, 0};
    uint32_t cnt[3] = {0, 0, 0};
    for (uint32_t s = 0; s < DLS_GUARD_UNITS; s++) {
        if (!(g->un[s] > 0))
            continue;
        uint32_t a = dls_slot_arm(g, s);
        ntot[a] += g->un[s];
        ytot[a] += g->usum[s];
        cnt[a]++;
    }
    for (int a = DLS_ARM_INCUMBENT; a <= DLS_ARM_LEARNED; a++) {
        if (cnt[a] == 0)
            continue;
        m[a] = ytot[a] / ntot[a];
        double ss = 0;
        for (uint32_t s = 0; s < DLS_GUARD_UNITS; s++) {
            if (dls_slot_arm(g, s) != (uint32_t)a || !(g->un[s] > 0))
                continue;
            double e = g->usum[s] - m[a] * g->un[s];
            ss += e * e;
        }
        v[a] = cnt[a] > 1 ? (double)cnt[a] / (cnt[a] - 1) * ss / (ntot[a] * ntot[a]) : 0;
    }
    *d = m[DLS_ARM_LEARNED] - m[DLS_ARM_INCUMBENT];
    uint32_t gmin = cnt[DLS_ARM_LEARNED] < cnt[DLS_ARM_INCUMBENT] ? cnt[DLS_ARM_LEARNED]
                                                                  : cnt[DLS_ARM_INCUMBENT];
    double vs = v[DLS_ARM_LEARNED] + v[DLS_ARM_INCUMBENT];
    *se = gmin >= 2 ? sqrt(vs) : INFINITY;
    /* Welch-Satterthwaite: (vL + vI)^2 / (vL^2 / (GL - 1) + vI^2 / (GI - 1)),
       between min(G) - 1 and GL + GI - 2 (no spread at all: the smaller) */
    *df = 0;
    if (gmin >= 2) {
        double den = v[DLS_ARM_LEARNED] * v[DLS_ARM_LEARNED] / (cnt[DLS_ARM_LEARNED] - 1) +
                     v[DLS_ARM_INCUMBENT] * v[DLS_ARM_INCUMBENT] / (cnt[DLS_ARM_INCUMBENT] - 1);
        *df = den > 0 ? vs * vs / den : gmin - 1.0;
    }
}

/* the k-th test's quantile: z_k, or with guard_unit = key Student's t at
   the same level with df degrees of freedom */
static double dls_guard_quantile(const dls_guard *g, uint32_t k, double df)
{
    if (!g->by_key)
        return g->z[k];
    if (!(df > 0))
        return INFINITY;
    return dls_t_quantile(1.0 - g->risk / ((double)(k + 1) * (double)(k + 2)), df);
}

/* d, and its standard error, from this epoch's sums (df: guard_unit =
   key's t test, else 0) */
static void dls_guard_estimate(const dls_guard *g, double *d, double *se, double *df)
{
    *df = 0;
    if (g->by_key) {
        dls_guard_estimate_units(g, d, se, df);
        return;
    }
    double m[3] = {0, 0, 0}, v[3] = {0, 0, 0};
    for (int a = DLS_ARM_INCUMBENT; a <= DLS_ARM_LEARNED; a++)
        dls_mean_var(g->n[a], g->sum[a], g->sumsq[a], &m[a], &v[a]);
    *d = m[DLS_ARM_LEARNED] - m[DLS_ARM_INCUMBENT];
    if (g->block_len > 1) {
        /* paired differences: d = mean, se = sd / sqrt(n) */
        double n = g->n[DLS_ARM_LEARNED], md, vd;
        dls_mean_var(n, g->dsum, g->dsumsq, &md, &vd);
        *se = n >= 2 ? sqrt(vd / n) : INFINITY;
        return;
    }
    *se = (g->n[DLS_ARM_LEARNED] >= 1 && g->n[DLS_ARM_INCUMBENT] >= 1)
              ? sqrt(v[DLS_ARM_LEARNED] / g->n[DLS_ARM_LEARNED] +
                     v[DLS_ARM_INCUMBENT] / g->n[DLS_ARM_INCUMBENT])
              : INFINITY;
}

static void dls_guard_test(dls_guard *g)
{
    double d, se, df;
    dls_guard_estimate(g, &d, &se, &df);
    double z = dls_guard_quantile(g, g->k, df);
    g->last_adv = d;
    g->last_lo = d - z * se;
    g->last_hi = d + z * se;
    g->k++;
    if (g->by_key && !dls_leader_learned(g) && g->stage < 2 && g->last_lo > 0) {
        /* the ramp: better on a share of the units; next on more of them */
        g->stage++;
        dls_guard_new_epoch(g);
    } else if (g->by_key && !dls_leader_learned(g) && g->stage > 0 && !(g->last_lo > 0) &&
               (g->last_hi < 0 || g->k >= g->tests)) {
        /* worse on a larger share, or no verdict: back to the first step */
        g->stage = 0;
        dls_guard_new_epoch(g);
    } else if (!dls_leader_learned(g) && g->last_lo > 0) {
        g->stage = 0;
        g->state = DLSCHED_GUARD_LEARNED;
        g->switches++;
        dls_regime_reset(&g->reg_led); /* the reference reg_inc stays */
        g->reg_k = 0;
        dls_guard_new_epoch(g);
    } else if (dls_leader_learned(g) && g->last_hi < 0) {
        g->state = DLSCHED_GUARD_FALLEN_BACK;
        g->fallbacks++;
        dls_regime_reset(&g->reg_inc);
        dls_regime_reset(&g->reg_led);
        dls_guard_new_epoch(g);
    } else if (g->k >= g->tests) {
        dls_guard_new_epoch(g);
    }
}

/* the float copies the hash reads: mean and 1 / sd (0 for a constant
   feature) */
static void dls_guard_norm_publish(dls_guard *g)
{
    for (uint32_t i = 0; i < g->nf; i++) {
        g->mean_f[i] = (float)g->mean[i];
        g->isd[i] = g->m2[i] > 1e-12 ? (float)(1.0 / sqrt(g->m2[i])) : 0.0f;
    }
}

/* running mean and variance of the features: exact (Welford) over the
   first DLS_NORM_HORIZON states, then exponential */
static void dls_guard_norm(dls_guard *g, const float *x)
{
    g->n_norm++;
    double w = 1.0 / (double)(g->n_norm < DLS_NORM_HORIZON ? g->n_norm : DLS_NORM_HORIZON);
    for (uint32_t i = 0; i < g->nf; i++) {
        double dx = (double)x[i] - g->mean[i];
        g->mean[i] += w * dx;
        /* Welford: m2 holds the variance, updated as a weighted mean of
           dx * (x - new mean) */
        g->m2[i] += w * (dx * ((double)x[i] - g->mean[i]) - g->m2[i]);
    }
    dls_guard_norm_publish(g);
}

/* The regime check: the mean reward per decision while the learned policy
   leads against the same while the incumbent led before the switch, in
   batch means of DLS_REGIME_BATCH(g) outcomes (batches long enough that
   their means are nearly independent). A learned policy whose effects
   outlast the experiment's blocks (overload: queues that persist) looks
   better in the blocks than it is; this catches it. After a switch, the
   k-th check runs at 8 * 2^k batches: fall back when
     (mL - mI) + z_k sqrt(vL / nL + vI / nI) < 0. */
static uint64_t dls_regime_batch(const dls_guard *g)
{
    return g->block_len > 1 ? (1 + DLS_GUARD_TAIL) * g->block_len : 1024;
}

static void dls_regime_add(dls_regime *r, uint64_t batch, float reward)
{
    r->acc += reward;
    if (++r->in_batch < batch)
        return;
    double m = r->acc / (double)batch;
    r->n++;
    r->sum += m;
    r->sumsq += m * m;
    r->acc = 0;
    r->in_batch = 0;
}

static void dls_regime_reset(dls_regime *r)
{
    memset(r, 0, sizeof *r);
}

static void dls_regime_moments(const dls_regime *r, double *m, double *v)
{
    dls_mean_var((double)r->n, r->sum, r->sumsq, m, v);
}

static void dls_guard_regime(dls_guard *g, int led_learned, float reward)
{
    int learned = dls_leader_learned(g);
    if (led_learned != learned)
        return; /* decided under the other leader: that period is over */
    uint64_t batch = dls_regime_batch(g);
    if (!learned) {
        dls_regime_add(&g->reg_inc, batch, reward);
        /* a reference of the recent past: halved every 64 batches */
        if (g->reg_inc.n >= 64) {
            g->reg_inc.n /= 2;
            g->reg_inc.sum *= 0.5;
            g->reg_inc.sumsq *= 0.5;
        }
        return;
    }
    uint64_t before = g->reg_led.n;
    dls_regime_add(&g->reg_led, batch, reward);
    uint64_t need = (uint64_t)8 << g->reg_k;
    if (g->reg_led.n == before || g->reg_led.n < need || g->reg_inc.n < 2 ||
        g->reg_k >= g->tests)
        return;
    double ml, vl, mi, vi;
    dls_regime_moments(&g->reg_led, &ml, &vl);
    dls_regime_moments(&g->reg_inc, &mi, &vi);
    double hi = (ml - mi) + g->z[g->reg_k] * sqrt(vl / (double)g->reg_led.n +
                                                   vi / (double)g->reg_inc.n);
    g->reg_k++;
    if (hi < 0) {
        g->state = DLSCHED_GUARD_FALLEN_BACK;
        g->fallbacks++;
        g->regime_fallbacks++;
        g->last_hi = hi;
        dls_regime_reset(&g->reg_inc);
        dls_regime_reset(&g->reg_led);
        dls_guard_new_epoch(g);
    }
}

/* guard_unit = key: one outcome of a tagged decision of this epoch; a
   test when the smaller arm has guard_min_samples x 2^k outcomes and both
   have outcomes in 2 slots or more */
static void dls_guard_unit_outcome(dls_guard *g, uint32_t tag, double reward)
{
    uint32_t arm = tag & 3u;
    if (((tag >> 10) & DLS_UEPOCH_MASK) != (uint32_t)(g->epoch & DLS_UEPOCH_MASK))
        return; /* from an epoch that is over */
    uint32_t slot = (tag >> 4) & (DLS_GUARD_UNITS - 1);
    g->un[slot] += 1;
    g->usum[slot] += reward;
    g->n[arm] += 1;
    g->sum[arm] += reward;
    g->sumsq[arm] += reward * reward;
    double n_min = fmin(g->n[DLS_ARM_LEARNED], g->n[DLS_ARM_INCUMBENT]);
    double due = (double)g->min_samples * ldexp(1.0, (int)g->k);
    /* outcomes after which the non-leader's arm should have had 4 x due
       of them, had the host's units filled the slots evenly */
    double enough = g->nl_slots ? 4 * due * DLS_GUARD_UNITS / g->nl_slots : INFINITY;
    double total = g->n[DLS_ARM_LEARNED] + g->n[DLS_ARM_INCUMBENT];
    if (n_min < due && total < enough)
        return;
    double d, se, df;
    dls_guard_estimate_units(g, &d, &se, &df);
    if (df > 0) {
        if (n_min >= due)
            dls_guard_test(g);
    } else if (total >= enough) {
        /* an arm's outcomes still come from one slot or none (its other
           slots hold no unit the host uses, or the host uses one unit):
           another draw */
        dls_guard_new_epoch(g);
    }
}

void dls_guard_observe(dls_guard *g, uint32_t tag, uint64_t region, int32_t action,
                       const float *features, float reward)
{
    if (!g->enabled)
        return;
    uint16_t *v = &g->visits[region * g->na + (uint64_t)action];
    if (*v < UINT16_MAX)
        (*v)++;
    if (g->is_dqn && features)
        dls_guard_norm(g, features);
    if (tag & DLS_TAG_GUARDED)
        dls_guard_regime(g, (tag & DLS_TAG_LED_L) != 0, reward);
    uint32_t arm = tag & 3u;
    if (arm == DLS_ARM_NONE)
        return; /* not in the experiment */
    if (g->by_key) {
        if (reward < g->rmin[arm] &&
            ((tag >> 10) & DLS_UEPOCH_MASK) == (uint32_t)(g->epoch & DLS_UEPOCH_MASK))
            g->rmin[arm] = reward;
        dls_guard_unit_outcome(g, tag, reward);
        return;
    }
    if (g->block_len > 1) {
        dls_gblock *b = dls_guard_tag_block(g, tag);
        if (!b)
            return; /* its pair is over (a new epoch, or dropped) */
        b->resolved++;
        if (reward < b->rmin)
            b->rmin = reward;
        if (tag >> 10 & 1u) {
            b->sum += reward;
            b->count++;
        }
        dls_guard_try_pair(g, b->id - 1);
        return;
    }
    if ((tag >> 4) != (uint32_t)(g->epoch & DLS_EPOCH_MASK))
        return; /* from an epoch that is over */
    g->n[arm] += 1;
    g->sum[arm] += reward;
    g->sumsq[arm] += (double)reward * reward;
    double n_min = fmin(g->n[DLS_ARM_LEARNED], g->n[DLS_ARM_INCUMBENT]);
    if (n_min >= (double)g->min_samples * ldexp(1.0, (int)g->k))
        dls_guard_test(g);
}

void dls_guard_stats(const dls_guard *g, dlsched_stats_t *s)
{
    s->guard_state = g->state;
    s->guard_epoch = g->epoch;
    s->guard_switches = g->switches;
    s->guard_fallbacks = g->fallbacks;
    s->guard_decisions = g->decisions;
    s->guard_by_learned = g->by_learned;
    s->guard_by_incumbent = g->by_incumbent;
    s->guard_agreed = g->agreed;
    s->guard_unsupported = g->unsupported;
    s->guard_samples_learned = (uint64_t)g->n[DLS_ARM_LEARNED];
    s->guard_samples_incumbent = (uint64_t)g->n[DLS_ARM_INCUMBENT];
    s->guard_value_learned =
        g->n[DLS_ARM_LEARNED] > 0 ? g->sum[DLS_ARM_LEARNED] / g->n[DLS_ARM_LEARNED] : 0;
    s->guard_value_incumbent =
        g->n[DLS_ARM_INCUMBENT] > 0 ? g->sum[DLS_ARM_INCUMBENT] / g->n[DLS_ARM_INCUMBENT] : 0;
    /* the estimate now, with the quantile of the epoch's next test */
    double d, se, df;
    dls_guard_estimate(g, &d, &se, &df);
    double z = dls_guard_quantile(g, g->k < g->tests ? g->k : g->tests - 1, df);
    double ml, vl, mi, vi;
    dls_regime_moments(&g->reg_led, &ml, &vl);
    dls_regime_moments(&g->reg_inc, &mi, &vi);
    s->guard_led_learned = ml;
    s->guard_led_incumbent = mi;
    s->guard_regime_fallbacks = g->regime_fallbacks;
    s->guard_advantage = d;
    s->guard_advantage_low = isfinite(se) && isfinite(z) ? d - z * se : -INFINITY;
    s->guard_advantage_high = isfinite(se) && isfinite(z) ? d + z * se : INFINITY;
}

void dls_guard_save(const dls_guard *g, struct dls_wbuf *w)
{
    dls_w_u32(w, g->state);
    dls_w_u32(w, g->k);
    dls_w_u64(w, g->epoch);
    for (int a = 0; a < 3; a++) {
        dls_w_f64(w, g->n[a]);
        dls_w_f64(w, g->sum[a]);
        dls_w_f64(w, g->sumsq[a]);
    }
    dls_w_f64(w, g->last_adv);
    dls_w_f64(w, g->last_lo);
    dls_w_f64(w, g->last_hi);
    uint64_t c[7] = {g->switches,     g->fallbacks, g->decisions,  g->by_learned,
                     g->by_incumbent, g->agreed,    g->unsupported};
    for (int i = 0; i < 7; i++)
        dls_w_u64(w, c[i]);
    /* switchback: where the blocks stand (open pairs are not kept: their
       pending tickets are not saved either) */
    dls_w_u64(w, g->blk);
    dls_w_u64(w, g->pos);
    dls_w_u32(w, g->blk_arm);
    dls_w_u32(w, g->second_arm);
    dls_w_u64(w, g->dropped);
    dls_w_f64(w, g->dsum);
    dls_w_f64(w, g->dsumsq);
    const dls_regime *rg[2] = {&g->reg_inc, &g->reg_led};
    for (int i = 0; i < 2; i++) {
        dls_w_u64(w, rg[i]->n);
        dls_w_u64(w, rg[i]->in_batch);
        dls_w_f64(w, rg[i]->sum);
        dls_w_f64(w, rg[i]->sumsq);
        dls_w_f64(w, rg[i]->acc);
    }
    dls_w_u32(w, g->reg_k);
    dls_w_u32(w, 0);
    dls_w_u64(w, g->regime_fallbacks);
    dls_w_u64(w, g->n_regions);
    dls_w_bytes(w, g->visits, (size_t)g->n_regions * g->na * sizeof *g->visits);
    if (g->is_dqn) {
        dls_w_u64(w, g->n_norm);
        dls_w_bytes(w, g->mean, g->nf * sizeof *g->mean);
        dls_w_bytes(w, g->m2, g->nf * sizeof *g->m2);
    }
    /* switchback: the open blocks, oldest first (an exact continuation
       goes on with the pair under way) */
    uint32_t n_open = 0;
    for (int i = 0; i < DLS_GUARD_RING; i++)
        n_open += g->ring[i].id != 0;
    dls_w_u32(w, n_open);
    dls_w_u32(w, 0);
    for (uint64_t j = g->blk + 1 >= DLS_GUARD_RING ? g->blk + 1 - DLS_GUARD_RING : 0; j <= g->blk;
         j++) {
        const dls_gblock *b = &g->ring[j % DLS_GUARD_RING];
        if (b->id != j + 1)
            continue;
        dls_w_u64(w, j);
        dls_w_u32(w, b->arm);
        dls_w_u32(w, b->closed);
        dls_w_u32(w, b->issued);
        dls_w_u32(w, b->resolved);
        dls_w_u32(w, b->count);
        dls_w_bytes(w, &b->rmin, 4);
        dls_w_f64(w, b->sum);
    }
    /* guard_unit = key (Since 1.4; absent otherwise): the epoch's outcomes
       per slot and the arms' lowest rewards (the slots' arms follow from
       the epoch and who leads) */
    if (g->by_key) {
        dls_w_u32(w, 1);
        dls_w_u32(w, g->stage);
        dls_w_u64(w, g->salt);
        for (int i = 0; i < DLS_GUARD_UNITS; i++) {
            dls_w_f64(w, g->un[i]);
            dls_w_f64(w, g->usum[i]);
        }
        dls_w_f64(w, g->rmin[DLS_ARM_INCUMBENT]);
        dls_w_f64(w, g->rmin[DLS_ARM_LEARNED]);
        dls_w_f64(w, g->ud[DLS_ARM_INCUMBENT]);
        dls_w_f64(w, g->ud[DLS_ARM_LEARNED]);
    }
}

/* the largest batch of the regime check (guard_block's largest value,
   1048576; a load may override guard_block) */
#define DLS_REGIME_BATCH_MAX ((1 + DLS_GUARD_TAIL) * (uint64_t)1048576)

int dls_guard_load(dls_guard *g, struct dls_rbuf *r)
{
    uint32_t state = dls_r_u32(r), k = dls_r_u32(r);
    uint64_t epoch = dls_r_u64(r);
    double st[3][3];
    for (int a = 0; a < 3; a++)
        for (int j = 0; j < 3; j++)
            st[a][j] = dls_r_f64(r);
    double last[3];
    for (int j = 0; j < 3; j++)
        last[j] = dls_r_f64(r);
    uint64_t c[7];
    for (int i = 0; i < 7; i++)
        c[i] = dls_r_u64(r);
    uint64_t blk = dls_r_u64(r), pos = dls_r_u64(r);
    uint32_t barm = dls_r_u32(r), sarm = dls_r_u32(r);
    uint64_t dropped = dls_r_u64(r);
    double dsum = dls_r_f64(r), dsumsq = dls_r_f64(r);
    dls_regime rg[2];
    for (int i = 0; i < 2; i++) {
        rg[i].n = dls_r_u64(r);
        rg[i].in_batch = dls_r_u64(r);
        rg[i].sum = dls_r_f64(r);
        rg[i].sumsq = dls_r_f64(r);
        rg[i].acc = dls_r_f64(r);
    }
    uint32_t reg_k = dls_r_u32(r);
    (void)dls_r_u32(r);
    uint64_t reg_fb = dls_r_u64(r);
    uint64_t nr = dls_r_u64(r);
    DLS_FAIL_IF(r->bad, DLSCHED_EFORMAT, "checkpoint: the guard section is truncated");
    /* k >= the loaded agent's guard_tests (an override) is valid: the
       epoch is over, a new one starts below */
    DLS_FAIL_IF(state < DLSCHED_GUARD_INCUMBENT || state > DLSCHED_GUARD_FALLEN_BACK ||
                    k > DLS_GUARD_MAX_TESTS || nr != g->n_regions,
                DLSCHED_EFORMAT, "checkpoint: the guard section is corrupt");
    for (int a = 0; a < 3; a++)
        DLS_FAIL_IF(!(st[a][0] >= 0) || !isfinite(st[a][0]) || !isfinite(st[a][1]) ||
                        !(st[a][2] >= 0) || !isfinite(st[a][2]),
                    DLSCHED_EFORMAT, "checkpoint: the guard's statistics are corrupt");
    DLS_FAIL_IF(isnan(last[0]) || isnan(last[1]) || isnan(last[2]), DLSCHED_EFORMAT,
                "checkpoint: the guard's last test is corrupt");
    DLS_FAIL_IF(c[2] != c[3] + c[4] + c[5] + c[6], DLSCHED_EFORMAT,
                "checkpoint: the guard's decision counts do not add up");
    for (int i = 0; i < 2; i++)
        DLS_FAIL_IF(!isfinite(rg[i].sum) || !isfinite(rg[i].acc) || !(rg[i].sumsq >= 0) ||
                        !isfinite(rg[i].sumsq) || rg[i].in_batch >= DLS_REGIME_BATCH_MAX,
                    DLSCHED_EFORMAT, "checkpoint: the guard's regime check is corrupt");
    DLS_FAIL_IF(reg_k > DLS_GUARD_MAX_TESTS || reg_fb > c[1], DLSCHED_EFORMAT,
                "checkpoint: the guard's regime check is corrupt");
    DLS_FAIL_IF(barm > DLS_ARM_LEARNED || sarm > DLS_ARM_LEARNED || !isfinite(dsum) ||
                    !(dsumsq >= 0) || !isfinite(dsumsq),
                DLSCHED_EFORMAT, "checkpoint: the guard's blocks are corrupt");
    dls_r_bytes(r, g->visits, (size_t)g->n_regions * g->na * sizeof *g->visits);
    uint64_t n_norm = 0;
    if (g->is_dqn) {
        n_norm = dls_r_u64(r);
        dls_r_bytes(r, g->mean, g->nf * sizeof *g->mean);
        dls_r_bytes(r, g->m2, g->nf * sizeof *g->m2);
    }
    uint32_t n_open = dls_r_u32(r);
    (void)dls_r_u32(r);
    DLS_FAIL_IF(r->bad, DLSCHED_EFORMAT, "checkpoint: the guard section is truncated");
    DLS_FAIL_IF(n_open > DLS_GUARD_RING, DLSCHED_EFORMAT,
                "checkpoint: the guard's open blocks are corrupt");
    dls_gblock ring[DLS_GUARD_RING];
    memset(ring, 0, sizeof ring);
    uint64_t prev = 0;
    for (uint32_t i = 0; i < n_open; i++) {
        uint64_t j = dls_r_u64(r);
        dls_gblock b;
        memset(&b, 0, sizeof b);
        b.arm = dls_r_u32(r);
        b.closed = dls_r_u32(r);
        b.issued = dls_r_u32(r);
        b.resolved = dls_r_u32(r);
        b.count = dls_r_u32(r);
        dls_r_bytes(r, &b.rmin, 4);
        b.sum = dls_r_f64(r);
        DLS_FAIL_IF(r->bad, DLSCHED_EFORMAT, "checkpoint: the guard section is truncated");
        /* oldest first, within the ring's reach of the current block */
        DLS_FAIL_IF(j > blk || blk - j >= DLS_GUARD_RING || (i > 0 && j <= prev) ||
                        b.arm < DLS_ARM_INCUMBENT || b.arm > DLS_ARM_LEARNED || b.closed > 1 ||
                        b.resolved > b.issued || b.count > b.resolved || !isfinite(b.sum) ||
                        isnan(b.rmin) || b.rmin == -INFINITY,
                    DLSCHED_EFORMAT, "checkpoint: the guard's open blocks are corrupt");
        prev = j;
        b.id = j + 1;
        ring[j % DLS_GUARD_RING] = b;
    }
    /* guard_unit = key: the per-slot outcomes, when the saved agent had it */
    /* (exactly its size: other trailing bytes are the caller's "extra
       bytes") */
    int saved_key = r->len - r->pos == DLS_GUARD_UNIT_BLOCK;
    uint32_t stage = 0;
    uint64_t salt = 0;
    double un[DLS_GUARD_UNITS], usum[DLS_GUARD_UNITS], rmin[2] = {INFINITY, INFINITY},
           ud[2] = {0, 0};
    if (saved_key) {
        uint32_t mark = dls_r_u32(r);
        stage = dls_r_u32(r);
        salt = dls_r_u64(r);
        for (int i = 0; i < DLS_GUARD_UNITS; i++) {
            un[i] = dls_r_f64(r);
            usum[i] = dls_r_f64(r);
        }
        rmin[0] = dls_r_f64(r);
        rmin[1] = dls_r_f64(r);
        ud[0] = dls_r_f64(r);
        ud[1] = dls_r_f64(r);
        DLS_FAIL_IF(r->bad, DLSCHED_EFORMAT, "checkpoint: the guard section is truncated");
        DLS_FAIL_IF(mark != 1 || stage > 2 || (stage > 0 && state == DLSCHED_GUARD_LEARNED),
                    DLSCHED_EFORMAT,
                    "checkpoint: the guard's unit statistics are corrupt");
        for (int i = 0; i < DLS_GUARD_UNITS; i++)
            DLS_FAIL_IF(!(un[i] >= 0) || !isfinite(un[i]) || !isfinite(usum[i]),
                        DLSCHED_EFORMAT, "checkpoint: the guard's unit statistics are corrupt");
        for (int i = 0; i < 2; i++)
            DLS_FAIL_IF(isnan(rmin[i]) || rmin[i] == -INFINITY || !(ud[i] >= 0) ||
                            !isfinite(ud[i]),
                        DLSCHED_EFORMAT, "checkpoint: the guard's unit statistics are corrupt");
    }
    if (g->is_dqn)
        for (uint32_t i = 0; i < g->nf; i++)
            DLS_FAIL_IF(!isfinite(g->mean[i]) || !(g->m2[i] >= 0) || !isfinite(g->m2[i]),
                        DLSCHED_EFORMAT, "checkpoint: the guard's feature statistics are corrupt");
    g->state = state;
    g->k = k;
    g->epoch = epoch;
    for (int a = 0; a < 3; a++) {
        g->n[a] = st[a][0];
        g->sum[a] = st[a][1];
        g->sumsq[a] = st[a][2];
    }
    g->last_adv = last[0];
    g->last_lo = last[1];
    g->last_hi = last[2];
    g->switches = c[0];
    g->fallbacks = c[1];
    g->decisions = c[2];
    g->by_learned = c[3];
    g->by_incumbent = c[4];
    g->agreed = c[5];
    g->unsupported = c[6];
    g->n_norm = n_norm;
    /* guard_block may differ now (an override): the next block starts
       afresh then */
    g->blk = blk;
    g->pos = pos < (1 + DLS_GUARD_TAIL) * g->block_len ? pos : 0;
    g->blk_arm = barm;
    g->second_arm = sarm;
    g->dropped = dropped;
    g->dsum = dsum;
    g->dsumsq = dsumsq;
    g->reg_inc = rg[0];
    g->reg_led = rg[1];
    /* an open batch longer than this guard_block's batches starts afresh */
    for (int i = 0; i < 2; i++)
        if (rg[i].in_batch >= dls_regime_batch(g)) {
            (i ? &g->reg_led : &g->reg_inc)->in_batch = 0;
            (i ? &g->reg_led : &g->reg_inc)->acc = 0;
        }
    g->reg_k = reg_k;
    g->regime_fallbacks = reg_fb;
    memcpy(g->ring, ring, sizeof ring);
    if (g->is_dqn)
        dls_guard_norm_publish(g);
    if (g->by_key) {
        g->stage = stage;
        dls_guard_units_draw(g);
        if (saved_key) {
            memcpy(g->un, un, sizeof un);
            memcpy(g->usum, usum, sizeof usum);
            g->rmin[DLS_ARM_INCUMBENT] = rmin[0];
            g->rmin[DLS_ARM_LEARNED] = rmin[1];
            g->ud[DLS_ARM_INCUMBENT] = ud[0];
            g->ud[DLS_ARM_LEARNED] = ud[1];
        }
    }
    if (saved_key != g->by_key || (saved_key && salt != g->salt)) {
        /* saved under the other guard_unit, or under another seed (an
           override): this epoch's statistics do not fit the design or the
           slots' arms; a new epoch starts */
        dls_guard_new_epoch(g);
        return DLSCHED_OK;
    }
    if (g->k >= g->tests) {
        /* stored under a larger guard_tests: this epoch has run its tests */
        dls_guard_new_epoch(g);
        return DLSCHED_OK;
    }
    /* tickets pending at the save count as expired: their blocks are
       resolved, and pairs complete with it are finalized */
    for (int i = 0; i < DLS_GUARD_RING; i++)
        g->ring[i].resolved = g->ring[i].issued;
    for (uint64_t j = g->blk + 1 >= DLS_GUARD_RING ? g->blk + 1 - DLS_GUARD_RING : 0; j <= g->blk;
         j++)
        if (g->ring[j % DLS_GUARD_RING].id == j + 1)
            dls_guard_try_pair(g, j);
    return DLSCHED_OK;
}
