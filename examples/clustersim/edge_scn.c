/*
 * edge_scn.c - the edge workload's sections of a scenario file
 * (dlsched-sim(5), EDGE): [device NAME], [mode NAME], [stream NAME],
 * [model NAME], [scene NAME]; scenario.c reads the rest and calls these
 */
#include "scnint.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int find(const char *names, size_t stride, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(names + (size_t)i * stride, name))
            return i;
    return -1;
}

int scn_edge_section(sim_scenario *sc, scn_edge_state *es, const char *kind, const char *name,
                     scn_ctx *c)
{
    sim_edge *e = &sc->edge;
    char *dst;
    int *count, cap, sec;
    size_t stride;
    if (strcmp(kind, "device") && strcmp(kind, "stream") && strcmp(kind, "model") &&
        strcmp(kind, "scene") && strcmp(kind, "mode"))
        return 0;
    /* names end up in policy output, file names and JSON */
    if (strlen(name) >= SIM_NAME)
        return scn_fail(c->err, c->file, c->line, kind, "name '%s' is longer than %d bytes",
                        name, SIM_NAME - 1);
    if (strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") !=
        strlen(name))
        return scn_fail(c->err, c->file, c->line, kind,
                        "name '%s': use only letters, digits, '_', '-' and '.'", name);
    if (!strcmp(kind, "device")) {
        if (es->device_line)
            return scn_fail(c->err, c->file, c->line, "device",
                            "a second [device] (the edge workload has one accelerator; the "
                            "first is at line %zu)", es->device_line);
        es->device_line = c->line;
        snprintf(e->device, sizeof e->device, "%s", name);
        es->sec = SCN_EDGE_DEVICE;
        es->cur = 0;
        return 1;
    }
    if (!strcmp(kind, "stream"))
        dst = e->st[0].name, stride = sizeof e->st[0], count = &e->n_streams,
        cap = SIM_EDGE_STREAMS, sec = SCN_EDGE_STREAM;
    else if (!strcmp(kind, "model"))
        dst = e->model[0].name, stride = sizeof e->model[0], count = &e->n_models,
        cap = SIM_EDGE_MODELS, sec = SCN_EDGE_MODEL;
    else if (!strcmp(kind, "scene"))
        dst = e->scene[0].name, stride = sizeof e->scene[0], count = &e->n_scenes,
        cap = SIM_EDGE_SCENES, sec = SCN_EDGE_SCENE;
    else if (!strcmp(kind, "mode"))
        dst = e->mode[0].name, stride = sizeof e->mode[0], count = &e->n_modes,
        cap = SIM_EDGE_MODES, sec = SCN_EDGE_MODE;
    else
        return 0;
    if (find(dst, stride, *count, name) >= 0)
        return scn_fail(c->err, c->file, c->line, kind, "'%s' is declared twice", name);
    if (*count == cap)
        return scn_fail(c->err, c->file, c->line, kind, "more than %d %s sections", cap, kind);
    int i = (*count)++;
    snprintf(dst + (size_t)i * stride, SIM_NAME, "%s", name);
    es->sec = sec;
    es->cur = i;
    if (sec == SCN_EDGE_STREAM) {
        sim_estream *s = &e->st[i];
        s->rate_hz = 10;
        s->deadline_ms = 100;
        s->cost = 1;
        s->priority = 1;
        es->stream_line[i] = c->line;
    } else if (sec == SCN_EDGE_MODEL) {
        e->model[i].accuracy = 0.5;
        e->model[i].latency_ms = 10;
        es->model_line[i] = c->line;
    } else if (sec == SCN_EDGE_SCENE) {
        sim_escene *s = &e->scene[i];
        s->share = 1;
        s->dwell_lo_s = s->dwell_hi_s = 60;
        s->objects = 5;
        s->deadline_scale = 1;
        for (int k = 0; k < SIM_EDGE_STREAMS; k++)
            s->weight[k] = 1;
        for (int k = 0; k < SIM_EDGE_RES; k++)
            s->res_accuracy[k] = 1;
        es->scene_line[i] = c->line;
    } else {
        e->mode[i].mhz = 1000;
        e->mode[i].watts = 15;
        e->mode[i].dwell_s = 600;
    }
    return 1;
}

