/* check_cuda.c - the CUDA backend plugin.
 *
 * Everywhere: the loader's error paths (plugin missing, not a plugin,
 * another ABI version, a short table, a relative DLSCHED_PLUGIN_PATH, a
 * probe that finds no GPU, a device that fails mid-training) through the
 * internal loader and the public API: device=cuda fails with
 * DLSCHED_ENODEVICE and the reason, device=auto falls back to the CPU with
 * the reason in stats and dlsched_last_error(), per=1 is refused on the
 * device, and a device failure is DLSCHED_EBACKEND with its text.
 *
 * With a GPU (the plugin of DLSCHED_CUDA_PLUGIN loads and probes): the
 * device math against the CPU DQN of src/dqn on identical weights and
 * batches (forward, loss and gradient for the head variants), one Adam
 * step against a float64 reference, the target update, and learning
 * through the public API with device=cuda. Without one these tests return
 * at once; test_cuda_gpu says so once on stderr.
 *
 * The loader's answer is process-wide and found once, so every test that
 * sets DLSCHED_PLUGIN_PATH relies on Check's fork mode (the default): each
 * test runs in a fresh process. A CUDA context does not survive fork(), so
 * nothing here touches CUDA outside a test. */
#include <stddef.h>
#include <stdio.h>

#include "tests.h"

#include "core/backend.h"
#include "core/config.h"
#include "core/plugin.h"
#include "core/rng.h"
#include "dqn/dqn.h"

/* ---- where the plugins are ---------------------------------------------------- */

/* the real plugin (make check sets it when lib/libdlsched_cuda.so was
   built), or NULL */
static const char *cu_real(void)
{
    const char *p = getenv("DLSCHED_CUDA_PLUGIN");
    return p && *p ? p : NULL;
}

/* a fake plugin of tests/plugins: "" (no GPU), "abi", "size", "fail" */
static void cu_fake_path(const char *kind, char *buf, size_t len)
{
    const char *dir = getenv("DLSCHED_TEST_PLUGINS");
    ck_assert_msg(dir && *dir, "DLSCHED_TEST_PLUGINS is not set (run through make check)");
    snprintf(buf, len, "%s%s%s/libdlsched_cuda.so", dir, *kind ? "/" : "", kind);
}

/* agents of this process load the fake plugin `kind` */
static void cu_use_fake(const char *kind)
{
    char path[1024];
    cu_fake_path(kind, path, sizeof path);
    ck_assert_int_eq(setenv("DLSCHED_PLUGIN_PATH", path, 1), 0);
}

/* agents of this process load the real plugin; 1 when a GPU is usable */
static int cu_use_real(void)
{
    if (!cu_real())
        return 0;
    ck_assert_int_eq(setenv("DLSCHED_PLUGIN_PATH", cu_real(), 1), 0);
    return dlsched_backend_available("cuda");
}

/* the real plugin's table when a GPU is usable, else NULL */
static const dls_gpu_ops *cu_gpu(void)
{
    if (!cu_real())
        return NULL;
    const dls_gpu_ops *ops = NULL;
    char why[512];
    ck_assert_msg(dls_plugin_open(cu_real(), &ops, why, sizeof why) == 0, "%s", why);
    return ops->probe(why, sizeof why) ? ops : NULL;
}

#define CU_SPEC_COMMON "n_features=4 n_actions=3 hidden=8 replay=64 learning_starts=4 batch=4 "

/* ---- the loader ---------------------------------------------------------------- */

START_TEST(test_plugin_open_errors)
{
    const dls_gpu_ops *ops = NULL;
    char why[DLS_REASON_LEN], path[1024];
    ck_assert_int_eq(dls_plugin_open("/nonexistent/dir/libdlsched_cuda.so", &ops, why,
                                     sizeof why),
                     -1);
    ck_assert_ptr_null(ops);
    ck_assert_msg(strstr(why, "cannot load") && strstr(why, "/nonexistent/dir"), "%s", why);

    const char *so = getenv("DLSCHED_SO");
    ck_assert_msg(so != NULL, "DLSCHED_SO is not set");
    ck_assert_int_eq(dls_plugin_open(so, &ops, why, sizeof why), -1);
    ck_assert_msg(strstr(why, "not a libdlsched plugin"), "%s", why);

    cu_fake_path("abi", path, sizeof path);
    ck_assert_int_eq(dls_plugin_open(path, &ops, why, sizeof why), -1);
    ck_assert_msg(strstr(why, "ABI version 101") && strstr(why, "needs version 1"), "%s", why);

    cu_fake_path("size", path, sizeof path);
    ck_assert_int_eq(dls_plugin_open(path, &ops, why, sizeof why), -1);
    ck_assert_msg(strstr(why, "table of 8 bytes"), "%s", why);

    cu_fake_path("", path, sizeof path);
    ck_assert_int_eq(dls_plugin_open(path, &ops, why, sizeof why), 0);
    ck_assert_ptr_nonnull(ops);
    ck_assert_uint_eq(ops->abi_version, DLS_GPU_ABI);
    ck_assert_int_eq(ops->probe(why, sizeof why), 0);
    ck_assert_str_eq(why, "fake plugin: no GPU in this test");
}
END_TEST

