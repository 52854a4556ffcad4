/* rng.h - xoshiro256** per agent, seeded through splitmix64 (no global state) */
#ifndef DLS_RNG_H
#define DLS_RNG_H

#include <stdint.h>

typedef struct dls_rng {
    uint64_t s[4];
} dls_rng;

void dls_rng_seed(dls_rng *r, uint64_t seed);

/* splitmix64's output function: a bijective mix of 64 bits (the seeding's
   step, and the guard's hashing of units and slots) */
static inline uint64_t dls_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t dls_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t dls_rng_next(dls_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = dls_rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = dls_rotl(s[3], 45);
    return result;
}

/* uniform in [0, 1) with 53 random bits */
static inline double dls_rng_uniform(dls_rng *r)
{
    return (double)(dls_rng_next(r) >> 11) * 0x1.0p-53;
}

/* uniform integer in [0, n), n >= 1, without modulo bias (Lemire) */
static inline uint32_t dls_rng_below(dls_rng *r, uint32_t n)
{
    uint64_t m = (uint64_t)(uint32_t)(dls_rng_next(r) >> 32) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t thresh = (uint32_t)(-n) % n;
        while (low < thresh) {
            m = (uint64_t)(uint32_t)(dls_rng_next(r) >> 32) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

/* uniform 64-bit integer in [0, n), n >= 1 */
static inline uint64_t dls_rng_below64(dls_rng *r, uint64_t n)
{
    if (n <= UINT32_MAX)
        return dls_rng_below(r, (uint32_t)n);
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = dls_rng_next(r);
    while (x >= lim);
    return x % n;
}

#endif
