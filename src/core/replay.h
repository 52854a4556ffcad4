/*
 * replay.h - the DQN replay buffer: a ring of transitions in contiguous
 * arrays (structure of arrays), uniform sampling with the agent's RNG, and
 * optionally proportional prioritized sampling through a sum-tree.
 *
 * Bytes per transition: 8 * n_features (s and s') + 12 (action, return,
 * discount) + n_actions (next mask). Prioritized replay adds a sum-tree of
 * 2 * 2^ceil(log2 cap) doubles: 16 to 32 bytes per transition.
 */
#ifndef DLS_REPLAY_H
#define DLS_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

typedef struct dls_replay {
    uint64_t cap, count, pos;
    uint32_t nf, na;
    float *s, *s2;     /* cap x nf each */
    int32_t *a;
    float *ret;        /* n-step discounted return */
    float *disc;       /* gamma^k of the bootstrap, 0 when terminal */
    uint8_t *mask2;    /* cap x na: next state's mask (1 = allowed) */
    /* prioritized replay: sum-tree over leaves [tree_n, 2 tree_n) */
    int per;
    uint64_t tree_n;
    double *tree;
    double max_priority;
} dls_replay;

size_t dls_replay_bytes_per(uint32_t nf, uint32_t na, int per);
/* exact bytes of a buffer of cap transitions, sum-tree included */
uint64_t dls_replay_bytes(uint64_t cap, uint32_t nf, uint32_t na, int per);
int dls_replay_init(dls_replay *r, uint64_t cap, uint32_t nf, uint32_t na, int per);
void dls_replay_free(dls_replay *r);
/* store one transition (overwriting the oldest when full); mask2 NULL =
   every action allowed; returns its index */
uint64_t dls_replay_add(dls_replay *r, const float *s, int32_t a, float ret, float disc,
                        const float *s2, const uint8_t *mask2);
/* n indices uniformly at random (with replacement); count must be > 0 */
void dls_replay_sample_uniform(const dls_replay *r, dls_rng *rng, uint32_t n, uint64_t *idx);
/* n indices, one per equal slice of the total priority; prob[i] = the
   sampling probability of idx[i] */
void dls_replay_sample_per(const dls_replay *r, dls_rng *rng, uint32_t n, uint64_t *idx,
                           double *prob);
void dls_replay_set_priority(dls_replay *r, uint64_t i, double p);
double dls_replay_total(const dls_replay *r);

#endif
