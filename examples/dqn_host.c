/*
 * dqn_host.c - learn a dynamic batch size for an inference server (algo=dqn)
 *
 * A tutorial. Before each run, a simulated server asks the agent for a
 * batch size b in {1, 2, 4, 8, 16, 32}; the batch takes the min(b, queue)
 * oldest requests, padded to b, and runs 2 + b^0.6 ms: 0.33 requests/ms at
 * b=1, 3.2/ms at b=32, but its requests wait longer. Poisson arrivals
 * swing between 0.15 and 2.55 per ms; the queue holds QMAX and drops the
 * rest; the SLO is 15 ms from arrival.
 *
 *   state   queue length, arrival-rate estimate, recent p99 latency / SLO,
 *           oldest queued request's age / SLO (raw: normalize=1 lets the
 *           library standardise them)
 *   action  index into the six batch sizes
 *   reward  (served - 4 x misses) / run time: requests served per ms minus
 *           a penalty per SLO deadline passed during the run, and per drop
 *
 * Online learning: dlsched_act() before each batch, dlsched_observe() with
 * its reward and the state at the next decision (flags 0: the stream never
 * ends). Then the greedy policy (DLSCHED_ACT_GREEDY) meets every fixed
 * size and a threshold heuristic on the same arrivals. All seeded.
 */
#include <dlsched.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_ACTIONS 6
#define N_FEATURES 4
#define QMAX 256 /* queue capacity */
#define SLO_MS 15.0
#define PENALTY 4.0 /* cost of one SLO miss or drop */
#define RECENT 100  /* completions behind the p99 feature */
#define TRAIN_DECISIONS 40000
#define EVAL_MS 60000.0 /* simulated time per evaluated policy */
#define LAT_CAP 200000  /* latencies kept per evaluation (~81000 arrive) */

static const int batch_of[N_ACTIONS] = {1, 2, 4, 8, 16, 32};

/* Every library call returns a status; on failure, say why and stop. */
static void check(int rc, const char *what)
{
    if (rc != DLSCHED_OK) {
        fprintf(stderr, "dqn_host: %s failed: %s: %s\n", what, dlsched_strerror(rc),
                dlsched_last_error());
        exit(1);
    }
}

