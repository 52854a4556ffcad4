/*
 * kernels.c - libdlsched's own AVX2+FMA and AVX-512 matrix products (see
 * kernels.h for when they run)
 *
 * GEMM: the classic register-blocked outer-product loop (Goto/BLIS): a
 * micro-kernel keeps an MR x NR block of C in registers (AVX-512: 8 x 32,
 * 16 zmm accumulators; AVX2: 6 x 16, 12 ymm) and, for each of KC steps of
 * the inner dimension, multiplies MR broadcast elements of op(A) by NR
 * contiguous elements of op(B). op(B) is packed into a KC x NR panel on the
 * stack when it is transposed or the panel is partial (else read in place);
 * op(A) is read in place (8 row pointers, or 8 neighbours of a column), so
 * nothing is allocated. Blocks of MC rows keep the part of A in use inside
 * L2 while the B panel stays in L1. Partial tiles use masked loads and
 * stores; rows past m repeat the last row and are never stored.
 *
 * dense1 (acting): 8 rows of W at a time against x, in registers, one
 * accumulator per row, then a horizontal sum of the 8.
 *
 * Built with GCC/clang target attributes, so the rest of the library stays
 * baseline x86-64; callers choose the set by CPUID (dls_kern_isa_for).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blasinfo.h"
#include "kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define DLS_HAVE_KERNELS 1
#include <immintrin.h>
#endif

enum { KC = 128, MC = 256 };

const char *dls_kern_isa_name(int isa)
{
    return isa == DLS_ISA_AVX512 ? "AVX-512" : isa == DLS_ISA_AVX2 ? "AVX2" : "none";
}

int dls_kern_isa_for(unsigned usable)
{
#ifdef DLS_HAVE_KERNELS
    unsigned ymm = DLS_CPU_AVX2 | DLS_CPU_FMA;
    if ((usable & (ymm | DLS_CPU_AVX512F)) == (ymm | DLS_CPU_AVX512F))
        return DLS_ISA_AVX512;
    if ((usable & ymm) == ymm)
        return DLS_ISA_AVX2;
#else
    (void)usable;
#endif
    return DLS_ISA_NONE;
}

/* ---- references (float64 sums) ------------------------------------------------------ */

void dls_ref_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++) {
                double x = ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                double y = tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                s += x * y;
            }
            float *cij = c + (size_t)i * ldc + j;
            *cij = (float)(alpha * s + (beta == 0.0f ? 0.0 : (double)beta * *cij));
        }
}

void dls_ref_dense1(int out, int in, const float *w, const float *b, const float *x, float *y,
                    int relu)
{
    for (int i = 0; i < out; i++) {
        double s = b[i];
        for (int j = 0; j < in; j++)
            s += (double)w[(size_t)i * in + j] * x[j];
        y[i] = relu && s < 0 ? 0.0f : (float)s;
    }
}

#ifdef DLS_HAVE_KERNELS

/* op(B)[p0 + p][j0 + j], p < kc, j < nv, into a kc x nr panel, zeros past nv */
static void pack_b(int tb, const float *b, int ldb, int p0, int j0, int kc, int nv, int nr,
                   float *bp)
{
    if (!tb) {
        for (int p = 0; p < kc; p++) {
            const float *src = b + (size_t)(p0 + p) * ldb + j0;
            float *dst = bp + (size_t)p * nr;
            memcpy(dst, src, (size_t)nv * sizeof(float));
            for (int j = nv; j < nr; j++)
                dst[j] = 0.0f;
        }
        return;
    }
    for (int j = 0; j < nv; j++) {
        const float *src = b + (size_t)(j0 + j) * ldb + p0;
        for (int p = 0; p < kc; p++)
            bp[(size_t)p * nr + j] = src[p];
    }
    for (int j = nv; j < nr; j++)
        for (int p = 0; p < kc; p++)
            bp[(size_t)p * nr + j] = 0.0f;
}

/* ---- AVX-512: MR 8 x NR 32 ---------------------------------------------------------- */

#define T512 __attribute__((target("avx512f,avx2,fma")))
#define MR5 8
#define NR5 32

