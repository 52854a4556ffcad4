/* fuzz_exchange.c - libFuzzer harness for the exchange blobs
 * (dlsched-exchange(5)): any input given to dlsched_ingest_transitions
 * (dqn and qtable agents, learner=inline) and dlsched_import_weights (the
 * same shapes, learner=none) must give DLSCHED_OK, or DLSCHED_EFORMAT or
 * DLSCHED_EMISMATCH with a message and the agent unchanged; never a crash,
 * a hang, a leak or undefined behaviour. Built by `make fuzz`; seeds in
 * tests/fuzz/corpus/exchange (blobs of these agents, and templates).
 *
 * Every input is tried three ways: as it is (almost every mutation dies at
 * the CRC-32 there); with the frame's body length and the CRC recomputed
 * (mutations reach the shape behind the checksum, like fuzz_load.c); and,
 * as a template, byte 0 choosing the agent and the kind and the rest taken
 * as the body after the shape, wrapped in a valid frame with the agent's
 * own shape and the CRC, so that mutations reach the record and weight
 * payload checks.
 *
 * Oracles: an accepted weights blob is what dlsched_export_weights then
 * gives back, byte for byte; accepted transitions number the blob's count
 * less the stale, and the ingesting agent, which records them
 * (exchange_capacity), exports them as a blob it accepts again. The
 * agents are created once: the inline ones keep learning from run to run
 * (bounded replay), so a finding is reproduced by running its input alone. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "dlsched.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FX_HEADER 24u     /* magic, version, kind, body length */
#define FX_SHAPE 24u      /* algo, n_features, n_actions, key bytes, hash */
#define FX_RING 64u       /* exchange_capacity of the ingesting agents */
#define FX_MAX 65536u     /* the largest blob built from a template */

#define FX_DQN "algo=dqn n_features=3 n_actions=4 hidden=8 dueling=1 normalize=1 replay=64 " \
               "batch=4 learning_starts=8 train_every=2 seed=1 device=cpu cpu_threads=1 "      \
               "ticket_capacity=16 "
#define FX_QT "algo=qtable n_features=2 n_actions=3 bins=4 feature_low=-1 feature_high=1 " \
              "replay=16 seed=1 ticket_capacity=16 "

typedef struct fx_target {
    dlsched_agent *learner;    /* learner=inline: ingest */
    dlsched_agent *actor;      /* learner=none: import */
    unsigned char shape[FX_SHAPE];  /* of a weights blob */
    unsigned char tshape[FX_SHAPE]; /* of a transitions blob (no network keys) */
    void *weights;             /* the actor's weights as exported now */
    size_t weights_len;
} fx_target;

static fx_target fx_targets[2]; /* dqn, qtable */
static int fx_ready;

static uint32_t fx_crc(const unsigned char *p, size_t n)
{
    uLong c = crc32(0L, Z_NULL, 0);
    return (uint32_t)crc32(c, p, (uInt)n);
}

static dlsched_agent *fx_agent(const char *spec, const char *more)
{
    dlsched_config *cfg;
    dlsched_agent *ag = NULL;
    if (dlsched_config_new(&cfg) != DLSCHED_OK || dlsched_config_parse(cfg, spec) != DLSCHED_OK ||
        dlsched_config_parse(cfg, more) != DLSCHED_OK || dlsched_agent_new(cfg, &ag) != DLSCHED_OK)
        abort();
    dlsched_config_free(cfg);
    return ag;
}

static void fx_init(void)
{
    const char *specs[2] = {FX_DQN, FX_QT};
    for (int k = 0; k < 2; k++) {
        fx_target *t = &fx_targets[k];
        t->learner = fx_agent(specs[k], "learner=inline exchange_capacity=64");
        t->actor = fx_agent(specs[k], "learner=none");
        if (dlsched_export_weights(t->actor, &t->weights, &t->weights_len, NULL) != DLSCHED_OK ||
            t->weights_len < FX_HEADER + FX_SHAPE + 4)
            abort();
        memcpy(t->shape, (const unsigned char *)t->weights + FX_HEADER, FX_SHAPE);
        void *tb;
        size_t tl;
        uint32_t n;
        if (dlsched_export_transitions(t->learner, 0, &tb, &tl, &n, NULL) != DLSCHED_OK ||
            tl < FX_HEADER + FX_SHAPE + 4)
            abort();
        memcpy(t->tshape, (const unsigned char *)tb + FX_HEADER, FX_SHAPE);
        dlsched_buffer_free(tb);
    }
    fx_ready = 1;
}

/* a rejection: a documented code with a message */
static void fx_rejected(int rc)
{
    const char *msg = dlsched_last_error();
    if ((rc != DLSCHED_EFORMAT && rc != DLSCHED_EMISMATCH) || !msg || !msg[0])
        abort();
}

static void fx_export_all(dlsched_agent *ag, void **buf, size_t *len, uint32_t *count,
                          uint64_t *dropped)
{
    if (dlsched_export_transitions(ag, 0, buf, len, count, dropped) != DLSCHED_OK)
        abort();
}

