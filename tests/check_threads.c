/* check_threads.c - one agent shared by acting and observing threads;
   training on two OpenBLAS threads (cpu_threads=2) */
#include <cblas.h>
#include <pthread.h>

#include "tests.h"

#include "core/rng.h"
#include "dqn/dqn.h"

#define ACTORS 2
#define OBSERVERS 2
#define PER_ACTOR 20000

/* tickets handed from actors to observers, as a request thread hands a
   response to a completion thread */
typedef struct handoff {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t q[1024];
    int head, count, actors_done;
} handoff;

static dlsched_agent *ag;
static handoff ho;
static uint64_t act_fail, obs_fail, obs_ok;
static pthread_mutex_t count_mu = PTHREAD_MUTEX_INITIALIZER;

static void *actor(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    uint64_t fails = 0;
    for (int i = 0; i < PER_ACTOR; i++) {
        seed = seed * 1103515245u + 12345u;
        float x[2] = {(seed >> 8) % 100 / 100.0f, (seed >> 16) % 100 / 100.0f};
        dlsched_state_t s = tst_state(x, 2);
        dlsched_decision_t d;
        if (dlsched_act(ag, &s, (i % 10 == 0) ? DLSCHED_ACT_GREEDY : 0, &d) != DLSCHED_OK) {
            fails++;
            continue;
        }
        if (d.ticket == 0)
            continue;
        pthread_mutex_lock(&ho.mu);
        while (ho.count == 1024)
            pthread_cond_wait(&ho.cv, &ho.mu);
        ho.q[(ho.head + ho.count) % 1024] = d.ticket;
        ho.count++;
        pthread_cond_broadcast(&ho.cv);
        pthread_mutex_unlock(&ho.mu);
    }
    pthread_mutex_lock(&ho.mu);
    ho.actors_done++;
    pthread_cond_broadcast(&ho.cv);
    pthread_mutex_unlock(&ho.mu);
    pthread_mutex_lock(&count_mu);
    act_fail += fails;
    pthread_mutex_unlock(&count_mu);
    return NULL;
}

static void *observer(void *arg)
{
    (void)arg;
    uint64_t ok = 0, fails = 0;
    for (;;) {
        pthread_mutex_lock(&ho.mu);
        while (ho.count == 0 && ho.actors_done < ACTORS)
            pthread_cond_wait(&ho.cv, &ho.mu);
        if (ho.count == 0) {
            pthread_mutex_unlock(&ho.mu);
            break;
        }
        uint64_t t = ho.q[ho.head];
        ho.head = (ho.head + 1) % 1024;
        ho.count--;
        pthread_cond_broadcast(&ho.cv);
        pthread_mutex_unlock(&ho.mu);
        float x[2] = {0.5f, (float)(t % 7) / 7.0f};
        dlsched_state_t n = tst_state(x, 2);
        int rc = dlsched_observe(ag, t, (float)(t % 3), &n, (t % 5 == 0) ? DLSCHED_OBS_TERMINAL : 0);
        if (rc == DLSCHED_OK)
            ok++;
        else
            fails++;
        dlsched_stats_t st;
        dlsched_stats(ag, &st, sizeof st);
    }
    pthread_mutex_lock(&count_mu);
    obs_ok += ok;
    obs_fail += fails;
    pthread_mutex_unlock(&count_mu);
    return NULL;
}

static void *trainer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++)
        dlsched_train(ag, 50);
    return NULL;
}

/* Every ticket is observed exactly once and the counters reconcile; the
   ticket table is large enough that nothing expires. */
