/* check_blasinfo.c - which kernels OpenBLAS runs, and the verdict on them
 * (src/backends/cpu/blasinfo.c).
 *
 * "verdict": dls_blas_judge() on faked core names and faked CPUs, against
 * this file's own copy of the mapping (dlsched(7) BLAS): every core name
 * of OpenBLAS 0.3.21's DYNAMIC_ARCH list on every kind of CPU, the exact
 * messages, unknown names, unknown CPUs (non-x86), and CPU flags the OS
 * does not support.
 * "process": the real values agree with OpenBLAS and /proc/cpuinfo, and
 * reach the agents' statistics and dlsched_last_error().
 * "coretype": OpenBLAS reads OPENBLAS_CORETYPE once, when it is loaded,
 * so this program runs itself again (the case "child" alone, through
 * Check's CK_RUN_SUITE/CK_RUN_CASE) with OPENBLAS_CORETYPE=Prescott and
 * with the CPU's best core, and the child checks its agents. Skipped when
 * the CPU lacks AVX2 and FMA (Prescott may be right there) or OpenBLAS has
 * no DYNAMIC_ARCH (it ignores the variable). */
#include <cblas.h>
#include <errno.h>
#include <stddef.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests.h"

#include "backends/cpu/blasinfo.h"

extern char **environ;

/* ---- the mapping, as documented ------------------------------------------------- */

enum { TB_SSE, TB_AVX, TB_AVX2, TB_AVX512 };

static const struct {
    const char *name;
    int kern;
} tb_cores[] = {
    {"Katmai", TB_SSE},      {"Coppermine", TB_SSE},   {"Northwood", TB_SSE},
    {"Prescott", TB_SSE},    {"Banias", TB_SSE},       {"Atom", TB_SSE},
    {"Core2", TB_SSE},       {"Penryn", TB_SSE},       {"Dunnington", TB_SSE},
    {"Nehalem", TB_SSE},     {"Athlon", TB_SSE},       {"Opteron", TB_SSE},
    {"Opteron_SSE3", TB_SSE}, {"Barcelona", TB_SSE},   {"Nano", TB_SSE},
    {"Bobcat", TB_SSE},      {"Generic", TB_SSE},      {"Sandybridge", TB_AVX},
    {"Bulldozer", TB_AVX},   {"Piledriver", TB_AVX},   {"Steamroller", TB_AVX},
    {"Haswell", TB_AVX2},    {"Zen", TB_AVX2},         {"Excavator", TB_AVX2},
    {"SkylakeX", TB_AVX512}, {"Cooperlake", TB_AVX512}, {"SapphireRapids", TB_AVX512},
};
#define TB_NCORES (sizeof tb_cores / sizeof tb_cores[0])

#define TB_ZMM (DLS_CPU_AVX512F | DLS_CPU_AVX512DQ | DLS_CPU_AVX512BW | DLS_CPU_AVX512VL)
#define TB_YMM (DLS_CPU_AVX2 | DLS_CPU_FMA)

