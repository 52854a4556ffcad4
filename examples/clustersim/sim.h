/*
 * sim.h - dlsched-sim: a discrete-event simulator of an LLM inference
 * cluster that drives libdlsched exactly as a server would (act when a
 * request arrives, observe through the ticket when it completes).
 *
 * Latency model (per request r, variant v, GPU type g; see dlsched-sim(1)):
 *   prefill  = overhead_ms[v][g] + in_tokens / prefill_rate[v][g]
 *   decode   = out_tokens * tpot_ms[v][g] * (1 + growth[v][g] * (n - 1))
 * where n is the number of requests active on the server (its batch) while
 * the tokens are generated; the decode part of every request on a server is
 * advanced with one virtual clock, so n may change during a request's life.
 * A server runs at most `slots` requests at once; the rest wait in its FIFO.
 */
#ifndef DLSCHED_SIM_H
#define DLSCHED_SIM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SIM_MAX_GPU 8
#define SIM_MAX_VAR 8
#define SIM_MAX_SERVERS 64
#define SIM_MAX_SLOTS 256
#define SIM_NAME 32
#define SIM_PATH 1024
#define SIM_MAX_RATES 8

/* a size distribution for input or output tokens */
enum { SIM_DIST_CONST, SIM_DIST_EXP, SIM_DIST_LOGNORMAL, SIM_DIST_UNIFORM };
typedef struct {
    int kind;
    double a, b;  /* const: a; exp: mean a; lognormal: median a, sigma b; uniform: a..b */
    double max;   /* clamp (0 = none) */
} sim_dist;

typedef struct {
    int set;
    double overhead_ms, prefill_tps, tpot_ms, growth;
} sim_profile;

typedef struct {
    char name[SIM_NAME];
    int count, slots;
    double memory_gb;
    double memory_utilization; /* KV model: the share of memory_gb vLLM may use (0.9) */
    uint32_t load_mask; /* variants loaded on each server of this type */
} sim_gpu;

typedef struct {
    char name[SIM_NAME];
    double accuracy, memory_gb;
    double kv_kb_per_token; /* KV model: KV-cache kilobytes one token takes (0: none) */
    sim_profile prof[SIM_MAX_GPU];
} sim_variant;

enum { SIM_ARR_POISSON, SIM_ARR_MMPP, SIM_ARR_DIURNAL, SIM_ARR_TRACE };
enum { SIM_TRACE_AZURE, SIM_TRACE_MOONCAKE, SIM_TRACE_CSV };

/* one request of a trace (times in seconds from the trace's start); its
   prefix block hashes (Mooncake's hash_ids) are hash_pool[hash_off ..
   hash_off + n_hash) of the scenario (n_hash = 0: none) */
typedef struct {
    double t, in, out;
    uint32_t hash_off, n_hash;
    uint32_t n_shared; /* KV model: its ids up to the last one that another row of
                          its part (warm-up or evaluation) has too; the rest can
                          never be a cache hit (sim_scenario_finish) */
} sim_trace_row;


/* ---- the edge workload (edge_scn.c, edge.c; dlsched-sim(5), EDGE) ----
   One accelerator serves periodic sensor streams; for every frame the
   policy picks a (model, input resolution) pair or skips the frame. */
#define SIM_EDGE_STREAMS 8
#define SIM_EDGE_MODELS 6
#define SIM_EDGE_RES 4
#define SIM_EDGE_SCENES 6
#define SIM_EDGE_MODES 4
/* actions: model * n_res + resolution, then skip (the last) */
#define SIM_EDGE_ACTIONS (SIM_EDGE_MODELS * SIM_EDGE_RES + 1)

typedef struct {
    char name[SIM_NAME];
    double rate_hz, deadline_ms, phase_ms, cost;
    int priority; /* 0 is served first */
} sim_estream;

typedef struct {
    char name[SIM_NAME];
    double accuracy;   /* at the reference resolution */
    double latency_ms; /* at the reference resolution, power mode and clock, cost 1 */
    double post_ms;    /* post-processing per detected object */
} sim_emodel;

typedef struct {
    char name[SIM_NAME];
    double share, dwell_lo_s, dwell_hi_s, objects, deadline_scale;
    double res_accuracy[SIM_EDGE_RES];
    double weight[SIM_EDGE_STREAMS]; /* safety weight of each stream */
} sim_escene;

typedef struct {
    char name[SIM_NAME];
    double mhz, watts, dwell_s;
} sim_emode;

