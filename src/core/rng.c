/* rng.c - seeding of the per-agent generator */
#include "rng.h"

/* splitmix64: spreads any 64-bit seed (0 included) over the 256-bit state */
static uint64_t dls_splitmix64(uint64_t *x)
{
    return dls_mix64(*x += 0x9e3779b97f4a7c15ULL);
}

void dls_rng_seed(dls_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = dls_splitmix64(&x);
}