/* acc += A-block(8 x kc) * B-panel(kc x 32); A element (r, p) at
   a + r * rs + p * cs; rows >= mv repeat row mv - 1 */
#define K512_BODY(CS_EXPR)                                                                   \
    __m512 acc[MR5][2];                                                                      \
    _Pragma("GCC unroll 8") for (int r = 0; r < MR5; r++) acc[r][0] = acc[r][1] =            \
        _mm512_setzero_ps();                                                                 \
    const float *ar[MR5];                                                                    \
    _Pragma("GCC unroll 8") for (int r = 0; r < MR5; r++) ar[r] =                            \
        a + (ptrdiff_t)(r < mv ? r : mv - 1) * rs;                                           \
    for (int p = 0; p < kc; p++) {                                                           \
        __m512 b0 = _mm512_loadu_ps(b + (ptrdiff_t)p * ldb);                                 \
        __m512 b1 = _mm512_loadu_ps(b + (ptrdiff_t)p * ldb + 16);                            \
        _Pragma("GCC unroll 8") for (int r = 0; r < MR5; r++)                                \
        {                                                                                    \
            __m512 av = _mm512_set1_ps(ar[r][CS_EXPR]);                                      \
            acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);                                  \
            acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);                                  \
        }                                                                                    \
    }                                                                                        \
    store512(acc, c, ldc, mv, nv, first, alpha, beta);

T512 static inline void store512(__m512 acc[MR5][2], float *c, int ldc, int mv, int nv,
                                 int first, float alpha, float beta)
{
    __mmask16 m0 = nv >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nv) - 1);
    __mmask16 m1 = nv >= 32 ? (__mmask16)0xffff
                 : nv > 16  ? (__mmask16)((1u << (nv - 16)) - 1)
                            : (__mmask16)0;
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int r = 0; r < mv; r++) {
        float *cr = c + (ptrdiff_t)r * ldc;
        __m512 x0 = _mm512_mul_ps(acc[r][0], va), x1 = _mm512_mul_ps(acc[r][1], va);
        if (!first) {
            x0 = _mm512_add_ps(x0, _mm512_maskz_loadu_ps(m0, cr));
            x1 = _mm512_add_ps(x1, _mm512_maskz_loadu_ps(m1, cr + 16));
        } else if (beta != 0.0f) {
            x0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, cr), x0);
            x1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, cr + 16), x1);
        }
        _mm512_mask_storeu_ps(cr, m0, x0);
        _mm512_mask_storeu_ps(cr + 16, m1, x1);
    }
}

/* A rows contiguous (op(A) = A): element (r, p) at ar[r][p] */
T512 static void k512_n(int kc, const float *a, ptrdiff_t rs, int mv, const float *b,
                        ptrdiff_t ldb, float *c, int ldc, int nv, int first, float alpha,
                        float beta)
{
    K512_BODY(p)
}

/* op(A) = A^T: element (r, p) at a + r + p * cs */
T512 static void k512_t(int kc, const float *a, ptrdiff_t rs, ptrdiff_t cs, int mv,
                        const float *b, ptrdiff_t ldb, float *c, int ldc, int nv, int first,
                        float alpha, float beta)
{
    K512_BODY((ptrdiff_t)p * cs)
}

/* ---- AVX2: MR 6 x NR 16 ------------------------------------------------------------- */

#define T256 __attribute__((target("avx2,fma")))
#define MR2 6
#define NR2 16

T256 static inline __m256i mask256(int nv)
{
    /* lane j enabled when j < nv */
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(nv), idx);
}

T256 static inline void store256(__m256 acc[MR2][2], float *c, int ldc, int mv, int nv,
                                 int first, float alpha, float beta)
{
    __m256i m0 = mask256(nv), m1 = mask256(nv - 8);
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    for (int r = 0; r < mv; r++) {
        float *cr = c + (ptrdiff_t)r * ldc;
        __m256 x0 = _mm256_mul_ps(acc[r][0], va), x1 = _mm256_mul_ps(acc[r][1], va);
        if (!first) {
            x0 = _mm256_add_ps(x0, _mm256_maskload_ps(cr, m0));
            x1 = _mm256_add_ps(x1, _mm256_maskload_ps(cr + 8, m1));
        } else if (beta != 0.0f) {
            x0 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(cr, m0), x0);
            x1 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(cr + 8, m1), x1);
        }
        _mm256_maskstore_ps(cr, m0, x0);
        _mm256_maskstore_ps(cr + 8, m1, x1);
    }
}

