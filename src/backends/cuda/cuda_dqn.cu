/*
 * cuda_dqn.cu - the DQN training step on an NVIDIA GPU: cuBLAS sgemm for
 * the matrix products, fused kernels for the rest, the whole step captured
 * once in a CUDA graph and replayed. Built as lib/libdlsched_cuda.so, which
 * exports only dls_gpu_plugin_entry (see src/dqn/gpu_ops.h).
 *
 * The math is src/dqn/dqn.c's, step for step (same GEMMs, same Huber
 * gradient, same clipping, Adam and target update in the same float
 * arithmetic); only minibatch sampling differs: indices come from a
 * counter-based hash of (seed, step, row) on the device instead of the
 * agent's generator on the host.
 *
 * Device memory, all allocated in create(): the replay ring, parameters,
 * target, gradient, Adam moments, activations for 2B rows, and a small
 * block of per-call values (seed, count, normaliser) that the host updates
 * between graph launches. The step counter lives on the device: the graph
 * advances it, so replaying the graph needs no host work.
 *
 * Never aborts, exits or prints: every CUDA and cuBLAS status is checked
 * and turned into a sticky error text.
 */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "../../dqn/gpu_ops.h"
#include "../../dqn/layout.h"
}

#define CU_THREADS 256
#define CU_SUMSQ_BLOCKS 128
/* column sums split the rows into at most this many chunks of at least
   CU_COLSUM_ROWS rows (enough blocks to fill the GPU at large batches) */
#define CU_COLSUM_CHUNKS 64
#define CU_COLSUM_ROWS 64
#define CU_WORKSPACE (32u << 20) /* cuBLAS workspace: NVIDIA's figure for Hopper */

/* values the host sets before a train() call's graph launches */
typedef struct cu_call {
    unsigned long long seed, count;
    int norm_on;
    int pad;
} cu_call;

struct dls_gpu {
    int dev;
    uint32_t nf, na, L, maxw, B;
    uint32_t *w;
    int dueling, dbl;
    float huber, clip, lr, b1, b2, eps, tau;
    unsigned long long hard_every;
    uint64_t cap;
    size_t n_params;
    size_t *offW, *offb;
    dls_layout hd; /* the head's offsets */
    cudaStream_t stream;
    cublasHandle_t blas;
    cudaGraphExec_t graph;
    int have_graph;
    /* device memory */
    float *theta, *theta_t, *grad, *m, *v;
    float *rs, *rs2, *rret, *rdisc; /* replay ring */
    int32_t *ra;
    uint8_t *rmask;
    float *xb;              /* 2B x nf */
    float **act_on, **act_t; /* device pointers, host array */
    float *q_on, *q_t, *v_on, *v_t;
    float *dh0, *dh1, *dq, *dv;
    double *lossrow;        /* B: each row's Huber loss */
    uint32_t last_n;        /* rows of the last grad() */
    int32_t *ba;
    float *bret, *bdisc;
    uint8_t *bmask;
    float *nmean, *ninv;
    double *partial;         /* CU_SUMSQ_BLOCKS */
    float *colpart;          /* CU_COLSUM_CHUNKS x maxw: column sums per chunk */
    double *loss;            /* the last step's loss */
    unsigned long long *t;   /* steps applied */
    cu_call *call;
    void *workspace;
    /* pinned host staging */
    cu_call *h_call;
    double *h_loss;
    float *h_norm;          /* 2 nf */
    size_t dev_bytes;
    int failed;
    char err[512];
};

/* ---- errors ------------------------------------------------------------------ */

static int cu_fail(dls_gpu *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int cu_fail(dls_gpu *g, const char *fmt, ...)
{
    if (!g->failed) { /* keep the first cause */
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->err, sizeof g->err, fmt, ap);
        va_end(ap);
        g->failed = 1;
    }
    return -1;
}

#define CU_CK(g, call)                                                                     \
    do {                                                                                   \
        cudaError_t cu_e_ = (call);                                                        \
        if (cu_e_ != cudaSuccess)                                                          \
            return cu_fail((g), "CUDA: %s failed: %s (%s)", #call, cudaGetErrorString(cu_e_), \
                           cudaGetErrorName(cu_e_));                                       \
    } while (0)

