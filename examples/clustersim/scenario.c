/*
 * scenario.c - the scenario file format of dlsched-sim(1) and trace files
 *
 * Errors name the file, the line and the field: "b.scn:12: slots: ...".
 */
#include "scnint.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int scn_fail(sim_err *err, const char *file, size_t line, const char *field, const char *fmt,
                ...)
{
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (err) {
        if (line)
            snprintf(err->msg, sizeof err->msg, "%s:%zu: %s: %s", file, line, field, what);
        else
            snprintf(err->msg, sizeof err->msg, "%s: %s: %s", file, field, what);
    }
    return -1;
}

char *scn_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    return s;
}

/* strict number: the whole token, finite */
int scn_num(const char *tok, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(tok, &end);
    if (end == tok || *end || errno || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

/* splits s on blanks into at most cap tokens (in place) */
int scn_split(char *s, char **tok, int cap)
{
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(s, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        if (n == cap)
            return cap + 1;
        tok[n++] = t;
    }
    return n;
}

int scn_get_num(scn_ctx *c, const char *val, double lo, double hi, double *out)
{
    double v;
    if (scn_num(val, &v))
        return scn_fail(c->err, c->file, c->line, c->key, "'%s' is not a number", val);
    if (v < lo || v > hi)
        return scn_fail(c->err, c->file, c->line, c->key, "%g is out of range [%g, %g]", v, lo, hi);
    *out = v;
    return 0;
}

int scn_get_int(scn_ctx *c, const char *val, double lo, double hi, int *out)
{
    double v;
    if (scn_get_num(c, val, lo, hi, &v))
        return -1;
    if (v != floor(v))
        return scn_fail(c->err, c->file, c->line, c->key, "'%s' is not a whole number", val);
    *out = (int)v;
    return 0;
}

static int get_dist(scn_ctx *c, char *val, sim_dist *d)
{
    char *tok[5];
    int n = scn_split(val, tok, 4);
    memset(d, 0, sizeof *d);
    if (n < 2 || n > 4)
        return scn_fail(c->err, c->file, c->line, c->key,
                    "expected 'const N', 'exponential MEAN', 'lognormal MEDIAN SIGMA' or "
                    "'uniform LO HI', optionally followed by a maximum");
    int want;
    if (!strcmp(tok[0], "const"))
        d->kind = SIM_DIST_CONST, want = 1;
    else if (!strcmp(tok[0], "exponential"))
        d->kind = SIM_DIST_EXP, want = 1;
    else if (!strcmp(tok[0], "lognormal"))
        d->kind = SIM_DIST_LOGNORMAL, want = 2;
    else if (!strcmp(tok[0], "uniform"))
        d->kind = SIM_DIST_UNIFORM, want = 2;
    else
        return scn_fail(c->err, c->file, c->line, c->key,
                    "unknown distribution '%s' (const, exponential, lognormal, uniform)", tok[0]);
    if (n - 1 != want && n - 1 != want + 1)
        return scn_fail(c->err, c->file, c->line, c->key, "%s takes %d parameter%s and an optional "
                    "maximum", tok[0], want, want > 1 ? "s" : "");
    if (scn_get_num(c, tok[1], 0, 1e9, &d->a))
        return -1;
    if (want == 2 && scn_get_num(c, tok[2], 0, 1e9, &d->b))
        return -1;
    if (n - 1 == want + 1 && scn_get_num(c, tok[want + 1], 0, 1e9, &d->max))
        return -1;
    if (d->kind == SIM_DIST_UNIFORM && d->b < d->a)
        return scn_fail(c->err, c->file, c->line, c->key, "uniform: HI %g is below LO %g", d->b, d->a);
    if (d->kind == SIM_DIST_LOGNORMAL && d->b > 5)
        return scn_fail(c->err, c->file, c->line, c->key, "lognormal: sigma %g is above 5", d->b);
    return 0;
}

double sim_dist_mean(const sim_dist *d)
{
    double m;
    switch (d->kind) {
    case SIM_DIST_CONST: m = d->a; break;
    case SIM_DIST_EXP: m = d->a; break;
    case SIM_DIST_LOGNORMAL: m = d->a * exp(0.5 * d->b * d->b); break;
    default: m = 0.5 * (d->a + d->b); break;
    }
    if (d->max > 0 && m > d->max)
        m = d->max;
    return m;
}

static int find_gpu(const sim_scenario *sc, const char *name)
{
    for (int i = 0; i < sc->n_gpu; i++)
        if (!strcmp(sc->gpu[i].name, name))
            return i;
    return -1;
}

static int find_var(const sim_scenario *sc, const char *name)
{
    for (int i = 0; i < sc->n_var; i++)
        if (!strcmp(sc->var[i].name, name))
            return i;
    return -1;
}

/* `load` lines name variants that may be declared later: kept until the end */
typedef struct {
    size_t line;
    int gpu;
    char text[256];
} pending_load;

typedef struct {
    size_t line;
    int var;
    char gpu[SIM_NAME];
    char text[256];
} pending_profile;

static void defaults(sim_scenario *sc, const char *name)
{
    memset(sc, 0, sizeof *sc);
    snprintf(sc->path, sizeof sc->path, "%s", name);
    snprintf(sc->name, sizeof sc->name, "%s", "unnamed");
    sc->seed = 1;
    sc->eval_seed = 2;
    sc->slo_base_ms = 1000;
    sc->slo_per_token_ms = 50;
    sc->miss_penalty = 0.5;
    sc->warmup_s = 600;
    sc->eval_s = 300;
    sc->window_s = 10;
    sc->process = SIM_ARR_POISSON;
    sc->load_variant = 0;
    sc->in_tokens = (sim_dist){SIM_DIST_CONST, 512, 0, 0};
    sc->out_tokens = (sim_dist){SIM_DIST_CONST, 128, 0, 0};
    sc->trace_format = SIM_TRACE_CSV;
    sc->train_share = 0.6;
    sc->warmup_passes = 1;
    sc->apprentice = 5000;
    sc->restart_s = -1;
    sc->evaluate_online = -1;
    sc->kv_block_tokens = 16;
    sc->prefix_block_tokens = 512;
    sc->scrape_ms = 50;
    /* llm-d's optimized baseline: queue 2, kv-cache utilisation 2, prefix
       cache 3, no-hit LRU 2 */
    sc->gw_weights[0] = 2, sc->gw_weights[1] = 2, sc->gw_weights[2] = 3, sc->gw_weights[3] = 2;
    snprintf(sc->incumbent, sizeof sc->incumbent, "auto");
    sim_edge *e = &sc->edge;
    e->reference_px = 640;
    e->fixed_share = 0.3;
    e->jitter_lo = e->jitter_hi = 1;
    e->ambient_c = 25;
    e->rise_c = 50;
    e->tau_s = 60;
    e->throttle_c = 85;
    e->recover_c = 75;
    e->throttle_clock = 0.7;
    e->idle_w = 3;
    e->skip_penalty = 0.5;
}

enum { SEC_NONE, SEC_SCENARIO, SEC_GPU, SEC_VARIANT, SEC_ARRIVALS, SEC_LEARNING, SEC_EDGE };

int sim_scenario_parse(const char *text, const char *file, sim_scenario *sc, sim_err *err)
{
    defaults(sc, file);
    char *buf = strdup(text);
    if (!buf)
        return scn_fail(err, file, 0, "file", "out of memory");
    pending_load loads[SIM_MAX_GPU];
    int n_loads = 0;
    pending_profile *profs = NULL;
    int n_profs = 0;
    int sec = SEC_NONE, cur = -1, rc = -1;
    int have_rate = 0, have_load = 0, have_dwell = 0, have_trace = 0;
    /* where things were said: cross-reference errors name these lines */
    size_t gpu_line[SIM_MAX_GPU] = {0}, count_line[SIM_MAX_GPU] = {0};
    size_t var_line[SIM_MAX_VAR] = {0};
    size_t arr_line = 0, process_line = 0, rate_line = 0, load_line = 0;
    size_t lineno = 0, edge_line = 0, workload_line = 0, restart_line = 0;
    scn_edge_state *es = calloc(1, sizeof *es);
    if (!es) {
        free(buf);
        return scn_fail(err, file, 0, "file", "out of memory");
    }
    char *save = NULL;
    /* strtok_r on "\n" would skip empty lines: walk by hand to count them */
    char *p = buf;
    (void)save;
    while (p && *p) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = 0;
        lineno++;
        char *line = p;
        p = nl ? nl + 1 : NULL;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        line = scn_trim(line);
        if (!*line)
            continue;
        scn_ctx c = {file, lineno, "section", err};
        if (*line == '[') {
            char *close = strchr(line, ']');
            if (!close || close[1])
                return free(buf), free(profs), free(es),
                       scn_fail(err, file, lineno, "section", "expected '[name]' or '[name ID]'");
            *close = 0;
            char *tok[3];
            int n = scn_split(line + 1, tok, 2);
            if (n < 1)
                goto bad_section;
            if (!strcmp(tok[0], "scenario") && n == 1)
                sec = SEC_SCENARIO;
            else if (!strcmp(tok[0], "arrivals") && n == 1)
                sec = SEC_ARRIVALS, arr_line = arr_line ? arr_line : lineno;
            else if (!strcmp(tok[0], "learning") && n == 1)
                sec = SEC_LEARNING;
            else if ((!strcmp(tok[0], "gpu") || !strcmp(tok[0], "variant")) && n == 2) {
                int is_gpu = tok[0][0] == 'g';
                if (strlen(tok[1]) >= SIM_NAME)
                    /* tok[] points into buf: format the message, then free */
                    return scn_fail(err, file, lineno, tok[0], "name '%s' is longer than %d bytes",
                                tok[1], SIM_NAME - 1),
                           free(buf), free(profs), free(es), -1;
                /* names end up in policy names (jsq:NAME, comma lists), file
                   names and JSON: letters, digits, '_', '-', '.' */
                if (strspn(tok[1], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "0123456789_-.") != strlen(tok[1]))
                    return scn_fail(err, file, lineno, tok[0], "name '%s': use only letters, "
                                "digits, '_', '-' and '.'", tok[1]),
                           free(buf), free(profs), free(es), -1;
                if (is_gpu) {
                    if (find_gpu(sc, tok[1]) >= 0)
                        return scn_fail(err, file, lineno, "gpu", "'%s' is declared twice", tok[1]),
                               free(buf), free(profs), free(es), -1;
                    if (sc->n_gpu == SIM_MAX_GPU)
                        return free(buf), free(profs), free(es),
                               scn_fail(err, file, lineno, "gpu", "more than %d GPU types",
                                    SIM_MAX_GPU);
                    cur = sc->n_gpu++;
                    gpu_line[cur] = count_line[cur] = lineno;
                    snprintf(sc->gpu[cur].name, SIM_NAME, "%s", tok[1]);
                    sc->gpu[cur].count = 1;
                    sc->gpu[cur].slots = 8;
                    sc->gpu[cur].memory_gb = 80;
                    sc->gpu[cur].memory_utilization = 0.9;
                    sec = SEC_GPU;
                } else {
                    if (find_var(sc, tok[1]) >= 0)
                        return scn_fail(err, file, lineno, "variant", "'%s' is declared twice",
                                    tok[1]),
                               free(buf), free(profs), free(es), -1;
                    if (sc->n_var == SIM_MAX_VAR)
                        return free(buf), free(profs), free(es),
                               scn_fail(err, file, lineno, "variant", "more than %d variants",
                                    SIM_MAX_VAR);
                    cur = sc->n_var++;
                    var_line[cur] = lineno;
                    snprintf(sc->var[cur].name, SIM_NAME, "%s", tok[1]);
                    sc->var[cur].accuracy = 1;
                    sec = SEC_VARIANT;
                }
            } else if (n == 2) {
                int r = scn_edge_section(sc, es, tok[0], tok[1], &c);
                if (r < 0)
                    goto out;
                if (r == 0)
                    goto bad_section;
                sec = SEC_EDGE;
                edge_line = edge_line ? edge_line : lineno;
            } else {
            bad_section:
                return free(buf), free(profs), free(es),
                       scn_fail(err, file, lineno, "section",
                            "unknown section (scenario, gpu NAME, variant NAME, arrivals, "
                            "learning; with workload = edge: device NAME, mode NAME, stream "
                            "NAME, model NAME, scene NAME)");
            }
            continue;
        }
        char *eq = strchr(line, '=');
        if (!eq)
            return free(buf), free(profs), free(es),
                   scn_fail(err, file, lineno, "line", "expected 'key = value'");
        *eq = 0;
        char *key = scn_trim(line), *val = scn_trim(eq + 1);
        c.key = key;
        if (!*val) {
            scn_fail(err, file, lineno, key, "empty value");
            goto out;
        }
        if (sec == SEC_NONE) {
            scn_fail(err, file, lineno, key, "key outside a section");
            goto out;
        }
        double v = 0; /* read after a failed get_num (seed, apprentice) */
        if (sec == SEC_EDGE) {
            if (scn_edge_key(sc, es, key, val, &c))
                goto out;
        } else if (sec == SEC_SCENARIO && !strcmp(key, "workload")) {
            if (!strcmp(val, "edge"))
                sc->is_edge = 1;
            else if (!strcmp(val, "cluster"))
                sc->is_edge = 0;
            else {
                scn_fail(err, file, lineno, key, "'%s' is not one of cluster, edge", val);
                goto out;
            }
            workload_line = lineno;
        } else if (sec == SEC_SCENARIO && !strcmp(key, "skip_penalty")) {
            if (scn_get_num(&c, val, 0, 1e6, &sc->edge.skip_penalty))
                goto out;
        } else if (sec == SEC_SCENARIO && !strcmp(key, "energy_weight")) {
            if (scn_get_num(&c, val, 0, 1e6, &sc->edge.energy_weight))
                goto out;
        } else if (sec == SEC_SCENARIO) {
            if (!strcmp(key, "name")) {
                if (strlen(val) >= sizeof sc->name) {
                    scn_fail(err, file, lineno, key, "longer than %zu bytes", sizeof sc->name - 1);
                    goto out;
                }
                snprintf(sc->name, sizeof sc->name, "%s", val);
            } else if (!strcmp(key, "seed") || !strcmp(key, "eval_seed")) {
                if (scn_get_num(&c, val, 0, 9007199254740992.0, &v) || v != floor(v)) {
                    if (v != floor(v))
                        scn_fail(err, file, lineno, key, "'%s' is not a whole number", val);
                    goto out;
                }
                *(key[0] == 's' ? &sc->seed : &sc->eval_seed) = (uint64_t)v;
            } else if (!strcmp(key, "slo_base_ms")) {
                if (scn_get_num(&c, val, 0, 1e9, &sc->slo_base_ms))
                    goto out;
            } else if (!strcmp(key, "slo_per_token_ms")) {
                if (scn_get_num(&c, val, 0, 1e6, &sc->slo_per_token_ms))
                    goto out;
            } else if (!strcmp(key, "miss_penalty")) {
                if (scn_get_num(&c, val, 0, 1e6, &sc->miss_penalty))
                    goto out;
            } else if (!strcmp(key, "warmup_s")) {
                if (scn_get_num(&c, val, 0, 1e9, &sc->warmup_s))
                    goto out;
            } else if (!strcmp(key, "eval_s")) {
                if (scn_get_num(&c, val, 1e-3, 1e9, &sc->eval_s))
                    goto out;
            } else if (!strcmp(key, "window_s")) {
                if (scn_get_num(&c, val, 1e-3, 1e9, &sc->window_s))
                    goto out;
            } else if (!strcmp(key, "kv_block_tokens")) {
                if (scn_get_int(&c, val, 1, 4096, &sc->kv_block_tokens))
                    goto out;
            } else if (!strcmp(key, "scrape_ms")) {
                if (scn_get_num(&c, val, 0, 1e7, &sc->scrape_ms))
                    goto out;
            } else if (!strcmp(key, "gateway_weights")) {
                char *tok[5];
                if (scn_split(val, tok, 4) != 4) {
                    scn_fail(err, file, lineno, key, "expected 4 weights (queue kv prefix lru)");
                    goto out;
                }
                for (int i = 0; i < 4; i++)
                    if (scn_get_num(&c, tok[i], 0, 1e6, &sc->gw_weights[i]))
                        goto out;
            } else {
                scn_fail(err, file, lineno, key,
                     "unknown key in [scenario] (name, seed, eval_seed, slo_base_ms, "
                     "slo_per_token_ms, miss_penalty, warmup_s, eval_s, window_s, workload, "
                     "skip_penalty, energy_weight, kv_block_tokens, scrape_ms, gateway_weights)");
                goto out;
            }
        } else if (sec == SEC_GPU) {
            sim_gpu *g = &sc->gpu[cur];
            if (!strcmp(key, "count")) {
                if (scn_get_int(&c, val, 1, SIM_MAX_SERVERS, &g->count))
                    goto out;
                count_line[cur] = lineno;
            } else if (!strcmp(key, "slots")) {
                if (scn_get_int(&c, val, 1, SIM_MAX_SLOTS, &g->slots))
                    goto out;
            } else if (!strcmp(key, "memory_gb")) {
                if (scn_get_num(&c, val, 0, 1e6, &g->memory_gb))
                    goto out;
            } else if (!strcmp(key, "memory_utilization")) {
                if (scn_get_num(&c, val, 0.01, 1, &g->memory_utilization))
                    goto out;
            } else if (!strcmp(key, "load")) {
                /* one load line per GPU type (also bounds loads[]) */
                for (int i = 0; i < n_loads; i++)
                    if (loads[i].gpu == cur) {
                        scn_fail(err, file, lineno, key, "given twice for gpu %s (line %zu)",
                             g->name, loads[i].line);
                        goto out;
                    }
                if (strlen(val) >= sizeof loads[0].text) {
                    scn_fail(err, file, lineno, key, "too long");
                    goto out;
                }
                loads[n_loads].line = lineno;
                loads[n_loads].gpu = cur;
                snprintf(loads[n_loads].text, sizeof loads[0].text, "%s", val);
                n_loads++;
            } else {
                scn_fail(err, file, lineno, key,
                     "unknown key in [gpu] (count, slots, memory_gb, memory_utilization, load)");
                goto out;
            }
        } else if (sec == SEC_VARIANT) {
            sim_variant *vr = &sc->var[cur];
            if (!strcmp(key, "accuracy")) {
                if (scn_get_num(&c, val, 0, 1, &vr->accuracy))
                    goto out;
            } else if (!strcmp(key, "memory_gb")) {
                if (scn_get_num(&c, val, 0, 1e6, &vr->memory_gb))
                    goto out;
            } else if (!strcmp(key, "kv_kb_per_token")) {
                if (scn_get_num(&c, val, 1e-3, 1e6, &vr->kv_kb_per_token))
                    goto out;
                sc->kv = 1;
            } else if (!strncmp(key, "profile", 7) && (key[7] == ' ' || key[7] == '\t')) {
                char *gname = scn_trim(key + 7);
                pending_profile *np = realloc(profs, (size_t)(n_profs + 1) * sizeof *profs);
                if (!np) {
                    scn_fail(err, file, lineno, key, "out of memory");
                    goto out;
                }
                profs = np;
                if (strlen(gname) >= SIM_NAME || strlen(val) >= sizeof profs[0].text) {
                    scn_fail(err, file, lineno, key, "too long");
                    goto out;
                }
                profs[n_profs].line = lineno;
                profs[n_profs].var = cur;
                snprintf(profs[n_profs].gpu, SIM_NAME, "%s", gname);
                snprintf(profs[n_profs].text, sizeof profs[0].text, "%s", val);
                n_profs++;
            } else {
                scn_fail(err, file, lineno, key,
                     "unknown key in [variant] (accuracy, memory_gb, kv_kb_per_token, "
                     "profile GPU)");
                goto out;
            }
        } else if (sec == SEC_ARRIVALS) {
            if (!strcmp(key, "process")) {
                process_line = lineno;
                if (!strcmp(val, "poisson"))
                    sc->process = SIM_ARR_POISSON;
                else if (!strcmp(val, "mmpp"))
                    sc->process = SIM_ARR_MMPP;
                else if (!strcmp(val, "diurnal"))
                    sc->process = SIM_ARR_DIURNAL;
                else if (!strcmp(val, "trace"))
                    sc->process = SIM_ARR_TRACE;
                else {
                    scn_fail(err, file, lineno, key,
                         "'%s' is not one of poisson, mmpp, diurnal, trace", val);
                    goto out;
                }
            } else if (!strcmp(key, "rate")) {
                if (scn_get_num(&c, val, 1e-9, 1e9, &sc->rate))
                    goto out;
                have_rate = 1;
                rate_line = lineno;
            } else if (!strcmp(key, "load")) {
                if (scn_get_num(&c, val, 1e-6, 100, &sc->load))
                    goto out;
                have_load = 1;
                load_line = lineno;
            } else if (!strcmp(key, "load_variant")) {
                /* the variant must be declared above this line */
                int vi = find_var(sc, val);
                if (vi < 0) {
                    scn_fail(err, file, lineno, key, "no variant '%s' declared before this line", val);
                    goto out;
                }
                sc->load_variant = vi;
            } else if (!strcmp(key, "rates") || !strcmp(key, "load_rates") ||
                       !strcmp(key, "dwell_s")) {
                char *tok[SIM_MAX_RATES + 1];
                int n = scn_split(val, tok, SIM_MAX_RATES);
                if (n < 1 || n > SIM_MAX_RATES) {
                    scn_fail(err, file, lineno, key, "expected 1 to %d numbers", SIM_MAX_RATES);
                    goto out;
                }
                double *dst = key[0] == 'd' ? sc->dwell_s : sc->rates;
                for (int i = 0; i < n; i++)
                    if (scn_get_num(&c, tok[i], key[0] == 'd' ? 1e-6 : 0, 1e9, &dst[i]))
                        goto out;
                if (key[0] == 'd') {
                    if (sc->n_rates && n != sc->n_rates) {
                        scn_fail(err, file, lineno, key, "%d values, but rates has %d", n,
                             sc->n_rates);
                        goto out;
                    }
                    have_dwell = n;
                } else {
                    if (have_dwell && n != have_dwell) {
                        scn_fail(err, file, lineno, key, "%d values, but dwell_s has %d", n,
                             have_dwell);
                        goto out;
                    }
                    sc->n_rates = n;
                    sc->mmpp_load = key[0] == 'l';
                }
            } else if (!strcmp(key, "amplitude")) {
                if (scn_get_num(&c, val, 0, 1, &sc->amplitude))
                    goto out;
            } else if (!strcmp(key, "period_s")) {
                if (scn_get_num(&c, val, 1e-3, 1e9, &sc->period_s))
                    goto out;
            } else if (!strcmp(key, "input_tokens")) {
                if (get_dist(&c, val, &sc->in_tokens))
                    goto out;
            } else if (!strcmp(key, "output_tokens")) {
                if (get_dist(&c, val, &sc->out_tokens))
                    goto out;
            } else if (!strcmp(key, "prefix_block_tokens")) {
                if (scn_get_int(&c, val, 1, 1 << 20, &sc->prefix_block_tokens))
                    goto out;
            } else if (!strcmp(key, "prefix_groups")) {
                if (scn_get_int(&c, val, 1, 1 << 20, &sc->prefix_groups))
                    goto out;
            } else if (!strcmp(key, "prefix_tokens")) {
                if (scn_get_num(&c, val, 0, 1e7, &sc->prefix_tokens))
                    goto out;
            } else if (!strcmp(key, "trace")) {
                /* relative to the scenario file's directory */
                const char *slash = strrchr(file, '/');
                int dl = (val[0] != '/' && slash) ? (int)(slash - file + 1) : 0;
                if ((size_t)dl + strlen(val) >= sizeof sc->trace_path) {
                    scn_fail(err, file, lineno, key, "path too long");
                    goto out;
                }
                snprintf(sc->trace_path, sizeof sc->trace_path, "%.*s%s", dl, file, val);
                have_trace = 1;
            } else if (!strcmp(key, "format")) {
                if (!strcmp(val, "azure"))
                    sc->trace_format = SIM_TRACE_AZURE;
                else if (!strcmp(val, "mooncake"))
                    sc->trace_format = SIM_TRACE_MOONCAKE;
                else if (!strcmp(val, "csv"))
                    sc->trace_format = SIM_TRACE_CSV;
                else {
                    scn_fail(err, file, lineno, key, "'%s' is not one of azure, mooncake, csv", val);
                    goto out;
                }
            } else if (!strcmp(key, "speedup")) {
                if (scn_get_num(&c, val, 1e-6, 1e6, &sc->speedup))
                    goto out;
            } else if (!strcmp(key, "train_share")) {
                if (scn_get_num(&c, val, 0, 0.99, &sc->train_share))
                    goto out;
            } else if (!strcmp(key, "warmup_passes")) {
                if (scn_get_int(&c, val, 1, 1000, &sc->warmup_passes))
                    goto out;
            } else {
                scn_fail(err, file, lineno, key,
                     "unknown key in [arrivals] (process, rate, load, load_variant, rates, "
                     "load_rates, dwell_s, amplitude, period_s, input_tokens, output_tokens, "
                     "trace, format, speedup, train_share, warmup_passes, "
                     "prefix_block_tokens, prefix_groups, prefix_tokens)");
                goto out;
            }
        } else if (sec == SEC_LEARNING) {
            if (!strcmp(key, "dqn") || !strcmp(key, "qtable")) {
                char *dst = key[0] == 'd' ? sc->dqn_config : sc->qtable_config;
                if (strlen(val) >= sizeof sc->dqn_config) {
                    scn_fail(err, file, lineno, key, "longer than %zu bytes",
                         sizeof sc->dqn_config - 1);
                    goto out;
                }
                snprintf(dst, sizeof sc->dqn_config, "%s", val);
            } else if (!strcmp(key, "apprentice")) {
                if (scn_get_num(&c, val, 0, 1e12, &v) || v != floor(v)) {
                    if (v != floor(v))
                        scn_fail(err, file, lineno, key, "'%s' is not a whole number", val);
                    goto out;
                }
                sc->apprentice = (uint64_t)v;
            } else if (!strcmp(key, "incumbent")) {
                if (strlen(val) >= sizeof sc->incumbent || !val[0]) {
                    scn_fail(err, file, lineno, key, "'%s' is not auto or a heuristic's name", val);
                    goto out;
                }
                snprintf(sc->incumbent, sizeof sc->incumbent, "%s", val);
            } else if (!strcmp(key, "restart_s")) {
                if (scn_get_num(&c, val, 0, 1e9, &sc->restart_s))
                    goto out;
                restart_line = lineno;
            } else if (!strcmp(key, "evaluate")) {
                if (!strcmp(val, "online"))
                    sc->evaluate_online = 1;
                else if (!strcmp(val, "frozen"))
                    sc->evaluate_online = 0;
                else {
                    scn_fail(err, file, lineno, key, "'%s' is not one of frozen, online", val);
                    goto out;
                }
            } else if (!strcmp(key, "dqn_actions")) {
                if (!strcmp(val, "server"))
                    sc->dqn_class = 0;
                else if (!strcmp(val, "class"))
                    sc->dqn_class = 1;
                else {
                    scn_fail(err, file, lineno, key, "'%s' is not one of server, class", val);
                    goto out;
                }
            } else {
                scn_fail(err, file, lineno, key,
                     "unknown key in [learning] (dqn, qtable, apprentice, incumbent, dqn_actions, "
                     "restart_s, evaluate)");
                goto out;
            }
        }
    }
    /* cross-references, now that every section is read */
    if (edge_line && !sc->is_edge) {
        scn_fail(err, file, edge_line, "section",
                 "an edge section in a cluster scenario (set 'workload = edge' in [scenario])");
        goto out;
    }
    if (sc->is_edge) {
        size_t cl = sc->n_gpu ? gpu_line[0] : sc->n_var ? var_line[0] : arr_line;
        if (cl) {
            scn_fail(err, file, cl, "section",
                     "workload = edge (line %zu) takes no gpu, variant or arrivals section",
                     workload_line);
            goto out;
        }
        rc = scn_edge_finish(sc, es, file, err);
        goto out;
    }
    if (sc->n_gpu == 0) {
        scn_fail(err, file, 0, "gpu", "no [gpu NAME] section");
        goto out;
    }
    if (sc->n_var == 0) {
        scn_fail(err, file, 0, "variant", "no [variant NAME] section");
        goto out;
    }
    for (int i = 0; i < n_loads; i++) {
        char *tok[SIM_MAX_VAR + 1];
        int n = scn_split(loads[i].text, tok, SIM_MAX_VAR);
        sim_gpu *g = &sc->gpu[loads[i].gpu];
        double mem = 0;
        if (n < 1 || n > SIM_MAX_VAR) {
            scn_fail(err, file, loads[i].line, "load", "expected 1 to %d variant names", SIM_MAX_VAR);
            goto out;
        }
        for (int k = 0; k < n; k++) {
            int vi = find_var(sc, tok[k]);
            if (vi < 0) {
                scn_fail(err, file, loads[i].line, "load", "no variant '%s'", tok[k]);
                goto out;
            }
            g->load_mask |= 1u << vi;
            mem += sc->var[vi].memory_gb;
        }
        if (mem > g->memory_gb) {
            scn_fail(err, file, loads[i].line, "load",
                 "the variants need %g GB but gpu %s has memory_gb = %g", mem, g->name,
                 g->memory_gb);
            goto out;
        }
    }
    for (int i = 0; i < n_profs; i++) {
        char *tok[5];
        int gi = find_gpu(sc, profs[i].gpu);
        scn_ctx c = {file, profs[i].line, "profile", err};
        if (gi < 0) {
            scn_fail(err, file, profs[i].line, "profile", "no gpu '%s'", profs[i].gpu);
            goto out;
        }
        int n = scn_split(profs[i].text, tok, 4);
        if (n != 4) {
            scn_fail(err, file, profs[i].line, "profile",
                 "expected 4 numbers: overhead_ms prefill_tokens_per_s tpot_ms growth");
            goto out;
        }
        sim_profile *pr = &sc->var[profs[i].var].prof[gi];
        double tps;
        if (scn_get_num(&c, tok[0], 0, 1e7, &pr->overhead_ms) || scn_get_num(&c, tok[1], 1e-3, 1e12, &tps) ||
            scn_get_num(&c, tok[2], 0, 1e7, &pr->tpot_ms) || scn_get_num(&c, tok[3], 0, 100, &pr->growth))
            goto out;
        pr->prefill_tps = tps / 1000.0; /* tokens per ms */
        pr->set = 1;
    }
    sc->n_servers = 0;
    for (int g = 0; g < sc->n_gpu; g++) {
        if (!sc->gpu[g].load_mask) {
            scn_fail(err, file, gpu_line[g], "load", "gpu %s loads no variant", sc->gpu[g].name);
            goto out;
        }
        for (int vi = 0; vi < sc->n_var; vi++)
            if ((sc->gpu[g].load_mask >> vi & 1) && !sc->var[vi].prof[g].set) {
                scn_fail(err, file, var_line[vi], "profile",
                     "variant %s is loaded on gpu %s but has no 'profile %s' line",
                     sc->var[vi].name, sc->gpu[g].name, sc->gpu[g].name);
                goto out;
            }
        sc->n_servers += sc->gpu[g].count;
        if (sc->n_servers > SIM_MAX_SERVERS) {
            scn_fail(err, file, count_line[g], "count", "%d servers in all, at most %d",
                 sc->n_servers, SIM_MAX_SERVERS);
            goto out;
        }
    }
    /* arrival errors: at the process line, else the [arrivals] section */
    size_t pl = process_line ? process_line : arr_line;
    if (sc->process == SIM_ARR_TRACE && !have_trace) {
        scn_fail(err, file, pl, "trace", "process = trace needs a 'trace = FILE' line");
        goto out;
    }
    if (sc->process == SIM_ARR_MMPP && (!sc->n_rates || have_dwell != sc->n_rates)) {
        scn_fail(err, file, pl, sc->n_rates ? "dwell_s" : "rates",
             "process = mmpp needs 'rates' (or 'load_rates') and "
             "'dwell_s' with one value per state");
        goto out;
    }
    if ((sc->process == SIM_ARR_POISSON || sc->process == SIM_ARR_DIURNAL) && !have_rate &&
        !have_load) {
        scn_fail(err, file, pl, "rate", "process = %s needs 'rate' or 'load'",
             sc->process == SIM_ARR_POISSON ? "poisson" : "diurnal");
        goto out;
    }
    if (sc->process == SIM_ARR_DIURNAL && sc->period_s <= 0) {
        scn_fail(err, file, pl, "period_s", "process = diurnal needs 'period_s'");
        goto out;
    }
    if (have_rate && have_load) {
        scn_fail(err, file, rate_line > load_line ? rate_line : load_line,
             rate_line > load_line ? "rate" : "load", "give 'rate' or 'load', not both");
        goto out;
    }
    if (sc->process == SIM_ARR_TRACE && have_rate) {
        scn_fail(err, file, rate_line, "rate",
             "process = trace takes 'speedup' or 'load', not 'rate'");
        goto out;
    }
    if (sc->process == SIM_ARR_TRACE && have_load && sc->speedup > 0) {
        scn_fail(err, file, load_line, "load", "give 'speedup' or 'load', not both");
        goto out;
    }
    if (sc->process == SIM_ARR_MMPP && (have_rate || have_load)) {
        scn_fail(err, file, have_rate ? rate_line : load_line, have_rate ? "rate" : "load",
             "process = mmpp takes its rates from 'rates' or 'load_rates'");
        goto out;
    }
    if (!(sc->load_variant >= 0 && (sc->load_variant < sc->n_var)))
        sc->load_variant = 0;
    if (sc->kv) {
        /* every loaded variant needs its KV size, every GPU type room for
           its weights and some cache */
        uint32_t loaded = 0;
        for (int g = 0; g < sc->n_gpu; g++)
            loaded |= sc->gpu[g].load_mask;
        for (int vi = 0; vi < sc->n_var; vi++)
            if ((loaded >> vi & 1) && !(sc->var[vi].kv_kb_per_token > 0)) {
                scn_fail(err, file, var_line[vi], "kv_kb_per_token",
                     "variant %s has none, but another variant has (the KV model needs it "
                     "for every loaded variant)", sc->var[vi].name);
                goto out;
            }
        for (int g = 0; g < sc->n_gpu; g++) {
            double w = 0;
            for (int vi = 0; vi < sc->n_var; vi++)
                if (sc->gpu[g].load_mask >> vi & 1)
                    w += sc->var[vi].memory_gb;
            if (sc->gpu[g].memory_gb * sc->gpu[g].memory_utilization - w <= 0) {
                scn_fail(err, file, gpu_line[g], "memory_gb",
                     "gpu %s: %g GB x memory_utilization %g leaves no room for the KV cache "
                     "beside %g GB of weights", sc->gpu[g].name, sc->gpu[g].memory_gb,
                     sc->gpu[g].memory_utilization, w);
                goto out;
            }
        }
    }
    if (sc->prefix_groups && sc->process == SIM_ARR_TRACE) {
        scn_fail(err, file, pl, "prefix_groups", "a trace brings its own prefixes (hash_ids)");
        goto out;
    }
    if (sc->prefix_groups && !sc->kv) {
        scn_fail(err, file, pl, "prefix_groups", "needs the KV model (kv_kb_per_token)");
        goto out;
    }
    if (sc->restart_s > 0 && !sc->kv) {
        scn_fail(err, file, restart_line, "restart_s",
                 "warm-up restarts empty the prefix caches: they need the KV model "
                 "(kv_kb_per_token)");
        goto out;
    }
    rc = sim_scenario_finish(sc, err);
out:
    free(buf);
    free(profs);
    free(es);
    return rc;
}

int sim_scenario_load(const char *path, sim_scenario *sc, sim_err *err)
{
    memset(sc, 0, sizeof *sc);
    FILE *f = fopen(path, "rb");
    if (!f)
        return scn_fail(err, path, 0, "file", "cannot open: %s", strerror(errno));
    size_t cap = 4096, len = 0;
    char *text = malloc(cap);
    size_t n;
    while (text && (n = fread(text + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap) {
            if (cap > (1u << 24)) {
                free(text);
                fclose(f);
                return scn_fail(err, path, 0, "file", "larger than 16 MiB");
            }
            char *nt = realloc(text, cap *= 2);
            if (!nt)
                free(text);
            text = nt;
        }
    }
    int rerr = ferror(f);
    fclose(f);
    if (!text)
        return scn_fail(err, path, 0, "file", "out of memory");
    if (rerr) {
        free(text);
        return scn_fail(err, path, 0, "file", "read error");
    }
    text[len] = 0;
    if (memchr(text, 0, len)) {
        free(text);
        return scn_fail(err, path, 0, "file", "contains a NUL byte: not a text file");
    }
    int rc = sim_scenario_parse(text, path, sc, err);
    free(text);
    return rc;
}

void sim_scenario_free(sim_scenario *sc)
{
    free(sc->trace);
    free(sc->hash_pool);
    sc->trace = NULL;
    sc->hash_pool = NULL;
    sc->n_trace = sc->n_hash_pool = 0;
}

/* mean solo service time (ms) of a request of variant v on gpu g */
static double mean_service_ms(const sim_scenario *sc, int v, int g, double in, double out)
{
    const sim_profile *p = &sc->var[v].prof[g];
    return p->overhead_ms + in / p->prefill_tps +
           out * p->tpot_ms * (1 + p->growth * (sc->gpu[g].slots - 1));
}

/* row.n_shared for the rows [lo, hi) of a part: its ids up to the last
   one that occurs twice or more in the part */
static int mark_shared(sim_scenario *sc, size_t lo, size_t hi)
{
    size_t n = 0;
    for (size_t i = lo; i < hi; i++)
        n += sc->trace[i].n_hash;
    size_t size = 16;
    while (size < 2 * n)
        size <<= 1;
    uint64_t *key = malloc(size * sizeof *key);
    uint32_t *cnt = calloc(size, sizeof *cnt);
    if (!key || !cnt) {
        free(key);
        free(cnt);
        return -1;
    }
    for (size_t i = lo; i < hi; i++)
        for (uint32_t k = 0; k < sc->trace[i].n_hash; k++) {
            uint64_t id = sc->hash_pool[sc->trace[i].hash_off + k];
            size_t h = (size_t)((id * 0x9e3779b97f4a7c15ull) >> 17) & (size - 1);
            while (cnt[h] && key[h] != id)
                h = (h + 1) & (size - 1);
            key[h] = id;
            cnt[h]++;
        }
    for (size_t i = lo; i < hi; i++) {
        sim_trace_row *r = &sc->trace[i];
        r->n_shared = 0;
        for (uint32_t k = 0; k < r->n_hash; k++) {
            uint64_t id = sc->hash_pool[r->hash_off + k];
            size_t h = (size_t)((id * 0x9e3779b97f4a7c15ull) >> 17) & (size - 1);
            while (key[h] != id)
                h = (h + 1) & (size - 1);
            if (cnt[h] > 1)
                r->n_shared = k + 1;
        }
    }
    free(key);
    free(cnt);
    return 0;
}

int sim_scenario_finish(sim_scenario *sc, sim_err *err)
{
    /* the KV model's defaults: warm-up episodes as long as the evaluation,
       each starting as it does (cold caches), and the evaluation online */
    if (sc->restart_s < 0)
        sc->restart_s = sc->kv ? sc->eval_s : 0;
    if (sc->evaluate_online < 0)
        sc->evaluate_online = sc->kv;
    if (sc->is_edge)
        return 0; /* scn_edge_finish did it */
    double in = sim_dist_mean(&sc->in_tokens), out = sim_dist_mean(&sc->out_tokens);
    if (sc->prefix_groups)
        in += sc->prefix_tokens;
    if (sc->process == SIM_ARR_TRACE) {
        /* the prefix hashes only for the KV model: without it, nothing changes */
        if (sim_trace_load_hashes(sc->trace_path, sc->trace_format, &sc->trace, &sc->n_trace,
                                  sc->kv ? &sc->hash_pool : NULL, &sc->n_hash_pool, err))
            return -1;
        if (sc->hash_pool) {
            /* the split of arr_trace.c's trace_init */
            size_t split = (size_t)((double)sc->n_trace * sc->train_share);
            split = split < 1 ? 1 : split >= sc->n_trace ? sc->n_trace - 1 : split;
            if (mark_shared(sc, 0, split) || mark_shared(sc, split, sc->n_trace))
                return scn_fail(err, sc->trace_path, 0, "file", "out of memory");
        }
        double si = 0, so = 0;
        for (size_t i = 0; i < sc->n_trace; i++)
            si += sc->trace[i].in, so += sc->trace[i].out;
        in = si / (double)sc->n_trace;
        out = so / (double)sc->n_trace;
    }
    sc->mean_in = in;
    sc->mean_out = out;
    /* capacity: every server full (slots busy) with the reference variant,
       or the fastest variant it has loaded when the reference is absent */
    double cap = 0;
    for (int g = 0; g < sc->n_gpu; g++) {
        int v = sc->load_variant;
        if (!(sc->gpu[g].load_mask >> v & 1)) {
            double best = INFINITY;
            for (int k = 0; k < sc->n_var; k++)
                if (sc->gpu[g].load_mask >> k & 1) {
                    double s = mean_service_ms(sc, k, g, in, out);
                    if (s < best)
                        best = s, v = k;
                }
        }
        double s = mean_service_ms(sc, v, g, in, out);
        cap += sc->gpu[g].count * sc->gpu[g].slots * 1000.0 / (s > 0 ? s : 1e-9);
    }
    sc->capacity = cap;
    if (sc->load > 0 && sc->process != SIM_ARR_TRACE)
        sc->rate = sc->load * cap;
    if (sc->process == SIM_ARR_MMPP) {
        double num = 0, den = 0;
        for (int i = 0; i < sc->n_rates; i++) {
            if (sc->mmpp_load)
                sc->rates[i] *= cap;
            num += sc->rates[i] * sc->dwell_s[i];
            den += sc->dwell_s[i];
        }
        sc->rate = num / den; /* the long-run mean */
    }
    if (sc->process == SIM_ARR_TRACE) {
        double span = sc->trace[sc->n_trace - 1].t - sc->trace[0].t;
        double native = span > 0 ? (double)sc->n_trace / span : 1;
        if (sc->load > 0)
            sc->speedup = sc->load * cap / native;
        else if (sc->speedup <= 0)
            sc->speedup = 1;
        sc->rate = native * sc->speedup;
    }
    return 0;
}

/* ---- traces ------------------------------------------------------------- */

/* days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant's
   days_from_civil) */
static long days_from_civil(long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long)doe - 719468;
}

/* "2023-11-16 18:17:03.9799600" -> days since 1970 and seconds within the
   day (no time zone); kept apart so that the 100 ns digits survive */
static int parse_clock(const char *s, long *days, double *out)
{
    int y, mo, d, h, mi;
    double sec;
    int used = 0;
    if (sscanf(s, "%4d-%2d-%2d %2d:%2d:%lf%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6 ||
        s[used] || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 ||
        mi > 59 || !(sec >= 0 && sec < 61))
        return -1;
    *days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    *out = h * 3600.0 + mi * 60.0 + sec;
    return 0;
}

/* value of "key": NUMBER in a flat JSON object line; -1 if absent/bad */
static int json_num(const char *line, const char *key, double *out)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(line, pat);
    if (!p)
        return -1;
    p += strlen(pat);
    while (isspace((unsigned char)*p))
        p++;
    if (*p++ != ':')
        return -1;
    char *end;
    errno = 0;
    double v = strtod(p, &end);
    if (end == p || errno || !isfinite(v))
        return -1;
    while (isspace((unsigned char)*end))
        end++;
    if (*end != ',' && *end != '}')
        return -1;
    *out = v;
    return 0;
}

/* "hash_ids": [1, 2, 3] of a Mooncake line, appended to *pool: the count,
   or -1 (malformed; absent is 0) */
static long json_ids(const char *line, uint64_t **pool, size_t *n, size_t *cap)
{
    const char *p = strstr(line, "\"hash_ids\"");
    if (!p)
        return 0;
    p += strlen("\"hash_ids\"");
    while (isspace((unsigned char)*p))
        p++;
    if (*p++ != ':')
        return -1;
    while (isspace((unsigned char)*p))
        p++;
    if (*p++ != '[')
        return -1;
    long k = 0;
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (*p == ']')
            return k;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || errno)
            return -1;
        if (*n == *cap) {
            size_t nc = *cap ? 2 * *cap : 4096;
            uint64_t *np = realloc(*pool, nc * sizeof *np);
            if (!np)
                return -1;
            *pool = np;
            *cap = nc;
        }
        (*pool)[(*n)++] = v;
        k++;
        p = end;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == ',')
            p++;
        else if (*p != ']')
            return -1;
    }
}