/* faked CPUs, and the best core each allows (NULL: none judged) */
static const struct {
    const char *what, *vendor;
    unsigned family, model, flags;
    int ymm, zmm;
    const char *best, *label;
    int best_kern;
} tb_cpus[] = {
    {"Xeon, AVX-512", "GenuineIntel", 6, 207, TB_YMM | TB_ZMM, 1, 1, "SkylakeX", "Intel",
     TB_AVX512},
    {"Haswell, AVX2", "GenuineIntel", 6, 63, TB_YMM, 1, 1, "Haswell", "Intel", TB_AVX2},
    {"Knights Landing: AVX-512F without VL", "GenuineIntel", 6, 87,
     TB_YMM | DLS_CPU_AVX512F, 1, 1, "Haswell", "Intel", TB_AVX2},
    {"Sandy Bridge: no AVX2", "GenuineIntel", 6, 45, 0, 1, 0, NULL, "Intel", 0},
    {"AVX2 without FMA", "GenuineIntel", 6, 63, DLS_CPU_AVX2, 1, 1, NULL, "Intel", 0},
    {"FMA without AVX2", "GenuineIntel", 6, 58, DLS_CPU_FMA, 1, 1, NULL, "Intel", 0},
    {"Zen 4, AVX-512", "AuthenticAMD", 25, 17, TB_YMM | TB_ZMM, 1, 1, "Zen", "AMD", TB_AVX2},
    {"Zen 2", "AuthenticAMD", 23, 49, TB_YMM, 1, 0, "Zen", "AMD", TB_AVX2},
    {"Hygon Dhyana", "HygonGenuine", 24, 0, TB_YMM, 1, 0, "Zen", "Hygon", TB_AVX2},
    {"Zhaoxin", "  Shanghai  ", 7, 59, TB_YMM, 1, 0, "Haswell", "Shanghai", TB_AVX2},
    {"other vendor, AVX-512", "CentaurHauls", 6, 15, TB_YMM | TB_ZMM, 1, 1, "Haswell",
     "CentaurHauls", TB_AVX2},
    {"AVX-512 CPU, OS saves no YMM", "GenuineIntel", 6, 207, TB_YMM | TB_ZMM, 0, 0, NULL,
     "Intel", 0},
    {"AVX-512 CPU, OS saves YMM only", "GenuineIntel", 6, 207, TB_YMM | TB_ZMM, 1, 0,
     "Haswell", "Intel", TB_AVX2},
    {"AVX-512 CPU, ZMM bits without YMM", "GenuineIntel", 6, 207, TB_YMM | TB_ZMM, 0, 1, NULL,
     "Intel", 0},
};
#define TB_NCPUS (sizeof tb_cpus / sizeof tb_cpus[0])

static dls_cpu_info tb_cpu(size_t i)
{
    dls_cpu_info c;
    memset(&c, 0, sizeof c);
    c.known = 1;
    snprintf(c.vendor, sizeof c.vendor, "%s", tb_cpus[i].vendor);
    c.family = tb_cpus[i].family;
    c.model = tb_cpus[i].model;
    c.flags = tb_cpus[i].flags;
    c.os_ymm = tb_cpus[i].ymm;
    c.os_zmm = tb_cpus[i].zmm;
    return c;
}

static const char *const tb_dynamic = "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY "
                                      "Prescott MAX_THREADS=64";

static int tb_ends_with(const char *s, const char *end)
{
    size_t n = strlen(s), m = strlen(end);
    return n >= m && strcmp(s + n - m, end) == 0;
}

/* ---- verdict ------------------------------------------------------------------- */

/* every core name on every CPU: generic exactly when its kernels are of an
   older class than the CPU's best core */
START_TEST(test_every_row)
{
    static const char *const configs[] = {NULL, "", "OpenBLAS 0.3.21 DYNAMIC_ARCH Haswell",
                                          "OpenBLAS 0.3.21 NO_AFFINITY HASWELL MAX_THREADS=64"};
    for (size_t c = 0; c < TB_NCPUS; c++) {
        dls_cpu_info cpu = tb_cpu(c);
        for (size_t k = 0; k < TB_NCORES; k++) {
            for (size_t g = 0; g < sizeof configs / sizeof configs[0]; g++) {
                dls_blas_verdict v;
                memset(&v, 0x5a, sizeof v);
                dls_blas_judge(tb_cores[k].name, configs[g], &cpu, &v);
                int want = tb_cpus[c].best && tb_cores[k].kern < tb_cpus[c].best_kern;
                ck_assert_msg(v.generic == want, "%s on %s: generic %d, want %d (%s)",
                              tb_cores[k].name, tb_cpus[c].what, v.generic, want, v.reason);
                if (!want) {
                    ck_assert_ptr_null(v.best);
                    ck_assert_str_eq(v.reason, "");
                    continue;
                }
                ck_assert_str_eq(v.best, tb_cpus[c].best);
                char part[160];
                snprintf(part, sizeof part, "OpenBLAS runs its %s kernels on a CPU with %s",
                         tb_cores[k].name,
                         (cpu.os_zmm && (cpu.flags & DLS_CPU_AVX512F)) ? "AVX-512F, AVX2 and FMA"
                                                                       : "AVX2 and FMA");
                ck_assert_msg(strncmp(v.reason, part, strlen(part)) == 0, "%s | %s", v.reason,
                              part);
                snprintf(part, sizeof part, "(%s family %u model %u): ", tb_cpus[c].label,
                         tb_cpus[c].family, tb_cpus[c].model);
                ck_assert_msg(strstr(v.reason, part), "%s | %s", v.reason, part);
                snprintf(part, sizeof part, "OPENBLAS_CORETYPE=%s", tb_cpus[c].best);
                ck_assert_msg(strstr(v.reason, part), "%s | %s", v.reason, part);
                int fixed = configs[g] && *configs[g] && !strstr(configs[g], "DYNAMIC_ARCH");
                ck_assert_msg(!strstr(v.reason, "no DYNAMIC_ARCH") == !fixed, "%s", v.reason);
                /* whole: never cut by the 256 bytes of blas_reason */
                ck_assert_uint_lt(strlen(v.reason), sizeof v.reason - 1);
                ck_assert_msg(tb_ends_with(v.reason, "see dlsched(7) BLAS)"), "%s", v.reason);
            }
        }
    }
}
END_TEST

