/*
 * engine.c - dlsched-sim's event loop: arrivals from a stream, the policy's
 * decision for each, prefill and decode completions; the accounting of
 * completed requests and a policy's results (sim_run_policy)
 */
#define _POSIX_C_SOURCE 200809L
#include "arrivals.h"
#include "simint.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void sim_run_fail(sim_run *s, const char *fmt, ...)
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
        sim_run_fail(s, "out of memory (%s)", what);
        return NULL;
    }
    *cap = nc;
    return np;
}

void sim_heap_push(sim_run *s, double t, uint32_t kind, uint32_t a, uint32_t b)
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

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* one decision: fills server, variant and (learning) ticket */
static int decide(sim_run *s, req *r)
{
    const sim_policy_spec *p = s->pol;
    double work[SIM_MAX_SERVERS];
    uint64_t t0 = s->opt->time_decisions ? now_ns() : 0;
    int kind = p->kind;
    /* the servers' remaining work: least-work-left, greedy's prediction and
       the learned policies' features */
    if (kind == SIM_POL_LWL || kind >= SIM_POL_GREEDY)
        for (int si = 0; si < s->ns; si++)
            work[si] = sim_srv_work(s, &s->srv[si]);
    r->ticket = 0;
    if (kind == SIM_POL_GREEDY) {
        sim_pick_greedy(s, r->in, r->out, work, &r->server, &r->variant);
    } else if (kind == SIM_POL_DQN || kind == SIM_POL_QTABLE) {
        if (sim_decide_learned(s, r, work))
            return -1;
    } else if (kind >= SIM_POL_FEWEST_WAITING) {
        r->variant = p->variant;
        r->server = sim_pick_kv(s, kind, p->variant, r);
    } else {
        r->variant = p->variant;
        r->server = sim_pick_heuristic(s, kind, p->variant, r->in, r->out, work);
    }
    if (r->variant < 0) /* a pool policy: the server's own variant */
        r->variant = sim_server_variant(s, r->server);
    if (s->gw_on)
        sim_gw_routed(s, r);
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
    if (s->nttft == s->ttft_cap) {
        float *nt = grow(s, s->ttft, &s->ttft_cap, sizeof *nt, 4096, "latencies");
        if (!nt)
            return;
        s->ttft = nt;
    }
    s->ttft[s->nttft++] = (float)(r->pf_end - r->arrive);
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
            sim_run_fail(s, "out of memory (windows)");
            return;
        }
        for (size_t i = s->nwin; i < nw; i++)
            s->win_n[i] = s->win_met[i] = s->win_rew[i] = 0;
        s->nwin = nw;
    }
    s->win_n[w]++;
    s->win_met[w] += met;
    s->win_rew[w] += reward;
    /* the learned agent hears of outcomes while requests arrive; the
       cluster's drain after the last arrival is the simulation's end, not
       the service's (a server goes on taking requests): those tickets stay
       unobserved, as at a restart */
    if (s->learning && r->ticket && !s->arrivals_over) {
        int ri = (int)(r - s->rq), rc = 0;
        if (s->has_next[ri]) {
            dlsched_state_t next = {.features = s->nfeat + (size_t)ri * (size_t)s->n_feat,
                                    .n_features = (uint32_t)s->n_feat,
                                    .mask = s->nmask + (size_t)ri * (size_t)s->n_act,
                                    .n_mask = (uint32_t)s->n_act,
                                    .hint = -1};
            rc = dlsched_observe(s->agent, r->ticket, (float)reward, &next, 0);
            /* a learned policy that piles up more requests than the agent's
               ticket_capacity: the oldest tickets expired (counted there) */
            if (rc == DLSCHED_ETICKET)
                rc = 0;
        } else {
            /* decided last: the next decision will complete the transition */
            s->pend = 1;
            s->pend_ticket = r->ticket;
            s->pend_reward = (float)reward;
            s->last = -1;
        }
        if (rc)
            sim_run_fail(s, "dlsched_observe: %s", dlsched_last_error());
    }
}

static void complete(sim_run *s, int si, int ri)
{
    if (s->sc->kv)
        sim_kv_release(s, si, ri);
    sim_srv_remove(s, si, ri);
    account(s, &s->rq[ri]);
    sim_req_free(s, ri);
    sim_srv_fill(s, si);
}