#define CU_BL(g, call)                                                                      \
    do {                                                                                    \
        cublasStatus_t cu_s_ = (call);                                                      \
        if (cu_s_ != CUBLAS_STATUS_SUCCESS)                                                 \
            return cu_fail((g), "cuBLAS: %s failed: %s", #call, cublasGetStatusString(cu_s_)); \
    } while (0)

/* a kernel launch: configuration errors show at once */
#define CU_LAUNCHED(g, what)                                                                \
    do {                                                                                    \
        cudaError_t cu_e_ = cudaGetLastError();                                             \
        if (cu_e_ != cudaSuccess)                                                           \
            return cu_fail((g), "CUDA: launching %s failed: %s", what,                     \
                           cudaGetErrorString(cu_e_));                                      \
    } while (0)

static unsigned cu_blocks(size_t n)
{
    size_t b = (n + CU_THREADS - 1) / CU_THREADS;
    return (unsigned)(b < 1 ? 1 : (b > 65535u * 8 ? 65535u * 8 : b));
}

/* ---- kernels ------------------------------------------------------------------ */

__device__ static unsigned long long cu_mix(unsigned long long z)
{
    /* splitmix64's finaliser */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Minibatch of B rows: index = hash(seed, step, row) mod count; states
   normalised x = clamp((x - mean) * inv, -10, 10) as dqn.c does. Threads
   cover B x 2nf state values; the first nf threads of a row also copy the
   row's action, return, discount and next mask. */
__global__ void k_sample(uint32_t B, uint32_t nf, uint32_t na, const cu_call *call,
                         const unsigned long long *t, const float *rs, const float *rs2,
                         const int32_t *ra, const float *rret, const float *rdisc,
                         const uint8_t *rmask, const float *nmean, const float *ninv, float *xb,
                         int32_t *ba, float *bret, float *bdisc, uint8_t *bmask)
{
    size_t total = (size_t)B * 2 * nf;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        uint32_t i = (uint32_t)(e / (2 * nf)), j = (uint32_t)(e % (2 * nf));
        unsigned long long h =
            cu_mix(call->seed + 0x9e3779b97f4a7c15ULL * (*t + 1) + 0xd1b54a32d192ed03ULL * (i + 1));
        unsigned long long idx = h % call->count;
        int second = j >= nf;
        uint32_t f = second ? j - nf : j;
        float x = (second ? rs2 : rs)[idx * nf + f];
        if (call->norm_on) {
            float z = (x - nmean[f]) * ninv[f];
            x = z > 10.0f ? 10.0f : (z < -10.0f ? -10.0f : z);
        }
        xb[(size_t)(second ? B + i : i) * nf + f] = x;
        if (j == 0) {
            ba[i] = ra[idx];
            bret[i] = rret[idx];
            bdisc[i] = rdisc[idx];
        }
        if (!second)
            for (uint32_t k = f; k < na; k += nf)
                bmask[(size_t)i * na + k] = rmask[idx * na + k];
    }
}

/* Y[rows x n] += b (each row), then ReLU when relu */
__global__ void k_bias_act(size_t rows, uint32_t n, const float *b, float *y, int relu)
{
    size_t total = rows * n;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        float z = y[e] + b[e % n];
        y[e] = relu ? (z > 0.0f ? z : 0.0f) : z;
    }
}

/* Q = V + A - mean(A), one thread per row (na is small) */
__global__ void k_dueling(uint32_t rows, uint32_t na, const float *v, float *q)
{
    uint32_t r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows)
        return;
    float *qr = q + (size_t)r * na;
    float mean = 0;
    for (uint32_t a = 0; a < na; a++)
        mean += qr[a];
    mean /= (float)na;
    for (uint32_t a = 0; a < na; a++)
        qr[a] += v[r] - mean;
}

/* Per row i, as dqn.c:
     a* = argmax over allowed a' of Q_online(s', .) (double) or Q_target(s', .)
     y = R + disc Q_target(s', a*)
     g = clamp(Q(s,a) - y, -delta, delta) / n       (Huber)
   dQ row = g at a_i, 0 elsewhere; dueling: dV = sum dQ row, dA = dQ - dV/na.
   lossrow[i] = huber(Q(s,a) - y) */
__global__ void k_target_loss(uint32_t n, uint32_t na, int dbl, int dueling, float delta,
                              const float *q_on, const float *q_t, const int32_t *ba,
                              const float *bret, const float *bdisc, const uint8_t *bmask,
                              float *dq, float *dv, double *lossrow)
{
    uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    double y = bret[i];
    if (bdisc[i] != 0.0f) {
        const uint8_t *m = bmask ? bmask + (size_t)i * na : NULL;
        const float *qsel = dbl ? q_on + (size_t)(n + i) * na : q_t + (size_t)i * na;
        int best = -1;
        for (uint32_t k = 0; k < na; k++)
            if ((!m || m[k]) && (best < 0 || qsel[k] > qsel[best]))
                best = (int)k;
        if (best >= 0)
            y += (double)bdisc[i] * q_t[(size_t)i * na + best];
    }
    float yf = (float)y;
    float qsa = q_on[(size_t)i * na + ba[i]];
    float d = qsa - yf;
    float ad = fabsf(d);
    lossrow[i] = ad <= delta ? 0.5 * (double)d * d : delta * (ad - 0.5 * delta);
    float c = d > delta ? delta : (d < -delta ? -delta : d);
    float g = c / (float)n;
    float *row = dq + (size_t)i * na;
    for (uint32_t k = 0; k < na; k++)
        row[k] = 0.0f;
    row[ba[i]] = g;
    if (dueling) {
        dv[i] = g;
        for (uint32_t k = 0; k < na; k++)
            row[k] -= g / (float)na;
    }
}

/* dY *= [Y > 0] when relu (Y may be NULL without relu), and the column
   sums of dY over the rows of chunk blockIdx.y (chunk rows each) into
   out[blockIdx.y * n + col]. Block: 32 columns x 8 row groups, reduced in
   shared memory in a fixed order (deterministic). */