/* "lo hi" */
static int get_pair(scn_ctx *c, char *val, double lo, double hi, double *a, double *b)
{
    char *tok[3];
    if (scn_split(val, tok, 2) != 2)
        return scn_fail(c->err, c->file, c->line, c->key, "expected two numbers: LOW HIGH");
    if (scn_get_num(c, tok[0], lo, hi, a) || scn_get_num(c, tok[1], lo, hi, b))
        return -1;
    if (*b < *a)
        return scn_fail(c->err, c->file, c->line, c->key, "HIGH %g is below LOW %g", *b, *a);
    return 0;
}

static int keep_text(scn_ctx *c, char *dst, size_t cap, size_t *line, const char *val)
{
    if (strlen(val) >= cap)
        return scn_fail(c->err, c->file, c->line, c->key, "too long");
    snprintf(dst, cap, "%s", val);
    *line = c->line;
    return 0;
}

int scn_edge_key(sim_scenario *sc, scn_edge_state *es, const char *key, char *val, scn_ctx *c)
{
    sim_edge *e = &sc->edge;
    int i = es->cur;
    double v;
    switch (es->sec) {
    case SCN_EDGE_DEVICE:
        if (!strcmp(key, "scheduling")) {
            if (!strcmp(val, "priority"))
                e->fifo = 0;
            else if (!strcmp(val, "fifo"))
                e->fifo = 1;
            else
                return scn_fail(c->err, c->file, c->line, key,
                                "'%s' is not one of priority, fifo", val);
            return 0;
        }
        if (!strcmp(key, "resolutions")) {
            char *tok[SIM_EDGE_RES + 1];
            int n = scn_split(val, tok, SIM_EDGE_RES);
            if (n < 1 || n > SIM_EDGE_RES)
                return scn_fail(c->err, c->file, c->line, key, "expected 1 to %d input sizes "
                                "(pixels, ascending)", SIM_EDGE_RES);
            for (int k = 0; k < n; k++) {
                if (scn_get_int(c, tok[k], 32, 8192, &e->res_px[k]))
                    return -1;
                if (k && e->res_px[k] <= e->res_px[k - 1])
                    return scn_fail(c->err, c->file, c->line, key, "sizes must ascend");
            }
            e->n_res = n;
            es->res_line = c->line;
            return 0;
        }
        if (!strcmp(key, "reference_px"))
            return scn_get_num(c, val, 32, 8192, &e->reference_px);
        if (!strcmp(key, "fixed_share"))
            return scn_get_num(c, val, 0, 1, &e->fixed_share);
        if (!strcmp(key, "jitter"))
            return get_pair(c, val, 0.1, 10, &e->jitter_lo, &e->jitter_hi);
        if (!strcmp(key, "thermal")) {
            if (!strcmp(val, "on"))
                e->thermal = 1;
            else if (!strcmp(val, "off"))
                e->thermal = 0;
            else
                return scn_fail(c->err, c->file, c->line, key, "'%s' is not on or off", val);
            return 0;
        }
        if (!strcmp(key, "ambient_c"))
            return scn_get_num(c, val, -60, 150, &e->ambient_c);
        if (!strcmp(key, "rise_c"))
            return scn_get_num(c, val, 0, 200, &e->rise_c);
        if (!strcmp(key, "tau_s"))
            return scn_get_num(c, val, 0.01, 1e6, &e->tau_s);
        if (!strcmp(key, "throttle_c"))
            return scn_get_num(c, val, -60, 300, &e->throttle_c);
        if (!strcmp(key, "recover_c"))
            return scn_get_num(c, val, -60, 300, &e->recover_c);
        if (!strcmp(key, "throttle_clock"))
            return scn_get_num(c, val, 0.05, 1, &e->throttle_clock);
        if (!strcmp(key, "idle_w"))
            return scn_get_num(c, val, 0, 1e4, &e->idle_w);
        return scn_fail(c->err, c->file, c->line, key,
                        "unknown key in [device] (scheduling, resolutions, reference_px, "
                        "fixed_share, jitter, thermal, ambient_c, rise_c, tau_s, throttle_c, "
                        "recover_c, throttle_clock, idle_w)");
    case SCN_EDGE_MODE:
        if (!strcmp(key, "mhz"))
            return scn_get_num(c, val, 1, 1e5, &e->mode[i].mhz);
        if (!strcmp(key, "watts"))
            return scn_get_num(c, val, 0.01, 1e4, &e->mode[i].watts);
        if (!strcmp(key, "dwell_s"))
            return scn_get_num(c, val, 1e-3, 1e9, &e->mode[i].dwell_s);
        return scn_fail(c->err, c->file, c->line, key,
                        "unknown key in [mode] (mhz, watts, dwell_s)");
    case SCN_EDGE_STREAM:
        if (!strcmp(key, "rate_hz"))
            return scn_get_num(c, val, 0.01, 1000, &e->st[i].rate_hz);
        if (!strcmp(key, "deadline_ms"))
            return scn_get_num(c, val, 0.01, 1e6, &e->st[i].deadline_ms);
        if (!strcmp(key, "phase_ms"))
            return scn_get_num(c, val, 0, 1e6, &e->st[i].phase_ms);
        if (!strcmp(key, "cost"))
            return scn_get_num(c, val, 0.01, 100, &e->st[i].cost);
        if (!strcmp(key, "priority"))
            return scn_get_int(c, val, 0, 100, &e->st[i].priority);
        return scn_fail(c->err, c->file, c->line, key,
                        "unknown key in [stream] (rate_hz, deadline_ms, phase_ms, priority, "
                        "cost)");
    case SCN_EDGE_MODEL:
        if (!strcmp(key, "accuracy"))
            return scn_get_num(c, val, 0, 1, &e->model[i].accuracy);
        if (!strcmp(key, "latency_ms"))
            return scn_get_num(c, val, 1e-3, 1e6, &e->model[i].latency_ms);
        if (!strcmp(key, "post_ms_per_object"))
            return scn_get_num(c, val, 0, 1e3, &e->model[i].post_ms);
        return scn_fail(c->err, c->file, c->line, key,
                        "unknown key in [model] (accuracy, latency_ms, post_ms_per_object)");
    case SCN_EDGE_SCENE:
        if (!strcmp(key, "share"))
            return scn_get_num(c, val, 0, 1e6, &e->scene[i].share);
        if (!strcmp(key, "dwell_s"))
            return get_pair(c, val, 1e-3, 1e9, &e->scene[i].dwell_lo_s, &e->scene[i].dwell_hi_s);
        if (!strcmp(key, "objects"))
            return scn_get_num(c, val, 0, 200, &e->scene[i].objects);
        if (!strcmp(key, "deadline_scale"))
            return scn_get_num(c, val, 0.01, 1, &e->scene[i].deadline_scale);
        if (!strcmp(key, "res_accuracy"))
            return keep_text(c, es->res_acc_text[i], sizeof es->res_acc_text[i],
                             &es->res_acc_line[i], val);
        if (!strcmp(key, "weights"))
            return keep_text(c, es->weights_text[i], sizeof es->weights_text[i],
                             &es->weights_line[i], val);
        return scn_fail(c->err, c->file, c->line, key,
                        "unknown key in [scene] (share, dwell_s, objects, deadline_scale, "
                        "res_accuracy, weights)");
    default:
        break;
    }
    (void)v;
    return scn_fail(c->err, c->file, c->line, key, "key outside an edge section");
}

