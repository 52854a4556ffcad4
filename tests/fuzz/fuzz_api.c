/* fuzz_api.c - libFuzzer harness driving one agent with a byte stream of
 * calls: act (any flags, features with NaN/Inf, masks, hints), observe
 * (real, stale and made-up tickets), observe_transition, train, q_values,
 * stats. Whatever the input: no crash, only documented status codes, and
 * the ticket counters reconcile after every call. Built by `make fuzz`. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dlsched.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NF 3
#define NA 4

typedef struct reader {
    const uint8_t *p;
    size_t n;
} reader;

static uint8_t rd(reader *r)
{
    if (!r->n)
        return 0;
    r->n--;
    return *r->p++;
}

static float rd_float(reader *r)
{
    uint8_t b = rd(r);
    if (b == 255)
        return NAN;
    if (b == 254)
        return INFINITY;
    return (float)b / 64.0f - 1.0f;
}

static void rd_state(reader *r, dlsched_state_t *s, float *x, uint8_t *mask)
{
    for (int i = 0; i < NF; i++)
        x[i] = rd_float(r);
    uint8_t m = rd(r);
    for (int a = 0; a < NA; a++)
        mask[a] = (m >> a) & 1;
    s->features = x;
    s->n_features = (m & 0x80) ? NF + 1 : NF;
    s->n_mask = (m & 0x10) ? NA : 0;
    s->mask = (m & 0x10) ? mask : ((m & 0x20) ? mask : NULL);
    s->hint = (int32_t)(rd(r) % 7) - 2;
    s->reserved = (m & 0x40) && (m & 0x80) ? 1u : 0u;
}

static void check(dlsched_agent *ag, int rc)
{
    if (rc < DLSCHED_OK || rc > DLSCHED_EBACKEND)
        abort();
    dlsched_stats_t st;
    if (dlsched_stats(ag, &st, sizeof st) != DLSCHED_OK)
        abort();
    if (st.tickets_issued != st.observed + st.tickets_expired + st.tickets_pending)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = {data, size};
    static const char *specs[] = {
        "algo=qtable n_features=3 n_actions=4 bins=3 ticket_capacity=4 replay=8",
        "algo=qtable n_features=3 n_actions=4 bins=2 explore=softmax ticket_capacity=3 "
        "default_reward=-1 apprentice=5",
        "algo=dqn n_features=3 n_actions=4 hidden=4 batch=2 replay=16 learning_starts=2 "
        "train_every=1 ticket_capacity=4 default_reward=0 nstep=2 per=1 normalize=1",
        "algo=dqn n_features=3 n_actions=4 hidden=4,3 batch=3 replay=8 learning_starts=1 "
        "dueling=1 explore=hint double=0 target_update=0.5 ticket_capacity=2",
    };
    dlsched_config *cfg;
    if (dlsched_config_new(&cfg) != DLSCHED_OK)
        return 0;
    dlsched_agent *ag = NULL;
    int ok = dlsched_config_parse(cfg, specs[rd(&r) % 4]) == DLSCHED_OK &&
             dlsched_agent_new(cfg, &ag) == DLSCHED_OK;
    dlsched_config_free(cfg);
    if (!ok)
        abort();
    uint64_t tickets[8] = {0};
    float x[NF + 1], x2[NF + 1], q[NA];
    uint8_t m[NA], m2[NA];
    dlsched_state_t s, s2;
    dlsched_decision_t d;
    while (r.n) {
        uint8_t op = rd(&r);
        rd_state(&r, &s, x, m);
        rd_state(&r, &s2, x2, m2);
        uint32_t flags = rd(&r) % 5;
        float reward = rd_float(&r);
        int rc;
        switch (op % 6) {
        case 0:
            rc = dlsched_act(ag, &s, flags, &d);
            if (rc == DLSCHED_OK)
                tickets[op % 8] = d.ticket;
            break;
        case 1:
            rc = dlsched_observe(ag, (op & 0x80) ? tickets[op % 8] : rd(&r), reward,
                                 (flags & 4) ? NULL : &s2, flags);
            break;
        case 2:
            rc = dlsched_observe_transition(ag, &s, (int32_t)(rd(&r) % 6) - 1, reward,
                                            (flags & 4) ? NULL : &s2, flags);
            break;
        case 3:
            rc = dlsched_train(ag, rd(&r) % 4);
            break;
        case 4:
            rc = dlsched_q_values(ag, &s, q, (op & 0x40) ? NA + 1 : NA);
            break;
        default: {
            dlsched_stats_t st;
            rc = dlsched_stats(ag, &st, rd(&r));
            break;
        }
        }
        check(ag, rc);
    }
    dlsched_agent_free(ag);
    return 0;
}
