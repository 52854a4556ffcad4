/* check_serving.c - the serving mode through the public API: tickets handed
   between acting and observing threads while the background learner
   (learner=thread) trains, the learner's eventual consistency and replay
   ratio, freeing a busy agent, apprenticeship, ticket timeouts, published
   model versions, learning with the background learner, and the
   determinism of learner=inline.

   Rules of this file: ck_assert_* only on the test's main thread (workers
   collect failures and the main thread asserts after joining); every wait
   on the learner polls dlsched_stats() with 1 ms sleeps up to a bounded
   deadline; loop counts stay modest so the suite also runs under
   ThreadSanitizer. */
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "tests.h"


/* the DQN on the CPU, single-threaded BLAS */
#define SV_DQN "algo=dqn device=cpu cpu_threads=1 "

/* ---- helpers ------------------------------------------------------------- */

static uint64_t sv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sv_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static dlsched_stats_t sv_stats(dlsched_agent *ag)
{
    dlsched_stats_t s;
    memset(&s, 0, sizeof s);
    int rc = dlsched_stats(ag, &s, sizeof s);
    ck_assert_msg(rc == DLSCHED_OK, "stats: %s", dlsched_last_error());
    ck_assert_uint_eq(s.size, sizeof s);
    return s;
}

/* What the learner owes once it has taken in `stored` transitions:
   algo=dqn trains while (its own steps + 1) * batch <= ratio * stored (and
   stored >= learning_starts); algo=qtable makes one update per transition.
   `extra` counts the steps of explicit dlsched_train() calls. */
typedef struct sv_owed {
    int dqn;
    uint64_t stored, batch, learning_starts, extra;
    double ratio;
} sv_owed;

/* the learner is idle and owes nothing: everything staged was taken in,
   the replay ratio's budget is spent (within one batch) and, for the DQN,
   the last model is published */
static int sv_caught_up(const dlsched_stats_t *s, const sv_owed *o)
{
    if (s->staged != 0 || s->train_steps < o->extra)
        return 0;
    uint64_t own = s->train_steps - o->extra;
    if (!o->dqn)
        return own == o->stored;
    if (s->published_version != s->train_steps)
        return 0;
    if (o->stored == 0 || o->stored < o->learning_starts)
        return 1;
    return (double)(own * o->batch + o->batch) > o->ratio * (double)o->stored;
}

/* poll (1 ms) until the learner caught up, at most timeout_ms; returns the
   last snapshot, asserts that it caught up */
static dlsched_stats_t sv_wait_caught_up(dlsched_agent *ag, const sv_owed *o, int timeout_ms)
{
    uint64_t end = sv_now_ms() + (uint64_t)timeout_ms;
    dlsched_stats_t s = sv_stats(ag);
    while (!sv_caught_up(&s, o) && sv_now_ms() < end) {
        sv_sleep_ms(1);
        s = sv_stats(ag);
    }
    ck_assert_msg(sv_caught_up(&s, o),
                  "the learner did not catch up in %d ms: staged %llu, train_steps %llu, "
                  "published_version %llu, stored %llu of %llu",
                  timeout_ms, (unsigned long long)s.staged, (unsigned long long)s.train_steps,
                  (unsigned long long)s.published_version,
                  (unsigned long long)s.transitions_stored, (unsigned long long)o->stored);
    /* within the budget: never more than the ratio allows */
    if (o->dqn && o->stored >= o->learning_starts)
        ck_assert_msg((double)((s.train_steps - o->extra) * o->batch) <=
                          o->ratio * (double)o->stored,
                      "train_steps %llu (%llu explicit) x batch %llu exceeds ratio %g x %llu",
                      (unsigned long long)s.train_steps, (unsigned long long)o->extra,
                      (unsigned long long)o->batch, o->ratio, (unsigned long long)o->stored);
    return s;
}

/* poll (1 ms) until nothing is staged, at most timeout_ms */
static dlsched_stats_t sv_wait_unstaged(dlsched_agent *ag, int timeout_ms)
{
    uint64_t end = sv_now_ms() + (uint64_t)timeout_ms;
    dlsched_stats_t s = sv_stats(ag);
    while (s.staged != 0 && sv_now_ms() < end) {
        sv_sleep_ms(1);
        s = sv_stats(ag);
    }
    ck_assert_msg(s.staged == 0, "%llu transitions still staged after %d ms",
                  (unsigned long long)s.staged, timeout_ms);
    return s;
}

/* a random state of width nf in [0, 1) */
static void sv_random_x(float *x, uint32_t nf, uint64_t *rng)
{
    for (uint32_t j = 0; j < nf; j++)
        x[j] = (float)tst_unif(rng);
}

/* n logged transitions with random states, actions and rewards; every
   fourth is terminal */
static void sv_feed(dlsched_agent *ag, uint32_t nf, uint32_t na, int n, uint64_t *rng)
{
    float x[16], x2[16];
    ck_assert_uint_le(nf, 16);
    for (int i = 0; i < n; i++) {
        sv_random_x(x, nf, rng);
        sv_random_x(x2, nf, rng);
        dlsched_state_t st = tst_state(x, nf), nx = tst_state(x2, nf);
        int terminal = tst_below(rng, 4) == 0;
        int rc = dlsched_observe_transition(ag, &st, (int32_t)tst_below(rng, na),
                                            (float)(2 * tst_unif(rng) - 1), terminal ? NULL : &nx,
                                            terminal ? DLSCHED_OBS_TERMINAL : 0);
        ck_assert_msg(rc == DLSCHED_OK, "observe_transition: %s", dlsched_last_error());
    }
}

static int sv_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* a worker's first failure, kept for the main thread's message */
#define SV_NOTE(w, ...)                                                                   \
    do {                                                                                  \
        if ((w)->why[0] == '\0')                                                          \
            snprintf((w)->why, sizeof (w)->why, __VA_ARGS__);                             \
    } while (0)

/* ---- 1, 2. tickets handed from actors to observers -------------------------- */

#define HO_ACTORS 2
#define HO_OBSERVERS 2
#define HO_QCAP 256
#define HO_WINDOW 4 /* an observer takes a random one of the first few queued */
#define HO_NF 4
#define HO_NA 3

typedef struct ho_shared {
    dlsched_agent *ag;
    int per_actor;
    int versions;  /* decisions' model_version must not decrease per thread */
    int gate;      /* observers start once this many tickets are queued */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t q[HO_QCAP];
    int head, count, actors_done, open;
} ho_shared;

typedef struct ho_actor {
    ho_shared *sh;
    uint64_t rng;
    uint64_t *issued; /* tickets of the ticketed decisions */
    uint64_t acts, ticketed, greedy, fails, bad;
    char why[200];
} ho_actor;

typedef struct ho_observer {
    ho_shared *sh;
    uint64_t rng;
    uint64_t *seen; /* every ticket this observer took from the queue */
    uint64_t n_seen, ok, eticket, other, double_ok, bad;
    char why[200];
} ho_observer;

/* the snapshot invariant the header promises */
static int ho_stats_ok(dlsched_agent *ag, char *why, size_t n)
{
    dlsched_stats_t s;
    if (dlsched_stats(ag, &s, sizeof s) != DLSCHED_OK) {
        snprintf(why, n, "stats: %s", dlsched_last_error());
        return 0;
    }
    if (s.tickets_issued != s.observed + s.tickets_expired + s.tickets_pending) {
        snprintf(why, n, "snapshot: issued %llu != observed %llu + expired %llu + pending %llu",
                 (unsigned long long)s.tickets_issued, (unsigned long long)s.observed,
                 (unsigned long long)s.tickets_expired, (unsigned long long)s.tickets_pending);
        return 0;
    }
    if (s.tickets_timed_out > s.tickets_expired || s.hinted != 0 || s.explored > s.decisions) {
        snprintf(why, n, "snapshot: timed_out %llu expired %llu hinted %llu explored %llu",
                 (unsigned long long)s.tickets_timed_out, (unsigned long long)s.tickets_expired,
                 (unsigned long long)s.hinted, (unsigned long long)s.explored);
        return 0;
    }
    return 1;
}

