/*
 * generate.c - random scenarios for dlsched-sim(1) (--random): clusters and
 * workloads nobody designed by hand, to develop and test learned schedulers.
 *
 * sim_generate() writes the text of a scenario file (the format of
 * scenario.c): scenario `index` of family `seed`, drawn from its own
 * generator (splitmix64 seeding xoshiro256**), so that the same (seed,
 * index) gives the same text whatever else is generated. The figures and
 * their sources are listed in dlsched-sim(1), RANDOM SCENARIOS.
 */
#include "rng.h"
#include "sim.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

/* ---- the generator (rng.h: xoshiro256** seeded by splitmix64) ---------- */

/* (0, 1) */
static double u01(rng *r)
{
    return rng_unit(r);
}

static double unif(rng *r, double lo, double hi)
{
    return lo + (hi - lo) * u01(r);
}

/* lo..hi inclusive */
static int pick(rng *r, int lo, int hi)
{
    return lo + (int)(u01(r) * (hi - lo + 1));
}

static double round_to(double x, double step)
{
    return floor(x / step + 0.5) * step;
}

/* the stream of one generated scenario, (seed, index) under a family's
   salts: splitmix64 of the seed, xoshiro256** from that and the index; its
   first two draws are the warm-up and evaluation seeds (< 2^53, distinct) */
static void gen_stream(uint64_t seed, uint64_t seed_salt, unsigned index, uint64_t index_salt,
                       rng *r, uint64_t *run_seed, uint64_t *eval_seed)
{
    uint64_t x = seed ^ seed_salt;
    uint64_t h = splitmix(&x);
    rng_seed(r, h ^ ((uint64_t)index * 0xD1B54A32D192ED03ull + index_salt));
    *run_seed = rng_next(r) >> 11;
    *eval_seed = rng_next(r) >> 11;
    if (*eval_seed == *run_seed)
        *eval_seed ^= 1;
}

/* ---- the catalogues -------------------------------------------------------- */

/* speed factors relative to an A100 80GB SXM: decode = memory bandwidth
   ratio (2039 GB/s), prefill = dense FP16/BF16 tensor throughput ratio
   (312 TFLOPS); NVIDIA datasheets */
typedef struct {
    const char *name, *desc;
    double memory_gb, decode, prefill;
    int max_slots;
} gpu_kind;

static const gpu_kind gpus[] = {
    {"H100", "NVIDIA H100 SXM 80GB (3.35 TB/s, 989 TFLOPS)", 80, 1.64, 3.17, 32},
    {"A100-80G", "NVIDIA A100 SXM 80GB (2.04 TB/s, 312 TFLOPS)", 80, 1.00, 1.00, 32},
    {"A100-40G", "NVIDIA A100 SXM 40GB (1.56 TB/s, 312 TFLOPS)", 40, 0.76, 1.00, 24},
    {"L40S", "NVIDIA L40S 48GB (864 GB/s, 362 TFLOPS)", 48, 0.42, 1.16, 24},
    {"A10G", "NVIDIA A10G 24GB (600 GB/s, about 70 TFLOPS)", 24, 0.29, 0.22, 16},
    {"L4", "NVIDIA L4 24GB (300 GB/s, 121 TFLOPS)", 24, 0.147, 0.39, 16},
    {"T4", "NVIDIA T4 16GB (320 GB/s, 65 TFLOPS)", 16, 0.157, 0.21, 16},
};
#define N_GPU_KINDS (int)(sizeof gpus / sizeof *gpus)

/* weights (and what decode reads per token) in GB; accuracy: MMLU 5-shot of
   the base model */
typedef struct {
    const char *name, *desc;
    double params_b, memory_gb, accuracy;
} variant_kind;

typedef struct {
    const char *tag;
    int n;
    variant_kind v[6];
} family;

static const family families[] = {
    {"llama2",
     3,
     {{"llama2-7b", "Llama-2-7B fp16; MMLU 45.3 (Touvron et al. 2023, Table 3)", 7, 14, 0.453},
      {"llama2-13b", "Llama-2-13B fp16; MMLU 54.8 (Touvron et al. 2023, Table 3)", 13, 26,
       0.548},
      {"llama2-70b-awq", "Llama-2-70B 4-bit AWQ; MMLU 68.9 (Touvron et al. 2023, Table 3)", 70,
       38, 0.689}}},
    {"llama3",
     2,
     {{"llama3-8b", "Llama-3-8B fp16; MMLU 66.6 (Meta model card, 2024)", 8, 16, 0.666},
      {"llama3-70b-awq", "Llama-3-70B 4-bit AWQ; MMLU 79.5 (Meta model card, 2024)", 70, 40,
       0.795}}},
    {"qwen2.5",
     6,
     {{"qwen2.5-1.5b", "Qwen2.5-1.5B fp16; MMLU 60.9 (Qwen2.5 technical report, 2024)", 1.5,
       3.1, 0.609},
      {"qwen2.5-3b", "Qwen2.5-3B fp16; MMLU 65.6 (Qwen2.5 technical report, 2024)", 3, 6.2,
       0.656},
      {"qwen2.5-7b", "Qwen2.5-7B fp16; MMLU 74.2 (Qwen2.5 technical report, 2024)", 7.6, 15.2,
       0.742},
      {"qwen2.5-14b", "Qwen2.5-14B fp16; MMLU 79.7 (Qwen2.5 technical report, 2024)", 14.7,
       29.5, 0.797},
      {"qwen2.5-32b-int8", "Qwen2.5-32B 8-bit; MMLU 83.3 (Qwen2.5 technical report, 2024)",
       32.5, 34, 0.833},
      {"qwen2.5-72b-awq", "Qwen2.5-72B 4-bit AWQ; MMLU 86.1 (Qwen2.5 technical report, 2024)",
       72.7, 41, 0.861}}},
};
#define N_FAMILIES (int)(sizeof families / sizeof *families)

