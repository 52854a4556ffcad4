/* check_exchange.c - experience and weights between agents
 * (dlsched_export_transitions, dlsched_ingest_transitions,
 * dlsched_export_weights, dlsched_import_weights; learner=none,
 * exchange_capacity; format in dlsched-exchange(5)).
 *
 * Oracles: an agent that ingests another's exported transitions must end
 * bitwise where an agent with the same seed ends that was fed the same
 * transitions directly through dlsched_observe_transition; an agent that
 * imports weights must answer the source's Q-values bitwise; blobs are
 * built or damaged by hand (the CRC recomputed with zlib) to reach every
 * check. */
#include <pthread.h>
#include <zlib.h>

#include "tests.h"

#define TX_DQN "algo=dqn n_features=3 n_actions=4 hidden=16,8 replay=256 batch=8 " \
               "learning_starts=16 train_every=2 seed=7 device=cpu "
#define TX_QT "algo=qtable n_features=2 n_actions=3 bins=4 seed=7 "

typedef struct tx_tr {
    float s[3], s2[3];
    int32_t a;
    float r;
    uint32_t flags;
} tx_tr;

static void tx_make(tx_tr *t, int n, int nf, int na, uint64_t seed)
{
    uint64_t r = seed;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < nf; j++) {
            t[i].s[j] = (float)tst_unif(&r);
            t[i].s2[j] = (float)tst_unif(&r);
        }
        t[i].a = (int32_t)tst_below(&r, (uint32_t)na);
        t[i].r = (float)(tst_unif(&r) * 2 - 1);
        uint32_t k = tst_below(&r, 8);
        t[i].flags = k == 0 ? DLSCHED_OBS_TERMINAL : k == 1 ? DLSCHED_OBS_TRUNCATED : 0;
    }
}

static void tx_feed(dlsched_agent *ag, const tx_tr *t, int n, int nf)
{
    for (int i = 0; i < n; i++) {
        dlsched_state_t s = tst_state(t[i].s, (uint32_t)nf);
        dlsched_state_t s2 = tst_state(t[i].s2, (uint32_t)nf);
        int rc = dlsched_observe_transition(ag, &s, t[i].a, t[i].r,
                                            t[i].flags & DLSCHED_OBS_TERMINAL ? NULL : &s2,
                                            t[i].flags);
        ck_assert_msg(rc == DLSCHED_OK, "observe_transition: %s", dlsched_last_error());
    }
}

/* Q on a grid of probe states */
static void tx_q(dlsched_agent *ag, int nf, int na, float *out, int n_probe)
{
    uint64_t r = 99;
    for (int p = 0; p < n_probe; p++) {
        float x[3];
        for (int j = 0; j < nf; j++)
            x[j] = (float)tst_unif(&r);
        dlsched_state_t s = tst_state(x, (uint32_t)nf);
        ck_assert_int_eq(dlsched_q_values(ag, &s, out + p * na, (uint32_t)na), DLSCHED_OK);
    }
}

static void tx_fix_crc(unsigned char *b, size_t len)
{
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, b, (uInt)(len - 4));
    uint32_t v = (uint32_t)c;
    memcpy(b + len - 4, &v, 4);
}

/* ---- transitions ------------------------------------------------------------------- */

/* export from one agent, ingest into another: bitwise what direct feeding
   gives, for dqn and qtable; the exporter learned as usual meanwhile */
