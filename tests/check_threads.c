/* check_threads.c - one agent shared by acting and observing threads */
#include <pthread.h>

#include "tests.h"

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
    return s;
}
