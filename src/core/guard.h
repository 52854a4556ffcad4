/*
 * guard.h - the safe-improvement guard: the learned policy decides only
 * where it has proven better than the host's incumbent (the hint)
 *
 * The experiment (guard_block = 1): on the decisions where the learned
 * policy's choice and the incumbent's differ, the policy in charge decides
 * with probability 1 - guard_share and the other one with guard_share, by
 * a draw that does not look at the state; every such ticket is tagged with
 * the arm that decided. The difference of the two arms' mean rewards
 * estimates the learned policy's advantage per disagreement.
 * guard_block = B > 1 (switchback, for decisions that affect each other's
 * rewards, e.g. through queues): a block is B decisions by its arm and a
 * tail of DLS_GUARD_TAIL x B decisions by the policy in charge; a pair of
 * consecutive blocks is an experiment with probability 2 (1 + TAIL)
 * guard_share (one block per policy, in random order), else both follow
 * the policy in charge. A block's value is the mean reward of its tickets
 * from its B/4-th decision (burn-in) to its tail's end; a pair gives one
 * difference, learned - incumbent. After a switch, the regime check
 * compares the reward per decision while the learned policy leads with the
 * incumbent-led reference (dls_guard_regime). Either
 * estimate is tested at sample sizes m, 2m, 4m, ... with a normal interval
 * whose error rate is spent over the tests (alpha_k = risk / ((k + 1)(k +
 * 2)), summing to risk).
 * guard_unit = key (cluster randomisation, for decisions whose effect
 * outlives any block, e.g. where a shared prompt's cache lives): the host
 * names each decision's unit (dlsched_act_unit); a unit hashes, with a
 * salt drawn per epoch (dls_mix64(unit ^ salt) mod DLS_GUARD_UNITS), to
 * one of DLS_GUARD_UNITS slots, and m slots belong to the policy not in
 * charge for the epoch: m = ceil(share x DLS_GUARD_UNITS), at least 2 (0
 * with guard_share 0), raised while the incumbent leads by the ramp to a
 * quarter (stage 1) and a half (stage 2) of the slots, and to a quarter
 * while the learned policy leads (the fallback's test needs units as the
 * switch's had). Every ticketed decision of a unit is taken by its slot's
 * arm and counts for it: the incumbent's arm takes the hint, without
 * exploration; the learned arm explores as configured, and its choices
 * need no support while it is the experiment (the incumbent leads: the
 * arm is measured as a whole) and keep the support rule when the learned
 * policy leads. The estimate is the difference of the arms' mean rewards
 * per decision with a cluster-robust (CR1) standard error over slots,
 * tested with Student's t (Welch-Satterthwaite degrees of freedom) once
 * both arms have outcomes in 2 slots or more. While the incumbent leads,
 * "learned better" moves the ramp up a stage (new epoch) and switches
 * only from stage 2; "learned worse", or a stage-1/2 epoch that ran all
 * its tests, goes back to stage 0. An epoch whose arms still lack 2 slots
 * with outcomes after 4 x due x DLS_GUARD_UNITS / m outcomes in all (the
 * non-leader's expected 4 x due) starts a new epoch (another draw).
 * So does a run of 64 (or guard_min_samples, if more) decisions in which the non-leader's
 * arm took more than (f + 1) / 2 of them, f = m / DLS_GUARD_UNITS (units
 * too uneven: one unit with most of the traffic drew the non-leader's
 * arm); the runs count from the epoch's start.
 * Expired tickets count as the lowest reward their arm has seen in the
 * epoch (none seen: dropped). Greedy decisions: the policy in charge, as
 * with guard_unit = decision.
 * SPIBB-style support: the learned choice counts only where that action
 * was observed at least guard_min_visits times in the state's region
 * (qtable: its cell; dqn: a SimHash of the standardised features).
 * Not thread-safe by itself: the agent holds tmu around every call but
 * dls_guard_init/free.
 */
#ifndef DLS_GUARD_H
#define DLS_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "explore.h"
#include "internal.h"
#include "rng.h"

struct dlsched_config;
struct dls_wbuf;
struct dls_rbuf;

#define DLS_GUARD_MAX_TESTS 30
#define DLS_GUARD_MAX_BITS 16

/* the arm of a ticket (low 2 bits of its tag) */
enum { DLS_ARM_NONE = 0, DLS_ARM_INCUMBENT = 1, DLS_ARM_LEARNED = 2 };

/* guard_block > 1: blocks of decisions in pairs (switchback); the open
   blocks, waiting for their tickets' outcomes */
#define DLS_GUARD_RING 64
/* a block's tail, in blocks: decisions by the policy in charge whose
   outcomes count with the block */
