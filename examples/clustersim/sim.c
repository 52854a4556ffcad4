/*
 * sim.c - the event engine, the workload streams and the policies of
 * dlsched-sim(1)
 */
#define _POSIX_C_SOURCE 200809L
#include "sim.h"

#include <dlsched.h>

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const sim_policy_names[SIM_POL_COUNT] = {
    "random", "rr", "jsq", "lwl", "p2c", "sed", "greedy", "qtable", "dqn"};

/* ---- random numbers: xoshiro256** seeded by splitmix64 ------------------- */
typedef struct {
    uint64_t s[4];
} rng;

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* uniform in (0, 1) */
static double rng_unit(rng *r) { return ((double)(rng_next(r) >> 11) + 0.5) * 0x1.0p-53; }

static double rng_exp(rng *r, double mean) { return -mean * log(rng_unit(r)); }

static double rng_normal(rng *r)
{
    return sqrt(-2 * log(rng_unit(r))) * cos(6.283185307179586 * rng_unit(r));
}

static double dist_draw(const sim_dist *d, rng *r)
{
    double v;
    switch (d->kind) {
    case SIM_DIST_CONST: v = d->a; break;
    case SIM_DIST_EXP: v = rng_exp(r, d->a); break;
    case SIM_DIST_LOGNORMAL: v = d->a * exp(d->b * rng_normal(r)); break;
    default: v = d->a + (d->b - d->a) * rng_unit(r); break;
    }
    if (d->max > 0 && v > d->max)
        v = d->max;
    return v;
}

/* ---- workload streams ------------------------------------------------------ */
typedef struct {
    const sim_scenario *sc;
    rng r;
    double t, t_end;
    int state;          /* mmpp */
    double state_until; /* mmpp */
    size_t i, lo, hi;   /* trace rows [lo, hi) */
    int pass, passes;
    double pass_len, offset;
} stream;

/* eval = 0: warm-up stream; 1: evaluation stream */
static void stream_init(stream *st, const sim_scenario *sc, int eval, double scale)
{
    memset(st, 0, sizeof *st);
    st->sc = sc;
    rng_seed(&st->r, eval ? sc->eval_seed : sc->seed);
    st->t_end = (eval ? sc->eval_s : sc->warmup_s) * scale;
    if (sc->process == SIM_ARR_MMPP) {
        st->state = 0;
        st->state_until = rng_exp(&st->r, sc->dwell_s[0]);
    }
    if (sc->process == SIM_ARR_TRACE) {
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
}

/* next request: 1, or 0 when the stream is over */
static int stream_next(stream *st, double *t_ms, double *in, double *out)
{
    const sim_scenario *sc = st->sc;
    if (sc->process == SIM_ARR_TRACE) {
        if (st->pass >= st->passes)
            return 0;
        const sim_trace_row *row = &sc->trace[st->i];
        *t_ms = 1000.0 * (st->offset + (row->t - sc->trace[st->lo].t) / sc->speedup);
        *in = row->in;
        *out = row->out;
        if (++st->i == st->hi) {
            st->i = st->lo;
            st->pass++;
            st->offset += st->pass_len;
        }
        return 1;
    }
    double t = st->t;
    switch (sc->process) {
    case SIM_ARR_POISSON:
        t += rng_exp(&st->r, 1.0 / sc->rate);
        break;
    case SIM_ARR_MMPP:
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
        break;
    default: { /* diurnal: thinning of a Poisson process at the peak rate */
        double peak = sc->rate * (1 + sc->amplitude);
        for (;;) {
            t += rng_exp(&st->r, 1.0 / peak);
            double lam = sc->rate * (1 + sc->amplitude * sin(6.283185307179586 * t / sc->period_s));
            if (rng_unit(&st->r) * peak <= lam || t > st->t_end)
                break;
        }
    }
    }
    if (t > st->t_end)
        return 0;
    st->t = t;
    *t_ms = t * 1000.0;
    *in = dist_draw(&sc->in_tokens, &st->r);
    *out = dist_draw(&sc->out_tokens, &st->r);
    return 1;
}

/* ---- the cluster ----------------------------------------------------------- */
enum { PH_QUEUED, PH_PREFILL, PH_DECODE };

typedef struct {
    double arrive, in, out, slo, prefill_ms, decode_ms, pf_end, finish_d;
    uint64_t id, ticket;
    int server, variant, phase, next;
    int slot; /* index in its server's active[] */
} req;

typedef struct {
    int type, slots, n, qhead, qtail, qlen;
    int active[SIM_MAX_SLOTS];
    double d[SIM_MAX_VAR];  /* per-variant virtual decode clocks (solo ms) */
    double tlast, busy;     /* busy: integral of n dt */
    double work_q;          /* solo ms of the queued requests */
    double ewma;            /* recent latency / SLO */
    uint32_t ver;
} server;

enum { EV_ARRIVAL, EV_PREFILL, EV_DECODE };
typedef struct {
    double t;
    uint64_t seq;
    uint32_t kind, a, b;
} event;

typedef struct sim_run sim_run;
struct sim_run {
    const sim_scenario *sc;
    const sim_options *opt;
    server srv[SIM_MAX_SERVERS];
    int ns;
    req *rq;
    int rq_cap, free_head;
    event *heap;
    size_t nh, heap_cap;
    uint64_t seq, next_id;
    double now;
    rng r;
    /* policy */
    const sim_policy_spec *pol;
    dlsched_agent *agent;
    int learning;   /* warm-up: tickets kept, outcomes observed */
    int rr;
    double rate_est, rate_t; /* arrivals per second, EWMA (tau 5 s) */
    float *feat;
    uint8_t *mask; /* the learned policy's action mask, the same for every decision */
    int n_feat, n_act;
    int by_class;  /* actions are (GPU type, variant); else (server, variant) */
    /* Q-learning across decisions: a transition's next state is the state
       of the next decision. nfeat/nmask: per request slot, that state once
       known; last: the request decided last (its next state is not known
       yet); pend_*: its outcome when it completed before the next arrival */
    float *nfeat;
    uint8_t *nmask, *has_next;
    int last;
    int pend;
    uint64_t pend_ticket;
    float pend_reward;
    /* accounting */
    uint64_t done, met, submitted;
    double acc_met, acc_sum;
    float *lat;
    size_t nlat, lat_cap;
    double t_first, t_last_arrival, t_end;
    uint64_t vcount[SIM_MAX_VAR];
    size_t nwin;
    double *win_n, *win_met, *win_rew;
    double decide_ns;
    uint64_t decide_n;
    int failed;
    sim_err *err;
};

static void run_fail(sim_run *s, const char *fmt, ...)
{
    if (s->failed)
        return;
    s->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err->msg, sizeof s->err->msg, fmt, ap);
    va_end(ap);
}

