/*
 * cluster.c - dlsched-sim's cluster: servers that run up to `slots`
 * requests at once (the rest wait in a FIFO), each decode advanced with a
 * per-variant virtual clock; the requests' free list; the latency model and
 * its prediction (greedy, SED, the learned policies' features)
 */
#include "simint.h"

#include <math.h>
#include <stdlib.h>

/* ---- requests ---------------------------------------------------------------- */
int sim_req_alloc(sim_run *s)
{
    if (s->free_head < 0) {
        int nc = s->rq_cap ? 2 * s->rq_cap : 1024;
        req *nr = realloc(s->rq, (size_t)nc * sizeof *nr);
        if (!nr) {
            sim_run_fail(s, "out of memory (requests)");
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
                sim_run_fail(s, "out of memory (next states)");
                return -1;
            }
        }
        for (int i = nc - 1; i >= s->rq_cap; i--) {
            s->rq[i].keys = NULL;
            s->rq[i].next = s->free_head;
            s->free_head = i;
        }
        s->rq_cap = nc;
    }
    int i = s->free_head;
    s->free_head = s->rq[i].next;
    return i;
}
void sim_req_free(sim_run *s, int ri)
{
    s->rq[ri].next = s->free_head;
    s->free_head = ri;
}

/* ---- servers ------------------------------------------------------------------ */
double sim_slow(const sim_scenario *sc, int v, int g, int n)
{
    return 1 + sc->var[v].prof[g].growth * (n > 1 ? n - 1 : 0);
}

void sim_srv_advance(sim_run *s, server *sv)
{
    double dt = s->now - sv->tlast;
    if (dt <= 0)
        return;
    sv->busy += dt * sv->n;
    if (sv->n)
        for (int v = 0; v < s->sc->n_var; v++)
            sv->d[v] += dt / sim_slow(s->sc, v, sv->type, sv->n);
    sv->tlast = s->now;
}

/* the next decode completion of sv, scheduled as an event */
void sim_srv_reschedule(sim_run *s, int si)
{
    server *sv = &s->srv[si];
    double best = INFINITY;
    for (int k = 0; k < sv->n; k++) {
        req *r = &s->rq[sv->active[k]];
        if (r->phase != PH_DECODE)
            continue;
        double left = r->finish_d - sv->d[r->variant];
        double t =
            s->now + (left > 0 ? left : 0) * sim_slow(s->sc, r->variant, sv->type, sv->n);
        if (t < best)
            best = t;
    }
    sv->ver++;
    if (best < INFINITY)
        sim_heap_push(s, best, EV_DECODE, (uint32_t)si, sv->ver);
}

void sim_srv_start(sim_run *s, int si, int ri)
{
    server *sv = &s->srv[si];
    req *r = &s->rq[ri];
    sim_srv_advance(s, sv);
    r->slot = sv->n;
    sv->active[sv->n++] = ri;
    r->phase = PH_PREFILL;
    if (s->sc->kv) {
        /* the cached leading blocks skip their prefill; prefills share the
           GPU one after another (a prefill lane), decodes go on beside */
        const sim_profile *p = &s->sc->var[r->variant].prof[sv->type];
        double left = r->in - (double)r->hits * s->sc->prefix_block_tokens;
        r->prefill_ms = p->overhead_ms + (left > 0 ? left : 0) / p->prefill_tps;
        double t0 = sv->pf_free > s->now ? sv->pf_free : s->now;
        r->pf_end = sv->pf_free = t0 + r->prefill_ms;
    } else
        r->pf_end = s->now + r->prefill_ms;
    sim_heap_push(s, r->pf_end, EV_PREFILL, (uint32_t)ri, 0);
    sim_srv_reschedule(s, si);
}

void sim_srv_submit(sim_run *s, int ri)
{
    req *r = &s->rq[ri];
    server *sv = &s->srv[r->server];
    sim_solo_times(s->sc, r->variant, sv->type, r->in, r->out, &r->prefill_ms, &r->decode_ms);
    if (s->sc->kv ? sv->n < sv->slots && !sv->qlen && sim_kv_admit(s, r->server, ri)
                  : sv->n < sv->slots) {
        sim_srv_start(s, r->server, ri);
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
        sv->pf_q += r->prefill_ms;
    }
}