int sim_trace_load(const char *path, int format, sim_trace_row **rows_out, size_t *n_out,
                   sim_err *err)
{
    return sim_trace_load_hashes(path, format, rows_out, n_out, NULL, NULL, err);
}

int sim_trace_load_hashes(const char *path, int format, sim_trace_row **rows_out, size_t *n_out,
                          uint64_t **pool_out, size_t *n_pool_out, sim_err *err)
{
    uint64_t *pool = NULL;
    size_t n_pool = 0, pool_cap = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return scn_fail(err, path, 0, "file", "cannot open: %s", strerror(errno));
    size_t cap = 1024, n = 0, lineno = 0;
    long base_days = 0;
    sim_trace_row *rows = malloc(cap * sizeof *rows);
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    int rc = -1;
    const char *fmt = format == SIM_TRACE_AZURE ? "azure"
                      : format == SIM_TRACE_MOONCAKE ? "mooncake" : "csv";
    if (!rows) {
        scn_fail(err, path, 0, "file", "out of memory");
        goto out;
    }
    while ((len = getline(&line, &lcap, f)) > 0) {
        lineno++;
        if ((size_t)len != strlen(line)) {
            scn_fail(err, path, lineno, "line", "contains a NUL byte");
            goto out;
        }
        char *s = scn_trim(line);
        if (!*s || *s == '#')
            continue;
        sim_trace_row r;
        if (format == SIM_TRACE_MOONCAKE) {
            if (*s != '{') {
                scn_fail(err, path, lineno, "line", "expected a JSON object (format mooncake)");
                goto out;
            }
            if (json_num(s, "timestamp", &r.t)) {
                scn_fail(err, path, lineno, "timestamp", "missing or not a number");
                goto out;
            }
            if (json_num(s, "input_length", &r.in)) {
                scn_fail(err, path, lineno, "input_length", "missing or not a number");
                goto out;
            }
            if (json_num(s, "output_length", &r.out)) {
                scn_fail(err, path, lineno, "output_length", "missing or not a number");
                goto out;
            }
            r.t /= 1000.0; /* ms */
            r.hash_off = (uint32_t)n_pool;
            r.n_hash = r.n_shared = 0;
            if (pool_out) {
                long k = json_ids(s, &pool, &n_pool, &pool_cap);
                if (k < 0 || n_pool > UINT32_MAX) {
                    scn_fail(err, path, lineno, "hash_ids", "not a list of whole numbers");
                    goto out;
                }
                r.n_hash = (uint32_t)k;
            }
        } else {
            char *f3[4];
            int k = 0;
            for (char *q = s; k < 4;) {
                f3[k++] = q;
                char *comma = strchr(q, ',');
                if (!comma)
                    break;
                *comma = 0;
                q = comma + 1;
            }
            static const char *const azure_cols[3] = {"TIMESTAMP", "ContextTokens",
                                                      "GeneratedTokens"};
            static const char *const csv_cols[3] = {"arrival_s", "input_tokens",
                                                    "output_tokens"};
            const char *const *cols = format == SIM_TRACE_AZURE ? azure_cols : csv_cols;
            if (n == 0 && k >= 1 && !strcmp(scn_trim(f3[0]), cols[0])) {
                /* header line: check it names the columns this format expects */
                if (k != 3 || strcmp(scn_trim(f3[1]), cols[1]) || strcmp(scn_trim(f3[2]), cols[2])) {
                    scn_fail(err, path, lineno, "header", "expected '%s,%s,%s' (format %s)", cols[0],
                         cols[1], cols[2], fmt);
                    goto out;
                }
                continue;
            }
            if (k != 3) {
                scn_fail(err, path, lineno, "line", "expected 3 comma-separated fields (%s,%s,%s), "
                     "got %d", cols[0], cols[1], cols[2], k);
                goto out;
            }
            long days = 0;
            if (format == SIM_TRACE_AZURE ? parse_clock(scn_trim(f3[0]), &days, &r.t)
                                          : scn_num(scn_trim(f3[0]), &r.t)) {
                scn_fail(err, path, lineno, cols[0], "'%s' is not a %s", scn_trim(f3[0]),
                     format == SIM_TRACE_AZURE ? "time 'YYYY-MM-DD HH:MM:SS.fffffff'"
                                               : "number of seconds");
                goto out;
            }
            if (format == SIM_TRACE_AZURE) {
                if (n == 0)
                    base_days = days; /* times count from the first row's day */
                r.t += (double)(days - base_days) * 86400.0;
            }
            if (scn_num(scn_trim(f3[1]), &r.in)) {
                scn_fail(err, path, lineno, cols[1], "'%s' is not a number", scn_trim(f3[1]));
                goto out;
            }
            if (scn_num(scn_trim(f3[2]), &r.out)) {
                scn_fail(err, path, lineno, cols[2], "'%s' is not a number", scn_trim(f3[2]));
                goto out;
            }
        }
        if (format != SIM_TRACE_MOONCAKE)
            r.hash_off = r.n_hash = r.n_shared = 0;
        if (r.in < 0 || r.out < 0) {
            /* the column as the format names it */
            static const char *const col[3][2] = {{"ContextTokens", "GeneratedTokens"},
                                                  {"input_length", "output_length"},
                                                  {"input_tokens", "output_tokens"}};
            int fi = format == SIM_TRACE_AZURE ? 0 : format == SIM_TRACE_MOONCAKE ? 1 : 2;
            scn_fail(err, path, lineno, col[fi][r.in < 0 ? 0 : 1], "negative token count");
            goto out;
        }
        if (n && r.t < rows[n - 1].t) {
            scn_fail(err, path, lineno, format == SIM_TRACE_MOONCAKE ? "timestamp"
                                    : format == SIM_TRACE_AZURE ? "TIMESTAMP" : "arrival_s",
                 "arrival time goes backwards (rows must be sorted by time)");
            goto out;
        }
        if (n == cap) {
            sim_trace_row *nr = realloc(rows, 2 * cap * sizeof *rows);
            if (!nr) {
                scn_fail(err, path, lineno, "line", "out of memory");
                goto out;
            }
            rows = nr;
            cap *= 2;
        }
        rows[n++] = r;
    }
    if (ferror(f)) {
        scn_fail(err, path, lineno, "file", "read error");
        goto out;
    }
    if (n < 2) {
        scn_fail(err, path, 0, "file", "fewer than 2 requests (format %s)", fmt);
        goto out;
    }
    double t0 = rows[0].t;
    for (size_t i = 0; i < n; i++)
        rows[i].t -= t0;
    if (format == SIM_TRACE_MOONCAKE) {
        /* timestamps come in ~3 s ticks: spread each tick's requests evenly
           over the gap to the next tick (at most 3 s) */
        for (size_t i = 0; i < n;) {
            size_t j = i;
            while (j < n && rows[j].t == rows[i].t)
                j++;
            double gap = j < n ? rows[j].t - rows[i].t : 3.0;
            if (gap > 3.0)
                gap = 3.0;
            for (size_t k = i; k < j; k++)
                rows[k].t += gap * (double)(k - i) / (double)(j - i);
            i = j;
        }
    }
    *rows_out = rows;
    *n_out = n;
    if (pool_out) {
        *pool_out = pool;
        *n_pool_out = n_pool;
        pool = NULL;
    }
    rows = NULL;
    rc = 0;
out:
    free(pool);
    free(rows);
    free(line);
    fclose(f);
    return rc;
}
