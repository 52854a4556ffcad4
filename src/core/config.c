/* config.c - the configuration object: typed parsing and bounds from registry.h */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DLS_KEY_INFO_(id, name, type, def, defq, min, max, flags, choices, help) \
    {name, DLS_T_##type, def, defq, min, max, flags, choices, help},
#define K_REQUIRED DLS_K_REQUIRED
#define K_OPTIONAL DLS_K_OPTIONAL
#define K_SHAPE DLS_K_SHAPE
#define K_STORED DLS_K_STORED
const dls_key_info dls_keys[DLS_N_KEYS] = {DLS_KEYS(DLS_KEY_INFO_)};
#undef K_REQUIRED
#undef K_OPTIONAL
#undef K_SHAPE
#undef K_STORED

typedef struct dls_value {
    int set;
    int64_t i;  /* INT value, ENUM index */
    double f;   /* FLOAT value */
    char *text; /* canonical text, owned; NULL when unset */
} dls_value;

struct dlsched_config {
    dls_value v[DLS_N_KEYS];
};

/* ---- parsing one value --------------------------------------------------- */

static int64_t dls_bound_int(double b)
{
    if (b >= 9223372036854775807.0)
        return INT64_MAX;
    if (b <= -9223372036854775807.0)
        return INT64_MIN;
    return (int64_t)b;
}

static int dls_range_fail(const dls_key_info *k, const char *elem, const char *val, int below)
{
    char lo[40], hi[40];
    dls_fmt_float(k->min, lo, sizeof lo);
    dls_fmt_float(k->max, hi, sizeof hi);
    if (k->type == DLS_T_INT || k->type == DLS_T_INTLIST) {
        snprintf(lo, sizeof lo, "%lld", (long long)dls_bound_int(k->min));
        snprintf(hi, sizeof hi, "%lld", (long long)dls_bound_int(k->max));
    }
    return dls_fail(DLSCHED_ECONFIG, "key '%s': %s%s is %s the %s %s (allowed range %s .. %s)",
                    k->name, elem, val, below ? "below" : "above", below ? "minimum" : "maximum",
                    below ? lo : hi, lo, hi);
}

/* one number of an INT/FLOAT key or list element; elem prefixes messages */
static int dls_parse_number(const dls_key_info *k, int is_int, const char *s, const char *elem,
                            int64_t *iout, double *fout)
{
    DLS_FAIL_IF(*s == '\0', DLSCHED_ECONFIG, "key '%s': %sempty value", k->name, elem);
    for (const char *p = s; *p; p++)
        DLS_FAIL_IF(isspace((unsigned char)*p) || *p == 'x' || *p == 'X', DLSCHED_ECONFIG,
                    "key '%s': %s'%s' is not a %s", k->name, elem, s,
                    is_int ? "decimal integer" : "decimal number");
    char *end;
    if (is_int) {
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (*end == '\0' && errno == 0) {
            int64_t lo = dls_bound_int(k->min), hi = dls_bound_int(k->max);
            if (v < lo)
                return dls_range_fail(k, elem, s, 1);
            if (v > hi)
                return dls_range_fail(k, elem, s, 0);
            *iout = v;
            return DLSCHED_OK;
        }
        /* accept an integral number written as a float, e.g. 1e6 */
        errno = 0;
        double d = strtod(s, &end);
        DLS_FAIL_IF(*end != '\0' || !isfinite(d) || d != floor(d), DLSCHED_ECONFIG,
                    "key '%s': %s'%s' is not an integer", k->name, elem, s);
        if (d < k->min)
            return dls_range_fail(k, elem, s, 1);
        if (d > k->max || d >= 9223372036854775807.0)
            return dls_range_fail(k, elem, s, 0);
        *iout = (int64_t)d;
        return DLSCHED_OK;
    }
    errno = 0;
    double d = strtod(s, &end);
    DLS_FAIL_IF(*end != '\0', DLSCHED_ECONFIG, "key '%s': %s'%s' is not a number", k->name,
                elem, s);
    DLS_FAIL_IF(!isfinite(d), DLSCHED_ECONFIG, "key '%s': %s'%s' is not finite", k->name, elem,
                s);
    if (d < k->min)
        return dls_range_fail(k, elem, s, 1);
    if (d > k->max)
        return dls_range_fail(k, elem, s, 0);
    *fout = d;
    return DLSCHED_OK;
}

/* index of word in "a|b|c", or -1 */
static int dls_choice_index(const char *choices, const char *word)
{
    size_t wl = strlen(word);
    int idx = 0;
    for (const char *p = choices;; idx++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == wl && strncmp(p, word, len) == 0)
            return idx;
        if (!bar)
            return -1;
        p = bar + 1;
    }
}