__global__ void k_colsum(uint32_t rows, uint32_t chunk, uint32_t n, const float *y, float *dy,
                         float *out, int relu)
{
    __shared__ float part[8][33];
    uint32_t col = blockIdx.x * 32 + threadIdx.x;
    uint32_t r0 = blockIdx.y * chunk, r1 = r0 + chunk < rows ? r0 + chunk : rows;
    float s = 0.0f;
    if (col < n) {
        for (uint32_t r = r0 + threadIdx.y; r < r1; r += 8) {
            size_t e = (size_t)r * n + col;
            float d = dy[e];
            if (relu) {
                d = y[e] > 0.0f ? d : 0.0f;
                dy[e] = d;
            }
            s += d;
        }
    }
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && col < n) {
        float t = 0.0f;
        for (int k = 0; k < 8; k++)
            t += part[k][threadIdx.x];
        out[(size_t)blockIdx.y * n + col] = t;
    }
}

/* db[col] = the sum of the chunks' column sums, in chunk order */
__global__ void k_colsum_chunks(uint32_t chunks, uint32_t n, const float *part, float *db)
{
    uint32_t col = blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= n)
        return;
    float t = 0.0f;
    for (uint32_t c = 0; c < chunks; c++)
        t += part[(size_t)c * n + col];
    db[col] = t;
}

/* the sum of every thread's s over a block of CU_THREADS threads, in a
   fixed tree order (deterministic); the result is valid in thread 0 */
__device__ static double cu_block_sum(double s)
{
    __shared__ double sh[CU_THREADS];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (unsigned k = blockDim.x / 2; k > 0; k >>= 1) {
        if (threadIdx.x < k)
            sh[threadIdx.x] += sh[threadIdx.x + k];
        __syncthreads();
    }
    return sh[0];
}

/* partial sums of squares (double), one per block */
__global__ void k_sumsq(size_t n, const float *x, double *partial)
{
    double s = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        s += (double)x[i] * x[i];
    s = cu_block_sum(s);
    if (threadIdx.x == 0)
        partial[blockIdx.x] = s;
}

/* Clip to the global norm (g *= min(1, clip / ||g||)), Adam at step t+1,
   then the target: theta' = tau theta + (1 - tau) theta', or a copy every
   hard_every steps. Every block sums the partials itself, in one order. */
__global__ void k_adam_target(size_t n, float *p, const float *g, float *m, float *v, float *pt,
                              const double *partial, float clip, float lr, float b1, float b2,
                              float eps, float tau, unsigned long long hard_every,
                              const unsigned long long *t)
{
    __shared__ float s_scale;
    if (threadIdx.x < 32) { /* the first warp: lanes, then a fixed shuffle tree */
        double ss = 0;
        if (clip > 0.0f)
            for (int k = threadIdx.x; k < CU_SUMSQ_BLOCKS; k += 32)
                ss += partial[k];
        for (int off = 16; off > 0; off >>= 1)
            ss += __shfl_down_sync(0xffffffffu, ss, off);
        if (threadIdx.x == 0) {
            float gscale = 1.0f;
            double norm = sqrt(ss);
            if (clip > 0.0f && norm > clip)
                gscale = (float)(clip / norm);
            s_scale = gscale;
        }
    }
    __syncthreads();
    float gscale = s_scale;
    unsigned long long step = *t + 1;
    /* m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
       p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) */
    float c1 = (float)(1.0 - pow((double)b1, (double)step));
    float c2 = (float)(1.0 - pow((double)b2, (double)step));
    float stp = lr / c1, inv_c2 = 1.0f / c2;
    int copy = hard_every != 0 && step % hard_every == 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float gi = g[i] * gscale;
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float pi = p[i] - stp * mi / (sqrtf(vi * inv_c2) + eps);
        p[i] = pi;
        if (hard_every == 0)
            pt[i] = tau * pi + (1.0f - tau) * pt[i];
        else if (copy)
            pt[i] = pi;
    }
}

/* loss = (1/n) sum lossrow (double, fixed order); the step counter moves on */
__global__ void k_finish(uint32_t n, const double *lossrow, double *loss, unsigned long long *t,
                         int advance)
{
    double s = 0;
    for (uint32_t i = threadIdx.x; i < n; i += blockDim.x)
        s += lossrow[i];
    s = cu_block_sum(s);
    if (threadIdx.x == 0) {
        *loss = s / n;
        if (advance)
            *t += 1;
    }
}

/* a probe: proves a kernel of this fat binary runs on the device */
__global__ void k_probe(int *x)
{
    *x = 42;
}

/* ---- the step, as stream work (captured into the graph) -------------------- */

/* row-major C[m x n] = op(A) op(B) + beta C, through column-major cuBLAS:
   C^T = op(B)^T op(A)^T */
static int cu_gemm(dls_gpu *g, int ta, int tb, int m, int n, int k, const float *a, int lda,
                   const float *b, int ldb, float beta, float *c, int ldc)
{
    const float one = 1.0f;
    CU_BL(g, cublasSgemm(g->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                         n, m, k, &one, b, ldb, a, lda, &beta, c, ldc));
    return 0;
}

static int cu_bias(dls_gpu *g, size_t rows, uint32_t n, const float *b, float *y, int relu)
{
    k_bias_act<<<cu_blocks(rows * n), CU_THREADS, 0, g->stream>>>(rows, n, b, y, relu);
    CU_LAUNCHED(g, "k_bias_act");
    return 0;
}

