/*
 * blasinfo.c - which kernels OpenBLAS runs on this CPU, and whether the CPU
 * allows better ones
 *
 * A DYNAMIC_ARCH OpenBLAS (Debian's, and most distributions') picks one set
 * of kernels when it is loaded, from the CPU model it recognises, or from
 * OPENBLAS_CORETYPE. A CPU newer than the OpenBLAS build is not recognised
 * and gets the generic Prescott kernels (SSE3): on an Intel Xeon with
 * AVX-512 (family 6, model 207) Debian's 0.3.21 runs GEMMs 6x slower than
 * with its SkylakeX kernels. Nothing tells the user; this file does.
 *
 * Two tables decide, both documented in dlsched(7) BLAS:
 *  - dls_blas_cores: OpenBLAS's x86 core names by the widest instructions
 *    their kernels use (the names of 0.3.21's DYNAMIC_ARCH list, its
 *    driver/others/dynamic.c corename[], plus the "Generic" target and the
 *    later SapphireRapids);
 *  - dls_blas_best: the best core for a CPU, by vendor and usable features.
 * OpenBLAS runs generic kernels when its core's class is below the best
 * core's. Unknown core names (other architectures, newer OpenBLAS names)
 * and unknown CPUs give no verdict: better silent than wrong.
 *
 * The process-wide facts are found once (pthread_once): they are the
 * process's, like the loaded OpenBLAS, not an agent's.
 */
#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "blasinfo.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define DLS_HAVE_CPUID 1
#include <cpuid.h>
#endif

/* ---- the tables -------------------------------------------------------------------- */

/* the widest instructions a core's kernels use */
enum { DLS_KERN_SSE, DLS_KERN_AVX, DLS_KERN_AVX2, DLS_KERN_AVX512 };

static const struct {
    const char *name; /* as DYNAMIC_ARCH reports it; single-target builds
                         report it upper-case ("HASWELL"): compared without case */
    int kern;
} dls_blas_cores[] = {
    /* SSE-only kernels: the generic ones on anything with AVX2 */
    {"Katmai", DLS_KERN_SSE},      {"Coppermine", DLS_KERN_SSE}, {"Northwood", DLS_KERN_SSE},
    {"Prescott", DLS_KERN_SSE},    {"Banias", DLS_KERN_SSE},     {"Atom", DLS_KERN_SSE},
    {"Core2", DLS_KERN_SSE},       {"Penryn", DLS_KERN_SSE},     {"Dunnington", DLS_KERN_SSE},
    {"Nehalem", DLS_KERN_SSE},     {"Athlon", DLS_KERN_SSE},     {"Opteron", DLS_KERN_SSE},
    {"Opteron_SSE3", DLS_KERN_SSE}, {"Barcelona", DLS_KERN_SSE}, {"Nano", DLS_KERN_SSE},
    {"Bobcat", DLS_KERN_SSE},      {"Generic", DLS_KERN_SSE},
    /* AVX (with FMA4/FMA3 on AMD's Bulldozer line), no AVX2 */
    {"Sandybridge", DLS_KERN_AVX}, {"Bulldozer", DLS_KERN_AVX},  {"Piledriver", DLS_KERN_AVX},
    {"Steamroller", DLS_KERN_AVX},
    /* AVX2 and FMA */
    {"Haswell", DLS_KERN_AVX2},    {"Zen", DLS_KERN_AVX2},       {"Excavator", DLS_KERN_AVX2},
    /* AVX-512 */
    {"SkylakeX", DLS_KERN_AVX512}, {"Cooperlake", DLS_KERN_AVX512},
    {"SapphireRapids", DLS_KERN_AVX512},
};

enum { DLS_VENDOR_INTEL, DLS_VENDOR_AMD, DLS_VENDOR_OTHER };

/* The best core for a CPU: the first row whose vendor matches and whose
   features are all usable. AVX-512 counts for Intel only when F, DQ, BW and
   VL are all there (SkylakeX's kernels use them; OpenBLAS itself falls back
   to Haswell without VL). For AMD the advice is Zen (AVX2): OpenBLAS
   0.3.21 has no Zen 4 kernels; on a Zen 4 with AVX-512 (family 25 model
   17) its DYNAMIC_ARCH picks Cooperlake's AVX-512 kernels by itself, which
   the verdict accepts as fitting (as wide as or wider than the advice). A
   CPU without AVX2 and FMA is never judged: OpenBLAS's choice among older
   kernels is left alone. */