static void *ho_actor_main(void *arg)
{
    ho_actor *w = arg;
    ho_shared *sh = w->sh;
    uint64_t last_version = 0;
    for (int i = 0; i < sh->per_actor; i++) {
        float x[HO_NF];
        sv_random_x(x, HO_NF, &w->rng);
        dlsched_state_t st = tst_state(x, HO_NF);
        int greedy = tst_below(&w->rng, 8) == 0;
        dlsched_decision_t d;
        int rc = dlsched_act(sh->ag, &st, greedy ? DLSCHED_ACT_GREEDY : 0, &d);
        if (rc != DLSCHED_OK) {
            w->fails++;
            SV_NOTE(w, "act: %s", dlsched_last_error());
            continue;
        }
        w->acts++;
        if (d.action < 0 || d.action >= HO_NA || !(d.probability > 0 && d.probability <= 1) ||
            !isfinite(d.value) || (d.flags & DLSCHED_DECISION_HINT)) {
            w->bad++;
            SV_NOTE(w, "decision: action %d probability %g value %g flags %u", d.action,
                    d.probability, d.value, d.flags);
        }
        if (sh->versions) {
            if (d.model_version < last_version) {
                w->bad++;
                SV_NOTE(w, "model_version went back from %llu to %llu",
                        (unsigned long long)last_version, (unsigned long long)d.model_version);
            }
            last_version = d.model_version;
        }
        if (greedy) {
            w->greedy++;
            if (d.ticket != 0 || (d.flags & DLSCHED_DECISION_EXPLORED)) {
                w->bad++;
                SV_NOTE(w, "greedy decision: ticket %llu flags %u",
                        (unsigned long long)d.ticket, d.flags);
            }
        } else {
            if (d.ticket == 0) {
                w->bad++;
                SV_NOTE(w, "ticketed decision without a ticket");
                continue;
            }
            w->issued[w->ticketed++] = d.ticket;
            pthread_mutex_lock(&sh->mu);
            while (sh->count == HO_QCAP)
                pthread_cond_wait(&sh->cv, &sh->mu);
            sh->q[(sh->head + sh->count) % HO_QCAP] = d.ticket;
            sh->count++;
            if (sh->count >= sh->gate)
                sh->open = 1;
            pthread_cond_broadcast(&sh->cv);
            pthread_mutex_unlock(&sh->mu);
        }
        if (i % 64 == 0) {
            float q[HO_NA];
            rc = dlsched_q_values(sh->ag, &st, q, HO_NA);
            if (rc != DLSCHED_OK || !isfinite(q[0]) || !isfinite(q[1]) || !isfinite(q[2])) {
                w->bad++;
                SV_NOTE(w, "q_values: rc %d (%s)", rc, rc ? dlsched_last_error() : "not finite");
            }
            char why[200];
            if (!ho_stats_ok(sh->ag, why, sizeof why)) {
                w->bad++;
                SV_NOTE(w, "%s", why);
            }
        }
    }
    pthread_mutex_lock(&sh->mu);
    sh->actors_done++;
    sh->open = 1;
    pthread_cond_broadcast(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
    return NULL;
}

static void *ho_observer_main(void *arg)
{
    ho_observer *w = arg;
    ho_shared *sh = w->sh;
    for (;;) {
        pthread_mutex_lock(&sh->mu);
        while (!sh->open || (sh->count == 0 && sh->actors_done < HO_ACTORS))
            pthread_cond_wait(&sh->cv, &sh->mu);
        if (sh->count == 0) {
            pthread_mutex_unlock(&sh->mu);
            break;
        }
        /* out of order: a random one of the first few, the head takes its place */
        int window = sh->count < HO_WINDOW ? sh->count : HO_WINDOW;
        int j = (sh->head + (int)tst_below(&w->rng, (uint32_t)window)) % HO_QCAP;
        uint64_t t = sh->q[j];
        sh->q[j] = sh->q[sh->head];
        sh->head = (sh->head + 1) % HO_QCAP;
        sh->count--;
        pthread_cond_broadcast(&sh->cv);
        pthread_mutex_unlock(&sh->mu);

        w->seen[w->n_seen++] = t;
        float x2[HO_NF];
        sv_random_x(x2, HO_NF, &w->rng);
        dlsched_state_t nx = tst_state(x2, HO_NF);
        int terminal = tst_below(&w->rng, 4) == 0;
        float reward = (float)(2 * tst_unif(&w->rng) - 1);
        int rc = dlsched_observe(sh->ag, t, reward, terminal ? NULL : &nx,
                                 terminal ? DLSCHED_OBS_TERMINAL : 0);
        if (rc == DLSCHED_OK) {
            w->ok++;
            if (w->ok % 16 == 0) { /* a second observe of the same ticket */
                rc = dlsched_observe(sh->ag, t, reward, NULL, DLSCHED_OBS_TERMINAL);
                if (rc != DLSCHED_ETICKET) {
                    w->double_ok++;
                    SV_NOTE(w, "ticket %llu observed twice: rc %d", (unsigned long long)t, rc);
                }
            }
        } else if (rc == DLSCHED_ETICKET) {
            w->eticket++;
        } else {
            w->other++;
            SV_NOTE(w, "observe: rc %d: %s", rc, dlsched_last_error());
        }
        if (w->n_seen % 32 == 0) {
            char why[200];
            if (!ho_stats_ok(sh->ag, why, sizeof why)) {
                w->bad++;
                SV_NOTE(w, "%s", why);
            }
        }
    }
    return NULL;
}

typedef struct ho_result {
    uint64_t acts, ticketed, ok, eticket;
} ho_result;

/* Two actors, two observers, tickets through the test's queue. Asserts the
   exact reconciliation; `expiry` says whether tickets may expire (a small
   ticket_capacity) and `gate` holds the observers back until that many
   tickets are queued. */
static ho_result ho_run(dlsched_agent *ag, int per_actor, int versions, int expiry, int gate,
                        uint64_t seed)
{
    ho_shared sh;
    memset(&sh, 0, sizeof sh);
    sh.ag = ag;
    sh.per_actor = per_actor;
    sh.versions = versions;
    sh.gate = gate > 0 ? gate : 1;
    sh.open = gate <= 0;
    pthread_mutex_init(&sh.mu, NULL);
    pthread_cond_init(&sh.cv, NULL);
    const size_t max_tickets = (size_t)HO_ACTORS * (size_t)per_actor;
    ho_actor act[HO_ACTORS];
    ho_observer obs[HO_OBSERVERS];
    memset(act, 0, sizeof act);
    memset(obs, 0, sizeof obs);
    pthread_t ta[HO_ACTORS], to[HO_OBSERVERS];
    for (int i = 0; i < HO_ACTORS; i++) {
        act[i].sh = &sh;
        act[i].rng = seed * 1000 + (uint64_t)i;
        act[i].issued = calloc((size_t)per_actor, sizeof(uint64_t));
        ck_assert_ptr_nonnull(act[i].issued);
    }
    for (int i = 0; i < HO_OBSERVERS; i++) {
        obs[i].sh = &sh;
        obs[i].rng = seed * 1000 + 500 + (uint64_t)i;
        obs[i].seen = calloc(max_tickets, sizeof(uint64_t));
        ck_assert_ptr_nonnull(obs[i].seen);
    }
    for (int i = 0; i < HO_OBSERVERS; i++)
        ck_assert_int_eq(pthread_create(&to[i], NULL, ho_observer_main, &obs[i]), 0);
    for (int i = 0; i < HO_ACTORS; i++)
        ck_assert_int_eq(pthread_create(&ta[i], NULL, ho_actor_main, &act[i]), 0);
    for (int i = 0; i < HO_ACTORS; i++)
        pthread_join(ta[i], NULL);
    for (int i = 0; i < HO_OBSERVERS; i++)
        pthread_join(to[i], NULL);
    pthread_mutex_destroy(&sh.mu);
    pthread_cond_destroy(&sh.cv);

    ho_result r = {0, 0, 0, 0};
    uint64_t greedy = 0, n_seen = 0;
    for (int i = 0; i < HO_ACTORS; i++) {
        ck_assert_msg(act[i].fails == 0 && act[i].bad == 0, "actor %d: %llu failed, %llu bad: %s",
                      i, (unsigned long long)act[i].fails, (unsigned long long)act[i].bad,
                      act[i].why);
        r.acts += act[i].acts;
        r.ticketed += act[i].ticketed;
        greedy += act[i].greedy;
    }
    for (int i = 0; i < HO_OBSERVERS; i++) {
        ck_assert_msg(obs[i].other == 0 && obs[i].double_ok == 0 && obs[i].bad == 0,
                      "observer %d: %llu failed, %llu observed twice, %llu bad: %s", i,
                      (unsigned long long)obs[i].other, (unsigned long long)obs[i].double_ok,
                      (unsigned long long)obs[i].bad, obs[i].why);
        r.ok += obs[i].ok;
        r.eticket += obs[i].eticket;
        n_seen += obs[i].n_seen;
    }
    ck_assert_uint_eq(r.acts, (uint64_t)max_tickets);
    ck_assert_uint_eq(r.acts, r.ticketed + greedy);
    ck_assert_uint_gt(greedy, 0);

    /* every ticket unique, and handed to exactly one observe */
    uint64_t *issued = malloc(max_tickets * sizeof *issued);
    uint64_t *seen = malloc(max_tickets * sizeof *seen);
    ck_assert(issued && seen);
    size_t ni = 0, ns = 0;
    for (int i = 0; i < HO_ACTORS; i++) {
        memcpy(issued + ni, act[i].issued, act[i].ticketed * sizeof *issued);
        ni += act[i].ticketed;
    }
    for (int i = 0; i < HO_OBSERVERS; i++) {
        memcpy(seen + ns, obs[i].seen, obs[i].n_seen * sizeof *seen);
        ns += obs[i].n_seen;
    }
    ck_assert_uint_eq(ni, r.ticketed);
    ck_assert_uint_eq(ns, n_seen);
    ck_assert_uint_eq(ns, ni);
    qsort(issued, ni, sizeof *issued, sv_cmp_u64);
    qsort(seen, ns, sizeof *seen, sv_cmp_u64);
    for (size_t i = 1; i < ni; i++)
        ck_assert_msg(issued[i] != issued[i - 1], "ticket %llu issued twice",
                      (unsigned long long)issued[i]);
    ck_assert_msg(memcmp(issued, seen, ni * sizeof *issued) == 0,
                  "the tickets observed are not the tickets issued");
    free(issued);
    free(seen);
    for (int i = 0; i < HO_ACTORS; i++)
        free(act[i].issued);
    for (int i = 0; i < HO_OBSERVERS; i++)
        free(obs[i].seen);

    /* exact reconciliation */
    dlsched_stats_t s = sv_stats(ag);
    ck_assert_uint_eq(s.decisions, r.acts);
    ck_assert_uint_eq(s.tickets_issued, r.ticketed);
    ck_assert_uint_eq(s.observed, r.ok);
    ck_assert_uint_eq(s.tickets_issued, s.observed + s.tickets_expired + s.tickets_pending);
    ck_assert_uint_eq(s.tickets_pending, 0);
    ck_assert_uint_eq(r.ok + r.eticket, r.ticketed);
    ck_assert_uint_eq(s.hinted, 0);
    ck_assert_uint_eq(s.tickets_timed_out, 0);
    if (expiry) {
        /* every ETICKET was an expired ticket, every expired ticket one ETICKET */
        ck_assert_uint_eq(r.eticket, s.tickets_expired);
        ck_assert_uint_gt(s.tickets_expired, 0);
    } else {
        ck_assert_uint_eq(s.tickets_expired, 0);
        ck_assert_uint_eq(r.eticket, 0);
    }
    return r;
}

/* 2: after the hand-off the learner takes in everything and goes idle */
static void ho_eventually(dlsched_agent *ag, const sv_owed *o, uint64_t replay)
{
    dlsched_stats_t s = sv_wait_caught_up(ag, o, 60000);
    ck_assert_uint_eq(s.transitions_stored, o->stored < replay ? o->stored : replay);
    if (!o->dqn)
        ck_assert_uint_eq(s.train_steps, o->stored);
    ck_assert_uint_eq(s.published_version, s.train_steps);
    /* and stays idle */
    sv_sleep_ms(50);
    dlsched_stats_t t = sv_stats(ag);
    ck_assert_uint_eq(t.train_steps, s.train_steps);
    ck_assert_uint_eq(t.staged, 0);
    ck_assert_uint_eq(t.transitions_stored, s.transitions_stored);
    ck_assert(isfinite(t.last_loss));
}

#define HO_PER_ACTOR 3000

START_TEST(test_handoff_dqn_thread)
{
    dlsched_agent *ag = tst_agent(SV_DQN "learner=thread n_features=4 n_actions=3 hidden=32 "
                                         "batch=16 learning_starts=50 replay=100000 "
                                         "target_update=100 epsilon_decay_steps=2000 seed=11");
    ho_result r = ho_run(ag, HO_PER_ACTOR, 1, 0, 0, 11);
    /* ratio: batch * gradient_steps / train_every = 16 * 1 / 4 */
    sv_owed o = {1, r.ok, 16, 50, 0, 4.0};
    ho_eventually(ag, &o, 100000);
    dlsched_agent_free(ag);
}
END_TEST

START_TEST(test_handoff_qtable_thread)
{
    dlsched_agent *ag = tst_agent("algo=qtable learner=thread n_features=4 n_actions=3 bins=4 "
                                  "replay=4096 seed=12");
    ho_result r = ho_run(ag, HO_PER_ACTOR, 1, 0, 0, 12);
    /* qtable: one update per transition, the ring keeps the last 4096 */
    sv_owed o = {0, r.ok, 0, 0, 0, 0};
    ho_eventually(ag, &o, 4096);
    dlsched_agent_free(ag);
}
END_TEST

/* tickets expire at capacity while queued: each is one ETICKET, and with
   default_reward the learner takes in the expired ones too */
START_TEST(test_handoff_capacity_expiry)
{
    dlsched_agent *ag = tst_agent(SV_DQN "learner=thread n_features=4 n_actions=3 hidden=32 "
                                         "batch=16 learning_starts=50 replay=2000 "
                                         "ticket_capacity=8 default_reward=-1 seed=13");
    ho_result r = ho_run(ag, HO_PER_ACTOR, 1, 1, 32, 13);
    dlsched_stats_t s = sv_stats(ag);
    ck_assert_uint_eq(s.tickets_expired, r.eticket);
    sv_owed o = {1, r.ok + r.eticket, 16, 50, 0, 4.0};
    ho_eventually(ag, &o, 2000);
    dlsched_agent_free(ag);

    /* the same on a Q-table, expired tickets dropped (no default_reward) */
    ag = tst_agent("algo=qtable learner=thread n_features=4 n_actions=3 bins=4 replay=100000 "
                   "ticket_capacity=8 seed=14");
    r = ho_run(ag, HO_PER_ACTOR / 2, 1, 1, 32, 14);
    sv_owed oq = {0, r.ok, 0, 0, 0, 0};
    ho_eventually(ag, &oq, 100000);
    dlsched_agent_free(ag);
}
END_TEST

/* ---- 3. the replay ratio caps the background learner ---------------------- */

START_TEST(test_replay_ratio_cap)
{
    enum { K = 400 };
    uint64_t rng = 31;
    dlsched_agent *ag = tst_agent(SV_DQN "learner=thread n_features=4 n_actions=3 hidden=32 "
                                         "batch=16 replay_ratio=2 learning_starts=0 "
                                         "replay=10000 seed=31");
    sv_feed(ag, 4, 3, K, &rng);
    sv_owed o = {1, K, 16, 0, 0, 2.0};
    dlsched_stats_t s = sv_wait_caught_up(ag, &o, 30000);
    ck_assert_msg(s.train_steps * 16 <= 2 * K + 16, "train_steps %llu x 16 > 2 x %d + 16",
                  (unsigned long long)s.train_steps, K);
    ck_assert_uint_eq(s.transitions, K);
    ck_assert_uint_eq(s.transitions_stored, K);
    /* no traffic, no training */
    sv_sleep_ms(200);
    dlsched_stats_t t = sv_stats(ag);
    ck_assert_uint_eq(t.train_steps, s.train_steps);
    ck_assert_uint_eq(t.published_version, s.train_steps);
    /* more traffic: the budget grows with it */
    sv_feed(ag, 4, 3, K, &rng);
    o.stored = 2 * K;
    s = sv_wait_caught_up(ag, &o, 30000);
    ck_assert_msg(s.train_steps * 16 <= 4 * K + 16, "train_steps %llu x 16 > 4 x %d + 16",
                  (unsigned long long)s.train_steps, K);
    ck_assert_uint_gt(s.train_steps, t.train_steps);
    /* explicit training comes on top of the ratio's budget */
    ck_assert_int_eq(dlsched_train(ag, 7), DLSCHED_OK);
    o.extra = 7;
    t = sv_wait_caught_up(ag, &o, 30000);
    ck_assert_uint_eq(t.train_steps, s.train_steps + 7);
    dlsched_agent_free(ag);

    /* learning_starts above what came in: the learner does not train */
    ag = tst_agent(SV_DQN "learner=thread n_features=4 n_actions=3 hidden=32 batch=16 "
                          "replay_ratio=2 learning_starts=1000 replay=10000 seed=32");
    sv_feed(ag, 4, 3, K, &rng);
    s = sv_wait_unstaged(ag, 30000);
    ck_assert_uint_eq(s.transitions_stored, K);
    ck_assert_uint_eq(s.train_steps, 0);
    sv_sleep_ms(200);
    t = sv_stats(ag);
    ck_assert_uint_eq(t.train_steps, 0);
    ck_assert_uint_eq(t.published_version, 0);
    /* past learning_starts it trains up to the ratio over everything stored */
    sv_feed(ag, 4, 3, 1000 - K, &rng);
    sv_owed o2 = {1, 1000, 16, 1000, 0, 2.0};
    s = sv_wait_caught_up(ag, &o2, 30000);
    ck_assert_uint_gt(s.train_steps, 0);
    ck_assert_uint_le(s.train_steps * 16, 2 * 1000);
    dlsched_agent_free(ag);
}
END_TEST

/* ---- 4. freeing an agent whose learner is busy ------------------------------ */

START_TEST(test_free_with_learner_busy)
{
    for (int rep = 0; rep < 5; rep++) {
        char spec[512];
        snprintf(spec, sizeof spec,
                 SV_DQN "learner=thread n_features=8 n_actions=4 hidden=256,256 batch=256 "
                        "learning_starts=256 replay=10000 replay_ratio=1000 publish_every=1 "
                        "seed=%d",
                 rep + 1);
        dlsched_agent *ag = tst_agent(spec);
        uint64_t rng = 40 + (uint64_t)rep;
        sv_feed(ag, 8, 4, 1000, &rng);
        /* some tickets left pending */
        float x[8];
        sv_random_x(x, 8, &rng);
        dlsched_state_t st = tst_state(x, 8);
        dlsched_decision_t d;
        for (int i = 0; i < 10; i++)
            ck_assert_int_eq(dlsched_act(ag, &st, 0, &d), DLSCHED_OK);
        if (rep % 2 == 0) {
            /* wait until the learner is mid-training (its budget is ~3900 steps) */
            uint64_t end = sv_now_ms() + 60000;
            dlsched_stats_t s = sv_stats(ag);
            while (s.train_steps == 0 && sv_now_ms() < end) {
                sv_sleep_ms(1);
                s = sv_stats(ag);
            }
            ck_assert_uint_gt(s.train_steps, 0);
        } else {
            /* more staged than drained: free with transitions waiting */
            sv_feed(ag, 8, 4, 500, &rng);
        }
        dlsched_agent_free(ag);
    }
    /* created and freed at once, before the learner ran */
    for (int rep = 0; rep < 5; rep++) {
        dlsched_agent *ag = tst_agent(SV_DQN "learner=thread n_features=2 n_actions=2 hidden=8");
        dlsched_agent_free(ag);
        ag = tst_agent("algo=qtable learner=thread n_features=2 n_actions=2");
        dlsched_agent_free(ag);
    }
}
END_TEST

/* ---- 5. apprenticeship ---------------------------------------------------- */

/* One state, three actions. The hint (0) pays -1; logged transitions teach
   that action 2 pays +1. Apprenticeship returns the hint for the first N
   hinted decisions; then the agent's own (greedy: epsilon 0) choice, 2.
   The specs say guard=0: this is the 1.0 apprenticeship; the guard would
   take over the decisions with a hint after it (check_guard.c). */
static void ap_bad_hint(const char *spec, int threaded)
{
    enum { N = 40 };
    dlsched_agent *ag = tst_agent(spec);
    float x[1] = {0.5f};
    dlsched_state_t plain = tst_state(x, 1), hinted = plain;
    hinted.hint = 0;
    dlsched_stats_t s = sv_stats(ag);
    ck_assert_uint_eq(s.apprentice_left, N);
    uint64_t learned = 0, n_hinted = 0;
    for (int i = 0; n_hinted < N; i++) {
        dlsched_decision_t d;
        if (i % 5 == 2) {
            /* no hint: the normal policy, no countdown */
            ck_assert_int_eq(dlsched_act(ag, &plain, 0, &d), DLSCHED_OK);
            ck_assert_uint_eq(d.flags & DLSCHED_DECISION_HINT, 0);
            ck_assert_uint_ne(d.ticket, 0);
            ck_assert_int_eq(dlsched_observe(ag, d.ticket, d.action == 2 ? 1.0f : -1.0f, NULL,
                                             DLSCHED_OBS_TERMINAL),
                             DLSCHED_OK);
            learned++;
        } else if (i % 5 == 3) {
            /* evaluation: not an apprentice decision */
            ck_assert_int_eq(dlsched_act(ag, &hinted, DLSCHED_ACT_GREEDY, &d), DLSCHED_OK);
            ck_assert_uint_eq(d.flags & DLSCHED_DECISION_HINT, 0);
            ck_assert_uint_eq(d.ticket, 0);
        } else {
            ck_assert_int_eq(dlsched_act(ag, &hinted, 0, &d), DLSCHED_OK);
            n_hinted++;
            ck_assert_int_eq(d.action, 0);
            ck_assert_uint_eq(d.flags, DLSCHED_DECISION_HINT);
            ck_assert_float_eq(d.probability, 1.0f);
            ck_assert_uint_ne(d.ticket, 0);
            ck_assert_int_eq(dlsched_observe(ag, d.ticket, -1.0f, NULL, DLSCHED_OBS_TERMINAL),
                             DLSCHED_OK);
            learned++;
        }
        s = sv_stats(ag);
        ck_assert_uint_eq(s.apprentice_left, N - n_hinted);
        ck_assert_uint_eq(s.hinted, n_hinted);
        /* the better action, from the log */
        ck_assert_int_eq(dlsched_observe_transition(ag, &plain, 2, 1.0f, NULL,
                                                    DLSCHED_OBS_TERMINAL),
                         DLSCHED_OK);
        learned++;
    }
    s = sv_stats(ag);
    ck_assert_uint_eq(s.apprentice_left, 0);
    /* the greedy choice was 2, not the hint 0 (but for ties before anything
       was learned; the background learner may lag a few decisions) */
    ck_assert_double_le(s.apprentice_agreement, threaded ? 0.5 : 0.1);
    if (threaded) {
        /* the Q-table learner takes in every transition: one update each */
        sv_owed o = {0, learned, 0, 0, 0, 0};
        sv_wait_caught_up(ag, &o, 30000);
    }
    float q[3];
    ck_assert_int_eq(dlsched_q_values(ag, &plain, q, 3), DLSCHED_OK);
    ck_assert_msg(q[2] > q[0] && q[2] > q[1], "Q = (%g, %g, %g)", q[0], q[1], q[2]);
    /* over: the agent's own choice, even with the hint */
    for (int i = 0; i < 20; i++) {
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &hinted, 0, &d), DLSCHED_OK);
        ck_assert_int_eq(d.action, 2);
        ck_assert_uint_eq(d.flags, 0);
        ck_assert_float_eq(d.probability, 1.0f);
        ck_assert_int_eq(dlsched_observe(ag, d.ticket, 1.0f, NULL, DLSCHED_OBS_TERMINAL),
                         DLSCHED_OK);
    }
    s = sv_stats(ag);
    ck_assert_uint_eq(s.apprentice_left, 0);
    ck_assert_uint_eq(s.hinted, N);
    dlsched_agent_free(ag);
}

