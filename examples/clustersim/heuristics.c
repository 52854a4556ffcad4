/*
 * heuristics.c - dlsched-sim's hand-written policies (greedy, and random,
 * rr, jsq, lwl, p2c, sed with a fixed variant; with the KV model
 * fewest-waiting, least-kv and gateway too, also over a pool whose servers
 * each load one variant) and the policies' names
 */
#include "simint.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *const sim_policy_names[SIM_POL_COUNT] = {
    "random", "rr", "jsq", "lwl", "p2c", "sed", "fewest-waiting", "least-kv", "gateway",
    "greedy", "qtable", "dqn"};

int sim_server_variant(const sim_run *s, int si)
{
    uint32_t m = s->sc->gpu[s->srv[si].type].load_mask;
    int v = 0;
    while (!(m >> v & 1))
        v++;
    return v;
}

int sim_one_variant_each(const sim_scenario *sc)
{
    for (int g = 0; g < sc->n_gpu; g++) {
        uint32_t m = sc->gpu[g].load_mask;
        if (!m || (m & (m - 1)))
            return 0;
    }
    return 1;
}

/* the KV model's policies see the scraped signals (sim_scrape) */
int sim_pick_kv(sim_run *s, int kind, int v, const req *r)
{
    int cand[SIM_MAX_SERVERS], nc = 0;
    for (int si = 0; si < s->ns; si++)
        if (v < 0 || sim_loaded(s, si, v))
            cand[nc++] = si;
    sim_scrape(s);
    if (kind == SIM_POL_GATEWAY) {
        sim_gw_match(s, r, cand, nc);
        return sim_gw_pick(s, cand, nc);
    }
    /* argmin with random tie-breaking: waiting requests, or KV usage */
    int best = cand[0], ties = 0;
    double bv = INFINITY;
    for (int k = 0; k < nc; k++) {
        const server *sv = &s->srv[cand[k]];
        double val = kind == SIM_POL_FEWEST_WAITING ? (double)sv->snap_wait : sv->snap_kv;
        if (val < bv) {
            bv = val, best = cand[k], ties = 1;
        } else if (val == bv && rng_next(&s->r) % (uint64_t)++ties == 0)
            best = cand[k];
    }
    return best;
}

/* greedy: the most accurate variant whose predicted latency meets the SLO,
   on the server with the earliest predicted finish; if none meets it, the
   (server, variant) with the earliest predicted finish */
void sim_pick_greedy(const sim_run *s, double in, double out, const double *work, int *so,
                        int *vo)
{
    const sim_scenario *sc = s->sc;
    double slo = sim_slo_of(sc, out);
    int best_s = -1, best_v = -1;
    double best_acc = -1, best_t = INFINITY;
    int fb_s = 0, fb_v = 0;
    double fb_t = INFINITY;
    for (int si = 0; si < s->ns; si++)
        for (int v = 0; v < sc->n_var; v++) {
            if (!sim_loaded(s, si, v))
                continue;
            double t = sim_predict(s, si, v, in, out, work[si]);
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

/* the heuristics with a fixed variant: only servers that load it (one at
   least: sim_run_policy refuses a variant no GPU type loads) */
int sim_pick_heuristic(sim_run *s, int kind, int v, double in, double out, const double *work)
{
    const sim_scenario *sc = s->sc;
    int cand[SIM_MAX_SERVERS], nc = 0;
    for (int si = 0; si < s->ns; si++)
        if (v < 0 || sim_loaded(s, si, v))
            cand[nc++] = si;
    int best = nc ? cand[0] : -1;
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
            sim_solo_times(sc, v >= 0 ? v : sim_server_variant(s, cand[k]), sv->type, in, out,
                           &pf, &dec);
            val = (double)(sv->n + sv->qlen + 1) / sv->slots * (pf + dec);
        }
        if (val < bv) {
            bv = val, best = cand[k], ties = 1;
        } else if (val == bv && rng_next(&s->r) % (uint64_t)++ties == 0)
            best = cand[k];
    }
    return best;
}

/* ---- policy names: "jsq:small", "greedy", "dqn" ----------------------------- */

int sim_policy_parse(const sim_scenario *sc, const char *name, sim_policy_spec *out, sim_err *err)
{
    if (sc->is_edge)
        return sim_edge_policy_parse(sc, name, out, err);
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
                 "policy '%s': unknown (random, rr, jsq, lwl, p2c, sed, fewest-waiting, "
                 "least-kv, gateway, each as NAME:VARIANT; greedy, qtable, dqn)", name);
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
    if (out->kind >= SIM_POL_FEWEST_WAITING && !sc->kv) {
        snprintf(err->msg, sizeof err->msg,
                 "policy '%s': %s needs the KV model (kv_kb_per_token)", name, base);
        return -1;
    }
    if (!colon && sc->n_var != 1 && sc->kv && sim_one_variant_each(sc)) {
        out->variant = -1; /* a pool: each server with its variant */
        return 0;
    }
    if (!colon) {
        if (sc->n_var == 1 && !sim_variant_loaded(sc, 0)) {
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
    if (!sim_variant_loaded(sc, out->variant)) {
        snprintf(err->msg, sizeof err->msg, "policy '%s': no GPU type loads variant '%s'", name,
                 colon + 1);
        return -1;
    }
    return 0;
}

size_t sim_default_policies(const sim_scenario *sc, sim_policy_spec *out, size_t cap)
{
    if (sc->is_edge)
        return sim_edge_default_policies(sc, out, cap);
    size_t n = 0;
    /* the KV model's policies only with it: the lists of other scenarios
       (and their incumbents) stay as they were */
    int last = sc->kv ? SIM_POL_GREEDY : SIM_POL_FEWEST_WAITING;
    if (sc->kv && sc->n_var > 1 && sim_one_variant_each(sc)) {
        /* a pool of servers each with its variant: the heuristics route over all */
        for (int k = 0; k < SIM_POL_GREEDY && n < cap; k++) {
            out[n].kind = k;
            out[n].variant = -1;
            snprintf(out[n].name, sizeof out[n].name, "%s", sim_policy_names[k]);
            n++;
        }
        last = 0;
    }
    for (int k = 0; k < last; k++)
        for (int v = 0; v < sc->n_var; v++) {
            if (!sim_variant_loaded(sc, v))
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
