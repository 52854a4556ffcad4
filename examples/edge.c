/*
 * edge.c - pick a detector variant and input resolution per camera frame on
 * an edge device, within a hard per-decision budget
 *
 * A tutorial for a host with no server around it: a car's perception
 * computer. Four periodic sensor streams share one accelerator:
 *
 *   stream        rate    deadline   safety weight (highway / urban)
 *   front camera  30 Hz    33 ms     3.0 / 3.0
 *   left camera   10 Hz   100 ms     1.0 / 2.0
 *   right camera  10 Hz   100 ms     1.0 / 2.0
 *   lidar (BEV)   10 Hz   100 ms     2.0 / 2.0
 *
 * Frames queue FIFO on the accelerator. For every frame the host asks the
 * agent for one of 10 actions: YOLOv8 n, s or m at 320, 480 or 640 pixels,
 * or skip the frame.
 *
 *   state   stream id; slack: the share of the frame's deadline left when the
 *           accelerator would start it (negative: already late); the
 *           accelerator's temperature (scaled 0..1); scene (0 highway, 1 urban)
 *   action  variant x resolution (9), or 9 = skip
 *   reward  on time:  weight x accuracy (mAP relative to YOLOv8m at 640)
 *           late:    -weight x 1.0  (stale output, accelerator time wasted)
 *           skipped: -weight x 0.6  (the tracker coasts on its prediction)
 *
 * The incumbent is a deadline-aware greedy heuristic: the most accurate
 * action whose predicted finish (at the current clock) meets the frame's
 * deadline with a 10% margin, else skip. It is passed as state.hint, so the
 * guard (on by default) keeps it in charge until the learned policy has
 * proven better on this workload. Each decision's reward is observed with
 * the next frame's state (flags 0, gamma 0.9): a heavy choice now delays
 * the frames behind it, which a one-step reward would not show.
 *
 * The per-decision budget: every dlsched_act call is timed, and p50, p99,
 * max and the count over budget (10 us qtable, 50 us dqn) are printed. With
 * --enforce the host acts as a watchdog would on a decision that took
 * longer than the budget: the frame runs the hint instead, the outcome is
 * reported with dlsched_observe_transition() for the action that ran, and
 * the decision's ticket is left to expire. The simulation is seeded: two
 * runs print the same results except the timings, unless --enforce
 * replaced a decision (that depends on the machine's timing: a preempted
 * call).
 *
 *   edge [--dqn] [--enforce] [--seed N]   qtable by default; --dqn: hidden=32,32
 *
 * Exit status 0, or 1 when a library call fails.
 *
 * ---- the numbers ----
 * Accuracy: COCO val2017 mAP50-95 at 640 px of YOLOv8n/s/m, 37.3 / 44.9 /
 *   50.2 (Ultralytics, docs.ultralytics.com/models/yolov8, "Performance
 *   Metrics", detection table).
 * Latency at 640 px: 7.3 / 11.4 / 23.6 ms, YOLOv8n/s/m as TensorRT FP16
 *   engines on a Jetson Orin Nano (github.com/the0807/YOLOv8-ONNX-TensorRT,
 *   README "Performance"; a third-party measurement, batch 1).
 * ILLUSTRATIVE, not measured: the scaling with resolution (latency =
 *   lat640 x (0.3 + 0.7 (r/640)^2): a fixed share for pre/post-processing
 *   and launch, the rest proportional to pixels), the accuracy at 320 and
 *   480 px (x 0.78 / 0.92 of the 640 figure on the highway, x 0.62 / 0.86 in
 *   town, where pedestrians are small), the lidar stream costing what a
 *   camera frame does, the latency jitter (x 0.95 .. 1.20), and the thermal
 *   model: temperature follows utilisation with a 20 s time constant
 *   (45 C idle, 95 C at full load) and the clock is throttled linearly from
 *   1.0x at 70 C to 1.6x slower at 90 C.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#endif
#include <dlsched.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_STREAMS 4
#define N_VARIANTS 3
#define N_RES 3
#define N_ACTIONS (N_VARIANTS * N_RES + 1)
#define SKIP (N_ACTIONS - 1)
#define N_FEATURES 4
#define TRAIN_S 1200.0 /* simulated seconds of online learning */
#define EVAL_S 120.0  /* simulated seconds per evaluated policy */
#define LATE_PENALTY 1.0
#define SKIP_PENALTY 0.6
#define MARGIN 1.10 /* the heuristic's safety margin on its latency prediction */
#define LAT_CAP 100000 /* act timings kept (a 1200 s run has ~72000 decisions) */

