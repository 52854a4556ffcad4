/*
 * exchange.c - experience and weights between agents (dlsched-exchange(5))
 *
 *   offset 0   "DLSXCHNG"            magic, 8 bytes
 *          8   u32 format version     DLS_X_VERSION
 *         12   u32 kind               1 transitions, 2 weights
 *         16   u64 body length
 *         24   body
 *   24 + body  u32 CRC-32 (zlib)      of every byte before it
 *
 * Body: the shape (u32 algo 0 qtable / 1 dqn, u32 n_features, u32
 * n_actions, u32 key bytes, u64 FNV-1a hash of the shape keys' effective
 * values; for transitions without hidden, dueling and normalize), then
 *   transitions: u32 count, u32 0, count records of u64 model version, i32
 *                action, f32 reward, u32 flags (1 terminal, 2 truncated,
 *                4 next mask), u32 0, the key, the next key unless
 *                terminal, the next state's mask (n_actions bytes) if flag 4;
 *   weights:     u64 model version, the backend's weights (dqn: u64 count,
 *                the parameters, u32 normaliser on, its mean and inverse
 *                deviation; qtable: u64 states, u32 actions, the table).
 * Keys are the backends' state encodings (dqn: the n_features float32
 * features; qtable: the u64 state index). Little-endian throughout. A blob
 * is checked whole (sizes against the bytes there, the checksum, the shape,
 * every value) before anything changes.
 *
 * The ring of completed transitions waiting for export lives here too: a
 * mutex of its own, never held with the agent's other locks' callers
 * waiting on it for long (one copy per transition).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agent_impl.h"
#include "bytes.h"

#define DLS_X_MAGIC "DLSXCHNG"
#define DLS_X_VERSION 1u
#define DLS_X_HEADER 24u
enum { DLS_X_TRANSITIONS = 1, DLS_X_WEIGHTS = 2 };
enum { DLS_XF_TERMINAL = 1, DLS_XF_TRUNCATED = 2, DLS_XF_MASK = 4 };

/* ---- the ring ---------------------------------------------------------------------- */

static size_t dls_pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

int dls_xring_init(dlsched_agent *ag, uint32_t cap)
{
    dls_xring *x = &ag->xr;
    x->stride = sizeof(dls_xhdr) + 2 * dls_pad8(ag->key_bytes) + dls_pad8(ag->na);
    DLS_FAIL_IF((size_t)cap > SIZE_MAX / x->stride, DLSCHED_ECONFIG,
                "key 'exchange_capacity': %u transitions of %zu bytes do not fit in memory", cap,
                x->stride);
    x->buf = calloc(cap, x->stride);
    DLS_FAIL_IF(!x->buf, DLSCHED_ENOMEM, "out of memory for exchange_capacity=%u (%zu bytes)",
                cap, (size_t)cap * x->stride);
    if (pthread_mutex_init(&x->mu, NULL) != 0) {
        free(x->buf);
        x->buf = NULL;
        return dls_fail(DLSCHED_ENOMEM, "cannot create the exchange ring's lock");
    }
    x->cap = cap;
    ag->bytes += (size_t)cap * x->stride;
    return DLSCHED_OK;
}

void dls_xring_free(dlsched_agent *ag)
{
    if (!ag->xr.cap)
        return;
    pthread_mutex_destroy(&ag->xr.mu);
    free(ag->xr.buf);
    ag->xr.buf = NULL;
    ag->xr.cap = 0;
}

void dls_xring_record(dlsched_agent *ag, const void *key, int32_t action, float reward,
                      const void *next_key, const uint8_t *next_mask, unsigned terminal,
                      unsigned truncated, uint64_t version)
{
    dls_xring *x = &ag->xr;
    size_t kb = ag->key_bytes, kpad = dls_pad8(kb);
    dls_xhdr h = {version, action, reward,
                  (terminal ? DLS_XF_TERMINAL : 0u) | (truncated ? DLS_XF_TRUNCATED : 0u) |
                      (next_mask && !terminal ? DLS_XF_MASK : 0u),
                  0};
    pthread_mutex_lock(&x->mu);
    uint32_t at;
    if (x->count == x->cap) { /* full: the oldest goes */
        at = x->head;
        x->head = (x->head + 1) % x->cap;
        x->dropped++;
    } else {
        at = (uint32_t)(((uint64_t)x->head + x->count) % x->cap);
        x->count++;
    }
    unsigned char *e = x->buf + (size_t)at * x->stride;
    memcpy(e, &h, sizeof h);
    memcpy(e + sizeof h, key, kb);
    if (!terminal && next_key)
        memcpy(e + sizeof h + kpad, next_key, kb);
    if (h.flags & DLS_XF_MASK)
        memcpy(e + sizeof h + 2 * kpad, next_mask, ag->na);
    pthread_mutex_unlock(&x->mu);
}

