/*
 * edge.c - dlsched-sim's edge workload: periodic sensor streams on one
 * accelerator, a (model, input resolution) choice or a skip per frame
 * (dlsched-sim(5), EDGE, for the model and its figures)
 *
 * The device runs one frame at a time, non-preemptively: when it is free it
 * starts the queued frame of the most urgent stream (lowest priority
 * number, then the earliest; scheduling = fifo: the earliest). A frame
 * whose deadline passes while it waits is dropped unrun. A frame's run
 * time is fixed when it starts:
 *   (latency_ms[model] x (fixed_share + (1 - fixed_share) (px / reference_px)^2)
 *    x cost[stream] + post_ms_per_object[model] x objects) / clock x jitter
 * where clock is the power mode's MHz over the first mode's, times
 * throttle_clock while the device is throttled; objects (Poisson, the
 * scene's mean) and jitter (uniform) are drawn per frame from the frame's
 * own seed, so every policy sees the same frames, scenes and power modes.
 * Temperature follows the device's utilisation with a first-order lag
 * (tau_s) towards ambient_c + rise_c x utilisation x watts / max watts; the
 * device throttles at throttle_c and recovers at recover_c.
 */
#define _POSIX_C_SOURCE 200809L
#include "rng.h"
#include "sim.h"

#include <dlsched.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POOL 1024 /* frames waiting or running at once */

enum { OUT_ON_TIME, OUT_LATE, OUT_DROPPED, OUT_SKIPPED };

typedef struct {
    double arrive, deadline, est_ms, weight, objects, energy;
    uint64_t ticket, no; /* no: the frame's number in its stream (its draws) */
    int stream, action, scene, next, has_next;
} eframe;

typedef struct {
    const sim_scenario *sc;
    const sim_edge *e;
    const sim_options *opt;
    const sim_policy_spec *pol;
    sim_err *err;
    int failed;
    int n_act, skip, inc_kind;
    /* the environment */
    double now, t_end, tlast;
    double next_arr[SIM_EDGE_STREAMS];
    uint64_t frame_no[SIM_EDGE_STREAMS];
    int scene, mode, throttled, arrivals_over;
    double scene_until, mode_until, temp, max_watts, min_clock;
    rng env;
    uint64_t frame_seed;
    int running;
    double busy_until, busy_ms, throttled_ms, energy_j;
    double last_objects[SIM_EDGE_STREAMS];
    double last_est[SIM_EDGE_STREAMS]; /* predicted run time of each stream's last frame */
    /* frames */
    eframe pool[POOL];
    int free_head, queue[POOL], nq;
    /* the policy */
    dlsched_agent *agent;
    int learning, n_feat, last, pend;
    float *feat, *nfeat;
    uint8_t *mask;
    uint64_t pend_ticket;
    float pend_reward;
    int worst[SIM_EDGE_STREAMS];
    int *rules; /* [(scene * n_modes + mode) * 2 + throttled][stream] */
    /* accounting */
    uint64_t frames, on_time, late, dropped, skipped, acount[SIM_EDGE_ACTIONS];
    double wsum, wmiss, acc_on, wacc_on, reward;
    float *lat;
    size_t nlat, lat_cap;
    size_t nwin;
    double *win; /* per window: WIN_FIELDS values */
    double decide_ns;
    uint64_t decide_n;
} erun;

/* per window: frames, weight, missed weight, skipped, model sum, px sum,
   frames run, reward; then the state at its last arrival: scene, temp, clock */
enum { W_FRAMES, W_ON_TIME, W_WEIGHT, W_MISS, W_SKIP, W_MODEL, W_PX, W_RUN, W_REWARD, W_SCENE,
       W_TEMP, W_CLOCK, WIN_FIELDS };

