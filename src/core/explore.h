/* explore.h - the behaviour policy: greedy, egreedy, softmax, hint */
#ifndef DLS_EXPLORE_H
#define DLS_EXPLORE_H

#include <stdint.h>

#include "rng.h"

typedef struct dls_choice {
    int32_t action;
    uint32_t flags;     /* DLSCHED_DECISION_* */
    float probability;  /* behaviour policy's probability of action */
    /* what the choice saw, for the guard's probabilities: the allowed
       maximum, its first action, the ties m, the allowed count k and
       (softmax) the normaliser z = sum_a exp((q_a - qmax) / T) */
    float qmax;
    int32_t amax;
    uint32_t m, k;
    double z;
} dls_choice;

/* epsilon after t ticketed decisions: linear from start to end over decay */
double dls_epsilon(double start, double end, uint64_t decay, uint64_t t);

/*
 * Choose among the n actions allowed by mask (NULL = all); q holds the
 * estimates, hint is -1 or an allowed action. mode is a DLS_EXPLORE_* value,
 * or -1 for greedy. Ties between equal maxima are broken uniformly at
 * random. The caller has checked that at least one action is allowed.
 */
void dls_choose(int mode, double epsilon, double temperature, const float *q,
                const uint8_t *mask, uint32_t n, int32_t hint, dls_rng *rng, dls_choice *out);

#endif
