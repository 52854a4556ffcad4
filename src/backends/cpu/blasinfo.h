/*
 * blasinfo.h - which kernels OpenBLAS runs on this CPU, and whether the CPU
 * allows better ones (see blasinfo.c for the tables)
 *
 * Found once per process (OpenBLAS picks its kernels once, when it is
 * loaded; the CPU does not change): by the first agent created or the first
 * dlsched_backend_available("cpu"). The judgement itself, dls_blas_judge(),
 * is a pure function of the facts, so tests can fake them.
 */
#ifndef DLS_BLASINFO_H
#define DLS_BLASINFO_H

#include <stddef.h>

#include "../../core/internal.h"

#define DLS_BLAS_CORE_LEN sizeof(((dlsched_stats_t *)0)->blas_core)
#define DLS_BLAS_REASON_LEN sizeof(((dlsched_stats_t *)0)->blas_reason)

/* CPU features the verdict reads (CPUID leaf 1 ECX, leaf 7 EBX) */
enum {
    DLS_CPU_FMA = 1u << 0,      /* leaf 1 ECX bit 12 */
    DLS_CPU_AVX2 = 1u << 1,     /* leaf 7 EBX bit 5 */
    DLS_CPU_AVX512F = 1u << 2,  /* leaf 7 EBX bit 16 */
    DLS_CPU_AVX512DQ = 1u << 3, /* leaf 7 EBX bit 17 */
    DLS_CPU_AVX512BW = 1u << 4, /* leaf 7 EBX bit 30 */
    DLS_CPU_AVX512VL = 1u << 5, /* leaf 7 EBX bit 31 */
};
#define DLS_CPU_YMM_FEATURES (DLS_CPU_FMA | DLS_CPU_AVX2)
#define DLS_CPU_ZMM_FEATURES (DLS_CPU_AVX512F | DLS_CPU_AVX512DQ | DLS_CPU_AVX512BW | DLS_CPU_AVX512VL)

/* What CPUID says. On other architectures known is 0 and the rest is 0. */
typedef struct dls_cpu_info {
    int known;              /* CPUID was read */
    char vendor[13];        /* "GenuineIntel", "AuthenticAMD", ... */
    unsigned family, model; /* as Linux's /proc/cpuinfo shows them */
    unsigned flags;         /* DLS_CPU_* the CPU reports */
    int os_ymm;             /* OSXSAVE set and XCR0 bits 1, 2: the OS saves YMM state */
    int os_zmm;             /* XCR0 bits 5, 6, 7: the OS saves opmask and ZMM state */
} dls_cpu_info;

/* The features of cpu that can be used: a CPU flag counts only when the OS
   saves the registers it needs (YMM for FMA and AVX2; YMM and ZMM for
   AVX-512). 0 when cpu is unknown. */
unsigned dls_cpu_usable(const dls_cpu_info *cpu);

/* Read CPUID (and XGETBV) now; no caching. */
void dls_cpu_detect(dls_cpu_info *out);

typedef struct dls_blas_verdict {
    int generic;      /* 1: OpenBLAS runs older kernels than the CPU allows */
    const char *best; /* then the core to ask OpenBLAS for ("SkylakeX",
                         "Haswell", "Zen"), else NULL */
    char reason[DLS_BLAS_REASON_LEN]; /* the finding and its remedy; "" when
                                         the kernels fit the CPU (or nothing
                                         is known about either) */
} dls_blas_verdict;

/* The verdict on OpenBLAS's core (openblas_get_corename(), any case; NULL
   or "" for unknown) and config (openblas_get_config(): whether it has
   DYNAMIC_ARCH, so that OPENBLAS_CORETYPE can help; NULL when unknown) on
   cpu. Pure: reads nothing else. */
void dls_blas_judge(const char *core, const char *config, const dls_cpu_info *cpu,
                    dls_blas_verdict *out);

/* The process's facts, found at the first call (thread-safe). */
typedef struct dls_blas_info {
    char core[DLS_BLAS_CORE_LEN]; /* openblas_get_corename(), "" when unknown */
    char config[256];             /* openblas_get_config() */
    int threads;                  /* openblas_get_num_threads() when found */
    dls_cpu_info cpu;
    dls_blas_verdict verdict; /* dls_blas_judge() on the above */
} dls_blas_info;

const dls_blas_info *dls_blas_info_get(void);

#endif