/* ---- the blob's frame and shape -------------------------------------------------- */

static void dls_fnv(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        *h ^= b[i];
        *h *= 0x100000001b3ull;
    }
}

/* FNV-1a 64 of the effective values of the keys that fix a model's shape
   (registry.h K_SHAPE), lists expanded to n_features values. Transitions
   carry states as keys, whose encoding the network's keys (hidden, dueling,
   normalize) do not change: their hash leaves those out, so a learner may
   change its network while actors built for the old one still ship. */
static uint64_t dls_shape_hash(const dlsched_agent *ag, uint32_t kind)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < DLS_N_KEYS; i++) {
        const dls_key_info *k = &dls_keys[i];
        if (!(k->flags & DLS_K_SHAPE))
            continue;
        if (kind == DLS_X_TRANSITIONS &&
            (i == DLS_KEY_HIDDEN || i == DLS_KEY_DUELING || i == DLS_KEY_NORMALIZE))
            continue;
        dls_fnv(&h, k->name, strlen(k->name) + 1);
        if (k->type == DLS_T_INTLIST || k->type == DLS_T_FLOATLIST) {
            if (i == DLS_KEY_HIDDEN) { /* its own length */
                const char *t = dls_config_text(ag->cfg, (enum dls_key_id)i);
                dls_fnv(&h, t ? t : "", t ? strlen(t) : 0);
                continue;
            }
            double *all = malloc(ag->nf * sizeof *all);
            if (all && dls_config_list(ag->cfg, (enum dls_key_id)i, ag->nf, all) == DLSCHED_OK)
                dls_fnv(&h, all, ag->nf * sizeof *all);
            else /* cannot happen for a created agent: hash as unequal to any */
                dls_fnv(&h, &ag, sizeof ag);
            free(all);
        } else if (k->type == DLS_T_FLOAT) {
            double v = dls_config_float(ag->cfg, (enum dls_key_id)i);
            dls_fnv(&h, &v, sizeof v);
        } else {
            int64_t v = dls_config_int(ag->cfg, (enum dls_key_id)i);
            dls_fnv(&h, &v, sizeof v);
        }
    }
    return h;
}

typedef struct dls_xshape {
    uint32_t algo, nf, na, key_bytes;
    uint64_t hash;
} dls_xshape;

static dls_xshape dls_shape_of(const dlsched_agent *ag, uint32_t kind)
{
    dls_xshape s = {ag->is_dqn ? 1u : 0u, ag->nf, ag->na, (uint32_t)ag->key_bytes,
                    dls_shape_hash(ag, kind)};
    return s;
}

static void dls_x_begin(dls_wbuf *w, uint32_t kind, const dls_xshape *s)
{
    dls_w_bytes(w, DLS_X_MAGIC, 8);
    dls_w_u32(w, DLS_X_VERSION);
    dls_w_u32(w, kind);
    dls_w_u64(w, 0); /* the body's length, at the end */
    dls_w_u32(w, s->algo);
    dls_w_u32(w, s->nf);
    dls_w_u32(w, s->na);
    dls_w_u32(w, s->key_bytes);
    dls_w_u64(w, s->hash);
}

/* close the frame: body length, checksum; *out and *len get the blob */
static int dls_x_end(dls_wbuf *w, void **out, size_t *len)
{
    if (!w->failed) {
        uint64_t body = w->len - DLS_X_HEADER;
        memcpy(w->p + 16, &body, 8);
        dls_w_u32(w, dls_crc32(w->p, w->len));
    }
    if (w->failed) {
        free(w->p);
        return dls_fail(DLSCHED_ENOMEM, "out of memory for an exchange blob");
    }
    *out = w->p;
    *len = w->len;
    return DLSCHED_OK;
}

static const char *dls_kind_name(uint32_t kind)
{
    return kind == DLS_X_TRANSITIONS ? "transitions" : "weights";
}

/* check the frame and the shape of a blob of this kind; body: the bytes
   after the shape */
