/*
 * qtable.c - tabular Q-learning
 *
 * States are discretised per feature into uniform bins and combined into
 * one index (mixed radix); the table holds n_states x n_actions floats,
 * zero-initialised. Update (Watkins):
 *   Q(s,a) += lr * (r + gamma * max_{a' allowed in s'} Q(s',a') - Q(s,a))
 * with the bootstrap term dropped on terminal transitions.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/backend.h"
#include "../core/bytes.h"
#include "../core/config.h"

/* bin = floor((x - low) * scale), clamped to [0, bins - 1]; index += bin * stride */
typedef struct dls_axis {
    double low, scale;
    uint64_t stride;
    double top;     /* bins - 1, as a double */
} dls_axis;

typedef struct dls_qtable {
    uint32_t nf, na;
    dls_axis *axis;
    uint64_t n_states;
    float *q;             /* n_states * na */
    float lr, gamma;
    /* replay ring, structure of arrays */
    uint64_t cap, count, pos;
    uint64_t *r_s, *r_s2;
    int32_t *r_a;
    float *r_r;
    uint8_t *r_flags;     /* bit 0 terminal, bit 1 has mask */
    uint8_t *r_mask;      /* cap * na */
    size_t bytes;
} dls_qtable;

static void qt_encode(void *impl, const float *x, void *key)
{
    const dls_qtable *t = impl;
    uint64_t idx = 0;
    for (uint32_t i = 0; i < t->nf; i++) {
        const dls_axis *ax = &t->axis[i];
        double f = ((double)x[i] - ax->low) * ax->scale;
        /* truncation is floor for f >= 0; below the range -> bin 0, above -> top */
        uint64_t b = f < 1.0 ? 0 : (f >= ax->top + 1.0 ? (uint64_t)ax->top : (uint64_t)f);
        idx += b * ax->stride;
    }
    memcpy(key, &idx, sizeof idx);
}

static inline uint64_t qt_key(const void *key)
{
    uint64_t s;
    memcpy(&s, key, sizeof s);
    return s;
}

static const float *qt_q(void *impl, const void *key, float *scratch)
{
    const dls_qtable *t = impl;
    (void)scratch;
    return t->q + qt_key(key) * t->na;
}

/* lock-free read of a row for learner=thread */
static const float *qt_q_shared(void *impl, const void *key, float *scratch, uint64_t *version)
{
    const dls_qtable *t = impl;
    const float *row = t->q + qt_key(key) * t->na;
    for (uint32_t a = 0; a < t->na; a++)
        __atomic_load(&row[a], &scratch[a], __ATOMIC_RELAXED);
    *version = 0; /* the agent counts the updates */
    return scratch;
}

static size_t qt_scratch_floats(const void *impl)
{
    return ((const dls_qtable *)impl)->na;
}

/* readers see the live table: nothing to publish */
static int qt_publish(void *impl)
{
    (void)impl;
    return 1;
}

static double qt_update(dls_qtable *t, uint64_t s, int32_t a, float r, uint64_t s2,
                        const uint8_t *mask2, int terminal)
{
    double target = r;
    if (!terminal) {
        const float *q2 = t->q + s2 * t->na;
        float best = -INFINITY;
        for (uint32_t b = 0; b < t->na; b++)
            if ((!mask2 || mask2[b]) && q2[b] > best)
                best = q2[b];
        target += (double)t->gamma * best;
    }
    float *qa = t->q + s * t->na + a;
    double delta = target - *qa;
    /* the only writer holds the agent's lock; with learner=thread acting
       threads read the table without it, so the store is atomic (relaxed:
       a reader sees the old or the new value of each entry) */
    float nq = (float)(*qa + t->lr * delta);
    __atomic_store(qa, &nq, __ATOMIC_RELAXED);
    return 0.5 * delta * delta;
}

static uint64_t qt_learn(void *impl, const dls_transition *tr, dls_rng *rng, double *loss_out)
{
    dls_qtable *t = impl;
    (void)rng;
    uint64_t s = qt_key(tr->key);
    uint64_t s2 = tr->terminal ? 0 : qt_key(tr->next_key);
    double loss = qt_update(t, s, tr->action, tr->reward, s2, tr->next_mask, tr->terminal);
    if (t->cap) {
        uint64_t i = t->pos;
        t->r_s[i] = s;
        t->r_s2[i] = s2;
        t->r_a[i] = tr->action;
        t->r_r[i] = tr->reward;
        t->r_flags[i] = (uint8_t)((tr->terminal ? 1 : 0) | (tr->next_mask ? 2 : 0));
        if (tr->next_mask)
            memcpy(t->r_mask + i * t->na, tr->next_mask, t->na);
        t->pos = i + 1 == t->cap ? 0 : i + 1;
        if (t->count < t->cap)
            t->count++;
    }
    *loss_out = loss;
    return 1;
}

