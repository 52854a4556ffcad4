/*
 * cpu_ops.c - the DQN ops on the CPU: OpenBLAS for the matrix products,
 * plain C for the element-wise rest.
 *
 * OpenBLAS's thread count is process-wide. set_threads(n) allows the
 * training GEMMs that follow up to n threads; each GEMM then runs on as many
 * of them as its size pays for (dls_cpu_gemm_threads below), OpenBLAS's
 * count being changed only when it differs from the one the call needs.
 * set_threads(1) puts OpenBLAS back on one thread (acting never threads).
 */
#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "../../core/config.h"
#include "../../dqn/ops.h"
#include "blasinfo.h"
#include "kernels.h"

/* The element-wise loops are built for the baseline x86-64 and for AVX2+FMA
   and AVX-512 machines; the loader picks the best clone (GNU ifunc). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_ADDRESS__) && \
    !defined(__SANITIZE_THREAD__) && !defined(DLS_NO_CLONES)
#define DLS_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DLS_VECTOR_CLONES
#endif

static int cpu_probe(char *why, size_t len)
{
    (void)why;
    (void)len;
    return 1;
}

/* the threads the GEMMs may use (set_threads); process-wide like OpenBLAS's
   own count, atomic so that agents on other threads read it race-free */
static atomic_int g_gemm_threads = 1;

/*
 * How many OpenBLAS threads a GEMM C[m x n] = op(A)[m x k] op(B)[k x n]
 * (row-major) gets when training may use up to `allowed`.
 *
 * Measured, not guessed (OpenBLAS 0.3.21, 2-vCPU Xeon VM with AVX-512, each
 * shape of a 16-256-256-8 training step alone on 1 and 2 threads, medians of
 * 3 passes x 9 rounds taken only while no other process used the CPUs;
 * x = time on 1 thread / time on 2):
 *
 *   shape m x n x k (B = batch)        SkylakeX kernels    Prescott (generic)
 *                                     B=32  64   256 1024  B=32  64   256 1024
 *   forward   2B x 256 x 256          1.49 1.47 1.59 1.94  1.88 1.86 1.89 1.89
 *   backward  B x 256 x 256  (dX)     1.37 1.39 1.50 1.82  1.85 1.75 1.84 1.90
 *   weights 256 x 256 x B    (dW)     0.88 1.01 1.41 1.66  1.73 1.65 1.86 1.88
 *   input     2B x 256 x 16           1.01 0.62 0.67 0.83  1.00 1.19 1.37 1.41
 *   head      2B x 8 x 256            0.98 1.00 0.90 0.97  1.00 0.99 1.08 1.19
 *   dW input 256 x 16 x B             0.95 0.99 0.77 1.18  1.00 1.00 0.93 1.04
 *   dH        B x 256 x 8             0.99 1.01 1.01 0.63  1.01 1.00 0.77 1.17
 *   other nets (SkylakeX): 128x128x128 0.79-0.98, 256x128x128 1.20,
 *   128x128x256 1.12, 1024x128x128 1.30, B x 64 x 64 <= 1.06, Bx32x32 0.30-1.0
 *
 * With SkylakeX kernels a short inner dimension (k < 128), a narrow output
 * (n < 128, or m < 32) or a small product loses to the threads' start and
 * synchronisation, by up to 3x; the generic kernels are 3-4x slower per
 * flop, so threading pays off earlier there, and this rule, set by the
 * SkylakeX crossover, never picks two threads where the generic kernels
 * lose either (it leaves some of their gain, e.g. 256x256x32 at 1.73x).
 * Rule: threads only for k >= 128, m >= 32, n >= 128, with each thread
 * getting at least 2^20 multiply-adds, narrow outputs counted at
 * n/256 of theirs (128x128x128 stays on one thread, 32x256x256 gets two),
 * and at least 64 output columns per thread.
 */
int dls_cpu_gemm_threads(int m, int n, int k, int allowed)
{
    if (allowed < 2 || k < 128 || m < 32 || n < 128)
        return 1;
    double work = (double)m * n * k * (n < 256 ? n / 256.0 : 1.0);
    double t = work / (double)(1 << 20);
    if (t > n / 64)
        t = n / 64;
    if (t > allowed)
        t = allowed;
    return t < 1 ? 1 : (int)t;
}

static void blas_threads(int n)
{
    if (openblas_get_num_threads() != n)
        openblas_set_num_threads(n);
}

static void cpu_set_threads(int n)
{
    n = n < 1 ? 1 : n;
    atomic_store_explicit(&g_gemm_threads, n, memory_order_relaxed);
    if (n == 1)
        blas_threads(1);
}

