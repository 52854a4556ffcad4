/* check_kernels.c - libdlsched's own AVX2 and AVX-512 matrix products
 * (src/backends/cpu/kernels.c) against a float64 reference written here,
 * their self-test, and the agents that run them (cpu_kernels=own) against
 * agents that run OpenBLAS.
 *
 * Every instruction set this CPU can run is tested; a CPU without AVX2 and
 * FMA (or a build without the kernels) skips with a line on stderr. */
#include <errno.h>

#include "tests.h"

#include "backends/cpu/blasinfo.h"
#include "backends/cpu/kernels.h"
#include "dqn/ops.h"

/* the sets to test: those this CPU runs, per CPUID */
static int tk_isas(int *isas)
{
    dls_cpu_info cpu;
    dls_cpu_detect(&cpu);
    int best = dls_kern_isa_for(dls_cpu_usable(&cpu)), n = 0;
    if (best >= DLS_ISA_AVX2)
        isas[n++] = DLS_ISA_AVX2;
    if (best >= DLS_ISA_AVX512)
        isas[n++] = DLS_ISA_AVX512;
    if (n == 0)
        fprintf(stderr, "kernels: no AVX2+FMA on this CPU (or no kernels in this build): "
                        "kernel cases skipped\n");
    return n;
}

static float tk_unif(uint64_t *r)
{
    return (float)(tst_unif(r) * 2.0 - 1.0);
}

/* C = alpha op(A) op(B) + beta C in float64, and the bound on the float32
   rounding of each element: 1e-4 of the sum of the terms' magnitudes */
static void tk_ref(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                   const float *b, int ldb, float beta, const float *c, int ldc, double *out,
                   double *tol)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0, mag = 0;
            for (int p = 0; p < k; p++) {
                double x = ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                double y = tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                s += x * y;
                mag += fabs(x * y);
            }
            double cv = beta == 0.0f ? 0.0 : (double)beta * c[(size_t)i * ldc + j];
            out[(size_t)i * n + j] = alpha * s + cv;
            tol[(size_t)i * n + j] = 1e-4 * (fabs(alpha) * mag + fabs(cv)) + 1e-30;
        }
}

/* one product at the given shape, on fresh random data, C padded past n
   with a sentinel that must survive; beta = 0 starts C as NaN (never read) */
static void tk_one(int isa, int ta, int tb, int m, int n, int k, float alpha, float beta,
                   int pad, uint64_t *r)
{
    int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
    size_t na = (size_t)(ta ? k : m) * lda, nb = (size_t)(tb ? n : k) * ldb;
    size_t nc = (size_t)m * ldc;
    float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b), *c = malloc(nc * sizeof *c);
    float *c0 = malloc(nc * sizeof *c0);
    double *want = malloc((size_t)m * n * sizeof *want), *tol = malloc((size_t)m * n * sizeof *tol);
    ck_assert(a && b && c && c0 && want && tol);
    for (size_t i = 0; i < na; i++)
        a[i] = tk_unif(r);
    for (size_t i = 0; i < nb; i++)
        b[i] = tk_unif(r);
    for (size_t i = 0; i < nc; i++)
        c[i] = (int)(i % ldc) >= n ? 12345.0f : beta == 0.0f ? NAN : tk_unif(r);
    memcpy(c0, c, nc * sizeof *c);
    tk_ref(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c0, ldc, want, tol);
    dls_kern_gemm(isa, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < ldc; j++) {
            float got = c[(size_t)i * ldc + j];
            if (j >= n) {
                ck_assert_msg(got == 12345.0f, "%s %c%c %dx%dx%d: C[%d][%d] past n written",
                              dls_kern_isa_name(isa), ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k,
                              i, j);
                continue;
            }
            double w = want[(size_t)i * n + j];
            ck_assert_msg(fabs(got - w) <= tol[(size_t)i * n + j],
                          "%s %c%c %dx%dx%d alpha %g beta %g pad %d: C[%d][%d] = %.9g, "
                          "float64 %.9g",
                          dls_kern_isa_name(isa), ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k,
                          alpha, beta, pad, i, j, got, w);
        }
    free(a);
    free(b);
    free(c);
    free(c0);
    free(want);
    free(tol);
}

