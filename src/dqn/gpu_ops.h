/*
 * gpu_ops.h - the table a device backend plugin (src/backends/cuda, built as
 * lib/libdlsched_cuda.so) hands to the DQN. Plain C without a CUDA type: the
 * core includes it and never links CUDA; the plugin implements it.
 *
 * The plugin exports one symbol, DLS_GPU_ENTRY, a function returning a
 * pointer to its static dls_gpu_ops. The core checks abi_version and size
 * before it touches anything else, then calls probe().
 *
 * Unlike dls_ops (ops.h), whose calls each do one small operation on host
 * memory, this table works at the level of whole training steps: the
 * replay buffer, the minibatch, the network, its gradient and Adam's
 * moments live in device memory, and a step is replayed as one CUDA graph
 * without a round trip to the host. The math is the same as dqn.c's (see
 * dqn.h for the parameter layout); tests compare the two.
 *
 * Every function but probe, destroy, error and device_bytes returns 0 on
 * success and -1 on failure, with the text (naming the CUDA or cuBLAS call
 * and its error string) in error(). A failure is sticky: later calls fail
 * with the same text.
 */
#ifndef DLS_GPU_OPS_H
#define DLS_GPU_OPS_H

#include <stddef.h>
#include <stdint.h>

#define DLS_GPU_ABI 1
#define DLS_GPU_ENTRY "dls_gpu_plugin_entry"
#define DLS_GPU_PLUGIN_NAME "libdlsched_cuda.so"

/* the network and training hyper-parameters, fixed at creation */
typedef struct dls_gpu_desc {
    uint32_t nf, na, L;
    const uint32_t *w;   /* widths w[0..L]: n_features, then hidden */
    uint32_t batch;      /* rows of a training minibatch */
    uint64_t replay_cap; /* transitions the device ring holds */
    int dueling, dbl;
    int tf32;            /* 1: TF32 tensor-core GEMMs; 0: plain FP32 */
    float huber, clip, lr, b1, b2, eps;
    float tau;           /* Polyak rate when hard_every is 0 */
    uint64_t hard_every; /* hard target copy every N steps; 0 = Polyak */
} dls_gpu_desc;

/* one call of train(): `steps` gradient steps on minibatches drawn
   uniformly (with replacement) from ring rows [0, count) */
typedef struct dls_gpu_train_args {
    uint64_t steps;
    uint64_t count;
    uint64_t seed;      /* this call's sampling stream */
    const float *nmean; /* normaliser, nf each; NULL = identity */
    const float *ninv;
} dls_gpu_train_args;

typedef struct dls_gpu dls_gpu; /* the plugin's training context */

typedef struct dls_gpu_ops {
    uint32_t abi_version; /* DLS_GPU_ABI */
    uint32_t size;        /* sizeof(dls_gpu_ops) as the plugin was built */
    const char *name;     /* "cuda" */
    /* 1 when a usable device is present, else 0 with the reason in why */
    int (*probe)(char *why, size_t len);
    /* a context with every device buffer allocated; on failure the reason
       is in err */
    int (*create)(const dls_gpu_desc *desc, dls_gpu **out, char *err, size_t len);
    void (*destroy)(dls_gpu *g);
    const char *(*error)(const dls_gpu *g);
    size_t (*device_bytes)(const dls_gpu *g);
    /* parameters, target, Adam moments (n_params each) and the step count */
    int (*set_state)(dls_gpu *g, const float *theta, const float *theta_t, const float *m,
                     const float *v, uint64_t steps);
    /* copy back what is not NULL */
    int (*get_state)(dls_gpu *g, float *theta, float *theta_t, float *m, float *v);
    /* ring rows [first, first + n) from the host ring arrays (the whole
       arrays of replay.h: row r of s is s + r * nf) */
    int (*put_replay)(dls_gpu *g, uint64_t first, uint64_t n, const float *s, const float *s2,
                      const int32_t *a, const float *ret, const float *disc,
                      const uint8_t *mask2);
    /* args->steps steps (sample, forward, loss, backward, clip, Adam,
       target update); *loss = the last step's loss */
    int (*train)(dls_gpu *g, const dls_gpu_train_args *args, double *loss);
    /* for tests and benchmarks, on explicit host data: Q-values of rows
       (<= 2 * batch) already normalised states with the online weights */
    int (*forward)(dls_gpu *g, uint32_t rows, const float *x, float *q);
    /* the loss and gradient (before clipping) of an explicit minibatch of
       n <= batch rows (mask2 NULL = all allowed); grad may be NULL */
    int (*grad)(dls_gpu *g, uint32_t n, const float *s, const int32_t *a, const float *ret,
                const float *disc, const float *s2, const uint8_t *mask2, float *grad,
                double *loss);
    /* clip, Adam and target update with the gradient of the last grad() */
    int (*apply)(dls_gpu *g);
} dls_gpu_ops;

typedef const dls_gpu_ops *(*dls_gpu_entry_fn)(void);

#endif
