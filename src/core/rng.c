/* rng.c - seeding of the per-agent generator */
#include "rng.h"

/* splitmix64: spreads any 64-bit seed (0 included) over the 256-bit state */
static uint64_t dls_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void dls_rng_seed(dls_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = dls_splitmix64(&x);
}
