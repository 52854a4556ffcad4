/*
 * server.c - embedding libdlsched in a multi-threaded server
 *
 * A tutorial. Three replicas serve one request stream; replica 0 is four
 * times faster than replica 2. Today the server routes by
 * join-shortest-queue (JSQ), which ignores speed. We let an agent take over:
 *
 *   request threads   build the state (queue lengths), pass JSQ's choice as
 *                     the hint, call dlsched_act() and dispatch the request
 *   completion thread  a "worker" finishing requests after a random service
 *                     time; it reports -(latency) with dlsched_observe()
 *   learner=thread     training runs on the library's own thread; act never
 *                     waits for it (it reads the last published weights)
 *   apprentice=N       for its first N hinted decisions the agent returns
 *                     the hint, so the server starts with exactly its old
 *                     behaviour while the network learns from the outcomes
 *
 * Runs about 3 seconds of wall-clock time; the output varies from run to
 * run (threads, timers). Build:
 *   cc -std=c11 -O2 -Iinclude examples/server.c lib/libdlsched.a \
 *      $(pkg-config --libs openblas) -lm -lpthread
 */
#define _POSIX_C_SOURCE 200809L
#include <dlsched.h>

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define N_REPLICAS 3
#define N_REQUEST_THREADS 2
#define QCAP 1024          /* requests a replica may hold (else masked out) */
#define MEAN_GAP_US 800.0  /* per request thread: ~2500 requests/s in all */
#define RUN_MS 3000

static const double service_us[N_REPLICAS] = {250, 500, 1000}; /* mean */

/* one dispatched request: kept by its replica until it completes */
typedef struct job {
    uint64_t ticket, arrive_ns, done_ns;
    int heuristic; /* decided by the apprentice (the hint) */
} job;

/* The host's own state: FIFO replicas, one lock. The library has its own
   locks: call it outside the host's, so that a slow call never holds them. */
static struct {
    pthread_mutex_t mu;
    job q[N_REPLICAS][QCAP];
    unsigned head[N_REPLICAS], len[N_REPLICAS];
    uint64_t busy_until[N_REPLICAS];
    double lat_sum[2];  /* [heuristic, learned] latency, ms */
    uint64_t lat_n[2];
} srv = {.mu = PTHREAD_MUTEX_INITIALIZER};

static dlsched_agent *agent;
static atomic_int stopping, failed; /* workers report errors, main exits */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_us(double us)
{
    struct timespec ts = {(time_t)(us / 1e6), (long)((us - (time_t)(us / 1e6) * 1e6) * 1e3)};
    nanosleep(&ts, NULL);
}

/* a worker thread's failure: print it (last_error is per thread), flag it */
static int check(int rc, const char *what)
{
    if (rc != DLSCHED_OK) {
        fprintf(stderr, "server: %s: %s: %s\n", what, dlsched_strerror(rc), dlsched_last_error());
        atomic_store(&failed, 1);
    }
    return rc;
}

static double uniform(uint64_t *s) /* in (0, 1), xorshift64* */
{
    *s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
    return ((double)((*s * 0x2545F4914F6CDD1DULL) >> 11) + 0.5) * 0x1.0p-53;
}

static double exp_rand(uint64_t *s) { return -log(uniform(s)); } /* mean 1 */

/* ---- request path: state, hint, act, dispatch --------------------------- */

static void *request_thread(void *arg)
{
    uint64_t rng = 0x9E3779B97F4A7C15ULL * (uintptr_t)arg + 1;
    while (!atomic_load(&stopping) && !atomic_load(&failed)) {
        sleep_us(MEAN_GAP_US * exp_rand(&rng));
        float x[N_REPLICAS];
        uint8_t allowed[N_REPLICAS];
        int jsq = -1, ties = 0;
        pthread_mutex_lock(&srv.mu);
        for (int r = 0; r < N_REPLICAS; r++) {
            x[r] = (float)srv.len[r] / 8.0f; /* features on a scale of ~1 */
            allowed[r] = srv.len[r] < QCAP;
            /* the existing heuristic: join the shortest queue, ties at random */
            if (allowed[r] && (jsq < 0 || srv.len[r] < srv.len[jsq]))
                jsq = r, ties = 1;
            else if (allowed[r] && srv.len[r] == srv.len[jsq] && uniform(&rng) * ++ties < 1)
                jsq = r;
        }
        pthread_mutex_unlock(&srv.mu);
        if (jsq < 0)
            continue; /* every queue full: shed the request */

        dlsched_state_t s = {x, N_REPLICAS, N_REPLICAS, allowed, jsq, 0};
        dlsched_decision_t d;
        if (check(dlsched_act(agent, &s, 0, &d), "dlsched_act") != DLSCHED_OK)
            break;

        /* dispatch: the replica serves FIFO; its completion time is known */
        uint64_t t = now_ns(), svc = (uint64_t)(service_us[d.action] * 1e3 * exp_rand(&rng));
        pthread_mutex_lock(&srv.mu);
        int r = d.action;
        if (srv.len[r] == QCAP) { /* filled up since we looked: shed it */
            pthread_mutex_unlock(&srv.mu);
            check(dlsched_observe(agent, d.ticket, -100.0f, NULL, DLSCHED_OBS_TERMINAL),
                  "dlsched_observe"); /* on failure the loop ends: `failed` is set */
            continue;
        }
        uint64_t start = srv.busy_until[r] > t ? srv.busy_until[r] : t;
        srv.busy_until[r] = start + svc;
        job j = {d.ticket, t, start + svc, (d.flags & DLSCHED_DECISION_HINT) != 0};
        srv.q[r][(srv.head[r] + srv.len[r]++) % QCAP] = j;
        pthread_mutex_unlock(&srv.mu);
    }
    return NULL;
}