START_TEST(test_apprentice_qtable)
{
    ap_bad_hint("algo=qtable n_features=1 n_actions=3 bins=1 epsilon_start=0 epsilon_end=0 "
                "apprentice=40 guard=0 seed=5",
                0);
    ap_bad_hint("algo=qtable learner=thread n_features=1 n_actions=3 bins=1 epsilon_start=0 "
                "epsilon_end=0 apprentice=40 guard=0 seed=6",
                1);
}
END_TEST

/* The DQN (learner=thread): a two-armed bandit in one state, the hint is
   the worse arm. guard=0: the 1.0 apprenticeship (the guard would keep the
   hint after it until proven worse). */
START_TEST(test_apprentice_dqn)
{
    enum { N = 60 };
    dlsched_agent *ag = tst_agent(SV_DQN "learner=thread n_features=2 n_actions=2 hidden=16 "
                                         "batch=16 learning_starts=16 replay=1000 lr=0.01 "
                                         "epsilon_start=0 epsilon_end=0 apprentice=60 guard=0 "
                                         "seed=3");
    float x[2] = {1.0f, 0.0f};
    dlsched_state_t plain = tst_state(x, 2), hinted = plain;
    hinted.hint = 0;
    for (int i = 0; i < N; i++) {
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &hinted, 0, &d), DLSCHED_OK);
        ck_assert_int_eq(d.action, 0);
        ck_assert_uint_eq(d.flags, DLSCHED_DECISION_HINT);
        ck_assert_float_eq(d.probability, 1.0f);
        ck_assert_int_eq(dlsched_observe(ag, d.ticket, 0.0f, NULL, DLSCHED_OBS_TERMINAL),
                         DLSCHED_OK);
        ck_assert_int_eq(dlsched_observe_transition(ag, &plain, 1, 1.0f, NULL,
                                                    DLSCHED_OBS_TERMINAL),
                         DLSCHED_OK);
        /* greedy evaluation in between: not counted */
        ck_assert_int_eq(dlsched_act(ag, &hinted, DLSCHED_ACT_GREEDY, &d), DLSCHED_OK);
        ck_assert_uint_eq(d.flags & DLSCHED_DECISION_HINT, 0);
        ck_assert_uint_eq(sv_stats(ag).apprentice_left, (uint64_t)(N - i - 1));
    }
    /* train (in thread mode this takes in what is staged and publishes) */
    ck_assert_int_eq(dlsched_train(ag, 400), DLSCHED_OK);
    float q[2];
    ck_assert_int_eq(dlsched_q_values(ag, &plain, q, 2), DLSCHED_OK);
    ck_assert_msg(q[1] > q[0] + 0.5f, "Q = (%g, %g)", q[0], q[1]);
    dlsched_decision_t d;
    ck_assert_int_eq(dlsched_act(ag, &hinted, 0, &d), DLSCHED_OK);
    ck_assert_int_eq(d.action, 1);
    ck_assert_uint_eq(d.flags, 0);
    dlsched_stats_t s = sv_stats(ag);
    ck_assert_uint_eq(s.apprentice_left, 0);
    ck_assert_uint_eq(s.hinted, N);
    dlsched_agent_free(ag);
}
END_TEST