typedef struct {
    int n_streams, n_models, n_res, n_scenes, n_modes;
    sim_estream st[SIM_EDGE_STREAMS];
    sim_emodel model[SIM_EDGE_MODELS];
    sim_escene scene[SIM_EDGE_SCENES];
    sim_emode mode[SIM_EDGE_MODES];
    char device[SIM_NAME];
    int fifo;                      /* scheduling = fifo (else priority) */
    int res_px[SIM_EDGE_RES];
    double reference_px, fixed_share, jitter_lo, jitter_hi;
    int thermal;                   /* throttling modelled */
    double ambient_c, rise_c, tau_s, throttle_c, recover_c, throttle_clock, idle_w;
    double skip_penalty, energy_weight;
} sim_edge;

typedef struct {
    char name[64];
    char path[SIM_PATH];
    uint64_t seed, eval_seed;
    double slo_base_ms, slo_per_token_ms, miss_penalty;
    double warmup_s, eval_s, window_s;
    int n_gpu, n_var;
    sim_gpu gpu[SIM_MAX_GPU];
    sim_variant var[SIM_MAX_VAR];
    /* arrivals */
    int process;
    double rate, load;           /* load > 0: rate = load * capacity */
    int load_variant;            /* reference variant for `load` */
    int n_rates;
    double rates[SIM_MAX_RATES], dwell_s[SIM_MAX_RATES]; /* mmpp; rates as load
                                                            multiples when mmpp_load */
    int mmpp_load;               /* rates are given as load (x capacity) */
    double amplitude, period_s;  /* diurnal */
    sim_dist in_tokens, out_tokens;
    char trace_path[SIM_PATH];
    int trace_format;
    double speedup, train_share;
    int warmup_passes;
    /* learned policies */
    char dqn_config[1024], qtable_config[1024];
    uint64_t apprentice;
    /* the KV model: warm-up restarts every restart_s seconds (caches and
       the picker's index emptied; 0: none; default, -1 before
       sim_scenario_finish: eval_s with the KV model, else 0) and the
       evaluation (1 online, 0 frozen; default, -1 before finish: online
       with the KV model, else frozen; dlsched-sim's --online/--frozen
       override it) */
    double restart_s;
    int evaluate_online;
    int dqn_class;               /* dqn actions: 0 = (server, variant), 1 = (GPU type, variant) */
    /* the incumbent whose choice the learned policies get as their hint
       (and fall back to): "auto" = of the heuristics within 5% of the best
       weighted goodput on a quarter of the warm-up stream, the one with
       the highest SLO attainment; or a heuristic's name; resolved by
       sim_resolve_incumbent() */
    char incumbent[48];
    int inc_resolved, inc_kind, inc_variant;
    char inc_name[48];
    /* the KV-cache model (dlsched-sim(1), KV CACHE): on when a variant has
       kv_kb_per_token; servers admit a request when its blocks fit, keep
       an LRU prefix cache, and policies see scraped signals */
    int kv;
    int kv_block_tokens;         /* tokens per KV block (16) */
    int prefix_block_tokens;     /* tokens per prefix hash block (512, Mooncake's) */
    double scrape_ms;            /* staleness of the waiting/running/KV signals (50) */
    int prefix_groups;           /* shared-prefix workload: groups (0: none) */
    double prefix_tokens;        /* ... and the length of each group's system prompt */
    double gw_weights[4];        /* gateway: queue, kv, prefix, no-hit LRU (2 2 3 2) */
    /* filled by sim_scenario_finish() */
    sim_trace_row *trace;
    size_t n_trace;
    uint64_t *hash_pool;         /* the trace's prefix block hashes */
    size_t n_hash_pool;
    double capacity;             /* req/s the cluster serves with load_variant */
    double mean_in, mean_out;    /* mean input and output tokens per request */
    int n_servers;
    /* workload = edge: the device, its streams and scenes (no gpu, variant
       or arrivals sections) */
    int is_edge;
    sim_edge edge;
} sim_scenario;

/* error reporting for scenario and trace files: "file:line: field: what" */
typedef struct {
    char msg[512];
} sim_err;

int sim_scenario_load(const char *path, sim_scenario *sc, sim_err *err);
int sim_scenario_parse(const char *text, const char *name, sim_scenario *sc, sim_err *err);
void sim_scenario_free(sim_scenario *sc);
/* loads the trace (if any), derives capacity and rates; called by load/parse */
int sim_scenario_finish(sim_scenario *sc, sim_err *err);
int sim_trace_load(const char *path, int format, sim_trace_row **rows, size_t *n, sim_err *err);
/* the same, and (pool not NULL, format mooncake) the rows' hash_ids into
   *pool (*n_pool of them; the caller frees) */
int sim_trace_load_hashes(const char *path, int format, sim_trace_row **rows, size_t *n,
                          uint64_t **pool, size_t *n_pool, sim_err *err);
double sim_dist_mean(const sim_dist *d);