static void fail(erun *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(erun *r, const char *fmt, ...)
{
    if (r->failed)
        return;
    r->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err->msg, sizeof r->err->msg, fmt, ap);
    va_end(ap);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double clampd(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

/* ---- the device model ------------------------------------------------------ */

/* run time of action a for stream s with `objects` objects at clock 1 and
   no jitter */
static double base_ms(const sim_edge *e, int a, int s, double objects)
{
    int m = a / e->n_res;
    double x = e->res_px[a % e->n_res] / e->reference_px;
    return e->model[m].latency_ms * (e->fixed_share + (1 - e->fixed_share) * x * x) *
               e->st[s].cost +
           e->model[m].post_ms * objects;
}

static double accuracy(const sim_edge *e, int a, int scene)
{
    return e->model[a / e->n_res].accuracy * e->scene[scene].res_accuracy[a % e->n_res];
}

static double clock_of(const sim_edge *e, int mode, int throttled)
{
    return e->mode[mode].mhz / e->mode[0].mhz * (throttled ? e->throttle_clock : 1.0);
}

static double clock_now(const erun *r) { return clock_of(r->e, r->mode, r->throttled); }

/* frame k of stream s: its own uniform draws (objects, jitter) */
static double frame_unit(const erun *r, int s, uint64_t k, int which)
{
    uint64_t x = r->frame_seed ^ ((uint64_t)s * 0xd1b54a32d192ed03ull) ^
                 (k * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)which << 56);
    splitmix(&x);
    return ((double)(splitmix(&x) >> 11) + 0.5) * 0x1.0p-53;
}

/* Poisson(lambda) by inversion of u */
static double poisson(double lambda, double u)
{
    if (lambda <= 0)
        return 0;
    double p = exp(-lambda), F = p;
    int k = 0;
    while (u > F && k < 10000) {
        k++;
        p *= lambda / k;
        F += p;
        if (p < 1e-300 && (double)k > lambda)
            break;
    }
    return k;
}

/* advances the temperature, energy and throttle state to t */
static void advance(erun *r, double t)
{
    const sim_edge *e = r->e;
    double dt = t - r->tlast;
    if (dt <= 0)
        return;
    double util = r->running >= 0 ? 1.0 : 0.0, w = e->mode[r->mode].watts;
    r->busy_ms += util * dt;
    r->energy_j += dt / 1000.0 * (e->idle_w + (w - e->idle_w) * util);
    if (r->throttled)
        r->throttled_ms += dt;
    if (e->thermal) {
        double ss = e->ambient_c + e->rise_c * util * w / r->max_watts;
        r->temp = ss + (r->temp - ss) * exp(-dt / (e->tau_s * 1000.0));
        if (!r->throttled && r->temp >= e->throttle_c)
            r->throttled = 1;
        else if (r->throttled && r->temp <= e->recover_c)
            r->throttled = 0;
    }
    r->tlast = t;
}

static void next_scene(erun *r, int first)
{
    const sim_edge *e = r->e;
    double tot = 0;
    for (int k = 0; k < e->n_scenes; k++)
        if (first || k != r->scene || e->n_scenes == 1)
            tot += e->scene[k].share;
    double u = rng_unit(&r->env) * tot;
    int pick = r->scene;
    for (int k = 0; k < e->n_scenes; k++) {
        if (!(first || k != r->scene || e->n_scenes == 1) || e->scene[k].share <= 0)
            continue;
        pick = k;
        if ((u -= e->scene[k].share) < 0)
            break;
    }
    r->scene = pick;
    const sim_escene *s = &e->scene[pick];
    r->scene_until = r->now + 1000.0 * (s->dwell_lo_s + (s->dwell_hi_s - s->dwell_lo_s) *
                                                            rng_unit(&r->env));
}

static void next_mode(erun *r)
{
    const sim_edge *e = r->e;
    if (e->n_modes < 2) {
        r->mode_until = INFINITY;
        return;
    }
    int k = (int)(rng_next(&r->env) % (uint64_t)(e->n_modes - 1));
    r->mode = k >= r->mode ? k + 1 : k;
    r->mode_until = r->now + rng_exp(&r->env, 1000.0 * e->mode[r->mode].dwell_s);
}

/* ---- frames ---------------------------------------------------------------- */

static int frame_alloc(erun *r)
{
    int i = r->free_head;
    if (i < 0) {
        fail(r, "more than %d frames waiting at once", POOL);
        return -1;
    }
    r->free_head = r->pool[i].next;
    memset(&r->pool[i], 0, sizeof r->pool[i]);
    return i;
}

static void frame_free(erun *r, int i)
{
    r->pool[i].next = r->free_head;
    r->free_head = i;
}

static double *window(erun *r, double arrive)
{
    size_t w = (size_t)(arrive / (r->sc->window_s * 1000.0));
    if (w >= r->nwin) {
        size_t nw = w + 64;
        double *nwp = realloc(r->win, nw * WIN_FIELDS * sizeof *nwp);
        if (!nwp) {
            fail(r, "out of memory (windows)");
            return NULL;
        }
        memset(nwp + r->nwin * WIN_FIELDS, 0, (nw - r->nwin) * WIN_FIELDS * sizeof *nwp);
        r->win = nwp;
        r->nwin = nw;
    }
    return r->win + w * WIN_FIELDS;
}

/* frame i's outcome: accounting, and the learned policy hears of it */
static void resolve(erun *r, int i, int outcome)
{
    const sim_edge *e = r->e;
    eframe *f = &r->pool[i];
    double w = f->weight, rew;
    double energy = r->sc->edge.energy_weight * f->energy;
    switch (outcome) {
    case OUT_ON_TIME: {
        double acc = accuracy(e, f->action, f->scene);
        rew = w * acc - energy;
        r->on_time++;
        r->acc_on += acc;
        r->wacc_on += w * acc;
        break;
    }
    case OUT_LATE:
        rew = -w * r->sc->miss_penalty - energy;
        r->late++;
        break;
    case OUT_DROPPED:
        rew = -w * r->sc->miss_penalty;
        r->dropped++;
        break;
    default:
        rew = -w * e->skip_penalty;
        r->skipped++;
        break;
    }
    int missed = outcome != OUT_ON_TIME;
    r->frames++;
    r->wsum += w;
    r->wmiss += missed ? w : 0;
    r->reward += rew;
    r->acount[f->action]++;
    double *win = window(r, f->arrive);
    if (win) {
        win[W_FRAMES]++;
        win[W_ON_TIME] += !missed;
        win[W_WEIGHT] += w;
        win[W_MISS] += missed ? w : 0;
        win[W_SKIP] += outcome == OUT_SKIPPED;
        win[W_REWARD] += rew;
        if (f->action != r->skip && outcome != OUT_DROPPED) {
            win[W_RUN]++;
            win[W_MODEL] += f->action / e->n_res;
            win[W_PX] += e->res_px[f->action % e->n_res];
        }
    }
    if (outcome == OUT_ON_TIME || outcome == OUT_LATE) {
        if (r->nlat == r->lat_cap) {
            size_t nc = r->lat_cap ? 2 * r->lat_cap : 4096;
            float *nl = realloc(r->lat, nc * sizeof *nl);
            if (!nl) {
                fail(r, "out of memory (latencies)");
                return;
            }
            r->lat = nl;
            r->lat_cap = nc;
        }
        r->lat[r->nlat++] = (float)(r->now - f->arrive);
    }
    if (r->learning && f->ticket && !r->arrivals_over) {
        int rc = 0;
        if (f->has_next) {
            dlsched_state_t next = {.features = r->nfeat + (size_t)i * (size_t)r->n_feat,
                                    .n_features = (uint32_t)r->n_feat,
                                    .mask = r->mask,
                                    .n_mask = (uint32_t)r->n_act,
                                    .hint = -1};
            rc = dlsched_observe(r->agent, f->ticket, (float)rew, &next, 0);
            if (rc == DLSCHED_ETICKET)
                rc = 0; /* expired: counted by the agent */
        } else {
            /* decided last: the next decision completes the transition */
            r->pend = 1;
            r->pend_ticket = f->ticket;
            r->pend_reward = (float)rew;
            r->last = -1;
        }
        if (rc)
            fail(r, "dlsched_observe: %s", dlsched_last_error());
    }
    frame_free(r, i);
}

/* queued frames whose deadline has passed are dropped */
static void purge(erun *r)
{
    int k = 0;
    for (int q = 0; q < r->nq; q++) {
        int i = r->queue[q];
        if (r->pool[i].deadline <= r->now)
            resolve(r, i, OUT_DROPPED);
        else
            r->queue[k++] = i;
    }
    r->nq = k;
}

/* queued frame q is served before queued frame p */
static int before(const erun *r, const eframe *q, const eframe *p)
{
    if (!r->e->fifo && r->e->st[q->stream].priority != r->e->st[p->stream].priority)
        return r->e->st[q->stream].priority < r->e->st[p->stream].priority;
    return q->arrive < p->arrive;
}

/* the device is free: it starts the next frame that can still be on time */
static void start_next(erun *r)
{
    const sim_edge *e = r->e;
    while (r->running < 0 && r->nq > 0) {
        int bq = 0;
        for (int q = 1; q < r->nq; q++)
            if (before(r, &r->pool[r->queue[q]], &r->pool[r->queue[bq]]))
                bq = q;
        int i = r->queue[bq];
        r->queue[bq] = r->queue[--r->nq];
        eframe *f = &r->pool[i];
        if (f->deadline <= r->now) {
            resolve(r, i, OUT_DROPPED);
            continue;
        }
        uint64_t k = f->no;
        f->objects = poisson(e->scene[f->scene].objects, frame_unit(r, f->stream, k, 0));
        double jit = e->jitter_lo + (e->jitter_hi - e->jitter_lo) * frame_unit(r, f->stream, k, 1);
        double run = base_ms(e, f->action, f->stream, f->objects) / clock_now(r) * jit;
        f->energy = run / 1000.0 * (e->mode[r->mode].watts - e->idle_w);
        r->running = i;
        r->busy_until = r->now + run;
    }
}

static void complete(erun *r)
{
    int i = r->running;
    eframe *f = &r->pool[i];
    r->running = -1;
    r->last_objects[f->stream] = f->objects;
    resolve(r, i, r->now <= f->deadline ? OUT_ON_TIME : OUT_LATE);
}

/* ---- what a policy sees when frame f of stream s arrives -------------------- */

/* what the host knows when a frame of stream s arrives: its deadline; the
   device time ahead of it (the running frame's rest, the queued frames
   served first, and the frames of higher-priority streams due to arrive
   before it would start, each at its stream's last prediction: the
   streams are periodic); the budget left for its own run; the time to the
   next frame of an interfering stream; the clock; each action's predicted
   run time (the stream's last object count, the mean jitter) */
typedef struct {
    double deadline, ahead, budget, hp_next, clock, pred[SIM_EDGE_ACTIONS];
} view;

static int interferes(const erun *r, int j, int s)
{
    return r->e->fifo || r->e->st[j].priority <= r->e->st[s].priority;
}

static void look(const erun *r, int s, view *v)
{
    const sim_edge *e = r->e;
    v->deadline = e->st[s].deadline_ms * e->scene[r->scene].deadline_scale;
    v->ahead = r->running >= 0 ? r->busy_until - r->now : 0;
    for (int q = 0; q < r->nq; q++) {
        const eframe *f = &r->pool[r->queue[q]];
        if (interferes(r, f->stream, s))
            v->ahead += f->est_ms;
    }
    /* higher-priority frames arriving before the start jump the queue */
    if (!e->fifo) {
        double start = v->ahead;
        for (int it = 0; it < 64; it++) {
            double add = 0;
            for (int j = 0; j < e->n_streams; j++) {
                if (e->st[j].priority >= e->st[s].priority)
                    continue;
                double t0 = r->next_arr[j] - r->now, T = 1000.0 / e->st[j].rate_hz;
                if (t0 < start)
                    add += (floor((start - t0) / T) + 1) * r->last_est[j];
            }
            if (v->ahead + add <= start + 1e-9)
                break;
            start = v->ahead + add;
        }
        v->ahead = start;
    }
    v->budget = v->deadline - v->ahead;
    v->hp_next = INFINITY;
    for (int j = 0; j < e->n_streams; j++)
        if (j != s && interferes(r, j, s) && r->next_arr[j] - r->now < v->hp_next)
            v->hp_next = r->next_arr[j] - r->now;
    v->clock = clock_now(r);
    double jm = 0.5 * (e->jitter_lo + e->jitter_hi);
    for (int a = 0; a < r->skip; a++)
        v->pred[a] = base_ms(e, a, s, r->last_objects[s]) / v->clock * jm;
}

/* deadline-aware greedy: the most accurate action whose predicted run time
   fits the frame's remaining budget, else skip */
static int pick_deadline(const erun *r, const view *v)
{
    int best = r->skip;
    double ba = -1;
    for (int a = 0; a < r->skip; a++) {
        if (v->pred[a] > v->budget)
            continue;
        double acc = accuracy(r->e, a, r->scene);
        if (acc > ba || (acc == ba && v->pred[a] < v->pred[best]))
            ba = acc, best = a;
    }
    return best;
}

/* ---- static choices: response-time analysis --------------------------------
   Non-preemptive fixed priority (fifo: every other stream interferes): a
   frame of stream i waits at most w = B + sum over interfering j of
   (floor(w / T_j) + 1) C_j, B the longest lower-priority frame; it is
   schedulable when w + C_i <= D_i. The choice: every stream's most
   accurate action, then the one step down (along the accuracy / cost
   frontier, skip last) that loses the least weighted accuracy per
   millisecond of device time saved, until every stream is schedulable. */
static int schedulable(const sim_edge *e, const double *C, const double *D)
{
    for (int i = 0; i < e->n_streams; i++) {
        if (C[i] <= 0)
            continue;
        double B = 0;
        for (int j = 0; j < e->n_streams; j++)
            if (!e->fifo && e->st[j].priority > e->st[i].priority && C[j] > B)
                B = C[j];
        double w = B, T_i = 1000.0 / e->st[i].rate_hz;
        if (C[i] > T_i)
            return 0;
        for (int it = 0; it < 1000; it++) {
            double nw = B;
            for (int j = 0; j < e->n_streams; j++)
                if (j != i && (e->fifo || e->st[j].priority <= e->st[i].priority))
                    nw += (floor(w / (1000.0 / e->st[j].rate_hz)) + 1) * C[j];
            if (nw + C[i] > D[i])
                return 0;
            if (nw <= w)
                break;
            w = nw;
        }
    }
    return 1;
}

/* conditions: clock, objects per stream, deadline scale, weights and
   resolution accuracy factors (already the scene's or an average) */
static void static_choice(const erun *r, double clock, double objects, double dl_scale,
                          const double *weight, const double *res_acc, int *out)
{
    const sim_edge *e = r->e;
    int front[SIM_EDGE_STREAMS][SIM_EDGE_ACTIONS], len[SIM_EDGE_STREAMS], idx[SIM_EDGE_STREAMS];
    double cost[SIM_EDGE_STREAMS][SIM_EDGE_ACTIONS], acc[SIM_EDGE_ACTIONS];
    double C[SIM_EDGE_STREAMS], D[SIM_EDGE_STREAMS];
    for (int a = 0; a < r->skip; a++)
        acc[a] = e->model[a / e->n_res].accuracy * res_acc[a % e->n_res];
    acc[r->skip] = 0;
    for (int i = 0; i < e->n_streams; i++) {
        /* the actions by accuracy (descending), each cheaper than all before */
        int order[SIM_EDGE_ACTIONS];
        for (int a = 0; a < r->skip; a++)
            order[a] = a;
        for (int a = 1; a < r->skip; a++)
            for (int b = a; b > 0 && acc[order[b]] > acc[order[b - 1]]; b--) {
                int t = order[b];
                order[b] = order[b - 1];
                order[b - 1] = t;
            }
        len[i] = 0;
        double cmin = INFINITY;
        for (int k = 0; k < r->skip; k++) {
            int a = order[k];
            double c = base_ms(e, a, i, objects) / clock * e->jitter_hi;
            if (c < cmin) {
                cmin = c;
                front[i][len[i]] = a;
                cost[i][len[i]++] = c;
            }
        }
        front[i][len[i]] = r->skip;
        cost[i][len[i]++] = 0;
        idx[i] = 0;
        D[i] = e->st[i].deadline_ms * dl_scale;
    }
    for (;;) {
        for (int i = 0; i < e->n_streams; i++)
            C[i] = cost[i][idx[i]];
        if (schedulable(e, C, D))
            break;
        int bi = -1;
        double bratio = INFINITY;
        for (int i = 0; i < e->n_streams; i++) {
            if (idx[i] + 1 >= len[i])
                continue;
            double dacc = weight[i] * (acc[front[i][idx[i]]] - acc[front[i][idx[i] + 1]]);
            double dc = cost[i][idx[i]] - cost[i][idx[i] + 1];
            double ratio = dacc / (dc > 1e-12 ? dc : 1e-12);
            if (ratio < bratio)
                bratio = ratio, bi = i;
        }
        if (bi < 0)
            break; /* everything skipped */
        idx[bi]++;
    }
    for (int i = 0; i < e->n_streams; i++)
        out[i] = front[i][idx[i]];
}

static int make_static(erun *r)
{
    const sim_edge *e = r->e;
    double w[SIM_EDGE_STREAMS] = {0}, ra[SIM_EDGE_RES] = {0}, share = 0, dl = INFINITY, obj = 0;
    for (int k = 0; k < e->n_scenes; k++) {
        const sim_escene *s = &e->scene[k];
        share += s->share;
        for (int i = 0; i < e->n_streams; i++)
            w[i] += s->share * s->weight[i];
        for (int x = 0; x < e->n_res; x++)
            ra[x] += s->share * s->res_accuracy[x];
        dl = s->deadline_scale < dl ? s->deadline_scale : dl;
        double o = s->objects + 3 * sqrt(s->objects);
        obj = o > obj ? o : obj;
    }
    for (int i = 0; i < e->n_streams; i++)
        w[i] /= share;
    for (int x = 0; x < e->n_res; x++)
        ra[x] /= share;
    /* largest that fits the worst case: the slowest clock, the busiest
       scene's objects (mean + 3 sd), the tightest deadlines, the longest
       jitter */
    static_choice(r, r->min_clock, obj, dl, w, ra, r->worst);
    int cells = e->n_scenes * e->n_modes * 2;
    r->rules = malloc((size_t)cells * SIM_EDGE_STREAMS * sizeof *r->rules);
    if (!r->rules) {
        fail(r, "out of memory");
        return -1;
    }
    /* the rule table: per scene and clock state (power mode, throttled), the
       scene's objects (mean + 2 sd), deadlines and weights */
    for (int k = 0; k < e->n_scenes; k++)
        for (int m = 0; m < e->n_modes; m++)
            for (int t = 0; t < 2; t++) {
                const sim_escene *s = &e->scene[k];
                static_choice(r, clock_of(e, m, t), s->objects + 2 * sqrt(s->objects),
                              s->deadline_scale, s->weight, s->res_accuracy,
                              r->rules + ((k * e->n_modes + m) * 2 + t) * SIM_EDGE_STREAMS);
            }
    return 0;
}

/* ---- the learned policies ---------------------------------------------------- */

static int dqn_n_features(const sim_edge *e, int n_act)
{
    return e->n_streams + e->n_scenes + 6 + (n_act - 1) + n_act;
}

static int pick_heuristic(const erun *r, int kind, int s, const view *v);

static void dqn_features(erun *r, int s, const view *v)
{
    const sim_edge *e = r->e;
    float *f = r->feat;
    int k = 0;
    for (int i = 0; i < e->n_streams; i++)
        f[k++] = i == s;
    for (int i = 0; i < e->n_scenes; i++)
        f[k++] = i == r->scene;
    double D = v->deadline;
    f[k++] = (float)clampd(v->budget / D, -1, 1);
    f[k++] = (float)clampd(v->hp_next / D, 0, 2);
    f[k++] = (float)v->clock;
    f[k++] = (float)(e->thermal ? clampd((r->temp - e->ambient_c) /
                                             (e->throttle_c - e->ambient_c), 0, 1.5)
                                : 0);
    f[k++] = (float)r->throttled;
    double mo = e->scene[r->scene].objects;
    f[k++] = (float)clampd(r->last_objects[s] / (mo > 1 ? mo : 1), 0, 3);
    for (int a = 0; a < r->skip; a++)
        f[k++] = (float)clampd((v->budget - v->pred[a]) / D, -2, 1);
    /* the rule table's choice (a host has its table) */
    int rule = pick_heuristic(r, SIM_EPOL_RULES, s, v);
    for (int a = 0; a < r->n_act; a++)
        f[k++] = a == rule;
}

/* qtable: stream, slack, clock, scene, the rule table's choice */
static void qt_features(erun *r, int s, const view *v)
{
    float *f = r->feat;
    f[0] = (float)s;
    f[1] = (float)clampd(v->budget / v->deadline, -0.2, 0.999);
    f[2] = (float)v->clock;
    f[3] = (float)r->scene;
    f[4] = (float)pick_heuristic(r, SIM_EPOL_RULES, s, v);
}

static int give_next(erun *r, const dlsched_state_t *st)
{
    if (r->pend) {
        r->pend = 0;
        int rc = dlsched_observe(r->agent, r->pend_ticket, r->pend_reward, st, 0);
        if (rc && rc != DLSCHED_ETICKET) {
            fail(r, "dlsched_observe: %s", dlsched_last_error());
            return -1;
        }
    } else if (r->last >= 0) {
        memcpy(r->nfeat + (size_t)r->last * (size_t)r->n_feat, st->features,
               (size_t)r->n_feat * sizeof(float));
        r->pool[r->last].has_next = 1;
    }
    return 0;
}

static int pick_heuristic(const erun *r, int kind, int s, const view *v)
{
    if (kind == SIM_EPOL_WORST)
        return r->worst[s];
    if (kind == SIM_EPOL_RULES)
        return r->rules[((r->scene * r->e->n_modes + r->mode) * 2 + r->throttled) *
                            SIM_EDGE_STREAMS + s];
    return pick_deadline(r, v);
}

/* frame i (stream s) has arrived: its action (and ticket) */
static int decide(erun *r, int i, int s)
{
    uint64_t t0 = r->opt->time_decisions ? now_ns() : 0;
    view v;
    look(r, s, &v);
    int kind = r->pol->kind, a;
    eframe *f = &r->pool[i];
    if (!sim_policy_learned(kind)) {
        a = pick_heuristic(r, kind, s, &v);
    } else {
        int hint = pick_heuristic(r, r->inc_kind, s, &v);
        if (kind == SIM_POL_DQN)
            dqn_features(r, s, &v);
        else
            qt_features(r, s, &v);
        dlsched_state_t st = {.features = r->feat,
                              .n_features = (uint32_t)r->n_feat,
                              .mask = r->mask,
                              .n_mask = (uint32_t)r->n_act,
                              .hint = hint};
        if (r->learning && give_next(r, &st))
            return -1;
        dlsched_decision_t d;
        if (dlsched_act(r->agent, &st, r->learning ? 0 : DLSCHED_ACT_GREEDY, &d)) {
            fail(r, "dlsched_act: %s", dlsched_last_error());
            return -1;
        }
        a = (int)d.action;
        f->ticket = d.ticket;
        if (r->learning) {
            r->last = i;
            f->has_next = 0;
        }
    }
    f->action = a;
    f->est_ms = a == r->skip ? 0 : v.pred[a];
    r->last_est[s] = f->est_ms;
    f->deadline = r->now + v.deadline;
    if (r->opt->time_decisions) {
        r->decide_ns += (double)(now_ns() - t0);
        r->decide_n++;
    }
    return 0;
}

static void arrival(erun *r, int s)
{
    const sim_edge *e = r->e;
    purge(r);
    int i = frame_alloc(r);
    if (i < 0)
        return;
    eframe *f = &r->pool[i];
    f->arrive = r->now;
    f->stream = s;
    f->scene = r->scene;
    f->weight = e->scene[r->scene].weight[s];
    uint64_t k = r->frame_no[s]++;
    r->next_arr[s] += 1000.0 / e->st[s].rate_hz;
    double *win = window(r, r->now);
    if (win) {
        win[W_SCENE] = r->scene;
        win[W_TEMP] = r->temp;
        win[W_CLOCK] = clock_now(r);
    }
    if (decide(r, i, s))
        return;
    if (f->action == r->skip) {
        resolve(r, i, OUT_SKIPPED);
        return;
    }
    f->no = k;
    r->queue[r->nq++] = i;
    if (r->running < 0)
        start_next(r);
}

/* ---- one run ------------------------------------------------------------------ */

static void reset_env(erun *r, uint64_t seed, double dur_ms)
{
    const sim_edge *e = r->e;
    rng_seed(&r->env, seed * 0x9e3779b97f4a7c15ull + 11);
    r->frame_seed = seed * 0xc2b2ae3d27d4eb4full + 5;
    r->now = r->tlast = 0;
    r->t_end = dur_ms;
    r->temp = e->thermal ? e->ambient_c : 0;
    r->throttled = 0;
    r->mode = 0;
    r->arrivals_over = 0;
    for (int s = 0; s < e->n_streams; s++) {
        r->next_arr[s] = e->st[s].phase_ms;
        r->frame_no[s] = 0;
        r->last_objects[s] = e->scene[0].objects;
        r->last_est[s] = 0;
    }
    next_scene(r, 1);
    for (int s = 0; s < e->n_streams; s++)
        r->last_objects[s] = e->scene[r->scene].objects;
    r->mode_until = e->n_modes > 1 ? rng_exp(&r->env, 1000.0 * e->mode[0].dwell_s) : INFINITY;
    r->running = -1;
    r->busy_until = 0;
    r->busy_ms = r->throttled_ms = r->energy_j = 0;
    r->free_head = -1;
    for (int i = POOL - 1; i >= 0; i--) {
        r->pool[i].next = r->free_head;
        r->free_head = i;
    }
    r->nq = 0;
    r->frames = r->on_time = r->late = r->dropped = r->skipped = 0;
    memset(r->acount, 0, sizeof r->acount);
    r->wsum = r->wmiss = r->acc_on = r->wacc_on = r->reward = 0;
    r->nlat = 0;
    if (r->win)
        memset(r->win, 0, r->nwin * WIN_FIELDS * sizeof *r->win);
    r->decide_ns = 0;
    r->decide_n = 0;
    r->last = -1;
    r->pend = 0;
}

static void simulate(erun *r, const char *phase)
{
    const sim_edge *e = r->e;
    uint64_t t_wall = now_ns();
    double next_report = 0;
    while (!r->failed) {
        int s = 0;
        for (int j = 1; j < e->n_streams; j++)
            if (r->next_arr[j] < r->next_arr[s])
                s = j;
        double ta = r->next_arr[s] < r->t_end ? r->next_arr[s] : INFINITY;
        if (ta == INFINITY)
            r->arrivals_over = 1;
        double tc = r->running >= 0 ? r->busy_until : INFINITY;
        if (ta == INFINITY && tc == INFINITY)
            break; /* (nothing waits while the device is free) */
        double t = ta;
        if (tc <= t)
            t = tc;
        if (r->scene_until < t)
            t = r->scene_until;
        if (r->mode_until < t)
            t = r->mode_until;
        advance(r, t);
        r->now = t;
        if (tc <= t) {
            complete(r);
            purge(r);
            start_next(r);
        } else if (r->scene_until <= t) {
            next_scene(r, 0);
        } else if (r->mode_until <= t) {
            next_mode(r);
        } else {
            arrival(r, s);
        }
        if (phase && !r->opt->quiet && r->opt->progress && (r->frames & 16383) == 0 &&
            r->now / r->t_end >= next_report) {
            fprintf(stderr, "\r  %-14s %-8s %3.0f%%  (%.1f s)", r->pol->name, phase,
                    100 * r->now / r->t_end, (double)(now_ns() - t_wall) / 1e9);
            next_report = r->now / r->t_end + 0.1;
        }
    }
    if (phase && !r->opt->quiet)
        fprintf(stderr, "\r  %-14s %-8s done  (%.1f s)\n", r->pol->name, phase,
                (double)(now_ns() - t_wall) / 1e9);
}

static int n_actions(const sim_edge *e) { return e->n_models * e->n_res + 1; }

static double min_clock(const sim_edge *e)
{
    double c = INFINITY;
    for (int m = 0; m < e->n_modes; m++)
        if (clock_of(e, m, e->thermal) < c)
            c = clock_of(e, m, e->thermal);
    return c;
}

/* the learned policy's agent: defaults, then the scenario's own keys */
static int make_agent(erun *r, double warmup_frames, sim_err *err)
{
    const sim_scenario *sc = r->sc;
    const sim_edge *e = r->e;
    char spec[4096];
    int dqn = r->pol->kind == SIM_POL_DQN;
    unsigned long long decay = warmup_frames < 1000 ? 1000 : (unsigned long long)warmup_frames;
    /* the guard's block: a second of frames, or when the device can throttle
       (full load heats it to throttle_c) two thermal time constants (a policy's heat outlives its block: with shorter
       blocks the other policy's blocks pay for it, and the switchback
       comparison would favour the hotter policy) */
    int can_throttle = e->thermal && e->ambient_c + e->rise_c >= e->throttle_c;
    double span_s = can_throttle && 2 * e->tau_s > 1 ? 2 * e->tau_s : 1;
    double bl = sc->rate * span_s;
    int block = bl < 16 ? 16 : bl > 1048576 ? 1048576 : (int)lround(bl);
    if (dqn) {
        r->n_feat = dqn_n_features(e, r->n_act);
        snprintf(spec, sizeof spec,
                 "algo=dqn device=cpu n_features=%d n_actions=%d hidden=64,64 lr=0.0005 "
                 "gamma=0.9 batch=64 learning_starts=1000 train_every=4 target_update=1000 "
                 "epsilon_start=0.1 epsilon_end=0 epsilon_decay_steps=%llu replay=100000 "
                 "apprentice=%llu apprentice_agreement=1 guard_block=%d seed=%llu %s",
                 r->n_feat, r->n_act, decay, (unsigned long long)sc->apprentice, block,
                 (unsigned long long)sc->seed, sc->dqn_config);
    } else {
        r->n_feat = 5;
        double cmin = r->min_clock < 0.999 ? r->min_clock : 0.99;
        snprintf(spec, sizeof spec,
                 "algo=qtable n_features=5 n_actions=%d bins=%d,6,3,%d,%d "
                 "feature_low=0,-0.2,%.6g,0,0 feature_high=%d,1,1.0001,%d,%d lr=0.05 gamma=0.9 "
                 "epsilon_start=0.2 epsilon_end=0 epsilon_decay_steps=%llu apprentice=%llu "
                 "apprentice_agreement=1 guard_block=%d seed=%llu %s",
                 r->n_act, e->n_streams, e->n_scenes, r->n_act, cmin, e->n_streams, e->n_scenes,
                 r->n_act, decay,
                 (unsigned long long)sc->apprentice, block, (unsigned long long)sc->seed,
                 sc->qtable_config);
    }
    dlsched_config *cfg = NULL;
    int rc = dlsched_config_new(&cfg);
    if (!rc)
        rc = dlsched_config_parse(cfg, spec);
    if (!rc)
        rc = dlsched_agent_new(cfg, &r->agent);
    dlsched_config_free(cfg);
    if (rc) {
        snprintf(err->msg, sizeof err->msg, "[learning] %s: %.400s", dqn ? "dqn" : "qtable",
                 dlsched_last_error());
        return -1;
    }
    r->feat = calloc((size_t)r->n_feat, sizeof *r->feat);
    r->nfeat = calloc((size_t)r->n_feat * POOL, sizeof *r->nfeat);
    r->mask = malloc((size_t)r->n_act);
    if (!r->feat || !r->nfeat || !r->mask) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return -1;
    }
    memset(r->mask, 1, (size_t)r->n_act);
    return 0;
}