START_TEST(test_act_observe_across_threads)
{
    ag = tst_agent("algo=qtable n_features=2 n_actions=5 bins=10 replay=4096 seed=3");
    pthread_mutex_init(&ho.mu, NULL);
    pthread_cond_init(&ho.cv, NULL);
    ho.head = ho.count = ho.actors_done = 0;
    act_fail = obs_fail = obs_ok = 0;
    pthread_t a[ACTORS], o[OBSERVERS], tr;
    for (int i = 0; i < ACTORS; i++)
        ck_assert_int_eq(pthread_create(&a[i], NULL, actor, (void *)(uintptr_t)(i + 1)), 0);
    for (int i = 0; i < OBSERVERS; i++)
        ck_assert_int_eq(pthread_create(&o[i], NULL, observer, NULL), 0);
    ck_assert_int_eq(pthread_create(&tr, NULL, trainer, NULL), 0);
    for (int i = 0; i < ACTORS; i++)
        pthread_join(a[i], NULL);
    for (int i = 0; i < OBSERVERS; i++)
        pthread_join(o[i], NULL);
    pthread_join(tr, NULL);

    dlsched_stats_t st = tst_stats(ag);
    const uint64_t total = (uint64_t)ACTORS * PER_ACTOR, greedy = total / 10;
    ck_assert_uint_eq(act_fail, 0);
    ck_assert_uint_eq(obs_fail, 0);
    ck_assert_uint_eq(st.decisions, total);
    ck_assert_uint_eq(st.tickets_issued, total - greedy);
    ck_assert_uint_eq(st.observed, total - greedy);
    ck_assert_uint_eq(obs_ok, total - greedy);
    ck_assert_uint_eq(st.tickets_pending, 0);
    ck_assert_uint_eq(st.tickets_expired, 0);
    ck_assert_uint_ge(st.train_steps, st.observed);
    dlsched_agent_free(ag);
    pthread_mutex_destroy(&ho.mu);
    pthread_cond_destroy(&ho.cv);
}
END_TEST

/* A small ticket table under the same load: tickets expire, and still
   issued = observed + expired + pending, with every failure an ETICKET. */
START_TEST(test_reconcile_with_expiry)
{
    ag = tst_agent("algo=qtable n_features=2 n_actions=5 bins=10 seed=4 ticket_capacity=64 "
                   "default_reward=-1");
    pthread_mutex_init(&ho.mu, NULL);
    pthread_cond_init(&ho.cv, NULL);
    ho.head = ho.count = ho.actors_done = 0;
    act_fail = obs_fail = obs_ok = 0;
    pthread_t a[ACTORS], o[OBSERVERS];
    for (int i = 0; i < ACTORS; i++)
        ck_assert_int_eq(pthread_create(&a[i], NULL, actor, (void *)(uintptr_t)(i + 7)), 0);
    for (int i = 0; i < OBSERVERS; i++)
        ck_assert_int_eq(pthread_create(&o[i], NULL, observer, NULL), 0);
    for (int i = 0; i < ACTORS; i++)
        pthread_join(a[i], NULL);
    for (int i = 0; i < OBSERVERS; i++)
        pthread_join(o[i], NULL);
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_eq(act_fail, 0);
    ck_assert_uint_eq(st.tickets_issued, st.observed + st.tickets_expired + st.tickets_pending);
    ck_assert_uint_eq(st.observed, obs_ok);
    ck_assert_uint_eq(obs_ok + obs_fail, st.tickets_issued);
    ck_assert_uint_eq(st.tickets_pending, 0);
    dlsched_agent_free(ag);
    pthread_mutex_destroy(&ho.mu);
    pthread_cond_destroy(&ho.cv);
}
END_TEST

/* ---- cpu_threads: OpenBLAS threads chosen per GEMM ----------------------------- */

/* the rule: never more than allowed, one thread for allowed 1, for skinny
   and small products; two for the big GEMMs of a 256-wide net at batch 256
   (which the tests below rely on to exercise two threads); the shapes are
   those of the measurements in cpu_ops.c */