/* The hint is the optimal action and the agent learns it from the
   apprenticeship's own observations: apprenticeship ends early, at the
   first full window of 1000 decisions with agreement >= 0.9. guard=0: the
   1.0 apprenticeship; with the guard, the wrong hints after it would be
   followed until the learned policy proved better. */
START_TEST(test_apprentice_early_exit)
{
    dlsched_agent *ag = tst_agent("algo=qtable n_features=1 n_actions=3 bins=4 epsilon_start=0 "
                                  "epsilon_end=0 apprentice=100000 apprentice_agreement=0.9 "
                                  "guard=0 seed=8");
    uint64_t rng = 88;
    int n_hinted = 0, switched = 0;
    dlsched_stats_t at_switch;
    memset(&at_switch, 0, sizeof at_switch);
    for (int i = 0; i < 5000 && !switched; i++) {
        uint32_t b = tst_below(&rng, 4);
        int opt = (int)(b % 3);
        float x[1] = {((float)b + 0.5f) / 4.0f};
        dlsched_state_t st = tst_state(x, 1);
        st.hint = opt;
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &st, 0, &d), DLSCHED_OK);
        if (d.flags & DLSCHED_DECISION_HINT) {
            n_hinted++;
            ck_assert_int_eq(d.action, opt);
            dlsched_stats_t s = sv_stats(ag);
            if (s.apprentice_left == 0) {
                switched = 1;
                at_switch = s;
            } else {
                ck_assert_uint_eq(s.apprentice_left, 100000 - (uint64_t)n_hinted);
            }
        } else {
            ck_abort_msg("decision %d: not the hint while apprenticeship lasts", i);
        }
        ck_assert_int_eq(dlsched_observe(ag, d.ticket, d.action == opt ? 1.0f : 0.0f, NULL,
                                         DLSCHED_OBS_TERMINAL),
                         DLSCHED_OK);
    }
    ck_assert_msg(switched, "apprenticeship still on after %d decisions", n_hinted);
    ck_assert_int_ge(n_hinted, 1000);
    ck_assert_int_lt(n_hinted, 100000);
    ck_assert_double_ge(at_switch.apprentice_agreement, 0.9);
    ck_assert_uint_eq(at_switch.hinted, (uint64_t)n_hinted);
    /* the agent's own choices from now on: the learned optimum, unflagged */
    for (int i = 0; i < 200; i++) {
        uint32_t b = tst_below(&rng, 4);
        int opt = (int)(b % 3);
        float x[1] = {((float)b + 0.5f) / 4.0f};
        dlsched_state_t st = tst_state(x, 1);
        st.hint = (opt + 1) % 3; /* a wrong hint is no longer followed */
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &st, 0, &d), DLSCHED_OK);
        ck_assert_int_eq(d.action, opt);
        ck_assert_uint_eq(d.flags, 0);
        ck_assert_int_eq(dlsched_observe(ag, d.ticket, 1.0f, NULL, DLSCHED_OBS_TERMINAL),
                         DLSCHED_OK);
    }
    dlsched_stats_t s = sv_stats(ag);
    ck_assert_uint_eq(s.hinted, (uint64_t)n_hinted);
    ck_assert_uint_eq(s.apprentice_left, 0);
    dlsched_agent_free(ag);
}
END_TEST