static void arrive(sim_run *s, const sim_stream *st, double t, double in, double out)
{
    const sim_scenario *sc = s->sc;
    int ri = sim_req_alloc(s);
    if (ri < 0)
        return;
    req *r = &s->rq[ri];
    memset(r, 0, sizeof *r);
    r->arrive = t;
    r->in = in;
    r->out = out;
    r->slo = sim_slo_of(sc, out);
    r->id = s->next_id++;
    r->group = -1;
    if (sc->kv) {
        /* the prompt's full prefix blocks: a trace's hash_ids, or a
           generated shared prefix and the request's own text */
        int pbt = sc->prefix_block_tokens;
        r->n_blocks = (int)(in / pbt);
        if (st->hash) {
            r->hash = st->hash;
            if (r->n_blocks > (int)st->n_hash)
                r->n_blocks = (int)st->n_hash;
        }
        r->salt = st->salt;
        if (st->group >= 0) {
            r->group = st->group;
            r->group_blocks = (int)(sc->prefix_tokens / pbt);
        }
        /* the blocks that may ever be hits: a trace's shared ids, a group's
           prompt; the request's own text is unique */
        r->n_shared = st->hash ? (int)st->n_shared : r->group_blocks;
        if (r->n_shared > r->n_blocks || s->opt->kv_exact)
            r->n_shared = r->n_blocks;
    }
    /* arrival-rate estimate: exponentially decaying count over the
       scenario's own time scale, one mean SLO span (at least 1 s) */
    double tau = (sc->slo_base_ms + sc->slo_per_token_ms * sc->mean_out) / 1000.0;
    tau = tau > 1 ? tau : 1;
    double dt = (t - s->rate_t) / 1000.0;
    s->rate_est = s->rate_est * exp(-dt / tau) + 1.0 / tau;
    s->rate_t = t;
    if (s->learning && sc->kv && s->restart_ms > 0 && t >= s->next_restart) {
        sim_kv_flush(s);
        s->next_restart += s->restart_ms;
    }
    if (decide(s, r))
        return;
    s->submitted++;
    sim_srv_submit(s, ri);
}