START_TEST(test_transitions_round_trip)
{
    const char *specs[] = {TX_DQN, TX_QT};
    const int nfs[] = {3, 2}, nas[] = {4, 3};
    for (int k = 0; k < 2; k++) {
        enum { N = 120 };
        tx_tr t[N];
        tx_make(t, N, nfs[k], nas[k], 1234 + (uint64_t)k);
        dlsched_agent *src = tst_agentf("%s exchange_capacity=1000", specs[k]);
        dlsched_agent *direct = tst_agentf("%s", specs[k]);
        dlsched_agent *dst = tst_agentf("%s", specs[k]);
        tx_feed(src, t, N, nfs[k]);
        tx_feed(direct, t, N, nfs[k]);
        void *buf = NULL;
        size_t len = 0;
        uint32_t count = 0;
        uint64_t dropped = 77;
        ck_assert_int_eq(dlsched_export_transitions(src, 0, &buf, &len, &count, &dropped),
                         DLSCHED_OK);
        ck_assert_uint_eq(count, N);
        ck_assert_uint_eq(dropped, 0);
        uint32_t acc = 0, stale = 9;
        ck_assert_msg(dlsched_ingest_transitions(dst, buf, len, 0, &acc, &stale) == DLSCHED_OK,
                      "%s", dlsched_last_error());
        ck_assert_uint_eq(acc, N);
        ck_assert_uint_eq(stale, 0);
        float qd[64], qi[64], qs[64];
        tx_q(direct, nfs[k], nas[k], qd, 16 * 4 / nas[k]);
        tx_q(dst, nfs[k], nas[k], qi, 16 * 4 / nas[k]);
        tx_q(src, nfs[k], nas[k], qs, 16 * 4 / nas[k]);
        ck_assert_mem_eq(qi, qd, sizeof(float) * (16 * 4 / nas[k]) * nas[k]);
        ck_assert_mem_eq(qs, qd, sizeof(float) * (16 * 4 / nas[k]) * nas[k]);
        dlsched_stats_t a = tst_stats(dst), b = tst_stats(direct);
        ck_assert_uint_eq(a.train_steps, b.train_steps);
        ck_assert_uint_eq(a.transitions, b.transitions);
        ck_assert_double_eq(a.mean_reward, b.mean_reward);
        if (k == 0)
            ck_assert_uint_gt(a.train_steps, 0);
        /* the ring is empty now: a valid empty blob */
        dlsched_buffer_free(buf);
        ck_assert_int_eq(dlsched_export_transitions(src, 0, &buf, &len, &count, NULL), DLSCHED_OK);
        ck_assert_uint_eq(count, 0);
        ck_assert_int_eq(dlsched_ingest_transitions(dst, buf, len, 0, &acc, &stale), DLSCHED_OK);
        ck_assert_uint_eq(acc, 0);
        dlsched_buffer_free(buf);
        dlsched_agent_free(src);
        dlsched_agent_free(direct);
        dlsched_agent_free(dst);
    }
}
END_TEST

/* a full ring drops the oldest and says how many; max takes the oldest first */
START_TEST(test_ring_overflow_and_max)
{
    enum { N = 8 };
    tx_tr t[N];
    tx_make(t, N, 2, 3, 5);
    dlsched_agent *src = tst_agent(TX_QT "exchange_capacity=5 learner=none");
    tx_feed(src, t, N, 2);
    void *buf;
    size_t len;
    uint32_t count;
    uint64_t dropped;
    ck_assert_int_eq(dlsched_export_transitions(src, 2, &buf, &len, &count, &dropped),
                     DLSCHED_OK);
    ck_assert_uint_eq(count, 2);
    ck_assert_uint_eq(dropped, 3);
    /* into a learner: exactly transitions 3 and 4 (the oldest kept) */
    dlsched_agent *a = tst_agent(TX_QT);
    dlsched_agent *b = tst_agent(TX_QT);
    uint32_t acc;
    ck_assert_int_eq(dlsched_ingest_transitions(a, buf, len, 0, &acc, NULL), DLSCHED_OK);
    ck_assert_uint_eq(acc, 2);
    tx_feed(b, t + 3, 2, 2);
    float qa[12], qb[12];
    tx_q(a, 2, 3, qa, 4);
    tx_q(b, 2, 3, qb, 4);
    ck_assert_mem_eq(qa, qb, sizeof qa);
    dlsched_buffer_free(buf);
    ck_assert_int_eq(dlsched_export_transitions(src, 0, &buf, &len, &count, &dropped),
                     DLSCHED_OK);
    ck_assert_uint_eq(count, 3);
    ck_assert_uint_eq(dropped, 0);
    ck_assert_int_eq(dlsched_ingest_transitions(a, buf, len, 0, &acc, NULL), DLSCHED_OK);
    tx_feed(b, t + 5, 3, 2);
    tx_q(a, 2, 3, qa, 4);
    tx_q(b, 2, 3, qb, 4);
    ck_assert_mem_eq(qa, qb, sizeof qa);
    dlsched_buffer_free(buf);
    dlsched_agent_free(a);
    dlsched_agent_free(b);
    dlsched_agent_free(src);
}
END_TEST