void sim_srv_prefilled(sim_run *s, int ri)
{
    req *r = &s->rq[ri];
    server *sv = &s->srv[r->server];
    sim_srv_advance(s, sv);
    r->phase = PH_DECODE;
    r->finish_d = sv->d[r->variant] + r->decode_ms;
    if (s->sc->kv)
        sim_kv_prefilled(s, r->server, ri);
    sim_srv_reschedule(s, r->server);
}

int sim_srv_due(sim_run *s, int si)
{
    server *sv = &s->srv[si];
    sim_srv_advance(s, sv);
    /* the earliest-finishing decoder */
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
    return best;
}

void sim_srv_remove(sim_run *s, int si, int ri)
{
    server *sv = &s->srv[si];
    int k = s->rq[ri].slot;
    sv->active[k] = sv->active[--sv->n];
    s->rq[sv->active[k]].slot = k;
}

void sim_srv_fill(sim_run *s, int si)
{
    server *sv = &s->srv[si];
    while (sv->n < sv->slots && sv->qlen) {
        int qi = sv->qhead;
        if (s->sc->kv && !sim_kv_admit(s, si, qi))
            break; /* FIFO: the head waits for room */
        sv->qhead = s->rq[qi].next;
        if (--sv->qlen == 0)
            sv->qtail = -1;
        sv->work_q -= s->rq[qi].prefill_ms + s->rq[qi].decode_ms;
        sv->pf_q -= s->rq[qi].prefill_ms;
        if (sv->qlen == 0)
            sv->work_q = sv->pf_q = 0; /* no drift */
        sim_srv_start(s, si, qi);
    }
    sim_srv_reschedule(s, si);
}

/* solo milliseconds of work the server still has (active + queued) */
double sim_srv_work(const sim_run *s, const server *sv)
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
void sim_solo_times(const sim_scenario *sc, int v, int g, double in, double out, double *pf,
                    double *dec)
{
    const sim_profile *p = &sc->var[v].prof[g];
    *pf = p->overhead_ms + in / p->prefill_tps;
    *dec = out * p->tpot_ms;
}

/* predicted latency (ms) of a request (in, out) sent now to server si as
   variant v: wait for a slot (the backlog drains through `slots` lanes at
   full-batch speed), then prefill, then decode at the batch it joins */
double sim_predict(const sim_run *s, int si, int v, double in, double out, double work)
{
    const server *sv = &s->srv[si];
    const sim_scenario *sc = s->sc;
    double pf, dec;
    sim_solo_times(sc, v, sv->type, in, out, &pf, &dec);
    int ahead = sv->n + sv->qlen;
    if (sc->kv) {
        /* the KV model: prefills go one at a time, so the wait is the
           prefill lane's backlog (the one running, the queued ones); the
           decode runs at the batch it joins */
        double lane = (sv->pf_free > s->now ? sv->pf_free - s->now : 0) + sv->pf_q;
        int nb = ahead + 1 < sv->slots ? ahead + 1 : sv->slots;
        return lane + pf + dec * sim_slow(sc, v, sv->type, nb);
    }
    double wait = 0;
    if (ahead >= sv->slots)
        wait = work * sim_slow(sc, v, sv->type, sv->slots) / sv->slots;
    int nb = ahead + 1 < sv->slots ? ahead + 1 : sv->slots;
    return wait + pf + dec * sim_slow(sc, v, sv->type, nb);
}

int sim_variant_loaded(const sim_scenario *sc, int v)
{
    for (int g = 0; g < sc->n_gpu; g++)
        if (sc->gpu[g].load_mask >> v & 1)
            return 1;
    return 0;
}

int sim_loaded(const sim_run *s, int si, int v)
{
    return (int)(s->sc->gpu[s->srv[si].type].load_mask >> v & 1);
}

double sim_slo_of(const sim_scenario *sc, double out)
{
    /* floored at 1 us: the features and the latency EWMA divide by it, and
       an SLO of 0 (slo_base_ms = 0, no output tokens) made them NaN */
    double slo = sc->slo_base_ms + sc->slo_per_token_ms * out;
    return slo > 1e-3 ? slo : 1e-3;
}