static int dls_x_open(const dlsched_agent *ag, const void *buf, size_t len, uint32_t kind,
                      dls_rbuf *body)
{
    const unsigned char *p = buf;
    const char *what = dls_kind_name(kind);
    DLS_FAIL_IF(len < DLS_X_HEADER + 24 + 4, DLSCHED_EFORMAT,
                "%s blob: %zu bytes, shorter than its header", what, len);
    DLS_FAIL_IF(memcmp(p, DLS_X_MAGIC, 8) != 0, DLSCHED_EFORMAT,
                "%s blob: not a libdlsched exchange blob (bad magic)", what);
    uint32_t version, k;
    uint64_t blen;
    memcpy(&version, p + 8, 4);
    memcpy(&k, p + 12, 4);
    memcpy(&blen, p + 16, 8);
    DLS_FAIL_IF(version != DLS_X_VERSION, DLSCHED_EFORMAT,
                "%s blob: format version %u, this library reads %u", what, version,
                DLS_X_VERSION);
    DLS_FAIL_IF(k != kind, DLSCHED_EFORMAT, "%s blob: it holds %s (kind %u)", what,
                k == DLS_X_TRANSITIONS || k == DLS_X_WEIGHTS ? dls_kind_name(k) : "something else",
                k);
    DLS_FAIL_IF(blen != len - DLS_X_HEADER - 4, DLSCHED_EFORMAT,
                "%s blob: its body is %llu bytes but %zu are there (truncated or padded)", what,
                (unsigned long long)blen, len - DLS_X_HEADER - 4);
    uint32_t crc;
    memcpy(&crc, p + len - 4, 4);
    DLS_FAIL_IF(crc != dls_crc32(p, len - 4), DLSCHED_EFORMAT,
                "%s blob: checksum mismatch (corrupt)", what);
    dls_rbuf r = {p + DLS_X_HEADER, (size_t)blen, 0, 0};
    dls_xshape s;
    s.algo = dls_r_u32(&r);
    s.nf = dls_r_u32(&r);
    s.na = dls_r_u32(&r);
    s.key_bytes = dls_r_u32(&r);
    s.hash = dls_r_u64(&r);
    dls_xshape mine = dls_shape_of(ag, kind);
    DLS_FAIL_IF(s.algo != mine.algo, DLSCHED_EMISMATCH, "%s blob: from algo=%s, this agent is %s",
                what, s.algo == 1 ? "dqn" : s.algo == 0 ? "qtable" : "?",
                mine.algo ? "dqn" : "qtable");
    DLS_FAIL_IF(s.nf != mine.nf || s.na != mine.na, DLSCHED_EMISMATCH,
                "%s blob: n_features=%u n_actions=%u, this agent has %u and %u", what, s.nf,
                s.na, mine.nf, mine.na);
    DLS_FAIL_IF(s.key_bytes != mine.key_bytes || s.hash != mine.hash, DLSCHED_EMISMATCH,
                kind == DLS_X_TRANSITIONS
                    ? "%s blob: states encoded otherwise (bins or feature ranges differ)"
                    : "%s blob: another shape (hidden, bins, feature ranges, dueling or "
                      "normalize differ)",
                what);
    *body = r;
    return DLSCHED_OK;
}

/* ---- transitions ------------------------------------------------------------------- */

DLSCHED_API int dlsched_export_transitions(dlsched_agent *ag, uint32_t max, void **buf,
                                           size_t *len, uint32_t *count, uint64_t *dropped)
{
    DLS_FAIL_IF(!ag, DLSCHED_EINVAL, "agent is NULL");
    DLS_FAIL_IF(!buf || !len || !count, DLSCHED_EINVAL, "%s is NULL",
                !buf ? "buf" : !len ? "len" : "count");
    DLS_FAIL_IF(!ag->xr.cap, DLSCHED_ECONFIG,
                "the agent records no transitions: set exchange_capacity > 0");
    dls_xring *x = &ag->xr;
    size_t kb = ag->key_bytes, kpad = dls_pad8(kb);
    dls_wbuf w = {NULL, 0, 0, 0};
    dls_xshape shape = dls_shape_of(ag, DLS_X_TRANSITIONS);
    dls_x_begin(&w, DLS_X_TRANSITIONS, &shape);
    pthread_mutex_lock(&x->mu);
    uint32_t n = max && max < x->count ? max : x->count;
    dls_w_u32(&w, n);
    dls_w_u32(&w, 0);
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *e = x->buf + (size_t)((x->head + (uint64_t)i) % x->cap) * x->stride;
        dls_xhdr h;
        memcpy(&h, e, sizeof h);
        dls_w_u64(&w, h.version);
        dls_w_bytes(&w, &h.action, 4);
        dls_w_bytes(&w, &h.reward, 4);
        dls_w_u32(&w, h.flags);
        dls_w_u32(&w, 0);
        dls_w_bytes(&w, e + sizeof h, kb);
        if (!(h.flags & DLS_XF_TERMINAL))
            dls_w_bytes(&w, e + sizeof h + kpad, kb);
        if (h.flags & DLS_XF_MASK)
            dls_w_bytes(&w, e + sizeof h + 2 * kpad, ag->na);
    }
    dls_w_u32(&w, 0); /* room for the checksum: dls_x_end cannot fail after this */
    if (w.failed) { /* nothing taken */
        pthread_mutex_unlock(&x->mu);
        free(w.p);
        return dls_fail(DLSCHED_ENOMEM, "out of memory for %u transitions", n);
    }
    x->head = (uint32_t)(((uint64_t)x->head + n) % x->cap);
    x->count -= n;
    uint64_t lost = x->dropped;
    x->dropped = 0;
    pthread_mutex_unlock(&x->mu);
    w.len -= 4;
    DLS_TRY(dls_x_end(&w, buf, len));
    *count = n;
    if (dropped)
        *dropped = lost;
    return DLSCHED_OK;
}