static char *dls_strndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static int dls_append(char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t n = strlen(s);
    if (*len + n + 1 > *cap) {
        size_t nc = (*cap ? *cap * 2 : 64);
        while (nc < *len + n + 1)
            nc *= 2;
        char *nb = realloc(*buf, nc);
        if (!nb)
            return dls_fail(DLSCHED_ENOMEM, "out of memory for a config value");
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, s, n + 1);
    *len += n;
    return DLSCHED_OK;
}

/* Parse text for key k into out (out->text newly allocated, canonical). */
static int dls_parse_value(const dls_key_info *k, const char *text, dls_value *out)
{
    /* trim surrounding white space */
    while (isspace((unsigned char)*text))
        text++;
    size_t n = strlen(text);
    while (n > 0 && isspace((unsigned char)text[n - 1]))
        n--;
    char *s = dls_strndup(text, n);
    DLS_FAIL_IF(!s, DLSCHED_ENOMEM, "out of memory for key '%s'", k->name);
    char num[48];
    int rc = DLSCHED_OK;
    out->set = 1;
    out->i = 0;
    out->f = 0;
    out->text = NULL;

    switch (k->type) {
    case DLS_T_INT:
        rc = dls_parse_number(k, 1, s, "", &out->i, &out->f);
        if (rc == DLSCHED_OK) {
            snprintf(num, sizeof num, "%lld", (long long)out->i);
            out->f = (double)out->i;
        }
        break;
    case DLS_T_FLOAT:
        rc = dls_parse_number(k, 0, s, "", &out->i, &out->f);
        if (rc == DLSCHED_OK)
            snprintf(num, sizeof num, "%.9g", out->f);
        break;
    case DLS_T_ENUM: {
        int idx = dls_choice_index(k->choices, s);
        if (idx < 0 || *s == '\0') {
            rc = dls_fail(DLSCHED_ECONFIG, "key '%s': '%s' is not one of %s", k->name, s,
                          k->choices);
            break;
        }
        out->i = idx;
        snprintf(num, sizeof num, "%s", "");
        free(s);
        /* canonical text: the choice itself */
        const char *p = k->choices;
        for (int j = 0; j < idx; j++)
            p = strchr(p, '|') + 1;
        const char *bar = strchr(p, '|');
        out->text = dls_strndup(p, bar ? (size_t)(bar - p) : strlen(p));
        DLS_FAIL_IF(!out->text, DLSCHED_ENOMEM, "out of memory for key '%s'", k->name);
        return DLSCHED_OK;
    }
    case DLS_T_INTLIST:
    case DLS_T_FLOATLIST: {
        char *canon = NULL;
        size_t clen = 0, ccap = 0;
        unsigned idx = 0;
        char *save = s;
        for (;;) {
            char *comma = strchr(save, ',');
            if (comma)
                *comma = '\0';
            char *e = save;
            while (isspace((unsigned char)*e))
                e++;
            size_t el = strlen(e);
            while (el > 0 && isspace((unsigned char)e[el - 1]))
                e[--el] = '\0';
            char elem[48];
            snprintf(elem, sizeof elem, "element %u: ", idx);
            int64_t iv = 0;
            double fv = 0;
            rc = dls_parse_number(k, k->type == DLS_T_INTLIST, e, elem, &iv, &fv);
            if (rc != DLSCHED_OK)
                break;
            if (k->type == DLS_T_INTLIST)
                snprintf(num, sizeof num, "%s%lld", idx ? "," : "", (long long)iv);
            else
                snprintf(num, sizeof num, "%s%.9g", idx ? "," : "", fv);
            rc = dls_append(&canon, &clen, &ccap, num);
            if (rc != DLSCHED_OK)
                break;
            if (idx == 0) {
                out->i = iv;
                out->f = k->type == DLS_T_INTLIST ? (double)iv : fv;
            }
            idx++;
            if (!comma)
                break;
            save = comma + 1;
        }
        free(s);
        if (rc != DLSCHED_OK) {
            free(canon);
            return rc;
        }
        out->text = canon;
        return DLSCHED_OK;
    }
    }
    free(s);
    if (rc != DLSCHED_OK)
        return rc;
    out->text = dls_strndup(num, strlen(num));
    DLS_FAIL_IF(!out->text, DLSCHED_ENOMEM, "out of memory for key '%s'", k->name);
    return DLSCHED_OK;
}

