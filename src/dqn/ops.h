/*
 * ops.h - the small table of numeric operations the DQN math is written
 * against. The CPU backend (src/backends/cpu) fills it with OpenBLAS; a GPU
 * backend fills it with its own kernels. All matrices are row-major float32.
 * Pointers are the backend's memory (host memory for the CPU).
 */
#ifndef DLS_OPS_H
#define DLS_OPS_H

#include <stddef.h>
#include <stdint.h>

#define DLS_OPS_ABI 1

typedef struct dls_ops {
    uint32_t abi_version; /* DLS_OPS_ABI */
    uint32_t size;        /* sizeof(dls_ops) as the backend was built */
    const char *name;
    /* 1 when the backend can run here, else 0 with the reason in why */
    int (*probe)(char *why, size_t len);
    /* threads the backend may use for the training GEMMs that follow (the
       CPU backend gives each GEMM as many of them as its size pays for);
       1 after training: acting never threads */
    void (*set_threads)(int n);
    /* C[m x n] = alpha * op(A) * op(B) + beta * C; ta/tb: 1 = transposed */
    void (*gemm)(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc);
    /* one state through one dense layer: y[out] = W[out x in] x + b, then
       ReLU when relu; single-threaded */
    void (*dense1)(int out, int in, const float *w, const float *b, const float *x, float *y,
                   int relu);
    /* Y[rows x n] += b (each row), then ReLU in place when relu */
    void (*bias_act)(int rows, int n, const float *b, float *y, int relu);
    /* backward of bias_act: dY *= (Y > 0) when relu; db[n] = column sums of dY */
    void (*bias_act_grad)(int rows, int n, const float *y, float *dy, float *db, int relu);
    /* Huber: g_i = w_i clamp(q_i - y_i, -delta, delta) / n (w NULL = 1);
       td_abs_i = |q_i - y_i|; returns (1/n) sum w_i huber_delta(q_i - y_i) */
    double (*huber_grad)(int n, const float *q, const float *y, const float *w, float delta,
                         float *g, float *td_abs);
    /* Adam with bias correction at step t >= 1 on g scaled by gscale */
    void (*adam)(size_t n, float *p, const float *g, float *m, float *v, float lr, float b1,
                 float b2, float eps, uint64_t t, float gscale);
    /* y = a x + b y (a copy with a=1, b=0; Polyak averaging with a=tau, b=1-tau) */
    void (*axpby)(size_t n, float a, const float *x, float b, float *y);
    /* sum of squares (float partial sums combined in double) */
    double (*sumsq)(size_t n, const float *x);
} dls_ops;

const dls_ops *dls_cpu_ops(void);
/* The CPU ops a dqn agent runs, for cpu_kernels = mode (DLS_KERNELS_*):
   OpenBLAS, or libdlsched's own AVX2/AVX-512 kernels (auto: when OpenBLAS
   runs older kernels than the CPU allows) once they pass a self-test on the
   agent's shapes (layer widths, a dueling value head of extra_out outputs
   when > 0, the batch). note: what was chosen and why, "" when OpenBLAS
   runs and its kernels fit the CPU. */
const dls_ops *dls_cpu_ops_select(int mode, const unsigned *widths, int nw, int extra_out,
                                  int batch, char *note, size_t len);
/* tests: nonzero makes every self-test fail */
extern int dls_kern_selftest_fault;
/* the OpenBLAS threads the CPU backend gives C[m x n] = op(A)[m x k] op(B)[k x n]
   when training may use up to allowed (set_threads); 1 for allowed <= 1 */
int dls_cpu_gemm_threads(int m, int n, int k, int allowed);

#endif
