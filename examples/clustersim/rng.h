/*
 * rng.h - dlsched-sim's random numbers: xoshiro256** seeded by splitmix64,
 * the uniform, exponential and normal draws made from them, and the draw
 * of a token count from a size distribution (sim_dist)
 */
#ifndef DLSCHED_SIM_RNG_H
#define DLSCHED_SIM_RNG_H

#include "sim.h"

#include <math.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} rng;

static inline uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline void rng_seed(rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* uniform in (0, 1) */
static inline double rng_unit(rng *r) { return ((double)(rng_next(r) >> 11) + 0.5) * 0x1.0p-53; }

static inline double rng_exp(rng *r, double mean) { return -mean * log(rng_unit(r)); }

static inline double rng_normal(rng *r)
{
    return sqrt(-2 * log(rng_unit(r))) * cos(6.283185307179586 * rng_unit(r));
}

static inline double dist_draw(const sim_dist *d, rng *r)
{
    double v;
    switch (d->kind) {
    case SIM_DIST_CONST: v = d->a; break;
    case SIM_DIST_EXP: v = rng_exp(r, d->a); break;
    case SIM_DIST_LOGNORMAL: v = d->a * exp(d->b * rng_normal(r)); break;
    default: v = d->a + (d->b - d->a) * rng_unit(r); break;
    }
    if (d->max > 0 && v > d->max)
        v = d->max;
    return v;
}

#endif
