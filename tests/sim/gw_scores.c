/*
 * gw_scores.c - the simulator's gateway scorer mix (sim_gw_totals in
 * examples/clustersim/kvcache.c) on cases read from stdin, for
 * bindings/python/tests/test_epp_scorers.py, which checks that the Python
 * picker's dlsched.epp.scorers gives the same totals.
 *
 * A case per line:
 *   w_queue w_kv w_prefix w_lru  cold  nc  (waiting kv match cold_at) x nc
 *   nx  cold_at x nx
 * match: the candidate's prefix fraction; cold_at: its last cold pick (0 =
 * never); nx more servers (not candidates) with their cold_at (the no-hit
 * LRU holds them too). Prints the nc totals, %.17g, one line per case.
 * Exit status 0, or 2 on unreadable input (the message names the case).
 */
#include "simint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    sim_scenario *sc = calloc(1, sizeof *sc);
    sim_run *s = calloc(1, sizeof *s);
    if (!sc || !s) {
        fputs("gw_scores: out of memory\n", stderr);
        return 2;
    }
    s->sc = sc;
    for (long n = 1;; n++) {
        int cold, nc, nx;
        double w[4];
        int got = scanf("%lf %lf %lf %lf %d %d", &w[0], &w[1], &w[2], &w[3], &cold, &nc);
        if (got == EOF)
            break;
        if (got != 6 || nc < 1 || nc > SIM_MAX_SERVERS) {
            fprintf(stderr, "gw_scores: case %ld: bad header\n", n);
            return 2;
        }
        memcpy(sc->gw_weights, w, sizeof w);
        int cand[SIM_MAX_SERVERS];
        for (int c = 0; c < nc; c++) {
            unsigned long long at;
            if (scanf("%d %lf %lf %llu", &s->srv[c].snap_wait, &s->srv[c].snap_kv,
                      &s->gw_match[c], &at) != 4) {
                fprintf(stderr, "gw_scores: case %ld: bad candidate %d\n", n, c);
                return 2;
            }
            s->gw_cold_at[c] = at;
            cand[c] = c;
        }
        if (scanf("%d", &nx) != 1 || nx < 0 || nc + nx > SIM_MAX_SERVERS) {
            fprintf(stderr, "gw_scores: case %ld: bad extra count\n", n);
            return 2;
        }
        for (int k = 0; k < nx; k++) {
            unsigned long long at;
            if (scanf("%llu", &at) != 1) {
                fprintf(stderr, "gw_scores: case %ld: bad extra server %d\n", n, k);
                return 2;
            }
            s->gw_cold_at[nc + k] = at;
        }
        s->ns = nc + nx;
        s->gw_cold = cold;
        double tot[SIM_MAX_SERVERS];
        sim_gw_totals(s, cand, nc, tot);
        for (int c = 0; c < nc; c++)
            printf("%s%.17g", c ? " " : "", tot[c]);
        putchar('\n');
    }
    free(s);
    free(sc);
    return 0;
}