/* ---- 6. ticket timeouts ------------------------------------------------------- */

/* act, sleep past the timeout, act again: the second call expires the first
   ticket; with default_reward it was learned as a terminal transition. */
static void tt_run(const char *spec, int threaded, int has_default)
{
    dlsched_agent *ag = tst_agent(spec);
    float x0[1] = {0.25f}, x1[1] = {0.75f};
    dlsched_state_t s0 = tst_state(x0, 1), s1 = tst_state(x1, 1);
    dlsched_decision_t d1, d2;
    ck_assert_int_eq(dlsched_act(ag, &s0, 0, &d1), DLSCHED_OK);
    sv_sleep_ms(60); /* timeout 20 ms */
    dlsched_stats_t s = sv_stats(ag);
    ck_assert_uint_eq(s.tickets_pending, 1); /* nothing expires without a call */
    ck_assert_uint_eq(s.tickets_timed_out, 0);
    ck_assert_int_eq(dlsched_act(ag, &s1, 0, &d2), DLSCHED_OK);
    s = sv_stats(ag);
    ck_assert_uint_eq(s.tickets_timed_out, 1);
    ck_assert_uint_eq(s.tickets_expired, 1);
    ck_assert_uint_eq(s.tickets_pending, 1);
    ck_assert_int_eq(dlsched_observe(ag, d1.ticket, 5.0f, NULL, DLSCHED_OBS_TERMINAL),
                     DLSCHED_ETICKET);
    /* the fresh ticket is found before anything expires */
    ck_assert_int_eq(dlsched_observe(ag, d2.ticket, 0.0f, NULL, DLSCHED_OBS_TERMINAL),
                     DLSCHED_OK);
    s = sv_stats(ag);
    ck_assert_uint_eq(s.tickets_issued, 2);
    ck_assert_uint_eq(s.observed, 1);
    ck_assert_uint_eq(s.tickets_expired, 1);
    ck_assert_uint_eq(s.tickets_pending, 0);
    if (threaded) {
        sv_owed o = {0, has_default ? 2u : 1u, 0, 0, 0, 0};
        sv_wait_caught_up(ag, &o, 30000);
    } else {
        ck_assert_uint_eq(sv_stats(ag).train_steps, has_default ? 2u : 1u);
    }
    /* Q(s0, a1) = 0 + lr * (default_reward - 0) with lr = 0.1, computed as
       the Q-table does: float lr, double arithmetic, rounded to float */
    float q[2];
    ck_assert_int_eq(dlsched_q_values(ag, &s0, q, 2), DLSCHED_OK);
    float want = has_default ? (float)(0.0 + (double)0.1f * (-2.0 - 0.0)) : 0.0f;
    ck_assert_float_eq(q[d1.action], want);
    ck_assert_float_eq(q[1 - d1.action], 0.0f);
    dlsched_agent_free(ag);
}

START_TEST(test_ticket_timeout)
{
    tt_run("algo=qtable n_features=1 n_actions=2 bins=2 ticket_timeout_ms=20 default_reward=-2 "
           "seed=1",
           0, 1);
    tt_run("algo=qtable learner=thread n_features=1 n_actions=2 bins=2 ticket_timeout_ms=20 "
           "default_reward=-2 seed=1",
           1, 1);
    tt_run("algo=qtable n_features=1 n_actions=2 bins=2 ticket_timeout_ms=20 seed=1", 0, 0);
    tt_run("algo=qtable learner=thread n_features=1 n_actions=2 bins=2 ticket_timeout_ms=20 "
           "seed=1",
           1, 0);
}
END_TEST

/* observe runs the check too, and a backlog expires over several calls */
START_TEST(test_ticket_timeout_on_observe)
{
    dlsched_agent *ag = tst_agent("algo=qtable n_features=1 n_actions=2 bins=2 "
                                  "ticket_timeout_ms=20 seed=2");
    float x[1] = {0.25f};
    dlsched_state_t st = tst_state(x, 1);
    enum { OLD = 40 };
    uint64_t old[OLD];
    dlsched_decision_t d;
    for (int i = 0; i < OLD; i++) {
        ck_assert_int_eq(dlsched_act(ag, &st, 0, &d), DLSCHED_OK);
        old[i] = d.ticket;
    }
    /* (a slow machine may have timed some out already, during the acts) */
    uint64_t before = sv_stats(ag).tickets_timed_out;
    sv_sleep_ms(60);
    ck_assert_uint_eq(sv_stats(ag).tickets_timed_out, before); /* no timer thread */
    /* observing the newest one runs the check: the older ones go */
    int rc = dlsched_observe(ag, old[OLD - 1], 1.0f, NULL, DLSCHED_OBS_TERMINAL);
    ck_assert(rc == DLSCHED_OK || rc == DLSCHED_ETICKET);
    dlsched_stats_t s = sv_stats(ag);
    ck_assert_uint_ge(s.tickets_timed_out, before + 1);
    /* later calls take in the rest of the backlog */
    for (int i = 0; i < 100 && sv_stats(ag).tickets_timed_out < OLD - 1; i++) {
        ck_assert_int_eq(dlsched_act(ag, &st, 0, &d), DLSCHED_OK);
        rc = dlsched_observe(ag, d.ticket, 0.0f, NULL, DLSCHED_OBS_TERMINAL);
        ck_assert(rc == DLSCHED_OK || rc == DLSCHED_ETICKET);
    }
    s = sv_stats(ag);
    ck_assert_uint_ge(s.tickets_timed_out, OLD - 1);
    ck_assert_uint_eq(s.tickets_expired, s.tickets_timed_out);
    ck_assert_uint_eq(s.tickets_pending, 0);
    ck_assert_uint_eq(s.tickets_issued, s.observed + s.tickets_expired);
    for (int i = 0; i < OLD - 1; i++)
        ck_assert_int_eq(dlsched_observe(ag, old[i], 1.0f, NULL, DLSCHED_OBS_TERMINAL),
                         DLSCHED_ETICKET);
    ck_assert_uint_eq(s.train_steps, s.observed); /* expired ones dropped */
    dlsched_agent_free(ag);
}
END_TEST

/* ---- 7. model versions ---------------------------------------------------- */

typedef struct mv_reader {
    dlsched_agent *ag;
    const int *stop; /* read under mu */
    pthread_mutex_t *mu;
    uint64_t n, last, back, fails;
    char why[200];
} mv_reader;

static void *mv_reader_main(void *arg)
{
    mv_reader *w = arg;
    uint64_t rng = 5150;
    for (;;) {
        pthread_mutex_lock(w->mu);
        int stop = *w->stop;
        pthread_mutex_unlock(w->mu);
        if (stop)
            break;
        for (int k = 0; k < 16; k++) {
            float x[4];
            sv_random_x(x, 4, &rng);
            dlsched_state_t st = tst_state(x, 4);
            dlsched_decision_t d;
            if (dlsched_act(w->ag, &st, DLSCHED_ACT_GREEDY, &d) != DLSCHED_OK) {
                w->fails++;
                SV_NOTE(w, "act: %s", dlsched_last_error());
                continue;
            }
            if (d.model_version < w->last) {
                w->back++;
                SV_NOTE(w, "model_version went back from %llu to %llu",
                        (unsigned long long)w->last, (unsigned long long)d.model_version);
            }
            w->last = d.model_version;
            w->n++;
        }
    }
    return NULL;
}

