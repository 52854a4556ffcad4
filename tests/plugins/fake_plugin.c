/* fake_plugin.c - plugins the core's loader must turn into clear errors
   (tests/check_cuda.c): built three ways by the Makefile.
     FAKE_NOGPU  a well-formed table whose probe finds no GPU
     FAKE_ABI    a table of another plugin ABI version
     FAKE_SIZE   a table shorter than the library's
     FAKE_FAIL   a "GPU" that sets up, takes weights and transitions, and
                 then fails every training step and copy back, as a CUDA
                 error would: the agent must report DLSCHED_EBACKEND */
#include <stdio.h>
#include <stdlib.h>

#include "../../src/dqn/gpu_ops.h"

#define FAKE_WHY "fake plugin: no GPU in this test"

static int fake_probe(char *why, size_t len)
{
    snprintf(why, len, "%s", FAKE_WHY);
    return 0;
}

#ifdef FAKE_FAIL
static int fake_probe_ok(char *why, size_t len)
{
    (void)why, (void)len;
    return 1;
}
#endif

#define FAKE_FAILURE "fake plugin: an illegal memory access was encountered"

struct dls_gpu {
    int trained;
};

static int fake_create(const dls_gpu_desc *d, dls_gpu **out, char *err, size_t len)
{
    (void)d;
    *out = NULL;
#ifdef FAKE_FAIL
    *out = calloc(1, sizeof **out);
    if (*out)
        return 0;
#endif
    snprintf(err, len, "%s", FAKE_WHY);
    return -1;
}

static void fake_destroy(dls_gpu *g)
{
    free(g);
}

static const char *fake_error(const dls_gpu *g)
{
    return g->trained ? FAKE_FAILURE : "";
}

static size_t fake_device_bytes(const dls_gpu *g)
{
    (void)g;
    return 0;
}

static int fake_set_state(dls_gpu *g, const float *theta, const float *theta_t, const float *m,
                          const float *v, uint64_t steps)
{
    (void)theta, (void)theta_t, (void)m, (void)v, (void)steps;
    return g->trained ? -1 : 0;
}

static int fake_get_state(dls_gpu *g, float *theta, float *theta_t, float *m, float *v)
{
    (void)theta, (void)theta_t, (void)m, (void)v;
    return g->trained ? -1 : 0;
}

static int fake_put_replay(dls_gpu *g, uint64_t first, uint64_t n, const float *s,
                           const float *s2, const int32_t *a, const float *ret,
                           const float *disc, const uint8_t *mask2)
{
    (void)first, (void)n, (void)s, (void)s2, (void)a, (void)ret, (void)disc, (void)mask2;
    return g->trained ? -1 : 0;
}

static int fake_train(dls_gpu *g, const dls_gpu_train_args *args, double *loss)
{
    (void)args, (void)loss;
    g->trained = 1;
    return -1;
}

static int fake_forward(dls_gpu *g, uint32_t rows, const float *x, float *q)
{
    (void)rows, (void)x, (void)q;
    g->trained = 1;
    return -1;
}

static int fake_grad(dls_gpu *g, uint32_t n, const float *s, const int32_t *a, const float *ret,
                     const float *disc, const float *s2, const uint8_t *mask2, float *grad,
                     double *loss)
{
    (void)n, (void)s, (void)a, (void)ret, (void)disc, (void)s2, (void)mask2, (void)grad,
        (void)loss;
    g->trained = 1;
    return -1;
}

static int fake_apply(dls_gpu *g)
{
    g->trained = 1;
    return -1;
}

static dls_gpu_ops fake_ops = {
    DLS_GPU_ABI,     sizeof(dls_gpu_ops), "cuda",         fake_probe,   fake_create,
    fake_destroy,    fake_error,          fake_device_bytes, fake_set_state, fake_get_state,
    fake_put_replay, fake_train,          fake_forward,   fake_grad,    fake_apply,
};

__attribute__((visibility("default"))) const dls_gpu_ops *dls_gpu_plugin_entry(void);
__attribute__((visibility("default"))) const dls_gpu_ops *dls_gpu_plugin_entry(void)
{
#if defined(FAKE_ABI)
    fake_ops.abi_version = DLS_GPU_ABI + 100;
#elif defined(FAKE_SIZE)
    fake_ops.size = 2 * sizeof(uint32_t);
#elif defined(FAKE_FAIL)
    fake_ops.probe = fake_probe_ok;
#endif
    return &fake_ops;
}