/* learner=none: acts, records, never trains; its transitions carry the
   imported weights' version; staleness is by that version */
START_TEST(test_none_versions_and_staleness)
{
    dlsched_agent *learner = tst_agent(TX_DQN);
    enum { N = 60 };
    tx_tr t[N];
    tx_make(t, N, 3, 4, 77);
    tx_feed(learner, t, N, 3);
    uint64_t v = 0;
    void *w;
    size_t wl;
    ck_assert_int_eq(dlsched_export_weights(learner, &w, &wl, &v), DLSCHED_OK);
    ck_assert_uint_gt(v, 0);
    ck_assert_uint_eq(v, tst_stats(learner).model_version);

    dlsched_agent *actor = tst_agent(TX_DQN "learner=none exchange_capacity=100 "
                                            "default_reward=-1 ticket_capacity=4");
    ck_assert_uint_eq(tst_stats(actor).model_version, 0);
    float x[3] = {0.1f, 0.2f, 0.3f};
    dlsched_state_t s = tst_state(x, 3);
    dlsched_decision_t d0, d1;
    ck_assert_int_eq(dlsched_act(actor, &s, 0, &d0), DLSCHED_OK); /* version 0 */
    ck_assert_uint_eq(d0.model_version, 0);
    uint64_t got = 0;
    ck_assert_int_eq(dlsched_import_weights(actor, w, wl, &got), DLSCHED_OK);
    ck_assert_uint_eq(got, v);
    ck_assert_uint_eq(tst_stats(actor).model_version, v);
    ck_assert_int_eq(dlsched_act(actor, &s, 0, &d1), DLSCHED_OK);
    ck_assert_uint_eq(d1.model_version, v);
    /* observed in the other order: each keeps its own version */
    ck_assert_int_eq(dlsched_observe(actor, d1.ticket, 1.0f, &s, 0), DLSCHED_OK);
    ck_assert_int_eq(dlsched_observe(actor, d0.ticket, 2.0f, NULL, DLSCHED_OBS_TERMINAL),
                     DLSCHED_OK);
    /* 5 more decisions on 4 tickets: the oldest expires with default_reward */
    dlsched_decision_t d;
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(dlsched_act(actor, &s, 0, &d), DLSCHED_OK);
    dlsched_stats_t st = tst_stats(actor);
    ck_assert_uint_eq(st.train_steps, 0);
    ck_assert_uint_eq(st.tickets_expired, 1);
    ck_assert_int_eq(dlsched_train(actor, 1), DLSCHED_ECONFIG);
    ck_assert_msg(strstr(dlsched_last_error(), "learner=none"), "%s", dlsched_last_error());

    void *buf;
    size_t len;
    uint32_t count;
    ck_assert_int_eq(dlsched_export_transitions(actor, 0, &buf, &len, &count, NULL), DLSCHED_OK);
    ck_assert_uint_eq(count, 3);
    /* min version v: the version-0 one is stale, the other two taken */
    dlsched_agent *l2 = tst_agent(TX_DQN);
    uint32_t acc = 0, stale = 0;
    ck_assert_int_eq(dlsched_ingest_transitions(l2, buf, len, v, &acc, &stale), DLSCHED_OK);
    ck_assert_uint_eq(acc, 2);
    ck_assert_uint_eq(stale, 1);
    ck_assert_uint_eq(tst_stats(l2).transitions, 2);
    ck_assert_int_eq(dlsched_ingest_transitions(l2, buf, len, v + 1, &acc, &stale), DLSCHED_OK);
    ck_assert_uint_eq(acc, 0);
    ck_assert_uint_eq(stale, 3);
    /* the oracle for what was taken: rewards 1 (v), 2 (0, stale), -1 (v) */
    ck_assert_double_eq_tol(tst_stats(l2).mean_reward, 0.0, 1e-12);
    /* learner=none ingests nothing */
    ck_assert_int_eq(dlsched_ingest_transitions(actor, buf, len, 0, NULL, NULL), DLSCHED_ECONFIG);
    dlsched_buffer_free(buf);
    dlsched_buffer_free(w);
    dlsched_agent_free(l2);
    dlsched_agent_free(actor);
    dlsched_agent_free(learner);
}
END_TEST

