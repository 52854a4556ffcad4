/*
 * routing.c - learn to route requests across replicas with libdlsched
 *
 * A tutorial for embedding the library in a server. Three replicas of a
 * model serve one request stream; they differ in speed (fast, medium,
 * slow) and the router only sees their queue lengths. The agent learns
 * which replica to pick for each queue state:
 *
 *   state   the queue length of each replica: 3 features, discretised by
 *           the library into 5 bins each (0, 1, 2, 3, 4 or more)
 *   action  the replica to send the request to (0 fast, 1 medium, 2 slow)
 *   reward  -(response time) of that request, reported when it completes
 *
 * Completions arrive late and out of order (a request on the fast replica
 * may finish before an earlier one on the slow replica): that is what
 * tickets are for. dlsched_act() hands back a ticket, the request carries
 * it, and dlsched_observe() reports its outcome whenever it completes.
 * Each request is its own one-step episode (DLSCHED_OBS_TERMINAL), so the
 * agent estimates Q(s, a) = -E[response time | queues s, replica a].
 *
 * The world is a discrete-time queueing simulation: each tick brings a
 * Poisson number of requests of 1..4 work units; each replica serves its
 * FIFO queue at `speed` units per tick. Everything is seeded, so the
 * output is the same on every run.
 */
#include <dlsched.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define N_REPLICAS 3
#define RING (1u << 16)        /* queue capacity per replica */
#define ARRIVAL_RATE 1.0       /* requests per tick; capacity is 2.4 */
#define TRAIN_REQUESTS 40000
#define EVAL_REQUESTS 20000

static const int speed[N_REPLICAS] = {3, 2, 1}; /* work units per tick */
static const char *const name[N_REPLICAS] = {"fast", "medium", "slow"};

/* Every library call returns a status; on failure, say why and stop. */
static void check(int rc, const char *what)
{
    if (rc != DLSCHED_OK) {
        fprintf(stderr, "routing: %s failed: %s: %s\n", what, dlsched_strerror(rc),
                dlsched_last_error());
        exit(1);
    }
}

/* splitmix64: a tiny seeded generator for the workload and the baselines */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static double uniform(uint64_t *s) { return (double)(next_u64(s) >> 11) * 0x1.0p-53; }
static int poisson(uint64_t *s, double mean)
{
    int k = 0;
    for (double p = uniform(s), limit = exp(-mean); p > limit; p *= uniform(s))
        k++;
    return k;
}

typedef struct request {
    double arrival;  /* time the request came in */
    int work_left;   /* work units still to do */
    int id;          /* index into the latency array */
    uint64_t ticket; /* from dlsched_act; 0 when no outcome is to be reported */
} request;

typedef struct replica {
    request *q; /* FIFO ring of RING requests */
    size_t head, len;
} replica;

enum policy { LEARNING, LEARNED, JSQ, ROUND_ROBIN, RANDOM };
static const char *const policy_name[] = {"learning", "learned (greedy)", "join-shortest-queue",
                                          "round-robin", "random"};

/* The state the agent sees: one float per replica. Lengths above
   feature_high need no clamping by the host: the library puts them in the
   last bin. */
static dlsched_state_t queue_state(const replica *rep, float *feat)
{
    for (int i = 0; i < N_REPLICAS; i++)
        feat[i] = (float)rep[i].len;
    dlsched_state_t st = {feat, N_REPLICAS, 0, NULL, -1, 0}; /* no mask, no hint */
    return st;
}

/* Pick a replica for one request under policy p. */
static int route(enum policy p, dlsched_agent *ag, const replica *rep, uint64_t *rng,
                 int *rr, uint64_t *ticket)
{
    float feat[N_REPLICAS];
    dlsched_state_t st = queue_state(rep, feat);
    dlsched_decision_t d;
    int best = 0;
    switch (p) {
    case LEARNING: /* explore, and keep a ticket for the outcome */
        check(dlsched_act(ag, &st, 0, &d), "dlsched_act");
        *ticket = d.ticket;
        return d.action;
    case LEARNED: /* evaluation: the best known action, no ticket kept */
        check(dlsched_act(ag, &st, DLSCHED_ACT_GREEDY, &d), "dlsched_act");
        return d.action;
    case JSQ: /* shortest queue; ties go to the faster replica */
        for (int i = 1; i < N_REPLICAS; i++)
            if (rep[i].len < rep[best].len)
                best = i;
        return best;
    case ROUND_ROBIN:
        return (*rr)++ % N_REPLICAS;
    case RANDOM:
        return (int)(next_u64(rng) % N_REPLICAS);
    }
    return 0;
}

/* Run n requests through the replicas under policy p and write each
   response time into lat[]. The workload depends on seed only, so every
   policy sees the same arrivals. */
