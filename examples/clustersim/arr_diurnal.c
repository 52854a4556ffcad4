/*
 * arr_diurnal.c - dlsched-sim's diurnal arrivals: a sinusoidal rate,
 * rate * (1 + amplitude * sin(2 pi t / period_s))
 */
#include "arrivals.h"

#include <math.h>

/* thinning of a Poisson process at the peak rate */
static int diurnal_next(sim_stream *st, double *t_ms, double *in, double *out)
{
    const sim_scenario *sc = st->sc;
    double t = st->t;
    double peak = sc->rate * (1 + sc->amplitude);
    for (;;) {
        t += rng_exp(&st->r, 1.0 / peak);
        double lam = sc->rate * (1 + sc->amplitude * sin(6.283185307179586 * t / sc->period_s));
        if (rng_unit(&st->r) * peak <= lam || t > st->t_end)
            break;
    }
    return sim_stream_emit(st, t, t_ms, in, out);
}

const sim_arrival_ops sim_arr_diurnal = {"diurnal", NULL, diurnal_next, sim_stream_time_progress};