/* rows of x through the trunk and head with parameters p */
static int cu_forward(dls_gpu *g, const float *p, const float *x, uint32_t rows, float **act,
                      float *q, float *v)
{
    const float *in = x;
    for (uint32_t l = 0; l < g->L; l++) {
        int n = (int)g->w[l + 1], k = (int)g->w[l];
        /* H = relu(X W^T + b) */
        if (cu_gemm(g, 0, 1, (int)rows, n, k, in, k, p + g->offW[l], k, 0.0f, act[l], n) ||
            cu_bias(g, rows, (uint32_t)n, p + g->offb[l], act[l], 1))
            return -1;
        in = act[l];
    }
    int h = (int)g->w[g->L], na = (int)g->na;
    if (!g->dueling)
        return cu_gemm(g, 0, 1, (int)rows, na, h, in, h, p + g->hd.offWq, h, 0.0f, q, na) ||
                       cu_bias(g, rows, (uint32_t)na, p + g->hd.offbq, q, 0)
                   ? -1
                   : 0;
    if (cu_gemm(g, 0, 1, (int)rows, 1, h, in, h, p + g->hd.offWv, h, 0.0f, v, 1) ||
        cu_bias(g, rows, 1, p + g->hd.offbv, v, 0) ||
        cu_gemm(g, 0, 1, (int)rows, na, h, in, h, p + g->hd.offWa, h, 0.0f, q, na) ||
        cu_bias(g, rows, (uint32_t)na, p + g->hd.offba, q, 0))
        return -1;
    k_dueling<<<cu_blocks(rows), CU_THREADS, 0, g->stream>>>(rows, g->na, v, q);
    CU_LAUNCHED(g, "k_dueling");
    return 0;
}

/* db = column sums of dY (after the ReLU mask when relu): one pass when
   the rows are few, else in row chunks and a second pass over the chunks */
static int cu_colsum(dls_gpu *g, uint32_t rows, uint32_t n, const float *y, float *dy, float *db,
                     int relu)
{
    uint32_t chunks = (rows + CU_COLSUM_ROWS - 1) / CU_COLSUM_ROWS;
    chunks = chunks < 1 ? 1 : (chunks > CU_COLSUM_CHUNKS ? CU_COLSUM_CHUNKS : chunks);
    uint32_t chunk = (rows + chunks - 1) / chunks;
    k_colsum<<<dim3((n + 31) / 32, chunks), dim3(32, 8), 0, g->stream>>>(
        rows, chunk, n, y, dy, chunks == 1 ? db : g->colpart, relu);
    CU_LAUNCHED(g, "k_colsum");
    if (chunks > 1) {
        k_colsum_chunks<<<(n + CU_THREADS - 1) / CU_THREADS, CU_THREADS, 0, g->stream>>>(
            chunks, n, g->colpart, db);
        CU_LAUNCHED(g, "k_colsum_chunks");
    }
    return 0;
}

/* loss and gradient of the n rows in xb, ba, bret, bdisc, bmask (mask NULL
   = all allowed); as dqn_grad_core() */
static int cu_grad_core(dls_gpu *g, uint32_t n, const uint8_t *mask)
{
    const float *p = g->theta;
    int na = (int)g->na, h = (int)g->w[g->L];
    if (cu_forward(g, p, g->xb, g->dbl ? 2 * n : n, g->act_on, g->q_on, g->v_on) ||
        cu_forward(g, g->theta_t, g->xb + (size_t)n * g->nf, n, g->act_t, g->q_t, g->v_t))
        return -1;
    k_target_loss<<<cu_blocks(n), CU_THREADS, 0, g->stream>>>(
        n, g->na, g->dbl, g->dueling, g->huber, g->q_on, g->q_t, g->ba, g->bret, g->bdisc, mask,
        g->dq, g->dv, g->lossrow);
    CU_LAUNCHED(g, "k_target_loss");

    float *gr = g->grad;
    const float *H = g->L ? g->act_on[g->L - 1] : g->xb; /* the first n rows: s */
    float *dH = g->dh0, *dHn = g->dh1;
    int B = (int)n;
    if (!g->dueling) {
        /* dWq = dQ^T H, dbq = colsum dQ, dH = dQ Wq */
        if (cu_gemm(g, 1, 0, na, h, B, g->dq, na, H, h, 0.0f, gr + g->hd.offWq, h) ||
            cu_colsum(g, n, (uint32_t)na, NULL, g->dq, gr + g->hd.offbq, 0))
            return -1;
        if (g->L && cu_gemm(g, 0, 0, B, h, na, g->dq, na, p + g->hd.offWq, h, 0.0f, dH, h))
            return -1;
    } else {
        if (cu_gemm(g, 1, 0, 1, h, B, g->dv, 1, H, h, 0.0f, gr + g->hd.offWv, h) ||
            cu_colsum(g, n, 1, NULL, g->dv, gr + g->hd.offbv, 0) ||
            cu_gemm(g, 1, 0, na, h, B, g->dq, na, H, h, 0.0f, gr + g->hd.offWa, h) ||
            cu_colsum(g, n, (uint32_t)na, NULL, g->dq, gr + g->hd.offba, 0))
            return -1;
        /* dH = dV Wv + dA Wa */
        if (g->L && (cu_gemm(g, 0, 0, B, h, 1, g->dv, 1, p + g->hd.offWv, h, 0.0f, dH, h) ||
                     cu_gemm(g, 0, 0, B, h, na, g->dq, na, p + g->hd.offWa, h, 1.0f, dH, h)))
            return -1;
    }
    for (uint32_t l = g->L; l-- > 0;) {
        int nn = (int)g->w[l + 1], k = (int)g->w[l];
        const float *X = l ? g->act_on[l - 1] : g->xb;
        /* dZ = dH * [H > 0];  dW = dZ^T X;  db = colsum dZ;  dX = dZ W */
        if (cu_colsum(g, n, (uint32_t)nn, g->act_on[l], dH, gr + g->offb[l], 1) ||
            cu_gemm(g, 1, 0, nn, k, B, dH, nn, X, k, 0.0f, gr + g->offW[l], k))
            return -1;
        if (l) {
            if (cu_gemm(g, 0, 0, B, k, nn, dH, nn, p + g->offW[l], k, 0.0f, dHn, k))
                return -1;
            float *tmp = dH;
            dH = dHn;
            dHn = tmp;
        }
    }
    return 0;
}