static void simulate(enum policy p, dlsched_agent *ag, uint64_t seed, int n, double *lat)
{
    static request rings[N_REPLICAS][RING];
    replica rep[N_REPLICAS] = {{rings[0], 0, 0}, {rings[1], 0, 0}, {rings[2], 0, 0}};
    uint64_t work_rng = seed, policy_rng = seed ^ 0xABCDEFu;
    int issued = 0, done = 0, rr = 0;
    for (long tick = 0; done < n; tick++) {
        /* 1. this tick's arrivals, routed one at a time */
        for (int k = poisson(&work_rng, ARRIVAL_RATE); k > 0 && issued < n; k--) {
            request r = {(double)tick, 1 + (int)(next_u64(&work_rng) % 4), issued++, 0};
            int a = route(p, ag, rep, &policy_rng, &rr, &r.ticket);
            if (rep[a].len == RING) {
                fprintf(stderr, "routing: queue of replica %d overflowed\n", a);
                exit(1);
            }
            rep[a].q[(rep[a].head + rep[a].len++) % RING] = r;
        }
        /* 2. each replica works `speed` units; finished requests report */
        for (int i = 0; i < N_REPLICAS; i++) {
            int used = 0;
            while (rep[i].len > 0 && used < speed[i]) {
                request *r = &rep[i].q[rep[i].head];
                int take = r->work_left < speed[i] - used ? r->work_left : speed[i] - used;
                r->work_left -= take;
                used += take;
                if (r->work_left > 0)
                    break;
                double finish = (double)tick + (double)used / speed[i];
                lat[r->id] = finish - r->arrival;
                if (r->ticket) /* late, out-of-order feedback through the ticket */
                    check(dlsched_observe(ag, r->ticket, (float)-lat[r->id], NULL,
                                          DLSCHED_OBS_TERMINAL),
                          "dlsched_observe");
                rep[i].head = (rep[i].head + 1) % RING;
                rep[i].len--;
                done++;
            }
        }
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void summarise(const char *label, double *lat, int n)
{
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += lat[i];
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    printf("  %-22s %8.2f %8.2f\n", label, sum / n, lat[(int)ceil(0.95 * n) - 1]);
}

int main(void)
{
    /* 1. Configure: the shape (3 features, 3 actions), the tabular
          algorithm and its discretisation, and a fixed seed. */
    dlsched_config *cfg;
    check(dlsched_config_new(&cfg), "dlsched_config_new");
    check(dlsched_config_parse(cfg, "algo=qtable n_features=3 n_actions=3 "
                                    "bins=5 feature_low=0 feature_high=5 "
                                    "lr=0.05 epsilon_start=1 epsilon_end=0.02 "
                                    "epsilon_decay_steps=20000 seed=42"),
          "dlsched_config_parse");

    /* 2. Create the agent: all memory is allocated here, none per request. */
    dlsched_agent *ag;
    check(dlsched_agent_new(cfg, &ag), "dlsched_agent_new");
    dlsched_config_free(cfg); /* the agent keeps its own copy */

    static double lat[TRAIN_REQUESTS > EVAL_REQUESTS ? TRAIN_REQUESTS : EVAL_REQUESTS];
    printf("libdlsched %s routing demo\n", dlsched_version_string());
    printf("3 replicas (speeds %d/%d/%d work units per tick), %.1f requests per tick of "
           "1..4 units\n\n", speed[0], speed[1], speed[2], ARRIVAL_RATE);

    /* 3. Train online: act on every arrival, observe on every completion. */
    simulate(LEARNING, ag, 1, TRAIN_REQUESTS, lat);
    printf("trained on %d requests\n\n", TRAIN_REQUESTS);

    /* 4. Evaluate every policy on the same arrivals (seed 2, unseen). */
    printf("latency in ticks over %d requests:\n  %-22s %8s %8s\n", EVAL_REQUESTS, "policy",
           "mean", "p95");
    for (int p = LEARNED; p <= RANDOM; p++) {
        simulate((enum policy)p, ag, 2, EVAL_REQUESTS, lat);
        summarise(policy_name[p], lat, EVAL_REQUESTS);
    }

    /* 5. Look inside: greedy choice and Q = -(expected response time). */
    static const float probe[][N_REPLICAS] = {{0, 0, 0}, {1, 0, 0}, {0, 1, 0}, {1, 1, 0},
                                              {2, 0, 0}, {2, 1, 0}, {2, 2, 0}, {1, 1, 1}};
    printf("\nwhat it learned (expected response time per replica = -Q; - = never tried):\n");
    printf("  queues f/m/s   choice   %8s %8s %8s\n", name[0], name[1], name[2]);
    for (size_t k = 0; k < sizeof probe / sizeof probe[0]; k++) {
        dlsched_state_t st = {probe[k], N_REPLICAS, 0, NULL, -1, 0};
        dlsched_decision_t d;
        float q[N_REPLICAS];
        check(dlsched_act(ag, &st, DLSCHED_ACT_GREEDY, &d), "dlsched_act");
        check(dlsched_q_values(ag, &st, q, N_REPLICAS), "dlsched_q_values");
        printf("  %6.0f/%.0f/%.0f     %-6s  ", probe[k][0], probe[k][1], probe[k][2],
               name[d.action]);
        for (int a = 0; a < N_REPLICAS; a++) {
            if (q[a] == 0.0f) /* rewards are < 0, so Q = 0 means untried */
                printf(" %8s", "-");
            else
                printf(" %8.2f", -q[a]);
        }
        printf("\n");
    }

    /* 6. Counters: every ticket was observed, none expired; decisions also
          count the greedy ones (evaluation and the probes above). */
    dlsched_stats_t s;
    check(dlsched_stats(ag, &s, sizeof s), "dlsched_stats");
    printf("\nagent: decisions=%llu observed=%llu expired=%llu train_steps=%llu "
           "mean_reward=%.3f epsilon=%.3f\n",
           (unsigned long long)s.decisions, (unsigned long long)s.observed,
           (unsigned long long)s.tickets_expired, (unsigned long long)s.train_steps,
           s.mean_reward, s.epsilon);

    dlsched_agent_free(ag);
    return 0;
}
