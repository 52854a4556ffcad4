/*
 * adapters.c - dlsched-sim's learned policies (qtable, dqn): the features
 * that turn the cluster's state into an agent's state, the action mask,
 * the agent's configuration, and a decision with its Q-learning transition
 */
#include "simint.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* learned policies: features a real host has. See dlsched-sim(1), FEATURES. */
static double clampd(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

/* a request's size against the scenario's own: log(tokens / mean) on a
   scale where mean / 8 .. 8 x mean maps to 0 .. 2 (1 = the mean) */
static double tokens_feature(double tokens, double mean)
{
    double m = mean > 1 ? mean : 1;
    return clampd(1 + log((tokens + 1) / (m + 1)) / log(8.0), 0, 2);
}

static int dqn_features(sim_run *s, double in, double out, const double *work)
{
    const sim_scenario *sc = s->sc;
    double slo = sim_slo_of(sc, out);
    int k = 0;
    float *f = s->feat;
    for (int si = 0; si < s->ns; si++) {
        const server *sv = &s->srv[si];
        f[k++] = (float)((double)sv->n / sv->slots);
        f[k++] = (float)clampd((double)sv->qlen / sv->slots, 0, 8);
        f[k++] = (float)clampd(work[si] / sv->slots / slo, 0, 8);
        f[k++] = (float)clampd(sv->ewma, 0, 4);
        /* the KV model: the prompt the server would prefill is what the
           gateway's index does not match there */
        double in_s = sc->kv ? in * (1 - s->gw_match[si]) : in;
        for (int v = 0; v < sc->n_var; v++)
            f[k++] = sim_loaded(s, si, v)
                         ? (float)clampd(
                               (slo - sim_predict(s, si, v, in_s, out, work[si])) / slo, -2, 1)
                         : 0.0f;
        if (sc->kv) {
            /* the gateway's signals (scraped) and the prefix-match fraction */
            f[k++] = (float)clampd((double)sv->snap_wait / sv->slots, 0, 8);
            f[k++] = (float)((double)sv->snap_run / sv->slots);
            f[k++] = (float)sv->snap_kv;
            f[k++] = (float)s->gw_match[si];
        }
    }
    f[k++] = (float)tokens_feature(in, sc->mean_in);
    f[k++] = (float)tokens_feature(out, sc->mean_out);
    f[k++] = (float)clampd(s->rate_est / sc->capacity, 0, 4);
    return k;
}

/* class actions: the same per GPU type, with the slack of the type's best
   server for each variant */
static int class_features(sim_run *s, double in, double out, const double *work)
{
    const sim_scenario *sc = s->sc;
    double slo = sim_slo_of(sc, out);
    int k = 0;
    float *f = s->feat;
    for (int g = 0; g < sc->n_gpu; g++) {
        double occ_min = INFINITY, occ_sum = 0, work_min = INFINITY, ewma = 0;
        double kv_min = 1, match_max = 0;
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
            kv_min = sv->snap_kv < kv_min ? sv->snap_kv : kv_min;
            match_max = s->gw_match[si] > match_max ? s->gw_match[si] : match_max;
            cnt++;
            for (int v = 0; v < sc->n_var; v++)
                if (sim_loaded(s, si, v)) {
                    double sl = (slo - sim_predict(s, si, v, in, out, work[si])) / slo;
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
        if (sc->kv) {
            f[k++] = (float)kv_min;
            f[k++] = (float)match_max;
        }
    }
    f[k++] = (float)tokens_feature(in, sc->mean_in);
    f[k++] = (float)tokens_feature(out, sc->mean_out);
    f[k++] = (float)clampd(s->rate_est / sc->capacity, 0, 4);
    return k;
}

static int dqn_n_features(const sim_scenario *sc)
{
    int kv = sc->kv ? 1 : 0;
    if (sc->dqn_class)
        return sc->n_gpu * (4 + sc->n_var + 2 * kv) + 3;
    return sc->n_servers * (4 + sc->n_var + 4 * kv) + 3;
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
    /* output size against the scenario's mean: mean / 8 or fewer .. 8 x mean or more */
    s->feat[k++] = (float)clampd(0.5 * tokens_feature(out, sc->mean_out), 0, 0.999);
    /* predicted slack of the most accurate variant on its best server */
    int top = 0;
    for (int v = 1; v < sc->n_var; v++)
        if (sc->var[v].accuracy > sc->var[top].accuracy)
            top = v;
    double slo = sim_slo_of(sc, out), slack = -INFINITY;
    for (int si = 0; si < s->ns; si++)
        if (sim_loaded(s, si, top)) {
            double sl = (slo - sim_predict(s, si, top, in, out, work[si])) / slo;
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
    if (sc->kv) /* the KV model: the best prefix match of each GPU type */
        for (int g = 0; g < sc->n_gpu; g++) {
            double m = 0;
            for (int si = 0; si < s->ns; si++)
                if (s->srv[si].type == g && s->gw_match[si] > m)
                    m = s->gw_match[si];
            s->feat[k++] = (float)clampd(m, 0, 0.999);
        }
    return k;
}

static int qt_server(sim_run *s, int g, int v, double in, double out, const double *work)
{
    if (s->sc->kv) {
        /* the KV model: within the type, the gateway's scorers decide */
        int cand[SIM_MAX_SERVERS], nc = 0;
        for (int si = 0; si < s->ns; si++)
            if (s->srv[si].type == g && sim_loaded(s, si, v))
                cand[nc++] = si;
        if (nc)
            return sim_gw_pick(s, cand, nc);
    }
    int best = -1;
    double bt = INFINITY;
    for (int si = 0; si < s->ns; si++)
        if (s->srv[si].type == g && sim_loaded(s, si, v)) {
            double t = sim_predict(s, si, v, in, out, work[si]);
            if (t < bt)
                bt = t, best = si;
        }
    return best;
}

/* the state just built is the next state of the request decided last */
static int give_next(sim_run *s, const dlsched_state_t *st)
{
    if (s->pend) {
        /* it completed before this arrival: its transition is complete now */
        s->pend = 0;
        int rc = dlsched_observe(s->agent, s->pend_ticket, s->pend_reward, st, 0);
        if (rc && rc != DLSCHED_ETICKET) { /* ETICKET: expired (see account()) */
            sim_run_fail(s, "dlsched_observe: %s", dlsched_last_error());
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

/* the incumbent's choice for r (the heuristic the learned policy replaces) */
static void incumbent_choice(sim_run *s, req *r, const double *work, int *so, int *vo)
{
    const sim_scenario *sc = s->sc;
    if (sc->kv) {
        /* the gateway's prefix matches (features, in-type routing) for
           every server, each with the variant the incumbent would use */
        int cand[SIM_MAX_SERVERS];
        for (int si = 0; si < s->ns; si++)
            cand[si] = si;
        r->variant = sc->inc_kind < SIM_POL_GREEDY ? sc->inc_variant : -1;
        if (r->variant < 0 && !sim_one_variant_each(sc))
            r->variant = sc->load_variant;
        sim_scrape(s);
        sim_gw_match(s, r, cand, s->ns);
    }
    if (sc->inc_kind == SIM_POL_GREEDY) {
        sim_pick_greedy(s, r->in, r->out, work, so, vo);
        return;
    }
    *vo = sc->inc_variant;
    if (sc->inc_kind >= SIM_POL_FEWEST_WAITING)
        *so = sim_pick_kv(s, sc->inc_kind, sc->inc_variant, r);
    else
        *so = sim_pick_heuristic(s, sc->inc_kind, sc->inc_variant, r->in, r->out, work);
    if (*vo < 0)
        *vo = sim_server_variant(s, *so);
}

int sim_decide_learned(sim_run *s, req *r, const double *work)
{
    const sim_scenario *sc = s->sc;
    int kind = s->pol->kind;
    /* the hint, in warm-up and evaluation: the guard compares with it and
       falls back to it */
    int gs = 0, gv = 0;
    incumbent_choice(s, r, work, &gs, &gv);
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
    if (s->learning && give_next(s, &st))
        return -1;
    dlsched_decision_t d;
    /* the KV model: the guard's unit is the prompt's first prefix block
       (what a gateway can hash: one shared prompt, one unit), else the
       request itself */
    uint64_t unit = sc->kv && r->n_blocks > 0 ? req_block_key(r, 0, -1) : r->id;
    int rc = dlsched_act_unit(s->agent, &st, unit, s->learning ? 0 : DLSCHED_ACT_GREEDY, &d);
    if (rc) {
        sim_run_fail(s, "dlsched_act: %s", dlsched_last_error());
        return -1;
    }
    r->ticket = d.ticket;
    if (s->learning) {
        s->last = (int)(r - s->rq);
        s->has_next[s->last] = 0;
    }
    if (d.action == st.hint) {
        /* the incumbent's own choice, server included */
        r->server = gs;
        r->variant = gv;
        return 0;
    }
    r->variant = d.action % sc->n_var;
    if (!s->by_class)
        r->server = d.action / sc->n_var;
    else
        r->server = qt_server(s, d.action / sc->n_var, r->variant, r->in, r->out, work);
    return 0;
}

/* the guard's block: the requests arriving in one mean SLO span at the
   offered rate (most of a decision's effect on the queues is felt within
   it), 16 .. 1024 */
static int guard_block(const sim_scenario *sc)
{
    double slo_s = (sc->slo_base_ms + sc->slo_per_token_ms * sc->mean_out) / 1000.0;
    double b = sc->rate * slo_s;
    return b < 16 ? 16 : b > 1024 ? 1024 : (int)lround(b);
}

/* the guard's design: with the KV model a decision's effect outlives any
   block (where a prompt's cache lives), so whole units (prompts) are
   randomised (guard_unit=key, dlsched_act_unit); else blocks of time */
static const char *guard_unit(const sim_scenario *sc)
{
    return sc->kv ? "key" : "decision";
}

/* ticketed decisions of the warm-up: exploration falls linearly to 0 over
   them, so that the evaluation explores no more (the guard's experiment
   goes on) */
static unsigned long long warmup_decisions(const sim_run *s)
{
    const sim_scenario *sc = s->sc;
    double scale = s->opt->scale > 0 ? s->opt->scale : 1, n;
    if (sc->process == SIM_ARR_TRACE)
        n = ceil(sc->warmup_passes * scale) * (double)sc->n_trace * sc->train_share;
    else
        n = sc->warmup_s * scale * sc->rate;
    return n < 1000 ? 1000 : (unsigned long long)n;
}

/* a learned policy's agent: defaults, then the scenario's own keys */
int sim_make_agent(sim_run *s, sim_err *err)
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
                 "epsilon_start=0.1 epsilon_end=0 epsilon_decay_steps=%llu replay=100000 "
                 "apprentice=%llu apprentice_agreement=1 guard_block=%d guard_unit=%s seed=%llu %s",
                 s->n_feat, s->n_act, warmup_decisions(s), (unsigned long long)sc->apprentice,
                 guard_block(sc), guard_unit(sc), (unsigned long long)sc->seed, sc->dqn_config);
    } else {
        s->n_feat = 3 + sc->n_gpu * (sc->kv ? 2 : 1);
        s->n_act = sc->n_gpu * sc->n_var;
        char bins[256] = "4,5,4", lo[256] = "0,0,-0.5", hi[256] = "2,1,0.5";
        for (int g = 0; g < sc->n_gpu; g++) {
            strcat(bins, ",3");
            strcat(lo, ",0");
            strcat(hi, ",1.5");
        }
        if (sc->kv) /* the best prefix match per GPU type */
            for (int g = 0; g < sc->n_gpu; g++) {
                strcat(bins, ",3");
                strcat(lo, ",0");
                strcat(hi, ",1");
            }
        snprintf(spec, sizeof spec,
                 "algo=qtable n_features=%d n_actions=%d bins=%s feature_low=%s feature_high=%s "
                 "lr=0.05 gamma=0 epsilon_start=0.2 epsilon_end=0 epsilon_decay_steps=%llu "
                 "apprentice=%llu apprentice_agreement=1 guard_block=%d guard_unit=%s seed=%llu %s",
                 s->n_feat, s->n_act, bins, lo, hi, warmup_decisions(s),
                 (unsigned long long)sc->apprentice, guard_block(sc), guard_unit(sc),
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
                                                     : (uint8_t)sim_loaded(s, i, v);
    return 0;
}