START_TEST(test_exact_messages)
{
    dls_cpu_info xeon = tb_cpu(0), zen2 = tb_cpu(7), zhaoxin = tb_cpu(9);
    dls_blas_verdict v;
    dls_blas_judge("Prescott", tb_dynamic, &xeon, &v);
    ck_assert_int_eq(v.generic, 1);
    ck_assert_str_eq(v.reason,
                     "OpenBLAS runs its Prescott kernels on a CPU with AVX-512F, AVX2 and FMA "
                     "(Intel family 6 model 207): set OPENBLAS_CORETYPE=SkylakeX in the host's "
                     "environment before it starts (GEMMs measured 3.5x to 8x faster; see "
                     "dlsched(7) BLAS)");
    /* a single-target build names its core in capitals and ignores the variable */
    dls_blas_judge("HASWELL", "OpenBLAS 0.3.21 NO_AFFINITY HASWELL MAX_THREADS=64", &xeon, &v);
    ck_assert_int_eq(v.generic, 1);
    ck_assert_str_eq(v.reason,
                     "OpenBLAS runs its HASWELL kernels on a CPU with AVX-512F, AVX2 and FMA "
                     "(Intel family 6 model 207): no DYNAMIC_ARCH in this OpenBLAS: use one "
                     "built with DYNAMIC_ARCH=1 and OPENBLAS_CORETYPE=SkylakeX, or with "
                     "TARGET=SKYLAKEX (see dlsched(7) BLAS)");
    dls_blas_judge("Sandybridge", NULL, &zen2, &v);
    ck_assert_str_eq(v.reason,
                     "OpenBLAS runs its Sandybridge kernels on a CPU with AVX2 and FMA (AMD "
                     "family 23 model 49): set OPENBLAS_CORETYPE=Zen in the host's environment "
                     "before it starts (GEMMs measured 1.5x faster; see dlsched(7) BLAS)");
    dls_blas_judge("Nehalem", tb_dynamic, &zhaoxin, &v);
    ck_assert_str_eq(v.reason,
                     "OpenBLAS runs its Nehalem kernels on a CPU with AVX2 and FMA (Shanghai "
                     "family 7 model 59): set OPENBLAS_CORETYPE=Haswell in the host's "
                     "environment before it starts (GEMMs measured 2.5x to 4.5x faster; see "
                     "dlsched(7) BLAS)");
    /* the measured gains by class */
    dls_blas_judge("Haswell", tb_dynamic, &xeon, &v);
    ck_assert_msg(strstr(v.reason, "(GEMMs measured 1.4x to 2x faster; "), "%s", v.reason);
    dls_blas_judge("Zen", tb_dynamic, &xeon, &v);
    ck_assert_msg(strstr(v.reason, "(GEMMs measured 1.4x to 2x faster; "), "%s", v.reason);
    dls_blas_judge("Sandybridge", tb_dynamic, &xeon, &v);
    ck_assert_msg(strstr(v.reason, "(GEMMs measured 2x faster; "), "%s", v.reason);
    /* names without regard to case */
    dls_blas_judge("prescott", tb_dynamic, &xeon, &v);
    ck_assert_int_eq(v.generic, 1);
    dls_blas_judge("SKYLAKEX", tb_dynamic, &xeon, &v);
    ck_assert_int_eq(v.generic, 0);
}
END_TEST