/* random shapes across the tile sizes (8 x 32, 6 x 16), the inner block
   (128) and the row block (256), every transpose, alpha and beta */
START_TEST(test_gemm_random_shapes)
{
    int isas[2], ni = tk_isas(isas);
    uint64_t r = 0x6b65726e656c73ull;
    for (int s = 0; s < ni; s++)
        for (int t = 0; t < 400; t++) {
            int ta = (int)tst_below(&r, 2), tb = (int)tst_below(&r, 2);
            int m = 1 + (int)tst_below(&r, 80), n = 1 + (int)tst_below(&r, 80);
            int k = 1 + (int)tst_below(&r, 300);
            static const float alphas[] = {1.0f, 0.7f, -2.0f};
            static const float betas[] = {0.0f, 1.0f, 0.5f};
            tk_one(isas[s], ta, tb, m, n, k, alphas[tst_below(&r, 3)], betas[tst_below(&r, 3)],
                   (int)tst_below(&r, 3), &r);
        }
}
END_TEST

/* the shapes of a 16-256-256-8 training step at batch 32 and 300 rows (past
   the 256-row block), and degenerate ones */
START_TEST(test_gemm_step_shapes)
{
    int isas[2], ni = tk_isas(isas);
    uint64_t r = 99;
    for (int s = 0; s < ni; s++) {
        int isa = isas[s];
        const int rows[] = {32, 300};
        for (int q = 0; q < 2; q++) {
            int b = rows[q];
            tk_one(isa, 0, 1, 2 * b, 256, 16, 1.0f, 0.0f, 0, &r);
            tk_one(isa, 0, 1, 2 * b, 256, 256, 1.0f, 0.0f, 0, &r);
            tk_one(isa, 0, 1, 2 * b, 8, 256, 1.0f, 0.0f, 0, &r);
            tk_one(isa, 1, 0, 8, 256, b, 1.0f, 0.0f, 0, &r);
            tk_one(isa, 0, 0, b, 256, 8, 1.0f, 1.0f, 0, &r);
            tk_one(isa, 1, 0, 256, 256, b, 1.0f, 0.0f, 0, &r);
            tk_one(isa, 0, 0, b, 256, 256, 1.0f, 0.0f, 0, &r);
            tk_one(isa, 1, 0, 256, 16, b, 1.0f, 0.0f, 0, &r);
        }
        tk_one(isa, 0, 0, 1, 1, 1, 1.0f, 0.0f, 0, &r);
        tk_one(isa, 1, 1, 1, 33, 257, 1.0f, 1.0f, 1, &r);
        /* alpha 0: C = beta C, A and B unread */
        tk_one(isa, 0, 0, 9, 17, 5, 0.0f, 0.5f, 0, &r);
        tk_one(isa, 0, 0, 9, 17, 5, 0.0f, 0.0f, 2, &r);
    }
}
END_TEST

/* k = 0: C = beta C (BLAS semantics), nothing read from A or B */
START_TEST(test_gemm_k_zero)
{
    int isas[2], ni = tk_isas(isas);
    for (int s = 0; s < ni; s++) {
        float c[6] = {1, 2, 3, 4, 5, 6};
        dls_kern_gemm(isas[s], 0, 0, 2, 3, 0, 1.0f, NULL, 1, NULL, 3, 0.5f, c, 3);
        for (int i = 0; i < 6; i++)
            ck_assert_float_eq(c[i], 0.5f * (float)(i + 1));
        dls_kern_gemm(isas[s], 0, 0, 2, 3, 0, 1.0f, NULL, 1, NULL, 3, 0.0f, c, 3);
        for (int i = 0; i < 6; i++)
            ck_assert_float_eq(c[i], 0.0f);
    }
}
END_TEST

/* acting: y = W x + b (+ ReLU) for widths across the 8-row groups and the
   16- and 8-lane tails */