/* splitmix64: a tiny seeded generator for the arrivals */
static double uniform(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return (double)((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
}

/* run time of a batch of size b, whatever its fill; arrivals per ms */
static double service_ms(int b) { return 2.0 + pow(b, 0.6); }
static double arrival_rate(double t) { return 0.15 + 1.2 * (1.0 + sin(t * 6.283185307 / 4000.0)); }

typedef struct server {
    double now, next_arrival;
    double queue[QMAX]; /* arrival times, FIFO ring */
    int head, len;
    double rate_est, mark; /* arrival-rate estimate, time of its last update */
    long arrived_since;
    double recent[RECENT]; /* latencies of the last completions (ring) */
    uint64_t rng;
    long arrived, served, late, dropped, batches, batch_sum;
    double *lat; /* every latency, for the final p99 (NULL: not kept) */
    long n_lat;
} server;

static void server_init(server *s, uint64_t seed, double *lat)
{
    *s = (server){.rng = seed, .rate_est = 1.0, .lat = lat};
    s->next_arrival = -log(1.0 - uniform(&s->rng)) / arrival_rate(0.0);
}

/* admit every request that arrives up to time t */
static void arrivals_until(server *s, double t)
{
    while (s->next_arrival <= t) {
        s->arrived++;
        s->arrived_since++;
        if (s->len < QMAX)
            s->queue[(s->head + s->len++) % QMAX] = s->next_arrival;
        else
            s->dropped++;
        s->next_arrival += -log(1.0 - uniform(&s->rng)) / arrival_rate(s->next_arrival);
    }
}

/* idle until a request is queued, then update the arrival-rate estimate
   (exponential average of arrivals per ms between decisions) */
static void wait_for_work(server *s)
{
    if (s->len == 0) {
        s->now = s->next_arrival;
        arrivals_until(s, s->now);
    }
    if (s->now > s->mark)
        s->rate_est = 0.8 * s->rate_est + 0.2 * s->arrived_since / (s->now - s->mark);
    s->arrived_since = 0;
    s->mark = s->now;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* nearest-rank 99th percentile of n >= 1 values (sorts v in place) */
static double p99(double *v, long n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[(long)ceil(0.99 * n) - 1];
}

static void features(const server *s, float *f)
{
    double tmp[RECENT];
    long n = s->served < RECENT ? s->served : RECENT;
    memcpy(tmp, s->recent, sizeof tmp);
    f[0] = (float)s->len;
    f[1] = (float)s->rate_est;
    f[2] = n ? (float)(p99(tmp, n) / SLO_MS) : 0.0f;
    f[3] = (float)((s->now - s->queue[s->head]) / SLO_MS);
}

/* run one batch of size b; returns its reward */
static double run_batch(server *s, int b)
{
    int n = b < s->len ? b : s->len;
    double done = s->now + service_ms(b);
    long drops = s->dropped, missed = 0;
    /* deadlines that pass during this batch are penalised now, so misses
       can't be dodged by leaving late requests queued */
    for (int i = 0; i < s->len; i++) {
        double deadline = s->queue[(s->head + i) % QMAX] + SLO_MS;
        missed += deadline > s->now && deadline <= done;
    }
    for (int i = 0; i < n; i++) {
        double l = done - s->queue[s->head];
        s->head = (s->head + 1) % QMAX;
        s->len--;
        s->late += l > SLO_MS;
        s->recent[s->served++ % RECENT] = l;
        if (s->lat && s->n_lat < LAT_CAP)
            s->lat[s->n_lat++] = l;
    }
    arrivals_until(s, done);
    s->now = done;
    s->batches++;
    s->batch_sum += b;
    return (n - PENALTY * (double)(missed + s->dropped - drops)) / service_ms(b);
}

enum { FIXED, THRESHOLD, LEARNED };

static int choose(int policy, int fixed, const server *s, dlsched_agent *ag, const float *f)
{
    if (policy == FIXED)
        return fixed;
    if (policy == THRESHOLD) { /* the smallest size that takes the whole queue */
        int a = 0;
        while (a < N_ACTIONS - 1 && batch_of[a] < s->len)
            a++;
        return a;
    }
    dlsched_state_t st = {f, N_FEATURES, 0, NULL, -1, 0};
    dlsched_decision_t d;
    check(dlsched_act(ag, &st, DLSCHED_ACT_GREEDY, &d), "dlsched_act");
    return d.action;
}

static void evaluate(const char *name, int policy, int fixed, dlsched_agent *ag, double *lat)
{
    server s;
    float f[N_FEATURES];
    server_init(&s, 2024, lat); /* the same arrivals for every policy */
    while (s.now < EVAL_MS) {
        wait_for_work(&s);
        features(&s, f);
        run_batch(&s, batch_of[choose(policy, fixed, &s, ag, f)]);
    }
    double secs = s.now / 1000.0;
    printf("%-22s %10.1f %9.0f %7.1f %8.2f%% %8.0f\n", name, (double)s.batch_sum / s.batches,
           s.served / secs, p99(s.lat, s.n_lat), 100.0 * (s.late + s.dropped) / s.arrived,
           (s.served - PENALTY * (s.late + s.dropped)) / secs);
}

int main(void)
{
    /* 1. Configure: a small MLP (4 -> 64 -> 64 -> 6) on standardised
          features, a short horizon (gamma 0.9), one gradient step per
          decision once 1000 transitions are stored. */
    dlsched_config *cfg = NULL;
    check(dlsched_config_new(&cfg), "dlsched_config_new");
    check(dlsched_config_parse(cfg, "algo=dqn n_features=4 n_actions=6 hidden=64,64 "
                                    "normalize=1 gamma=0.9 lr=0.001 batch=64 replay=50000 "
                                    "learning_starts=1000 train_every=1 target_update=500 "
                                    "epsilon_decay_steps=30000 cpu_threads=1 seed=7"),
          "dlsched_config_parse");
    dlsched_agent *ag = NULL;
    check(dlsched_agent_new(cfg, &ag), "dlsched_agent_new");
    dlsched_config_free(cfg); /* the agent keeps its own copy */

    /* 2. Learn online: act before each batch; observe its reward with the
          state at the next decision. */
    server s;
    float f[N_FEATURES], next[N_FEATURES];
    server_init(&s, 1, NULL);
    wait_for_work(&s);
    features(&s, f);
    for (int i = 0; i < TRAIN_DECISIONS; i++) {
        dlsched_state_t st = {f, N_FEATURES, 0, NULL, -1, 0};
        dlsched_decision_t d;
        check(dlsched_act(ag, &st, 0, &d), "dlsched_act");
        double r = run_batch(&s, batch_of[d.action]);
        wait_for_work(&s);
        features(&s, next);
        dlsched_state_t nx = {next, N_FEATURES, 0, NULL, -1, 0};
        check(dlsched_observe(ag, d.ticket, (float)r, &nx, 0), "dlsched_observe");
        memcpy(f, next, sizeof f);
    }
    dlsched_stats_t st;
    check(dlsched_stats(ag, &st, sizeof st), "dlsched_stats");
    printf("trained on %d decisions (%.0f s simulated): %llu gradient steps, last loss %.3f\n\n",
           TRAIN_DECISIONS, s.now / 1000.0, (unsigned long long)st.train_steps, st.last_loss);

    /* 3. Compare on the same 60 s of arrivals. SLO miss: completed late or
          dropped; score = (served - 4 x misses) per second. */
    static double lat[LAT_CAP];
    printf("%-22s %10s %9s %7s %9s %8s\n", "policy", "mean batch", "served/s", "p99 ms",
           "SLO miss", "score/s");
    for (int a = 0; a < N_ACTIONS; a++) {
        char name[32];
        snprintf(name, sizeof name, "fixed batch %d", batch_of[a]);
        evaluate(name, FIXED, a, NULL, lat);
    }
    evaluate("threshold (fit queue)", THRESHOLD, 0, NULL, lat);
    evaluate("learned (dqn, greedy)", LEARNED, 0, ag, lat);
    dlsched_agent_free(ag);
    return 0;
}