/* doubles the array p of *cap elements (first: the first size) and returns
   it; on failure returns NULL (p stays valid) and the run fails naming
   `what` */
static void *grow(sim_run *s, void *p, size_t *cap, size_t elem, size_t first, const char *what)
{
    size_t nc = *cap ? 2 * *cap : first;
    void *np = realloc(p, nc * elem);
    if (!np) {
        run_fail(s, "out of memory (%s)", what);
        return NULL;
    }
    *cap = nc;
    return np;
}

static void heap_push(sim_run *s, double t, uint32_t kind, uint32_t a, uint32_t b)
{
    if (s->nh == s->heap_cap) {
        event *nh = grow(s, s->heap, &s->heap_cap, sizeof *nh, 256, "event heap");
        if (!nh)
            return;
        s->heap = nh;
    }
    event e = {t, s->seq++, kind, a, b};
    size_t i = s->nh++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (s->heap[p].t < t || (s->heap[p].t == t && s->heap[p].seq < e.seq))
            break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = e;
}

static event heap_pop(sim_run *s)
{
    event top = s->heap[0], last = s->heap[--s->nh];
    size_t i = 0, n = s->nh;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && (s->heap[c + 1].t < s->heap[c].t ||
                          (s->heap[c + 1].t == s->heap[c].t && s->heap[c + 1].seq < s->heap[c].seq)))
            c++;
        if (last.t < s->heap[c].t || (last.t == s->heap[c].t && last.seq < s->heap[c].seq))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    s->heap[i] = last;
    return top;
}

static int req_alloc(sim_run *s)
{
    if (s->free_head < 0) {
        int nc = s->rq_cap ? 2 * s->rq_cap : 1024;
        req *nr = realloc(s->rq, (size_t)nc * sizeof *nr);
        if (!nr) {
            run_fail(s, "out of memory (requests)");
            return -1;
        }
        s->rq = nr;
        if (s->n_feat) {
            float *nf = realloc(s->nfeat, (size_t)nc * (size_t)s->n_feat * sizeof *nf);
            if (nf)
                s->nfeat = nf;
            uint8_t *nm = nf ? realloc(s->nmask, (size_t)nc * (size_t)s->n_act) : NULL;
            if (nm)
                s->nmask = nm;
            uint8_t *nh = nm ? realloc(s->has_next, (size_t)nc) : NULL;
            if (nh)
                s->has_next = nh;
            if (!nh) {
                run_fail(s, "out of memory (next states)");
                return -1;
            }
        }
        for (int i = nc - 1; i >= s->rq_cap; i--) {
            s->rq[i].next = s->free_head;
            s->free_head = i;
        }
        s->rq_cap = nc;
    }
    int i = s->free_head;
    s->free_head = s->rq[i].next;
    return i;
}

static double slow(const sim_scenario *sc, int v, int g, int n)
{
    return 1 + sc->var[v].prof[g].growth * (n > 1 ? n - 1 : 0);
}

static void srv_advance(sim_run *s, server *sv)
{
    double dt = s->now - sv->tlast;
    if (dt <= 0)
        return;
    sv->busy += dt * sv->n;
    if (sv->n)
        for (int v = 0; v < s->sc->n_var; v++)
            sv->d[v] += dt / slow(s->sc, v, sv->type, sv->n);
    sv->tlast = s->now;
}

/* the next decode completion of sv, scheduled as an event */
static void srv_reschedule(sim_run *s, int si)
{
    server *sv = &s->srv[si];
    double best = INFINITY;
    for (int k = 0; k < sv->n; k++) {
        req *r = &s->rq[sv->active[k]];
        if (r->phase != PH_DECODE)
            continue;
        double left = r->finish_d - sv->d[r->variant];
        double t = s->now + (left > 0 ? left : 0) * slow(s->sc, r->variant, sv->type, sv->n);
        if (t < best)
            best = t;
    }
    sv->ver++;
    if (best < INFINITY)
        heap_push(s, best, EV_DECODE, (uint32_t)si, sv->ver);
}

static void srv_start(sim_run *s, int si, int ri)
{
    server *sv = &s->srv[si];
    req *r = &s->rq[ri];
    srv_advance(s, sv);
    r->slot = sv->n;
    sv->active[sv->n++] = ri;
    r->phase = PH_PREFILL;
    r->pf_end = s->now + r->prefill_ms;
    heap_push(s, r->pf_end, EV_PREFILL, (uint32_t)ri, 0);
    srv_reschedule(s, si);
}

/* solo milliseconds of work the server still has (active + queued) */
static double srv_work(const sim_run *s, const server *sv)
{
    double w = sv->work_q;
    for (int k = 0; k < sv->n; k++) {
        const req *r = &s->rq[sv->active[k]];
        if (r->phase == PH_PREFILL)
            w += (r->pf_end > s->now ? r->pf_end - s->now : 0) + r->decode_ms;
        else {
            double left = r->finish_d - sv->d[r->variant];
            w += left > 0 ? left : 0;
        }
    }
    return w;
}

/* ---- the latency model's prediction (greedy, SED, features) --------------- */
static void solo_times(const sim_scenario *sc, int v, int g, double in, double out, double *pf,
                       double *dec)
{
    const sim_profile *p = &sc->var[v].prof[g];
    *pf = p->overhead_ms + in / p->prefill_tps;
    *dec = out * p->tpot_ms;
}