START_TEST(test_model_version)
{
    dlsched_agent *ag = tst_agent(SV_DQN "learner=thread n_features=4 n_actions=3 hidden=32 "
                                         "batch=16 learning_starts=32 replay=10000 "
                                         "replay_ratio=8 publish_every=5 seed=17");
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    int stop = 0;
    mv_reader rd;
    memset(&rd, 0, sizeof rd);
    rd.ag = ag;
    rd.stop = &stop;
    rd.mu = &mu;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, mv_reader_main, &rd), 0);
    uint64_t rng = 17, last = 0;
    uint64_t end = sv_now_ms() + 60000;
    char why[200] = ""; /* asserted once the reader stopped */
    int i;
    for (i = 0; (i < 2000 || last == 0) && sv_now_ms() < end && !why[0]; i++) {
        float x[4];
        sv_random_x(x, 4, &rng);
        dlsched_state_t st = tst_state(x, 4);
        dlsched_decision_t d;
        if (dlsched_act(ag, &st, 0, &d) != DLSCHED_OK) {
            snprintf(why, sizeof why, "act: %s", dlsched_last_error());
            break;
        }
        if (d.model_version < last)
            snprintf(why, sizeof why, "decision %d: model_version %llu after %llu", i,
                     (unsigned long long)d.model_version, (unsigned long long)last);
        last = d.model_version;
        if (dlsched_observe(ag, d.ticket, x[d.action], NULL, DLSCHED_OBS_TERMINAL) != DLSCHED_OK)
            snprintf(why, sizeof why, "observe: %s", dlsched_last_error());
        if (i % 32 == 0) {
            dlsched_stats_t s;
            dlsched_stats(ag, &s, sizeof s);
            /* what decided was trained and counted before */
            if (d.model_version > s.train_steps || s.model_version != s.train_steps)
                snprintf(why, sizeof why,
                         "decision %d: model_version %llu, then stats train_steps %llu "
                         "model_version %llu",
                         i, (unsigned long long)d.model_version,
                         (unsigned long long)s.train_steps, (unsigned long long)s.model_version);
        }
    }
    pthread_mutex_lock(&mu);
    stop = 1;
    pthread_mutex_unlock(&mu);
    pthread_join(th, NULL);
    ck_assert_msg(why[0] == '\0', "%s", why);
    ck_assert_msg(last > 0, "no trained model reached acting in %d decisions", i);
    ck_assert_msg(rd.fails == 0 && rd.back == 0, "reader: %llu failed, %llu went back: %s",
                  (unsigned long long)rd.fails, (unsigned long long)rd.back, rd.why);
    ck_assert_uint_gt(rd.n, 0);
    /* idle: the newest model is published and decides */
    sv_owed o = {1, (uint64_t)i, 16, 32, 0, 8.0};
    dlsched_stats_t s = sv_wait_caught_up(ag, &o, 60000);
    ck_assert_uint_le(s.published_version, s.train_steps);
    ck_assert_uint_gt(s.published_version, 0);
    float x[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    dlsched_state_t st = tst_state(x, 4);
    dlsched_decision_t d;
    ck_assert_int_eq(dlsched_act(ag, &st, DLSCHED_ACT_GREEDY, &d), DLSCHED_OK);
    ck_assert_uint_eq(d.model_version, s.published_version);
    ck_assert_uint_ge(d.model_version, last);
    dlsched_agent_free(ag);

    /* qtable (thread): decisions carry the update count; inline: the same,
       and published_version is model_version */
    const char *specs[2] = {"algo=qtable learner=thread n_features=1 n_actions=2 bins=4 seed=1",
                            "algo=qtable n_features=1 n_actions=2 bins=4 seed=1"};
    for (int v = 0; v < 2; v++) {
        ag = tst_agent(specs[v]);
        last = 0;
        for (int k = 0; k < 200; k++) {
            float xk[1] = {(float)(k % 4) / 4.0f + 0.1f};
            dlsched_state_t sk = tst_state(xk, 1);
            ck_assert_int_eq(dlsched_act(ag, &sk, 0, &d), DLSCHED_OK);
            ck_assert_uint_ge(d.model_version, last);
            last = d.model_version;
            ck_assert_int_eq(dlsched_observe(ag, d.ticket, 1.0f, NULL, DLSCHED_OBS_TERMINAL),
                             DLSCHED_OK);
        }
        if (v == 1)
            ck_assert_uint_eq(last, 199);
        sv_owed oq = {0, 200, 0, 0, 0, 0};
        s = sv_wait_caught_up(ag, &oq, 30000);
        ck_assert_uint_eq(s.published_version, s.model_version);
        ck_assert_uint_eq(s.model_version, 200);
        float x1[1] = {0.3f};
        dlsched_state_t s1 = tst_state(x1, 1);
        ck_assert_int_eq(dlsched_act(ag, &s1, DLSCHED_ACT_GREEDY, &d), DLSCHED_OK);
        ck_assert_uint_eq(d.model_version, 200);
        dlsched_agent_free(ag);
    }
}
END_TEST

/* ---- 8. the background learner learns ----------------------------------------- */

#define CB_NC TST_CB_NC

START_TEST(test_thread_learner_bandit)
{
    enum { TRAIN = 5000, EVALS = 2000 };
    dlsched_agent *ag = tst_agent(SV_DQN "learner=thread n_features=4 n_actions=5 hidden=32,32 "
                                         "batch=32 replay=10000 learning_starts=200 "
                                         "train_every=1 lr=0.0005 target_update=100 "
                                         "explore=egreedy epsilon_start=1 epsilon_end=0.05 "
                                         "epsilon_decay_steps=3000 seed=5");
    uint64_t rng = 77;
    for (int i = 0; i < TRAIN; i++) {
        int c = (int)tst_below(&rng, CB_NC);
        float x[CB_NC];
        tst_cb_context(x, c, &rng);
        dlsched_state_t st = tst_state(x, CB_NC);
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &st, 0, &d), DLSCHED_OK);
        float rw = tst_cb_mean(c, d.action) + (float)(tst_unif(&rng) - 0.5);
        ck_assert_int_eq(dlsched_observe(ag, d.ticket, rw, NULL, DLSCHED_OBS_TERMINAL),
                         DLSCHED_OK);
    }
    /* the learner catches up: ratio batch * gradient_steps / train_every = 32 */
    sv_owed o = {1, TRAIN, 32, 200, 0, 32.0};
    dlsched_stats_t s = sv_wait_caught_up(ag, &o, 90000);
    ck_assert_uint_eq(s.transitions_stored, TRAIN);
    ck_assert_uint_eq(s.observed, TRAIN);
    int hits = 0;
    for (int i = 0; i < EVALS; i++) {
        int c = (int)tst_below(&rng, CB_NC);
        float x[CB_NC];
        tst_cb_context(x, c, &rng);
        dlsched_state_t st = tst_state(x, CB_NC);
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &st, DLSCHED_ACT_GREEDY, &d), DLSCHED_OK);
        hits += d.action == tst_cb_best(c);
    }
    ck_assert_msg(hits * 100 >= EVALS * 95, "best arm chosen %d of %d greedy decisions", hits,
                  EVALS);
    dlsched_agent_free(ag);
}
END_TEST

#define SM_NS 12
#define SM_NA 3
#define SM_GAMMA 0.9
#define SM_SEED 1347 /* as in check_dqn_learn.c: smallest optimal gap 0.54 */

START_TEST(test_thread_learner_mdp)
{
    static double p[SM_NS * SM_NA * SM_NS], r[SM_NS * SM_NA], qs[SM_NS * SM_NA];
    static double cdf[SM_NS * SM_NA * SM_NS];
    uint64_t rng = SM_SEED;
    tst_random_mdp(SM_NS, SM_NA, &rng, p, r, cdf);
    tst_value_iteration(SM_NS, SM_NA, p, r, NULL, SM_GAMMA, qs);

    /* smaller than check_dqn_learn.c's inline run (20000 transitions, 24500
       steps of 64) to stay quick under sanitizers: max |Q - Q*| comes out
       at 0.13 .. 0.22 over seeds and runs */
    dlsched_agent *ag = tst_agent(SV_DQN "learner=thread n_features=12 n_actions=3 gamma=0.9 "
                                         "hidden=32,32 batch=32 lr=0.001 target_update=200 "
                                         "replay=20000 learning_starts=1000 replay_ratio=24 "
                                         "seed=3");
    rng = 999;
    enum { N_TR = 14000, N_TRAIN = 1000 };
    for (int i = 0; i < N_TR; i++) {
        int s = (int)tst_below(&rng, SM_NS), a = (int)tst_below(&rng, SM_NA);
        int s2 = tst_mdp_next(cdf, SM_NS, SM_NA, s, a, tst_unif(&rng));
        float x[SM_NS], x2[SM_NS];
        memset(x, 0, sizeof x);
        memset(x2, 0, sizeof x2);
        x[s] = 1.0f;
        x2[s2] = 1.0f;
        dlsched_state_t st = tst_state(x, SM_NS), nx = tst_state(x2, SM_NS);
        int rc = dlsched_observe_transition(ag, &st, a, (float)r[s * SM_NA + a], &nx, 0);
        ck_assert_msg(rc == DLSCHED_OK, "observe_transition: %s", dlsched_last_error());
    }
    /* explicit training beside the learner: it takes in what is staged
       first, and publishes */
    ck_assert_int_eq(dlsched_train(ag, N_TRAIN), DLSCHED_OK);
    /* the learner's own budget: 24 * 14000 / 32 = 10500 steps */
    sv_owed o = {1, N_TR, 32, 1000, N_TRAIN, 24.0};
    dlsched_stats_t st = sv_wait_caught_up(ag, &o, 120000);
    ck_assert_uint_eq(st.transitions, N_TR);
    ck_assert_uint_eq(st.transitions_stored, N_TR);

    double err = 0;
    for (int s = 0; s < SM_NS; s++) {
        float x[SM_NS], q[SM_NA];
        memset(x, 0, sizeof x);
        x[s] = 1.0f;
        dlsched_state_t sx = tst_state(x, SM_NS);
        ck_assert_int_eq(dlsched_q_values(ag, &sx, q, SM_NA), DLSCHED_OK);
        for (int a = 0; a < SM_NA; a++)
            err = fmax(err, fabs((double)q[a] - qs[s * SM_NA + a]));
        int opt = tst_argmax_d(qs + s * SM_NA, SM_NA);
        ck_assert_msg(tst_argmax_f(q, SM_NA) == opt, "state %d: argmax Q is %d, optimal %d", s,
                      tst_argmax_f(q, SM_NA), opt);
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &sx, DLSCHED_ACT_GREEDY, &d), DLSCHED_OK);
        ck_assert_int_eq(d.action, opt);
    }
    ck_assert_msg(err < 0.5, "max |Q - Q*| = %g", err);
    dlsched_agent_free(ag);
}
END_TEST