static erun *run_new(const sim_scenario *sc, const sim_policy_spec *p, const sim_options *opt,
                     sim_err *err)
{
    erun *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return NULL;
    }
    r->sc = sc;
    r->e = &sc->edge;
    r->opt = opt;
    r->pol = p;
    r->err = err;
    r->n_act = n_actions(r->e);
    r->skip = r->n_act - 1;
    r->last = -1;
    r->min_clock = min_clock(r->e);
    for (int m = 0; m < r->e->n_modes; m++)
        if (r->e->mode[m].watts > r->max_watts)
            r->max_watts = r->e->mode[m].watts;
    r->inc_kind = sc->inc_resolved ? sc->inc_kind : SIM_EPOL_DEADLINE;
    return r;
}

static void run_free(erun *r)
{
    if (!r)
        return;
    dlsched_agent_free(r->agent);
    free(r->feat);
    free(r->nfeat);
    free(r->mask);
    free(r->rules);
    free(r->lat);
    free(r->win);
    free(r);
}

static void guard_stats(const erun *r, sim_result *out, int eval)
{
    dlsched_stats_t gs;
    if (dlsched_stats(r->agent, &gs, sizeof gs))
        return;
    double share = gs.guard_decisions ? (double)gs.guard_by_learned / (double)gs.guard_decisions
                                      : 0;
    if (eval) {
        out->eval_guard_state = (int)gs.guard_state;
        out->eval_learned_share = share;
        out->eval_fallbacks = gs.guard_fallbacks;
        return;
    }
    out->guard_state = (int)gs.guard_state;
    out->guard_switches = gs.guard_switches;
    out->guard_fallbacks = gs.guard_fallbacks;
    out->guard_pairs = gs.guard_samples_learned;
    out->guard_adv = gs.guard_advantage;
    out->guard_lo = gs.guard_advantage_low;
    out->guard_hi = gs.guard_advantage_high;
    out->guard_learned_share = share;
}