/* predicted latency (ms) of a request (in, out) sent now to server si as
   variant v: wait for a slot (the backlog drains through `slots` lanes at
   full-batch speed), then prefill, then decode at the batch it joins */
static double predict(const sim_run *s, int si, int v, double in, double out, double work)
{
    const server *sv = &s->srv[si];
    const sim_scenario *sc = s->sc;
    double pf, dec;
    solo_times(sc, v, sv->type, in, out, &pf, &dec);
    int ahead = sv->n + sv->qlen;
    double wait = 0;
    if (ahead >= sv->slots)
        wait = work * slow(sc, v, sv->type, sv->slots) / sv->slots;
    int nb = ahead + 1 < sv->slots ? ahead + 1 : sv->slots;
    return wait + pf + dec * slow(sc, v, sv->type, nb);
}

static int variant_loaded(const sim_scenario *sc, int v)
{
    for (int g = 0; g < sc->n_gpu; g++)
        if (sc->gpu[g].load_mask >> v & 1)
            return 1;
    return 0;
}

static int loaded(const sim_run *s, int si, int v)
{
    return (int)(s->sc->gpu[s->srv[si].type].load_mask >> v & 1);
}

/* ---- policies ---------------------------------------------------------------- */
static double slo_of(const sim_scenario *sc, double out)
{
    /* floored at 1 us: the features and the latency EWMA divide by it, and
       an SLO of 0 (slo_base_ms = 0, no output tokens) made them NaN */
    double slo = sc->slo_base_ms + sc->slo_per_token_ms * out;
    return slo > 1e-3 ? slo : 1e-3;
}

/* greedy: the most accurate variant whose predicted latency meets the SLO,
   on the server with the earliest predicted finish; if none meets it, the
   (server, variant) with the earliest predicted finish */
static void pick_greedy(const sim_run *s, double in, double out, const double *work, int *so,
                        int *vo)
{
    const sim_scenario *sc = s->sc;
    double slo = slo_of(sc, out);
    int best_s = -1, best_v = -1;
    double best_acc = -1, best_t = INFINITY;
    int fb_s = 0, fb_v = 0;
    double fb_t = INFINITY;
    for (int si = 0; si < s->ns; si++)
        for (int v = 0; v < sc->n_var; v++) {
            if (!loaded(s, si, v))
                continue;
            double t = predict(s, si, v, in, out, work[si]);
            if (t < fb_t)
                fb_t = t, fb_s = si, fb_v = v;
            if (t <= slo) {
                double acc = sc->var[v].accuracy;
                if (acc > best_acc || (acc == best_acc && t < best_t))
                    best_acc = acc, best_t = t, best_s = si, best_v = v;
            }
        }
    if (best_s >= 0)
        *so = best_s, *vo = best_v;
    else
        *so = fb_s, *vo = fb_v;
}

/* the heuristics with a fixed variant: only servers that load it */
static int pick_heuristic(sim_run *s, int kind, int v, double in, double out, const double *work)
{
    const sim_scenario *sc = s->sc;
    int cand[SIM_MAX_SERVERS], nc = 0;
    for (int si = 0; si < s->ns; si++)
        if (loaded(s, si, v))
            cand[nc++] = si;
    int best = cand[0];
    double bv = INFINITY;
    switch (kind) {
    case SIM_POL_RANDOM:
        return cand[rng_next(&s->r) % (uint64_t)nc];
    case SIM_POL_RR:
        return cand[s->rr++ % nc];
    case SIM_POL_P2C: {
        int a = cand[rng_next(&s->r) % (uint64_t)nc], b = cand[rng_next(&s->r) % (uint64_t)nc];
        const server *x = &s->srv[a], *y = &s->srv[b];
        return (double)(y->n + y->qlen) / y->slots < (double)(x->n + x->qlen) / x->slots ? b : a;
    }
    default:
        break;
    }
    /* argmin with random tie-breaking (reservoir over ties) */
    int ties = 0;
    for (int k = 0; k < nc; k++) {
        const server *sv = &s->srv[cand[k]];
        double val;
        if (kind == SIM_POL_JSQ)
            val = (double)(sv->n + sv->qlen) / sv->slots;
        else if (kind == SIM_POL_LWL)
            val = work[cand[k]] / sv->slots;
        else { /* SIM_POL_SED */
            double pf, dec;
            solo_times(sc, v, sv->type, in, out, &pf, &dec);
            val = (double)(sv->n + sv->qlen + 1) / sv->slots * (pf + dec);
        }
        if (val < bv) {
            bv = val, best = cand[k], ties = 1;
        } else if (val == bv && rng_next(&s->r) % (uint64_t)++ties == 0)
            best = cand[k];
    }
    return best;
}