/* ---- 9. learner=inline stays deterministic ----------------------------------- */

/* the same single-threaded act/observe/train sequence into two agents;
   returns how many decisions differed */
static int id_drive(dlsched_agent *a, dlsched_agent *b, uint32_t nf, uint32_t na, int n)
{
    uint64_t rng = 2024;
    int differ = 0;
    for (int i = 0; i < n; i++) {
        float x[4], x2[4];
        sv_random_x(x, nf, &rng);
        sv_random_x(x2, nf, &rng);
        dlsched_state_t st = tst_state(x, nf), nx = tst_state(x2, nf);
        dlsched_decision_t da, db;
        ck_assert_int_eq(dlsched_act(a, &st, 0, &da), DLSCHED_OK);
        ck_assert_int_eq(dlsched_act(b, &st, 0, &db), DLSCHED_OK);
        differ += da.action != db.action || da.ticket != db.ticket ||
                  da.model_version != db.model_version ||
                  memcmp(&da.value, &db.value, sizeof da.value) != 0;
        float rw = x[da.action % nf] + (float)(tst_unif(&rng) - 0.5);
        int terminal = tst_below(&rng, 5) == 0;
        ck_assert_int_eq(dlsched_observe(a, da.ticket, rw, terminal ? NULL : &nx,
                                         terminal ? DLSCHED_OBS_TERMINAL : 0),
                         DLSCHED_OK);
        ck_assert_int_eq(dlsched_observe(b, db.ticket, rw, terminal ? NULL : &nx,
                                         terminal ? DLSCHED_OBS_TERMINAL : 0),
                         DLSCHED_OK);
        if (i % 100 == 99) {
            ck_assert_int_eq(dlsched_train(a, 20), DLSCHED_OK);
            ck_assert_int_eq(dlsched_train(b, 20), DLSCHED_OK);
        }
        (void)na;
    }
    return differ;
}

static void id_run(const char *spec_a, const char *spec_b, uint32_t nf, uint32_t na)
{
    dlsched_agent *a = tst_agent(spec_a), *b = tst_agent(spec_b);
    ck_assert_int_eq(id_drive(a, b, nf, na, 800), 0);
    uint64_t rng = 4242;
    for (int k = 0; k < 8; k++) {
        float x[4], qa[4], qb[4];
        sv_random_x(x, nf, &rng);
        dlsched_state_t st = tst_state(x, nf);
        ck_assert_int_eq(dlsched_q_values(a, &st, qa, na), DLSCHED_OK);
        ck_assert_int_eq(dlsched_q_values(b, &st, qb, na), DLSCHED_OK);
        ck_assert_msg(memcmp(qa, qb, na * sizeof *qa) == 0, "probe %d: Q-values differ", k);
    }
    dlsched_stats_t sa = sv_stats(a), sb = sv_stats(b);
    ck_assert_uint_eq(sa.train_steps, sb.train_steps);
    ck_assert_uint_gt(sa.train_steps, 0);
    ck_assert_uint_eq(sa.explored, sb.explored);
    ck_assert_uint_eq(sa.staged, 0);
    ck_assert_uint_eq(sa.published_version, sa.model_version);
    ck_assert_msg(sa.last_loss == sb.last_loss, "last_loss %.17g vs %.17g", sa.last_loss,
                  sb.last_loss);
    dlsched_agent_free(a);
    dlsched_agent_free(b);
}

START_TEST(test_inline_deterministic)
{
    /* learner=inline is the default: spelled out on one agent only */
    id_run(SV_DQN "learner=inline n_features=4 n_actions=3 hidden=16,16 batch=16 replay=2000 "
                  "learning_starts=64 train_every=2 target_update=50 seed=42",
           SV_DQN "n_features=4 n_actions=3 hidden=16,16 batch=16 replay=2000 "
                  "learning_starts=64 train_every=2 target_update=50 seed=42",
           4, 3);
    id_run("algo=qtable learner=inline n_features=2 n_actions=3 bins=4 replay=500 seed=9",
           "algo=qtable n_features=2 n_actions=3 bins=4 replay=500 seed=9", 2, 3);
}
END_TEST

/* ---- limits: gauges read while the learner works ------------------------------ */

typedef struct gg_feeder {
    dlsched_agent *ag;
    pthread_mutex_t *mu;
    const int *stop; /* read under mu */
    uint64_t rng, n, fails;
    char why[200];
} gg_feeder;

static void *gg_feeder_main(void *arg)
{
    gg_feeder *w = arg;
    for (;;) {
        if (w->n % 256 == 0) {
            pthread_mutex_lock(w->mu);
            int stop = *w->stop;
            pthread_mutex_unlock(w->mu);
            if (stop)
                break;
        }
        float x[4], x2[4];
        sv_random_x(x, 4, &w->rng);
        sv_random_x(x2, 4, &w->rng);
        dlsched_state_t st = tst_state(x, 4), nx = tst_state(x2, 4);
        if (dlsched_observe_transition(w->ag, &st, (int32_t)tst_below(&w->rng, 3), 1.0f, &nx,
                                       0) != DLSCHED_OK) {
            w->fails++;
            SV_NOTE(w, "observe_transition: %s", dlsched_last_error());
        }
        w->n++;
    }
    return NULL;
}

/* Every snapshot is sane while transitions stream in and the learner
   drains, trains and publishes: staged never exceeds what was fed (a
   transient wrap below zero reads as ~2^64), and the published model is
   never newer than the training steps of the same snapshot. A stress of
   fixed length (GG_MS per variant): the faults looked for are races. */
#define GG_MS 400

START_TEST(test_limit_stats_gauges_in_flight)
{
    enum { FEEDERS = 2 };
    const char *specs[2] = {
        SV_DQN "learner=thread n_features=4 n_actions=3 hidden=8 batch=4 learning_starts=0 "
               "replay=1000 replay_ratio=1000 publish_every=1 seed=61",
        "algo=qtable learner=thread n_features=4 n_actions=3 bins=2 seed=62"};
    for (int v = 0; v < 2; v++) {
        dlsched_agent *ag = tst_agent(specs[v]);
        pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
        int stop = 0;
        gg_feeder fd[FEEDERS];
        pthread_t th[FEEDERS];
        memset(fd, 0, sizeof fd);
        for (int i = 0; i < FEEDERS; i++) {
            fd[i].ag = ag;
            fd[i].mu = &mu;
            fd[i].stop = &stop;
            fd[i].rng = 600 + (uint64_t)(10 * v + i);
            ck_assert_int_eq(pthread_create(&th[i], NULL, gg_feeder_main, &fd[i]), 0);
        }
        uint64_t samples = 0, staged_bad = 0, pv_bad = 0, worst_staged = 0, worst_pv = 0,
                 worst_ts = 0;
        uint64_t end = sv_now_ms() + GG_MS;
        while (sv_now_ms() < end) {
            dlsched_stats_t s;
            ck_assert_int_eq(dlsched_stats(ag, &s, sizeof s), DLSCHED_OK);
            samples++;
            if (s.staged > s.transitions + (1u << 20)) {
                staged_bad++;
                worst_staged = s.staged;
            }
            if (s.published_version > s.train_steps) {
                pv_bad++;
                worst_pv = s.published_version;
                worst_ts = s.train_steps;
            }
        }
        pthread_mutex_lock(&mu);
        stop = 1;
        pthread_mutex_unlock(&mu);
        for (int i = 0; i < FEEDERS; i++)
            pthread_join(th[i], NULL);
        uint64_t fed = 0;
        for (int i = 0; i < FEEDERS; i++) {
            ck_assert_msg(fd[i].fails == 0, "feeder %d: %s", i, fd[i].why);
            fed += fd[i].n;
        }
        /* and it all arrives */
        dlsched_stats_t s = sv_wait_unstaged(ag, 60000);
        ck_assert_uint_eq(s.transitions, fed);
        if (v == 1) {
            sv_owed o = {0, fed, 0, 0, 0, 0};
            sv_wait_caught_up(ag, &o, 60000);
        }
        /* stop the learner before a failure ends the test process */
        dlsched_agent_free(ag);
        ck_assert_msg(staged_bad == 0 && pv_bad == 0,
                      "%s, %llu snapshots: %llu had staged far above the transitions fed "
                      "(e.g. %llu); %llu had published_version > train_steps (e.g. %llu > "
                      "%llu)",
                      v ? "qtable" : "dqn", (unsigned long long)samples,
                      (unsigned long long)staged_bad, (unsigned long long)worst_staged,
                      (unsigned long long)pv_bad, (unsigned long long)worst_pv,
                      (unsigned long long)worst_ts);
        pthread_mutex_destroy(&mu);
    }
}
END_TEST