#define DLS_NEED_AVX2 (DLS_CPU_AVX2 | DLS_CPU_FMA)
#define DLS_NEED_AVX512 (DLS_NEED_AVX2 | DLS_CPU_ZMM_FEATURES)
static const struct {
    int vendor;
    unsigned need;
    int kern;
    const char *core;   /* for OPENBLAS_CORETYPE */
    const char *target; /* for an OpenBLAS built for this CPU only */
} dls_blas_best[] = {
    {DLS_VENDOR_INTEL, DLS_NEED_AVX512, DLS_KERN_AVX512, "SkylakeX", "SKYLAKEX"},
    {DLS_VENDOR_INTEL, DLS_NEED_AVX2, DLS_KERN_AVX2, "Haswell", "HASWELL"},
    {DLS_VENDOR_AMD, DLS_NEED_AVX2, DLS_KERN_AVX2, "Zen", "ZEN"},
    {DLS_VENDOR_OTHER, DLS_NEED_AVX2, DLS_KERN_AVX2, "Haswell", "HASWELL"},
};

/* GEMM speed-ups measured from one class to the other, one thread,
   Debian's OpenBLAS 0.3.21, two Intel Xeons with AVX-512: sgemm
   256x256x256 and 64x256x256 on family 6 model 167 (GFLOP/s: Prescott 36,
   Nehalem 27, Sandybridge 62, Haswell 90, Zen 87, SkylakeX 126) and make
   bench's GEMM floor on model 207 (Prescott 16-18, Haswell 59-72,
   SkylakeX 116-126) */
static const struct {
    int from, to;
    const char *gain;
} dls_blas_gains[] = {
    {DLS_KERN_SSE, DLS_KERN_AVX512, "GEMMs measured 3.5x to 8x faster"},
    {DLS_KERN_SSE, DLS_KERN_AVX2, "GEMMs measured 2.5x to 4.5x faster"},
    {DLS_KERN_AVX, DLS_KERN_AVX512, "GEMMs measured 2x faster"},
    {DLS_KERN_AVX, DLS_KERN_AVX2, "GEMMs measured 1.5x faster"},
    {DLS_KERN_AVX2, DLS_KERN_AVX512, "GEMMs measured 1.4x to 2x faster"},
};

/* ---- the verdict ---------------------------------------------------------------- */

unsigned dls_cpu_usable(const dls_cpu_info *cpu)
{
    if (!cpu || !cpu->known || !cpu->os_ymm)
        return 0;
    unsigned u = cpu->flags & DLS_CPU_YMM_FEATURES;
    if (cpu->os_zmm)
        u |= cpu->flags & DLS_CPU_ZMM_FEATURES;
    return u;
}

static int dls_vendor(const char *v)
{
    if (strcmp(v, "GenuineIntel") == 0)
        return DLS_VENDOR_INTEL;
    if (strcmp(v, "AuthenticAMD") == 0 || strcmp(v, "HygonGenuine") == 0)
        return DLS_VENDOR_AMD;
    return DLS_VENDOR_OTHER;
}

static const char *dls_vendor_label(const char *v)
{
    if (strcmp(v, "GenuineIntel") == 0)
        return "Intel";
    if (strcmp(v, "AuthenticAMD") == 0)
        return "AMD";
    if (strcmp(v, "HygonGenuine") == 0)
        return "Hygon";
    return v[0] ? v : "unknown vendor";
}