/* the shipped traces (rows: data/traces/README.md) */
typedef struct {
    const char *file, *format, *tag;
    double rows;
} trace_kind;

static const trace_kind traces[] = {
    {"AzureLLMInferenceTrace_code.csv", "azure", "azure-code", 8819},
    {"AzureLLMInferenceTrace_conv.csv", "azure", "azure-conv", 19366},
    {"mooncake_conversation_trace.jsonl", "mooncake", "mooncake", 12031},
};
#define N_TRACES (int)(sizeof traces / sizeof *traces)

/* a variant fits when the variants loaded on a GPU take at most this share of
   its memory (the rest: KV cache, activations) */
#define MEM_SHARE 0.9

/* ---- text ------------------------------------------------------------------ */

typedef struct {
    char *buf;
    size_t len, at;
    int overflow;
} out;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void put(out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = o->at < o->len ? o->len - o->at : 0;
    int n = vsnprintf(room ? o->buf + o->at : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room)
        o->overflow = 1;
    if (n > 0)
        o->at += (size_t)n;
}

static void put_dist(out *o, const char *key, const sim_dist *d)
{
    switch (d->kind) {
    case SIM_DIST_EXP: put(o, "%s = exponential %g %g\n", key, d->a, d->max); break;
    case SIM_DIST_UNIFORM: put(o, "%s = uniform %g %g\n", key, d->a, d->b); break;
    default: put(o, "%s = lognormal %g %g %g\n", key, d->a, d->b, d->max); break;
    }
}

/* input: 70% lognormal, 15% exponential, 15% uniform */
static sim_dist draw_dist(rng *r, int output)
{
    static const double in_caps[] = {4096, 8192, 16384, 32768};
    static const double out_caps[] = {512, 1024, 2048, 4096};
    sim_dist d = {0};
    double u = u01(r);
    const double *caps = output ? out_caps : in_caps;
    double cap = caps[pick(r, 0, 3)];
    if (u < 0.7) {
        d.kind = SIM_DIST_LOGNORMAL;
        d.a = round_to(output ? unif(r, 40, 400) : unif(r, 150, 2000), 1);
        d.b = round_to(output ? unif(r, 0.4, 1.2) : unif(r, 0.5, 1.5), 0.01);
        d.max = cap;
    } else if (u < 0.85) {
        d.kind = SIM_DIST_EXP;
        d.a = round_to(output ? unif(r, 50, 400) : unif(r, 200, 2000), 1);
        d.max = cap;
    } else {
        d.kind = SIM_DIST_UNIFORM;
        d.a = round_to(output ? unif(r, 10, 100) : unif(r, 50, 500), 1);
        d.b = d.a + round_to(output ? unif(r, 50, 800) : unif(r, 200, 4000), 1);
    }
    return d;
}