/* clip, Adam, target, loss and step counter */
static int cu_apply(dls_gpu *g, uint32_t n)
{
    k_sumsq<<<CU_SUMSQ_BLOCKS, CU_THREADS, 0, g->stream>>>(g->n_params, g->grad, g->partial);
    CU_LAUNCHED(g, "k_sumsq");
    k_adam_target<<<cu_blocks(g->n_params), CU_THREADS, 0, g->stream>>>(
        g->n_params, g->theta, g->grad, g->m, g->v, g->theta_t, g->partial, g->clip, g->lr, g->b1,
        g->b2, g->eps, g->tau, g->hard_every, g->t);
    CU_LAUNCHED(g, "k_adam_target");
    k_finish<<<1, CU_THREADS, 0, g->stream>>>(n, g->lossrow, g->loss, g->t, 1);
    CU_LAUNCHED(g, "k_finish");
    return 0;
}

/* one whole step from the device ring */
static int cu_step(dls_gpu *g)
{
    k_sample<<<cu_blocks((size_t)g->B * 2 * g->nf), CU_THREADS, 0, g->stream>>>(
        g->B, g->nf, g->na, g->call, g->t, g->rs, g->rs2, g->ra, g->rret, g->rdisc, g->rmask,
        g->nmean, g->ninv, g->xb, g->ba, g->bret, g->bdisc, g->bmask);
    CU_LAUNCHED(g, "k_sample");
    return cu_grad_core(g, g->B, g->bmask) || cu_apply(g, g->B) ? -1 : 0;
}

static int cu_capture(dls_gpu *g)
{
    cudaGraph_t graph = NULL;
    CU_CK(g, cudaStreamBeginCapture(g->stream, cudaStreamCaptureModeThreadLocal));
    int rc = cu_step(g);
    cudaError_t e = cudaStreamEndCapture(g->stream, &graph);
    if (rc != 0) {
        if (graph)
            cudaGraphDestroy(graph);
        return -1;
    }
    if (e != cudaSuccess)
        return cu_fail(g, "CUDA: capturing the training step into a graph failed: %s",
                       cudaGetErrorString(e));
    e = cudaGraphInstantiate(&g->graph, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess)
        return cu_fail(g, "CUDA: cudaGraphInstantiate failed: %s", cudaGetErrorString(e));
    g->have_graph = 1;
    return 0;
}

/* ---- the table ---------------------------------------------------------------- */

static int cu_probe(char *why, size_t len)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        snprintf(why, len, "CUDA: no usable device: %s (%s)", cudaGetErrorString(e),
                 cudaGetErrorName(e));
        return 0;
    }
    if (n == 0) {
        snprintf(why, len, "CUDA: the driver sees no device");
        return 0;
    }
    int dev = 0;
    e = cudaGetDevice(&dev);
    int *x = NULL, hx = 0;
    if (e == cudaSuccess)
        e = cudaMalloc((void **)&x, sizeof *x);
    if (e == cudaSuccess) {
        k_probe<<<1, 1>>>(x);
        e = cudaGetLastError();
    }
    if (e == cudaSuccess)
        e = cudaMemcpy(&hx, x, sizeof hx, cudaMemcpyDeviceToHost);
    if (x)
        cudaFree(x);
    if (e != cudaSuccess || hx != 42) {
        snprintf(why, len, "CUDA: device %d cannot run this plugin's kernels: %s", dev,
                 e != cudaSuccess ? cudaGetErrorString(e) : "wrong result");
        return 0;
    }
    return 1;
}

static void cu_destroy(dls_gpu *g)
{
    if (!g)
        return;
    cudaSetDevice(g->dev);
    if (g->stream)
        cudaStreamSynchronize(g->stream);
    if (g->have_graph)
        cudaGraphExecDestroy(g->graph);
    if (g->blas)
        cublasDestroy(g->blas);
    void *dev[] = {g->theta, g->theta_t, g->grad, g->m, g->v, g->rs, g->rs2, g->rret,
                   g->rdisc, g->ra, g->rmask, g->xb, g->q_on, g->q_t, g->v_on, g->v_t,
                   g->dh0, g->dh1, g->dq, g->dv, g->lossrow, g->ba, g->bret, g->bdisc,
                   g->bmask, g->nmean, g->ninv, g->partial, g->colpart, g->loss, g->t, g->call,
                   g->workspace};
    /* cudaFree and cudaFreeHost take NULL as a no-op */
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        cudaFree(dev[i]);
    for (uint32_t l = 0; l < g->L; l++) {
        cudaFree(g->act_on ? g->act_on[l] : NULL);
        cudaFree(g->act_t ? g->act_t[l] : NULL);
    }
    cudaFreeHost(g->h_call);
    cudaFreeHost(g->h_loss);
    cudaFreeHost(g->h_norm);
    if (g->stream)
        cudaStreamDestroy(g->stream);
    free(g->act_on);
    free(g->act_t);
    free(g->w);
    free(g->offW);
    free(g->offb);
    free(g);
}