static uint64_t qt_train(void *impl, dls_rng *rng, uint64_t steps, double *loss)
{
    dls_qtable *t = impl;
    if (t->count == 0)
        return 0;
    for (uint64_t k = 0; k < steps; k++) {
        uint64_t i = dls_rng_below64(rng, t->count);
        const uint8_t *m = (t->r_flags[i] & 2) ? t->r_mask + i * t->na : NULL;
        *loss = qt_update(t, t->r_s[i], t->r_a[i], t->r_r[i], t->r_s2[i], m, t->r_flags[i] & 1);
    }
    return steps;
}

static uint64_t qt_stored(const void *impl)
{
    return ((const dls_qtable *)impl)->count;
}

static size_t qt_memory(const void *impl)
{
    return ((const dls_qtable *)impl)->bytes;
}

static uint64_t qt_states(const void *impl)
{
    return ((const dls_qtable *)impl)->n_states;
}

static void qt_destroy(void *impl)
{
    dls_qtable *t = impl;
    if (!t)
        return;
    free(t->axis);
    free(t->q);
    free(t->r_s);
    free(t->r_s2);
    free(t->r_a);
    free(t->r_r);
    free(t->r_flags);
    free(t->r_mask);
    free(t);
}

/* checkpoint section: states, actions, the table; replay capacity, count,
   position and (with_replay) its arrays */
static void qt_save(const void *impl, dls_wbuf *w, int with_replay)
{
    const dls_qtable *t = impl;
    dls_w_u64(w, t->n_states);
    dls_w_u32(w, t->na);
    dls_w_bytes(w, t->q, (size_t)(t->n_states * t->na) * sizeof(float));
    dls_w_u64(w, t->cap);
    uint64_t count = with_replay ? t->count : 0;
    dls_w_u64(w, count);
    dls_w_u64(w, with_replay ? t->pos : 0);
    if (count) {
        dls_w_bytes(w, t->r_s, t->cap * sizeof *t->r_s);
        dls_w_bytes(w, t->r_s2, t->cap * sizeof *t->r_s2);
        dls_w_bytes(w, t->r_a, t->cap * sizeof *t->r_a);
        dls_w_bytes(w, t->r_r, t->cap * sizeof *t->r_r);
        dls_w_bytes(w, t->r_flags, t->cap);
        dls_w_bytes(w, t->r_mask, t->cap * t->na);
    }
}

static int qt_finite(const void *impl)
{
    const dls_qtable *t = impl;
    for (uint64_t i = 0; i < t->n_states * t->na; i++)
        if (!isfinite(t->q[i]))
            return 0;
    return 1;
}

static int qt_load(void *impl, dls_rbuf *r, int with_replay)
{
    dls_qtable *t = impl;
    uint64_t ns = dls_r_u64(r);
    uint32_t na = dls_r_u32(r);
    DLS_FAIL_IF(r->bad || ns != t->n_states || na != t->na, DLSCHED_EFORMAT,
                "checkpoint: the Q-table is %llu x %u but the configuration gives %llu x %u",
                (unsigned long long)ns, na, (unsigned long long)t->n_states, t->na);
    DLS_FAIL_IF(dls_r_array(r, t->q, ns * na, sizeof(float)) != 0, DLSCHED_EFORMAT,
                "checkpoint: the Q-table is truncated");
    for (uint64_t i = 0; i < ns * na; i++)
        DLS_FAIL_IF(!isfinite(t->q[i]), DLSCHED_EFORMAT,
                    "checkpoint: Q-table value %llu is not finite", (unsigned long long)i);
    uint64_t cap = dls_r_u64(r), count = dls_r_u64(r), pos = dls_r_u64(r);
    DLS_FAIL_IF(r->bad || cap != t->cap || count > cap || (cap && pos >= cap) || (!cap && pos) ||
                    (count < cap && pos != count) || (!with_replay && count),
                DLSCHED_EFORMAT, "checkpoint: replay capacity %llu, count %llu, position %llu "
                                 "do not fit the configured replay=%llu",
                (unsigned long long)cap, (unsigned long long)count, (unsigned long long)pos,
                (unsigned long long)t->cap);
    if (count) {
        dls_r_array(r, t->r_s, cap, sizeof *t->r_s);
        dls_r_array(r, t->r_s2, cap, sizeof *t->r_s2);
        dls_r_array(r, t->r_a, cap, sizeof *t->r_a);
        dls_r_array(r, t->r_r, cap, sizeof *t->r_r);
        dls_r_array(r, t->r_flags, cap, 1);
        dls_r_array(r, t->r_mask, cap, t->na);
        DLS_FAIL_IF(r->bad, DLSCHED_EFORMAT, "checkpoint: the replay buffer is truncated");
        for (uint64_t i = 0; i < count; i++) {
            DLS_FAIL_IF(t->r_s[i] >= ns || t->r_s2[i] >= ns || t->r_a[i] < 0 ||
                            (uint32_t)t->r_a[i] >= na || t->r_flags[i] > 3 ||
                            !isfinite(t->r_r[i]),
                        DLSCHED_EFORMAT, "checkpoint: replay transition %llu is out of range",
                        (unsigned long long)i);
            /* a bootstrapping transition's next mask allows an action */
            uint32_t allowed = 0;
            for (uint32_t b = 0; b < na; b++)
                allowed += t->r_mask[i * na + b] != 0;
            DLS_FAIL_IF((t->r_flags[i] & 3) == 2 && allowed == 0, DLSCHED_EFORMAT,
                        "checkpoint: replay transition %llu's next mask allows no action",
                        (unsigned long long)i);
        }
    }
    t->count = count;
    t->pos = pos;
    return DLSCHED_OK;
}