void dls_blas_judge(const char *core, const char *config, const dls_cpu_info *cpu,
                    dls_blas_verdict *out)
{
    memset(out, 0, sizeof *out);
    if (!core || !*core || !cpu || !cpu->known)
        return;
    int kern = -1;
    for (size_t i = 0; i < sizeof dls_blas_cores / sizeof dls_blas_cores[0]; i++)
        if (strcasecmp(core, dls_blas_cores[i].name) == 0)
            kern = dls_blas_cores[i].kern;
    if (kern < 0)
        return;
    unsigned usable = dls_cpu_usable(cpu);
    char vendor[sizeof cpu->vendor];
    memcpy(vendor, cpu->vendor, sizeof vendor);
    vendor[sizeof vendor - 1] = '\0';
    int v = dls_vendor(vendor);
    size_t b = 0, nb = sizeof dls_blas_best / sizeof dls_blas_best[0];
    while (b < nb && !(dls_blas_best[b].vendor == v &&
                       (usable & dls_blas_best[b].need) == dls_blas_best[b].need))
        b++;
    if (b == nb || kern >= dls_blas_best[b].kern)
        return;
    out->generic = 1;
    out->best = dls_blas_best[b].core;

    /* every judged CPU has AVX2 and FMA */
    const char *feats = usable & DLS_CPU_AVX512F ? "AVX-512F, AVX2 and FMA" : "AVX2 and FMA";
    /* a vendor string of blanks and letters ("  Shanghai  "), trimmed */
    const char *label = dls_vendor_label(vendor);
    while (*label == ' ')
        label++;
    int llen = (int)strlen(label);
    while (llen > 0 && label[llen - 1] == ' ')
        llen--;
    int n = snprintf(out->reason, sizeof out->reason,
                     "OpenBLAS runs its %s kernels on a CPU with %s (%.*s family %u model %u): ",
                     core, feats, llen, label, cpu->family, cpu->model);
    if (n < 0 || (size_t)n >= sizeof out->reason)
        return;
    char *rest = out->reason + n;
    size_t room = sizeof out->reason - (size_t)n;
    if (config && *config && !strstr(config, "DYNAMIC_ARCH")) {
        /* built for one core: OPENBLAS_CORETYPE is not read */
        snprintf(rest, room,
                 "no DYNAMIC_ARCH in this OpenBLAS: use one built with DYNAMIC_ARCH=1 and "
                 "OPENBLAS_CORETYPE=%s, or with TARGET=%s (see dlsched(7) BLAS)",
                 dls_blas_best[b].core, dls_blas_best[b].target);
        return;
    }
    const char *gain = NULL;
    for (size_t i = 0; i < sizeof dls_blas_gains / sizeof dls_blas_gains[0]; i++)
        if (dls_blas_gains[i].from == kern && dls_blas_gains[i].to == dls_blas_best[b].kern)
            gain = dls_blas_gains[i].gain;
    snprintf(rest, room,
             "set OPENBLAS_CORETYPE=%s in the host's environment before it starts (%s%ssee "
             "dlsched(7) BLAS)",
             dls_blas_best[b].core, gain ? gain : "", gain ? "; " : "");
}

/* ---- what this machine has -------------------------------------------------------- */

void dls_cpu_detect(dls_cpu_info *out)
{
    memset(out, 0, sizeof *out);
#ifdef DLS_HAVE_CPUID
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d))
        return;
    unsigned max = a;
    memcpy(out->vendor, &b, 4);
    memcpy(out->vendor + 4, &d, 4);
    memcpy(out->vendor + 8, &c, 4);
    out->vendor[12] = '\0';
    out->known = 1;
    if (max < 1)
        return;
    __get_cpuid(1, &a, &b, &c, &d);
    /* the display family and model (Intel SDM vol. 2A, CPUID leaf 1; AMD
       adds the extended model from family 15 on) */
    unsigned family = (a >> 8) & 0xf, model = (a >> 4) & 0xf;
    if (family == 0xf)
        family += (a >> 20) & 0xff;
    if (family == 6 || family >= 0xf)
        model |= ((a >> 16) & 0xf) << 4;
    out->family = family;
    out->model = model;
    if (c & (1u << 12))
        out->flags |= DLS_CPU_FMA;
    if (c & (1u << 27)) { /* OSXSAVE: XGETBV reads what the OS saves */
        unsigned lo, hi;
        __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        (void)hi;
        out->os_ymm = (lo & 0x6) == 0x6;                  /* SSE, AVX state */
        out->os_zmm = out->os_ymm && (lo & 0xe0) == 0xe0; /* opmask, ZMM_Hi256, Hi16_ZMM */
    }
    if (max >= 7 && __get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        static const struct {
            unsigned bit, flag;
        } leaf7[] = {{5, DLS_CPU_AVX2},
                     {16, DLS_CPU_AVX512F},
                     {17, DLS_CPU_AVX512DQ},
                     {30, DLS_CPU_AVX512BW},
                     {31, DLS_CPU_AVX512VL}};
        for (size_t i = 0; i < sizeof leaf7 / sizeof leaf7[0]; i++)
            if (b & (1u << leaf7[i].bit))
                out->flags |= leaf7[i].flag;
    }
#endif
}

static pthread_once_t dls_blas_once = PTHREAD_ONCE_INIT;
static dls_blas_info dls_blas;

static void dls_blas_find(void)
{
    const char *core = openblas_get_corename();
    const char *config = openblas_get_config();
    snprintf(dls_blas.core, sizeof dls_blas.core, "%s", core ? core : "");
    snprintf(dls_blas.config, sizeof dls_blas.config, "%s", config ? config : "");
    dls_blas.threads = openblas_get_num_threads();
    dls_cpu_detect(&dls_blas.cpu);
    dls_blas_judge(dls_blas.core, dls_blas.config, &dls_blas.cpu, &dls_blas.verdict);
}

const dls_blas_info *dls_blas_info_get(void)
{
    pthread_once(&dls_blas_once, dls_blas_find);
    return &dls_blas;
}