START_TEST(test_no_gpu_cuda_refused_auto_falls_back)
{
    cu_use_fake("");
    ck_assert_int_eq(dlsched_backend_available("cuda"), 0);
    ck_assert_int_eq(dlsched_backend_available("cpu"), 1);
    ck_assert_int_eq(tst_agent_rc("algo=dqn device=cuda " CU_SPEC_COMMON), DLSCHED_ENODEVICE);
    tst_assert_error_has("device=cuda");
    tst_assert_error_has("fake plugin: no GPU in this test");

    /* auto: created on the CPU, the reason in last_error and in stats */
    dlsched_config *cfg = NULL;
    ck_assert_int_eq(dlsched_config_new(&cfg), DLSCHED_OK);
    ck_assert_int_eq(dlsched_config_parse(cfg, "algo=dqn device=auto " CU_SPEC_COMMON),
                     DLSCHED_OK);
    dlsched_agent *ag = NULL;
    ck_assert_int_eq(dlsched_agent_new(cfg, &ag), DLSCHED_OK);
    tst_assert_error_has("device=auto: learning on the CPU");
    tst_assert_error_has("fake plugin: no GPU in this test");
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_eq(st.backend, DLSCHED_BACKEND_CPU);
    ck_assert_uint_eq(st.size, sizeof st);
    ck_assert_msg(strstr(st.backend_reason, "fake plugin: no GPU in this test"), "reason '%s'",
                  st.backend_reason);
    /* it learns on the CPU as usual */
    float x[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    dlsched_state_t s = tst_state(x, 4);
    for (int i = 0; i < 8; i++) {
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &s, 0, &d), DLSCHED_OK);
        ck_assert_int_eq(dlsched_observe(ag, d.ticket, 1.0f, &s, 0), DLSCHED_OK);
    }
    ck_assert_uint_gt(tst_stats(ag).train_steps, 0);
    dlsched_agent_free(ag);

    /* an older caller's smaller struct gets no reason, and no overflow */
    ck_assert_int_eq(dlsched_agent_new(cfg, &ag), DLSCHED_OK);
    dlsched_stats_t small;
    memset(&small, 0x5a, sizeof small);
    size_t old = offsetof(dlsched_stats_t, backend_reason);
    ck_assert_int_eq(dlsched_stats(ag, &small, old), DLSCHED_OK);
    ck_assert_uint_eq(small.size, old);
    ck_assert_int_eq((unsigned char)small.backend_reason[0], 0x5a);
    dlsched_agent_free(ag);

    /* device=cpu asks nothing of the plugin and records no reason */
    ck_assert_int_eq(dlsched_config_set(cfg, "device", "cpu"), DLSCHED_OK);
    ck_assert_int_eq(dlsched_agent_new(cfg, &ag), DLSCHED_OK);
    st = tst_stats(ag);
    ck_assert_uint_eq(st.backend, DLSCHED_BACKEND_CPU);
    ck_assert_str_eq(st.backend_reason, "");
    dlsched_agent_free(ag);
    dlsched_config_free(cfg);
}
END_TEST

START_TEST(test_wrong_abi_through_the_api)
{
    cu_use_fake("abi");
    ck_assert_int_eq(dlsched_backend_available("cuda"), 0);
    ck_assert_int_eq(tst_agent_rc("algo=dqn device=cuda " CU_SPEC_COMMON), DLSCHED_ENODEVICE);
    tst_assert_error_has("plugin ABI version 101");
    dlsched_agent *ag = tst_agent("algo=dqn device=auto " CU_SPEC_COMMON);
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_eq(st.backend, DLSCHED_BACKEND_CPU);
    ck_assert_msg(strstr(st.backend_reason, "plugin ABI version 101"), "%s", st.backend_reason);
    dlsched_agent_free(ag);
}
END_TEST

START_TEST(test_plugin_missing_or_relative_path)
{
    ck_assert_int_eq(setenv("DLSCHED_PLUGIN_PATH", "/nonexistent/plugins", 1), 0);
    ck_assert_int_eq(tst_agent_rc("algo=dqn device=cuda " CU_SPEC_COMMON), DLSCHED_ENODEVICE);
    tst_assert_error_has("cannot load the CUDA plugin /nonexistent/plugins");
    ck_assert_int_eq(tst_agent_rc("algo=dqn device=auto " CU_SPEC_COMMON), DLSCHED_OK);
}
END_TEST

START_TEST(test_relative_plugin_path_refused)
{
    ck_assert_int_eq(setenv("DLSCHED_PLUGIN_PATH", "lib", 1), 0);
    ck_assert_int_eq(tst_agent_rc("algo=dqn device=cuda " CU_SPEC_COMMON), DLSCHED_ENODEVICE);
    tst_assert_error_has("not an absolute path");
}
END_TEST

/* beside the program (a static libdlsched.a): the test program's directory
   holds no plugin */
START_TEST(test_beside_the_program)
{
    unsetenv("DLSCHED_PLUGIN_PATH");
    ck_assert_int_eq(tst_agent_rc("algo=dqn device=cuda " CU_SPEC_COMMON), DLSCHED_ENODEVICE);
    tst_assert_error_has("/libdlsched_cuda.so");
}
END_TEST

START_TEST(test_unsupported_combinations)
{
    cu_use_fake("fail"); /* a "GPU" is there: refusals come from the key */
    ck_assert_int_eq(tst_agent_rc("algo=dqn device=cuda per=1 " CU_SPEC_COMMON),
                     DLSCHED_ECONFIG);
    tst_assert_error_has("key 'per'");
    dlsched_agent *ag = tst_agent("algo=dqn device=auto per=1 " CU_SPEC_COMMON);
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_eq(st.backend, DLSCHED_BACKEND_CPU);
    ck_assert_msg(strstr(st.backend_reason, "key 'per'"), "%s", st.backend_reason);
    dlsched_agent_free(ag);
    /* qtable: CPU only, as before */
    ck_assert_int_eq(tst_agent_rc("algo=qtable device=cuda n_features=1 n_actions=2"),
                     DLSCHED_ECONFIG);
    ag = tst_agent("algo=qtable device=auto n_features=1 n_actions=2");
    st = tst_stats(ag);
    ck_assert_uint_eq(st.backend, DLSCHED_BACKEND_CPU);
    ck_assert_msg(strstr(st.backend_reason, "algo=qtable"), "%s", st.backend_reason);
    dlsched_agent_free(ag);
}
END_TEST

