/* replay.c - replay ring and sum-tree (see replay.h) */
#include "replay.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

size_t dls_replay_bytes_per(uint32_t nf, uint32_t na, int per)
{
    return 2 * sizeof(float) * (size_t)nf + sizeof(int32_t) + 2 * sizeof(float) + na +
           (per ? 2 * sizeof(double) : 0);
}

uint64_t dls_replay_bytes(uint64_t cap, uint32_t nf, uint32_t na, int per)
{
    uint64_t tree_n = 1;
    while (per && tree_n < cap)
        tree_n <<= 1;
    return cap * dls_replay_bytes_per(nf, na, 0) + (per ? 2 * tree_n * sizeof(double) : 0);
}

int dls_replay_init(dls_replay *r, uint64_t cap, uint32_t nf, uint32_t na, int per)
{
    memset(r, 0, sizeof *r);
    r->cap = cap;
    r->nf = nf;
    r->na = na;
    r->per = per;
    r->s = malloc(cap * nf * sizeof(float));
    r->s2 = malloc(cap * nf * sizeof(float));
    r->a = malloc(cap * sizeof(int32_t));
    r->ret = malloc(cap * sizeof(float));
    r->disc = malloc(cap * sizeof(float));
    r->mask2 = malloc(cap * na);
    if (per) {
        r->tree_n = 1;
        while (r->tree_n < cap)
            r->tree_n <<= 1;
        r->tree = calloc(2 * r->tree_n, sizeof(double));
    }
    if (!r->s || !r->s2 || !r->a || !r->ret || !r->disc || !r->mask2 || (per && !r->tree)) {
        dls_replay_free(r);
        return -1;
    }
    /* touch every page at creation, not on a request */
    memset(r->s, 0, cap * nf * sizeof(float));
    memset(r->s2, 0, cap * nf * sizeof(float));
    memset(r->a, 0, cap * sizeof(int32_t));
    memset(r->ret, 0, cap * sizeof(float));
    memset(r->disc, 0, cap * sizeof(float));
    memset(r->mask2, 0, cap * na);
    if (per)
        memset(r->tree, 0, 2 * r->tree_n * sizeof(double));
    dls_touch_pages(r->s, cap * nf * sizeof(float));
    dls_touch_pages(r->s2, cap * nf * sizeof(float));
    dls_touch_pages(r->a, cap * sizeof(int32_t));
    dls_touch_pages(r->ret, cap * sizeof(float));
    dls_touch_pages(r->disc, cap * sizeof(float));
    dls_touch_pages(r->mask2, cap * na);
    if (per)
        dls_touch_pages(r->tree, 2 * r->tree_n * sizeof(double));
    r->max_priority = 1.0;
    return 0;
}

void dls_replay_free(dls_replay *r)
{
    free(r->s);
    free(r->s2);
    free(r->a);
    free(r->ret);
    free(r->disc);
    free(r->mask2);
    free(r->tree);
    memset(r, 0, sizeof *r);
}

void dls_replay_set_priority(dls_replay *r, uint64_t i, double p)
{
    uint64_t node = r->tree_n + i;
    r->tree[node] = p;
    /* recompute the sums up to the root from the children, so rounding
       never accumulates over millions of updates */
    for (node >>= 1; node >= 1; node >>= 1)
        r->tree[node] = r->tree[2 * node] + r->tree[2 * node + 1];
    if (p > r->max_priority)
        r->max_priority = p;
}

double dls_replay_total(const dls_replay *r)
{
    return r->tree[1];
}

uint64_t dls_replay_add(dls_replay *r, const float *s, int32_t a, float ret, float disc,
                        const float *s2, const uint8_t *mask2)
{
    uint64_t i = r->pos;
    memcpy(r->s + i * r->nf, s, r->nf * sizeof(float));
    memcpy(r->s2 + i * r->nf, s2 ? s2 : s, r->nf * sizeof(float));
    r->a[i] = a;
    r->ret[i] = ret;
    r->disc[i] = disc;
    uint8_t *m = r->mask2 + i * r->na;
    if (mask2) {
        for (uint32_t k = 0; k < r->na; k++)
            m[k] = mask2[k] != 0;
    } else {
        memset(m, 1, r->na);
    }
    if (r->per) /* new experience is sampled at least once: the largest priority so far */
        dls_replay_set_priority(r, i, r->max_priority);
    r->pos = i + 1 == r->cap ? 0 : i + 1;
    if (r->count < r->cap)
        r->count++;
    return i;
}

void dls_replay_sample_uniform(const dls_replay *r, dls_rng *rng, uint32_t n, uint64_t *idx)
{
    for (uint32_t k = 0; k < n; k++)
        idx[k] = dls_rng_below64(rng, r->count);
}

void dls_replay_sample_per(const dls_replay *r, dls_rng *rng, uint32_t n, uint64_t *idx,
                           double *prob)
{
    double total = r->tree[1], seg = total / n;
    for (uint32_t k = 0; k < n; k++) {
        /* stratified: one draw in each of n equal slices of the total */
        double u = (k + dls_rng_uniform(rng)) * seg;
        uint64_t node = 1;
        while (node < r->tree_n) {
            double left = r->tree[2 * node];
            if (u < left) {
                node = 2 * node;
            } else {
                u -= left;
                node = 2 * node + 1;
            }
        }
        uint64_t i = node - r->tree_n;
        /* rounding can land on an empty leaf past the stored ones */
        if (i >= r->count || r->tree[node] <= 0.0)
            i = dls_rng_below64(rng, r->count);
        idx[k] = i;
        prob[k] = r->tree[r->tree_n + i] / total;
    }
}
