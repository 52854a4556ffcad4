/* explore.c - behaviour policies and their exact action probabilities */
#include "explore.h"

#include <math.h>

#include "config.h"

double dls_epsilon(double start, double end, uint64_t decay, uint64_t t)
{
    if (t >= decay)
        return end;
    /* eps(t) = end + (start - end) * (1 - t / decay) */
    return end + (start - end) * (1.0 - (double)t / (double)decay);
}

#define DLS_ALLOWED(mask, a) (!(mask) || (mask)[a])

/* the r-th allowed action (r < number allowed) */
static int32_t dls_nth_allowed(const uint8_t *mask, uint32_t n, uint32_t r)
{
    for (uint32_t a = 0; a < n; a++)
        if (DLS_ALLOWED(mask, a) && r-- == 0)
            return (int32_t)a;
    return -1; /* not reached: r < allowed count */
}

/* the r-th action whose value equals qmax among the allowed ones */
static int32_t dls_nth_tie(const float *q, const uint8_t *mask, uint32_t n, float qmax, uint32_t r)
{
    for (uint32_t a = 0; a < n; a++)
        if (DLS_ALLOWED(mask, a) && q[a] == qmax && r-- == 0)
            return (int32_t)a;
    return -1;
}

void dls_choose(int mode, double epsilon, double temperature, const float *q,
                const uint8_t *mask, uint32_t n, int32_t hint, dls_rng *rng, dls_choice *out)
{
    /* one pass: the maximum, its first action, the allowed count k, the
       tie count m */
    float qmax = -INFINITY;
    uint32_t k = 0, m = 0;
    int32_t amax = -1;
    for (uint32_t a = 0; a < n; a++) {
        if (!DLS_ALLOWED(mask, a))
            continue;
        k++;
        if (q[a] > qmax || m == 0) {
            qmax = q[a];
            amax = (int32_t)a;
            m = 1;
        } else if (q[a] == qmax) {
            m++;
        }
    }
    out->flags = 0;
    out->qmax = qmax;
    out->amax = amax;
    out->m = m;
    out->k = k;
    out->z = 0;
    if (mode == DLS_EXPLORE_SOFTMAX) {
        /* P(a) = exp((q_a - qmax) / T) / Z over allowed a */
        double z = 0;
        for (uint32_t a = 0; a < n; a++)
            if (DLS_ALLOWED(mask, a))
                z += exp(((double)q[a] - qmax) / temperature);
        double u = dls_rng_uniform(rng) * z, acc = 0, pa = 0;
        int32_t pick = -1;
        for (uint32_t a = 0; a < n; a++) {
            if (!DLS_ALLOWED(mask, a))
                continue;
            pa = exp(((double)q[a] - qmax) / temperature);
            acc += pa;
            pick = (int32_t)a;
            if (u < acc)
                break;
        }
        out->action = pick;
        out->probability = (float)(pa / z);
        out->z = z;
        if (q[pick] != qmax)
            out->flags |= DLSCHED_DECISION_EXPLORED;
        return;
    }

    double eps = mode < 0 ? 0.0 : epsilon;
    int explored = eps > 0 && dls_rng_uniform(rng) < eps;
    if (explored) {
        out->flags |= DLSCHED_DECISION_EXPLORED;
        if (mode == DLS_EXPLORE_HINT && hint >= 0) {
            out->action = hint;
            out->flags |= DLSCHED_DECISION_HINT;
        } else {
            uint32_t r = dls_rng_below(rng, k);
            out->action = mask ? dls_nth_allowed(mask, n, r) : (int32_t)r;
        }
    } else {
        out->action = m > 1 ? dls_nth_tie(q, mask, n, qmax, dls_rng_below(rng, m)) : amax;
    }
    /* P(a) = eps * P_explore(a) + (1 - eps) * [a is a tie] / m */
    int32_t a = out->action;
    double p_explore = (mode == DLS_EXPLORE_HINT && hint >= 0) ? (a == hint) : 1.0 / k;
    double p = eps * p_explore + (q[a] == qmax ? (1.0 - eps) / m : 0.0);
    out->probability = (float)p;
}