/* ---- weights ----------------------------------------------------------------------- */

START_TEST(test_weights_round_trip)
{
    const char *specs[] = {TX_DQN, TX_DQN "dueling=1 normalize=1", TX_QT};
    const int nfs[] = {3, 3, 2}, nas[] = {4, 4, 3};
    for (int k = 0; k < 3; k++) {
        dlsched_agent *src = tst_agentf("%s", specs[k]);
        enum { N = 80 };
        tx_tr t[N];
        tx_make(t, N, nfs[k], nas[k], 31 + (uint64_t)k);
        tx_feed(src, t, N, nfs[k]);
        void *w;
        size_t wl;
        uint64_t v;
        ck_assert_int_eq(dlsched_export_weights(src, &w, &wl, &v), DLSCHED_OK);
        dlsched_agent *dst = tst_agentf("%s learner=none seed=99", specs[k]);
        float qs[48], qd[48];
        ck_assert_int_eq(dlsched_import_weights(dst, w, wl, NULL), DLSCHED_OK);
        tx_q(src, nfs[k], nas[k], qs, 12);
        tx_q(dst, nfs[k], nas[k], qd, 12);
        ck_assert_mem_eq(qd, qs, sizeof(float) * 12 * (size_t)nas[k]);
        /* a learning agent refuses */
        dlsched_agent *inl = tst_agentf("%s", specs[k]);
        ck_assert_int_eq(dlsched_import_weights(inl, w, wl, NULL), DLSCHED_ECONFIG);
        dlsched_agent_free(inl);
        dlsched_buffer_free(w);
        dlsched_agent_free(src);
        dlsched_agent_free(dst);
    }
}
END_TEST

/* a learner=none agent's checkpoint keeps its imported version: stats and
   decisions report it after loading (dqn and qtable) */
START_TEST(test_none_checkpoint_keeps_version)
{
    const char *specs[] = {TX_DQN, TX_QT};
    const int nfs[] = {3, 2}, nas[] = {4, 3};
    for (int k = 0; k < 2; k++) {
        dlsched_agent *src = tst_agentf("%s", specs[k]);
        tx_tr t[50];
        tx_make(t, 50, nfs[k], nas[k], 4);
        tx_feed(src, t, 50, nfs[k]);
        void *w, *ck;
        size_t wl, cl;
        uint64_t v;
        ck_assert_int_eq(dlsched_export_weights(src, &w, &wl, &v), DLSCHED_OK);
        dlsched_agent *actor = tst_agentf("%s learner=none", specs[k]);
        ck_assert_int_eq(dlsched_import_weights(actor, w, wl, NULL), DLSCHED_OK);
        if (k == 1) /* qtable counts updates as versions: make it nonzero */
            ck_assert_uint_gt(v, 0);
        ck_assert_int_eq(dlsched_save_buffer(actor, &ck, &cl), DLSCHED_OK);
        dlsched_agent *back = NULL;
        ck_assert_msg(dlsched_load_buffer(ck, cl, NULL, &back) == DLSCHED_OK, "%s",
                      dlsched_last_error());
        ck_assert_uint_eq(tst_stats(back).model_version, v);
        ck_assert_uint_eq(tst_stats(back).train_steps, 0);
        float x[3] = {0.5f, 0.5f, 0.5f};
        dlsched_state_t s = tst_state(x, (uint32_t)nfs[k]);
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(back, &s, DLSCHED_ACT_GREEDY, &d), DLSCHED_OK);
        ck_assert_uint_eq(d.model_version, v);
        float qa[4], qb[4];
        ck_assert_int_eq(dlsched_q_values(src, &s, qa, (uint32_t)nas[k]), DLSCHED_OK);
        ck_assert_int_eq(dlsched_q_values(back, &s, qb, (uint32_t)nas[k]), DLSCHED_OK);
        ck_assert_mem_eq(qa, qb, sizeof(float) * (size_t)nas[k]);
        dlsched_buffer_free(ck);
        dlsched_buffer_free(w);
        dlsched_agent_free(back);
        dlsched_agent_free(actor);
        dlsched_agent_free(src);
    }
}
END_TEST

