/*
 * arr_trace.c - dlsched-sim's trace replay: the first train_share of the
 * trace's rows feed the warm-up (warmup_passes times), the rest the
 * evaluation, their times divided by speedup
 */
#include "arrivals.h"

#include <math.h>

static void trace_init(sim_stream *st, const sim_scenario *sc, int eval, double scale)
{
    size_t split = (size_t)((double)sc->n_trace * sc->train_share);
    if (split < 1)
        split = 1;
    if (split >= sc->n_trace)
        split = sc->n_trace - 1;
    st->lo = eval ? split : 0;
    st->hi = eval ? sc->n_trace : split;
    st->i = st->lo;
    st->passes = eval ? 1 : (int)ceil(sc->warmup_passes * scale);
    if (!eval && sc->train_share <= 0)
        st->passes = 0;
    if (st->passes < 1 && !eval)
        st->passes = sc->train_share > 0 ? 1 : 0;
    /* a pass lasts its span plus one mean gap, so passes do not overlap */
    double span = sc->trace[st->hi - 1].t - sc->trace[st->lo].t;
    st->pass_len = (span + span / (double)(st->hi - st->lo)) / sc->speedup;
    st->offset = 0;
}

static int trace_next(sim_stream *st, double *t_ms, double *in, double *out)
{
    const sim_scenario *sc = st->sc;
    if (st->pass >= st->passes)
        return 0;
    const sim_trace_row *row = &sc->trace[st->i];
    *t_ms = 1000.0 * (st->offset + (row->t - sc->trace[st->lo].t) / sc->speedup);
    *in = row->in;
    *out = row->out;
    st->hash = row->n_hash ? sc->hash_pool + row->hash_off : NULL;
    st->n_hash = row->n_hash;
    st->n_shared = row->n_shared;
    st->salt = ((uint64_t)(st->lo ? 0x100 : 0) + (uint64_t)st->pass) << 40;
    if (++st->i == st->hi) {
        st->i = st->lo;
        st->pass++;
        st->offset += st->pass_len;
    }
    return 1;
}

/* the rows given over the rows of all passes */
static double trace_progress(const sim_stream *st, double now_ms)
{
    (void)now_ms;
    return (double)(st->pass * (st->hi - st->lo) + st->i - st->lo) /
           (double)((st->hi - st->lo) * (size_t)(st->passes ? st->passes : 1));
}

const sim_arrival_ops sim_arr_trace = {"trace", trace_init, trace_next, trace_progress};