/* names this table does not know (other architectures, later OpenBLAS
   names): no verdict, whatever the CPU */
START_TEST(test_unknown_core_names)
{
    static const char *const names[] = {NULL,      "",        "Unknown",  "armv8", "NEOVERSEN1",
                                        "POWER10", "Zen4",    "Prescott2", "Presc", " Prescott",
                                        "RISCV64_GENERIC", "LOONGSON3R5"};
    for (size_t c = 0; c < TB_NCPUS; c++) {
        dls_cpu_info cpu = tb_cpu(c);
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            dls_blas_verdict v;
            dls_blas_judge(names[i], tb_dynamic, &cpu, &v);
            ck_assert_msg(!v.generic && !v.best && v.reason[0] == '\0', "'%s' on %s: %s",
                          names[i] ? names[i] : "(null)", tb_cpus[c].what, v.reason);
        }
    }
}
END_TEST

/* no CPUID (a non-x86 build) or no CPU at all: nothing is known, no verdict */
START_TEST(test_unknown_cpu)
{
    dls_cpu_info cpu = tb_cpu(0);
    cpu.known = 0;
    ck_assert_uint_eq(dls_cpu_usable(&cpu), 0);
    ck_assert_uint_eq(dls_cpu_usable(NULL), 0);
    for (size_t k = 0; k < TB_NCORES; k++) {
        dls_blas_verdict v;
        dls_blas_judge(tb_cores[k].name, tb_dynamic, &cpu, &v);
        ck_assert_int_eq(v.generic, 0);
        ck_assert_str_eq(v.reason, "");
        dls_blas_judge(tb_cores[k].name, tb_dynamic, NULL, &v);
        ck_assert_int_eq(v.generic, 0);
        ck_assert_str_eq(v.reason, "");
    }
}
END_TEST

/* a CPU flag counts only with the OS's support for its registers */
START_TEST(test_usable_needs_the_os)
{
    dls_cpu_info cpu = tb_cpu(0);
    ck_assert_uint_eq(dls_cpu_usable(&cpu), TB_YMM | TB_ZMM);
    cpu.os_zmm = 0;
    ck_assert_uint_eq(dls_cpu_usable(&cpu), TB_YMM);
    cpu.os_ymm = 0;
    ck_assert_uint_eq(dls_cpu_usable(&cpu), 0);
    cpu.os_zmm = 1;
    ck_assert_uint_eq(dls_cpu_usable(&cpu), 0);
    cpu.os_ymm = 1;
    cpu.flags = DLS_CPU_FMA;
    ck_assert_uint_eq(dls_cpu_usable(&cpu), DLS_CPU_FMA);
    /* Prescott on an AVX-512 CPU whose OS saves YMM only: Haswell, and
       AVX-512F is not named */
    cpu = tb_cpu(0);
    cpu.os_zmm = 0;
    dls_blas_verdict v;
    dls_blas_judge("Prescott", tb_dynamic, &cpu, &v);
    ck_assert_str_eq(v.best, "Haswell");
    ck_assert_msg(strstr(v.reason, "on a CPU with AVX2 and FMA (Intel"), "%s", v.reason);
    dls_blas_judge("Haswell", tb_dynamic, &cpu, &v);
    ck_assert_int_eq(v.generic, 0);
}
END_TEST

/* ---- process -------------------------------------------------------------------- */

/* /proc/cpuinfo's first processor: vendor_id, cpu family, model, flags */
typedef struct {
    int found;
    char vendor[64];
    unsigned family, model;
    unsigned flags; /* DLS_CPU_* by Linux's names */
} tb_procinfo;

