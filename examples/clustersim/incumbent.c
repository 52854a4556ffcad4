/*
 * incumbent.c - the heuristic the learned policies replace: its choice is
 * their hint (apprenticeship, the guard's comparison and fallback)
 *
 * "auto" models an operator who runs the best of their heuristics today:
 * every heuristic of the default list runs on the first quarter of the
 * warm-up stream (the evaluation stream stays unseen); of those within 5% of
 * the best accuracy-weighted goodput, the one with the highest SLO
 * attainment is the incumbent.
 */
#include "simint.h"

#include <stdio.h>
#include <string.h>

static void set_incumbent(sim_scenario *sc, const sim_policy_spec *p)
{
    sc->inc_kind = p->kind;
    sc->inc_variant = p->variant;
    snprintf(sc->inc_name, sizeof sc->inc_name, "%s", p->name);
    sc->inc_resolved = 1;
}

int sim_parse_incumbent(const sim_scenario *sc, sim_policy_spec *p, sim_err *err)
{
    if (sim_policy_parse(sc, sc->incumbent, p, err))
        return -1;
    if (p->kind > SIM_POL_GREEDY) {
        snprintf(err->msg, sizeof err->msg,
                 "[learning] incumbent: '%s' is a learned policy; name a heuristic or auto",
                 sc->incumbent);
        return -1;
    }
    return 0;
}

int sim_resolve_incumbent(sim_scenario *sc, const sim_options *opt, sim_err *err)
{
    if (sc->is_edge)
        return sim_edge_resolve_incumbent(sc, opt, err);
    if (strcmp(sc->incumbent, "auto") != 0) {
        sim_policy_spec p;
        if (sim_parse_incumbent(sc, &p, err))
            return -1;
        set_incumbent(sc, &p);
        return 0;
    }
    sim_policy_spec cand[128];
    size_t n = sim_default_policies(sc, cand, 128);
    sim_options co = {.quiet = 1, .calibrate = 1,
                      .scale = 0.25 * (opt && opt->scale > 0 ? opt->scale : 1)};
    double wg[128], slo[128], best = -1;
    for (size_t i = 0; i < n; i++) {
        wg[i] = slo[i] = -1;
        if (cand[i].kind > SIM_POL_GREEDY)
            continue;
        sim_result r;
        if (sim_run_policy(sc, &cand[i], &co, &r, err))
            return -1;
        wg[i] = r.weighted_goodput;
        slo[i] = r.slo_attainment;
        best = wg[i] > best ? wg[i] : best;
        sim_result_free(&r);
    }
    /* among the heuristics within 5% of the best weighted goodput, the one
       that meets the SLO most often: an operator's safer choice (a
       heuristic that misses the SLO often varies more from day to day) */
    size_t bi = n;
    for (size_t i = 0; i < n; i++)
        if (wg[i] >= 0.95 * best && (bi == n || slo[i] > slo[bi] ||
                                     (slo[i] == slo[bi] && wg[i] > wg[bi])))
            bi = i;
    if (bi == n) {
        snprintf(err->msg, sizeof err->msg, "no heuristic to be the incumbent");
        return -1;
    }
    set_incumbent(sc, &cand[bi]);
    return 0;
}