/* one record of a transitions blob, read and checked (pointers into it) */
typedef struct dls_xrec {
    uint64_t version;
    int32_t action;
    float reward;
    uint32_t flags;
    const unsigned char *key, *next, *mask;
} dls_xrec;

static int dls_x_record(const dlsched_agent *ag, dls_rbuf *r, uint32_t i, dls_xrec *t)
{
    size_t kb = ag->key_bytes;
    uint32_t zero;
    t->version = dls_r_u64(r);
    dls_r_bytes(r, &t->action, 4);
    dls_r_bytes(r, &t->reward, 4);
    t->flags = dls_r_u32(r);
    zero = dls_r_u32(r);
    DLS_FAIL_IF(r->bad, DLSCHED_EFORMAT, "transitions blob: record %u is truncated", i);
    DLS_FAIL_IF(zero != 0 || (t->flags & ~7u), DLSCHED_EFORMAT,
                "transitions blob: record %u has unknown flags 0x%x", i, t->flags);
    DLS_FAIL_IF(t->action < 0 || (uint32_t)t->action >= ag->na, DLSCHED_EFORMAT,
                "transitions blob: record %u: action %d out of range 0 .. %u", i, t->action,
                ag->na - 1);
    DLS_FAIL_IF(!isfinite(t->reward), DLSCHED_EFORMAT,
                "transitions blob: record %u: the reward is not finite", i);
    int terminal = (t->flags & DLS_XF_TERMINAL) != 0;
    DLS_FAIL_IF(terminal && (t->flags & DLS_XF_MASK), DLSCHED_EFORMAT,
                "transitions blob: record %u: a terminal transition with a next mask", i);
    size_t need = kb + (terminal ? 0 : kb) + ((t->flags & DLS_XF_MASK) ? ag->na : 0);
    DLS_FAIL_IF(r->len - r->pos < need, DLSCHED_EFORMAT,
                "transitions blob: record %u is truncated", i);
    t->key = r->p + r->pos;
    t->next = terminal ? NULL : t->key + kb;
    t->mask = (t->flags & DLS_XF_MASK) ? t->key + kb + (terminal ? 0 : kb) : NULL;
    r->pos += need;
    DLS_FAIL_IF(!ag->ops->key_ok(ag->impl, t->key) || (t->next && !ag->ops->key_ok(ag->impl, t->next)),
                DLSCHED_EFORMAT, "transitions blob: record %u: a state is not one this agent "
                                 "could encode (non-finite feature or state out of range)",
                i);
    if (t->mask) {
        uint32_t allowed = 0;
        for (uint32_t a = 0; a < ag->na; a++)
            allowed += t->mask[a] != 0;
        DLS_FAIL_IF(allowed == 0, DLSCHED_EFORMAT,
                    "transitions blob: record %u: the next mask allows no action", i);
    }
    return DLSCHED_OK;
}