/* learned policies: features a real host has. See dlsched-sim(1), FEATURES. */
static double clampd(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

static int dqn_features(sim_run *s, double in, double out, const double *work)
{
    const sim_scenario *sc = s->sc;
    double slo = slo_of(sc, out);
    int k = 0;
    float *f = s->feat;
    for (int si = 0; si < s->ns; si++) {
        const server *sv = &s->srv[si];
        f[k++] = (float)((double)sv->n / sv->slots);
        f[k++] = (float)clampd((double)sv->qlen / sv->slots, 0, 8);
        f[k++] = (float)clampd(work[si] / sv->slots / slo, 0, 8);
        f[k++] = (float)clampd(sv->ewma, 0, 4);
        for (int v = 0; v < sc->n_var; v++)
            f[k++] = loaded(s, si, v)
                         ? (float)clampd((slo - predict(s, si, v, in, out, work[si])) / slo, -2, 1)
                         : 0.0f;
    }
    f[k++] = (float)(log1p(in) / 10);
    f[k++] = (float)(log1p(out) / 7);
    f[k++] = (float)clampd(s->rate_est / sc->capacity, 0, 4);
    return k;
}

/* class actions: the same per GPU type, with the slack of the type's best
   server for each variant */
static int class_features(sim_run *s, double in, double out, const double *work)
{
    const sim_scenario *sc = s->sc;
    double slo = slo_of(sc, out);
    int k = 0;
    float *f = s->feat;
    for (int g = 0; g < sc->n_gpu; g++) {
        double occ_min = INFINITY, occ_sum = 0, work_min = INFINITY, ewma = 0;
        int cnt = 0;
        double best[SIM_MAX_VAR];
        for (int v = 0; v < sc->n_var; v++)
            best[v] = -INFINITY;
        for (int si = 0; si < s->ns; si++) {
            const server *sv = &s->srv[si];
            if (sv->type != g)
                continue;
            double occ = (double)(sv->n + sv->qlen) / sv->slots;
            occ_min = occ < occ_min ? occ : occ_min;
            occ_sum += occ;
            double w = work[si] / sv->slots / slo;
            work_min = w < work_min ? w : work_min;
            ewma += sv->ewma;
            cnt++;
            for (int v = 0; v < sc->n_var; v++)
                if (loaded(s, si, v)) {
                    double sl = (slo - predict(s, si, v, in, out, work[si])) / slo;
                    if (sl > best[v])
                        best[v] = sl;
                }
        }
        f[k++] = (float)clampd(occ_min, 0, 8);
        f[k++] = (float)clampd(occ_sum / cnt, 0, 8);
        f[k++] = (float)clampd(work_min, 0, 8);
        f[k++] = (float)clampd(ewma / cnt, 0, 4);
        for (int v = 0; v < sc->n_var; v++)
            f[k++] = best[v] > -INFINITY ? (float)clampd(best[v], -2, 1) : 0.0f;
    }
    f[k++] = (float)(log1p(in) / 10);
    f[k++] = (float)(log1p(out) / 7);
    f[k++] = (float)clampd(s->rate_est / sc->capacity, 0, 4);
    return k;
}

static int dqn_n_features(const sim_scenario *sc)
{
    if (sc->dqn_class)
        return sc->n_gpu * (4 + sc->n_var) + 3;
    return sc->n_servers * (4 + sc->n_var) + 3;
}

/* qtable: a coarse state (arrival rate level, output size class, the
   predicted slack of the most accurate variant on its best server, and for
   each GPU type the occupancy of its least loaded server); an action is a
   (GPU type, variant) pair, the host routes within the type to the server
   with the earliest predicted finish */
static int qt_features(sim_run *s, double in, double out, const double *work)
{
    const sim_scenario *sc = s->sc;
    int k = 0;
    s->feat[k++] = (float)clampd(s->rate_est / sc->capacity, 0, 1.999);
    /* output size on a log scale: 20 tokens or fewer .. 1000 or more */
    s->feat[k++] = (float)clampd((log1p(out) - log(21.0)) / (log(1001.0) - log(21.0)), 0, 0.999);
    /* predicted slack of the most accurate variant on its best server */
    int top = 0;
    for (int v = 1; v < sc->n_var; v++)
        if (sc->var[v].accuracy > sc->var[top].accuracy)
            top = v;
    double slo = slo_of(sc, out), slack = -INFINITY;
    for (int si = 0; si < s->ns; si++)
        if (loaded(s, si, top)) {
            double sl = (slo - predict(s, si, top, in, out, work[si])) / slo;
            slack = sl > slack ? sl : slack;
        }
    s->feat[k++] = (float)clampd(slack, -0.5, 0.499);
    for (int g = 0; g < sc->n_gpu; g++) {
        double best = INFINITY;
        for (int si = 0; si < s->ns; si++)
            if (s->srv[si].type == g) {
                double occ = (double)(s->srv[si].n + s->srv[si].qlen) / s->srv[si].slots;
                if (occ < best)
                    best = occ;
            }
        s->feat[k++] = (float)clampd(best, 0, 1.499);
    }
    return k;
}

static int qt_server(const sim_run *s, int g, int v, double in, double out, const double *work)
{
    int best = -1;
    double bt = INFINITY;
    for (int si = 0; si < s->ns; si++)
        if (s->srv[si].type == g && loaded(s, si, v)) {
            double t = predict(s, si, v, in, out, work[si]);
            if (t < bt)
                bt = t, best = si;
        }
    return best;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* the state just built is the next state of the request decided last */
static int give_next(sim_run *s, const dlsched_state_t *st)
{
    if (s->pend) {
        /* it completed before this arrival: its transition is complete now */
        s->pend = 0;
        int rc = dlsched_observe(s->agent, s->pend_ticket, s->pend_reward, st, 0);
        if (rc) {
            run_fail(s, "dlsched_observe: %s", dlsched_last_error());
            return -1;
        }
    } else if (s->last >= 0) {
        memcpy(s->nfeat + (size_t)s->last * (size_t)s->n_feat, st->features,
               (size_t)s->n_feat * sizeof(float));
        memcpy(s->nmask + (size_t)s->last * (size_t)s->n_act, st->mask, (size_t)s->n_act);
        s->has_next[s->last] = 1;
    }
    return 0;
}

/* one decision: fills server, variant and (learning) ticket */
static int decide(sim_run *s, req *r)
{
    const sim_scenario *sc = s->sc;
    const sim_policy_spec *p = s->pol;
    double work[SIM_MAX_SERVERS];
    uint64_t t0 = s->opt->time_decisions ? now_ns() : 0;
    int kind = p->kind;
    /* the servers' remaining work: least-work-left, greedy's prediction and
       the learned policies' features */
    if (kind == SIM_POL_LWL || kind >= SIM_POL_GREEDY)
        for (int si = 0; si < s->ns; si++)
            work[si] = srv_work(s, &s->srv[si]);
    r->ticket = 0;
    if (kind == SIM_POL_GREEDY) {
        pick_greedy(s, r->in, r->out, work, &r->server, &r->variant);
    } else if (kind == SIM_POL_DQN || kind == SIM_POL_QTABLE) {
        int gs = 0, gv = 0;
        if (s->learning) /* the apprentice's hint; not used in evaluation */
            pick_greedy(s, r->in, r->out, work, &gs, &gv);
        dlsched_state_t st = {0};
        int nf;
        if (kind == SIM_POL_QTABLE)
            nf = qt_features(s, r->in, r->out, work);
        else if (s->by_class)
            nf = class_features(s, r->in, r->out, work);
        else
            nf = dqn_features(s, r->in, r->out, work);
        st.hint = (s->by_class ? s->srv[gs].type : gs) * sc->n_var + gv;
        st.features = s->feat;
        st.n_features = (uint32_t)nf;
        st.mask = s->mask;
        st.n_mask = (uint32_t)s->n_act;
        if (!s->learning)
            st.hint = -1;
        else if (give_next(s, &st))
            return -1;
        dlsched_decision_t d;
        int rc = dlsched_act(s->agent, &st, s->learning ? 0 : DLSCHED_ACT_GREEDY, &d);
        if (rc) {
            run_fail(s, "dlsched_act: %s", dlsched_last_error());
            return -1;
        }
        r->ticket = d.ticket;
        if (s->learning) {
            s->last = (int)(r - s->rq);
            s->has_next[s->last] = 0;
        }
        r->variant = d.action % sc->n_var;
        if (!s->by_class)
            r->server = d.action / sc->n_var;
        else
            r->server = qt_server(s, d.action / sc->n_var, r->variant, r->in, r->out, work);
    } else {
        r->variant = p->variant;
        r->server = pick_heuristic(s, kind, p->variant, r->in, r->out, work);
    }
    if (s->opt->time_decisions) {
        s->decide_ns += (double)(now_ns() - t0);
        s->decide_n++;
    }
    return 0;
}

/* ---- accounting ---------------------------------------------------------- */
static void account(sim_run *s, req *r)
{
    const sim_scenario *sc = s->sc;
    double lat = s->now - r->arrive;
    int met = lat <= r->slo;
    double acc = sc->var[r->variant].accuracy;
    double reward = met ? acc : -sc->miss_penalty;
    server *sv = &s->srv[r->server];
    sv->ewma += 0.1 * (lat / r->slo - sv->ewma);
    s->done++;
    s->met += (uint64_t)met;
    s->acc_sum += acc;
    if (met)
        s->acc_met += acc;
    s->vcount[r->variant]++;
    if (s->opt->on_complete)
        s->opt->on_complete(s->opt->user, r->id, r->arrive, s->now, r->server, r->variant);
    if (s->nlat == s->lat_cap) {
        float *nl = grow(s, s->lat, &s->lat_cap, sizeof *nl, 4096, "latencies");
        if (!nl)
            return;
        s->lat = nl;
    }
    s->lat[s->nlat++] = (float)lat;
    size_t w = (size_t)((r->arrive - s->t_first) / (sc->window_s * 1000.0));
    if (w >= s->nwin) {
        size_t nw = w + 64;
        double *a = realloc(s->win_n, nw * sizeof *a), *b = a ? realloc(s->win_met, nw * sizeof *b) : NULL,
               *c = b ? realloc(s->win_rew, nw * sizeof *c) : NULL;
        if (a)
            s->win_n = a;
        if (b)
            s->win_met = b;
        if (c)
            s->win_rew = c;
        if (!a || !b || !c) {
            run_fail(s, "out of memory (windows)");
            return;
        }
        for (size_t i = s->nwin; i < nw; i++)
            s->win_n[i] = s->win_met[i] = s->win_rew[i] = 0;
        s->nwin = nw;
    }
    s->win_n[w]++;
    s->win_met[w] += met;
    s->win_rew[w] += reward;
    if (s->learning && r->ticket) {
        int ri = (int)(r - s->rq), rc = 0;
        if (s->has_next[ri]) {
            dlsched_state_t next = {.features = s->nfeat + (size_t)ri * (size_t)s->n_feat,
                                    .n_features = (uint32_t)s->n_feat,
                                    .mask = s->nmask + (size_t)ri * (size_t)s->n_act,
                                    .n_mask = (uint32_t)s->n_act,
                                    .hint = -1};
            rc = dlsched_observe(s->agent, r->ticket, (float)reward, &next, 0);
        } else {
            /* decided last: the next decision will complete the transition */
            s->pend = 1;
            s->pend_ticket = r->ticket;
            s->pend_reward = (float)reward;
            s->last = -1;
        }
        if (rc)
            run_fail(s, "dlsched_observe: %s", dlsched_last_error());
    }
}

static void complete(sim_run *s, int si, int ri)
{
    server *sv = &s->srv[si];
    req *r = &s->rq[ri];
    int k = r->slot;
    sv->active[k] = sv->active[--sv->n];
    s->rq[sv->active[k]].slot = k;
    account(s, r);
    r->next = s->free_head;
    s->free_head = ri;
    while (sv->n < sv->slots && sv->qlen) {
        int qi = sv->qhead;
        sv->qhead = s->rq[qi].next;
        if (--sv->qlen == 0)
            sv->qtail = -1;
        sv->work_q -= s->rq[qi].prefill_ms + s->rq[qi].decode_ms;
        if (sv->qlen == 0)
            sv->work_q = 0; /* no drift */
        srv_start(s, si, qi);
    }
    srv_reschedule(s, si);
}

static void arrive(sim_run *s, double t, double in, double out)
{
    const sim_scenario *sc = s->sc;
    int ri = req_alloc(s);
    if (ri < 0)
        return;
    req *r = &s->rq[ri];
    memset(r, 0, sizeof *r);
    r->arrive = t;
    r->in = in;
    r->out = out;
    r->slo = slo_of(sc, out);
    r->id = s->next_id++;
    /* arrival-rate estimate: exponentially decaying count, tau = 5 s */
    double dt = (t - s->rate_t) / 1000.0;
    s->rate_est = s->rate_est * exp(-dt / 5.0) + 1.0 / 5.0;
    s->rate_t = t;
    if (decide(s, r))
        return;
    r = &s->rq[ri];
    server *sv = &s->srv[r->server];
    solo_times(sc, r->variant, sv->type, in, out, &r->prefill_ms, &r->decode_ms);
    s->submitted++;
    if (sv->n < sv->slots) {
        srv_start(s, r->server, ri);
    } else {
        r->phase = PH_QUEUED;
        r->next = -1;
        if (sv->qlen)
            s->rq[sv->qtail].next = ri;
        else
            sv->qhead = ri;
        sv->qtail = ri;
        sv->qlen++;
        sv->work_q += r->prefill_ms + r->decode_ms;
    }
}

/* runs a stream to the end and drains the cluster */
static void simulate(sim_run *s, stream *st, const char *phase)
{
    double t, in, out;
    int have = stream_next(st, &t, &in, &out);
    uint64_t n_arr = 0;
    double next_report = 0;
    uint64_t t_wall = now_ns();
    s->t_first = have ? t : 0;
    s->rate_t = s->t_first;
    if (have)
        heap_push(s, t, EV_ARRIVAL, 0, 0);
    while (s->nh && !s->failed) {
        event e = heap_pop(s);
        /* a superseded decode event must not move the clock: after the last
           completion it would stretch t_end (the utilisation's span) */
        if (e.kind == EV_DECODE && e.b != s->srv[e.a].ver)
            continue;
        s->now = e.t;
        if (e.kind == EV_ARRIVAL) {
            arrive(s, t, in, out);
            s->t_last_arrival = t;
            n_arr++;
            have = stream_next(st, &t, &in, &out);
            if (have)
                heap_push(s, t, EV_ARRIVAL, 0, 0);
            if (!s->opt->quiet && phase && s->opt->progress && (n_arr & 4095) == 0) {
                double frac = s->sc->process == SIM_ARR_TRACE
                                  ? (double)(st->pass * (st->hi - st->lo) + st->i - st->lo) /
                                        (double)((st->hi - st->lo) * (size_t)(st->passes ? st->passes : 1))
                                  : s->now / 1000.0 / st->t_end;
                if (frac >= next_report) {
                    fprintf(stderr, "\r  %-14s %-8s %3.0f%%  (%.1f s)", s->pol->name, phase,
                            100 * frac, (double)(now_ns() - t_wall) / 1e9);
                    next_report = frac + 0.1;
                }
            }
        } else if (e.kind == EV_PREFILL) {
            req *r = &s->rq[e.a];
            server *sv = &s->srv[r->server];
            srv_advance(s, sv);
            r->phase = PH_DECODE;
            r->finish_d = sv->d[r->variant] + r->decode_ms;
            srv_reschedule(s, r->server);
        } else {
            server *sv = &s->srv[e.a];
            if (e.b != sv->ver)
                continue; /* superseded */
            srv_advance(s, sv);
            /* the request due now: the earliest-finishing decoder */
            int best = -1;
            double bt = INFINITY;
            for (int k = 0; k < sv->n; k++) {
                req *r = &s->rq[sv->active[k]];
                if (r->phase != PH_DECODE)
                    continue;
                double left = r->finish_d - sv->d[r->variant];
                if (left < bt)
                    bt = left, best = sv->active[k];
            }
            if (best >= 0)
                complete(s, (int)e.a, best);
        }
    }
    s->t_end = s->now;
    if (!s->opt->quiet && phase)
        fprintf(stderr, "\r  %-14s %-8s done  (%.1f s)\n", s->pol->name, phase,
                (double)(now_ns() - t_wall) / 1e9);
}

static int run_init(sim_run *s, const sim_scenario *sc, const sim_options *opt,
                    const sim_policy_spec *p, sim_err *err)
{
    memset(s, 0, sizeof *s);
    s->sc = sc;
    s->opt = opt;
    s->pol = p;
    s->err = err;
    s->free_head = -1;
    s->last = -1;
    rng_seed(&s->r, sc->eval_seed * 0x9e3779b97f4a7c15ull + 7);
    for (int g = 0; g < sc->n_gpu; g++)
        for (int c = 0; c < sc->gpu[g].count; c++) {
            server *sv = &s->srv[s->ns++];
            sv->type = g;
            sv->slots = sc->gpu[g].slots;
            sv->qtail = -1;
        }
    return 0;
}

static void run_reset_cluster(sim_run *s)
{
    for (int i = 0; i < s->ns; i++) {
        server *sv = &s->srv[i];
        int type = sv->type, slots = sv->slots;
        memset(sv, 0, sizeof *sv);
        sv->type = type;
        sv->slots = slots;
        sv->qtail = -1;
    }
    s->nh = 0;
    s->free_head = -1;
    for (int i = s->rq_cap - 1; i >= 0; i--) {
        s->rq[i].next = s->free_head;
        s->free_head = i;
    }
    s->done = s->met = s->submitted = 0;
    s->acc_met = s->acc_sum = 0;
    s->nlat = 0;
    memset(s->vcount, 0, sizeof s->vcount);
    for (size_t i = 0; i < s->nwin; i++)
        s->win_n[i] = s->win_met[i] = s->win_rew[i] = 0;
    s->rate_est = 0;
    s->now = 0;
    s->decide_ns = 0;
    s->decide_n = 0;
}

static void run_free(sim_run *s)
{
    free(s->rq);
    free(s->heap);
    free(s->lat);
    free(s->win_n);
    free(s->win_met);
    free(s->win_rew);
    free(s->feat);
    free(s->mask);
    free(s->nfeat);
    free(s->nmask);
    free(s->has_next);
    dlsched_agent_free(s->agent);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static double pct(const float *v, size_t n, double q)
{
    if (!n)
        return 0;
    double pos = q * (double)(n - 1);
    size_t i = (size_t)pos;
    double f = pos - (double)i;
    return i + 1 < n ? v[i] * (1 - f) + v[i + 1] * f : v[i];
}

/* a learned policy's agent: defaults, then the scenario's own keys */
static int make_agent(sim_run *s, sim_err *err)
{
    const sim_scenario *sc = s->sc;
    char spec[4096];
    int dqn = s->pol->kind == SIM_POL_DQN;
    if (dqn) {
        s->n_feat = dqn_n_features(sc);
        s->n_act = (sc->dqn_class ? sc->n_gpu : sc->n_servers) * sc->n_var;
        snprintf(spec, sizeof spec,
                 "algo=dqn device=cpu n_features=%d n_actions=%d hidden=64,64 lr=0.0005 gamma=0.9 "
                 "batch=64 learning_starts=1000 train_every=4 target_update=1000 "
                 "epsilon_start=0.1 epsilon_end=0.01 epsilon_decay_steps=100000 replay=100000 "
                 "apprentice=%llu apprentice_agreement=1 seed=%llu %s",
                 s->n_feat, s->n_act, (unsigned long long)sc->apprentice,
                 (unsigned long long)sc->seed, sc->dqn_config);
    } else {
        s->n_feat = 3 + sc->n_gpu;
        s->n_act = sc->n_gpu * sc->n_var;
        char bins[256] = "4,5,4", lo[256] = "0,0,-0.5", hi[256] = "2,1,0.5";
        for (int g = 0; g < sc->n_gpu; g++) {
            strcat(bins, ",3");
            strcat(lo, ",0");
            strcat(hi, ",1.5");
        }
        snprintf(spec, sizeof spec,
                 "algo=qtable n_features=%d n_actions=%d bins=%s feature_low=%s feature_high=%s "
                 "lr=0.05 gamma=0 epsilon_start=0.2 epsilon_end=0.02 epsilon_decay_steps=100000 "
                 "apprentice=%llu apprentice_agreement=1 seed=%llu %s",
                 s->n_feat, s->n_act, bins, lo, hi, (unsigned long long)sc->apprentice,
                 (unsigned long long)sc->seed, sc->qtable_config);
    }
    dlsched_config *cfg = NULL;
    int rc = dlsched_config_new(&cfg);
    if (!rc)
        rc = dlsched_config_parse(cfg, spec);
    if (!rc)
        rc = dlsched_agent_new(cfg, &s->agent);
    dlsched_config_free(cfg);
    if (rc) {
        snprintf(err->msg, sizeof err->msg, "[learning] %s: %.400s", dqn ? "dqn" : "qtable",
                 dlsched_last_error());
        return -1;
    }
    s->feat = calloc((size_t)s->n_feat, sizeof *s->feat);
    s->mask = calloc((size_t)s->n_act, 1);
    if (!s->feat || !s->mask) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return -1;
    }
    /* the allowed actions never change: (GPU type, variant) or (server,
       variant) pairs whose variant is loaded there */
    s->by_class = !dqn || sc->dqn_class;
    for (int i = 0; i < (s->by_class ? sc->n_gpu : s->ns); i++)
        for (int v = 0; v < sc->n_var; v++)
            s->mask[i * sc->n_var + v] = s->by_class ? (uint8_t)(sc->gpu[i].load_mask >> v & 1)
                                                     : (uint8_t)loaded(s, i, v);
    return 0;
}

int sim_check_learning(const sim_scenario *sc, const sim_policy_spec *p, sim_err *err)
{
    if (p->kind != SIM_POL_DQN && p->kind != SIM_POL_QTABLE)
        return 0;
    sim_options opt = {.quiet = 1};
    sim_run *s = malloc(sizeof *s);
    if (!s) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return -1;
    }
    run_init(s, sc, &opt, p, err);
    int rc = make_agent(s, err);
    run_free(s);
    free(s);
    return rc;
}

int sim_run_policy(const sim_scenario *sc, const sim_policy_spec *p, const sim_options *opt,
                   sim_result *out, sim_err *err)
{
    sim_run *s;
    stream st;
    memset(out, 0, sizeof *out);
    if (p->kind < SIM_POL_GREEDY &&
        (p->variant < 0 || p->variant >= sc->n_var || !variant_loaded(sc, p->variant))) {
        snprintf(err->msg, sizeof err->msg, "policy '%s': its variant is loaded on no GPU type",
                 p->name);
        return -1;
    }
    s = malloc(sizeof *s);
    if (!s) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return -1;
    }
    run_init(s, sc, opt, p, err);
    snprintf(out->name, sizeof out->name, "%s", p->name);
    double scale = opt->scale > 0 ? opt->scale : 1;
    int learned = p->kind == SIM_POL_DQN || p->kind == SIM_POL_QTABLE;
    if (learned) {
        if (make_agent(s, err))
            goto fail;
        uint64_t t0 = now_ns();
        s->learning = 1;
        stream_init(&st, sc, 0, scale);
        simulate(s, &st, "warm-up");
        if (!s->failed && s->pend &&
            dlsched_observe(s->agent, s->pend_ticket, s->pend_reward, NULL, DLSCHED_OBS_TERMINAL))
            run_fail(s, "dlsched_observe: %s", dlsched_last_error());
        s->pend = 0;
        if (s->failed)
            goto fail;
        out->train_s = (double)(now_ns() - t0) / 1e9;
        /* the learning curve: per warm-up window, mean reward and SLO attainment */
        size_t nw = 0;
        for (size_t i = 0; i < s->nwin; i++)
            if (s->win_n[i] > 0)
                nw = i + 1;
        out->n_learn = nw;
        out->learn_reward = calloc(nw ? nw : 1, sizeof(double));
        out->learn_attain = calloc(nw ? nw : 1, sizeof(double));
        if (!out->learn_reward || !out->learn_attain) {
            snprintf(err->msg, sizeof err->msg, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < nw; i++) {
            out->learn_reward[i] = s->win_n[i] > 0 ? s->win_rew[i] / s->win_n[i] : NAN;
            out->learn_attain[i] = s->win_n[i] > 0 ? s->win_met[i] / s->win_n[i] : NAN;
        }
        s->learning = 0;
        run_reset_cluster(s);
    }
    stream_init(&st, sc, 1, scale);
    simulate(s, &st, learned ? "evaluate" : NULL);
    if (s->failed)
        goto fail;
    if (s->done != s->submitted) {
        snprintf(err->msg, sizeof err->msg, "internal: %llu requests submitted, %llu completed",
                 (unsigned long long)s->submitted, (unsigned long long)s->done);
        goto fail;
    }
    double dur = (s->t_last_arrival - s->t_first) / 1000.0;
    if (dur <= 0)
        dur = 1e-9;
    out->n = s->done;
    out->submitted = s->submitted;
    out->met = s->met;
    out->duration_s = dur;
    out->slo_attainment = s->done ? (double)s->met / (double)s->done : 0;
    out->goodput = (double)s->met / dur;
    out->weighted_goodput = s->acc_met / dur;
    out->mean_accuracy = s->done ? s->acc_sum / (double)s->done : 0;
    double sum = 0;
    for (size_t i = 0; i < s->nlat; i++)
        sum += s->lat[i];
    out->mean_ms = s->nlat ? sum / (double)s->nlat : 0;
    qsort(s->lat, s->nlat, sizeof *s->lat, cmp_float);
    out->p50_ms = pct(s->lat, s->nlat, 0.50);
    out->p95_ms = pct(s->lat, s->nlat, 0.95);
    out->p99_ms = pct(s->lat, s->nlat, 0.99);
    double span = s->t_end > 0 ? s->t_end : 1e-9;
    for (int g = 0; g < sc->n_gpu; g++) {
        double busy = 0, cap = 0;
        for (int i = 0; i < s->ns; i++)
            if (s->srv[i].type == g) {
                busy += s->srv[i].busy;
                cap += s->srv[i].slots * span;
            }
        out->util[g] = cap > 0 ? busy / cap : 0;
    }
    memcpy(out->variant_count, s->vcount, sizeof s->vcount);
    out->decision_ns = s->decide_n ? s->decide_ns / (double)s->decide_n : 0;
    size_t nw = (size_t)ceil(dur / sc->window_s);
    if (nw > s->nwin)
        nw = s->nwin;
    out->n_windows = nw;
    out->window_attain = calloc(nw ? nw : 1, sizeof(double));
    if (!out->window_attain) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < nw; i++)
        out->window_attain[i] = s->win_n[i] > 0 ? s->win_met[i] / s->win_n[i] : NAN;
    run_free(s);
    free(s);
    return 0;
fail:
    run_free(s);
    free(s);
    sim_result_free(out);
    return -1;
}