static tb_procinfo tb_read_cpuinfo(void)
{
    tb_procinfo p;
    memset(&p, 0, sizeof p);
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return p;
    static char line[16384];
    int got_flags = 0;
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        char *val = colon + 1;
        while (*val == ' ' || *val == '\t')
            val++;
        val[strcspn(val, "\n")] = '\0';
        if (strncmp(line, "vendor_id", 9) == 0 && !p.vendor[0])
            snprintf(p.vendor, sizeof p.vendor, "%s", val);
        else if (strncmp(line, "cpu family", 10) == 0 && !p.family)
            p.family = (unsigned)strtoul(val, NULL, 10);
        else if (strncmp(line, "model", 5) == 0 && (line[5] == ' ' || line[5] == '\t') &&
                 !p.model)
            p.model = (unsigned)strtoul(val, NULL, 10);
        else if (strncmp(line, "flags", 5) == 0 && !got_flags) {
            static const struct {
                const char *name;
                unsigned flag;
            } names[] = {{"avx2", DLS_CPU_AVX2},         {"fma", DLS_CPU_FMA},
                         {"avx512f", DLS_CPU_AVX512F},   {"avx512dq", DLS_CPU_AVX512DQ},
                         {"avx512bw", DLS_CPU_AVX512BW}, {"avx512vl", DLS_CPU_AVX512VL}};
            got_flags = 1;
            for (char *save = NULL, *w = strtok_r(val, " \t", &save); w;
                 w = strtok_r(NULL, " \t", &save))
                for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
                    if (strcmp(w, names[i].name) == 0)
                        p.flags |= names[i].flag;
        }
    }
    fclose(f);
    p.found = got_flags;
    return p;
}

START_TEST(test_process_values_agree)
{
    const dls_blas_info *b = dls_blas_info_get();
    ck_assert_ptr_eq(dls_blas_info_get(), b); /* found once */
    const char *core = openblas_get_corename();
    ck_assert_str_eq(b->core, core ? core : "");
    ck_assert_str_eq(b->config, openblas_get_config());
    ck_assert_int_ge(b->threads, 1);
    /* detecting again gives the same facts */
    dls_cpu_info again;
    dls_cpu_detect(&again);
    ck_assert_int_eq(memcmp(&again, &b->cpu, sizeof again), 0);
#if defined(__x86_64__) || defined(__i386__)
    ck_assert_int_eq(b->cpu.known, 1);
    tb_procinfo p = tb_read_cpuinfo();
    if (p.found) {
        /* Linux shows a feature only when the kernel enabled its state:
           what the library counts as usable */
        unsigned usable = dls_cpu_usable(&b->cpu);
        ck_assert_msg(usable == p.flags, "CPUID+XGETBV give %#x, /proc/cpuinfo %#x", usable,
                      p.flags);
        ck_assert_str_eq(b->cpu.vendor, p.vendor);
        ck_assert_uint_eq(b->cpu.family, p.family);
        ck_assert_uint_eq(b->cpu.model, p.model);
    }
#else
    ck_assert_int_eq(b->cpu.known, 0);
    ck_assert_uint_eq(dls_cpu_usable(&b->cpu), 0);
#endif
    dls_blas_verdict v;
    dls_blas_judge(b->core, b->config, &b->cpu, &v);
    ck_assert_int_eq(v.generic, b->verdict.generic);
    ck_assert_ptr_eq(v.best, b->verdict.best);
    ck_assert_str_eq(v.reason, b->verdict.reason);
    ck_assert_int_eq(dlsched_backend_available("cpu"), 1);
}
END_TEST

static dlsched_agent *tb_agent(const char *spec)
{
    dlsched_config *cfg = NULL;
    ck_assert_int_eq(dlsched_config_new(&cfg), DLSCHED_OK);
    ck_assert_msg(dlsched_config_parse(cfg, spec) == DLSCHED_OK, "%s", dlsched_last_error());
    dlsched_agent *ag = NULL;
    ck_assert_msg(dlsched_agent_new(cfg, &ag) == DLSCHED_OK, "%s: %s", spec,
                  dlsched_last_error());
    dlsched_config_free(cfg);
    return ag;
}

#define TB_DQN "algo=dqn n_features=4 n_actions=3 hidden=8 replay=64 batch=4 "

/* a marker in dlsched_last_error(): a call that fails */
static void tb_mark_last_error(void)
{
    dlsched_config *cfg = NULL;
    ck_assert_int_eq(dlsched_config_new(&cfg), DLSCHED_OK);
    ck_assert_int_eq(dlsched_config_set(cfg, "no_such_key", "1"), DLSCHED_ECONFIG);
    dlsched_config_free(cfg);
}

/* what dlsched_agent_new() leaves in dlsched_last_error() for a dqn agent
   on the CPU: the fallback's reason, then the BLAS's */