/* ---- key lookup ---------------------------------------------------------- */

static size_t dls_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 31 || lb > 31)
        return 99;
    size_t d[32][32];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = c < del ? (c < ins ? c : ins) : (del < ins ? del : ins);
        }
    return d[la][lb];
}

static int dls_find_key(const char *key, size_t len)
{
    for (int i = 0; i < DLS_N_KEYS; i++)
        if (strlen(dls_keys[i].name) == len && strncmp(dls_keys[i].name, key, len) == 0)
            return i;
    return -1;
}

static int dls_unknown_key(const char *key, size_t len)
{
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)(len < 60 ? len : 60), key);
    int best = -1;
    size_t bestd = 3;
    for (int i = 0; i < DLS_N_KEYS; i++) {
        size_t d = dls_edit_distance(name, dls_keys[i].name);
        if (d < bestd) {
            bestd = d;
            best = i;
        }
    }
    if (best >= 0)
        return dls_fail(DLSCHED_ECONFIG, "unknown key '%s' (did you mean '%s'?)", name,
                        dls_keys[best].name);
    return dls_fail(DLSCHED_ECONFIG, "unknown key '%s' (see dlsched(7) for the keys)", name);
}

/* ---- public functions ---------------------------------------------------- */

DLSCHED_API int dlsched_config_new(dlsched_config **out)
{
    DLS_FAIL_IF(!out, DLSCHED_EINVAL, "out is NULL");
    dlsched_config *c = calloc(1, sizeof *c);
    DLS_FAIL_IF(!c, DLSCHED_ENOMEM, "out of memory for a config");
    *out = c;
    return DLSCHED_OK;
}

DLSCHED_API void dlsched_config_free(dlsched_config *cfg)
{
    if (!cfg)
        return;
    for (int i = 0; i < DLS_N_KEYS; i++)
        free(cfg->v[i].text);
    free(cfg);
}

static int dls_set_len(dlsched_config *cfg, const char *key, size_t klen, const char *value)
{
    int id = dls_find_key(key, klen);
    if (id < 0)
        return dls_unknown_key(key, klen);
    dls_value nv = {0, 0, 0, NULL};
    if (value)
        DLS_TRY(dls_parse_value(&dls_keys[id], value, &nv));
    free(cfg->v[id].text);
    cfg->v[id] = nv;
    return DLSCHED_OK;
}

DLSCHED_API int dlsched_config_set(dlsched_config *cfg, const char *key, const char *value)
{
    DLS_FAIL_IF(!cfg, DLSCHED_EINVAL, "cfg is NULL");
    DLS_FAIL_IF(!key, DLSCHED_EINVAL, "key is NULL");
    return dls_set_len(cfg, key, strlen(key), value);
}

int dls_config_dup(const dlsched_config *src, dlsched_config **out)
{
    dlsched_config *c = calloc(1, sizeof *c);
    DLS_FAIL_IF(!c, DLSCHED_ENOMEM, "out of memory for a config");
    for (int i = 0; i < DLS_N_KEYS; i++) {
        c->v[i] = src->v[i];
        if (src->v[i].text) {
            c->v[i].text = dls_strndup(src->v[i].text, strlen(src->v[i].text));
            if (!c->v[i].text) {
                dlsched_config_free(c);
                return dls_fail(DLSCHED_ENOMEM, "out of memory for a config");
            }
        }
    }
    *out = c;
    return DLSCHED_OK;
}