#define DLS_GUARD_TAIL 1
typedef struct dls_gblock {
    uint64_t id;     /* block number + 1; 0 = free */
    uint32_t arm, closed;
    uint32_t issued, resolved; /* tickets of the block; resolved: observed or expired */
    uint32_t count;            /* rewards summed (past the burn-in) */
    float rmin;                /* the lowest reward observed in the block */
    double sum;
} dls_gblock;

/* the regime check: batch means of rewards while one policy leads */
typedef struct dls_regime {
    uint64_t n, in_batch; /* batches done; outcomes in the open batch */
    double sum, sumsq;    /* of the batch means */
    double acc;           /* the open batch's reward sum */
} dls_regime;

/* guard_unit = key: the slots units hash to */
#define DLS_GUARD_UNITS 64

typedef struct dls_guard {
    int enabled, is_dqn;
    int by_key; /* guard_unit = key */
    uint32_t nf, na;
    double share, risk;
    uint64_t min_samples;
    uint32_t tests, min_visits;
    double z[DLS_GUARD_MAX_TESTS]; /* the k-th test's quantile */
    /* state */
    uint32_t state; /* DLSCHED_GUARD_* */
    uint64_t epoch;
    uint32_t k;     /* tests done in this epoch */
    double n[3], sum[3], sumsq[3]; /* per arm, this epoch */
    double last_adv, last_lo, last_hi; /* at the last test */
    /* switchback (guard_block > 1): block blk, pos decisions into it;
       pairs of blocks 2j, 2j + 1 */
    uint64_t block_len, burn, blk, pos, dropped;
    uint32_t blk_arm, second_arm;
    double dsum, dsumsq; /* pair differences, this epoch */
    dls_gblock ring[DLS_GUARD_RING];
    /* the regime check: the incumbent-led reference, the learned-led
       period since the switch, the checks done */
    dls_regime reg_inc, reg_led;
    uint32_t reg_k;
    uint64_t regime_fallbacks;
    /* guard_unit = key: this epoch's salt and the non-leader's slots;
       outcomes and reward sums per slot; the lowest reward per arm (what
       an expired ticket counts) */
    uint64_t seed, salt, nl_mask;
    uint32_t nl_slots;
    uint32_t stage; /* the ramp while the incumbent leads: 0, 1 (a quarter
                       of the slots to the learned policy), 2 (half) */
    double un[DLS_GUARD_UNITS], usum[DLS_GUARD_UNITS];
    double rmin[3];
    double ud[3]; /* ticketed decisions per arm in the current run (the
                     unevenness check) */
    uint64_t switches, fallbacks, decisions, by_learned, by_incumbent, agreed, unsupported;
    /* support counts: n_regions x na, saturating */
    uint16_t *visits;
    uint64_t n_regions;
    /* dqn regions: sign bits of `bits` projections of the features
       standardised by a running mean and variance */
    uint32_t bits;
    float *proj;       /* nf x bits, entries +-1 */
    double *mean, *m2; /* per feature: running mean, running variance */
    float *mean_f, *isd; /* what the hash reads: mean, 1 / sd */
    uint64_t n_norm;
    size_t bytes;
} dls_guard;

/* from the config; qtable: n_states regions; dqn: 2^guard_hash_bits */
int dls_guard_init(dls_guard *g, const struct dlsched_config *cfg, int is_dqn, uint32_t nf,
                   uint32_t na, uint64_t n_states);
void dls_guard_free(dls_guard *g);

/* the region of a state: its qtable key, or the SimHash of its features */
uint64_t dls_guard_region(const dls_guard *g, const void *key, const float *features);

/* the guard's part of one decision: c holds the behaviour policy's choice
   (dls_choose with mode, eps over the q-values); hint >= 0. Rewrites c
   (action, flags, probability) and returns the ticket's tag. greedy = no
   experiment and no exploration. unit: the host's unit (guard_unit = key;
   ignored otherwise). */
uint32_t dls_guard_decide(dls_guard *g, const float *q, const uint8_t *mask, int mode,
                          double eps, double temperature, int32_t hint, uint64_t region,
                          uint64_t unit, int greedy, dls_rng *rng, dls_choice *c);

/* Student's t quantile: P(T <= t) = p for p in (0.5, 1), df >= 1 */
double dls_t_quantile(double p, double df);

/* a tagged ticket expired: its block counts it resolved, without reward */
void dls_guard_expired(dls_guard *g, uint32_t tag);

/* an outcome: the region/action visit and, for a tagged ticket of this
   epoch, the experiment's statistics (and perhaps a switch) */
void dls_guard_observe(dls_guard *g, uint32_t tag, uint64_t region, int32_t action,
                       const float *features, float reward);

/* the guard's fields of the statistics */
void dls_guard_stats(const dls_guard *g, dlsched_stats_t *s);

/* checkpoint section body; load checks every value (DLSCHED_EFORMAT) */
void dls_guard_save(const dls_guard *g, struct dls_wbuf *w);
int dls_guard_load(dls_guard *g, struct dls_rbuf *r);

#endif