/* ---- policies ---- */
enum {
    SIM_POL_RANDOM, SIM_POL_RR, SIM_POL_JSQ, SIM_POL_LWL, SIM_POL_P2C, SIM_POL_SED,
    SIM_POL_FEWEST_WAITING, SIM_POL_LEAST_KV, SIM_POL_GATEWAY, /* the KV model's */
    SIM_POL_GREEDY, SIM_POL_QTABLE, SIM_POL_DQN, SIM_POL_COUNT
};
extern const char *const sim_policy_names[SIM_POL_COUNT];
/* the edge workload's heuristics (its learned policies are SIM_POL_QTABLE
   and SIM_POL_DQN): the most accurate static choice per stream that fits
   the worst case; the deadline-aware greedy (the incumbent); a table of
   static choices per scene and clock state */
enum { SIM_EPOL_WORST = 64, SIM_EPOL_DEADLINE, SIM_EPOL_RULES };
static inline int sim_policy_learned(int kind)
{
    return kind == SIM_POL_QTABLE || kind == SIM_POL_DQN;
}

typedef struct {
    char name[48];
    int kind;
    int variant; /* fixed variant for the heuristics; -1 for greedy/learned */
} sim_policy_spec;

/* ---- results ---- */
/* edge: one window of the evaluation (the drive's timeline) */
typedef struct {
    int scene;                 /* the scene at the window's end */
    double temp_c, clock;      /* at the window's end; clock: x the first mode's */
    double model, res_px;      /* mean model index and input size of the frames run */
    double miss_weight;        /* safety-weighted share of frames missed (late,
                                  dropped or skipped) */
    double skipped;            /* share of frames skipped */
} sim_edge_window;

typedef struct {
    char name[48];
    uint64_t n, met, submitted;
    double duration_s;
    double p50_ms, p95_ms, p99_ms, mean_ms;
    double ttft_p90_ms, e2e_p90_ms; /* time to the first token (prefill end), end to end */
    double prefix_hit_rate;         /* KV model: prompt tokens served from the prefix cache */
    uint64_t events;                /* events handled (arrivals, prefill ends, decode
                                       completions; not superseded heap entries),
                                       the evaluation's */
    double slo_attainment, goodput, weighted_goodput, mean_accuracy;
    double util[SIM_MAX_GPU];
    double decision_ns;
    uint64_t variant_count[SIM_MAX_VAR];
    /* per window: SLO attainment (by arrival time) */
    size_t n_windows;
    double *window_attain;
    /* learned: per warm-up window: mean reward, SLO attainment */
    size_t n_learn;
    double *learn_reward, *learn_attain;
    double train_s;
    /* learned: the guard at the end of the warm-up (dlsched_stats) */
    int guard_state;
    uint64_t guard_switches, guard_fallbacks, guard_pairs;
    double guard_adv, guard_lo, guard_hi, guard_learned_share;
    /* and at the end of the evaluation */
    int eval_guard_state;
    uint64_t eval_fallbacks;
    double eval_learned_share;
    /* edge: frame outcomes (n = frames, met = on time) */
    uint64_t late, dropped, skipped;
    double safety_misses;      /* safety weight of the missed frames / of all */
    double mean_reward, power_w, throttled_share;
    uint64_t action_count[SIM_EDGE_ACTIONS];
    sim_edge_window *timeline; /* n_windows of them */
} sim_result;

void sim_result_free(sim_result *r);

typedef struct {
    int quiet;       /* nothing on stderr */
    int progress;    /* percentages on stderr (a terminal), else one line per phase */
    int time_decisions;
    double scale;    /* multiplies warmup_s/eval_s (and trace passes) */
    int calibrate;   /* heuristics only: measure on the warm-up stream instead */
    int frozen;      /* learned: evaluate with DLSCHED_ACT_GREEDY and the hint (the
                        guard's state decides; no tickets, learning or experiment);
                        -1: the scenario's evaluation (evaluate_online) */
    /* test hook: called once per completed request */
    void (*on_complete)(void *user, uint64_t id, double arrive_ms, double done_ms, int server,
                        int variant);
    void *user;
    /* test hook: the KV model keeps every prompt block as its own cache
       entry (by default a request's blocks that can never be hit are one
       entry, with the same results) */
    int kv_exact;
} sim_options;

/* Runs one policy on the scenario: learned policies train on the warm-up
   stream first; every policy is then measured on the evaluation stream. */
int sim_run_policy(const sim_scenario *sc, const sim_policy_spec *p, const sim_options *opt,
                   sim_result *out, sim_err *err);

/* resolves sc->incumbent (auto: runs every heuristic on a quarter of the
   warm-up stream, at opt->scale) into inc_kind/inc_variant/inc_name */
int sim_resolve_incumbent(sim_scenario *sc, const sim_options *opt, sim_err *err);