static int gen_fail(sim_err *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int sim_generate(uint64_t seed, unsigned index, const char *trace_dir, char *buf, size_t len,
                 sim_err *err)
{
    rng r;
    uint64_t run_seed, eval_seed;
    gen_stream(seed, 0x6A09E667F3BCC909ull, index, 0x3C6EF372FE94F82Bull, &r, &run_seed, &eval_seed);

    /* the model family and its variants (a random subset, in size order) */
    const family *fam = &families[pick(&r, 0, N_FAMILIES - 1)];
    int nv = pick(&r, 1, fam->n < 4 ? fam->n : 4);
    int vk[SIM_MAX_VAR], chosen[6] = {0};
    for (int k = 0; k < nv;) {
        int i = pick(&r, 0, fam->n - 1);
        if (!chosen[i])
            chosen[i] = 1, k++;
    }
    nv = 0;
    for (int i = 0; i < fam->n; i++)
        if (chosen[i])
            vk[nv++] = i;
    const variant_kind *small = &fam->v[vk[0]];

    /* GPU types: distinct, among those that hold the smallest variant */
    int eligible[N_GPU_KINDS], ne = 0;
    for (int i = 0; i < N_GPU_KINDS; i++)
        if (small->memory_gb <= MEM_SHARE * gpus[i].memory_gb)
            eligible[ne++] = i;
    int ng = pick(&r, 1, ne < 4 ? ne : 4);
    int gk[4];
    for (int k = 0; k < ng; k++) {
        int j = pick(&r, k, ne - 1); /* partial Fisher-Yates */
        int t = eligible[k];
        eligible[k] = eligible[j];
        eligible[j] = t;
        gk[k] = eligible[k];
    }
    static const int slot_choices[] = {4, 6, 8, 12, 16, 24, 32};
    int count[4], slots[4];
    uint32_t mask[4];
    for (int g = 0; g < ng; g++) {
        const gpu_kind *G = &gpus[gk[g]];
        count[g] = pick(&r, 1, 6);
        int top = 0;
        while (top + 1 < 7 && slot_choices[top + 1] <= G->max_slots)
            top++;
        slots[g] = slot_choices[pick(&r, 0, top)];
        /* the smallest variant always; each other one, in random order, with
           probability 0.8 when it still fits */
        mask[g] = 1;
        double used = small->memory_gb;
        int order[SIM_MAX_VAR];
        for (int k = 1; k < nv; k++)
            order[k] = k;
        for (int k = 1; k < nv; k++) {
            int j = pick(&r, k, nv - 1);
            int t = order[k];
            order[k] = order[j];
            order[j] = t;
        }
        for (int k = 1; k < nv; k++) {
            double m = fam->v[vk[order[k]]].memory_gb;
            int want = u01(&r) < 0.8;
            if (want && used + m <= MEM_SHARE * G->memory_gb) {
                mask[g] |= 1u << order[k];
                used += m;
            }
        }
    }
    /* profiles: drawn for every (variant, type) pair, used where loaded */
    sim_profile prof[SIM_MAX_VAR][4];
    for (int v = 0; v < nv; v++)
        for (int g = 0; g < ng; g++) {
            const variant_kind *V = &fam->v[vk[v]];
            const gpu_kind *G = &gpus[gk[g]];
            sim_profile *p = &prof[v][g];
            p->set = 1;
            p->overhead_ms = round_to((12 + 0.4 * V->params_b) / sqrt(G->prefill) *
                                          unif(&r, 0.85, 1.15), 0.1);
            /* 50% of the A100's 312 TFLOPS, 2 FLOPs per parameter per token */
            double tps = 78000.0 * G->prefill / V->params_b * unif(&r, 0.85, 1.15);
            p->prefill_tps = round_to(tps, 10);
            /* the weights read once per token at 70% of the A100's bandwidth */
            p->tpot_ms = round_to(0.7 * V->memory_gb / G->decode * unif(&r, 0.85, 1.15), 0.01);
            p->growth = round_to((0.035 + 0.0006 * V->params_b) / pow(G->decode, 0.3) *
                                     unif(&r, 0.85, 1.15), 0.001);
        }
    /* drop the variants no type loads (the smallest is loaded everywhere) */
    uint32_t any = 0;
    for (int g = 0; g < ng; g++)
        any |= mask[g];
    int keep[SIM_MAX_VAR], nk = 0;
    for (int v = 0; v < nv; v++)
        if (any >> v & 1)
            keep[nk++] = v;

    /* SLO, tokens */
    double slo_base = round_to(unif(&r, 500, 4000), 10);
    double slo_tok = round_to(unif(&r, 15, 80), 1);
    double penalty = round_to(unif(&r, 0.5, 2), 0.01);
    sim_dist din = draw_dist(&r, 0), dout = draw_dist(&r, 1);

    /* arrivals: poisson 25%, mmpp 25%, diurnal 20%, each trace 10% */
    double u = u01(&r);
    int process = u < 0.25 ? SIM_ARR_POISSON : u < 0.5 ? SIM_ARR_MMPP
                  : u < 0.7 ? SIM_ARR_DIURNAL : SIM_ARR_TRACE;
    const trace_kind *tr = &traces[pick(&r, 0, N_TRACES - 1)];
    /* mmpp: 0.51-1.09, so that its rounded rates keep the mean in 0.5-1.1 */
    double load = round_to(unif(&r, process == SIM_ARR_MMPP ? 0.51 : 0.5,
                                process == SIM_ARR_MMPP ? 1.09 : 1.1), 0.01);
    int load_var = keep[pick(&r, 0, nk - 1)];
    double warm_n = unif(&r, 100000, 200000); /* warm-up requests */

    /* capacity, as sim_scenario_finish computes it (mean request sizes) */
    sim_scenario sc;
    memset(&sc, 0, sizeof sc);
    sc.n_gpu = ng;
    sc.n_var = nv;
    for (int g = 0; g < ng; g++) {
        sc.gpu[g].count = count[g];
        sc.gpu[g].slots = slots[g];
        sc.gpu[g].load_mask = mask[g];
        for (int v = 0; v < nv; v++) {
            sc.var[v].prof[g] = prof[v][g];
            sc.var[v].prof[g].prefill_tps /= 1000.0;
        }
    }
    sc.in_tokens = din;
    sc.out_tokens = dout;
    sc.load_variant = load_var;
    sc.process = SIM_ARR_POISSON;
    sc.load = load;
    double capacity = 0, rate = 0;
    if (process != SIM_ARR_TRACE) {
        if (sim_scenario_finish(&sc, err))
            return -1;
        capacity = sc.capacity;
        rate = sc.rate;
        if (!(capacity > 0))
            return gen_fail(err, "generated scenario %u: capacity %g", index, capacity);
    }
    double warmup_s = 0, eval_s = 0;
    if (process != SIM_ARR_TRACE) {
        warmup_s = round_to(warm_n / rate, 1);
        eval_s = 30000 / rate;
        if (eval_s > 1800)
            eval_s = 1800;
        eval_s = round_to(eval_s, 1);
        if (warmup_s < 1)
            warmup_s = 1;
        if (eval_s < 1)
            eval_s = 1;
    }
    /* mmpp: calm, (middle,) burst, as multiples of the mean, normalised
       below so that the dwell-weighted mean is exactly `load` */
    int ns = u01(&r) < 0.6 ? 2 : 3;
    double mult[3], dwell[3];
    double burst = unif(&r, 1.1, 2.0), calm = unif(&r, 0.2, 0.9);
    mult[0] = calm;
    dwell[0] = round_to(unif(&r, 30, 300), 1);
    if (ns == 3) {
        mult[1] = unif(&r, calm, burst);
        dwell[1] = round_to(unif(&r, 10, 300), 1);
    }
    mult[ns - 1] = burst;
    dwell[ns - 1] = round_to(unif(&r, 10, 120), 1);
    double num = 0, den = 0;
    for (int i = 0; i < ns; i++)
        num += mult[i] * dwell[i], den += dwell[i];
    for (int i = 0; i < ns; i++)
        mult[i] = round_to(mult[i] / (num / den) * load, 0.001);
    /* diurnal */
    double amplitude = round_to(unif(&r, 0.2, 0.8), 0.01);
    double period = round_to(unif(&r, 300, 3600), 10);
    if (process == SIM_ARR_DIURNAL && period > eval_s)
        period = eval_s; /* at least one cycle in the evaluation */
    /* trace */
    static const double shares[] = {0.5, 0.6, 0.7};
    double share = shares[pick(&r, 0, 2)];
    int passes = (int)ceil(warm_n / (tr->rows * share));
    if (passes < 1)
        passes = 1;
    if (process == SIM_ARR_TRACE) {
        if (!trace_dir || !*trace_dir)
            return gen_fail(err, "generated scenario g%llu-%u replays %s: no trace directory",
                            (unsigned long long)seed, index, tr->file);
        if (strlen(trace_dir) + strlen(tr->file) + 2 > SIM_PATH)
            return gen_fail(err, "trace directory '%s': path too long", trace_dir);
    }

    /* ---- the text ---- */
    const char *ptag = process == SIM_ARR_POISSON ? "poisson"
                       : process == SIM_ARR_MMPP ? "mmpp"
                       : process == SIM_ARR_DIURNAL ? "diurnal" : tr->tag;
    out o = {buf, len, 0, 0};
    if (len)
        buf[0] = 0;
    put(&o, "# Generated by dlsched-sim --random (sim_generate): family seed %llu, index %u.\n",
        (unsigned long long)seed, index);
    put(&o, "# summary: ");
    for (int g = 0; g < ng; g++)
        put(&o, "%s%s x%d", g ? ", " : "", gpus[gk[g]].name, count[g]);
    put(&o, "; ");
    for (int k = 0; k < nk; k++)
        put(&o, "%s%s", k ? " " : "", fam->v[vk[keep[k]]].name);
    if (process == SIM_ARR_MMPP)
        put(&o, "; mmpp %d states", ns);
    else if (process == SIM_ARR_TRACE)
        put(&o, "; trace %s", tr->tag);
    else
        put(&o, "; %s", ptag);
    put(&o, "; load %.2f\n", load);
    put(&o, "# The GPU speeds, model sizes and accuracies come from a catalogue,\n"
            "# the profiles from a rough model with +-15%% jitter: see dlsched-sim(1),\n"
            "# RANDOM SCENARIOS.\n");
    put(&o, "[scenario]\nname = g%llu-%u-%s-%s\n", (unsigned long long)seed, index, ptag,
        fam->tag);
    put(&o, "seed = %llu\neval_seed = %llu\n", (unsigned long long)run_seed,
        (unsigned long long)eval_seed);
    if (process != SIM_ARR_TRACE)
        put(&o, "# about %.0f warm-up and %.0f evaluation requests\nwarmup_s = %g\neval_s = %g\n",
            warmup_s * rate, eval_s * rate, warmup_s, eval_s);
    put(&o, "window_s = 20\nslo_base_ms = %g\nslo_per_token_ms = %g\nmiss_penalty = %g\n",
        slo_base, slo_tok, penalty);
    for (int g = 0; g < ng; g++) {
        const gpu_kind *G = &gpus[gk[g]];
        put(&o, "\n[gpu %s]\n# %s: decode x%g, prefill x%g of an A100 80GB\n", G->name, G->desc,
            G->decode, G->prefill);
        put(&o, "count = %d\nslots = %d\nmemory_gb = %g\nload =", count[g], slots[g],
            G->memory_gb);
        for (int k = 0; k < nk; k++)
            if (mask[g] >> keep[k] & 1)
                put(&o, " %s", fam->v[vk[keep[k]]].name);
        put(&o, "\n");
    }
    for (int k = 0; k < nk; k++) {
        int v = keep[k];
        const variant_kind *V = &fam->v[vk[v]];
        put(&o, "\n[variant %s]\n# %s\naccuracy = %g\nmemory_gb = %g\n", V->name, V->desc,
            V->accuracy, V->memory_gb);
        put(&o, "# profile GPU = overhead_ms prefill_tokens_per_s tpot_ms growth\n");
        for (int g = 0; g < ng; g++)
            if (mask[g] >> v & 1)
                put(&o, "profile %s = %g %g %g %g\n", gpus[gk[g]].name, prof[v][g].overhead_ms,
                    prof[v][g].prefill_tps, prof[v][g].tpot_ms, prof[v][g].growth);
    }
    put(&o, "\n[arrivals]\nprocess = %s\n",
        process == SIM_ARR_TRACE ? "trace" : ptag);
    put(&o, "load_variant = %s\n", fam->v[vk[load_var]].name);
    if (process == SIM_ARR_MMPP) {
        put(&o, "load_rates =");
        for (int i = 0; i < ns; i++)
            put(&o, " %g", mult[i]);
        put(&o, "\ndwell_s =");
        for (int i = 0; i < ns; i++)
            put(&o, " %g", dwell[i]);
        put(&o, "\n");
    } else {
        put(&o, "load = %g\n", load);
    }
    if (process == SIM_ARR_DIURNAL)
        put(&o, "amplitude = %g\nperiod_s = %g\n", amplitude, period);
    if (process == SIM_ARR_TRACE) {
        size_t tl = strlen(trace_dir);
        put(&o, "trace = %s%s%s\nformat = %s\ntrain_share = %g\nwarmup_passes = %d\n", trace_dir,
            trace_dir[tl - 1] == '/' ? "" : "/", tr->file, tr->format, share, passes);
    } else {
        put_dist(&o, "input_tokens", &din);
        put_dist(&o, "output_tokens", &dout);
    }
    /* (a learned policy that piles up more requests than ticket_capacity
       expires the oldest tickets; dlsched-sim counts them and goes on) */
    put(&o, "\n[learning]\napprentice = 5000\n");
    if (o.overflow)
        return gen_fail(err, "generated scenario g%llu-%u: %zu bytes needed, the buffer has %zu",
                        (unsigned long long)seed, index, o.at + 1, len);
    return 0;
}

/* ---- edge scenarios (--random-edge) ---------------------------------------
   One device (the edge workload has one accelerator); 1 to 4 streams and
   throttling on or off by the index (index % 4 + 1 streams; thermal off for
   index / 4 odd), so any 8 consecutive indexes cover every combination; the
   rest drawn: the device's speed against the Orin Nano figures of
   f-edge-drive.scn (x 0.4 .. 1.6: Orin NX/AGX-class to slower boards), 2 or
   3 of the YOLOv8 n/s/m models, 2 to 4 input sizes, stream rates, deadlines,
   priorities and costs, 1 to 4 scenes from four archetypes with drawn
   objects, weights and resolution curves, 1 or 2 power modes, the thermal
   constants (throttling, when on, reachable at full load). Drives as long
   as f's: two hours to learn on, 30 minutes evaluated. */
typedef struct {
    const char *name;
    double objects, dl_lo, res_loss; /* mean objects; deadline scale low end;
                                        accuracy lost at 320 px */
} scene_kind;

static const scene_kind scene_kinds[] = {
    {"highway", 6, 1.0, 0.20}, {"urban", 25, 0.8, 0.38}, {"night", 8, 1.0, 0.45},
    {"rain", 12, 0.85, 0.40}};

int sim_generate_edge(uint64_t seed, unsigned index, char *buf, size_t len, sim_err *err)
{
    rng r;
    uint64_t run_seed, eval_seed;
    gen_stream(seed, 0xBB67AE8584CAA73Bull, index, 0xA54FF53A5F1D36F1ull, &r, &run_seed, &eval_seed);
    int ns = (int)(index % 4) + 1, thermal = (index / 4) % 2 == 0;
    double speed = round_to(unif(&r, 0.4, 1.6), 0.01);
    static const char *const mname[] = {"yolov8n", "yolov8s", "yolov8m"};
    static const double macc[] = {0.373, 0.449, 0.502}, mlat[] = {7.3, 11.4, 23.6};
    int m_lo = pick(&r, 0, 1), m_hi = m_lo == 1 ? 2 : pick(&r, 1, 2);
    static const int sizes[] = {256, 320, 416, 480, 512, 640};
    int nr = pick(&r, 2, 4), res[4], used[6] = {0};
    used[5] = 1; /* 640, the reference, always */
    for (int k = 1; k < nr;) {
        int i = pick(&r, 0, 4);
        if (!used[i])
            used[i] = 1, k++;
    }
    nr = 0;
    for (int i = 0; i < 6; i++)
        if (used[i])
            res[nr++] = sizes[i];
    int nsc = pick(&r, 1, 4), sk[4];
    int order[4] = {0, 1, 2, 3};
    for (int k = 0; k < nsc; k++) {
        int j = pick(&r, k, 3), t = order[k];
        order[k] = order[j];
        order[j] = t;
        sk[k] = order[k];
    }
    int two_modes = u01(&r) < 0.5;
    out o = {buf, len, 0, 0};
    char name[64];
    snprintf(name, sizeof name, "ge%llu-%u-%ds-%s", (unsigned long long)seed, index, ns,
             thermal ? "hot" : "cool");
    put(&o, "# generated by dlsched-sim --random-edge (seed %llu, index %u)\n",
        (unsigned long long)seed, index);
    put(&o, "# summary: edge, %d stream%s, thermal %s, speed x%.2f, models %s..%s, %d sizes, "
        "%d scene%s, %d power mode%s\n", ns, ns > 1 ? "s" : "", thermal ? "on" : "off",
        speed, mname[m_lo], mname[m_hi], nr, nsc, nsc > 1 ? "s" : "", two_modes ? 2 : 1,
        two_modes ? "s" : "");
    put(&o, "[scenario]\nname = %s\nworkload = edge\nseed = %llu\neval_seed = %llu\n"
        "warmup_s = 7200\neval_s = 1800\nwindow_s = 10\nmiss_penalty = 1\nskip_penalty = %.2f\n",
        name, (unsigned long long)run_seed, (unsigned long long)eval_seed,
        round_to(unif(&r, 0.3, 0.8), 0.01));
    put(&o, "\n[device gen]\nscheduling = %s\nresolutions =", u01(&r) < 0.8 ? "priority" : "fifo");
    for (int k = 0; k < nr; k++)
        put(&o, " %d", res[k]);
    put(&o, "\nreference_px = 640\nfixed_share = %.2f\njitter = %.2f %.2f\n",
        round_to(unif(&r, 0.15, 0.45), 0.01), round_to(unif(&r, 0.9, 1.0), 0.01),
        round_to(unif(&r, 1.05, 1.4), 0.01));
    /* throttling reachable: full load heats the device 5-30% of rise_c past
       throttle_c */
    double amb = round_to(unif(&r, 20, 45), 1), rise = round_to(unif(&r, 40, 75), 1);
    double thr = round_to(amb + rise * unif(&r, 0.7, 0.95), 1);
    put(&o, "thermal = %s\nambient_c = %g\nrise_c = %g\ntau_s = %g\nthrottle_c = %g\n"
        "recover_c = %g\nthrottle_clock = %.2f\nidle_w = 4\n", thermal ? "on" : "off", amb, rise,
        round_to(unif(&r, 15, 90), 1), thr, thr - round_to(unif(&r, 3, 10), 1),
        round_to(unif(&r, 0.6, 0.85), 0.01));
    put(&o, "\n[mode full]\nmhz = 625\nwatts = 15\ndwell_s = %g\n", round_to(unif(&r, 120, 900), 1));
    if (two_modes)
        put(&o, "[mode low]\nmhz = %g\nwatts = %g\ndwell_s = %g\n", round_to(unif(&r, 300, 500), 1),
            round_to(unif(&r, 5, 10), 1), round_to(unif(&r, 30, 180), 1));
    static const double rates[] = {30, 20, 15, 10};
    for (int s = 0; s < ns; s++) {
        double hz = rates[pick(&r, 0, 3)];
        double period = 1000.0 / hz;
        put(&o, "\n[stream s%d]\nrate_hz = %g\ndeadline_ms = %.1f\nphase_ms = %.1f\n"
            "priority = %d\ncost = %.2f\n", s, hz, round_to(period * unif(&r, 0.6, 1.0), 0.1),
            round_to(unif(&r, 0, period), 0.1), s == 0 ? 0 : pick(&r, 0, 2),
            round_to(unif(&r, 0.7, 1.5), 0.01));
    }
    for (int m = m_lo; m <= m_hi; m++)
        put(&o, "\n[model %s]\naccuracy = %g\nlatency_ms = %.2f\npost_ms_per_object = %.3f\n",
            mname[m], macc[m], mlat[m] / speed, round_to(unif(&r, 0.02, 0.15), 0.001));
    for (int k = 0; k < nsc; k++) {
        const scene_kind *K = &scene_kinds[sk[k]];
        put(&o, "\n[scene %s]\nshare = %.2f\ndwell_s = %g %g\nobjects = %.1f\n"
            "deadline_scale = %.2f\nres_accuracy =", K->name, round_to(unif(&r, 0.5, 3), 0.01),
            round_to(unif(&r, 30, 120), 1), round_to(unif(&r, 150, 400), 1),
            round_to(K->objects * unif(&r, 0.6, 1.4), 0.1), round_to(unif(&r, K->dl_lo, 1.0), 0.01));
        double loss = K->res_loss * unif(&r, 0.7, 1.3);
        for (int i = 0; i < nr; i++) {
            double f = (double)res[i] / 640.0; /* loss at 320 px, scaling with (1 - f) */
            double a = 1 - loss * (1 - f) / 0.5;
            put(&o, " %.3f", a < 0.05 ? 0.05 : a);
        }
        put(&o, "\nweights =");
        for (int s = 0; s < ns; s++)
            put(&o, " s%d:%.2f", s, s == 0 ? 3.0 : round_to(unif(&r, 0.5, 3), 0.01));
        put(&o, "\n");
    }
    put(&o, "\n[learning]\napprentice = 5000\n");
    if (o.overflow)
        return gen_fail(err, "generated edge scenario %u does not fit in %zu bytes", index, len);
    return 0;
}

/* ---- gateway cases (--random-gateway): the KV model ----------------------- */

/* a model with its KV size: 2 (K, V) x layers x KV heads x head dims x 2
   bytes (BF16), from each model's config.json */
typedef struct {
    const char *name, *desc;
    double params_b, memory_gb, kv_kb;
} kv_model;

static const kv_model kv_models[] = {
    {"llama3.1-8b", "Llama-3.1-8B BF16: 32 layers, 8 KV heads x 128", 8.0, 16.1, 128},
    {"qwen2.5-7b", "Qwen2.5-7B BF16: 28 layers, 4 KV heads x 128", 7.6, 15.2, 56},
    {"qwen2.5-14b", "Qwen2.5-14B BF16: 48 layers, 8 KV heads x 128", 14.7, 29.5, 192},
    {"qwen3-32b", "Qwen3-32B BF16: 64 layers, 8 KV heads x 128", 32.8, 65.5, 256},
};
#define N_KV_MODELS (int)(sizeof kv_models / sizeof *kv_models)

int sim_generate_gateway(uint64_t seed, unsigned index, const char *trace_dir, char *buf,
                         size_t len, sim_err *err)
{
    /* its own stream: the plain scenarios of (seed, index) are untouched */
    rng r;
    uint64_t run_seed, eval_seed;
    gen_stream(seed, 0xBB67AE8584CAA73Bull, index, 0x510E527FADE682D1ull, &r, &run_seed, &eval_seed);
    const kv_model *M = &kv_models[pick(&r, 0, N_KV_MODELS - 1)];
    /* one to three GPU types that hold the model with room for a cache */
    int eligible[N_GPU_KINDS], ne = 0;
    for (int i = 0; i < N_GPU_KINDS; i++)
        if (M->memory_gb <= 0.6 * gpus[i].memory_gb)
            eligible[ne++] = i;
    int tp = ne == 0 ? 2 : 1; /* too large for one GPU: pairs (tensor parallel) */
    if (ne == 0)
        for (int i = 0; i < N_GPU_KINDS; i++)
            if (M->memory_gb <= 0.6 * 2 * gpus[i].memory_gb)
                eligible[ne++] = i;
    if (ne == 0)
        return gen_fail(err, "gateway scenario %u: no GPU holds %s", index, M->name);
    int ng = pick(&r, 1, ne < 3 ? ne : 3);
    int gk[3], count[3];
    for (int k = 0; k < ng; k++) {
        int j = pick(&r, k, ne - 1);
        int t = eligible[k];
        eligible[k] = eligible[j];
        eligible[j] = t;
        gk[k] = eligible[k];
        count[k] = pick(&r, 1, 4);
    }
    if (ng == 1 && count[0] == 1)
        count[0] = 2; /* a pool: at least two servers to choose from */
    sim_profile prof[3];
    double pf_cap = 0; /* prompt tokens per second the pool prefills */
    double kv_tok[3];  /* tokens a server's KV cache holds */
    for (int g = 0; g < ng; g++) {
        const gpu_kind *G = &gpus[gk[g]];
        sim_profile *p = &prof[g];
        p->overhead_ms = round_to((12 + 0.4 * M->params_b) / sqrt(G->prefill * tp) *
                                      unif(&r, 0.85, 1.15), 0.1);
        p->prefill_tps = round_to(78000.0 * G->prefill * tp / M->params_b *
                                      unif(&r, 0.85, 1.15), 10);
        p->tpot_ms = round_to(0.7 * M->memory_gb / (G->decode * tp) * unif(&r, 0.85, 1.15),
                              0.01);
        p->growth = round_to(unif(&r, 0.02, 0.06), 0.001);
        pf_cap += count[g] * p->prefill_tps;
        kv_tok[g] = (G->memory_gb * tp * 0.9 - M->memory_gb) * 1024 * 1024 / M->kv_kb;
    }
    /* workload: a Mooncake replay (30%) or shared prefixes */
    int trace = u01(&r) < 0.3;
    int groups = 8 << pick(&r, 0, 5);                      /* 8 .. 256 */
    double prefix = round_to(unif(&r, 1000, 8000), 100);
    double in_med = round_to(unif(&r, 100, 1000), 10), out_med = round_to(unif(&r, 50, 400), 10);
    double mean_in = trace ? 12035 : prefix + in_med * exp(0.5);
    double mean_out = trace ? 343 : out_med * exp(0.32);
    /* the rate: a share of the lesser of two bounds: what the pool prefills
       without any cache hit, and what it decodes with every KV cache full
       (C requests at once, each out tokens at the batch's slow-down) */
    double kv_rate = 0;
    for (int g = 0; g < ng; g++) {
        double c = kv_tok[g] / (mean_in + mean_out);
        c = c < 1 ? 1 : c > 256 ? 256 : c;
        kv_rate += count[g] * c /
                   (mean_out * prof[g].tpot_ms * (1 + prof[g].growth * (c - 1)) / 1000.0 +
                    mean_in / prof[g].prefill_tps);
    }
    double pf_rate = pf_cap / mean_in;
    double load = round_to(unif(&r, 0.4, 0.95), 0.01);
    double rate = load * (pf_rate < kv_rate ? pf_rate : kv_rate);
    double slo_base = round_to(unif(&r, 1000, 5000), 10);
    double slo_tok = round_to(unif(&r, 20, 80), 1);
    if (trace && (!trace_dir || !*trace_dir))
        return gen_fail(err, "gateway scenario gw%llu-%u replays the Mooncake trace: no trace "
                        "directory", (unsigned long long)seed, index);
    out o = {buf, len, 0, 0};
    if (len)
        buf[0] = 0;
    put(&o, "# Generated by dlsched-sim --random-gateway (sim_generate_gateway): family seed "
            "%llu, index %u.\n", (unsigned long long)seed, index);
    put(&o, "# summary: ");
    for (int g = 0; g < ng; g++)
        put(&o, "%s%s%s x%d", g ? ", " : "", gpus[gk[g]].name, tp > 1 ? "x2" : "", count[g]);
    put(&o, "; %s; %s; load %.2f\n", M->name, trace ? "trace mooncake" : "shared prefixes", load);
    put(&o, "[scenario]\nname = gw%llu-%u-%s-%s\n", (unsigned long long)seed, index,
        trace ? "mooncake" : "prefix", M->name);
    put(&o, "seed = %llu\neval_seed = %llu\n", (unsigned long long)run_seed,
        (unsigned long long)eval_seed);
    if (!trace)
        put(&o, "warmup_s = %g\neval_s = %g\n", round_to(40000 / rate, 1),
            round_to(15000 / rate, 1));
    put(&o, "window_s = 20\nslo_base_ms = %g\nslo_per_token_ms = %g\nmiss_penalty = 1\n"
            "kv_block_tokens = 16\nscrape_ms = 50\n", slo_base, slo_tok);
    for (int g = 0; g < ng; g++) {
        const gpu_kind *G = &gpus[gk[g]];
        put(&o, "\n[gpu %s%s]\n# %s%s\ncount = %d\nslots = 256\nmemory_gb = %g\nload = %s\n",
            G->name, tp > 1 ? "x2" : "", tp > 1 ? "two x " : "", G->desc, count[g],
            G->memory_gb * tp, M->name);
    }
    put(&o, "\n[variant %s]\n# %s\naccuracy = 1\nmemory_gb = %g\nkv_kb_per_token = %g\n",
        M->name, M->desc, M->memory_gb, M->kv_kb);
    put(&o, "# profile GPU = overhead_ms prefill_tokens_per_s tpot_ms growth\n");
    for (int g = 0; g < ng; g++)
        put(&o, "profile %s%s = %g %g %g %g\n", gpus[gk[g]].name, tp > 1 ? "x2" : "",
            prof[g].overhead_ms, prof[g].prefill_tps, prof[g].tpot_ms, prof[g].growth);
    if (trace) {
        size_t tl = strlen(trace_dir);
        put(&o, "\n[arrivals]\nprocess = trace\ntrace = %s%smooncake_conversation_trace.jsonl\n"
                "format = mooncake\nprefix_block_tokens = 512\nspeedup = %g\n"
                "train_share = 0.6\nwarmup_passes = 2\n",
            trace_dir, trace_dir[tl - 1] == '/' ? "" : "/", round_to(rate / 3.40, 0.01));
    } else {
        put(&o, "\n[arrivals]\nprocess = poisson\nrate = %g\nprefix_groups = %d\n"
                "prefix_tokens = %g\nprefix_block_tokens = 64\n"
                "input_tokens = lognormal %g 1.0 %g\noutput_tokens = lognormal %g 0.8 %g\n",
            round_to(rate, 0.01), groups, prefix, in_med, 8 * in_med, out_med, 8 * out_med);
    }
    put(&o, "\n[learning]\napprentice = 5000\nincumbent = gateway\n");
    if (o.overflow)
        return gen_fail(err, "gateway scenario gw%llu-%u: %zu bytes needed, the buffer has %zu",
                        (unsigned long long)seed, index, o.at + 1, len);
    return 0;
}
