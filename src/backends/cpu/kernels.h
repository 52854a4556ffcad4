/*
 * kernels.h - libdlsched's own matrix products (AVX2+FMA and AVX-512), for
 * CPUs on which OpenBLAS runs kernels older than the CPU allows.
 *
 * OpenBLAS picks its kernels once per process, when it is loaded, from the
 * CPU models it knows; a newer CPU gets the generic SSE3 ones, 3-4x slower
 * per flop (blasinfo.c). The library cannot re-pick OpenBLAS's kernels
 * without changing the host's BLAS too, so the dqn agent's own products
 * (its GEMMs and the act path's matrix-vector chain) run on these instead.
 * An agent uses them only after they pass a self-test on its own shapes
 * against a plain-C float64 reference (dls_kern_selftest).
 */
#ifndef DLS_KERNELS_H
#define DLS_KERNELS_H

#include <stddef.h>

/* instruction sets the kernels are built for */
enum { DLS_ISA_NONE = 0, DLS_ISA_AVX2 = 1, DLS_ISA_AVX512 = 2 };

/* the best set this build has kernels for that the CPU's usable features
   (blasinfo.h dls_cpu_usable) allow: AVX512 needs AVX-512F with AVX2 and
   FMA; AVX2 needs AVX2 and FMA */
int dls_kern_isa_for(unsigned usable);
const char *dls_kern_isa_name(int isa); /* "AVX-512", "AVX2", "none" */

/* C[m x n] = alpha op(A)[m x k] op(B)[k x n] + beta C, row-major, like
   cblas_sgemm (beta = 0: C is not read). Single-threaded; uses about 16 KiB
   of stack and allocates nothing. isa must be AVX2 or AVX512. */
void dls_kern_gemm(int isa, int ta, int tb, int m, int n, int k, float alpha, const float *a,
                   int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* y[out] = W[out x in] x + b, then ReLU when relu */
void dls_kern_dense1(int isa, int out, int in, const float *w, const float *b, const float *x,
                     float *y, int relu);

/* the plain-C references the self-test compares with (float64 sums) */
void dls_ref_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc);
void dls_ref_dense1(int out, int in, const float *w, const float *b, const float *x, float *y,
                    int relu);

/* Run the kernels of isa on the products an MLP with the given layer widths
   (widths[0] = inputs, ..., widths[nw-1] = outputs) computes when acting and
   when training at batch `batch`: every layer's forward (NT), input-gradient
   (NN) and weight-gradient (TN) GEMM and its dense1, on random data, against
   the references. 0 when every element agrees within 1e-4 of the sum of
   the magnitudes of its terms; else -1 with what differed in why. Allocates
   its buffers (creation time only). */
int dls_kern_selftest(int isa, const unsigned *widths, int nw, int batch, char *why, size_t len);

#endif