static int cu_alloc(dls_gpu *g, void *pp, size_t bytes)
{
    void **p = (void **)pp;
    CU_CK(g, cudaMalloc(p, bytes ? bytes : 1));
    CU_CK(g, cudaMemset(*p, 0, bytes ? bytes : 1));
    g->dev_bytes += bytes;
    return 0;
}

static int cu_setup(dls_gpu *g, const dls_gpu_desc *d)
{
    CU_CK(g, cudaGetDevice(&g->dev));
    g->nf = d->nf;
    g->na = d->na;
    g->L = d->L;
    g->B = d->batch;
    g->cap = d->replay_cap;
    g->dueling = d->dueling;
    g->dbl = d->dbl;
    g->huber = d->huber;
    g->clip = d->clip;
    g->lr = d->lr;
    g->b1 = d->b1;
    g->b2 = d->b2;
    g->eps = d->eps;
    g->tau = d->tau;
    g->hard_every = d->hard_every;
    g->w = (uint32_t *)calloc(d->L + 1, sizeof *g->w);
    g->offW = (size_t *)calloc(d->L + 1, sizeof *g->offW);
    g->offb = (size_t *)calloc(d->L + 1, sizeof *g->offb);
    g->act_on = (float **)calloc(d->L + 1, sizeof *g->act_on);
    g->act_t = (float **)calloc(d->L + 1, sizeof *g->act_t);
    if (!g->w || !g->offW || !g->offb || !g->act_on || !g->act_t)
        return cu_fail(g, "out of host memory for the CUDA context");
    for (uint32_t l = 0; l <= d->L; l++)
        g->w[l] = d->w[l];
    /* the layout of dqn.h */
    size_t n = dls_layout_compute(g->L, g->w, g->na, g->dueling, g->offW, g->offb, &g->hd);
    g->maxw = g->hd.maxw;
    size_t na = g->na, nf = g->nf, B = g->B, fs = sizeof(float);
    g->n_params = n;

    CU_CK(g, cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking));
    CU_BL(g, cublasCreate(&g->blas));
    CU_BL(g, cublasSetStream(g->blas, g->stream));
    CU_BL(g, cublasSetPointerMode(g->blas, CUBLAS_POINTER_MODE_HOST));
    CU_BL(g, cublasSetMathMode(g->blas, d->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    if (cu_alloc(g, &g->workspace, CU_WORKSPACE))
        return -1;
    /* a workspace of its own: graph capture then allocates nothing */
    CU_BL(g, cublasSetWorkspace(g->blas, g->workspace, CU_WORKSPACE));

    uint64_t cap = g->cap;
    if (cu_alloc(g, &g->theta, n * fs) || cu_alloc(g, &g->theta_t, n * fs) ||
        cu_alloc(g, &g->grad, n * fs) || cu_alloc(g, &g->m, n * fs) ||
        cu_alloc(g, &g->v, n * fs) || cu_alloc(g, &g->rs, cap * nf * fs) ||
        cu_alloc(g, &g->rs2, cap * nf * fs) || cu_alloc(g, &g->ra, cap * sizeof(int32_t)) ||
        cu_alloc(g, &g->rret, cap * fs) || cu_alloc(g, &g->rdisc, cap * fs) ||
        cu_alloc(g, &g->rmask, cap * na) || cu_alloc(g, &g->xb, 2 * B * nf * fs) ||
        cu_alloc(g, &g->q_on, 2 * B * na * fs) || cu_alloc(g, &g->q_t, B * na * fs) ||
        cu_alloc(g, &g->v_on, 2 * B * fs) || cu_alloc(g, &g->v_t, B * fs) ||
        cu_alloc(g, &g->dh0, B * g->maxw * fs) || cu_alloc(g, &g->dh1, B * g->maxw * fs) ||
        cu_alloc(g, &g->dq, B * na * fs) || cu_alloc(g, &g->dv, B * fs) ||
        cu_alloc(g, &g->lossrow, B * sizeof(double)) || cu_alloc(g, &g->ba, B * sizeof(int32_t)) ||
        cu_alloc(g, &g->bret, B * fs) || cu_alloc(g, &g->bdisc, B * fs) ||
        cu_alloc(g, &g->bmask, B * na) || cu_alloc(g, &g->nmean, nf * fs) ||
        cu_alloc(g, &g->ninv, nf * fs) ||
        cu_alloc(g, &g->partial, CU_SUMSQ_BLOCKS * sizeof(double)) ||
        cu_alloc(g, &g->colpart, (size_t)CU_COLSUM_CHUNKS * g->maxw * fs) ||
        cu_alloc(g, &g->loss, sizeof(double)) ||
        cu_alloc(g, &g->t, sizeof(unsigned long long)) || cu_alloc(g, &g->call, sizeof(cu_call)))
        return -1;
    for (uint32_t l = 0; l < g->L; l++)
        if (cu_alloc(g, &g->act_on[l], 2 * B * g->w[l + 1] * fs) ||
            cu_alloc(g, &g->act_t[l], B * g->w[l + 1] * fs))
            return -1;
    CU_CK(g, cudaMallocHost((void **)&g->h_call, sizeof(cu_call)));
    CU_CK(g, cudaMallocHost((void **)&g->h_loss, sizeof(double)));
    CU_CK(g, cudaMallocHost((void **)&g->h_norm, 2 * nf * fs));
    memset(g->h_call, 0, sizeof(cu_call));
    CU_CK(g, cudaDeviceSynchronize());
    /* the step as a graph, captured while the stream is idle; it reads its
       per-call values (seed, count, normaliser) from device memory */
    return cu_capture(g);
}

static int cu_create(const dls_gpu_desc *d, dls_gpu **out, char *err, size_t len)
{
    *out = NULL;
    dls_gpu *g = (dls_gpu *)calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, len, "out of host memory for the CUDA context");
        return -1;
    }
    if (cu_setup(g, d) != 0) {
        snprintf(err, len, "%s", g->err);
        cu_destroy(g);
        return -1;
    }
    *out = g;
    return 0;
}