/* a device whose training fails (as a CUDA error would): DLSCHED_EBACKEND
   with the device's text from train, observe and save; acting goes on */
START_TEST(test_device_failure_is_ebackend)
{
    cu_use_fake("fail");
    ck_assert_int_eq(dlsched_backend_available("cuda"), 1);
    dlsched_agent *ag = tst_agent("algo=dqn device=cuda " CU_SPEC_COMMON "learning_starts=1000");
    ck_assert_uint_eq(tst_stats(ag).backend, DLSCHED_BACKEND_CUDA);
    ck_assert_str_eq(tst_stats(ag).backend_reason, "");
    float x[4] = {0.5f, 0.1f, 0.2f, 0.3f};
    dlsched_state_t s = tst_state(x, 4);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(dlsched_observe_transition(ag, &s, i % 3, 1.0f, &s, 0), DLSCHED_OK);
    void *buf = NULL;
    size_t len = 0;
    ck_assert_int_eq(dlsched_save_buffer(ag, &buf, &len), DLSCHED_OK); /* nothing trained */
    dlsched_buffer_free(buf);
    ck_assert_int_eq(dlsched_train(ag, 3), DLSCHED_EBACKEND);
    tst_assert_error_has("a training step on the GPU");
    tst_assert_error_has("illegal memory access");
    ck_assert_uint_eq(tst_stats(ag).train_steps, 0);
    ck_assert_int_eq(dlsched_train(ag, 1), DLSCHED_EBACKEND);
    ck_assert_int_eq(dlsched_save_buffer(ag, &buf, &len), DLSCHED_EBACKEND);
    tst_assert_error_has("illegal memory access");
    dlsched_decision_t d;
    ck_assert_int_eq(dlsched_act(ag, &s, 0, &d), DLSCHED_OK);
    ck_assert_int_eq(dlsched_observe(ag, d.ticket, 0.5f, &s, 0), DLSCHED_EBACKEND);
    ck_assert_uint_eq(tst_stats(ag).observed, 1); /* stored, though training failed */
    dlsched_agent_free(ag);

    /* inline training inside observe reports it too */
    ag = tst_agent("algo=dqn device=cuda " CU_SPEC_COMMON "learning_starts=2 train_every=1");
    ck_assert_int_eq(dlsched_observe_transition(ag, &s, 0, 1.0f, &s, 0), DLSCHED_OK);
    ck_assert_int_eq(dlsched_observe_transition(ag, &s, 0, 1.0f, &s, 0), DLSCHED_EBACKEND);
    tst_assert_error_has("illegal memory access");
    dlsched_agent_free(ag);
}
END_TEST

/* the real plugin on this machine: a GPU, or a reason naming CUDA */
START_TEST(test_cuda_gpu)
{
    if (!cu_real()) {
        fprintf(stderr, "check_cuda: the CUDA plugin was not built (CUDA=0 or no toolkit): "
                        "GPU tests skipped\n");
        return;
    }
    int gpu = cu_use_real();
    dlsched_agent *ag = tst_agent("algo=dqn device=auto " CU_SPEC_COMMON);
    dlsched_stats_t st = tst_stats(ag);
    if (!gpu) {
        fprintf(stderr, "check_cuda: no usable GPU (%s): GPU tests skipped\n",
                st.backend_reason);
        ck_assert_uint_eq(st.backend, DLSCHED_BACKEND_CPU);
        ck_assert_msg(strstr(st.backend_reason, "CUDA"), "reason '%s'", st.backend_reason);
        ck_assert_int_eq(tst_agent_rc("algo=dqn device=cuda " CU_SPEC_COMMON),
                         DLSCHED_ENODEVICE);
        tst_assert_error_has("CUDA");
    } else {
        ck_assert_uint_eq(st.backend, DLSCHED_BACKEND_CUDA);
        ck_assert_str_eq(st.backend_reason, "");
        ck_assert_uint_gt(st.memory_bytes, 32u << 20); /* the device's buffers count */
    }
    dlsched_agent_free(ag);
}
END_TEST

/* ---- parity: the device math against src/dqn on the CPU -------------------- */

typedef struct cu_pair {
    const dls_backend_ops *ops;
    dls_dqn *d;       /* the CPU DQN */
    dls_gpu *g;       /* the device context with the same weights */
    const dls_gpu_ops *gpu;
    size_t n;         /* parameters */
    uint32_t nf, na, B;
} cu_pair;

static uint64_t cu_rng;

/* a CPU DQN from spec and a device context with its weights, target and
   Adam state */