void sim_result_free(sim_result *r)
{
    free(r->window_attain);
    free(r->learn_reward);
    free(r->learn_attain);
    r->window_attain = r->learn_reward = r->learn_attain = NULL;
}

/* ---- policy names: "jsq:small", "greedy", "dqn" ----------------------------- */

int sim_policy_parse(const sim_scenario *sc, const char *name, sim_policy_spec *out, sim_err *err)
{
    char base[48];
    const char *colon = strchr(name, ':');
    size_t bl = colon ? (size_t)(colon - name) : strlen(name);
    if (bl >= sizeof base || strlen(name) >= sizeof out->name) {
        snprintf(err->msg, sizeof err->msg, "policy '%s': name too long", name);
        return -1;
    }
    memcpy(base, name, bl);
    base[bl] = 0;
    memset(out, 0, sizeof *out);
    out->kind = -1;
    for (int k = 0; k < SIM_POL_COUNT; k++)
        if (!strcmp(base, sim_policy_names[k]))
            out->kind = k;
    if (out->kind < 0) {
        snprintf(err->msg, sizeof err->msg,
                 "policy '%s': unknown (random, rr, jsq, lwl, p2c, sed, each as NAME:VARIANT; "
                 "greedy, qtable, dqn)", name);
        return -1;
    }
    snprintf(out->name, sizeof out->name, "%s", name);
    out->variant = -1;
    if (out->kind >= SIM_POL_GREEDY) {
        if (colon) {
            snprintf(err->msg, sizeof err->msg, "policy '%s': %s chooses the variant itself",
                     name, base);
            return -1;
        }
        return 0;
    }
    if (!colon) {
        if (sc->n_var == 1 && !variant_loaded(sc, 0)) {
            snprintf(err->msg, sizeof err->msg, "policy '%s': no GPU type loads variant '%s'",
                     name, sc->var[0].name);
            return -1;
        }
        if (sc->n_var != 1) {
            snprintf(err->msg, sizeof err->msg, "policy '%s': name a variant, e.g. %s:%s", name,
                     base, sc->var[0].name);
            return -1;
        }
        out->variant = 0;
        return 0;
    }
    for (int v = 0; v < sc->n_var; v++)
        if (!strcmp(colon + 1, sc->var[v].name))
            out->variant = v;
    if (out->variant < 0) {
        snprintf(err->msg, sizeof err->msg, "policy '%s': the scenario has no variant '%s'", name,
                 colon + 1);
        return -1;
    }
    if (!variant_loaded(sc, out->variant)) {
        snprintf(err->msg, sizeof err->msg, "policy '%s': no GPU type loads variant '%s'", name,
                 colon + 1);
        return -1;
    }
    return 0;
}

size_t sim_default_policies(const sim_scenario *sc, sim_policy_spec *out, size_t cap)
{
    size_t n = 0;
    for (int k = 0; k < SIM_POL_GREEDY; k++)
        for (int v = 0; v < sc->n_var; v++) {
            if (!variant_loaded(sc, v))
                continue; /* a fixed-variant heuristic would have no server */
            if (n == cap)
                return n;
            out[n].kind = k;
            out[n].variant = v;
            if (sc->n_var == 1)
                snprintf(out[n].name, sizeof out[n].name, "%s", sim_policy_names[k]);
            else
                snprintf(out[n].name, sizeof out[n].name, "%s:%s", sim_policy_names[k],
                         sc->var[v].name);
            n++;
        }
    for (int k = SIM_POL_GREEDY; k < SIM_POL_COUNT && n < cap; k++) {
        out[n].kind = k;
        out[n].variant = -1;
        snprintf(out[n].name, sizeof out[n].name, "%s", sim_policy_names[k]);
        n++;
    }
    return n;
}
