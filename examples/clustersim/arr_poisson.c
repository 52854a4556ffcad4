/*
 * arr_poisson.c - dlsched-sim's Poisson arrivals at the scenario's rate
 */
#include "arrivals.h"

static int poisson_next(sim_stream *st, double *t_ms, double *in, double *out)
{
    double t = st->t + rng_exp(&st->r, 1.0 / st->sc->rate);
    return sim_stream_emit(st, t, t_ms, in, out);
}

const sim_arrival_ops sim_arr_poisson = {"poisson", NULL, poisson_next, sim_stream_time_progress};