static void cu_pair_new(cu_pair *p, const dls_gpu_ops *gpu, const char *spec)
{
    memset(p, 0, sizeof *p);
    dlsched_config *cfg = NULL;
    ck_assert_int_eq(dlsched_config_new(&cfg), DLSCHED_OK);
    int rc = dlsched_config_parse(cfg, spec);
    ck_assert_msg(rc == DLSCHED_OK, "%s: %s", spec, dlsched_last_error());
    ck_assert_int_eq(dlsched_config_set(cfg, "device", "cpu"), DLSCHED_OK);
    dls_rng rng;
    dls_rng_seed(&rng, 11);
    void *impl = NULL;
    size_t kb;
    rc = dls_dqn_new(cfg, &rng, &p->ops, &impl, &kb);
    ck_assert_msg(rc == DLSCHED_OK, "%s", dlsched_last_error());
    p->d = impl;
    p->gpu = gpu;
    p->n = dls_dqn_n_params(p->d);
    p->nf = (uint32_t)dls_config_int(cfg, DLS_KEY_N_FEATURES);
    p->na = (uint32_t)dls_config_int(cfg, DLS_KEY_N_ACTIONS);
    p->B = (uint32_t)dls_config_int(cfg, DLS_KEY_BATCH);
    uint32_t w[16];
    uint32_t L = dls_dqn_widths(p->d, NULL);
    ck_assert_uint_lt(L, 16);
    dls_dqn_widths(p->d, w);
    double tu = dls_config_float(cfg, DLS_KEY_TARGET_UPDATE);
    dls_gpu_desc desc = {p->nf,
                         p->na,
                         L,
                         w,
                         p->B,
                         (uint64_t)dls_config_int(cfg, DLS_KEY_REPLAY),
                         (int)dls_config_int(cfg, DLS_KEY_DUELING),
                         (int)dls_config_int(cfg, DLS_KEY_DOUBLE),
                         0,
                         (float)dls_config_float(cfg, DLS_KEY_HUBER_DELTA),
                         (float)dls_config_float(cfg, DLS_KEY_GRAD_CLIP),
                         (float)dls_config_float(cfg, DLS_KEY_LR),
                         (float)dls_config_float(cfg, DLS_KEY_ADAM_BETA1),
                         (float)dls_config_float(cfg, DLS_KEY_ADAM_BETA2),
                         (float)dls_config_float(cfg, DLS_KEY_ADAM_EPS),
                         tu < 1 ? (float)tu : 0.0f,
                         tu >= 1 ? (uint64_t)tu : 0};
    dlsched_config_free(cfg);
    char err[512];
    ck_assert_msg(gpu->create(&desc, &p->g, err, sizeof err) == 0, "create: %s", err);
    /* non-zero Adam moments and target, so every term of the update counts */
    float *m = dls_dqn_adam_m(p->d), *v = dls_dqn_adam_v(p->d), *tt = dls_dqn_target(p->d);
    const float *th = dls_dqn_params(p->d);
    for (size_t i = 0; i < p->n; i++) {
        m[i] = (float)(1e-3 * (tst_unif(&cu_rng) - 0.5));
        v[i] = (float)(1e-6 * tst_unif(&cu_rng));
        tt[i] = th[i] + (float)(0.05 * (tst_unif(&cu_rng) - 0.5));
    }
    ck_assert_msg(gpu->set_state(p->g, th, tt, m, v, dls_dqn_steps(p->d)) == 0, "%s",
                  gpu->error(p->g));
}

static void cu_pair_free(cu_pair *p)
{
    p->gpu->destroy(p->g);
    p->ops->destroy(p->d);
}

/* ||a - b|| / ||b|| in double */
static double cu_relerr(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)a[i] - b[i];
        num += e * e;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

typedef struct cu_batch {
    float *s, *s2, *ret, *disc;
    int32_t *a;
    uint8_t *mask;
} cu_batch;

static void cu_batch_make(cu_batch *b, uint32_t n, uint32_t nf, uint32_t na, int masked)
{
    b->s = malloc((size_t)n * nf * sizeof(float));
    b->s2 = malloc((size_t)n * nf * sizeof(float));
    b->ret = malloc(n * sizeof(float));
    b->disc = malloc(n * sizeof(float));
    b->a = malloc(n * sizeof(int32_t));
    b->mask = malloc((size_t)n * na);
    ck_assert(b->s && b->s2 && b->ret && b->disc && b->a && b->mask);
    for (size_t i = 0; i < (size_t)n * nf; i++) {
        b->s[i] = (float)(4 * tst_unif(&cu_rng) - 2);
        b->s2[i] = (float)(4 * tst_unif(&cu_rng) - 2);
    }
    for (uint32_t i = 0; i < n; i++) {
        b->a[i] = (int32_t)tst_below(&cu_rng, na);
        b->ret[i] = (float)(6 * tst_unif(&cu_rng) - 3); /* some beyond huber_delta */
        b->disc[i] = tst_below(&cu_rng, 5) == 0 ? 0.0f : 0.9f;
        for (uint32_t k = 0; k < na; k++)
            b->mask[(size_t)i * na + k] = !masked || tst_below(&cu_rng, 3) != 0;
        if (masked && tst_below(&cu_rng, 4) == 0) /* a terminal row with nothing allowed */
            memset(b->mask + (size_t)i * na, 0, na), b->disc[i] = 0.0f;
    }
}

static void cu_batch_free(cu_batch *b)
{
    free(b->s), free(b->s2), free(b->ret), free(b->disc), free(b->a), free(b->mask);
}

static const char *const cu_parity_specs[] = {
    /* the default head: double DQN, hard target copies */
    "algo=dqn n_features=16 n_actions=8 hidden=256,256 batch=256 replay=512 "
    "target_update=1",
    /* dueling, plain target max, Polyak, clipping active, three layers */
    "algo=dqn n_features=7 n_actions=5 hidden=64,32,48 batch=100 replay=512 dueling=1 "
    "double=0 target_update=0.05 grad_clip=0.01 huber_delta=0.5",
    /* one hidden layer, no clipping, one action */
    "algo=dqn n_features=3 n_actions=1 hidden=20 batch=33 replay=64 grad_clip=0",
};