/* The model acting reads is the one stats.published_version names, also
   when the learner publishes while readers hold the snapshots (an act pins
   one for its forward pass). Readers act all along; once the learner has
   spent its budget and gone idle, a greedy decision must come from the
   published model. */
#define PR_READERS 6
#define PR_ROUNDS 10

typedef struct pr_reader {
    dlsched_agent *ag;
    pthread_mutex_t *mu;
    const int *stop; /* read under mu */
    uint64_t rng, n, fails;
    char why[200];
} pr_reader;

static void *pr_reader_main(void *arg)
{
    pr_reader *w = arg;
    for (;;) {
        if (w->n % 64 == 0) {
            pthread_mutex_lock(w->mu);
            int stop = *w->stop;
            pthread_mutex_unlock(w->mu);
            if (stop)
                break;
        }
        float x[8];
        sv_random_x(x, 8, &w->rng);
        dlsched_state_t st = tst_state(x, 8);
        dlsched_decision_t d;
        if (dlsched_act(w->ag, &st, DLSCHED_ACT_GREEDY, &d) != DLSCHED_OK) {
            w->fails++;
            SV_NOTE(w, "act: %s", dlsched_last_error());
        }
        w->n++;
    }
    return NULL;
}

START_TEST(test_limit_publish_reaches_acting)
{
    int stale = 0;
    char first[200] = "";
    for (int round = 0; round < PR_ROUNDS; round++) {
        char spec[512];
        snprintf(spec, sizeof spec,
                 SV_DQN "learner=thread n_features=8 n_actions=3 hidden=256 batch=1 "
                        "learning_starts=0 replay=1000 replay_ratio=1 publish_every=1 seed=%d",
                 round + 1);
        dlsched_agent *ag = tst_agent(spec);
        pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
        int stop = 0;
        pr_reader rd[PR_READERS];
        pthread_t th[PR_READERS];
        memset(rd, 0, sizeof rd);
        for (int i = 0; i < PR_READERS; i++) {
            rd[i].ag = ag;
            rd[i].mu = &mu;
            rd[i].stop = &stop;
            rd[i].rng = 700 + (uint64_t)(100 * round + i);
            ck_assert_int_eq(pthread_create(&th[i], NULL, pr_reader_main, &rd[i]), 0);
        }
        uint64_t rng = 800 + (uint64_t)round;
        sv_feed(ag, 8, 3, 300, &rng);
        /* ratio 1, batch 1: 300 steps, each published */
        sv_owed o = {1, 300, 1, 0, 0, 1.0};
        sv_wait_caught_up(ag, &o, 60000);
        sv_sleep_ms(10);
        pthread_mutex_lock(&mu);
        stop = 1;
        pthread_mutex_unlock(&mu);
        for (int i = 0; i < PR_READERS; i++)
            pthread_join(th[i], NULL);
        for (int i = 0; i < PR_READERS; i++)
            ck_assert_msg(rd[i].fails == 0, "reader %d: %s", i, rd[i].why);
        sv_sleep_ms(5); /* an idle learner would publish what it owes now */
        dlsched_stats_t s = sv_stats(ag);
        float x[8] = {0};
        dlsched_state_t st = tst_state(x, 8);
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &st, DLSCHED_ACT_GREEDY, &d), DLSCHED_OK);
        if (d.model_version != s.published_version) {
            if (stale++ == 0)
                snprintf(first, sizeof first,
                         "round %d: train_steps %llu, published_version %llu, but decisions "
                         "come from model_version %llu",
                         round, (unsigned long long)s.train_steps,
                         (unsigned long long)s.published_version,
                         (unsigned long long)d.model_version);
        }
        dlsched_agent_free(ag);
        pthread_mutex_destroy(&mu);
    }
    ck_assert_msg(stale == 0, "%d of %d rounds acted on a stale model; %s", stale, PR_ROUNDS,
                  first);
}
END_TEST

/* ---- limits: configuration of the serving keys -------------------------------- */

static void cf_bad(const char *key, const char *value)
{
    dlsched_config *cfg = NULL;
    ck_assert_int_eq(dlsched_config_new(&cfg), DLSCHED_OK);
    char before[64], after[64];
    ck_assert_int_eq(dlsched_config_get(cfg, key, before, sizeof before), DLSCHED_OK);
    ck_assert_msg(dlsched_config_set(cfg, key, value) == DLSCHED_ECONFIG, "%s=%s accepted", key,
                  value);
    tst_assert_error_has(key);
    ck_assert_int_eq(dlsched_config_get(cfg, key, after, sizeof after), DLSCHED_OK);
    ck_assert_str_eq(before, after); /* unchanged */
    dlsched_config_free(cfg);
}

static void cf_good(const char *key, const char *value, const char *want)
{
    dlsched_config *cfg = NULL;
    ck_assert_int_eq(dlsched_config_new(&cfg), DLSCHED_OK);
    int rc = dlsched_config_set(cfg, key, value);
    ck_assert_msg(rc == DLSCHED_OK, "%s=%s: %s", key, value, dlsched_last_error());
    char buf[64];
    ck_assert_int_eq(dlsched_config_get(cfg, key, buf, sizeof buf), DLSCHED_OK);
    ck_assert_str_eq(buf, want);
    dlsched_config_free(cfg);
}

START_TEST(test_limit_serving_keys)
{
    cf_bad("learner", "bogus");
    cf_bad("learner", "");
    cf_bad("publish_every", "0");
    cf_bad("publish_every", "-3");
    cf_bad("replay_ratio", "-1");
    cf_bad("replay_ratio", "nan");
    cf_bad("apprentice_agreement", "2");
    cf_bad("apprentice_agreement", "-0.5");
    cf_bad("ticket_timeout_ms", "-5");
    cf_bad("ticket_timeout_ms", "1.5");
    cf_bad("apprentice", "-1");
    cf_good("learner", "thread", "thread");
    cf_good("learner", "inline", "inline");
    cf_good("publish_every", "1", "1");
    cf_good("replay_ratio", "0", "0");
    cf_good("apprentice_agreement", "1", "1");
    cf_good("apprentice_agreement", "0", "0");
    cf_good("ticket_timeout_ms", "0", "0");
    /* defaults */
    cf_good("learner", NULL, "inline");

    /* n-step returns need observes in trajectory order: not with learner=thread */
    ck_assert_int_eq(tst_agent_rc(SV_DQN "learner=thread nstep=3 n_features=2 n_actions=2 "
                                         "hidden=8"),
                     DLSCHED_ECONFIG);
    tst_assert_error_has("nstep");
    /* fine inline, and nstep=1 with the thread */
    ck_assert_int_eq(tst_agent_rc(SV_DQN "learner=inline nstep=3 n_features=2 n_actions=2 "
                                         "hidden=8"),
                     DLSCHED_OK);
    ck_assert_int_eq(tst_agent_rc(SV_DQN "learner=thread nstep=1 n_features=2 n_actions=2 "
                                         "hidden=8"),
                     DLSCHED_OK);
    /* thread-mode qtable without replay: dlsched_train has no buffer */
    dlsched_agent *ag = tst_agent("algo=qtable learner=thread n_features=1 n_actions=2");
    ck_assert_int_eq(dlsched_train(ag, 1), DLSCHED_ECONFIG);
    tst_assert_error_has("replay");
    dlsched_agent_free(ag);
}
END_TEST

Suite *suite_serving(void)
{
    Suite *s = suite_create("serving");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_handoff_dqn_thread);
    tcase_add_test(tc, test_handoff_qtable_thread);
    tcase_add_test(tc, test_replay_ratio_cap);
    tcase_add_test(tc, test_free_with_learner_busy);
    tcase_add_test(tc, test_apprentice_qtable);
    tcase_add_test(tc, test_apprentice_dqn);
    tcase_add_test(tc, test_apprentice_early_exit);
    tcase_add_test(tc, test_ticket_timeout);
    tcase_add_test(tc, test_ticket_timeout_on_observe);
    tcase_add_test(tc, test_model_version);
    tcase_add_test(tc, test_thread_learner_bandit);
    tcase_add_test(tc, test_thread_learner_mdp);
    tcase_add_test(tc, test_inline_deterministic);
    suite_add_tcase(s, tc);

    TCase *lim = tcase_create("limits");
    tcase_set_timeout(lim, 120);
    tcase_add_test(lim, test_handoff_capacity_expiry);
    tcase_add_test(lim, test_limit_serving_keys);
    tcase_add_test(lim, test_limit_stats_gauges_in_flight);
    tcase_add_test(lim, test_limit_publish_reaches_acting);
    suite_add_tcase(s, lim);
    return s;
}