/* another shape: EMISMATCH; damaged: EFORMAT; the agent unchanged */
START_TEST(test_errors_leave_agent_unchanged)
{
    dlsched_agent *src = tst_agent(TX_DQN "exchange_capacity=64");
    enum { N = 40 };
    tx_tr t[N];
    tx_make(t, N, 3, 4, 3);
    tx_feed(src, t, N, 3);
    void *w, *tb;
    size_t wl, tl;
    uint32_t count;
    ck_assert_int_eq(dlsched_export_weights(src, &w, &wl, NULL), DLSCHED_OK);
    ck_assert_int_eq(dlsched_export_transitions(src, 0, &tb, &tl, &count, NULL), DLSCHED_OK);
    ck_assert_uint_eq(count, N);

    const char *others[] = {
        "algo=dqn n_features=3 n_actions=5 hidden=16,8 replay=256 batch=8 ",
        "algo=dqn n_features=3 n_actions=4 hidden=16,9 replay=256 batch=8 ",
        "algo=dqn n_features=3 n_actions=4 hidden=16,8 replay=256 batch=8 dueling=1 ",
        "algo=qtable n_features=3 n_actions=4 bins=2 ",
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        dlsched_agent *none = tst_agentf("%slearner=none", others[i]);
        dlsched_agent *inl = tst_agentf("%s", others[i]);
        ck_assert_msg(dlsched_import_weights(none, w, wl, NULL) == DLSCHED_EMISMATCH, "%s: %s",
                      others[i], dlsched_last_error());
        /* transitions carry raw features: another network (others 1, 2)
           takes them; another action count or encoding does not */
        int rc = dlsched_ingest_transitions(inl, tb, tl, 0, NULL, NULL);
        if (i == 1 || i == 2) {
            ck_assert_msg(rc == DLSCHED_OK, "%s: %s", others[i], dlsched_last_error());
            ck_assert_uint_eq(tst_stats(inl).transitions, N);
        } else {
            ck_assert_msg(rc == DLSCHED_EMISMATCH, "%s: %s", others[i], dlsched_last_error());
            ck_assert_uint_eq(tst_stats(inl).transitions, 0);
        }
        dlsched_agent_free(none);
        dlsched_agent_free(inl);
    }

    dlsched_agent *none = tst_agent(TX_DQN "learner=none");
    dlsched_agent *inl = tst_agent(TX_DQN);
    float q0[48], q1[48], p0[48], p1[48];
    tx_q(none, 3, 4, q0, 12);
    tx_q(inl, 3, 4, p0, 12);
    /* each kind given to the other's function */
    ck_assert_int_eq(dlsched_import_weights(none, tb, tl, NULL), DLSCHED_EFORMAT);
    ck_assert_int_eq(dlsched_ingest_transitions(inl, w, wl, 0, NULL, NULL), DLSCHED_EFORMAT);
    /* every single-byte change and every truncation is refused */
    const struct {
        void *b;
        size_t l;
    } blobs[] = {{w, wl}, {tb, tl}};
    unsigned char *copy = malloc(wl > tl ? wl : tl);
    for (int k = 0; k < 2; k++) {
        size_t l = blobs[k].l;
        for (size_t i = 0; i < l; i += (i < 64 ? 1 : 37)) {
            memcpy(copy, blobs[k].b, l);
            copy[i] ^= 0x5a;
            int rc = k == 0 ? dlsched_import_weights(none, copy, l, NULL)
                            : dlsched_ingest_transitions(inl, copy, l, 0, NULL, NULL);
            ck_assert_msg(rc == DLSCHED_EFORMAT || rc == DLSCHED_EMISMATCH,
                          "blob %d byte %zu flipped: %s (%s)", k, i, dlsched_strerror(rc),
                          dlsched_last_error());
        }
        for (size_t cut = 0; cut < l; cut += (cut < 64 ? 1 : 101)) {
            int rc = k == 0 ? dlsched_import_weights(none, blobs[k].b, cut, NULL)
                            : dlsched_ingest_transitions(inl, blobs[k].b, cut, 0, NULL, NULL);
            ck_assert_int_eq(rc, DLSCHED_EFORMAT);
        }
    }
    /* valid checksum, invalid content: an action out of range in the last
       record, a NaN weight (the first float of the parameters) */
    memcpy(copy, tb, tl);
    /* records follow the 24-byte frame header, 24-byte shape and the 8-byte
       count; record 0's action at +8 */
    int32_t bad = 4;
    memcpy(copy + 24 + 24 + 8 + 8, &bad, 4);
    tx_fix_crc(copy, tl);
    ck_assert_int_eq(dlsched_ingest_transitions(inl, copy, tl, 0, NULL, NULL), DLSCHED_EFORMAT);
    ck_assert_msg(strstr(dlsched_last_error(), "record 0: action 4 out of range"), "%s",
                  dlsched_last_error());
    memcpy(copy, w, wl);
    float nan = NAN;
    memcpy(copy + 24 + 24 + 8 + 8, &nan, 4);
    tx_fix_crc(copy, wl);
    ck_assert_int_eq(dlsched_import_weights(none, copy, wl, NULL), DLSCHED_EFORMAT);
    ck_assert_msg(strstr(dlsched_last_error(), "not finite"), "%s", dlsched_last_error());
    free(copy);
    tx_q(none, 3, 4, q1, 12);
    tx_q(inl, 3, 4, p1, 12);
    ck_assert_mem_eq(q0, q1, sizeof q0);
    ck_assert_mem_eq(p0, p1, sizeof p0);
    ck_assert_uint_eq(tst_stats(inl).transitions, 0);
    ck_assert_uint_eq(tst_stats(none).model_version, 0);
    /* arguments */
    void *b;
    size_t l;
    ck_assert_int_eq(dlsched_export_transitions(inl, 0, &b, &l, &count, NULL), DLSCHED_ECONFIG);
    ck_assert_msg(strstr(dlsched_last_error(), "exchange_capacity"), "%s", dlsched_last_error());
    ck_assert_int_eq(dlsched_export_transitions(NULL, 0, &b, &l, &count, NULL), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_export_transitions(src, 0, NULL, &l, &count, NULL), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_export_weights(src, &b, NULL, NULL), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_import_weights(none, NULL, 10, NULL), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_ingest_transitions(inl, NULL, 10, 0, NULL, NULL), DLSCHED_EINVAL);
    dlsched_buffer_free(w);
    dlsched_buffer_free(tb);
    dlsched_agent_free(none);
    dlsched_agent_free(inl);
    dlsched_agent_free(src);
}
END_TEST