START_TEST(test_parity_forward)
{
    const dls_gpu_ops *gpu = cu_gpu();
    if (!gpu)
        return;
    cu_rng = 2024 + (uint64_t)_i;
    cu_pair p;
    cu_pair_new(&p, gpu, cu_parity_specs[_i]);
    uint32_t rows = 2 * p.B;
    float *x = malloc((size_t)rows * p.nf * sizeof(float));
    float *qg = malloc((size_t)rows * p.na * sizeof(float));
    float *qc = malloc((size_t)rows * p.na * sizeof(float));
    for (size_t i = 0; i < (size_t)rows * p.nf; i++)
        x[i] = (float)(6 * tst_unif(&cu_rng) - 3);
    ck_assert_msg(gpu->forward(p.g, rows, x, qg) == 0, "%s", gpu->error(p.g));
    for (uint32_t r = 0; r < rows; r++)
        dls_dqn_forward1(p.d, x + (size_t)r * p.nf, qc + (size_t)r * p.na);
    double e = cu_relerr(qg, qc, (size_t)rows * p.na);
    fprintf(stderr, "check_cuda: parity %d forward rel err %.3g (< 1e-5)\n", _i, e);
    ck_assert_msg(e < 1e-5, "%s: forward relative error %g", cu_parity_specs[_i], e);
    free(x), free(qg), free(qc);
    cu_pair_free(&p);
}
END_TEST

START_TEST(test_parity_gradient)
{
    const dls_gpu_ops *gpu = cu_gpu();
    if (!gpu)
        return;
    for (int masked = 0; masked <= 1; masked++) {
        cu_rng = 77 + 10 * (uint64_t)_i + (uint64_t)masked;
        cu_pair p;
        cu_pair_new(&p, gpu, cu_parity_specs[_i]);
        cu_batch b;
        uint32_t n = masked ? p.B - 1 : p.B; /* a batch smaller than the configured one too */
        cu_batch_make(&b, n, p.nf, p.na, masked);
        dls_batch cb = {n, b.s, b.a, b.ret, b.disc, b.s2, masked ? b.mask : NULL, NULL};
        double lc = dls_dqn_grad(p.d, &cb, NULL), lg = -1;
        float *gg = malloc(p.n * sizeof(float));
        ck_assert_msg(gpu->grad(p.g, n, b.s, b.a, b.ret, b.disc, b.s2, masked ? b.mask : NULL,
                                gg, &lg) == 0,
                      "%s", gpu->error(p.g));
        ck_assert_msg(fabs(lg - lc) <= 1e-5 * fabs(lc), "%s: loss %.9g on the GPU, %.9g on "
                                                        "the CPU",
                      cu_parity_specs[_i], lg, lc);
        double e = cu_relerr(gg, dls_dqn_grads(p.d), p.n);
        fprintf(stderr, "check_cuda: parity %d masked=%d loss %.9g vs %.9g, gradient rel err %.3g "
                        "(< 1e-4)\n",
                _i, masked, lg, lc, e);
        ck_assert_msg(e < 1e-4, "%s masked=%d: gradient relative error %g",
                      cu_parity_specs[_i], masked, e);
        free(gg);
        cu_batch_free(&b);
        cu_pair_free(&p);
    }
}
END_TEST

/* one clipped Adam step and the target update on the device, against the
   same step in double from the device's own gradient */