static const char *cu_error(const dls_gpu *g)
{
    return g->failed ? g->err : "";
}

static size_t cu_device_bytes(const dls_gpu *g)
{
    return g->dev_bytes;
}

#define CU_ENTER(g)                                                                        \
    do {                                                                                   \
        if ((g)->failed)                                                                   \
            return -1;                                                                     \
        CU_CK((g), cudaSetDevice((g)->dev));                                               \
    } while (0)

static int cu_set_state(dls_gpu *g, const float *theta, const float *theta_t, const float *m,
                        const float *v, uint64_t steps)
{
    CU_ENTER(g);
    size_t bytes = g->n_params * sizeof(float);
    unsigned long long t = steps;
    /* copies in the context's stream (a plain cudaMemcpy would not be
       ordered with it: the stream does not block on the default one) */
    cudaMemcpyKind h2d = cudaMemcpyHostToDevice;
    CU_CK(g, cudaMemcpyAsync(g->theta, theta, bytes, h2d, g->stream));
    CU_CK(g, cudaMemcpyAsync(g->theta_t, theta_t, bytes, h2d, g->stream));
    CU_CK(g, cudaMemcpyAsync(g->m, m, bytes, h2d, g->stream));
    CU_CK(g, cudaMemcpyAsync(g->v, v, bytes, h2d, g->stream));
    CU_CK(g, cudaMemcpyAsync(g->t, &t, sizeof t, h2d, g->stream));
    CU_CK(g, cudaStreamSynchronize(g->stream));
    return 0;
}

static int cu_get_state(dls_gpu *g, float *theta, float *theta_t, float *m, float *v)
{
    CU_ENTER(g);
    size_t bytes = g->n_params * sizeof(float);
    cudaMemcpyKind d2h = cudaMemcpyDeviceToHost;
    if (theta)
        CU_CK(g, cudaMemcpyAsync(theta, g->theta, bytes, d2h, g->stream));
    if (theta_t)
        CU_CK(g, cudaMemcpyAsync(theta_t, g->theta_t, bytes, d2h, g->stream));
    if (m)
        CU_CK(g, cudaMemcpyAsync(m, g->m, bytes, d2h, g->stream));
    if (v)
        CU_CK(g, cudaMemcpyAsync(v, g->v, bytes, d2h, g->stream));
    CU_CK(g, cudaStreamSynchronize(g->stream));
    return 0;
}

static int cu_put_replay(dls_gpu *g, uint64_t first, uint64_t n, const float *s, const float *s2,
                         const int32_t *a, const float *ret, const float *disc,
                         const uint8_t *mask2)
{
    CU_ENTER(g);
    if (first > g->cap || n > g->cap - first)
        return cu_fail(g, "put_replay: rows %llu .. %llu outside the ring of %llu",
                       (unsigned long long)first, (unsigned long long)(first + n),
                       (unsigned long long)g->cap);
    if (n == 0)
        return 0;
    size_t nf = g->nf, na = g->na, fs = sizeof(float);
    cudaMemcpyKind h2d = cudaMemcpyHostToDevice;
    CU_CK(g, cudaMemcpyAsync(g->rs + first * nf, s + first * nf, n * nf * fs, h2d, g->stream));
    CU_CK(g, cudaMemcpyAsync(g->rs2 + first * nf, s2 + first * nf, n * nf * fs, h2d, g->stream));
    CU_CK(g, cudaMemcpyAsync(g->ra + first, a + first, n * sizeof(int32_t), h2d, g->stream));
    CU_CK(g, cudaMemcpyAsync(g->rret + first, ret + first, n * fs, h2d, g->stream));
    CU_CK(g, cudaMemcpyAsync(g->rdisc + first, disc + first, n * fs, h2d, g->stream));
    CU_CK(g, cudaMemcpyAsync(g->rmask + first * na, mask2 + first * na, n * na, h2d, g->stream));
    /* the host may reuse its rows after return (pageable copies are staged,
       but make it explicit) */
    CU_CK(g, cudaStreamSynchronize(g->stream));
    return 0;
}