START_TEST(test_dense1)
{
    int isas[2], ni = tk_isas(isas);
    uint64_t r = 7;
    for (int s = 0; s < ni; s++)
        for (int t = 0; t < 300; t++) {
            int out = 1 + (int)tst_below(&r, 300), in = 1 + (int)tst_below(&r, 300);
            int relu = (int)tst_below(&r, 2);
            float *w = malloc((size_t)out * in * sizeof *w), *x = malloc((size_t)in * sizeof *x);
            float *b = malloc((size_t)out * sizeof *b), *y = malloc(((size_t)out + 1) * sizeof *y);
            ck_assert(w && x && b && y);
            for (int i = 0; i < out * in; i++)
                w[i] = tk_unif(&r);
            for (int i = 0; i < in; i++)
                x[i] = tk_unif(&r);
            for (int i = 0; i < out; i++)
                b[i] = tk_unif(&r);
            y[out] = 777.0f;
            dls_kern_dense1(isas[s], out, in, w, b, x, y, relu);
            ck_assert_float_eq(y[out], 777.0f);
            for (int i = 0; i < out; i++) {
                double sum = b[i], mag = fabs(b[i]);
                for (int j = 0; j < in; j++) {
                    sum += (double)w[(size_t)i * in + j] * x[j];
                    mag += fabs((double)w[(size_t)i * in + j] * x[j]);
                }
                if (relu && sum < 0)
                    sum = 0;
                ck_assert_msg(fabs(y[i] - sum) <= 1e-4 * mag + 1e-30,
                              "%s dense1 %d->%d relu %d: y[%d] = %.9g, float64 %.9g",
                              dls_kern_isa_name(isas[s]), in, out, relu, i, y[i], sum);
            }
            free(w);
            free(x);
            free(b);
            free(y);
        }
}
END_TEST

START_TEST(test_selftest)
{
    int isas[2], ni = tk_isas(isas);
    char why[200];
    for (int s = 0; s < ni; s++) {
        const unsigned nets[][5] = {{16, 256, 256, 8}, {3, 5, 2}, {700, 33, 1}};
        const int nw[] = {4, 3, 3};
        for (int q = 0; q < 3; q++) {
            why[0] = '\0';
            ck_assert_msg(dls_kern_selftest(isas[s], nets[q], nw[q], 64, why, sizeof why) == 0,
                          "%s: %s", dls_kern_isa_name(isas[s]), why);
        }
    }
    ck_assert_int_eq(dls_kern_selftest(DLS_ISA_NONE, (const unsigned[]){2, 2}, 2, 1, why,
                                       sizeof why),
                     -1);
    ck_assert_str_eq(why, "no kernels for this CPU in this build");
}
END_TEST

#define TK_NET "algo=dqn n_features=5 n_actions=4 hidden=40,24 replay=512 batch=37 " \
               "learning_starts=64 seed=11 device=cpu epsilon_start=1 epsilon_end=1 "

/* the same experience into an agent per kernels; Q on probe states after */
static void tk_run(const char *spec, int steps, float *q_out)
{
    dlsched_agent *ag = tst_agent(spec);
    uint64_t r = 5;
    for (int t = 0; t < steps; t++) {
        float x[5];
        for (int i = 0; i < 5; i++)
            x[i] = tk_unif(&r);
        dlsched_state_t s = tst_state(x, 5);
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &s, 0, &d), DLSCHED_OK);
        float rew = x[d.action % 5] - 0.25f * (float)d.action;
        ck_assert_int_eq(dlsched_observe(ag, d.ticket, rew, &s, 0), DLSCHED_OK);
    }
    ck_assert_uint_ge(tst_stats(ag).train_steps, (uint64_t)(steps - 64) / 8);
    uint64_t pr = 17;
    for (int p = 0; p < 8; p++) {
        float x[5];
        for (int i = 0; i < 5; i++)
            x[i] = tk_unif(&pr);
        dlsched_state_t s = tst_state(x, 5);
        ck_assert_int_eq(dlsched_q_values(ag, &s, q_out + 4 * p, 4), DLSCHED_OK);
    }
    dlsched_agent_free(ag);
}

/* An agent on the own kernels learns what the OpenBLAS agent learns: same
   seed and experience, Q within float32 rounding (scaled) after 200 steps;
   dueling too */