START_TEST(test_parity_adam_step)
{
    const dls_gpu_ops *gpu = cu_gpu();
    if (!gpu)
        return;
    cu_rng = 500 + (uint64_t)_i;
    cu_pair p;
    cu_pair_new(&p, gpu, cu_parity_specs[_i]);
    cu_batch b;
    cu_batch_make(&b, p.B, p.nf, p.na, 1);
    size_t n = p.n;
    float *g = malloc(n * sizeof(float)), *th = malloc(n * sizeof(float));
    float *tt = malloc(n * sizeof(float)), *m = malloc(n * sizeof(float));
    float *v = malloc(n * sizeof(float));
    double loss;
    ck_assert_msg(gpu->grad(p.g, p.B, b.s, b.a, b.ret, b.disc, b.s2, b.mask, g, &loss) == 0,
                  "%s", gpu->error(p.g));
    ck_assert_msg(gpu->apply(p.g) == 0, "%s", gpu->error(p.g));
    ck_assert_msg(gpu->get_state(p.g, th, tt, m, v) == 0, "%s", gpu->error(p.g));

    /* the reference: the first step, t = 1 */
    dlsched_config *cfg = NULL;
    ck_assert_int_eq(dlsched_config_new(&cfg), DLSCHED_OK);
    ck_assert_int_eq(dlsched_config_parse(cfg, cu_parity_specs[_i]), DLSCHED_OK);
    double lr = dls_config_float(cfg, DLS_KEY_LR), b1 = dls_config_float(cfg, DLS_KEY_ADAM_BETA1);
    double b2 = dls_config_float(cfg, DLS_KEY_ADAM_BETA2), eps = dls_config_float(cfg, DLS_KEY_ADAM_EPS);
    double clip = dls_config_float(cfg, DLS_KEY_GRAD_CLIP);
    double tu = dls_config_float(cfg, DLS_KEY_TARGET_UPDATE);
    dlsched_config_free(cfg);
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (double)g[i] * g[i];
    double scale = clip > 0 && sqrt(ss) > clip ? clip / sqrt(ss) : 1.0;
    const float *th0 = dls_dqn_params(p.d), *tt0 = dls_dqn_target(p.d);
    const float *m0 = dls_dqn_adam_m(p.d), *v0 = dls_dqn_adam_v(p.d);
    float *rth = malloc(n * sizeof(float)), *rtt = malloc(n * sizeof(float));
    float *rm = malloc(n * sizeof(float)), *rv = malloc(n * sizeof(float));
    float *du = malloc(n * sizeof(float)), *rdu = malloc(n * sizeof(float));
    int t = 1;
    for (size_t i = 0; i < n; i++) {
        double gi = g[i] * scale;
        double mi = b1 * m0[i] + (1 - b1) * gi, vi = b2 * v0[i] + (1 - b2) * gi * gi;
        double step = lr * (mi / (1 - pow(b1, t))) / (sqrt(vi / (1 - pow(b2, t))) + eps);
        rm[i] = (float)mi;
        rv[i] = (float)vi;
        rth[i] = (float)(th0[i] - step);
        rdu[i] = (float)-step;
        du[i] = th[i] - th0[i];
        /* theta' = tau theta + (1 - tau) theta', or a copy at multiples of N */
        rtt[i] = tu < 1 ? (float)(tu * rth[i] + (1 - tu) * tt0[i])
                        : (t % (int)tu == 0 ? rth[i] : tt0[i]);
    }
    double em = cu_relerr(m, rm, n), ev = cu_relerr(v, rv, n), et = cu_relerr(th, rth, n);
    double ett = cu_relerr(tt, rtt, n), eu = cu_relerr(du, rdu, n);
    fprintf(stderr, "check_cuda: parity %d Adam rel err m %.3g v %.3g theta %.3g target %.3g "
                    "update %.3g\n",
            _i, em, ev, et, ett, eu);
    ck_assert_msg(em < 1e-5 && ev < 1e-5 && et < 1e-5 && ett < 1e-5,
                  "%s: Adam relative errors m %g v %g theta %g target %g", cu_parity_specs[_i],
                  em, ev, et, ett);
    /* the update itself, less the float rounding of theta */
    ck_assert_msg(eu < 1e-3, "%s: Adam update relative error %g", cu_parity_specs[_i], eu);
    free(g), free(th), free(tt), free(m), free(v);
    free(rth), free(rtt), free(rm), free(rv), free(du), free(rdu);
    cu_batch_free(&b);
    cu_pair_free(&p);
}
END_TEST

/* One step of the captured graph: sampling from the device ring (count = 1:
   every row is transition 0), normalisation, the gradient, Adam and the
   target, against the CPU DQN's step on B copies of that transition. */
START_TEST(test_parity_graph_step)
{
    const dls_gpu_ops *gpu = cu_gpu();
    if (!gpu)
        return;
    cu_rng = 900 + (uint64_t)_i;
    cu_pair p;
    cu_pair_new(&p, gpu, cu_parity_specs[_i]);
    uint64_t cap = dls_dqn_replay(p.d)->cap;
    cu_batch ring;
    cu_batch_make(&ring, (uint32_t)cap, p.nf, p.na, 1);
    ring.disc[0] = 0.9f; /* transition 0 bootstraps, through a partial mask */
    memset(ring.mask, 1, p.na);
    ring.mask[0] = 0;
    if (p.na == 1)
        ring.mask[0] = 1;
    ck_assert_msg(gpu->put_replay(p.g, 0, cap, ring.s, ring.s2, ring.a, ring.ret, ring.disc,
                                  ring.mask) == 0,
                  "%s", gpu->error(p.g));
    float *nmean = malloc(p.nf * sizeof(float)), *ninv = malloc(p.nf * sizeof(float));
    for (uint32_t j = 0; j < p.nf; j++) {
        nmean[j] = (float)(tst_unif(&cu_rng) - 0.5);
        ninv[j] = (float)(0.5 + 8 * tst_unif(&cu_rng)); /* some values clamp at +-10 */
    }
    dls_gpu_train_args args = {1, 1, 12345, nmean, ninv};
    double lg = -1;
    ck_assert_msg(gpu->train(p.g, &args, &lg) == 0, "%s", gpu->error(p.g));

    /* the CPU: B normalised copies of transition 0 */
    cu_batch b;
    cu_batch_make(&b, p.B, p.nf, p.na, 0);
    for (uint32_t i = 0; i < p.B; i++) {
        for (uint32_t j = 0; j < p.nf; j++) {
            float z = (ring.s[j] - nmean[j]) * ninv[j], z2 = (ring.s2[j] - nmean[j]) * ninv[j];
            b.s[(size_t)i * p.nf + j] = z > 10 ? 10 : (z < -10 ? -10 : z);
            b.s2[(size_t)i * p.nf + j] = z2 > 10 ? 10 : (z2 < -10 ? -10 : z2);
        }
        b.a[i] = ring.a[0];
        b.ret[i] = ring.ret[0];
        b.disc[i] = ring.disc[0];
        memcpy(b.mask + (size_t)i * p.na, ring.mask, p.na);
    }
    dls_batch cb = {p.B, b.s, b.a, b.ret, b.disc, b.s2, b.mask, NULL};
    double lc = dls_dqn_grad(p.d, &cb, NULL);
    dls_dqn_apply(p.d);
    ck_assert_msg(fabs(lg - lc) <= 1e-5 * fabs(lc) + 1e-12, "loss %.9g on the GPU, %.9g on the CPU",
                  lg, lc);
    size_t n = p.n;
    float *th = malloc(n * sizeof(float)), *tt = malloc(n * sizeof(float));
    float *m = malloc(n * sizeof(float)), *v = malloc(n * sizeof(float));
    ck_assert_msg(gpu->get_state(p.g, th, tt, m, v) == 0, "%s", gpu->error(p.g));
    double et = cu_relerr(th, dls_dqn_params(p.d), n), ett = cu_relerr(tt, dls_dqn_target(p.d), n);
    double em = cu_relerr(m, dls_dqn_adam_m(p.d), n), ev = cu_relerr(v, dls_dqn_adam_v(p.d), n);
    fprintf(stderr, "check_cuda: parity %d graph step loss %.9g vs %.9g, rel err theta %.3g "
                    "target %.3g m %.3g v %.3g\n",
            _i, lg, lc, et, ett, em, ev);
    ck_assert_msg(et < 1e-4 && ett < 1e-4 && em < 1e-4 && ev < 1e-4,
                  "%s: graph step relative errors theta %g target %g m %g v %g",
                  cu_parity_specs[_i], et, ett, em, ev);
    /* more steps run and stay finite */
    args.steps = 5;
    args.count = cap;
    ck_assert_msg(gpu->train(p.g, &args, &lg) == 0, "%s", gpu->error(p.g));
    ck_assert(isfinite(lg));
    free(th), free(tt), free(m), free(v), free(nmean), free(ninv);
    cu_batch_free(&b);
    cu_batch_free(&ring);
    cu_pair_free(&p);
}
END_TEST