/* what a dqn agent with cpu_kernels=auto says for a verdict: nothing when
   OpenBLAS's kernels fit; else the finding and the own kernels it runs
   (AVX-512 when /proc/cpuinfo has avx512f, else AVX2; every judged CPU
   has AVX2 and FMA) */
static void tb_expected_note(const dls_blas_verdict *v, int zmm, char *out, size_t len)
{
    out[0] = '\0';
    if (!v->generic)
        return;
    const char *end = strstr(v->reason, "): ");
    ck_assert_ptr_nonnull(end);
    snprintf(out, len,
             "%.*s: this agent runs libdlsched's own %s kernels (self-test passed); for the "
             "host's BLAS set OPENBLAS_CORETYPE=%s (dlsched(7) BLAS)",
             (int)(end - v->reason) + 1, v->reason, zmm ? "AVX-512" : "AVX2", v->best);
}

static void tb_assert_dqn_agent(const char *spec, const char *want)
{
    const dls_blas_info *b = dls_blas_info_get();
    tb_mark_last_error();
    dlsched_agent *ag = tb_agent(spec);
    char msg[600];
    snprintf(msg, sizeof msg, "%s", dlsched_last_error());
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_eq(st.backend, DLSCHED_BACKEND_CPU);
    ck_assert_str_eq(st.blas_core, b->core);
    ck_assert_str_eq(st.blas_reason, want);
    char expect[600] = "";
    if (st.backend_reason[0])
        snprintf(expect, sizeof expect, "device=auto: learning on the CPU: %s%s%s",
                 st.backend_reason, want[0] ? "; " : "", want);
    else if (want[0])
        snprintf(expect, sizeof expect, "%s", want);
    if (expect[0])
        ck_assert_str_eq(msg, expect);
    else
        ck_assert_msg(strstr(msg, "no_such_key") && !strstr(msg, "OpenBLAS"), "%s", msg);
    dlsched_agent_free(ag);
}

START_TEST(test_agents_report_it)
{
    const dls_blas_info *b = dls_blas_info_get();
    char note[300];
    tb_expected_note(&b->verdict, (tb_read_cpuinfo().flags & DLS_CPU_AVX512F) != 0, note,
                     sizeof note);
    tb_assert_dqn_agent(TB_DQN "device=cpu", note);
    /* cpu_kernels=openblas: the verdict as is */
    tb_assert_dqn_agent(TB_DQN "device=cpu cpu_kernels=openblas", b->verdict.reason);
    /* device=auto without a plugin: both reasons */
    ck_assert_int_eq(setenv("DLSCHED_PLUGIN_PATH", "/nonexistent/plugins", 1), 0);
    tb_assert_dqn_agent(TB_DQN "device=auto", note);
    /* qtable uses no BLAS: the core, no reason, and none in last_error */
    tb_mark_last_error();
    dlsched_agent *ag = tb_agent("algo=qtable n_features=2 n_actions=3 bins=4");
    ck_assert_msg(strstr(dlsched_last_error(), "no_such_key"), "%s", dlsched_last_error());
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_str_eq(st.blas_core, b->core);
    ck_assert_str_eq(st.blas_reason, "");
    dlsched_agent_free(ag);
}
END_TEST

/* a caller compiled against 1.1 passes the 1.1 size (up to blas_core): it
   gets no BLAS field, and out->size says so */
START_TEST(test_stats_size_1_1)
{
    dlsched_agent *ag = tb_agent(TB_DQN "device=cpu");
    size_t old = offsetof(dlsched_stats_t, blas_core);
    ck_assert_uint_eq(old, offsetof(dlsched_stats_t, guard_regime_fallbacks) + sizeof(uint64_t));
    ck_assert_uint_eq(offsetof(dlsched_stats_t, blas_reason), old + 32);
    ck_assert_uint_eq(sizeof(dlsched_stats_t), old + 32 + 256);
    dlsched_stats_t st;
    memset(&st, 0xab, sizeof st);
    ck_assert_int_eq(dlsched_stats(ag, &st, old), DLSCHED_OK);
    ck_assert_uint_eq(st.size, old);
    const unsigned char *p = (const unsigned char *)&st;
    for (size_t i = old; i < sizeof st; i++)
        ck_assert_msg(p[i] == 0xab, "byte %zu past the 1.1 size was written", i);
    /* a short blas_reason: the whole member, NUL-padded */
    ck_assert_int_eq(dlsched_stats(ag, &st, sizeof st), DLSCHED_OK);
    ck_assert_uint_eq(st.size, sizeof st);
    ck_assert_uint_lt(strlen(st.blas_core), sizeof st.blas_core);
    ck_assert_uint_lt(strlen(st.blas_reason), sizeof st.blas_reason);
    dlsched_agent_free(ag);
}
END_TEST