static void fx_ingest(fx_target *t, const uint8_t *p, size_t size, uint64_t min_version)
{
    dlsched_stats_t before, after;
    if (dlsched_stats(t->learner, &before, sizeof before) != DLSCHED_OK)
        abort();
    uint32_t acc = 0xdeadbeef, stale = 0xdeadbeef;
    int rc = dlsched_ingest_transitions(t->learner, p, size, min_version, &acc, &stale);
    if (dlsched_stats(t->learner, &after, sizeof after) != DLSCHED_OK)
        abort();
    if (rc != DLSCHED_OK) {
        fx_rejected(rc);
        if (after.transitions != before.transitions || after.train_steps != before.train_steps ||
            after.transitions_stored != before.transitions_stored)
            abort();
        return;
    }
    uint32_t count;
    memcpy(&count, p + FX_HEADER + FX_SHAPE, 4);
    if ((uint64_t)acc + stale != count || after.transitions != before.transitions + acc)
        abort();
    /* the learner recorded what it took; its own blob is valid (taken back
       with min_model_version UINT64_MAX: only records of that version are
       learned and recorded again) */
    void *buf;
    size_t len;
    uint32_t n, again;
    uint64_t dropped;
    fx_export_all(t->learner, &buf, &len, &n, &dropped);
    if (n != (acc < FX_RING ? acc : FX_RING) || dropped != acc - n)
        abort();
    rc = dlsched_ingest_transitions(t->learner, buf, len, UINT64_MAX, &acc, &stale);
    if (rc != DLSCHED_OK || (uint64_t)acc + stale != n)
        abort();
    dlsched_buffer_free(buf);
    fx_export_all(t->learner, &buf, &len, &again, &dropped);
    if (again != acc || dropped != 0)
        abort();
    dlsched_buffer_free(buf);
}

static void fx_import(fx_target *t, const uint8_t *p, size_t size)
{
    uint64_t v = 0;
    int rc = dlsched_import_weights(t->actor, p, size, &v);
    if (rc != DLSCHED_OK)
        fx_rejected(rc);
    void *buf;
    size_t len;
    uint64_t ev;
    if (dlsched_export_weights(t->actor, &buf, &len, &ev) != DLSCHED_OK)
        abort();
    if (rc == DLSCHED_OK) { /* taken whole: exported as imported */
        if (ev != v || len != size || memcmp(buf, p, size) != 0)
            abort();
        dlsched_buffer_free(t->weights);
        t->weights = buf;
        t->weights_len = len;
    } else { /* unchanged */
        if (len != t->weights_len || memcmp(buf, t->weights, len) != 0)
            abort();
        dlsched_buffer_free(buf);
    }
}

/* the same bytes into all four agents */
static void fx_all(const uint8_t *p, size_t size, uint64_t min_version)
{
    for (int k = 0; k < 2; k++) {
        fx_ingest(&fx_targets[k], p, size, min_version);
        fx_import(&fx_targets[k], p, size);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fx_ready)
        fx_init();
    /* a min_model_version that is sometimes above the versions in the blob */
    uint64_t min_version = size && (data[size - 1] & 1) ? data[size - 1] : 0;

    /* 1. as it is */
    fx_all(data, size, min_version);

    /* 2. the frame's body length and CRC fixed up */
    if (size >= FX_HEADER + 4) {
        uint8_t *p = malloc(size);
        if (!p)
            return 0;
        memcpy(p, data, size);
        uint64_t body = size - FX_HEADER - 4;
        memcpy(p + 16, &body, 8);
        uint32_t c = fx_crc(p, size - 4);
        memcpy(p + size - 4, &c, 4);
        fx_all(p, size, min_version);
        free(p);
    }

    /* 3. a template: byte 0 = agent (bit 0: qtable) and kind (bit 1:
       weights), the rest the body after the shape */
    if (size >= 1 && size - 1 <= FX_MAX) {
        fx_target *t = &fx_targets[data[0] & 1];
        uint32_t kind = (data[0] & 2) ? 2u : 1u;
        size_t body = FX_SHAPE + (size - 1), len = FX_HEADER + body + 4;
        uint8_t *p = malloc(len);
        if (!p)
            return 0;
        uint32_t version = 1;
        uint64_t blen = body;
        memcpy(p, "DLSXCHNG", 8);
        memcpy(p + 8, &version, 4);
        memcpy(p + 12, &kind, 4);
        memcpy(p + 16, &blen, 8);
        memcpy(p + FX_HEADER, kind == 1 ? t->tshape : t->shape, FX_SHAPE);
        memcpy(p + FX_HEADER + FX_SHAPE, data + 1, size - 1);
        uint32_t c = fx_crc(p, len - 4);
        memcpy(p + len - 4, &c, 4);
        if (kind == 1)
            fx_ingest(t, p, len, min_version);
        else
            fx_import(t, p, len);
        free(p);
    }
    return 0;
}
