/* fuzz_load.c - libFuzzer harness for dlsched_load_buffer: any input must
 * give DLSCHED_OK or a documented error code (EFORMAT, EMISMATCH, ECONFIG,
 * ENOMEM), never a crash, a hang or a leak; a loaded agent must act,
 * observe and train. Built by `make fuzz`; seeds in tests/fuzz/corpus/load
 * (small valid checkpoints), regressions in tests/fuzz/regress/load.
 *
 * Every input is loaded twice: as it is (almost every mutation dies at the
 * CRC-32 there), and with the header's body length and the CRC recomputed,
 * so that mutations reach the section, configuration and model parsers
 * behind the checksum. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "dlsched.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_HEADER 24u
#define FZ_MAX_FEATURES 4096u

/* the last "n_features=N" of the configuration section, or 0 */
static uint32_t fz_features(const uint8_t *p, size_t size)
{
    if (size < FZ_HEADER + 16 + 4)
        return 0;
    uint64_t len;
    memcpy(&len, p + FZ_HEADER + 8, 8);
    size_t avail = size - FZ_HEADER - 16;
    size_t n = len < avail ? (size_t)len : avail;
    const uint8_t *t = p + FZ_HEADER + 16;
    static const char key[] = "n_features=";
    uint32_t nf = 0;
    for (size_t i = 0; i + sizeof key - 1 < n; i++) {
        if ((i > 0 && t[i - 1] != '\n') || memcmp(t + i, key, sizeof key - 1) != 0)
            continue;
        uint64_t v = 0;
        for (size_t j = i + sizeof key - 1; j < n && t[j] >= '0' && t[j] <= '9' && v < 1u << 30;
             j++)
            v = v * 10 + (uint64_t)(t[j] - '0');
        nf = (uint32_t)v;
    }
    return nf;
}

static void fz_load(const uint8_t *p, size_t size, const dlsched_config *ov)
{
    dlsched_agent *ag = NULL;
    int rc = dlsched_load_buffer(p, size, ov, &ag);
    if (rc != DLSCHED_OK && rc != DLSCHED_EFORMAT && rc != DLSCHED_EMISMATCH &&
        rc != DLSCHED_ECONFIG && rc != DLSCHED_ENOMEM)
        abort();
    if (rc != DLSCHED_OK) {
        if (ag != NULL) /* a failed load must not hand out an agent */
            abort();
        return;
    }
    if (!ag)
        abort();
    uint32_t nf = fz_features(p, size);
    if (nf >= 1 && nf <= FZ_MAX_FEATURES) {
        float *x = malloc(nf * sizeof *x);
        if (x) {
            for (uint32_t j = 0; j < nf; j++)
                x[j] = 0.25f * (float)(j % 5);
            dlsched_state_t s = {x, nf, 0, NULL, -1, 0};
            dlsched_decision_t d;
            rc = dlsched_act(ag, &s, 0, &d);
            if (rc == DLSCHED_OK) {
                /* a valid state and a fresh ticket: nothing may fail */
                if (dlsched_observe(ag, d.ticket, 1.0f, &s, 0) != DLSCHED_OK)
                    abort();
            } else if (rc != DLSCHED_EINVAL) { /* EINVAL: n_features misread above */
                abort();
            }
            free(x);
        }
    }
    rc = dlsched_train(ag, 2); /* the loaded replay buffer and priorities */
    if (rc != DLSCHED_OK && rc != DLSCHED_ECONFIG)
        abort();
    /* the documented invariant of every stats snapshot */
    dlsched_stats_t st;
    if (dlsched_stats(ag, &st, sizeof st) != DLSCHED_OK ||
        st.tickets_issued != st.observed + st.tickets_expired + st.tickets_pending)
        abort();
    dlsched_agent_free(ag);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* keep agents small: the fuzzer explores parsing, not allocation; one
       inline learner, no BLAS threads */
    dlsched_config *ov;
    if (dlsched_config_new(&ov) != DLSCHED_OK)
        return 0;
    if (dlsched_config_parse(ov, "max_table_bytes=1000000 max_replay_bytes=1000000 "
                                 "ticket_capacity=64 learner=inline cpu_threads=1") !=
        DLSCHED_OK)
        abort();
    fz_load(data, size, ov);
    if (size >= FZ_HEADER + 4) {
        uint8_t *p = malloc(size);
        if (p) {
            memcpy(p, data, size);
            uint64_t body = size - FZ_HEADER - 4;
            memcpy(p + 16, &body, 8);
            uLong c = crc32(0L, Z_NULL, 0);
            c = crc32(c, p, (uInt)(size - 4));
            uint32_t c32 = (uint32_t)c;
            memcpy(p + size - 4, &c32, 4);
            fz_load(p, size, ov);
            free(p);
        }
    }
    dlsched_config_free(ov);
    return 0;
}
