/*
 * arr_mmpp.c - dlsched-sim's Markov-modulated Poisson arrivals: the rate
 * cycles through the scenario's rates, each held for an exponential dwell
 */
#include "arrivals.h"

#include <math.h>

static void mmpp_init(sim_stream *st, const sim_scenario *sc, int eval, double scale)
{
    (void)eval;
    (void)scale;
    st->state = 0;
    st->state_until = rng_exp(&st->r, sc->dwell_s[0]);
}

static int mmpp_next(sim_stream *st, double *t_ms, double *in, double *out)
{
    const sim_scenario *sc = st->sc;
    double t = st->t;
    for (;;) {
        double rate = sc->rates[st->state];
        double cand = rate > 0 ? t + rng_exp(&st->r, 1.0 / rate) : INFINITY;
        if (cand <= st->state_until) {
            t = cand;
            break;
        }
        /* memoryless: restart from the state change */
        t = st->state_until;
        st->state = (st->state + 1) % sc->n_rates;
        st->state_until = t + rng_exp(&st->r, sc->dwell_s[st->state]);
        if (t > st->t_end)
            break;
    }
    return sim_stream_emit(st, t, t_ms, in, out);
}

const sim_arrival_ops sim_arr_mmpp = {"mmpp", mmpp_init, mmpp_next, sim_stream_time_progress};