/* ---- completion path: a worker finishes requests, we observe them ------- */

static void *completion_thread(void *arg)
{
    (void)arg;
    for (;;) {
        int left = 0;
        for (int r = 0; r < N_REPLICAS; r++) {
            pthread_mutex_lock(&srv.mu);
            uint64_t t = now_ns();
            job j = {0, 0, 0, 0};
            if (srv.len[r] > 0 && srv.q[r][srv.head[r]].done_ns <= t) {
                j = srv.q[r][srv.head[r]];
                srv.head[r] = (srv.head[r] + 1) % QCAP;
                srv.len[r]--;
                double ms = (double)(j.done_ns - j.arrive_ns) / 1e6;
                srv.lat_sum[!j.heuristic] += ms;
                srv.lat_n[!j.heuristic]++;
            }
            left += (int)srv.len[r];
            pthread_mutex_unlock(&srv.mu);
            if (j.ticket == 0)
                continue;
            /* the "callback": one request is one episode, reward -latency */
            float reward = -(float)(j.done_ns - j.arrive_ns) / 1e6f;
            int rc = dlsched_observe(agent, j.ticket, reward, NULL, DLSCHED_OBS_TERMINAL);
            if (rc == DLSCHED_ETICKET)
                continue; /* expired (ticket_timeout_ms): nothing to learn */
            if (check(rc, "dlsched_observe") != DLSCHED_OK)
                return NULL;
        }
        if (atomic_load(&stopping) == 2 && left == 0)
            return NULL; /* request threads gone, every request completed */
        sleep_us(50);
    }
}

int main(void)
{
    dlsched_config *cfg;
    int rc = dlsched_config_new(&cfg);
    if (rc == DLSCHED_OK)
        rc = dlsched_config_parse(cfg, "algo=dqn n_features=3 n_actions=3 hidden=32,32 "
                                       "batch=32 learning_starts=256 lr=0.003 seed=42 "
                                       "learner=thread apprentice=2500 "
                                       "epsilon_start=0.1 epsilon_end=0.02 "
                                       "epsilon_decay_steps=5000 ticket_timeout_ms=1000");
    if (rc == DLSCHED_OK)
        rc = dlsched_agent_new(cfg, &agent); /* starts the learner thread */
    dlsched_config_free(cfg);
    if (rc != DLSCHED_OK) {
        fprintf(stderr, "server: %s: %s\n", dlsched_strerror(rc), dlsched_last_error());
        return 1;
    }

    pthread_t req[N_REQUEST_THREADS], done;
    int n_req = 0, have_done = pthread_create(&done, NULL, completion_thread, NULL) == 0;
    while (have_done && n_req < N_REQUEST_THREADS &&
           pthread_create(&req[n_req], NULL, request_thread, (void *)(uintptr_t)(n_req + 1)) == 0)
        n_req++;
    if (n_req < N_REQUEST_THREADS) {
        fprintf(stderr, "server: cannot start the threads\n");
        atomic_store(&failed, 1);
    }
    for (int ms = 0; ms < RUN_MS && !atomic_load(&failed); ms += 10)
        sleep_us(10000);

    /* Shut down in order: request threads, then completions, then the
       agent (dlsched_agent_free stops and joins the learner). */
    atomic_store(&stopping, 1);
    for (int i = 0; i < n_req; i++)
        pthread_join(req[i], NULL);
    atomic_store(&stopping, 2);
    if (have_done)
        pthread_join(done, NULL);

    dlsched_stats_t st;
    if (check(dlsched_stats(agent, &st, sizeof st), "dlsched_stats") == DLSCHED_OK) {
        printf("decisions %" PRIu64 " (hinted %" PRIu64 ", explored %" PRIu64 "), observed %" PRIu64
               ", expired %" PRIu64 " (timed out %" PRIu64 "), pending %" PRIu64 "\n",
               st.decisions, st.hinted, st.explored, st.observed, st.tickets_expired,
               st.tickets_timed_out, st.tickets_pending);
        printf("train_steps %" PRIu64 ", published_version %" PRIu64 ", staged %" PRIu64
               ", last_loss %.3f\n",
               st.train_steps, st.published_version, st.staged, st.last_loss);
        printf("apprenticeship %s (%" PRIu64 " hinted decisions left, greedy agreed with JSQ "
               "on %.0f%% of them)\n",
               st.apprentice_left ? "still on" : "over", st.apprentice_left,
               100 * st.apprentice_agreement);
    }
    for (int p = 0; p < 2; p++)
        printf("%-30s %6" PRIu64 " requests, mean latency %.3f ms\n",
               p ? "learned (after apprenticeship)" : "heuristic (JSQ, apprentice)",
               srv.lat_n[p], srv.lat_n[p] ? srv.lat_sum[p] / (double)srv.lat_n[p] : 0.0);
    dlsched_agent_free(agent); /* before returning or calling exit() */
    return atomic_load(&failed) ? 1 : 0;
}