/* ---- coretype: this program again, with OPENBLAS_CORETYPE set --------------------- */

/* the best core for this machine by this file's oracle and /proc/cpuinfo,
   or NULL when none is judged (no AVX2+FMA) */
static const char *tb_machine_best(void)
{
    tb_procinfo p = tb_read_cpuinfo();
    if (!p.found || (p.flags & TB_YMM) != TB_YMM)
        return NULL;
    if (strcmp(p.vendor, "AuthenticAMD") == 0 || strcmp(p.vendor, "HygonGenuine") == 0)
        return "Zen";
    if (strcmp(p.vendor, "GenuineIntel") == 0 && (p.flags & TB_ZMM) == TB_ZMM)
        return "SkylakeX";
    return "Haswell";
}

/* runs the case "child" of this program with OPENBLAS_CORETYPE=coretype;
   its output in out, its wait status returned */
static int tb_run_child(const char *coretype, char *out, size_t len)
{
    static const char *const drop[] = {"OPENBLAS_CORETYPE=", "CK_RUN_SUITE=", "CK_RUN_CASE=",
                                       "DLSCHED_TEST_BLAS_CHILD=", "CK_INCLUDE_TAGS=",
                                       "CK_EXCLUDE_TAGS=", "DLSCHED_PLUGIN_PATH="};
    /* the environment is built before fork(): OpenBLAS's threads exist */
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 8, sizeof *env);
    ck_assert_ptr_nonnull(env);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int keep = 1;
        for (size_t d = 0; d < sizeof drop / sizeof drop[0]; d++)
            keep &= strncmp(environ[i], drop[d], strlen(drop[d])) != 0;
        if (keep)
            env[m++] = environ[i];
    }
    char v1[128], v2[128];
    snprintf(v1, sizeof v1, "OPENBLAS_CORETYPE=%s", coretype);
    snprintf(v2, sizeof v2, "DLSCHED_TEST_BLAS_CHILD=%s", coretype);
    env[m++] = v1;
    env[m++] = v2;
    env[m++] = (char *)"CK_RUN_SUITE=blasinfo";
    env[m++] = (char *)"CK_RUN_CASE=child";
    env[m++] = (char *)"DLSCHED_PLUGIN_PATH=/nonexistent/plugins";
    env[m] = NULL;
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    ck_assert_int_gt(sl, 0);
    self[sl] = '\0';
    char *argv[] = {self, NULL};
    int fd[2];
    ck_assert_int_eq(pipe(fd), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        execve(self, argv, env);
        _exit(127);
    }
    close(fd[1]);
    size_t got = 0;
    for (;;) {
        char buf[512];
        ssize_t r = read(fd[0], buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        /* keep the last len - 1 bytes */
        for (ssize_t i = 0; i < r; i++) {
            if (got == len - 1) {
                memmove(out, out + 1, len - 2);
                got--;
            }
            out[got++] = buf[i];
        }
    }
    out[got] = '\0';
    close(fd[0]);
    free(env);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        ck_assert_int_eq(errno, EINTR);
    return status;
}

static int tb_coretype_applies(void)
{
    if (!tb_machine_best()) {
        fprintf(stderr, "blasinfo: this CPU lacks AVX2 and FMA: OPENBLAS_CORETYPE cases "
                        "skipped\n");
        return 0;
    }
    if (!strstr(openblas_get_config(), "DYNAMIC_ARCH")) {
        fprintf(stderr, "blasinfo: OpenBLAS without DYNAMIC_ARCH ignores OPENBLAS_CORETYPE: "
                        "cases skipped\n");
        return 0;
    }
    return 1;
}