int sim_edge_run(const sim_scenario *sc, const sim_policy_spec *p, const sim_options *opt,
                 sim_result *out, sim_err *err)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", p->name);
    int learned = sim_policy_learned(p->kind);
    if (learned && opt->calibrate) {
        snprintf(err->msg, sizeof err->msg, "policy '%s': calibration runs heuristics only",
                 p->name);
        return -1;
    }
    sim_scenario resolved;
    if (learned && !sc->inc_resolved) {
        resolved = *sc;
        if (sim_edge_resolve_incumbent(&resolved, opt, err))
            return -1;
        sc = &resolved;
    }
    erun *r = run_new(sc, p, opt, err);
    if (!r)
        return -1;
    double scale = opt->scale > 0 ? opt->scale : 1;
    if (make_static(r))
        goto fail;
    if (learned) {
        if (make_agent(r, sc->warmup_s * scale * sc->rate, err))
            goto fail;
        uint64_t t0 = now_ns();
        r->learning = 1;
        reset_env(r, sc->seed, sc->warmup_s * scale * 1000.0);
        simulate(r, "warm-up");
        if (r->failed)
            goto fail;
        out->train_s = (double)(now_ns() - t0) / 1e9;
        guard_stats(r, out, 0);
        size_t nw = 0;
        for (size_t w = 0; w < r->nwin; w++)
            if (r->win[w * WIN_FIELDS + W_FRAMES] > 0)
                nw = w + 1;
        out->n_learn = nw;
        out->learn_reward = calloc(nw ? nw : 1, sizeof(double));
        out->learn_attain = calloc(nw ? nw : 1, sizeof(double));
        if (!out->learn_reward || !out->learn_attain) {
            snprintf(err->msg, sizeof err->msg, "out of memory");
            goto fail;
        }
        for (size_t w = 0; w < nw; w++) {
            const double *x = r->win + w * WIN_FIELDS;
            out->learn_reward[w] = x[W_FRAMES] > 0 ? x[W_REWARD] / x[W_FRAMES] : NAN;
            out->learn_attain[w] = x[W_WEIGHT] > 0 ? 1 - x[W_MISS] / x[W_WEIGHT] : NAN;
        }
        r->learning = !opt->frozen;
    }
    /* calibration (the incumbent's selection) runs on the warm-up drive */
    reset_env(r, opt->calibrate ? sc->seed : sc->eval_seed,
              (opt->calibrate ? sc->warmup_s : sc->eval_s) * scale * 1000.0);
    simulate(r, learned ? "evaluate" : NULL);
    if (r->failed)
        goto fail;
    if (learned)
        guard_stats(r, out, 1);
    double dur = r->t_end / 1000.0, span = r->now > 0 ? r->now : 1e-9;
    out->n = out->submitted = r->frames;
    out->met = r->on_time;
    out->duration_s = dur;
    out->slo_attainment = r->frames ? (double)r->on_time / (double)r->frames : 0;
    out->goodput = (double)r->on_time / dur;
    out->weighted_goodput = r->wacc_on / dur;
    out->mean_accuracy = r->on_time ? r->acc_on / (double)r->on_time : 0;
    out->late = r->late;
    out->dropped = r->dropped;
    out->skipped = r->skipped;
    out->safety_misses = r->wsum > 0 ? r->wmiss / r->wsum : 0;
    out->mean_reward = r->frames ? r->reward / (double)r->frames : 0;
    out->power_w = r->energy_j / (span / 1000.0);
    out->throttled_share = r->throttled_ms / span;
    out->util[0] = r->busy_ms / span;
    memcpy(out->action_count, r->acount, sizeof out->action_count);
    out->decision_ns = r->decide_n ? r->decide_ns / (double)r->decide_n : 0;
    double sum = 0;
    for (size_t k = 0; k < r->nlat; k++)
        sum += r->lat[k];
    out->mean_ms = r->nlat ? sum / (double)r->nlat : 0;
    if (r->nlat)
        qsort(r->lat, r->nlat, sizeof *r->lat, sim_cmp_float);
    out->p50_ms = sim_pct(r->lat, r->nlat, 0.50);
    out->p95_ms = sim_pct(r->lat, r->nlat, 0.95);
    out->p99_ms = sim_pct(r->lat, r->nlat, 0.99);
    size_t nw = (size_t)ceil(dur / sc->window_s);
    if (nw > r->nwin)
        nw = r->nwin;
    out->n_windows = nw;
    out->window_attain = calloc(nw ? nw : 1, sizeof(double));
    out->timeline = calloc(nw ? nw : 1, sizeof *out->timeline);
    if (!out->window_attain || !out->timeline) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        goto fail;
    }
    for (size_t w = 0; w < nw; w++) {
        const double *x = r->win + w * WIN_FIELDS;
        sim_edge_window *t = &out->timeline[w];
        out->window_attain[w] = x[W_FRAMES] > 0 ? x[W_ON_TIME] / x[W_FRAMES] : NAN;
        t->scene = (int)x[W_SCENE];
        t->temp_c = x[W_TEMP];
        t->clock = x[W_CLOCK];
        t->model = x[W_RUN] > 0 ? x[W_MODEL] / x[W_RUN] : NAN;
        t->res_px = x[W_RUN] > 0 ? x[W_PX] / x[W_RUN] : NAN;
        t->miss_weight = x[W_WEIGHT] > 0 ? x[W_MISS] / x[W_WEIGHT] : NAN;
        t->skipped = x[W_FRAMES] > 0 ? x[W_SKIP] / x[W_FRAMES] : NAN;
    }
    run_free(r);
    return 0;
