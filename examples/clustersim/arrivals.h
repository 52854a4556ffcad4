/*
 * arrivals.h - dlsched-sim's request generation: one arrival process per
 * unit (arr_poisson.c, arr_mmpp.c, arr_diurnal.c, arr_trace.c) behind one
 * small interface, found by the scenario's process (SIM_ARR_*) in the
 * table of arrivals.c. Adding a process is one unit and one table row.
 */
#ifndef DLSCHED_SIM_ARRIVALS_H
#define DLSCHED_SIM_ARRIVALS_H

#include "rng.h"
#include "sim.h"

#include <stddef.h>

typedef struct sim_arrival_ops sim_arrival_ops;

/* one stream of requests: the warm-up or the evaluation stream */
typedef struct {
    const sim_scenario *sc;
    const sim_arrival_ops *ops;
    rng r;
    double t, t_end;
    int state;          /* mmpp */
    double state_until; /* mmpp */
    size_t i, lo, hi;   /* trace rows [lo, hi) */
    int pass, passes;
    double pass_len, offset;
    /* the KV model: the prefix of the request next() gave last (a trace
       row's hash_ids, or a shared-prefix group, -1 none) and a salt per
       stream and pass, so that passes and streams share no blocks */
    const uint64_t *hash;
    uint32_t n_hash, n_shared;
    int group;
    uint64_t salt;
} sim_stream;

struct sim_arrival_ops {
    const char *name;
    /* after sim_stream_init's common part (sc, ops, seeded r, t_end); may be NULL */
    void (*init)(sim_stream *st, const sim_scenario *sc, int eval, double scale);
    /* next request: 1, or 0 when the stream is over */
    int (*next)(sim_stream *st, double *t_ms, double *in, double *out);
    /* the fraction of the stream given so far (now_ms: the clock at the
       last arrival) */
    double (*progress)(const sim_stream *st, double now_ms);
};

/* the process's operations; NULL for an unknown process */
const sim_arrival_ops *sim_arrival_find(int process);

/* eval = 0: warm-up stream; 1: evaluation stream. -1 for an unknown process */
int sim_stream_init(sim_stream *st, const sim_scenario *sc, int eval, double scale);

/* for the time-based processes: a request at t seconds (0 past the
   stream's end), its sizes drawn from the scenario's distributions */
int sim_stream_emit(sim_stream *st, double t, double *t_ms, double *in, double *out);
/* their progress: the clock over the stream's length */
double sim_stream_time_progress(const sim_stream *st, double now_ms);

extern const sim_arrival_ops sim_arr_poisson, sim_arr_mmpp, sim_arr_diurnal, sim_arr_trace;

#endif