#define K256_BODY(CS_EXPR)                                                                   \
    __m256 acc[MR2][2];                                                                      \
    _Pragma("GCC unroll 6") for (int r = 0; r < MR2; r++) acc[r][0] = acc[r][1] =            \
        _mm256_setzero_ps();                                                                 \
    const float *ar[MR2];                                                                    \
    _Pragma("GCC unroll 6") for (int r = 0; r < MR2; r++) ar[r] =                            \
        a + (ptrdiff_t)(r < mv ? r : mv - 1) * rs;                                           \
    for (int p = 0; p < kc; p++) {                                                           \
        __m256 b0 = _mm256_loadu_ps(b + (ptrdiff_t)p * ldb);                                 \
        __m256 b1 = _mm256_loadu_ps(b + (ptrdiff_t)p * ldb + 8);                             \
        _Pragma("GCC unroll 6") for (int r = 0; r < MR2; r++)                                \
        {                                                                                    \
            __m256 av = _mm256_broadcast_ss(&ar[r][CS_EXPR]);                                \
            acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);                                  \
            acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);                                  \
        }                                                                                    \
    }                                                                                        \
    store256(acc, c, ldc, mv, nv, first, alpha, beta);

T256 static void k256_n(int kc, const float *a, ptrdiff_t rs, int mv, const float *b,
                        ptrdiff_t ldb, float *c, int ldc, int nv, int first, float alpha,
                        float beta)
{
    K256_BODY(p)
}

T256 static void k256_t(int kc, const float *a, ptrdiff_t rs, ptrdiff_t cs, int mv,
                        const float *b, ptrdiff_t ldb, float *c, int ldc, int nv, int first,
                        float alpha, float beta)
{
    K256_BODY((ptrdiff_t)p * cs)
}

/* ---- the loops around the micro-kernels -------------------------------------------- */

void dls_kern_gemm(int isa, int ta, int tb, int m, int n, int k, float alpha, const float *a,
                   int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0 || alpha == 0.0f) {
        /* C = beta C, without reading A and B (nor C when beta = 0) */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                float *cij = c + (size_t)i * ldc + j;
                *cij = beta == 0.0f ? 0.0f : beta * *cij;
            }
        return;
    }
    int avx512 = isa == DLS_ISA_AVX512;
    int mr = avx512 ? MR5 : MR2, nr = avx512 ? NR5 : NR2;
    /* element (i, p) of op(A) at a + i * rs + p * cs */
    ptrdiff_t rs = ta ? 1 : lda, cs = ta ? lda : 1;
    float bp[KC * NR5] __attribute__((aligned(64)));
    for (int p0 = 0; p0 < k; p0 += KC) {
        int kc = k - p0 < KC ? k - p0 : KC;
        int first = p0 == 0;
        for (int i1 = 0; i1 < m; i1 += MC) {
            int i1end = m - i1 < MC ? m : i1 + MC;
            for (int j0 = 0; j0 < n; j0 += nr) {
                int nv = n - j0 < nr ? n - j0 : nr;
                const float *bpan;
                ptrdiff_t ldbp;
                if (tb || nv < nr) {
                    pack_b(tb, b, ldb, p0, j0, kc, nv, nr, bp);
                    bpan = bp;
                    ldbp = nr;
                } else {
                    bpan = b + (size_t)p0 * ldb + j0;
                    ldbp = ldb;
                }
                for (int i0 = i1; i0 < i1end; i0 += mr) {
                    int mv = i1end - i0 < mr ? i1end - i0 : mr;
                    const float *ablk = a + i0 * rs + p0 * cs;
                    float *cblk = c + (size_t)i0 * ldc + j0;
                    if (avx512) {
                        if (ta)
                            k512_t(kc, ablk, rs, cs, mv, bpan, ldbp, cblk, ldc, nv, first,
                                   alpha, beta);
                        else
                            k512_n(kc, ablk, rs, mv, bpan, ldbp, cblk, ldc, nv, first, alpha,
                                   beta);
                    } else {
                        if (ta)
                            k256_t(kc, ablk, rs, cs, mv, bpan, ldbp, cblk, ldc, nv, first,
                                   alpha, beta);
                        else
                            k256_n(kc, ablk, rs, mv, bpan, ldbp, cblk, ldc, nv, first, alpha,
                                   beta);
                    }
                }
            }
        }
    }
}