static void cpu_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                     const float *b, int ldb, float beta, float *c, int ldc)
{
    int allowed = atomic_load_explicit(&g_gemm_threads, memory_order_relaxed);
    if (allowed > 1)
        blas_threads(dls_cpu_gemm_threads(m, n, k, allowed));
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m,
                n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

static void cpu_dense1(int out, int in, const float *w, const float *b, const float *x, float *y,
                       int relu)
{
    /* y = W x + b */
    for (int i = 0; i < out; i++)
        y[i] = b[i];
    cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, w, in, x, 1, 1.0f, y, 1);
    if (relu)
        for (int i = 0; i < out; i++)
            y[i] = y[i] > 0.0f ? y[i] : 0.0f;
}

DLS_VECTOR_CLONES static void cpu_bias_act(int rows, int n, const float *restrict b, float *restrict y, int relu)
{
    for (int r = 0; r < rows; r++) {
        float *row = y + (size_t)r * n;
        if (relu) {
            for (int j = 0; j < n; j++) {
                float v = row[j] + b[j];
                row[j] = v > 0.0f ? v : 0.0f;
            }
        } else {
            for (int j = 0; j < n; j++)
                row[j] += b[j];
        }
    }
}

DLS_VECTOR_CLONES static void cpu_bias_act_grad(int rows, int n, const float *restrict y, float *restrict dy,
                              float *restrict db, int relu)
{
    for (int j = 0; j < n; j++)
        db[j] = 0.0f;
    for (int r = 0; r < rows; r++) {
        float *d = dy + (size_t)r * n;
        if (relu) {
            /* dZ = dY * [Y > 0]   (ReLU) */
            const float *yr = y + (size_t)r * n;
            for (int j = 0; j < n; j++)
                d[j] = yr[j] > 0.0f ? d[j] : 0.0f;
        }
        for (int j = 0; j < n; j++)
            db[j] += d[j];
    }
}

static double cpu_huber_grad(int n, const float *q, const float *y, const float *w, float delta,
                             float *g, float *td_abs)
{
    double loss = 0;
    for (int i = 0; i < n; i++) {
        float d = q[i] - y[i];
        float ad = fabsf(d);
        float wi = w ? w[i] : 1.0f;
        /* huber(d) = d^2/2 if |d| <= delta else delta (|d| - delta/2) */
        loss += wi * (ad <= delta ? 0.5 * (double)d * d : delta * (ad - 0.5 * delta));
        /* dL/dq = w clamp(q - y, -delta, delta) / n */
        float c = d > delta ? delta : (d < -delta ? -delta : d);
        g[i] = wi * c / (float)n;
        if (td_abs)
            td_abs[i] = ad;
    }
    return loss / n;
}

DLS_VECTOR_CLONES static void cpu_adam(size_t n, float *restrict p, const float *restrict g, float *restrict m,
                     float *restrict v, float lr, float b1, float b2, float eps, uint64_t t,
                     float gscale)
{
    /* m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
       p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) */
    float c1 = (float)(1.0 - pow(b1, (double)t));
    float c2 = (float)(1.0 - pow(b2, (double)t));
    float step = lr / c1, inv_c2 = 1.0f / c2;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * gscale;
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= step * mi / (sqrtf(vi * inv_c2) + eps);
    }
}

DLS_VECTOR_CLONES static void cpu_axpby(size_t n, float a, const float *restrict x, float b, float *restrict y)
{
    if (b == 0.0f && a == 1.0f) {
        memcpy(y, x, n * sizeof(float));
        return;
    }
    for (size_t i = 0; i < n; i++)
        y[i] = a * x[i] + b * y[i];
}

static double cpu_sumsq(size_t n, const float *x)
{
    /* float partial sums of 8 lanes (vectorisable), combined in double */
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += x[i + k] * x[i + k];
    double s = 0;
    for (int k = 0; k < 8; k++)
        s += acc[k];
    for (; i < n; i++)
        s += (double)x[i] * x[i];
    return s;
}

static const dls_ops dls_cpu_ops_table = {
    DLS_OPS_ABI,   sizeof(dls_ops), "cpu",         cpu_probe,      cpu_set_threads,
    cpu_gemm,      cpu_dense1,      cpu_bias_act,  cpu_bias_act_grad, cpu_huber_grad,
    cpu_adam,      cpu_axpby,       cpu_sumsq,
};

const dls_ops *dls_cpu_ops(void)
{
    return &dls_cpu_ops_table;
}

/* ---- libdlsched's own kernels (kernels.c) for the matrix products ------------------- */

/* They run on the calling thread: set_threads has nothing to share out */
static void own_set_threads(int n)
{
    (void)n;
}