DLSCHED_API int dlsched_config_parse(dlsched_config *cfg, const char *spec)
{
    DLS_FAIL_IF(!cfg, DLSCHED_EINVAL, "cfg is NULL");
    DLS_FAIL_IF(!spec, DLSCHED_EINVAL, "spec is NULL");
    dlsched_config *tmp;
    DLS_TRY(dls_config_dup(cfg, &tmp));
    const char *p = spec;
    int rc = DLSCHED_OK;
    char *vbuf = NULL;
    while (rc == DLSCHED_OK) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (!*p)
            break;
        const char *tok = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            p++;
        size_t tlen = (size_t)(p - tok);
        const char *eq = memchr(tok, '=', tlen);
        if (!eq || eq == tok) {
            rc = dls_fail(DLSCHED_ECONFIG, "token '%.*s' is not key=value", (int)(tlen < 80 ? tlen : 80),
                          tok);
            break;
        }
        size_t vlen = tlen - (size_t)(eq + 1 - tok);
        vbuf = dls_strndup(eq + 1, vlen);
        if (!vbuf) {
            rc = dls_fail(DLSCHED_ENOMEM, "out of memory parsing a config spec");
            break;
        }
        rc = dls_set_len(tmp, tok, (size_t)(eq - tok), vbuf);
        free(vbuf);
        vbuf = NULL;
    }
    if (rc != DLSCHED_OK) {
        dlsched_config_free(tmp);
        return rc;
    }
    /* commit: swap contents */
    for (int i = 0; i < DLS_N_KEYS; i++) {
        free(cfg->v[i].text);
        cfg->v[i] = tmp->v[i];
        tmp->v[i].text = NULL;
    }
    dlsched_config_free(tmp);
    return DLSCHED_OK;
}

const char *dls_config_default(const dlsched_config *cfg, enum dls_key_id id)
{
    const dls_key_info *k = &dls_keys[id];
    if (k->def_qtable && dls_config_int(cfg, DLS_KEY_ALGO) == DLS_ALGO_QTABLE)
        return k->def_qtable;
    return k->def;
}

int dls_config_isset(const dlsched_config *cfg, enum dls_key_id id)
{
    return cfg->v[id].set;
}

const char *dls_config_text(const dlsched_config *cfg, enum dls_key_id id)
{
    if (cfg->v[id].set)
        return cfg->v[id].text;
    return dls_config_default(cfg, id);
}

int64_t dls_config_int(const dlsched_config *cfg, enum dls_key_id id)
{
    const dls_key_info *k = &dls_keys[id];
    if (cfg->v[id].set)
        return cfg->v[id].i;
    const char *d = id == DLS_KEY_ALGO ? k->def : dls_config_default(cfg, id);
    if (!d)
        return 0;
    if (k->type == DLS_T_ENUM)
        return dls_choice_index(k->choices, d);
    return strtoll(d, NULL, 10);
}

double dls_config_float(const dlsched_config *cfg, enum dls_key_id id)
{
    const dls_key_info *k = &dls_keys[id];
    if (cfg->v[id].set)
        return k->type == DLS_T_INT ? (double)cfg->v[id].i : cfg->v[id].f;
    const char *d = dls_config_default(cfg, id);
    return d ? strtod(d, NULL) : 0.0;
}

int dls_config_list(const dlsched_config *cfg, enum dls_key_id id, uint32_t n, double *out)
{
    const char *t = dls_config_text(cfg, id);
    uint32_t count = 1;
    for (const char *p = t; *p; p++)
        count += *p == ',';
    DLS_FAIL_IF(count != 1 && count != n, DLSCHED_ECONFIG,
                "key '%s' has %u values but n_features is %u (give 1 or %u values)",
                dls_keys[id].name, count, n, n);
    const char *p = t;
    for (uint32_t i = 0; i < count; i++) {
        char *end;
        out[i] = strtod(p, &end);
        p = *end == ',' ? end + 1 : end;
    }
    for (uint32_t i = count; i < n; i++)
        out[i] = out[0];
    return DLSCHED_OK;
}

DLSCHED_API int dlsched_config_get(const dlsched_config *cfg, const char *key, char *buf,
                                   size_t len)
{
    DLS_FAIL_IF(!cfg, DLSCHED_EINVAL, "cfg is NULL");
    DLS_FAIL_IF(!key, DLSCHED_EINVAL, "key is NULL");
    DLS_FAIL_IF(!buf, DLSCHED_EINVAL, "buf is NULL");
    int id = dls_find_key(key, strlen(key));
    if (id < 0)
        return dls_unknown_key(key, strlen(key));
    const char *t = dls_config_text(cfg, (enum dls_key_id)id);
    if (!t)
        t = "";
    size_t need = strlen(t) + 1;
    if (need > len) {
        if (len > 0)
            buf[0] = '\0';
        return dls_fail(DLSCHED_EINVAL, "buffer of %zu bytes is too small for key '%s': %zu needed",
                        len, key, need);
    }
    memcpy(buf, t, need);
    return DLSCHED_OK;
}