/* ---- dense1: y = W x + b ------------------------------------------------------------ */

/* the 8 horizontal sums of h[0..7], in order, by a horizontal-add tree */
T256 static inline __m256 sum8x8(const __m256 h[8])
{
    __m256 t0 = _mm256_hadd_ps(h[0], h[1]), t1 = _mm256_hadd_ps(h[2], h[3]);
    __m256 t2 = _mm256_hadd_ps(h[4], h[5]), t3 = _mm256_hadd_ps(h[6], h[7]);
    /* u0 = [r0 r1 r2 r3 | r0 r1 r2 r3]: the sums of lanes 0-3, then of 4-7 */
    __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    __m256 lo = _mm256_permute2f128_ps(u0, u1, 0x20), hi = _mm256_permute2f128_ps(u0, u1, 0x31);
    return _mm256_add_ps(lo, hi);
}

T512 static void dense1_512(int out, int in, const float *w, const float *b, const float *x,
                            float *y, int relu)
{
    int full = in & ~15;
    __mmask16 tail = (__mmask16)((1u << (in & 15)) - 1);
    int i = 0;
    for (; i + 8 <= out; i += 8) {
        __m512 acc[8];
        _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++) acc[r] = _mm512_setzero_ps();
        const float *wr = w + (size_t)i * in;
        int j = 0;
        for (; j < full; j += 16) {
            __m512 xv = _mm512_loadu_ps(x + j);
            _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++) acc[r] =
                _mm512_fmadd_ps(_mm512_loadu_ps(wr + (size_t)r * in + j), xv, acc[r]);
        }
        if (tail) {
            __m512 xv = _mm512_maskz_loadu_ps(tail, x + j);
            _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++) acc[r] = _mm512_fmadd_ps(
                _mm512_maskz_loadu_ps(tail, wr + (size_t)r * in + j), xv, acc[r]);
        }
        /* 8 x 16 lanes -> 8 sums: halves added, then a horizontal-add tree */
        __m256 h[8];
        _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++) h[r] =
            _mm256_add_ps(_mm512_castps512_ps256(acc[r]),
                          _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[r]), 1)));
        __m256 s = _mm256_add_ps(sum8x8(h), _mm256_loadu_ps(b + i));
        if (relu)
            s = _mm256_max_ps(s, _mm256_setzero_ps());
        _mm256_storeu_ps(y + i, s);
    }
    for (; i < out; i++) {
        const float *wr = w + (size_t)i * in;
        __m512 acc = _mm512_setzero_ps();
        int j = 0;
        for (; j < full; j += 16)
            acc = _mm512_fmadd_ps(_mm512_loadu_ps(wr + j), _mm512_loadu_ps(x + j), acc);
        if (tail)
            acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, wr + j),
                                  _mm512_maskz_loadu_ps(tail, x + j), acc);
        float s = _mm512_reduce_add_ps(acc) + b[i];
        y[i] = relu && s < 0.0f ? 0.0f : s;
    }
}