static int cu_train(dls_gpu *g, const dls_gpu_train_args *args, double *loss)
{
    CU_ENTER(g);
    if (args->steps == 0)
        return 0;
    if (args->count == 0 || args->count > g->cap)
        return cu_fail(g, "train: %llu stored transitions for a ring of %llu",
                       (unsigned long long)args->count, (unsigned long long)g->cap);
    /* the previous call synchronised, so the pinned staging is free */
    g->h_call->seed = args->seed;
    g->h_call->count = args->count;
    g->h_call->norm_on = args->nmean != NULL;
    size_t nf = g->nf, fs = sizeof(float);
    CU_CK(g, cudaMemcpyAsync(g->call, g->h_call, sizeof(cu_call), cudaMemcpyHostToDevice,
                             g->stream));
    if (args->nmean) {
        memcpy(g->h_norm, args->nmean, nf * fs);
        memcpy(g->h_norm + nf, args->ninv, nf * fs);
        CU_CK(g, cudaMemcpyAsync(g->nmean, g->h_norm, nf * fs, cudaMemcpyHostToDevice,
                                 g->stream));
        CU_CK(g, cudaMemcpyAsync(g->ninv, g->h_norm + nf, nf * fs, cudaMemcpyHostToDevice,
                                 g->stream));
    }
    for (uint64_t k = 0; k < args->steps; k++)
        CU_CK(g, cudaGraphLaunch(g->graph, g->stream));
    CU_CK(g, cudaMemcpyAsync(g->h_loss, g->loss, sizeof(double), cudaMemcpyDeviceToHost,
                             g->stream));
    CU_CK(g, cudaStreamSynchronize(g->stream));
    *loss = *g->h_loss;
    return 0;
}

static int cu_forward_host(dls_gpu *g, uint32_t rows, const float *x, float *q)
{
    CU_ENTER(g);
    if (rows == 0 || rows > 2 * g->B)
        return cu_fail(g, "forward: %u rows; at most 2 x batch = %u", rows, 2 * g->B);
    CU_CK(g, cudaMemcpyAsync(g->xb, x, (size_t)rows * g->nf * sizeof(float),
                             cudaMemcpyHostToDevice, g->stream));
    if (cu_forward(g, g->theta, g->xb, rows, g->act_on, g->q_on, g->v_on))
        return -1;
    CU_CK(g, cudaMemcpyAsync(q, g->q_on, (size_t)rows * g->na * sizeof(float),
                             cudaMemcpyDeviceToHost, g->stream));
    CU_CK(g, cudaStreamSynchronize(g->stream));
    return 0;
}

static int cu_grad_host(dls_gpu *g, uint32_t n, const float *s, const int32_t *a,
                        const float *ret, const float *disc, const float *s2,
                        const uint8_t *mask2, float *grad, double *loss)
{
    CU_ENTER(g);
    if (n == 0 || n > g->B)
        return cu_fail(g, "grad: %u rows; the batch is %u", n, g->B);
    for (uint32_t i = 0; i < n; i++)
        if (a[i] < 0 || (uint32_t)a[i] >= g->na)
            return cu_fail(g, "grad: action %d of row %u is out of range", a[i], i);
    size_t nf = g->nf, fs = sizeof(float);
    cudaMemcpyKind h2d = cudaMemcpyHostToDevice;
    CU_CK(g, cudaMemcpyAsync(g->xb, s, n * nf * fs, h2d, g->stream));
    CU_CK(g, cudaMemcpyAsync(g->xb + n * nf, s2, n * nf * fs, h2d, g->stream));
    CU_CK(g, cudaMemcpyAsync(g->ba, a, n * sizeof(int32_t), h2d, g->stream));
    CU_CK(g, cudaMemcpyAsync(g->bret, ret, n * fs, h2d, g->stream));
    CU_CK(g, cudaMemcpyAsync(g->bdisc, disc, n * fs, h2d, g->stream));
    if (mask2)
        CU_CK(g, cudaMemcpyAsync(g->bmask, mask2, (size_t)n * g->na, h2d, g->stream));
    if (cu_grad_core(g, n, mask2 ? g->bmask : NULL))
        return -1;
    k_finish<<<1, CU_THREADS, 0, g->stream>>>(n, g->lossrow, g->loss, g->t, 0);
    CU_LAUNCHED(g, "k_finish");
    if (grad)
        CU_CK(g, cudaMemcpyAsync(grad, g->grad, g->n_params * fs, cudaMemcpyDeviceToHost,
                                 g->stream));
    CU_CK(g, cudaMemcpyAsync(g->h_loss, g->loss, sizeof(double), cudaMemcpyDeviceToHost,
                             g->stream));
    CU_CK(g, cudaStreamSynchronize(g->stream));
    g->last_n = n;
    *loss = *g->h_loss;
    return 0;
}

static int cu_apply_host(dls_gpu *g)
{
    CU_ENTER(g);
    if (cu_apply(g, g->last_n ? g->last_n : g->B))
        return -1;
    CU_CK(g, cudaStreamSynchronize(g->stream));
    return 0;
}

static const dls_gpu_ops cu_ops = {
    DLS_GPU_ABI,     sizeof(dls_gpu_ops), "cuda",        cu_probe,       cu_create,
    cu_destroy,      cu_error,            cu_device_bytes, cu_set_state, cu_get_state,
    cu_put_replay,   cu_train,            cu_forward_host, cu_grad_host, cu_apply_host,
};

extern "C" __attribute__((visibility("default"))) const dls_gpu_ops *dls_gpu_plugin_entry(void)
{
    return &cu_ops;
}