int scn_edge_finish(sim_scenario *sc, scn_edge_state *es, const char *file, sim_err *err)
{
    sim_edge *e = &sc->edge;
    if (!es->device_line)
        return scn_fail(err, file, 0, "device", "workload = edge needs a [device NAME] section");
    if (!e->n_streams)
        return scn_fail(err, file, 0, "stream", "no [stream NAME] section");
    if (!e->n_models)
        return scn_fail(err, file, 0, "model", "no [model NAME] section");
    if (!e->n_scenes)
        return scn_fail(err, file, 0, "scene", "no [scene NAME] section");
    if (!e->n_modes) {
        e->n_modes = 1;
        snprintf(e->mode[0].name, SIM_NAME, "%s", "default");
        e->mode[0].mhz = 1000;
        e->mode[0].watts = 15;
        e->mode[0].dwell_s = 1e9;
    }
    if (!e->n_res) {
        e->n_res = 1;
        e->res_px[0] = (int)e->reference_px;
    }
    if (e->thermal && e->recover_c >= e->throttle_c)
        return scn_fail(err, file, es->device_line, "recover_c",
                        "%g must be below throttle_c %g", e->recover_c, e->throttle_c);
    double share = 0;
    for (int k = 0; k < e->n_scenes; k++) {
        sim_escene *s = &e->scene[k];
        share += s->share;
        scn_ctx c = {file, es->res_acc_line[k], "res_accuracy", err};
        if (es->res_acc_line[k]) {
            char *tok[SIM_EDGE_RES + 1];
            int n = scn_split(es->res_acc_text[k], tok, SIM_EDGE_RES);
            if (n != e->n_res)
                return scn_fail(err, file, c.line, c.key,
                                "%d values, but the device has %d resolutions", n, e->n_res);
            for (int r = 0; r < n; r++)
                if (scn_get_num(&c, tok[r], 0, 2, &s->res_accuracy[r]))
                    return -1;
        } else if (e->n_res > 1) {
            return scn_fail(err, file, es->scene_line[k], "res_accuracy",
                            "scene %s: one accuracy factor per resolution is needed", s->name);
        }
        if (es->weights_line[k]) {
            char *tok[SIM_EDGE_STREAMS + 1];
            c.line = es->weights_line[k];
            c.key = "weights";
            int n = scn_split(es->weights_text[k], tok, SIM_EDGE_STREAMS);
            if (n < 1 || n > SIM_EDGE_STREAMS)
                return scn_fail(err, file, c.line, c.key, "expected STREAM:WEIGHT pairs");
            for (int t = 0; t < n; t++) {
                char *colon = strchr(tok[t], ':');
                if (!colon)
                    return scn_fail(err, file, c.line, c.key, "'%s' is not STREAM:WEIGHT",
                                    tok[t]);
                *colon = 0;
                int si = find(e->st[0].name, sizeof e->st[0], e->n_streams, tok[t]);
                if (si < 0)
                    return scn_fail(err, file, c.line, c.key, "no stream '%s'", tok[t]);
                if (scn_get_num(&c, colon + 1, 0, 1000, &s->weight[si]))
                    return -1;
            }
        }
    }
    if (!(share > 0))
        return scn_fail(err, file, es->scene_line[0], "share", "the scenes' shares sum to 0");
    for (int k = 0; k < e->n_streams; k++)
        if (e->st[k].deadline_ms > 1000.0 / e->st[k].rate_hz * 1.000001)
            return scn_fail(err, file, es->stream_line[k], "deadline_ms",
                            "stream %s: %g ms is longer than its period (%g ms); the model "
                            "assumes a frame is due before the next one arrives",
                            e->st[k].name, e->st[k].deadline_ms, 1000.0 / e->st[k].rate_hz);
    /* the offered frames and what the device could serve with its most
       accurate action at the reference clock */
    double rate = 0, busy = 0;
    int top = 0;
    for (int m = 1; m < e->n_models; m++)
        if (e->model[m].accuracy > e->model[top].accuracy)
            top = m;
    double rmax = e->res_px[e->n_res - 1] / e->reference_px;
    for (int k = 0; k < e->n_streams; k++) {
        rate += e->st[k].rate_hz;
        busy += e->st[k].rate_hz * e->st[k].cost * e->model[top].latency_ms *
                (e->fixed_share + (1 - e->fixed_share) * rmax * rmax);
    }
    sc->rate = rate;
    sc->capacity = busy > 0 ? rate * 1000.0 / busy : 0;
    sc->n_servers = 1;
    return 0;
}