T256 static void dense1_256(int out, int in, const float *w, const float *b, const float *x,
                            float *y, int relu)
{
    int full = in & ~7;
    __m256i tail = mask256(in & 7);
    int has_tail = (in & 7) != 0;
    int i = 0;
    for (; i + 8 <= out; i += 8) {
        __m256 acc[8];
        _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++) acc[r] = _mm256_setzero_ps();
        const float *wr = w + (size_t)i * in;
        int j = 0;
        for (; j < full; j += 8) {
            __m256 xv = _mm256_loadu_ps(x + j);
            _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++) acc[r] =
                _mm256_fmadd_ps(_mm256_loadu_ps(wr + (size_t)r * in + j), xv, acc[r]);
        }
        if (has_tail) {
            __m256 xv = _mm256_maskload_ps(x + j, tail);
            _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++) acc[r] = _mm256_fmadd_ps(
                _mm256_maskload_ps(wr + (size_t)r * in + j, tail), xv, acc[r]);
        }
        __m256 s = _mm256_add_ps(sum8x8(acc), _mm256_loadu_ps(b + i));
        if (relu)
            s = _mm256_max_ps(s, _mm256_setzero_ps());
        _mm256_storeu_ps(y + i, s);
    }
    for (; i < out; i++) {
        const float *wr = w + (size_t)i * in;
        __m256 acc = _mm256_setzero_ps();
        int j = 0;
        for (; j < full; j += 8)
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(wr + j), _mm256_loadu_ps(x + j), acc);
        if (has_tail)
            acc = _mm256_fmadd_ps(_mm256_maskload_ps(wr + j, tail), _mm256_maskload_ps(x + j, tail),
                                  acc);
        __m128 q = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        q = _mm_hadd_ps(q, q);
        q = _mm_hadd_ps(q, q);
        float s = _mm_cvtss_f32(q) + b[i];
        y[i] = relu && s < 0.0f ? 0.0f : s;
    }
}

void dls_kern_dense1(int isa, int out, int in, const float *w, const float *b, const float *x,
                     float *y, int relu)
{
    if (isa == DLS_ISA_AVX512)
        dense1_512(out, in, w, b, x, y, relu);
    else
        dense1_256(out, in, w, b, x, y, relu);
}

#else /* no kernels in this build: dls_kern_isa_for() says none, never called */

void dls_kern_gemm(int isa, int ta, int tb, int m, int n, int k, float alpha, const float *a,
                   int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    (void)isa;
    dls_ref_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void dls_kern_dense1(int isa, int out, int in, const float *w, const float *b, const float *x,
                     float *y, int relu)
{
    (void)isa;
    dls_ref_dense1(out, in, w, b, x, y, relu);
}

#endif

/* ---- the self-test ------------------------------------------------------------------ */

/* tolerance of element (i, j): 1e-4 of the sum of |terms| (float32 sums of
   k products in any order stay within k * 2^-24 of it; k <= 2^10 here) */
static int gemm_agrees(int ta, int tb, int m, int n, int k, const float *a, int lda,
                       const float *b, int ldb, float beta, const float *c0, const float *got,
                       const float *want, int ldc, char *why, size_t len, const char *what)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double mag = beta == 0.0f ? 0.0 : fabs((double)beta * c0[(size_t)i * ldc + j]);
            for (int p = 0; p < k; p++) {
                double x = ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                double y = tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                mag += fabs(x * y);
            }
            double g = got[(size_t)i * ldc + j], w = want[(size_t)i * ldc + j];
            if (!(fabs(g - w) <= 1e-4 * mag + 1e-30)) {
                snprintf(why, len,
                         "%s GEMM %c%c %dx%dx%d: C[%d][%d] is %.9g, the plain-C reference "
                         "%.9g",
                         what, ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, i, j, g, w);
                return 0;
            }
        }
    return 1;
}