START_TEST(test_gemm_threads_rule)
{
    static const int shapes[][3] = {{512, 256, 256}, {256, 256, 512}, {2048, 256, 256},
                                    {256, 256, 1024}, {64, 256, 256},  {512, 8, 256},
                                    {512, 256, 16},   {8, 256, 1024},  {1024, 256, 8},
                                    {256, 16, 1024},  {1, 1, 1},       {4096, 4096, 4096}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int m = shapes[i][0], n = shapes[i][1], k = shapes[i][2];
        ck_assert_int_eq(dls_cpu_gemm_threads(m, n, k, 1), 1);
        ck_assert_int_eq(dls_cpu_gemm_threads(m, n, k, 0), 1);
        for (int allowed = 2; allowed <= 64; allowed *= 2) {
            int t = dls_cpu_gemm_threads(m, n, k, allowed);
            ck_assert_int_ge(t, 1);
            ck_assert_int_le(t, allowed);
            /* more allowed never means fewer used */
            ck_assert_int_ge(dls_cpu_gemm_threads(m, n, k, 2 * allowed), t);
        }
        /* a product twice as large never gets fewer threads */
        ck_assert_int_ge(dls_cpu_gemm_threads(2 * m, n, k, 64), dls_cpu_gemm_threads(m, n, k, 64));
    }
    /* the step's big GEMMs at batch 256: two threads */
    ck_assert_int_eq(dls_cpu_gemm_threads(512, 256, 256, 2), 2);
    ck_assert_int_eq(dls_cpu_gemm_threads(256, 256, 256, 2), 2);
    /* narrow outputs, short inner dimensions, small products: one */
    ck_assert_int_eq(dls_cpu_gemm_threads(512, 8, 256, 2), 1);
    ck_assert_int_eq(dls_cpu_gemm_threads(8, 256, 1024, 2), 1);
    ck_assert_int_eq(dls_cpu_gemm_threads(2048, 256, 16, 2), 1);
    ck_assert_int_eq(dls_cpu_gemm_threads(1024, 256, 8, 2), 1);
    ck_assert_int_eq(dls_cpu_gemm_threads(256, 16, 1024, 2), 1);
    ck_assert_int_eq(dls_cpu_gemm_threads(128, 128, 128, 2), 1);
    ck_assert_int_eq(dls_cpu_gemm_threads(32, 128, 128, 2), 1);
    /* measured winners: 32 rows through a 256-wide layer, 256 x 128 x 128 */
    ck_assert_int_eq(dls_cpu_gemm_threads(32, 256, 256, 2), 2);
    ck_assert_int_eq(dls_cpu_gemm_threads(256, 128, 128, 2), 2);
}
END_TEST

/* a wrapped CPU ops table: after each GEMM, the OpenBLAS thread count it ran
   with, against the rule's answer for its shape */
static const dls_ops *bt_cpu;
static int bt_gemms, bt_threaded, bt_wrong;

static void bt_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                    const float *b, int ldb, float beta, float *c, int ldc)
{
    bt_cpu->gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    int used = openblas_get_num_threads();
    bt_gemms++;
    bt_threaded += used > 1;
    bt_wrong += used != dls_cpu_gemm_threads(m, n, k, 2);
}

#define BT_SPEC                                                                                \
    "algo=dqn device=cpu n_features=16 n_actions=8 hidden=256,256 batch=256 replay=4096 "      \
    "seed=5 target_update=0.05 "

/* the backend driven directly with cpu_threads=2: every GEMM of a training
   step runs on the thread count the rule gives its shape, some on two; after
   the training call OpenBLAS is back on one thread */
START_TEST(test_train_threads_per_gemm)
{
    dlsched_config *cfg = NULL;
    ck_assert_int_eq(dlsched_config_new(&cfg), DLSCHED_OK);
    ck_assert_int_eq(dlsched_config_parse(cfg, BT_SPEC "cpu_threads=2 learning_starts=100000"),
                     DLSCHED_OK);
    dls_rng rng;
    dls_rng_seed(&rng, 3);
    const dls_backend_ops *bops;
    void *impl;
    size_t kb;
    ck_assert_int_eq(dls_dqn_new(cfg, &rng, &bops, &impl, &kb), DLSCHED_OK);
    dlsched_config_free(cfg);
    ck_assert_int_eq(openblas_get_num_threads(), 1);
    uint64_t g = 17;
    float x[2][16];
    for (int j = 0; j < 16; j++)
        x[0][j] = (float)tst_unif(&g);
    for (int i = 0; i < 600; i++) {
        for (int j = 0; j < 16; j++)
            x[(i + 1) & 1][j] = (float)tst_unif(&g);
        dls_transition tr = {x[i & 1], (int32_t)tst_below(&g, 8), (float)tst_unif(&g),
                             x[(i + 1) & 1], NULL, 0, 0};
        double loss = 0;
        ck_assert_uint_eq(bops->learn(impl, &tr, &rng, &loss), 0);
    }
    bt_cpu = dls_cpu_ops();
    dls_ops wrapped = *bt_cpu;
    wrapped.gemm = bt_gemm;
    dls_dqn_set_ops((dls_dqn *)impl, &wrapped);
    bt_gemms = bt_threaded = bt_wrong = 0;
    double loss = 0;
    ck_assert_uint_eq(bops->train(impl, &rng, 3, &loss), 3);
    ck_assert_int_eq(bt_gemms, 3 * 11);
    ck_assert_int_eq(bt_wrong, 0);
    ck_assert_int_ge(bt_threaded, 3);
    ck_assert_int_eq(openblas_get_num_threads(), 1);
    bops->destroy(impl);
}
END_TEST

