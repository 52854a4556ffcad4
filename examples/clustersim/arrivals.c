/*
 * arrivals.c - the table of dlsched-sim's arrival processes and what the
 * streams share: seeding, the end of a time-based stream, the sizes
 */
#include "arrivals.h"

#include <string.h>

static const sim_arrival_ops *const arrivals[] = {
    [SIM_ARR_POISSON] = &sim_arr_poisson,
    [SIM_ARR_MMPP] = &sim_arr_mmpp,
    [SIM_ARR_DIURNAL] = &sim_arr_diurnal,
    [SIM_ARR_TRACE] = &sim_arr_trace,
};

const sim_arrival_ops *sim_arrival_find(int process)
{
    if (process < 0 || (size_t)process >= sizeof arrivals / sizeof *arrivals)
        return NULL;
    return arrivals[process];
}

int sim_stream_init(sim_stream *st, const sim_scenario *sc, int eval, double scale)
{
    memset(st, 0, sizeof *st);
    st->sc = sc;
    st->ops = sim_arrival_find(sc->process);
    if (!st->ops)
        return -1;
    rng_seed(&st->r, eval ? sc->eval_seed : sc->seed);
    st->group = -1;
    st->salt = eval ? 0xe7a1ull << 40 : 0;
    st->t_end = (eval ? sc->eval_s : sc->warmup_s) * scale;
    if (st->ops->init)
        st->ops->init(st, sc, eval, scale);
    return 0;
}

int sim_stream_emit(sim_stream *st, double t, double *t_ms, double *in, double *out)
{
    const sim_scenario *sc = st->sc;
    if (t > st->t_end)
        return 0;
    st->t = t;
    *t_ms = t * 1000.0;
    *in = dist_draw(&sc->in_tokens, &st->r);
    *out = dist_draw(&sc->out_tokens, &st->r);
    if (sc->prefix_groups) {
        /* a shared-prefix workload: the group's system prompt, then the
           request's own text (drawn only here: other streams are unchanged) */
        st->group = (int)(rng_next(&st->r) % (uint64_t)sc->prefix_groups);
        *in += sc->prefix_tokens;
    }
    return 1;
}

double sim_stream_time_progress(const sim_stream *st, double now_ms)
{
    return now_ms / 1000.0 / st->t_end;
}