/* ---- exchange: the table (dlsched-exchange(5)) --------------------------------- */

/* u64 states, u32 actions, the table (float32, state-major) */
static void qt_weights_save(void *impl, dls_wbuf *w)
{
    const dls_qtable *t = impl;
    dls_w_u64(w, t->n_states);
    dls_w_u32(w, t->na);
    dls_w_bytes(w, t->q, (size_t)(t->n_states * t->na) * sizeof(float));
}

static int qt_weights_load(void *impl, dls_rbuf *r, uint64_t version)
{
    dls_qtable *t = impl;
    (void)version;
    uint64_t ns = dls_r_u64(r);
    uint32_t na = dls_r_u32(r);
    DLS_FAIL_IF(r->bad, DLSCHED_EFORMAT, "weights: truncated before the table's size");
    DLS_FAIL_IF(ns != t->n_states || na != t->na, DLSCHED_EMISMATCH,
                "weights: a table of %llu states x %u actions, this agent's is %llu x %u",
                (unsigned long long)ns, na, (unsigned long long)t->n_states, t->na);
    size_t n = (size_t)(t->n_states * t->na);
    DLS_FAIL_IF(r->len - r->pos != n * sizeof(float), DLSCHED_EFORMAT,
                "weights: %zu bytes for a table of %zu values", r->len - r->pos, n);
    const unsigned char *p = r->p + r->pos;
    for (size_t i = 0; i < n; i++) {
        float v;
        memcpy(&v, p + i * sizeof v, sizeof v);
        DLS_FAIL_IF(!isfinite(v), DLSCHED_EFORMAT, "weights: table value %zu is not finite", i);
    }
    /* acting threads read the live table (qt_q_shared): value by value */
    for (size_t i = 0; i < n; i++) {
        float v;
        memcpy(&v, p + i * sizeof v, sizeof v);
        __atomic_store(&t->q[i], &v, __ATOMIC_RELAXED);
    }
    r->pos += n * sizeof(float);
    return DLSCHED_OK;
}

static int qt_key_ok(const void *impl, const void *key)
{
    return qt_key(key) < ((const dls_qtable *)impl)->n_states;
}

static const dls_backend_ops dls_qtable_ops = {
    "qtable",   256,       qt_encode, qt_q,     qt_q_shared, qt_scratch_floats, qt_publish,
    qt_learn,   qt_train,  qt_stored, qt_save,  qt_finite, qt_load,     qt_memory,         qt_destroy,
    NULL,       NULL,      qt_states, NULL,     qt_weights_save, qt_weights_load, qt_key_ok,
};

/* malloc and touch: every page is faulted in at creation, not on a request */
static void *qt_alloc(size_t n, size_t *total)
{
    void *p = malloc(n ? n : 1);
    if (p) {
        memset(p, 0, n);
        dls_touch_pages(p, n);
        *total += n;
    }
    return p;
}

static int qt_fail(dls_qtable *t, int code)
{
    qt_destroy(t);
    return code;
}