/* ---- learning with device=cuda through the public API ------------------------ */

/* the contextual bandit of check_dqn_learn.c on the device: greedy hits of
   the best arm out of `evals` after `train` decisions */
static int cu_bandit(const char *extra, int train, int evals)
{
    char spec[512];
    snprintf(spec, sizeof spec,
             "algo=dqn device=cuda n_features=4 n_actions=5 hidden=32,32 batch=32 "
             "replay=10000 learning_starts=200 train_every=1 lr=0.0005 target_update=100 "
             "explore=egreedy epsilon_start=1 epsilon_end=0.05 epsilon_decay_steps=3000 %s",
             extra);
    dlsched_agent *ag = tst_agent(spec);
    ck_assert_uint_eq(tst_stats(ag).backend, DLSCHED_BACKEND_CUDA);
    uint64_t r = 77;
    for (int i = 0; i < train; i++) {
        int c = (int)tst_below(&r, TST_CB_NC);
        float x[TST_CB_NC];
        tst_cb_context(x, c, &r);
        dlsched_state_t st = tst_state(x, TST_CB_NC);
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &st, 0, &d), DLSCHED_OK);
        float rw = tst_cb_mean(c, d.action) + (float)(tst_unif(&r) - 0.5);
        int rc = dlsched_observe(ag, d.ticket, rw, NULL, DLSCHED_OBS_TERMINAL);
        ck_assert_msg(rc == DLSCHED_OK, "observe: %s", dlsched_last_error());
    }
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_eq(st.train_steps, (uint64_t)(train - 200 + 1));
    ck_assert(isfinite(st.last_loss));
    /* count greedy hits on fresh contexts */
    int hits = 0;
    for (int i = 0; i < evals; i++) {
        int c = (int)tst_below(&r, TST_CB_NC);
        float x[TST_CB_NC];
        tst_cb_context(x, c, &r);
        dlsched_state_t s = tst_state(x, TST_CB_NC);
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &s, DLSCHED_ACT_GREEDY, &d), DLSCHED_OK);
        hits += d.action == tst_cb_best(c);
    }
    dlsched_agent_free(ag);
    return hits;
}

START_TEST(test_learn_bandit_cuda)
{
    if (!cu_use_real())
        return;
    int hits = cu_bandit("seed=5", 6000, 2000);
    ck_assert_msg(hits >= 1900, "best arm in %d of 2000 greedy decisions", hits);
    hits = cu_bandit("seed=5 dueling=1 normalize=1 nstep=2 double=0", 6000, 2000);
    ck_assert_msg(hits >= 1900, "dueling/normalize/nstep: best arm in %d of 2000", hits);
}
END_TEST

/* transitions into two agents; Q-values of probes */
static void cu_feed(dlsched_agent *ag, int n, uint64_t seed)
{
    uint64_t r = seed;
    for (int i = 0; i < n; i++) {
        float x[4], x2[4];
        for (int j = 0; j < 4; j++)
            x[j] = (float)tst_unif(&r), x2[j] = (float)tst_unif(&r);
        dlsched_state_t s = tst_state(x, 4), s2 = tst_state(x2, 4);
        int32_t a = (int32_t)tst_below(&r, 3);
        float rw = x[a] - 0.5f * x[(a + 1) % 3];
        uint32_t fl = tst_below(&r, 8) == 0 ? DLSCHED_OBS_TERMINAL : 0;
        int rc = dlsched_observe_transition(ag, &s, a, rw, fl ? NULL : &s2, fl);
        ck_assert_msg(rc == DLSCHED_OK, "%s", dlsched_last_error());
    }
}

static void cu_probe_q(dlsched_agent *ag, float *q /* 8 x 3 */)
{
    uint64_t r = 4242;
    for (int i = 0; i < 8; i++) {
        float x[4];
        for (int j = 0; j < 4; j++)
            x[j] = (float)tst_unif(&r);
        dlsched_state_t s = tst_state(x, 4);
        ck_assert_int_eq(dlsched_q_values(ag, &s, q + 3 * i, 3), DLSCHED_OK);
    }
}