static void tb_assert_child(const char *coretype)
{
    char out[4096];
    int status = tb_run_child(coretype, out, sizeof out);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
                      strstr(out, "Checks: 1, Failures: 0, Errors: 0"),
                  "OPENBLAS_CORETYPE=%s: the child's status %d, its output:\n%s", coretype,
                  status, out);
}

/* Prescott, the generic kernels, on a CPU with AVX2 and FMA: the reason
   names Prescott and the best core, in stats and in last_error */
START_TEST(test_coretype_prescott)
{
    if (tb_coretype_applies())
        tb_assert_child("Prescott");
}
END_TEST

/* the CPU's best core: no reason */
START_TEST(test_coretype_best)
{
    if (tb_coretype_applies())
        tb_assert_child(tb_machine_best());
}
END_TEST

/* run by the two above in a fresh process; nothing when run otherwise */
START_TEST(test_child)
{
    const char *want = getenv("DLSCHED_TEST_BLAS_CHILD");
    if (!want)
        return;
    const dls_blas_info *b = dls_blas_info_get();
    ck_assert_str_eq(openblas_get_corename(), want);
    ck_assert_str_eq(b->core, want);
    const char *best = tb_machine_best();
    ck_assert_ptr_nonnull(best);
    dls_blas_verdict v;
    dls_blas_judge(want, b->config, &b->cpu, &v);
    if (strcmp(want, best) == 0) {
        ck_assert_int_eq(v.generic, 0);
        ck_assert_str_eq(v.reason, "");
    } else {
        ck_assert_int_eq(v.generic, 1);
        ck_assert_str_eq(v.best, best);
        char part[64];
        snprintf(part, sizeof part, "OpenBLAS runs its %s kernels", want);
        ck_assert_msg(strstr(v.reason, part), "%s", v.reason);
        snprintf(part, sizeof part, "set OPENBLAS_CORETYPE=%s ", best);
        ck_assert_msg(strstr(v.reason, part), "%s", v.reason);
    }
    ck_assert_str_eq(b->verdict.reason, v.reason);
    /* Prescott: this agent runs the own kernels, says so, and what to set */
    char note[300];
    tb_expected_note(&v, (tb_read_cpuinfo().flags & DLS_CPU_AVX512F) != 0, note, sizeof note);
    tb_assert_dqn_agent(TB_DQN "device=cpu", note);
    tb_assert_dqn_agent(TB_DQN "device=auto", note); /* DLSCHED_PLUGIN_PATH: none there */
    tb_assert_dqn_agent(TB_DQN "device=cpu cpu_kernels=openblas", v.reason);
    ck_assert_int_eq(dlsched_backend_available("cpu"), 1);
    /* learns as usual */
    dlsched_agent *ag = tb_agent(TB_DQN "device=cpu learning_starts=4");
    float x[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    dlsched_state_t s = tst_state(x, 4);
    for (int i = 0; i < 16; i++) {
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &s, 0, &d), DLSCHED_OK);
        ck_assert_int_eq(dlsched_observe(ag, d.ticket, 1.0f, &s, 0), DLSCHED_OK);
    }
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_gt(st.train_steps, 0);
    ck_assert_str_eq(st.blas_reason, note);
    dlsched_agent_free(ag);
}
END_TEST

Suite *suite_blasinfo(void)
{
    Suite *s = suite_create("blasinfo");
    TCase *tc = tcase_create("verdict");
    tcase_add_test(tc, test_every_row);
    tcase_add_test(tc, test_exact_messages);
    tcase_add_test(tc, test_unknown_core_names);
    tcase_add_test(tc, test_unknown_cpu);
    tcase_add_test(tc, test_usable_needs_the_os);
    suite_add_tcase(s, tc);

    tc = tcase_create("process");
    tcase_add_test(tc, test_process_values_agree);
    tcase_add_test(tc, test_agents_report_it);
    tcase_add_test(tc, test_stats_size_1_1);
    suite_add_tcase(s, tc);

    tc = tcase_create("coretype");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_coretype_prescott);
    tcase_add_test(tc, test_coretype_best);
    suite_add_tcase(s, tc);

    tc = tcase_create("child");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_child);
    suite_add_tcase(s, tc);
    return s;
}