/* learner=thread ingests through its learner: everything arrives */
START_TEST(test_ingest_into_thread_learner)
{
    dlsched_agent *src = tst_agent(TX_DQN "exchange_capacity=500");
    enum { N = 200 };
    tx_tr t[N];
    tx_make(t, N, 3, 4, 8);
    tx_feed(src, t, N, 3);
    void *buf;
    size_t len;
    uint32_t count;
    ck_assert_int_eq(dlsched_export_transitions(src, 0, &buf, &len, &count, NULL), DLSCHED_OK);
    dlsched_agent *th = tst_agent(TX_DQN "learner=thread");
    uint32_t acc;
    ck_assert_int_eq(dlsched_ingest_transitions(th, buf, len, 0, &acc, NULL), DLSCHED_OK);
    ck_assert_uint_eq(acc, N);
    ck_assert_int_eq(dlsched_train(th, 1), DLSCHED_OK); /* drains the staged */
    ck_assert_uint_eq(tst_stats(th).transitions_stored, N);
    dlsched_buffer_free(buf);
    dlsched_agent_free(th);
    dlsched_agent_free(src);
}
END_TEST

/* ---- threads: actors act and observe while weights are imported and
   transitions exported; nothing lost, every version an imported one ---- */

typedef struct tx_shared {
    dlsched_agent *actor;
    int stop;
    uint64_t bad_version;
} tx_shared;