static uint64_t st_next(uint64_t *s)
{
    /* splitmix64: the test data only */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void st_fill(float *x, size_t n, uint64_t *s)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((double)(st_next(s) >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

static unsigned cut(unsigned w)
{
    return w > 300 ? 300 + w % 32 : w;
}

int dls_kern_selftest(int isa, const unsigned *widths, int nw, int batch, char *why, size_t len)
{
    if (isa != DLS_ISA_AVX2 && isa != DLS_ISA_AVX512) {
        snprintf(why, len, "no kernels for this CPU in this build");
        return -1;
    }
    /* the rows (the batch, 2 x batch forward for double DQN) at a count that
       is a multiple of neither tile (8, 6) and at most 19, and widths above
       300 cut to 300 + their remainder mod 32: the loops for more are the
       same, and creation stays short (about 10 ms for 16-256-256-8) */
    int rows = batch * 2 + 1 > 19 ? 19 : batch * 2 + 1;
    size_t maxw = 1;
    for (int l = 0; l < nw; l++)
        if (cut(widths[l]) > maxw)
            maxw = cut(widths[l]);
    size_t big = maxw * maxw > (size_t)rows * maxw ? maxw * maxw : (size_t)rows * maxw;
    float *a = malloc(big * sizeof(float)), *b = malloc(big * sizeof(float));
    float *c0 = malloc(big * sizeof(float)), *c1 = malloc(big * sizeof(float));
    float *c2 = malloc(big * sizeof(float)), *bias = malloc(maxw * sizeof(float));
    int ok = a && b && c0 && c1 && c2 && bias;
    if (!ok)
        snprintf(why, len, "out of memory for the self-test");
    uint64_t s = 0x646c73636865ull;
    for (int l = 0; ok && l + 1 < nw; l++) {
        int in = (int)cut(widths[l]), out = (int)cut(widths[l + 1]);
        /* forward: Y[rows x out] = X[rows x in] W^T, W [out x in] */
        /* input gradient: dX[rows x in] = dY[rows x out] W (accumulating: beta 1) */
        /* weight gradient: dW[out x in] = dY^T X */
        const struct {
            int ta, tb, m, n, k, lda, ldb;
            float beta;
            const char *what;
        } t[] = {
            {0, 1, rows, out, in, in, in, 0.0f, "forward"},
            {0, 0, rows, in, out, out, in, 1.0f, "input-gradient"},
            {1, 0, out, in, rows, out, in, 0.0f, "weight-gradient"},
        };
        for (size_t q = 0; ok && q < sizeof t / sizeof t[0]; q++) {
            size_t na = (size_t)(t[q].ta ? t[q].k : t[q].m) * t[q].lda;
            size_t nb = (size_t)(t[q].tb ? t[q].n : t[q].k) * t[q].ldb;
            size_t nc = (size_t)t[q].m * t[q].n;
            st_fill(a, na, &s);
            st_fill(b, nb, &s);
            st_fill(c0, nc, &s);
            memcpy(c1, c0, nc * sizeof(float));
            memcpy(c2, c0, nc * sizeof(float));
            dls_kern_gemm(isa, t[q].ta, t[q].tb, t[q].m, t[q].n, t[q].k, 1.0f, a, t[q].lda, b,
                          t[q].ldb, t[q].beta, c1, t[q].n);
            dls_ref_gemm(t[q].ta, t[q].tb, t[q].m, t[q].n, t[q].k, 1.0f, a, t[q].lda, b,
                         t[q].ldb, t[q].beta, c2, t[q].n);
            ok = gemm_agrees(t[q].ta, t[q].tb, t[q].m, t[q].n, t[q].k, a, t[q].lda, b,
                             t[q].ldb, t[q].beta, c0, c1, c2, t[q].n, why, len, t[q].what);
        }
        if (!ok)
            break;
        /* acting: one state through the layer */
        st_fill(a, (size_t)out * in, &s);
        st_fill(b, (size_t)in, &s);
        st_fill(bias, (size_t)out, &s);
        dls_kern_dense1(isa, out, in, a, bias, b, c1, 1);
        dls_ref_dense1(out, in, a, bias, b, c2, 1);
        for (int i = 0; ok && i < out; i++) {
            double mag = fabs(bias[i]);
            for (int j = 0; j < in; j++)
                mag += fabs((double)a[(size_t)i * in + j] * b[j]);
            if (!(fabs((double)c1[i] - c2[i]) <= 1e-4 * mag + 1e-30)) {
                snprintf(why, len,
                         "act %d->%d: output %d is %.9g, the plain-C reference %.9g", in, out,
                         i, c1[i], c2[i]);
                ok = 0;
            }
        }
    }
    free(a);
    free(b);
    free(c0);
    free(c1);
    free(c2);
    free(bias);
    return ok ? 0 : -1;
}