int dls_qtable_new(const dlsched_config *cfg, const dls_backend_ops **ops, void **impl,
                   size_t *key_bytes)
{
    uint32_t nf = (uint32_t)dls_config_int(cfg, DLS_KEY_N_FEATURES);
    uint32_t na = (uint32_t)dls_config_int(cfg, DLS_KEY_N_ACTIONS);
    dls_qtable *t = calloc(1, sizeof *t);
    DLS_FAIL_IF(!t, DLSCHED_ENOMEM, "out of memory for the Q-table");
    t->nf = nf;
    t->na = na;
    t->lr = (float)dls_config_float(cfg, DLS_KEY_LR);
    t->gamma = (float)dls_config_float(cfg, DLS_KEY_GAMMA);
    t->axis = malloc(nf * sizeof *t->axis);
    double *bins = malloc(nf * sizeof *bins);
    double *low = malloc(nf * sizeof *low);
    double *high = malloc(nf * sizeof *high);
    int rc = DLSCHED_OK;
    if (!t->axis || !bins || !low || !high)
        rc = dls_fail(DLSCHED_ENOMEM, "out of memory for the Q-table");
    if (rc == DLSCHED_OK)
        rc = dls_config_list(cfg, DLS_KEY_BINS, nf, bins);
    if (rc == DLSCHED_OK)
        rc = dls_config_list(cfg, DLS_KEY_FEATURE_LOW, nf, low);
    if (rc == DLSCHED_OK)
        rc = dls_config_list(cfg, DLS_KEY_FEATURE_HIGH, nf, high);
    for (uint32_t i = 0; rc == DLSCHED_OK && i < nf; i++) {
        if (!(low[i] < high[i])) {
            rc = dls_fail(DLSCHED_ECONFIG,
                          "feature %u: feature_low %.9g is not below feature_high %.9g", i,
                          low[i], high[i]);
            break;
        }
        t->axis[i].low = low[i];
        t->axis[i].scale = bins[i] / (high[i] - low[i]);
        t->axis[i].top = bins[i] - 1;
    }
    if (rc != DLSCHED_OK) {
        free(bins);
        free(low);
        free(high);
        return qt_fail(t, rc);
    }

    /* states = prod(bins); table bytes = states * na * 4, checked without overflow */
    uint64_t max_bytes = (uint64_t)dls_config_int(cfg, DLS_KEY_MAX_TABLE_BYTES);
    uint64_t states = 1;
    for (uint32_t i = 0; i < nf; i++) {
        uint64_t b = (uint64_t)bins[i];
        t->axis[i].stride = states;
        if (states > max_bytes / 4 / na / b) {
            free(bins);
            free(low);
            free(high);
            return qt_fail(t, dls_fail(DLSCHED_ECONFIG,
                                       "the Q-table would exceed max_table_bytes %llu at feature "
                                       "%u (bins multiply: %llu states so far x %u bins x %u "
                                       "actions x 4 bytes); use fewer bins or raise "
                                       "max_table_bytes",
                                       (unsigned long long)max_bytes, i,
                                       (unsigned long long)states, (unsigned)b, na));
        }
        states *= b;
    }
    free(bins);
    free(low);
    free(high);
    t->n_states = states;

    uint64_t rcap = (uint64_t)dls_config_int(cfg, DLS_KEY_REPLAY);
    uint64_t per = 2 * sizeof(uint64_t) + sizeof(int32_t) + sizeof(float) + 1 + na;
    uint64_t max_replay = (uint64_t)dls_config_int(cfg, DLS_KEY_MAX_REPLAY_BYTES);
    if (rcap > max_replay / per)
        return qt_fail(t, dls_fail(DLSCHED_ECONFIG,
                                   "replay %llu x %llu bytes per transition exceeds "
                                   "max_replay_bytes %llu; lower replay or raise "
                                   "max_replay_bytes",
                                   (unsigned long long)rcap, (unsigned long long)per,
                                   (unsigned long long)max_replay));
    t->cap = rcap;

    size_t total = sizeof *t + nf * sizeof *t->axis;
    t->q = qt_alloc((size_t)(states * na * sizeof(float)), &total);
    if (!t->q)
        return qt_fail(t, dls_fail(DLSCHED_ENOMEM, "out of memory for a Q-table of %llu bytes",
                                   (unsigned long long)(states * na * sizeof(float))));
    if (rcap) {
        t->r_s = qt_alloc(rcap * sizeof *t->r_s, &total);
        t->r_s2 = qt_alloc(rcap * sizeof *t->r_s2, &total);
        t->r_a = qt_alloc(rcap * sizeof *t->r_a, &total);
        t->r_r = qt_alloc(rcap * sizeof *t->r_r, &total);
        t->r_flags = qt_alloc(rcap, &total);
        t->r_mask = qt_alloc(rcap * na, &total);
        if (!t->r_s || !t->r_s2 || !t->r_a || !t->r_r || !t->r_flags || !t->r_mask)
            return qt_fail(t, dls_fail(DLSCHED_ENOMEM,
                                       "out of memory for a replay buffer of %llu transitions",
                                       (unsigned long long)rcap));
    }
    t->bytes = total;
    *ops = &dls_qtable_ops;
    *impl = t;
    *key_bytes = sizeof(uint64_t); /* the state index */
    return DLSCHED_OK;
}