static const double period_ms[N_STREAMS] = {1000.0 / 30, 100, 100, 100};
static const double phase_ms[N_STREAMS] = {0, 0, 1000.0 / 30, 2000.0 / 30};
static const double deadline_ms[N_STREAMS] = {1000.0 / 30, 100, 100, 100};
static const double weight[2][N_STREAMS] = {{3, 1, 1, 2}, {3, 2, 2, 2}}; /* [scene] */

static const char *const variant_name[N_VARIANTS] = {"n", "s", "m"};
static const double map640[N_VARIANTS] = {37.3, 44.9, 50.2};
static const double lat640_ms[N_VARIANTS] = {7.3, 11.4, 23.6};
static const int res_px[N_RES] = {320, 480, 640};
static const double res_acc[2][N_RES] = {{0.78, 0.92, 1.0}, {0.62, 0.86, 1.0}};

/* Every library call returns a status; on failure, say why and stop. */
static void check(int rc, const char *what)
{
    if (rc != DLSCHED_OK) {
        fprintf(stderr, "edge: %s failed: %s: %s\n", what, dlsched_strerror(rc),
                dlsched_last_error());
        exit(1);
    }
}

/* splitmix64: the seeded generator for scenes and jitter */
static double uniform(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return (double)((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

/* nominal latency of action a at clock factor 1 */
static double nominal_ms(int a)
{
    double r = res_px[a % N_RES] / 640.0;
    return lat640_ms[a / N_RES] * (0.3 + 0.7 * r * r);
}

/* accuracy relative to YOLOv8m at 640 px */
static double accuracy(int a, int scene)
{
    return map640[a / N_RES] / map640[N_VARIANTS - 1] * res_acc[scene][a % N_RES];
}

static double clock_factor(double temp_c)
{
    double x = (temp_c - 70.0) / 20.0;
    return 1.0 + 0.6 * (x < 0 ? 0 : x > 1 ? 1 : x);
}

typedef struct device {
    double now, busy_until; /* ms */
    double temp_c, busy_acc, mark; /* temperature; busy ms since mark */
    int scene;
    double next_scene;
    double next_frame[N_STREAMS];
    uint64_t rng;
    /* outcome counters */
    long frames, on_time, late, skipped, front_frames, front_missed;
    double reward, acc_sum;
} device;

static void device_init(device *d, uint64_t seed)
{
    memset(d, 0, sizeof *d);
    d->rng = seed;
    d->temp_c = 45.0;
    d->next_scene = 20000.0 + 40000.0 * uniform(&d->rng);
    for (int s = 0; s < N_STREAMS; s++)
        d->next_frame[s] = phase_ms[s];
}

/* advance to the next frame; returns its stream. Scene and temperature are
   updated on the way (temperature: first-order towards 45 + 50 x the
   utilisation since the last frame, time constant 20 s). */
static int next_frame(device *d)
{
    int s = 0;
    for (int i = 1; i < N_STREAMS; i++)
        if (d->next_frame[i] < d->next_frame[s])
            s = i;
    double t = d->next_frame[s];
    if (t > d->mark) {
        double util = d->busy_acc / (t - d->mark);
        util = util > 1 ? 1 : util;
        double alpha = 1.0 - exp(-(t - d->mark) / 20000.0);
        d->temp_c += alpha * (45.0 + 50.0 * util - d->temp_c);
        d->busy_acc = 0;
        d->mark = t;
    }
    while (t >= d->next_scene) { /* highway and town alternate every 20-60 s */
        d->scene ^= 1;
        d->next_scene += 20000.0 + 40000.0 * uniform(&d->rng);
    }
    d->now = t;
    d->next_frame[s] += period_ms[s];
    return s;
}

static void features(const device *d, int s, float *f)
{
    double start = d->busy_until > d->now ? d->busy_until : d->now;
    f[0] = (float)s;
    f[1] = (float)((d->now + deadline_ms[s] - start) / deadline_ms[s]);
    f[2] = (float)((d->temp_c - 45.0) / 50.0);
    f[3] = (float)d->scene;
}

/* the incumbent: the most accurate action predicted to finish in time */
static int heuristic(const device *d, int s)
{
    double start = d->busy_until > d->now ? d->busy_until : d->now;
    double slack = d->now + deadline_ms[s] - start, k = clock_factor(d->temp_c);
    int best = SKIP;
    for (int a = 0; a < SKIP; a++)
        if (nominal_ms(a) * k * MARGIN <= slack &&
            (best == SKIP || accuracy(a, d->scene) > accuracy(best, d->scene)))
            best = a;
    return best;
}

/* run frame of stream s with action a; returns its reward */
static double run_frame(device *d, int s, int a)
{
    double w = weight[d->scene][s], r;
    d->frames++;
    d->front_frames += s == 0;
    if (a == SKIP) {
        d->skipped++;
        d->front_missed += s == 0;
        r = -w * SKIP_PENALTY;
    } else {
        double start = d->busy_until > d->now ? d->busy_until : d->now;
        double run = nominal_ms(a) * clock_factor(d->temp_c) * (0.95 + 0.25 * uniform(&d->rng));
        d->busy_until = start + run;
        d->busy_acc += run;
        if (d->busy_until <= d->now + deadline_ms[s]) {
            d->on_time++;
            d->acc_sum += accuracy(a, d->scene);
            r = w * accuracy(a, d->scene);
        } else {
            d->late++;
            d->front_missed += s == 0;
            r = -w * LATE_PENALTY;
        }
    }
    d->reward += r;
    return r;
}

/* ---- the decision budget ------------------------------------------------ */

typedef struct timing {
    double *us;
    long n, over;
    double budget_us;
    int enforce; /* run the hint when a decision is over budget */
} timing;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(const double *sorted, long n, double p)
{
    long k = (long)ceil(p / 100.0 * (double)n);
    return sorted[(k < 1 ? 1 : k) - 1];
}

/* act, timed; returns 1 when the decision must be replaced by the hint
   (over budget with --enforce) */
static int timed_act(dlsched_agent *ag, const dlsched_state_t *st, uint32_t flags,
                     dlsched_decision_t *dec, timing *tm)
{
    double t0 = now_us();
    int rc = dlsched_act(ag, st, flags, dec);
    double dt = now_us() - t0;
    check(rc, "dlsched_act");
    if (tm->n < LAT_CAP)
        tm->us[tm->n++] = dt;
    tm->over += dt > tm->budget_us;
    return tm->enforce && dt > tm->budget_us;
}

static void timing_report(const char *label, timing *tm)
{
    if (tm->n == 0)
        return;
    qsort(tm->us, (size_t)tm->n, sizeof *tm->us, cmp_double);
    printf("  %-26s %7ld calls  p50 %6.2f us  p99 %6.2f us  max %7.2f us  "
           "over %.0f us: %ld\n",
           label, tm->n, pct(tm->us, tm->n, 50), pct(tm->us, tm->n, 99), tm->us[tm->n - 1],
           tm->budget_us, tm->over);
}

/* ---- learning and evaluation --------------------------------------------- */

/* Online learning: act on every frame with the hint, observe its reward
   with the next frame's state. */
static void train(dlsched_agent *ag, uint64_t seed, timing *tm, long *watchdog)
{
    device d;
    float f[N_FEATURES], nf[N_FEATURES];
    device_init(&d, seed);
    int s = next_frame(&d);
    features(&d, s, f);
    while (d.now < TRAIN_S * 1000.0) {
        int hint = heuristic(&d, s);
        dlsched_state_t st = {f, N_FEATURES, 0, NULL, hint, 0};
        dlsched_decision_t dec;
        int over = timed_act(ag, &st, 0, &dec, tm);
        int a = over ? hint : dec.action; /* the watchdog runs the hint */
        double r = run_frame(&d, s, a);
        s = next_frame(&d);
        features(&d, s, nf);
        dlsched_state_t nx = {nf, N_FEATURES, 0, NULL, heuristic(&d, s), 0};
        if (over) {
            ++*watchdog;
            check(dlsched_observe_transition(ag, &st, a, (float)r, &nx, 0),
                  "dlsched_observe_transition");
        } else {
            check(dlsched_observe(ag, dec.ticket, (float)r, &nx, 0), "dlsched_observe");
        }
        memcpy(f, nf, sizeof f);
    }
}

enum { HEURISTIC, GUARDED, LEARNED_ONLY };
static const char *const policy_name[] = {"heuristic (incumbent)", "agent, guarded (hint)",
                                          "learned policy alone"};

/* Evaluate policy p on EVAL_S seconds of seed's frames, greedily. */
static void evaluate(int p, dlsched_agent *ag, uint64_t seed, timing *tm, long *watchdog)
{
    device d;
    float f[N_FEATURES];
    device_init(&d, seed);
    long per_action[N_ACTIONS] = {0};
    while (1) {
        int s = next_frame(&d);
        if (d.now >= EVAL_S * 1000.0)
            break;
        int hint = heuristic(&d, s), a = hint;
        if (p != HEURISTIC) {
            features(&d, s, f);
            dlsched_state_t st = {f, N_FEATURES, 0, NULL, p == GUARDED ? hint : -1, 0};
            dlsched_decision_t dec;
            if (timed_act(ag, &st, DLSCHED_ACT_GREEDY, &dec, tm))
                ++*watchdog; /* a is the hint */
            else
                a = dec.action;
        }
        per_action[a]++;
        run_frame(&d, s, a);
    }
    printf("  %-22s %6.3f %7.1f%% %6.1f%% %7.1f%% %9.1f%% %8.3f   ", policy_name[p],
           d.reward / d.frames, 100.0 * d.on_time / d.frames, 100.0 * d.late / d.frames,
           100.0 * d.skipped / d.frames, 100.0 * d.front_missed / d.front_frames,
           d.on_time ? d.acc_sum / d.on_time : 0.0);
    int shown = 0; /* the three most used actions */
    long used[N_ACTIONS];
    memcpy(used, per_action, sizeof used);
    while (shown < 3) {
        int m = 0;
        for (int a = 1; a < N_ACTIONS; a++)
            if (used[a] > used[m])
                m = a;
        if (used[m] == 0)
            break;
        if (m == SKIP)
            printf(" skip %.0f%%", 100.0 * used[m] / d.frames);
        else
            printf(" %s@%d %.0f%%", variant_name[m / N_RES], res_px[m % N_RES],
                   100.0 * used[m] / d.frames);
        used[m] = 0;
        shown++;
    }
    printf("\n");
}

static const char *guard_state_name(uint32_t g)
{
    switch (g) {
    case DLSCHED_GUARD_OFF: return "off";
    case DLSCHED_GUARD_INCUMBENT: return "incumbent in charge";
    case DLSCHED_GUARD_LEARNED: return "learned policy in charge";
    case DLSCHED_GUARD_FALLEN_BACK: return "fallen back to the incumbent";
    }
    return "?";
}

int main(int argc, char **argv)
{
    int dqn = 0, enforce = 0;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dqn") == 0) {
            dqn = 1;
        } else if (strcmp(argv[i], "--enforce") == 0) {
            enforce = 1;
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: edge [--dqn] [--enforce] [--seed N]\n");
            return 2;
        }
    }

    /* 1. Configure. qtable: stream 4 bins (one per stream), slack 10 bins
          over [-0.25, 1), temperature 5, scene 2: 400 states x 10 actions.
          dqn: a 4-32-32-10 net on standardised features, trained on the
          CPU (the accelerator is the detectors'). Both: gamma 0.9,
          exploration falling to 2% over the first 20000 decisions, the
          guard in switchback blocks of 30 decisions (frames share the
          accelerator's queue: see README, the guard). ticket_capacity=256:
          a frame's ticket is observed at the next frame, and the few a
          watchdog leaves behind expire (the default 65536 slots would
          take ~3 MB of a small device's memory). */
    char spec[512];
    snprintf(spec, sizeof spec,
             "%s n_features=%d n_actions=%d gamma=0.9 epsilon_start=1 epsilon_end=0.02 "
             "epsilon_decay_steps=20000 guard=1 guard_block=30 ticket_capacity=256 "
             "cpu_threads=1 seed=%llu",
             dqn ? "algo=dqn device=cpu hidden=32,32 normalize=1 lr=0.001 batch=32 "
                   "replay=20000 learning_starts=1000 train_every=4 target_update=500"
                 : "algo=qtable bins=4,10,5,2 feature_low=0,-0.25,0,0 feature_high=4,1,1,2 "
                   "lr=0.1",
             N_FEATURES, N_ACTIONS, seed);
    dlsched_config *cfg;
    check(dlsched_config_new(&cfg), "dlsched_config_new");
    check(dlsched_config_parse(cfg, spec), "dlsched_config_parse");
    dlsched_agent *ag;
    check(dlsched_agent_new(cfg, &ag), "dlsched_agent_new");
    dlsched_config_free(cfg);

    printf("libdlsched %s edge demo: %s, seed %llu\n", dlsched_version_string(),
           dqn ? "dqn 4-32-32-10" : "qtable 400 states x 10 actions", seed);
    printf("streams: front 30 Hz (33 ms), left/right 10 Hz (100 ms), lidar 10 Hz (100 ms) on "
           "one accelerator; actions: YOLOv8 n/s/m x 320/480/640 px, or skip\n");
    printf("latency at 640 px, 1.0x clock: n %.1f, s %.1f, m %.1f ms; at 320 px: %.1f, %.1f, "
           "%.1f ms\n\n",
           nominal_ms(2), nominal_ms(5), nominal_ms(8), nominal_ms(0), nominal_ms(3),
           nominal_ms(6));

    /* 2. Learn online for TRAIN_S simulated seconds, every act timed. */
    static double buf_train[LAT_CAP], buf_eval[LAT_CAP];
    double budget = dqn ? 50.0 : 10.0;
    timing tm_train = {buf_train, 0, 0, budget, enforce};
    timing tm_eval = {buf_eval, 0, 0, budget, enforce};
    long wd_train = 0, wd_eval = 0;
    train(ag, 1000 + seed, &tm_train, &wd_train);
    dlsched_stats_t st;
    check(dlsched_stats(ag, &st, sizeof st), "dlsched_stats");
    printf("learned online for %.0f s simulated: %llu decisions, %llu updates, guard: %s "
           "(switches %llu, fallbacks %llu; advantage %+.3f [%+.3f, %+.3f] per "
           "disagreement)\n\n",
           TRAIN_S, (unsigned long long)st.decisions, (unsigned long long)st.train_steps,
           guard_state_name(st.guard_state), (unsigned long long)st.guard_switches,
           (unsigned long long)st.guard_fallbacks, st.guard_advantage, st.guard_advantage_low,
           st.guard_advantage_high);

    /* 3. Compare on the same unseen EVAL_S seconds (greedy, no learning). */
    printf("evaluation, %.0f s simulated, same frames for each policy:\n", EVAL_S);
    printf("  %-22s %6s %8s %7s %8s %10s %8s   %s\n", "policy", "reward", "on time", "late",
           "skipped", "front miss", "mean acc", "most used");
    for (int p = HEURISTIC; p <= LEARNED_ONLY; p++)
        evaluate(p, ag, 2000 + seed, &tm_eval, &wd_eval);

    /* 4. The budget: every dlsched_act call of this run. */
    printf("\ndlsched_act time per decision (budget %.0f us; %s):\n", budget,
           enforce ? "--enforce: over budget, the hint ran"
                   : "over-budget decisions stand; --enforce runs the hint instead");
    timing_report("learning (ticket, hint)", &tm_train);
    timing_report("evaluation (greedy)", &tm_eval);
    if (enforce)
        printf("  watchdog substitutions: %ld while learning, %ld in evaluation\n", wd_train,
               wd_eval);

    check(dlsched_stats(ag, &st, sizeof st), "dlsched_stats");
    printf("\nagent: memory %llu bytes, tickets expired %llu, pending %llu\n",
           (unsigned long long)st.memory_bytes, (unsigned long long)st.tickets_expired,
           (unsigned long long)st.tickets_pending);
    dlsched_agent_free(ag);
    return 0;
}