/* creates (and frees) a learned policy's agent: the [learning] keys are
   valid. 0 for the other policies. */
int sim_check_learning(const sim_scenario *sc, const sim_policy_spec *p, sim_err *err);

/* the policies worth running on a scenario: each heuristic with each
   variant, greedy, qtable, dqn. Returns the count (<= cap). */
size_t sim_default_policies(const sim_scenario *sc, sim_policy_spec *out, size_t cap);
int sim_policy_parse(const sim_scenario *sc, const char *name, sim_policy_spec *out, sim_err *err);

/* ---- reports ---- */
void sim_print_table(FILE *f, const sim_scenario *sc, const sim_result *r, size_t n);
int sim_write_json(FILE *f, const sim_scenario *sc, const sim_result *r, size_t n);
int sim_write_plots(const char *dir, const sim_scenario *sc, const sim_result *r, size_t n,
                    int run_gnuplot, char *msg, size_t msg_len);

/* ---- engine.c's helpers (also for edge.c) ---- */
int sim_cmp_float(const void *a, const void *b);       /* qsort, ascending */
double sim_pct(const float *v, size_t n, double q);    /* quantile q of sorted v */

/* ---- report.c's helpers (also for edge_report.c) ---- */
void sim_json_str(FILE *f, const char *s);
void sim_json_num(FILE *f, double v);            /* null when not finite */
void sim_json_guard(FILE *f, const sim_result *r); /* , "guard": {...} */
/* the scenario object's end: rate, "capacity", "incumbent" when resolved,
   and the opening of "policies" */
void sim_json_head_tail(FILE *f, const sim_scenario *sc);
/* , "k": v for each of n (null when not finite) */
typedef struct {
    const char *k;
    double v;
} sim_json_kv;
void sim_json_fields(FILE *f, const sim_json_kv *kv, size_t n);
void sim_safe_name(const char *in, char *out, size_t cap);
/* a plot file for writing, and its close; on failure msg names it */
FILE *sim_open_out(const char *path, char *msg, size_t msg_len);
int sim_close_out(FILE *f, const char *path, char *msg, size_t msg_len);
/* runs gnuplot NAME.gp in dir: 0, 1 (gnuplot failed or missing: msg) or -1 */
int sim_gnuplot(const char *dir, const char *name, char *msg, size_t msg_len);

/* ---- the edge workload (edge.c, edge_report.c) ---- */
int sim_edge_run(const sim_scenario *sc, const sim_policy_spec *p, const sim_options *opt,
                 sim_result *out, sim_err *err);
int sim_edge_policy_parse(const sim_scenario *sc, const char *name, sim_policy_spec *out,
                          sim_err *err);
size_t sim_edge_default_policies(const sim_scenario *sc, sim_policy_spec *out, size_t cap);
int sim_edge_check_learning(const sim_scenario *sc, const sim_policy_spec *p, sim_err *err);
int sim_edge_resolve_incumbent(sim_scenario *sc, const sim_options *opt, sim_err *err);
/* the name of action a ("n@640", "skip") */
const char *sim_edge_action_name(const sim_scenario *sc, int a, char *buf, size_t len);
void sim_edge_print_table(FILE *f, const sim_scenario *sc, const sim_result *r, size_t n);
int sim_edge_write_json(FILE *f, const sim_scenario *sc, const sim_result *r, size_t n);
int sim_edge_write_plots(const char *dir, const sim_scenario *sc, const sim_result *r, size_t n,
                         int run_gnuplot, char *msg, size_t msg_len);

/* ---- random scenarios (generate.c) ---- */
/* writes into buf (len bytes) the text of a scenario file: scenario `index`
   of family `seed`, the same text for the same (seed, index) whatever else
   is generated. trace_dir: where the shipped traces are (written into the
   text as given; NULL is an error only when a trace replay is drawn). 0, or
   -1 with err set (buffer too small). SIM_GENERATE_LEN bytes are enough.
   The text's second line is "# summary: ..." (GPU types, variants, process,
   load). */
#define SIM_GENERATE_LEN 16384
/* the same for an edge scenario (--random-edge): name ge<seed>-<index>-... */
int sim_generate_edge(uint64_t seed, unsigned index, char *buf, size_t len, sim_err *err);
/* the same for gateway cases (the KV model: one model on a pool of one to
   three GPU types, the gateway as the incumbent, a Mooncake replay or a
   shared-prefix workload), named gw<seed>-<index>-...: a stream of their
   own, so that sim_generate's texts do not change */
int sim_generate_gateway(uint64_t seed, unsigned index, const char *trace_dir, char *buf,
                         size_t len, sim_err *err);
int sim_generate(uint64_t seed, unsigned index, const char *trace_dir, char *buf, size_t len,
                 sim_err *err);

#endif