/* Oracle-style equivalence: two agents that differ only in cpu_threads (1
   and 2), fed the same transitions (so that training runs inline from
   observe, then through dlsched_train), end with the same Q-values within
   float tolerance; OpenBLAS is on one thread whenever a call returns
   (acting never waits on BLAS threads). */
START_TEST(test_cpu_threads_same_q)
{
    dlsched_agent *ag1 = tst_agent(BT_SPEC "cpu_threads=1 learning_starts=300 train_every=50");
    dlsched_agent *ag2 = tst_agent(BT_SPEC "cpu_threads=2 learning_starts=300 train_every=50");
    dlsched_agent *both[2] = {ag1, ag2};
    ck_assert_int_eq(openblas_get_num_threads(), 1);
    uint64_t g = 29;
    float x[2][16];
    for (int j = 0; j < 16; j++)
        x[0][j] = (float)(2 * tst_unif(&g) - 1);
    for (int i = 0; i < 1000; i++) {
        for (int j = 0; j < 16; j++)
            x[(i + 1) & 1][j] = (float)(2 * tst_unif(&g) - 1);
        int32_t a = (int32_t)tst_below(&g, 8);
        float r = (float)(2 * tst_unif(&g) - 1);
        int flags = i % 97 == 96 ? DLSCHED_OBS_TERMINAL : 0;
        dlsched_state_t s = tst_state(x[i & 1], 16), nx = tst_state(x[(i + 1) & 1], 16);
        for (int k = 0; k < 2; k++) {
            ck_assert_int_eq(dlsched_observe_transition(both[k], &s, a, r, &nx, flags),
                             DLSCHED_OK);
            ck_assert_int_eq(openblas_get_num_threads(), 1);
        }
    }
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(dlsched_train(both[k], 4), DLSCHED_OK);
        ck_assert_int_eq(openblas_get_num_threads(), 1);
    }
    dlsched_stats_t s1 = tst_stats(ag1), s2 = tst_stats(ag2);
    ck_assert_uint_eq(s1.train_steps, s2.train_steps);
    ck_assert_uint_ge(s1.train_steps, 10);
    double worst = 0;
    for (int i = 0; i < 64; i++) {
        float st[16], q1[8], q2[8];
        for (int j = 0; j < 16; j++)
            st[j] = (float)(2 * tst_unif(&g) - 1);
        dlsched_state_t s = tst_state(st, 16);
        ck_assert_int_eq(dlsched_q_values(ag1, &s, q1, 8), DLSCHED_OK);
        ck_assert_int_eq(dlsched_q_values(ag2, &s, q2, 8), DLSCHED_OK);
        for (int a = 0; a < 8; a++) {
            double d = fabs((double)q1[a] - q2[a]) / (1.0 + fabs((double)q1[a]));
            worst = fmax(worst, d);
        }
    }
    ck_assert_msg(worst <= 1e-4, "cpu_threads=2 Q-values differ from cpu_threads=1 by %g", worst);
    /* acting after training: greedy, same decision, OpenBLAS still on one */
    float st[16] = {0.25f};
    dlsched_state_t s = tst_state(st, 16);
    dlsched_decision_t d1, d2;
    ck_assert_int_eq(dlsched_act(ag1, &s, DLSCHED_ACT_GREEDY, &d1), DLSCHED_OK);
    ck_assert_int_eq(dlsched_act(ag2, &s, DLSCHED_ACT_GREEDY, &d2), DLSCHED_OK);
    ck_assert_int_eq(d1.action, d2.action);
    ck_assert_int_eq(openblas_get_num_threads(), 1);
    dlsched_agent_free(ag1);
    dlsched_agent_free(ag2);
}
END_TEST

Suite *suite_threads(void)
{
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_act_observe_across_threads);
    suite_add_tcase(s, tc);
    TCase *lim = tcase_create("limits");
    tcase_set_timeout(lim, 120);
    tcase_add_test(lim, test_reconcile_with_expiry);
    suite_add_tcase(s, lim);
    TCase *blas = tcase_create("blas");
    tcase_set_timeout(blas, 120);
    tcase_add_test(blas, test_gemm_threads_rule);
    tcase_add_test(blas, test_train_threads_per_gemm);
    tcase_add_test(blas, test_cpu_threads_same_q);
    suite_add_tcase(s, blas);
    return s;
}
