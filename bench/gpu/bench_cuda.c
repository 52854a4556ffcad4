/*
 * bench_cuda.c - gradient steps per second of the CUDA backend, next to the
 * floor of its GEMMs, on the GPU it finds.
 *
 * For each network and batch: the plugin's train() (sampling, forward,
 * double-DQN target, Huber loss, backward, clipping, Adam, target update:
 * one CUDA graph per step) timed over many steps by the wall clock, one
 * synchronisation at the end of each timed call; and the floor: the same
 * step's cuBLAS sgemm calls alone (the same shapes, in one CUDA graph),
 * timed the same way in the same run. One JSON line per figure (bench.h);
 * PyTorch's figures come from bench/gpu/torch_step.py, and
 * bench/gpu/run.sh puts them side by side.
 *
 *   bench_cuda [path/to/libdlsched_cuda.so]    (default: lib/libdlsched_cuda.so)
 *
 * This program links cuBLAS and the CUDA runtime itself (for the floor);
 * the library's core does not.
 */
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "../bench.h"
#include "core/plugin.h"

#define PROG "bench_cuda"
#define MAXL 4
#define MAXG 32

typedef struct cfg {
    const char *name;
    uint32_t nf, na, L, hidden[MAXL];
    uint32_t batch;
    int tf32;
} cfg;

static const cfg g_cfgs[] = {
    {"16-256-256-8", 16, 8, 2, {256, 256}, 64, 0},
    {"16-256-256-8", 16, 8, 2, {256, 256}, 256, 0},
    {"16-256-256-8", 16, 8, 2, {256, 256}, 1024, 0},
    {"64-1024-1024-16", 64, 16, 2, {1024, 1024}, 4096, 0},
    {"64-1024-1024-16", 64, 16, 2, {1024, 1024}, 4096, 1},
};

static char g_date[64], g_dev[256];
static bench_machine g_machine;

static void cuda_die(const char *what, cudaError_t e)
{
    fprintf(stderr, PROG ": %s: %s\n", what, cudaGetErrorString(e));
    exit(1);
}