#define DLS_OWN_TABLE(NAME, ISA, LABEL)                                                       \
    static void NAME##_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a,  \
                            int lda, const float *b, int ldb, float beta, float *c, int ldc)   \
    {                                                                                         \
        dls_kern_gemm(ISA, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);             \
    }                                                                                         \
    static void NAME##_dense1(int out, int in, const float *w, const float *b, const float *x, \
                              float *y, int relu)                                             \
    {                                                                                         \
        dls_kern_dense1(ISA, out, in, w, b, x, y, relu);                                      \
    }                                                                                         \
    static const dls_ops NAME##_table = {                                                     \
        DLS_OPS_ABI,  sizeof(dls_ops), LABEL,         cpu_probe,         own_set_threads,        \
        NAME##_gemm,  NAME##_dense1,   cpu_bias_act,  cpu_bias_act_grad, cpu_huber_grad,         \
        cpu_adam,     cpu_axpby,       cpu_sumsq,                                             \
    };

DLS_OWN_TABLE(own512, DLS_ISA_AVX512, "cpu-avx512")
DLS_OWN_TABLE(own256, DLS_ISA_AVX2, "cpu-avx2")

/* the 1 in 2^k test hook: a self-test that must fail (tests only) */
int dls_kern_selftest_fault;

const dls_ops *dls_cpu_ops_select(int mode, const unsigned *widths, int nw, int extra_out,
                                  int batch, char *note, size_t len)
{
    note[0] = '\0';
    const dls_blas_info *bi = dls_blas_info_get();
    if (mode == DLS_KERNELS_OPENBLAS) {
        snprintf(note, len, "%s", bi->verdict.reason);
        return &dls_cpu_ops_table;
    }
    if (mode == DLS_KERNELS_AUTO && !bi->verdict.generic) {
        snprintf(note, len, "%s", bi->verdict.reason);
        return &dls_cpu_ops_table;
    }
    int isa = dls_kern_isa_for(dls_cpu_usable(&bi->cpu));
    /* the finding without its remedy (the part before ": "), for the notes */
    char finding[DLS_BLAS_REASON_LEN];
    const char *colon = strstr(bi->verdict.reason, "): ");
    snprintf(finding, sizeof finding, "%.*s", colon ? (int)(colon - bi->verdict.reason) + 1 : 0,
             bi->verdict.reason);
    if (isa == DLS_ISA_NONE) {
        /* auto gets here only on a judged CPU, which has AVX2 and FMA: a build
           without kernels (not x86-64 GCC/clang) */
        if (mode == DLS_KERNELS_OWN)
            snprintf(note, len, "cpu_kernels=own: libdlsched has no kernels for this CPU or "
                                "build (they need x86-64 with AVX2 and FMA); OpenBLAS runs");
        else
            snprintf(note, len, "%s", bi->verdict.reason);
        return &dls_cpu_ops_table;
    }
    char why[200];
    int rc = dls_kern_selftest(isa, widths, nw, batch, why, sizeof why);
    if (rc == 0 && extra_out > 0) {
        /* the dueling head's value layer: last width -> extra_out */
        unsigned head[2] = {widths[nw - 2 >= 0 ? nw - 2 : 0], (unsigned)extra_out};
        rc = dls_kern_selftest(isa, head, 2, batch, why, sizeof why);
    }
    if (rc == 0 && dls_kern_selftest_fault) {
        snprintf(why, sizeof why, "the test hook failed it");
        rc = -1;
    }
    const char *best = bi->verdict.best ? bi->verdict.best : "";
    if (rc != 0) {
        if (finding[0])
            snprintf(note, len,
                     "%s: libdlsched's own %s kernels failed their self-test (%s); OpenBLAS "
                     "runs; set OPENBLAS_CORETYPE=%s (dlsched(7) BLAS)",
                     finding, dls_kern_isa_name(isa), why, best);
        else
            snprintf(note, len,
                     "cpu_kernels=own: libdlsched's own %s kernels failed their self-test (%s); "
                     "OpenBLAS runs",
                     dls_kern_isa_name(isa), why);
        return &dls_cpu_ops_table;
    }
    if (finding[0])
        snprintf(note, len,
                 "%s: this agent runs libdlsched's own %s kernels (self-test passed); for the "
                 "host's BLAS set OPENBLAS_CORETYPE=%s (dlsched(7) BLAS)",
                 finding, dls_kern_isa_name(isa), best);
    else
        snprintf(note, len, "cpu_kernels=own: this agent runs libdlsched's own %s kernels "
                            "(self-test passed)",
                 dls_kern_isa_name(isa));
    return isa == DLS_ISA_AVX512 ? &own512_table : &own256_table;
}