DLSCHED_API int dlsched_ingest_transitions(dlsched_agent *ag, const void *buf, size_t len,
                                           uint64_t min_model_version, uint32_t *accepted,
                                           uint32_t *stale)
{
    DLS_FAIL_IF(!ag, DLSCHED_EINVAL, "agent is NULL");
    DLS_FAIL_IF(!buf, DLSCHED_EINVAL, "buf is NULL");
    DLS_FAIL_IF(ag->learner_none, DLSCHED_ECONFIG,
                "learner=none does not learn: ingest into an agent with learner=inline or "
                "learner=thread");
    dls_rbuf body;
    DLS_TRY(dls_x_open(ag, buf, len, DLS_X_TRANSITIONS, &body));
    uint32_t n = dls_r_u32(&body), zero = dls_r_u32(&body);
    DLS_FAIL_IF(body.bad || zero != 0, DLSCHED_EFORMAT, "transitions blob: bad count header");
    /* every record checked before any is learned */
    dls_rbuf r = body;
    uint32_t fresh = 0;
    for (uint32_t i = 0; i < n; i++) {
        dls_xrec t;
        DLS_TRY(dls_x_record(ag, &r, i, &t));
        fresh += t.version >= min_model_version;
    }
    DLS_FAIL_IF(r.pos != r.len, DLSCHED_EFORMAT,
                "transitions blob: %zu bytes after the %u records", r.len - r.pos, n);
    /* keys are copied out to aligned memory: a blob's records need not be */
    size_t kb = ag->key_bytes, kpad = dls_pad8(kb);
    unsigned char *kbuf = malloc(2 * kpad + ag->na);
    DLS_FAIL_IF(!kbuf, DLSCHED_ENOMEM, "out of memory for ingesting");
    r = body;
    if (!ag->threaded)
        dls_agent_lock(ag);
    for (uint32_t i = 0; i < n; i++) {
        dls_xrec t;
        (void)dls_x_record(ag, &r, i, &t);
        if (t.version < min_model_version)
            continue;
        dls_agent_count_reward(ag, t.reward);
        int terminal = (t.flags & DLS_XF_TERMINAL) != 0;
        memcpy(kbuf, t.key, kb);
        if (t.next)
            memcpy(kbuf + kpad, t.next, kb);
        if (t.mask)
            memcpy(kbuf + 2 * kpad, t.mask, ag->na);
        dls_agent_complete(ag, &ag->ictx, kbuf, t.action, t.reward, t.next ? kbuf + kpad : NULL,
                           t.mask ? kbuf + 2 * kpad : NULL, (unsigned)terminal,
                           (unsigned)(!terminal && (t.flags & DLS_XF_TRUNCATED)), t.version);
    }
    atomic_fetch_add_explicit(&ag->transitions, fresh, memory_order_relaxed);
    const char *msg = ag->ops->failure ? ag->ops->failure(ag->impl) : NULL;
    if (!ag->threaded)
        dls_agent_unlock(ag);
    free(kbuf);
    DLS_FAIL_IF(msg, DLSCHED_EBACKEND, "%s", msg);
    if (accepted)
        *accepted = fresh;
    if (stale)
        *stale = n - fresh;
    return DLSCHED_OK;
}

/* ---- weights ----------------------------------------------------------------------- */

DLSCHED_API int dlsched_export_weights(dlsched_agent *ag, void **buf, size_t *len,
                                       uint64_t *model_version)
{
    DLS_FAIL_IF(!ag, DLSCHED_EINVAL, "agent is NULL");
    DLS_FAIL_IF(!buf || !len, DLSCHED_EINVAL, "%s is NULL", !buf ? "buf" : "len");
    dls_wbuf w = {NULL, 0, 0, 0};
    dls_xshape shape = dls_shape_of(ag, DLS_X_WEIGHTS);
    dls_x_begin(&w, DLS_X_WEIGHTS, &shape);
    dls_agent_lock(ag);
    uint64_t version = dls_agent_version(ag);
    dls_w_u64(&w, version);
    ag->ops->weights_save(ag->impl, &w);
    dls_agent_unlock(ag);
    DLS_TRY(dls_x_end(&w, buf, len));
    if (model_version)
        *model_version = version;
    return DLSCHED_OK;
}

DLSCHED_API int dlsched_import_weights(dlsched_agent *ag, const void *buf, size_t len,
                                       uint64_t *model_version)
{
    DLS_FAIL_IF(!ag, DLSCHED_EINVAL, "agent is NULL");
    DLS_FAIL_IF(!buf, DLSCHED_EINVAL, "buf is NULL");
    DLS_FAIL_IF(!ag->learner_none, DLSCHED_ECONFIG,
                "dlsched_import_weights needs learner=none: a learning agent's weights are its "
                "own (load a checkpoint to start from another's)");
    dls_rbuf body;
    DLS_TRY(dls_x_open(ag, buf, len, DLS_X_WEIGHTS, &body));
    uint64_t version = dls_r_u64(&body);
    DLS_FAIL_IF(body.bad, DLSCHED_EFORMAT, "weights blob: truncated before its version");
    dls_agent_lock(ag);
    int rc = ag->ops->weights_load(ag->impl, &body, version);
    if (rc == DLSCHED_OK)
        atomic_store(&ag->imported_version, version);
    dls_agent_unlock(ag);
    DLS_TRY(rc);
    if (model_version)
        *model_version = version;
    return DLSCHED_OK;
}