fail:
    run_free(r);
    sim_result_free(out);
    return -1;
}

/* ---- policies ------------------------------------------------------------------ */

static const struct {
    const char *name;
    int kind;
} edge_policies[] = {{"worst-case", SIM_EPOL_WORST},
                     {"deadline", SIM_EPOL_DEADLINE},
                     {"scene-rules", SIM_EPOL_RULES},
                     {"qtable", SIM_POL_QTABLE},
                     {"dqn", SIM_POL_DQN}};
#define N_EDGE_POLICIES (sizeof edge_policies / sizeof edge_policies[0])

int sim_edge_policy_parse(const sim_scenario *sc, const char *name, sim_policy_spec *out,
                          sim_err *err)
{
    (void)sc;
    memset(out, 0, sizeof *out);
    for (size_t k = 0; k < N_EDGE_POLICIES; k++)
        if (!strcmp(name, edge_policies[k].name)) {
            snprintf(out->name, sizeof out->name, "%s", name);
            out->kind = edge_policies[k].kind;
            out->variant = -1;
            return 0;
        }
    snprintf(err->msg, sizeof err->msg,
             "policy '%.60s': unknown for an edge scenario (worst-case, deadline, scene-rules, "
             "qtable, dqn)", name);
    return -1;
}

size_t sim_edge_default_policies(const sim_scenario *sc, sim_policy_spec *out, size_t cap)
{
    size_t n = 0;
    sim_err err;
    for (size_t k = 0; k < N_EDGE_POLICIES && n < cap; k++)
        if (!sim_edge_policy_parse(sc, edge_policies[k].name, &out[n], &err))
            n++;
    return n;
}