START_TEST(test_agent_own_like_openblas)
{
    int isas[2];
    if (tk_isas(isas) == 0)
        return;
    const char *extra[] = {"", "dueling=1 "};
    for (int e = 0; e < 2; e++) {
        char own[512], blas[512];
        snprintf(own, sizeof own, TK_NET "%scpu_kernels=own", extra[e]);
        snprintf(blas, sizeof blas, TK_NET "%scpu_kernels=openblas", extra[e]);
        float qo[32], qb[32];
        tk_run(own, 260, qo);
        tk_run(blas, 260, qb);
        double scale = 0;
        for (int i = 0; i < 32; i++)
            scale = fmax(scale, fabs(qb[i]));
        ck_assert(scale > 0.01);
        for (int i = 0; i < 32; i++)
            ck_assert_msg(fabs(qo[i] - qb[i]) <= 2e-3 * scale,
                          "%s: Q[%d] own %.9g, OpenBLAS %.9g", extra[e], i, qo[i], qb[i]);
        dlsched_agent *ag = tst_agent(own);
        dlsched_stats_t st = tst_stats(ag);
        ck_assert_msg(strstr(st.blas_reason, "own ") && strstr(st.blas_reason, "self-test passed"),
                      "%s", st.blas_reason);
        dlsched_agent_free(ag);
    }
}
END_TEST

/* a failing self-test: the agent runs OpenBLAS (Q bitwise those of a
   cpu_kernels=openblas agent) and says why */
START_TEST(test_selftest_failure_falls_back)
{
    int isas[2];
    if (tk_isas(isas) == 0)
        return;
    dls_kern_selftest_fault = 1;
    dlsched_config *cfg = NULL;
    ck_assert_int_eq(dlsched_config_new(&cfg), DLSCHED_OK);
    ck_assert_int_eq(dlsched_config_parse(cfg, TK_NET "cpu_kernels=own"), DLSCHED_OK);
    dlsched_agent *ag = NULL;
    ck_assert_int_eq(dlsched_agent_new(cfg, &ag), DLSCHED_OK);
    ck_assert_msg(strstr(dlsched_last_error(), "failed their self-test (the test hook failed "
                                               "it); OpenBLAS runs"),
                  "%s", dlsched_last_error());
    dlsched_config_free(cfg);
    dls_kern_selftest_fault = 0;
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_msg(strstr(st.blas_reason, "failed their self-test"), "%s", st.blas_reason);
    dlsched_agent_free(ag);
    dls_kern_selftest_fault = 1;
    float qf[32], qb[32];
    tk_run(TK_NET "cpu_kernels=own", 120, qf);
    dls_kern_selftest_fault = 0;
    tk_run(TK_NET "cpu_kernels=openblas", 120, qb);
    ck_assert_mem_eq(qf, qb, sizeof qf);
}
END_TEST

/* the key: its three values and a bad one */
START_TEST(test_key)
{
    ck_assert_int_eq(tst_agent_rc(TK_NET "cpu_kernels=fast"), DLSCHED_ECONFIG);
    ck_assert_msg(strstr(dlsched_last_error(), "cpu_kernels"), "%s", dlsched_last_error());
    dlsched_agent *ag = tst_agent(TK_NET "cpu_kernels=openblas");
    /* openblas: the process's verdict on OpenBLAS, as is */
    ck_assert_str_eq(tst_stats(ag).blas_reason, dls_blas_info_get()->verdict.reason);
    dlsched_agent_free(ag);
    ag = tst_agent(TK_NET "cpu_kernels=auto");
    dlsched_stats_t st = tst_stats(ag);
    if (!dls_blas_info_get()->verdict.generic)
        ck_assert_str_eq(st.blas_reason, "");
    else
        ck_assert_msg(strstr(st.blas_reason, "own "), "%s", st.blas_reason);
    dlsched_agent_free(ag);
}
END_TEST

Suite *suite_kernels(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("products");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_gemm_random_shapes);
    tcase_add_test(tc, test_gemm_step_shapes);
    tcase_add_test(tc, test_gemm_k_zero);
    tcase_add_test(tc, test_dense1);
    tcase_add_test(tc, test_selftest);
    suite_add_tcase(s, tc);
    tc = tcase_create("agents");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_agent_own_like_openblas);
    tcase_add_test(tc, test_selftest_failure_falls_back);
    tcase_add_test(tc, test_key);
    suite_add_tcase(s, tc);
    return s;
}