#define CU_CKPT "algo=dqn device=cuda n_features=4 n_actions=3 hidden=32,32 batch=32 " \
                "replay=3000 learning_starts=100 train_every=2 target_update=50 seed=9 "   \
                "save_replay=1 normalize=1"

/* the same seed gives the same run on the device; a checkpoint carries
   the device's model (and replay) and continues the same run, on the
   device or on the CPU */
START_TEST(test_checkpoint_and_determinism_cuda)
{
    if (!cu_use_real())
        return;
    dlsched_agent *a = tst_agent(CU_CKPT), *b = tst_agent(CU_CKPT);
    cu_feed(a, 1500, 3);
    cu_feed(b, 1500, 3);
    ck_assert_int_eq(dlsched_train(a, 200), DLSCHED_OK);
    ck_assert_int_eq(dlsched_train(b, 200), DLSCHED_OK);
    float qa[24], qb[24], qc[24];
    cu_probe_q(a, qa);
    cu_probe_q(b, qb);
    ck_assert_msg(memcmp(qa, qb, sizeof qa) == 0, "two runs of one seed differ on the GPU");
    ck_assert_uint_eq(tst_stats(a).train_steps, 200 + (1500 - 100) / 2 + 1);

    void *buf = NULL;
    size_t len = 0;
    ck_assert_int_eq(dlsched_save_buffer(a, &buf, &len), DLSCHED_OK);
    dlsched_agent *c = NULL;
    ck_assert_int_eq(dlsched_load_buffer(buf, len, NULL, &c), DLSCHED_OK);
    ck_assert_uint_eq(tst_stats(c).backend, DLSCHED_BACKEND_CUDA);
    cu_probe_q(c, qc);
    ck_assert_msg(memcmp(qa, qc, sizeof qa) == 0, "the loaded model differs");
    /* continue both: the same run */
    cu_feed(a, 300, 5);
    cu_feed(c, 300, 5);
    ck_assert_int_eq(dlsched_train(a, 100), DLSCHED_OK);
    ck_assert_int_eq(dlsched_train(c, 100), DLSCHED_OK);
    cu_probe_q(a, qa);
    cu_probe_q(c, qc);
    ck_assert_msg(memcmp(qa, qc, sizeof qa) == 0, "save, load and continue differs");
    for (int i = 0; i < 24; i++)
        ck_assert(isfinite(qa[i]));

    /* the same checkpoint on the CPU: the same model */
    dlsched_config *ov = NULL;
    ck_assert_int_eq(dlsched_config_new(&ov), DLSCHED_OK);
    ck_assert_int_eq(dlsched_config_set(ov, "device", "cpu"), DLSCHED_OK);
    dlsched_agent *d = NULL;
    ck_assert_int_eq(dlsched_load_buffer(buf, len, ov, &d), DLSCHED_OK);
    ck_assert_uint_eq(tst_stats(d).backend, DLSCHED_BACKEND_CPU);
    float qd[24];
    cu_probe_q(d, qd);
    cu_probe_q(b, qb);
    ck_assert_msg(memcmp(qb, qd, sizeof qb) == 0, "the CPU load of a GPU checkpoint differs");
    dlsched_config_free(ov);
    dlsched_buffer_free(buf);
    dlsched_agent_free(a);
    dlsched_agent_free(b);
    dlsched_agent_free(c);
    dlsched_agent_free(d);
}
END_TEST

/* learner=thread on the device: the act path gets published weights */
START_TEST(test_learner_thread_cuda)
{
    if (!cu_use_real())
        return;
    dlsched_agent *ag = tst_agent("algo=dqn device=cuda learner=thread n_features=4 "
                                  "n_actions=3 hidden=32,32 batch=32 replay=3000 "
                                  "learning_starts=100 publish_every=5 seed=2");
    float q0[24], q1[24];
    cu_probe_q(ag, q0);
    cu_feed(ag, 1000, 8);
    ck_assert_int_eq(dlsched_train(ag, 50), DLSCHED_OK);
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_ge(st.train_steps, 50);
    ck_assert_uint_gt(st.published_version, 0);
    cu_probe_q(ag, q1);
    ck_assert_msg(memcmp(q0, q1, sizeof q0) != 0, "acting still reads the initial weights");
    dlsched_agent_free(ag);
}
END_TEST

Suite *suite_cuda(void)
{
    Suite *s = suite_create("cuda");
    /* the device math alone, small: bench/gpu/run.sh runs this case under
       compute-sanitizer */
    TCase *tc = tcase_create("parity");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_parity_forward, 0, 3);
    tcase_add_loop_test(tc, test_parity_gradient, 0, 3);
    tcase_add_loop_test(tc, test_parity_adam_step, 0, 3);
    tcase_add_loop_test(tc, test_parity_graph_step, 0, 3);
    suite_add_tcase(s, tc);

    tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cuda_gpu);
    tcase_add_test(tc, test_learn_bandit_cuda);
    tcase_add_test(tc, test_checkpoint_and_determinism_cuda);
    tcase_add_test(tc, test_learner_thread_cuda);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_test(tc, test_plugin_open_errors);
    tcase_add_test(tc, test_no_gpu_cuda_refused_auto_falls_back);
    tcase_add_test(tc, test_wrong_abi_through_the_api);
    tcase_add_test(tc, test_plugin_missing_or_relative_path);
    tcase_add_test(tc, test_relative_plugin_path_refused);
    tcase_add_test(tc, test_beside_the_program);
    tcase_add_test(tc, test_unsupported_combinations);
    tcase_add_test(tc, test_device_failure_is_ebackend);
    suite_add_tcase(s, tc);
    return s;
}