/* runs a stream to the end and drains the cluster */
static void simulate(sim_run *s, sim_stream *st, const char *phase)
{
    double t, in, out;
    int have = st->ops->next(st, &t, &in, &out);
    uint64_t n_arr = 0;
    double next_report = 0;
    uint64_t t_wall = now_ns();
    s->t_first = have ? t : 0;
    s->rate_t = s->t_first;
    s->arrivals_over = !have;
    if (have)
        sim_heap_push(s, t, EV_ARRIVAL, 0, 0);
    while (s->nh && !s->failed) {
        event e = heap_pop(s);
        /* a superseded decode event must not move the clock: after the last
           completion it would stretch t_end (the utilisation's span) */
        if (e.kind == EV_DECODE && e.b != s->srv[e.a].ver)
            continue;
        s->events++; /* (a superseded one is a stale heap entry, not an event) */
        s->now = e.t;
        if (e.kind == EV_ARRIVAL) {
            arrive(s, st, t, in, out);
            s->t_last_arrival = t;
            n_arr++;
            have = st->ops->next(st, &t, &in, &out);
            if (have)
                sim_heap_push(s, t, EV_ARRIVAL, 0, 0);
            else
                s->arrivals_over = 1;
            if (!s->opt->quiet && phase && s->opt->progress && (n_arr & 4095) == 0) {
                double frac = st->ops->progress(st, s->now);
                if (frac >= next_report) {
                    fprintf(stderr, "\r  %-14s %-8s %3.0f%%  (%.1f s)", s->pol->name, phase,
                            100 * frac, (double)(now_ns() - t_wall) / 1e9);
                    next_report = frac + 0.1;
                }
            }
        } else if (e.kind == EV_PREFILL) {
            sim_srv_prefilled(s, (int)e.a);
        } else {
            if (e.b != s->srv[e.a].ver)
                continue; /* superseded */
            /* the request due now: the earliest-finishing decoder */
            int ri = sim_srv_due(s, (int)e.a);
            if (ri >= 0)
                complete(s, (int)e.a, ri);
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
    if (sc->kv) {
        int learned = p->kind == SIM_POL_DQN || p->kind == SIM_POL_QTABLE;
        s->gw_on = p->kind == SIM_POL_GATEWAY || learned;
        return sim_kv_init(s);
    }
    return 0;
}

static void run_reset_cluster(sim_run *s)
{
    for (int i = 0; i < s->ns; i++) {
        server *sv = &s->srv[i];
        int type = sv->type, slots = sv->slots;
        pcache pc = sv->pc; /* the KV model's: kept, emptied by sim_kv_reset */
        double kv_cap = sv->kv_cap;
        memset(sv, 0, sizeof *sv);
        sv->type = type;
        sv->slots = slots;
        sv->qtail = -1;
        sv->pc = pc;
        sv->kv_cap = kv_cap;
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
    s->nttft = 0;
    s->events = 0;
    if (s->sc->kv) {
        sim_kv_reset(s);
        /* the evaluation's tie-breaks as a heuristic's run has them: a
           learned policy that follows its incumbent matches it exactly */
        rng_seed(&s->r, s->sc->eval_seed * 0x9e3779b97f4a7c15ull + 7);
    }
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
    if (s->sc && s->sc->kv) {
        sim_kv_free(s);
        for (int i = 0; i < s->rq_cap; i++) /* a failed run's requests in flight */
            free(s->rq[i].keys);
    }
    free(s->ttft);
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

int sim_cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

double sim_pct(const float *v, size_t n, double q)
{
    if (!n)
        return 0;
    double pos = q * (double)(n - 1);
    size_t i = (size_t)pos;
    double f = pos - (double)i;
    return i + 1 < n ? v[i] * (1 - f) + v[i + 1] * f : v[i];
}

/* sim_pct() of an unsorted array without sorting it: quickselect puts the
   element of rank i in place (smaller before, larger after); the next rank
   is the least of those after */
static double pct_select(float *v, size_t n, double q)
{
    if (!n)
        return 0;
    double pos = q * (double)(n - 1);
    size_t k = (size_t)pos, lo = 0, hi = n - 1;
    while (lo < hi) {
        float piv = v[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < piv)
                i++;
            while (v[j] > piv)
                j--;
            if (i <= j) {
                float t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            break;
    }
    double f = pos - (double)k;
    if (k + 1 >= n || f == 0)
        return v[k];
    float next = v[k + 1];
    for (size_t i = k + 2; i < n; i++)
        next = v[i] < next ? v[i] : next;
    return v[k] * (1 - f) + next * f;
}

/* the share of the guard's decisions the learned policy took */
static double learned_share(const dlsched_stats_t *gs)
{
    return gs->guard_decisions ? (double)gs->guard_by_learned / (double)gs->guard_decisions : 0;
}

int sim_check_learning(const sim_scenario *sc, const sim_policy_spec *p, sim_err *err)
{
    if (sc->is_edge)
        return sim_edge_check_learning(sc, p, err);
    if (p->kind != SIM_POL_DQN && p->kind != SIM_POL_QTABLE)
        return 0;
    sim_policy_spec inc; /* a named incumbent must be a heuristic */
    if (strcmp(sc->incumbent, "auto") != 0 && sim_parse_incumbent(sc, &inc, err))
        return -1;
    sim_options opt = {.quiet = 1};
    sim_run *s = malloc(sizeof *s);
    if (!s) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return -1;
    }
    run_init(s, sc, &opt, p, err);
    int rc = sim_make_agent(s, err);
    run_free(s);
    free(s);
    return rc;
}

int sim_run_policy(const sim_scenario *sc, const sim_policy_spec *p, const sim_options *opt,
                   sim_result *out, sim_err *err)
{
    sim_run *s;
    sim_stream st;
    if (sc->is_edge)
        return sim_edge_run(sc, p, opt, out, err);
    memset(out, 0, sizeof *out);
    if (p->kind < SIM_POL_GREEDY && !(p->variant < 0 && sc->kv) &&
        (p->variant < 0 || p->variant >= sc->n_var || !sim_variant_loaded(sc, p->variant))) {
        snprintf(err->msg, sizeof err->msg, "policy '%s': its variant is loaded on no GPU type",
                 p->name);
        return -1;
    }
    s = malloc(sizeof *s);
    if (!s) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return -1;
    }
    int learned = p->kind == SIM_POL_DQN || p->kind == SIM_POL_QTABLE;
    sim_scenario resolved;
    if (learned && !sc->inc_resolved) {
        /* the incumbent (the hint) first: a copy that shares the trace */
        resolved = *sc;
        if (sim_resolve_incumbent(&resolved, opt, err)) {
            free(s);
            return -1;
        }
        sc = &resolved;
    }
    if (learned && opt->calibrate) {
        snprintf(err->msg, sizeof err->msg, "policy '%s': calibration runs heuristics only",
                 p->name);
        free(s);
        return -1;
    }
    run_init(s, sc, opt, p, err);
    snprintf(out->name, sizeof out->name, "%s", p->name);
    double scale = opt->scale > 0 ? opt->scale : 1;
    if (learned) {
        if (sim_make_agent(s, err))
            goto fail;
        uint64_t t0 = now_ns();
        s->learning = 1;
        if (sim_stream_init(&st, sc, 0, scale)) {
            snprintf(err->msg, sizeof err->msg, "unknown arrival process %d", sc->process);
            goto fail;
        }
        /* the KV model's warm-up restarts (scaled with the warm-up) */
        s->restart_ms = sc->kv ? sc->restart_s * scale * 1000.0 : 0;
        s->next_restart = s->restart_ms;
        simulate(s, &st, "warm-up");
        s->restart_ms = 0; /* (the evaluation starts cold once, and only then) */
        /* (no transition is left waiting for a next state: outcomes are
           reported only while requests arrive, and each arrival completes
           the one waiting) */
        s->pend = 0;
        if (s->failed)
            goto fail;
        out->train_s = (double)(now_ns() - t0) / 1e9;
        dlsched_stats_t gs;
        if (dlsched_stats(s->agent, &gs, sizeof gs) == 0) {
            out->guard_state = (int)gs.guard_state;
            out->guard_switches = gs.guard_switches;
            out->guard_fallbacks = gs.guard_fallbacks;
            out->guard_pairs = gs.guard_samples_learned;
            out->guard_adv = gs.guard_advantage;
            out->guard_lo = gs.guard_advantage_low;
            out->guard_hi = gs.guard_advantage_high;
            out->guard_learned_share = learned_share(&gs);
        }
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
        /* evaluation on another stream: frozen (DLSCHED_ACT_GREEDY with
           the hint: the policy the guard settled on, no experiment; the
           default of dlsched-sim) or online (tickets, outcomes, learning and
           the guard's measurements go on, as in service) */
        s->learning = !opt->frozen;
        s->last = -1;
        run_reset_cluster(s);
    }
    if (sim_stream_init(&st, sc, !opt->calibrate, scale)) {
        snprintf(err->msg, sizeof err->msg, "unknown arrival process %d", sc->process);
        goto fail;
    }
    simulate(s, &st, learned ? "evaluate" : NULL);
    if (learned && !s->failed) {
        dlsched_stats_t gs;
        if (dlsched_stats(s->agent, &gs, sizeof gs) == 0) {
            out->eval_guard_state = (int)gs.guard_state;
            out->eval_learned_share = learned_share(&gs);
            out->eval_fallbacks = gs.guard_fallbacks;
        }
    }
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
    if (s->nlat) /* qsort's array may not be NULL, even when empty */
        qsort(s->lat, s->nlat, sizeof *s->lat, sim_cmp_float);
    out->p50_ms = sim_pct(s->lat, s->nlat, 0.50);
    out->p95_ms = sim_pct(s->lat, s->nlat, 0.95);
    out->p99_ms = sim_pct(s->lat, s->nlat, 0.99);
    out->e2e_p90_ms = sim_pct(s->lat, s->nlat, 0.90);
    out->ttft_p90_ms = pct_select(s->ttft, s->nttft, 0.90);
    out->prefix_hit_rate =
        s->prompt_tokens ? (double)s->hit_tokens / (double)s->prompt_tokens : 0;
    out->events = s->events;
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
    free(r->timeline);
    r->window_attain = r->learn_reward = r->learn_attain = NULL;
    r->timeline = NULL;
}