int sim_edge_resolve_incumbent(sim_scenario *sc, const sim_options *opt, sim_err *err)
{
    sim_policy_spec p;
    const char *name = sc->incumbent;
    char picked[48];
    if (!strcmp(name, "auto")) {
        /* the heuristic a team would keep: the best weighted goodput on the
           warm-up drive (a tie: the fewest safety-weighted misses). The whole
           drive, not a quarter as for the cluster scenarios: which heuristic
           wins depends on the mix of scenes, and the heuristics cost a few
           milliseconds per simulated minute */
        sim_options co = {.quiet = 1, .calibrate = 1,
                          .scale = opt && opt->scale > 0 ? opt->scale : 1};
        sim_result res[N_EDGE_POLICIES];
        size_t nh = 0;
        double best = -INFINITY;
        for (size_t k = 0; k < N_EDGE_POLICIES; k++) {
            if (sim_policy_learned(edge_policies[k].kind))
                continue;
            sim_policy_spec h = {.kind = edge_policies[k].kind, .variant = -1};
            snprintf(h.name, sizeof h.name, "%s", edge_policies[k].name);
            if (sim_edge_run(sc, &h, &co, &res[nh], err)) {
                for (size_t j = 0; j < nh; j++)
                    sim_result_free(&res[j]);
                return -1;
            }
            best = res[nh].weighted_goodput > best ? res[nh].weighted_goodput : best;
            nh++;
        }
        size_t bi = nh;
        for (size_t j = 0; j < nh; j++)
            if (res[j].weighted_goodput >= best * (1 - 1e-9) &&
                (bi == nh || res[j].safety_misses < res[bi].safety_misses ||
                 (res[j].safety_misses == res[bi].safety_misses &&
                  res[j].weighted_goodput > res[bi].weighted_goodput)))
                bi = j;
        snprintf(picked, sizeof picked, "%s", res[bi].name);
        name = picked;
        for (size_t j = 0; j < nh; j++)
            sim_result_free(&res[j]);
    }
    if (sim_edge_policy_parse(sc, name, &p, err))
        return -1;
    if (sim_policy_learned(p.kind)) {
        snprintf(err->msg, sizeof err->msg,
                 "[learning] incumbent: '%s' is a learned policy; name a heuristic or auto",
                 name);
        return -1;
    }
    sc->inc_kind = p.kind;
    sc->inc_variant = -1;
    snprintf(sc->inc_name, sizeof sc->inc_name, "%s", p.name);
    sc->inc_resolved = 1;
    return 0;
}

int sim_edge_check_learning(const sim_scenario *sc, const sim_policy_spec *p, sim_err *err)
{
    if (!sim_policy_learned(p->kind))
        return 0;
    if (strcmp(sc->incumbent, "auto")) {
        sim_scenario copy = *sc;
        if (sim_edge_resolve_incumbent(&copy, NULL, err))
            return -1;
    }
    sim_options opt = {.quiet = 1};
    erun *r = run_new(sc, p, &opt, err);
    if (!r)
        return -1;
    int rc = make_agent(r, sc->warmup_s * sc->rate, err);
    run_free(r);
    return rc;
}

const char *sim_edge_action_name(const sim_scenario *sc, int a, char *buf, size_t len)
{
    const sim_edge *e = &sc->edge;
    if (a >= n_actions(e) - 1)
        snprintf(buf, len, "skip");
    else
        snprintf(buf, len, "%s@%d", e->model[a / e->n_res].name, e->res_px[a % e->n_res]);
    return buf;
}