#define CK(x)                      \
    do {                           \
        cudaError_t e_ = (x);      \
        if (e_ != cudaSuccess)     \
            cuda_die(#x, e_);      \
    } while (0)

#define BL(x)                                                                          \
    do {                                                                               \
        cublasStatus_t s_ = (x);                                                       \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                             \
            fprintf(stderr, PROG ": %s: %s\n", #x, cublasGetStatusString(s_));         \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

/* one row-major GEMM of the step: C[m x n] = op(A) op(B) */
typedef struct gemm {
    int ta, tb, m, n, k;
} gemm;

/* the GEMMs of one double-DQN step with a plain head, as dqn.c issues them */
static int step_gemms(const cfg *c, gemm *g)
{
    uint32_t w[MAXL + 2];
    w[0] = c->nf;
    for (uint32_t l = 0; l < c->L; l++)
        w[l + 1] = c->hidden[l];
    int B = (int)c->batch, n = 0, h = (int)w[c->L], na = (int)c->na;
    for (int pass = 0; pass < 2; pass++) { /* online on 2B rows, target on B */
        int rows = pass == 0 ? 2 * B : B;
        for (uint32_t l = 0; l < c->L; l++)
            g[n++] = (gemm){0, 1, rows, (int)w[l + 1], (int)w[l]};
        g[n++] = (gemm){0, 1, rows, na, h};
    }
    g[n++] = (gemm){1, 0, na, h, B}; /* dWq */
    g[n++] = (gemm){0, 0, B, h, na}; /* dH */
    for (uint32_t l = c->L; l-- > 0;) {
        g[n++] = (gemm){1, 0, (int)w[l + 1], (int)w[l], B}; /* dW */
        if (l)
            g[n++] = (gemm){0, 0, B, (int)w[l], (int)w[l + 1]}; /* dX */
    }
    return n;
}

/* the floor: the step's GEMMs alone, one graph per step; steps per second */
static double gemm_floor(const cfg *c, double min_s)
{
    gemm g[MAXG];
    int n = step_gemms(c, g);
    size_t big = 0;
    for (int i = 0; i < n; i++) {
        size_t a = (size_t)g[i].m * g[i].k, b = (size_t)g[i].k * g[i].n, cc = (size_t)g[i].m * g[i].n;
        big = a > big ? a : big;
        big = b > big ? b : big;
        big = cc > big ? cc : big;
    }
    float *A, *Bm, *C;
    void *ws;
    CK(cudaMalloc((void **)&A, big * sizeof(float)));
    CK(cudaMalloc((void **)&Bm, big * sizeof(float)));
    CK(cudaMalloc((void **)&C, big * sizeof(float)));
    CK(cudaMalloc(&ws, 32u << 20));
    CK(cudaMemset(A, 0, big * sizeof(float)));
    CK(cudaMemset(Bm, 0, big * sizeof(float)));
    cudaStream_t st;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    cublasHandle_t h;
    BL(cublasCreate(&h));
    BL(cublasSetStream(h, st));
    BL(cublasSetWorkspace(h, ws, 32u << 20));
    BL(cublasSetMathMode(h, c->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    const float one = 1.0f, zero = 0.0f;
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < n; i++) {
        /* row-major through column-major: C^T = op(B)^T op(A)^T */
        int lda = g[i].ta ? g[i].m : g[i].k, ldb = g[i].tb ? g[i].k : g[i].n;
        BL(cublasSgemm(h, g[i].tb ? CUBLAS_OP_T : CUBLAS_OP_N, g[i].ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                       g[i].n, g[i].m, g[i].k, &one, Bm, ldb, A, lda, &zero, C, g[i].n));
    }
    CK(cudaStreamEndCapture(st, &graph));
    CK(cudaGraphInstantiate(&exec, graph, 0));
    for (int i = 0; i < 20; i++)
        CK(cudaGraphLaunch(exec, st));
    CK(cudaStreamSynchronize(st));
    double best = 0;
    for (long steps = 50;; steps *= 2) {
        uint64_t t0 = bench_now_ns();
        for (long i = 0; i < steps; i++)
            CK(cudaGraphLaunch(exec, st));
        CK(cudaStreamSynchronize(st));
        double s = (double)(bench_now_ns() - t0) * 1e-9;
        if (s >= min_s) {
            best = (double)steps / s;
            break;
        }
    }
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cublasDestroy(h);
    cudaStreamDestroy(st);
    cudaFree(A), cudaFree(Bm), cudaFree(C), cudaFree(ws);
    return best;
}

/* the plugin's training step: steps per second, and the last loss */
static double plugin_steps(const dls_gpu_ops *ops, const cfg *c, double min_s, double *loss)
{
    uint32_t w[MAXL + 1];
    w[0] = c->nf;
    for (uint32_t l = 0; l < c->L; l++)
        w[l + 1] = c->hidden[l];
    uint64_t cap = 100000;
    dls_gpu_desc d = {c->nf, c->na, c->L, w, c->batch, cap, 0, 1, c->tf32,
                      1.0f, 10.0f, 1e-4f, 0.9f, 0.999f, 1e-8f, 0.0f, 1000};
    dls_gpu *g = NULL;
    char err[512];
    if (ops->create(&d, &g, err, sizeof err) != 0) {
        fprintf(stderr, PROG ": create: %s\n", err);
        exit(1);
    }
    /* weights He-initialised, a ring of random transitions */
    size_t np = 0;
    for (uint32_t l = 0; l < c->L; l++)
        np += (size_t)w[l + 1] * w[l] + w[l + 1];
    np += (size_t)c->na * w[c->L] + c->na;
    float *th = bench_xmalloc(PROG, np * sizeof(float)), *z = bench_xmalloc(PROG, np * sizeof(float));
    bench_rng r = {0x1234567};
    for (size_t i = 0; i < np; i++)
        th[i] = (float)(0.1 * (bench_rng_uniform(&r) - 0.5));
    float *s = bench_xmalloc(PROG, cap * c->nf * sizeof(float));
    float *s2 = bench_xmalloc(PROG, cap * c->nf * sizeof(float));
    int32_t *a = bench_xmalloc(PROG, cap * sizeof(int32_t));
    float *ret = bench_xmalloc(PROG, cap * sizeof(float)), *disc = bench_xmalloc(PROG, cap * sizeof(float));
    uint8_t *mask = bench_xmalloc(PROG, cap * c->na);
    for (size_t i = 0; i < cap * c->nf; i++)
        s[i] = (float)bench_rng_uniform(&r), s2[i] = (float)bench_rng_uniform(&r);
    for (size_t i = 0; i < cap; i++) {
        a[i] = (int32_t)(bench_rng_next(&r) % c->na);
        ret[i] = (float)bench_rng_uniform(&r);
        disc[i] = bench_rng_next(&r) % 10 ? 0.99f : 0.0f;
    }
    memset(mask, 1, cap * c->na);
    if (ops->set_state(g, th, th, z, z, 0) != 0 ||
        ops->put_replay(g, 0, cap, s, s2, a, ret, disc, mask) != 0) {
        fprintf(stderr, PROG ": %s\n", ops->error(g));
        exit(1);
    }
    dls_gpu_train_args args = {20, cap, 7, NULL, NULL};
    if (ops->train(g, &args, loss) != 0) {
        fprintf(stderr, PROG ": train: %s\n", ops->error(g));
        exit(1);
    }
    double best = 0;
    for (long steps = 50;; steps *= 2) {
        args.steps = (uint64_t)steps;
        args.seed++;
        uint64_t t0 = bench_now_ns();
        if (ops->train(g, &args, loss) != 0) {
            fprintf(stderr, PROG ": train: %s\n", ops->error(g));
            exit(1);
        }
        double sec = (double)(bench_now_ns() - t0) * 1e-9;
        if (sec >= min_s) {
            best = (double)steps / sec;
            break;
        }
    }
    ops->destroy(g);
    free(th), free(z), free(s), free(s2), free(a), free(ret), free(disc), free(mask);
    return best;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "lib/libdlsched_cuda.so";
    char abs[4096];
    if (path[0] != '/' && realpath(path, abs))
        path = abs;
    const dls_gpu_ops *ops = NULL;
    char why[512];
    if (dls_plugin_open(path, &ops, why, sizeof why) != 0) {
        fprintf(stderr, PROG ": %s\n", why);
        return 1;
    }
    if (!ops->probe(why, sizeof why)) {
        fprintf(stderr, PROG ": %s\n", why);
        return 1;
    }
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    snprintf(g_dev, sizeof g_dev, "%.200s (%d SMs, cc %d.%d)", prop.name, prop.multiProcessorCount,
             prop.major, prop.minor);
    bench_utc_date(g_date, sizeof g_date);
    bench_machine_read(&g_machine);

    bench_line l;
    bench_header_begin(&l, PROG);
    bench_line_str(&l, "device", g_dev);
    bench_line_str(&l, "date", g_date);
    bench_line_str(&l, "plugin", path);
    bench_line_env(&l, &g_machine);
    bench_line_end(&l);

    double min_s = getenv("BENCH_CUDA_MIN_S") ? atof(getenv("BENCH_CUDA_MIN_S")) : 0.5;
    for (size_t i = 0; i < sizeof g_cfgs / sizeof g_cfgs[0]; i++) {
        const cfg *c = &g_cfgs[i];
        double loss = NAN;
        double sps = plugin_steps(ops, c, min_s, &loss);
        double floor_sps = gemm_floor(c, min_s);
        gemm gg[MAXG];
        bench_line_begin(&l);
        bench_line_str(&l, "bench", PROG);
        bench_line_str(&l, "net", c->name);
        bench_line_num(&l, "batch", c->batch);
        bench_line_str(&l, "math", c->tf32 ? "tf32" : "fp32");
        bench_line_str(&l, "step", "double DQN, Huber, clip 10, Adam, hard target every 1000; "
                                   "uniform sampling from a 100000-transition device ring");
        bench_line_num(&l, "steps_per_s", sps);
        bench_line_num(&l, "us_per_step", 1e6 / sps);
        bench_line_num(&l, "gemm_floor_steps_per_s", floor_sps);
        bench_line_num(&l, "gemms_per_step", step_gemms(c, gg));
        bench_line_num(&l, "fraction_of_floor", sps / floor_sps);
        bench_line_num(&l, "last_loss", loss);
        bench_line_str(&l, "timing", "wall clock over N graph launches and one final "
                                     "synchronisation, N doubled until >= BENCH_CUDA_MIN_S "
                                     "(0.5 s)");
        bench_line_str(&l, "device", g_dev);
        bench_line_str(&l, "date", g_date);
        bench_line_end(&l);
    }
    return 0;
}