static void *tx_actor(void *arg)
{
    tx_shared *sh = arg;
    uint64_t r = (uint64_t)(uintptr_t)&r;
    for (int i = 0; i < 3000; i++) {
        float x[3] = {(float)tst_unif(&r), (float)tst_unif(&r), (float)tst_unif(&r)};
        dlsched_state_t s = tst_state(x, 3);
        dlsched_decision_t d;
        if (dlsched_act(sh->actor, &s, 0, &d) != DLSCHED_OK)
            return (void *)1;
        if (d.model_version % 10 != 0) /* imports are 0, 10, 20, ... */
            __atomic_store_n(&sh->bad_version, d.model_version + 1, __ATOMIC_RELAXED);
        if (dlsched_observe(sh->actor, d.ticket, 1.0f, &s, 0) != DLSCHED_OK)
            return (void *)1;
    }
    return NULL;
}

START_TEST(test_threads)
{
    dlsched_agent *learner = tst_agent(TX_DQN);
    tx_tr t[40];
    tx_make(t, 40, 3, 4, 9);
    tx_feed(learner, t, 40, 3);
    void *w;
    size_t wl;
    ck_assert_int_eq(dlsched_export_weights(learner, &w, &wl, NULL), DLSCHED_OK);
    /* versions 10, 20, ...: rewrite the blob's version (and CRC) */
    tx_shared sh = {tst_agent(TX_DQN "learner=none exchange_capacity=100000"), 0, 0};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, tx_actor, &sh), 0);
    unsigned char *copy = malloc(wl);
    uint64_t exported = 0, dropped_total = 0;
    for (uint64_t v = 10; v <= 300; v += 10) {
        memcpy(copy, w, wl);
        memcpy(copy + 48, &v, 8); /* after the frame header and the shape */
        tx_fix_crc(copy, wl);
        ck_assert_msg(dlsched_import_weights(sh.actor, copy, wl, NULL) == DLSCHED_OK, "%s",
                      dlsched_last_error());
        void *b;
        size_t l;
        uint32_t c;
        uint64_t dr;
        ck_assert_int_eq(dlsched_export_transitions(sh.actor, 0, &b, &l, &c, &dr), DLSCHED_OK);
        exported += c;
        dropped_total += dr;
        dlsched_buffer_free(b);
    }
    for (int i = 0; i < 4; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        ck_assert_ptr_null(ret);
    }
    void *b;
    size_t l;
    uint32_t c;
    uint64_t dr;
    ck_assert_int_eq(dlsched_export_transitions(sh.actor, 0, &b, &l, &c, &dr), DLSCHED_OK);
    exported += c;
    dropped_total += dr;
    dlsched_buffer_free(b);
    ck_assert_uint_eq(exported + dropped_total, 4 * 3000);
    ck_assert_uint_eq(dropped_total, 0);
    ck_assert_uint_eq(sh.bad_version, 0);
    free(copy);
    dlsched_buffer_free(w);
    dlsched_agent_free(sh.actor);
    dlsched_agent_free(learner);
}
END_TEST

Suite *suite_exchange(void)
{
    Suite *s = suite_create("exchange");
    TCase *tc = tcase_create("transitions");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_transitions_round_trip);
    tcase_add_test(tc, test_ring_overflow_and_max);
    tcase_add_test(tc, test_none_versions_and_staleness);
    tcase_add_test(tc, test_ingest_into_thread_learner);
    suite_add_tcase(s, tc);
    tc = tcase_create("weights");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_weights_round_trip);
    tcase_add_test(tc, test_none_checkpoint_keeps_version);
    tcase_add_test(tc, test_errors_leave_agent_unchanged);
    suite_add_tcase(s, tc);
    tc = tcase_create("threads");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_threads);
    suite_add_tcase(s, tc);
    return s;
}
