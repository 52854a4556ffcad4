/*
 * heuristics.c - dlsched-sim's hand-written policies (greedy, and random,
 * rr, jsq, lwl, p2c, sed with a fixed variant) and the policies' names
 */
#include "simint.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *const sim_policy_names[SIM_POL_COUNT] = {
    "random", "rr", "jsq", "lwl", "p2c", "sed", "greedy", "qtable", "dqn"};

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
        if (sim_loaded(s, si, v))
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
            sim_solo_times(sc, v, sv->type, in, out, &pf, &dec);
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
    for (int k = 0; k < SIM_POL_GREEDY; k++)
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
