/* check_dqn.c - the DQN backend (src/dqn/dqn.c) against references written
   here in double: the forward pass, the whole loss and its gradient by
   central finite differences, one and two Adam steps, gradient clipping,
   the target network (hard copy and Polyak), n-step returns, input
   normalisation; and algo=dqn's rejection of bad input and bad configs
   through the public API. The network layout is rebuilt here from the
   description in dqn.h, never read from the library. */
#include <stdio.h>

#include "tests.h"

#include "core/backend.h"
#include "core/config.h"
#include "core/rng.h"
#include "dqn/dqn.h"

/* the test's own generator: tst_next() of tests.h */
static uint64_t td_rng;

#define td_unif() tst_unif(&td_rng)
#define td_below(n) tst_below(&td_rng, (n))
/* uniform in [lo, hi) */
#define td_range(lo, hi) ((lo) + ((hi) - (lo)) * td_unif())

/* the largest "learning_starts": no inline training ever */
#define TD_NEVER "4611686018427387904"

/* ---- creating a DQN directly with the internal constructor ---------------- */

static const dls_backend_ops *td_ops;

static dls_dqn *td_new(const char *spec, uint64_t seed)
{
    dlsched_config *cfg = NULL;
    ck_assert_int_eq(dlsched_config_new(&cfg), DLSCHED_OK);
    int rc = dlsched_config_parse(cfg, spec);
    ck_assert_msg(rc == DLSCHED_OK, "parse '%s': %s", spec, dlsched_last_error());
    dls_rng rng;
    dls_rng_seed(&rng, seed);
    void *impl = NULL;
    size_t key_bytes = 0;
    rc = dls_dqn_new(cfg, &rng, &td_ops, &impl, &key_bytes);
    ck_assert_msg(rc == DLSCHED_OK, "dls_dqn_new '%s': %s", spec, dlsched_last_error());
    ck_assert_ptr_nonnull(impl);
    ck_assert_uint_eq(key_bytes,
                      (size_t)dls_config_int(cfg, DLS_KEY_N_FEATURES) * sizeof(float));
    dlsched_config_free(cfg);
    return (dls_dqn *)impl;
}

static void td_free(dls_dqn *d)
{
    td_ops->destroy(d);
}

/* ---- the reference network, in double ----------------------------------------- */

#define TD_MAXL 4
#define TD_MAXW 64

/* the layout of dqn.h, computed here */
typedef struct tnet {
    int nf, na, L, dueling;
    int w[TD_MAXL + 1];
    size_t offW[TD_MAXL], offb[TD_MAXL];
    size_t offWq, offbq, offWv, offbv, offWa, offba, n;
} tnet;

static void tnet_layout(tnet *t, int nf, int na, const int *hidden, int L, int dueling)
{
    ck_assert_int_le(L, TD_MAXL);
    memset(t, 0, sizeof *t);
    t->nf = nf;
    t->na = na;
    t->L = L;
    t->dueling = dueling;
    t->w[0] = nf;
    for (int l = 0; l < L; l++)
        t->w[l + 1] = hidden[l];
    for (int l = 0; l <= L; l++)
        ck_assert_int_le(t->w[l], TD_MAXW);
    ck_assert_int_le(na, TD_MAXW);
    size_t n = 0;
    for (int l = 0; l < L; l++) {
        t->offW[l] = n;
        n += (size_t)t->w[l + 1] * t->w[l];
        t->offb[l] = n;
        n += (size_t)t->w[l + 1];
    }
    int h = t->w[L];
    if (!dueling) {
        t->offWq = n;
        n += (size_t)na * h;
        t->offbq = n;
        n += (size_t)na;
    } else {
        t->offWv = n;
        n += (size_t)h;
        t->offbv = n;
        n += 1;
        t->offWa = n;
        n += (size_t)na * h;
        t->offba = n;
        n += (size_t)na;
    }
    t->n = n;
}

/* one parameter tensor: where it lies, and its fan-in (0 for a bias) */
typedef struct tslice {
    char name[16];
    size_t off, len;
    int fan_in;
} tslice;

static int tnet_tensors(const tnet *t, tslice *ts)
{
    int k = 0;
    for (int l = 0; l < t->L; l++) {
        ts[k] = (tslice){"", t->offW[l], (size_t)t->w[l + 1] * t->w[l], t->w[l]};
        snprintf(ts[k++].name, sizeof ts[0].name, "W_%d", l);
        ts[k] = (tslice){"", t->offb[l], (size_t)t->w[l + 1], 0};
        snprintf(ts[k++].name, sizeof ts[0].name, "b_%d", l);
    }
    int h = t->w[t->L];
    if (!t->dueling) {
        ts[k++] = (tslice){"W_q", t->offWq, (size_t)t->na * h, h};
        ts[k++] = (tslice){"b_q", t->offbq, (size_t)t->na, 0};
    } else {
        ts[k++] = (tslice){"W_v", t->offWv, (size_t)h, h};
        ts[k++] = (tslice){"b_v", t->offbv, 1, 0};
        ts[k++] = (tslice){"W_a", t->offWa, (size_t)t->na * h, h};
        ts[k++] = (tslice){"b_a", t->offba, (size_t)t->na, 0};
    }
    size_t total = 0;
    for (int i = 0; i < k; i++)
        total += ts[i].len;
    ck_assert_uint_eq(total, t->n);
    return k;
}

/* random parameters: weights U(-s, s) with s = 1.7 / sqrt(fan_in), biases
   U(-0.3, 0.3) */
static void td_rand_params(const tnet *t, float *p)
{
    tslice ts[2 * TD_MAXL + 4];
    int k = tnet_tensors(t, ts);
    for (int i = 0; i < k; i++) {
        double s = ts[i].fan_in ? 1.7 / sqrt((double)ts[i].fan_in) : 0.3;
        for (size_t j = 0; j < ts[i].len; j++)
            p[ts[i].off + j] = (float)td_range(-s, s);
    }
}

static void td_to_double(const float *f, double *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] = f[i];
}

/* Q of one state x (double); returns min |pre-activation| over the trunk.
   mag (may be NULL) gets the largest Q of the same net with every weight,
   bias and input replaced by its absolute value (dueling: |V| + |A_a| +
   mean |A|): the scale float rounding errors are relative to, since
   terms may cancel. */
static double ref_forward(const tnet *t, const double *p, const double *x, double *q,
                          double *mag)
{
    double buf[2][TD_MAXW], abuf[2][TD_MAXW];
    const double *in = x;
    double xa[TD_MAXW];
    for (int j = 0; j < t->nf; j++)
        xa[j] = fabs(x[j]);
    const double *ain = xa;
    double minpre = INFINITY;
    for (int l = 0; l < t->L; l++) {
        double *out = buf[l & 1], *aout = abuf[l & 1];
        int n = t->w[l + 1], k = t->w[l];
        for (int i = 0; i < n; i++) {
            double z = p[t->offb[l] + i], za = fabs(z);
            for (int j = 0; j < k; j++) {
                z += p[t->offW[l] + (size_t)i * k + j] * in[j];
                za += fabs(p[t->offW[l] + (size_t)i * k + j]) * ain[j];
            }
            minpre = fmin(minpre, fabs(z));
            out[i] = z > 0 ? z : 0;
            aout[i] = za;
        }
        in = out;
        ain = aout;
    }
    int h = t->w[t->L], na = t->na;
    double m = 0;
    if (!t->dueling) {
        for (int a = 0; a < na; a++) {
            double z = p[t->offbq + a], za = fabs(z);
            for (int j = 0; j < h; j++) {
                z += p[t->offWq + (size_t)a * h + j] * in[j];
                za += fabs(p[t->offWq + (size_t)a * h + j]) * ain[j];
            }
            q[a] = z;
            m = fmax(m, za);
        }
    } else {
        double v = p[t->offbv], va = fabs(v), adv[TD_MAXW], aadv[TD_MAXW], mean = 0, amean = 0;
        for (int j = 0; j < h; j++) {
            v += p[t->offWv + j] * in[j];
            va += fabs(p[t->offWv + j]) * ain[j];
        }
        for (int a = 0; a < na; a++) {
            double z = p[t->offba + a], za = fabs(z);
            for (int j = 0; j < h; j++) {
                z += p[t->offWa + (size_t)a * h + j] * in[j];
                za += fabs(p[t->offWa + (size_t)a * h + j]) * ain[j];
            }
            adv[a] = z;
            aadv[a] = za;
            mean += z;
            amean += za;
        }
        mean /= na;
        amean /= na;
        for (int a = 0; a < na; a++) {
            q[a] = v + adv[a] - mean;
            m = fmax(m, va + aadv[a] + amean);
        }
    }
    if (mag)
        *mag = m;
    return minpre;
}

static double ref_forward_f(const tnet *t, const double *p, const float *x, double *q,
                            double *mag)
{
    double xd[TD_MAXW];
    td_to_double(x, xd, (size_t)t->nf);
    return ref_forward(t, p, xd, q, mag);
}

/* |a - ref| <= rel * max(|ref|, floor) */
static int td_close(double a, double ref, double rel, double floor)
{
    return fabs(a - ref) <= rel * fmax(fabs(ref), floor);
}

static double ref_huber(double d, double delta)
{
    double ad = fabs(d);
    return ad <= delta ? 0.5 * d * d : delta * (ad - 0.5 * delta);
}

/* ---- a. the whole loss and its gradient ------------------------------------------ */

#define GF 5
#define GA 4
#define GB 16 /* the largest batch of the cases */
#define GDELTA 0.5

typedef struct tbatch {
    int n;
    float s[GB * GF], s2[GB * GF], ret[GB], disc[GB], w[GB];
    int32_t a[GB];
    uint8_t m2[GB * GA];
    int use_w, use_mask;
} tbatch;

/* L = 1/n sum_i w_i huber(Q(s_i, a_i) - y_i), y fixed */
static double ref_loss(const tnet *t, const double *p, const tbatch *b, const double *y)
{
    double L = 0, q[TD_MAXW];
    for (int i = 0; i < b->n; i++) {
        ref_forward_f(t, p, b->s + (size_t)i * GF, q, NULL);
        double wi = b->use_w ? b->w[i] : 1.0;
        L += wi * ref_huber(q[b->a[i]] - y[i], GDELTA);
    }
    return L / b->n;
}

/* the bootstrap Q_target(s', a*) of row i: a* = argmax over allowed actions
   of Q_online(s') (double DQN) or Q_target(s') (plain); *gap = the margin
   of that argmax over the runner-up */
static double ref_boot(const tnet *t, const double *pon, const double *ptg, const tbatch *b,
                       int i, int dbl, double *gap)
{
    double qo[TD_MAXW], qt[TD_MAXW];
    const float *x = b->s2 + (size_t)i * GF;
    ref_forward_f(t, pon, x, qo, NULL);
    ref_forward_f(t, ptg, x, qt, NULL);
    const double *sel = dbl ? qo : qt;
    int best = -1;
    for (int k = 0; k < t->na; k++)
        if ((!b->use_mask || b->m2[i * GA + k]) && (best < 0 || sel[k] > sel[best]))
            best = k;
    ck_assert_int_ge(best, 0);
    *gap = INFINITY;
    for (int k = 0; k < t->na; k++)
        if (k != best && (!b->use_mask || b->m2[i * GA + k]))
            *gap = fmin(*gap, sel[best] - sel[k]);
    return qt[best];
}

typedef struct gcase {
    int hid[TD_MAXL], L;
    int dueling, dbl, use_w, use_mask;
    int n, batch;
} gcase;

static const gcase gcases[] = {
    {{7, 6}, 2, 0, 1, 1, 1, 9, 9},    {{7, 6}, 2, 0, 0, 1, 1, 9, 9},
    {{7, 6}, 2, 1, 1, 1, 1, 9, 9},    {{7, 6}, 2, 1, 0, 1, 1, 9, 9},
    {{7, 6}, 2, 0, 1, 0, 1, 9, 9},    {{7, 6}, 2, 1, 0, 0, 0, 9, 9},
    {{7, 6}, 2, 1, 1, 0, 1, 9, 9},    {{7, 6}, 2, 0, 0, 1, 0, 9, 9},
    {{8}, 1, 0, 1, 1, 0, 9, 9},       {{6, 5, 4}, 3, 1, 1, 0, 1, 9, 9},
    {{9, 3, 7}, 3, 0, 0, 1, 1, 16, 16},
};
/* n < batch: a batch smaller than the configured one (dqn.h: n <= batch) */
static const gcase gcases_partial[] = {
    {{7, 6}, 2, 0, 0, 1, 1, 9, 12},
    {{7, 6}, 2, 1, 0, 1, 1, 9, 12},
    {{7, 6}, 2, 0, 1, 1, 1, 9, 12},
    {{7, 6}, 2, 1, 1, 0, 1, 9, 12},
};

static void td_hidden_text(char *buf, size_t len, const int *hid, int L)
{
    size_t k = 0;
    buf[0] = '\0';
    for (int l = 0; l < L; l++)
        k += (size_t)snprintf(buf + k, len - k, "%s%d", l ? "," : "", hid[l]);
}

static void td_grad_case(const gcase *c, uint64_t seed)
{
    static const float discs[] = {0.9f, 0.81f, 0.5f, 1.0f, 0.729f, 0.95f};
    tnet t;
    tnet_layout(&t, GF, GA, c->hid, c->L, c->dueling);
    tslice ts[2 * TD_MAXL + 4];
    int nts = tnet_tensors(&t, ts);
    char hid[64], spec[320];
    td_hidden_text(hid, sizeof hid, c->hid, c->L);
    snprintf(spec, sizeof spec,
             "n_features=%d n_actions=%d hidden=%s dueling=%d double=%d huber_delta=%g "
             "batch=%d replay=16 learning_starts=" TD_NEVER,
             GF, GA, hid, c->dueling, c->dbl, GDELTA, c->batch);
    dls_dqn *d = td_new(spec, 5);
    size_t np = t.n;
    ck_assert_uint_eq(dls_dqn_n_params(d), np);

    float *pon = malloc(np * sizeof(float)), *ptg = malloc(np * sizeof(float));
    double *pd = malloc(np * sizeof(double)), *ptd = malloc(np * sizeof(double));
    double *fd = malloc(np * sizeof(double));
    ck_assert(pon && ptg && pd && ptd && fd);
    static tbatch b;
    memset(&b, 0, sizeof b);
    b.n = c->n;
    b.use_w = c->use_w;
    b.use_mask = c->use_mask;
    double y[GB], dres[GB];
    int ok = 0, nlin = 0, nquad = 0, nterm = 0;
    td_rng = seed;
    for (int attempt = 0; attempt < 200 && !ok; attempt++) {
        td_rand_params(&t, pon);
        td_rand_params(&t, ptg);
        td_to_double(pon, pd, np);
        td_to_double(ptg, ptd, np);
        for (int i = 0; i < b.n; i++) {
            for (int j = 0; j < GF; j++) {
                b.s[i * GF + j] = (float)td_range(-2.0, 2.0);
                b.s2[i * GF + j] = (float)td_range(-2.0, 2.0);
            }
            b.a[i] = (int32_t)td_below(GA);
            /* every fourth row terminal, the rest with various discounts */
            b.disc[i] = i % 4 == 0 ? 0.0f : discs[td_below(6)];
            b.w[i] = (float)td_range(0.2, 1.0);
            int any = 0;
            for (int k = 0; k < GA; k++)
                any += b.m2[i * GA + k] = td_unif() < 0.6;
            if (!any)
                b.m2[i * GA + td_below(GA)] = 1;
        }
        ok = 1;
        nlin = nquad = nterm = 0;
        for (int i = 0; i < b.n && ok; i++) {
            double q[TD_MAXW];
            /* finite differences need every ReLU away from its kink */
            if (ref_forward_f(&t, pd, b.s + (size_t)i * GF, q, NULL) < 1e-4)
                ok = 0;
            double boot = 0, gap = INFINITY;
            if (b.disc[i] != 0.0f)
                boot = ref_boot(&t, pd, ptd, &b, i, c->dbl, &gap);
            else
                nterm++;
            /* the float library must pick the same argmax */
            if (gap < 1e-3)
                ok = 0;
            /* TD error: |d| in (0.02, 0.45) on even rows (quadratic
               region of delta 0.5), in (0.6, 2.5) on odd rows (linear) */
            double mag = i % 2 ? td_range(0.6, 2.5) : td_range(0.02, 0.45);
            double want = td_unif() < 0.5 ? -mag : mag;
            b.ret[i] = (float)(q[b.a[i]] - want - (double)b.disc[i] * boot);
            y[i] = (double)b.ret[i] + (double)b.disc[i] * boot;
            dres[i] = q[b.a[i]] - y[i];
            if (fabs(fabs(dres[i]) - GDELTA) < 1e-3)
                ok = 0;
            nlin += fabs(dres[i]) > GDELTA;
            nquad += fabs(dres[i]) < GDELTA;
        }
        if (!ok)
            continue;
        /* central differences of the reference loss, online params only */
        for (size_t j = 0; j < np; j++) {
            double v = pd[j], h = 1e-6 * fmax(1.0, fabs(v));
            pd[j] = v + h;
            double lp = ref_loss(&t, pd, &b, y);
            pd[j] = v - h;
            double lm = ref_loss(&t, pd, &b, y);
            pd[j] = v;
            fd[j] = (lp - lm) / (2 * h);
        }
        /* every tensor needs a gradient worth comparing */
        for (int k = 0; k < nts; k++) {
            double nn = 0;
            for (size_t j = 0; j < ts[k].len; j++)
                nn += fd[ts[k].off + j] * fd[ts[k].off + j];
            if (sqrt(nn) < 1e-5)
                ok = 0;
        }
    }
    ck_assert_msg(ok, "no valid draw for the finite differences");
    ck_assert_int_gt(nlin, 0);
    ck_assert_int_gt(nquad, 0);
    ck_assert_int_gt(nterm, 0);

    /* the library on the same batch; stale gradients must all be replaced */
    memcpy(dls_dqn_params(d), pon, np * sizeof(float));
    memcpy(dls_dqn_target(d), ptg, np * sizeof(float));
    float *g = dls_dqn_grads(d);
    for (size_t j = 0; j < np; j++)
        g[j] = NAN;
    dls_batch lb = {(uint32_t)b.n, b.s, b.a, b.ret, b.disc, b.s2,
                    b.use_mask ? b.m2 : NULL, b.use_w ? b.w : NULL};
    float td[GB];
    double loss = dls_dqn_grad(d, &lb, td);
    double ref = ref_loss(&t, pd, &b, y);
    ck_assert_msg(td_close(loss, ref, 1e-5, 1e-12), "loss %.9g, reference %.9g", loss, ref);
    for (int i = 0; i < b.n; i++)
        ck_assert_msg(td_close(td[i], fabs(dres[i]), 1e-4, 1e-2), "row %d: |td| %.9g, expected %.9g",
                      i, (double)td[i], fabs(dres[i]));
    for (int k = 0; k < nts; k++) {
        double err = 0, nn = 0;
        for (size_t j = ts[k].off; j < ts[k].off + ts[k].len; j++) {
            ck_assert_msg(isfinite(g[j]), "%s: gradient %zu not written", ts[k].name,
                          j - ts[k].off);
            err += (g[j] - fd[j]) * (g[j] - fd[j]);
            nn += fd[j] * fd[j];
        }
        double rel = sqrt(err) / fmax(sqrt(nn), 1e-300);
        ck_assert_msg(rel < 1e-3, "%s: relative gradient error %.3g (|g_fd| %.3g)", ts[k].name,
                      rel, sqrt(nn));
    }
    /* the gradient does not touch the parameters */
    ck_assert_mem_eq(dls_dqn_params(d), pon, np * sizeof(float));
    ck_assert_mem_eq(dls_dqn_target(d), ptg, np * sizeof(float));
    free(pon);
    free(ptg);
    free(pd);
    free(ptd);
    free(fd);
    td_free(d);
}

START_TEST(test_grad_finite_differences)
{
    for (uint64_t seed = 1; seed <= 3; seed++)
        td_grad_case(&gcases[_i], 1000 * (uint64_t)_i + seed);
}
END_TEST

START_TEST(test_grad_partial_batch)
{
    td_grad_case(&gcases_partial[_i], 77 + (uint64_t)_i);
}
END_TEST

/* ---- b. Adam ------------------------------------------------------------------------ */

#define AF 3
#define AA 2

/* one Adam step in double on g * gscale at step t; m, v, p updated */
static void ref_adam(size_t n, double *p, const float *g, double gscale, double *m, double *v,
                     double lr, double b1, double b2, double eps, int t)
{
    for (size_t i = 0; i < n; i++) {
        double gi = g[i] * gscale;
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        double mh = m[i] / (1 - pow(b1, t)), vh = v[i] / (1 - pow(b2, t));
        p[i] -= lr * mh / (sqrt(vh) + eps);
    }
}

static void td_check_adam(dls_dqn *d, size_t n, const double *p, const double *m,
                          const double *v, const char *when)
{
    const float *lp = dls_dqn_params(d), *lm = dls_dqn_adam_m(d), *lv = dls_dqn_adam_v(d);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(td_close(lp[i], p[i], 1e-6, 1e-2), "%s: param %zu %.9g, expected %.9g",
                      when, i, (double)lp[i], p[i]);
        ck_assert_msg(td_close(lm[i], m[i], 1e-6, 1e-12), "%s: m %zu %.9g, expected %.9g", when,
                      i, (double)lm[i], m[i]);
        ck_assert_msg(td_close(lv[i], v[i], 1e-6, 1e-14), "%s: v %zu %.9g, expected %.9g", when,
                      i, (double)lv[i], v[i]);
    }
}

static void td_rand_vec(float *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)td_range(lo, hi);
}

#define ADAM_SPEC(clip)                                                                   \
    "n_features=3 n_actions=2 hidden=4 lr=0.01 adam_beta1=0.8 adam_beta2=0.95 "          \
    "adam_eps=0.001 grad_clip=" clip " target_update=1000 batch=4 replay=8"

START_TEST(test_adam_two_steps)
{
    td_rng = 31;
    dls_dqn *d = td_new(ADAM_SPEC("0"), 3);
    size_t n = dls_dqn_n_params(d);
    ck_assert_uint_eq(n, 3 * 4 + 4 + 4 * 2 + 2);
    /* the hyper-parameters as the library holds them: float */
    double lr = (float)0.01, b1 = (float)0.8, b2 = (float)0.95, eps = (float)0.001;
    double p[32], m[32] = {0}, v[32] = {0};
    float *lp = dls_dqn_params(d), *g = dls_dqn_grads(d);
    td_rand_vec(lp, n, -1.0, 1.0);
    td_rand_vec(g, n, -0.5, 0.5);
    g[0] = 0.0f;     /* no gradient: no move */
    g[1] = 1e-5f;    /* below eps: a damped step */
    g[2] = -3.0f;
    memset(dls_dqn_adam_m(d), 0, n * sizeof(float));
    memset(dls_dqn_adam_v(d), 0, n * sizeof(float));
    float target[32];
    memcpy(target, dls_dqn_target(d), n * sizeof(float));
    td_to_double(lp, p, n);
    double p0 = p[0];

    dls_dqn_apply(d);
    ref_adam(n, p, g, 1.0, m, v, lr, b1, b2, eps, 1);
    ck_assert_uint_eq(dls_dqn_steps(d), 1);
    td_check_adam(d, n, p, m, v, "step 1");
    ck_assert_float_eq(lp[0], (float)p0);

    td_rand_vec(g, n, -0.5, 0.5);
    dls_dqn_apply(d);
    ref_adam(n, p, g, 1.0, m, v, lr, b1, b2, eps, 2);
    ck_assert_uint_eq(dls_dqn_steps(d), 2);
    td_check_adam(d, n, p, m, v, "step 2");
    /* target_update=1000: the target is untouched */
    ck_assert_mem_eq(dls_dqn_target(d), target, n * sizeof(float));
    td_free(d);
}
END_TEST

/* grad_clip=1 and a gradient of norm 5 is Adam on grad / 5; grad_clip=10
   leaves it alone */
START_TEST(test_adam_clip)
{
    static const char *specs[2] = {ADAM_SPEC("1"), ADAM_SPEC("10")};
    static const double scales[2] = {1.0 / 5.0, 1.0};
    for (int c = 0; c < 2; c++) {
        td_rng = 57;
        dls_dqn *d = td_new(specs[c], 3);
        size_t n = dls_dqn_n_params(d);
        double lr = (float)0.01, b1 = (float)0.8, b2 = (float)0.95, eps = (float)0.001;
        double p[32], m[32] = {0}, v[32] = {0}, raw[32], nn = 0;
        float *lp = dls_dqn_params(d), *g = dls_dqn_grads(d);
        td_rand_vec(lp, n, -1.0, 1.0);
        for (size_t i = 0; i < n; i++) {
            raw[i] = td_range(-1.0, 1.0);
            nn += raw[i] * raw[i];
        }
        for (size_t i = 0; i < n; i++)
            g[i] = (float)(5.0 * raw[i] / sqrt(nn)); /* global norm 5 */
        td_to_double(lp, p, n);
        dls_dqn_apply(d);
        ref_adam(n, p, g, scales[c], m, v, lr, b1, b2, eps, 1);
        td_check_adam(d, n, p, m, v, c ? "no clip" : "clip");
        /* step 2 with a small gradient: clipping is per step */
        for (size_t i = 0; i < n; i++)
            g[i] = (float)(0.1 * raw[i] / sqrt(nn));
        dls_dqn_apply(d);
        ref_adam(n, p, g, 1.0, m, v, lr, b1, b2, eps, 2);
        td_check_adam(d, n, p, m, v, c ? "no clip, step 2" : "clip, step 2");
        td_free(d);
    }
}
END_TEST

/* ---- c. target network ---------------------------------------------------------------- */

START_TEST(test_target_hard_copy)
{
    td_rng = 3;
    dls_dqn *d = td_new("n_features=3 n_actions=2 hidden=5,4 target_update=3 lr=0.01 "
                        "batch=2 replay=8",
                        9);
    size_t n = dls_dqn_n_params(d);
    float *on = dls_dqn_params(d), *tg = dls_dqn_target(d), *g = dls_dqn_grads(d);
    float old[64];
    ck_assert_uint_le(n, 64);
    td_rand_vec(tg, n, -1.0, 1.0);
    td_rand_vec(on, n, -1.0, 1.0);
    memcpy(old, tg, n * sizeof(float));
    for (int step = 1; step <= 7; step++) {
        td_rand_vec(g, n, -1.0, 1.0);
        dls_dqn_apply(d);
        if (step % 3 == 0) {
            ck_assert_mem_eq(tg, on, n * sizeof(float));
            memcpy(old, tg, n * sizeof(float));
        } else {
            ck_assert_msg(memcmp(tg, old, n * sizeof(float)) == 0,
                          "target changed at step %d", step);
            ck_assert(memcmp(tg, on, n * sizeof(float)) != 0);
        }
    }
    td_free(d);
}
END_TEST

START_TEST(test_target_polyak)
{
    td_rng = 4;
    dls_dqn *d = td_new("n_features=3 n_actions=2 hidden=5 target_update=0.25 lr=0.01 "
                        "batch=2 replay=8",
                        9);
    size_t n = dls_dqn_n_params(d);
    float *on = dls_dqn_params(d), *tg = dls_dqn_target(d), *g = dls_dqn_grads(d);
    ck_assert_uint_le(n, 64);
    td_rand_vec(tg, n, -1.0, 1.0);
    td_rand_vec(on, n, -1.0, 1.0);
    for (int step = 1; step <= 3; step++) {
        double old[64];
        td_to_double(tg, old, n);
        td_rand_vec(g, n, -1.0, 1.0);
        dls_dqn_apply(d);
        for (size_t i = 0; i < n; i++) {
            double want = 0.25 * on[i] + 0.75 * old[i];
            ck_assert_msg(td_close(tg[i], want, 1e-6, 1e-2),
                          "step %d: target %zu %.9g, expected %.9g", step, i, (double)tg[i],
                          want);
        }
    }
    td_free(d);
}
END_TEST

/* ---- d. n-step returns ------------------------------------------------------------------- */

#define NF 2
#define NA 3

/* episodes: length and how each ends (0 = still running at the end) */
enum { TD_RUN = 0, TD_TERM = 1, TD_TRUNC = 2 };
static const int ep_len[] = {6, 2, 4, 1, 3, 5};
static const int ep_end[] = {TD_TERM, TD_TRUNC, TD_TRUNC, TD_TERM, TD_TERM, TD_RUN};
#define N_EP ((int)(sizeof ep_len / sizeof ep_len[0]))
#define N_TR 21

typedef struct ttrans {
    float s[NF], s2[NF], r;
    int32_t a;
    uint8_t m2[NA];
    int has_mask, term, trunc, ep, t;
} ttrans;

static void td_state(float *x, int id)
{
    x[0] = (float)id;
    x[1] = 0.5f * (float)id + 1.0f;
}

static int td_make_sequence(ttrans *tr)
{
    int k = 0, id = 0;
    td_rng = 8;
    for (int e = 0; e < N_EP; e++) {
        for (int t = 0; t < ep_len[e]; t++, k++) {
            ttrans *x = &tr[k];
            memset(x, 0, sizeof *x);
            td_state(x->s, id);
            td_state(x->s2, id + 1);
            id++;
            x->r = (float)td_range(-2.0, 2.0);
            x->a = (int32_t)td_below(NA);
            x->ep = e;
            x->t = t;
            int last = t == ep_len[e] - 1;
            x->term = last && ep_end[e] == TD_TERM;
            x->trunc = last && ep_end[e] == TD_TRUNC;
            x->has_mask = !x->term && td_unif() < 0.6;
            if (x->has_mask) {
                for (int a = 0; a < NA; a++)
                    x->m2[a] = (uint8_t)(td_unif() < 0.5 ? 0 : 1 + td_below(200));
                x->m2[td_below(NA)] = 7;
            }
        }
        id += 10; /* a new episode starts elsewhere */
    }
    ck_assert_int_eq(k, N_TR);
    return k;
}

static void td_nstep_case(int nstep)
{
    const double gamma = 0.9;
    char spec[256];
    snprintf(spec, sizeof spec,
             "n_features=2 n_actions=3 hidden=4 nstep=%d gamma=0.9 replay=64 batch=4 "
             "learning_starts=" TD_NEVER,
             nstep);
    dls_dqn *d = td_new(spec, 1);
    ttrans tr[N_TR];
    int ntr = td_make_sequence(tr);
    dls_rng rng;
    dls_rng_seed(&rng, 1);
    for (int k = 0; k < ntr; k++) {
        dls_transition t = {tr[k].s,
                            tr[k].a,
                            tr[k].r,
                            tr[k].term ? NULL : tr[k].s2,
                            tr[k].has_mask ? tr[k].m2 : NULL,
                            (unsigned)tr[k].term,
                            (unsigned)tr[k].trunc};
        double loss = -1;
        ck_assert_uint_eq(td_ops->learn(d, &t, &rng, &loss), 0);
        ck_assert_double_eq(loss, -1);
    }
    /* expected: every transition, in order, except the last nstep-1 of an
       episode still running */
    const dls_replay *r = dls_dqn_replay(d);
    uint64_t slot = 0;
    int first = 0;
    for (int e = 0; e < N_EP; e++) {
        int len = ep_len[e];
        for (int t = 0; t < len; t++) {
            int m = len - t < nstep ? len - t : nstep; /* rewards summed */
            if (ep_end[e] == TD_RUN && m < nstep)
                continue; /* still pending in the queue */
            const ttrans *x = &tr[first + t], *last = &tr[first + t + m - 1];
            double ret = 0;
            for (int k = 0; k < m; k++)
                ret += pow(gamma, k) * tr[first + t + k].r;
            double disc = last->term ? 0.0 : pow(gamma, m);
            ck_assert_uint_lt(slot, r->count);
            ck_assert_mem_eq(r->s + slot * NF, x->s, sizeof x->s);
            ck_assert_int_eq(r->a[slot], x->a);
            ck_assert_msg(td_close(r->ret[slot], ret, 1e-6, 1e-3),
                          "nstep %d, episode %d, t %d: ret %.9g, expected %.9g", nstep, e, t,
                          (double)r->ret[slot], ret);
            ck_assert_msg(td_close(r->disc[slot], disc, 1e-6, 1e-30),
                          "nstep %d, episode %d, t %d: disc %.9g, expected %.9g", nstep, e, t,
                          (double)r->disc[slot], disc);
            if (!last->term) {
                ck_assert_mem_eq(r->s2 + slot * NF, last->s2, sizeof last->s2);
                for (int a = 0; a < NA; a++)
                    ck_assert_uint_eq(r->mask2[slot * NA + a],
                                      (last->has_mask ? last->m2[a] != 0 : 1));
            }
            slot++;
        }
        first += len;
    }
    ck_assert_uint_eq(r->count, slot);
    ck_assert_uint_eq(td_ops->stored(d), slot);
    ck_assert_uint_eq(dls_dqn_steps(d), 0);
    td_free(d);
}

START_TEST(test_nstep_returns)
{
    td_nstep_case(3);
}
END_TEST

START_TEST(test_nstep_one)
{
    td_nstep_case(1);
}
END_TEST

START_TEST(test_nstep_other)
{
    td_nstep_case(2);
    td_nstep_case(5);
}
END_TEST

/* hand-computed: nstep=2, gamma=0.5, rewards 1, 2, 4 then terminal */
START_TEST(test_nstep_by_hand)
{
    dls_dqn *d = td_new("n_features=2 n_actions=3 hidden=4 nstep=2 gamma=0.5 replay=8 batch=2 "
                        "learning_starts=" TD_NEVER,
                        1);
    float s[4][NF];
    for (int i = 0; i < 4; i++)
        td_state(s[i], i);
    dls_rng rng;
    dls_rng_seed(&rng, 1);
    static const float rw[3] = {1, 2, 4};
    double loss;
    for (int i = 0; i < 3; i++) {
        dls_transition t = {s[i], i, rw[i], i == 2 ? NULL : s[i + 1], NULL, i == 2, 0};
        td_ops->learn(d, &t, &rng, &loss);
        ck_assert_uint_eq(td_ops->stored(d), i == 0 ? 0 : (i == 1 ? 1 : 3));
    }
    const dls_replay *r = dls_dqn_replay(d);
    /* 1 + 0.5*2 = 2, disc 0.25, next s[2]; 2 + 0.5*4 = 4, terminal; 4, terminal */
    ck_assert_float_eq(r->ret[0], 2.0f);
    ck_assert_float_eq(r->disc[0], 0.25f);
    ck_assert_mem_eq(r->s2, s[2], sizeof s[2]);
    ck_assert_float_eq(r->ret[1], 4.0f);
    ck_assert_float_eq(r->disc[1], 0.0f);
    ck_assert_float_eq(r->ret[2], 4.0f);
    ck_assert_float_eq(r->disc[2], 0.0f);
    ck_assert_int_eq(r->a[0], 0);
    ck_assert_int_eq(r->a[1], 1);
    ck_assert_int_eq(r->a[2], 2);
    td_free(d);
}
END_TEST

/* ---- e. normalisation -------------------------------------------------------------------- */

#define ZF 3
#define ZA 4
#define ZN 25

/* feature 0 ~ 100 + U(0, 5), feature 1 ~ -3 + U(0, 0.1), feature 2 = 7 */
static void td_norm_state(float *x)
{
    x[0] = (float)(100.0 + 5.0 * td_unif());
    x[1] = (float)(-3.0 + 0.1 * td_unif());
    x[2] = 7.0f;
}

/* the reference: (x - mean) / sqrt(var + 1e-8) clipped to +-10, then the net */
static void ref_norm_q(const tnet *t, const double *p, const double *mean, const double *var,
                       const float *x, double *q, double *mag)
{
    double xn[ZF];
    for (int j = 0; j < ZF; j++) {
        double v = ((double)x[j] - mean[j]) / sqrt(var[j] + 1e-8);
        xn[j] = v > 10 ? 10 : (v < -10 ? -10 : v);
    }
    ref_forward(t, p, xn, q, mag);
}

/* |q_a - ref_a| <= rel * max(max_a |ref_a|, mag) (mag: see ref_forward) */
static void td_assert_q(const float *q, const double *ref, int na, double mag, double rel,
                        const char *what, int which)
{
    double scale = mag;
    for (int a = 0; a < na; a++)
        scale = fmax(scale, fabs(ref[a]));
    for (int a = 0; a < na; a++)
        ck_assert_msg(fabs(q[a] - ref[a]) <= rel * fmax(scale, 1e-6),
                      "%s %d, action %d: Q %.9g, reference %.9g (scale %.3g)", what, which, a,
                      (double)q[a], ref[a], scale);
}

/* the query states: from the data, past the clip on both sides */
static void td_norm_queries(float qx[8][ZF])
{
    for (int i = 0; i < 5; i++)
        td_norm_state(qx[i]);
    qx[5][0] = 1000.0f; /* far above: clipped to +10 */
    qx[5][1] = -3.05f;
    qx[5][2] = 7.0f;
    qx[6][0] = 101.0f;
    qx[6][1] = -4.0f; /* far below: -10 */
    qx[6][2] = 7.01f; /* a constant feature moved: +10 */
    qx[7][0] = 0.0f;
    qx[7][1] = -3.0f;
    qx[7][2] = 7.0002f; /* constant feature: 2e-4 / sqrt(0 + 1e-8) = 2, unclipped */
    qx[4][2] = 6.5f;    /* and far below it: -10 */
}

START_TEST(test_normalize_backend)
{
    for (int dueling = 0; dueling <= 1; dueling++) {
        td_rng = 2024 + (uint64_t)dueling;
        char spec[256];
        snprintf(spec, sizeof spec,
                 "n_features=3 n_actions=4 hidden=6,5 normalize=1 nstep=1 dueling=%d "
                 "replay=64 batch=4 learning_starts=" TD_NEVER,
                 dueling);
        dls_dqn *d = td_new(spec, 12);
        static const int hid[2] = {6, 5};
        tnet t;
        tnet_layout(&t, ZF, ZA, hid, 2, dueling);
        ck_assert_uint_eq(dls_dqn_n_params(d), t.n);
        float *pf = dls_dqn_params(d);
        td_rand_params(&t, pf);
        double p[256];
        ck_assert_uint_le(t.n, 256);
        td_to_double(pf, p, t.n);
        dls_rng rng;
        dls_rng_seed(&rng, 3);
        float xs[ZN][ZF], nx[ZF], q[ZA];
        double ref[ZA], mag;
        for (int i = 0; i < ZN; i++) {
            td_norm_state(xs[i]);
            td_norm_state(nx);
            dls_transition tr = {xs[i], (int32_t)td_below(ZA), 1.0f, nx, NULL, 0, 0};
            double loss;
            ck_assert_uint_eq(td_ops->learn(d, &tr, &rng, &loss), 0);
            if (i == 0) {
                /* one state seen: no normalisation yet */
                const float *lq = td_ops->q(d, xs[0], q);
                ref_forward_f(&t, p, xs[0], ref, &mag);
                td_assert_q(lq, ref, ZA, mag, 1e-5, "identity", 0);
            } else if (i == 1) {
                /* two states: normalised with their mean and variance */
                double m2[ZF], v2[ZF];
                for (int j = 0; j < ZF; j++) {
                    m2[j] = ((double)xs[0][j] + xs[1][j]) / 2;
                    v2[j] = ((double)xs[0][j] - m2[j]) * ((double)xs[0][j] - m2[j]);
                }
                float x2[ZF] = {101.0f, -2.96f, 7.0f};
                const float *lq = td_ops->q(d, x2, q);
                ref_norm_q(&t, p, m2, v2, x2, ref, &mag);
                td_assert_q(lq, ref, ZA, mag, 1e-5, "two states", 0);
            }
        }
        /* mean and population variance of the stored states, in double */
        const dls_replay *r = dls_dqn_replay(d);
        ck_assert_uint_eq(r->count, ZN);
        double mean[ZF] = {0}, var[ZF] = {0};
        for (int i = 0; i < ZN; i++)
            for (int j = 0; j < ZF; j++)
                mean[j] += r->s[i * ZF + j];
        for (int j = 0; j < ZF; j++)
            mean[j] /= ZN;
        for (int i = 0; i < ZN; i++)
            for (int j = 0; j < ZF; j++)
                var[j] += (r->s[i * ZF + j] - mean[j]) * (r->s[i * ZF + j] - mean[j]);
        for (int j = 0; j < ZF; j++)
            var[j] /= ZN;
        float qx[8][ZF];
        td_norm_queries(qx);
        for (int i = 0; i < 8; i++) {
            const float *lq = td_ops->q(d, qx[i], q);
            ref_norm_q(&t, p, mean, var, qx[i], ref, &mag);
            td_assert_q(lq, ref, ZA, mag, 1e-5, "query", i);
        }
        /* the clipped inputs really are clipped: far beyond gives the same Q */
        float far[ZF] = {1e6f, -3.05f, 7.0f};
        const float *lq = td_ops->q(d, far, q);
        ref_norm_q(&t, p, mean, var, qx[5], ref, &mag);
        td_assert_q(lq, ref, ZA, mag, 1e-5, "far", 0);
        td_free(d);
    }
}
END_TEST

/* through the agent: dlsched_q_values after dlsched_observe_transition.
   The agent's parameters are those of a DQN created here with the same
   seed (the agent seeds its generator with key 'seed'); the first check,
   before any state is seen, confirms that. */
START_TEST(test_normalize_agent)
{
    const char *spec = "algo=dqn n_features=3 n_actions=4 hidden=6,5 normalize=1 nstep=1 "
                       "dueling=1 replay=64 batch=4 learning_starts=" TD_NEVER " seed=21";
    dlsched_agent *ag = tst_agent(spec);
    dls_dqn *twin = td_new(spec, 21);
    static const int hid[2] = {6, 5};
    tnet t;
    tnet_layout(&t, ZF, ZA, hid, 2, 1);
    double p[256];
    td_to_double(dls_dqn_params(twin), p, t.n);
    td_rng = 99;
    float xs[ZN][ZF], nx[ZF], q[ZA];
    double ref[ZA], mag;
    dlsched_state_t st = tst_state(xs[0], ZF);
    td_norm_state(xs[0]);
    ck_assert_int_eq(dlsched_q_values(ag, &st, q, ZA), DLSCHED_OK);
    ref_forward_f(&t, p, xs[0], ref, &mag);
    td_assert_q(q, ref, ZA, mag, 1e-5, "before any state", 0);
    for (int i = 0; i < ZN; i++) {
        if (i)
            td_norm_state(xs[i]);
        td_norm_state(nx);
        dlsched_state_t s = tst_state(xs[i], ZF), n = tst_state(nx, ZF);
        ck_assert_int_eq(dlsched_observe_transition(ag, &s, (int32_t)td_below(ZA), 0.5f, &n,
                                                    i % 7 == 6 ? DLSCHED_OBS_TERMINAL : 0),
                         DLSCHED_OK);
    }
    ck_assert_uint_eq(tst_stats(ag).transitions_stored, ZN);
    ck_assert_uint_eq(tst_stats(ag).train_steps, 0);
    double mean[ZF] = {0}, var[ZF] = {0};
    for (int i = 0; i < ZN; i++)
        for (int j = 0; j < ZF; j++)
            mean[j] += xs[i][j];
    for (int j = 0; j < ZF; j++)
        mean[j] /= ZN;
    for (int i = 0; i < ZN; i++)
        for (int j = 0; j < ZF; j++)
            var[j] += (xs[i][j] - mean[j]) * (xs[i][j] - mean[j]);
    for (int j = 0; j < ZF; j++)
        var[j] /= ZN;
    float qx[8][ZF];
    td_norm_queries(qx);
    for (int i = 0; i < 8; i++) {
        dlsched_state_t s = tst_state(qx[i], ZF);
        ck_assert_int_eq(dlsched_q_values(ag, &s, q, ZA), DLSCHED_OK);
        ref_norm_q(&t, p, mean, var, qx[i], ref, &mag);
        td_assert_q(q, ref, ZA, mag, 1e-5, "agent query", i);
    }
    td_free(twin);
    dlsched_agent_free(ag);
}
END_TEST

/* ---- f. single-state forward ------------------------------------------------------------- */

typedef struct fcase {
    int nf, na, hid[TD_MAXL], L, dueling;
} fcase;

static const fcase fcases[] = {
    {5, 4, {7, 6}, 2, 0}, {5, 4, {7, 6}, 2, 1}, {1, 1, {3}, 1, 0},
    {1, 1, {3}, 1, 1},    {12, 9, {33, 17, 5}, 3, 0}, {12, 9, {33, 17, 5}, 3, 1},
    {3, 2, {64}, 1, 1},
};

START_TEST(test_forward1)
{
    const fcase *c = &fcases[_i];
    td_rng = 500 + (uint64_t)_i;
    char hid[64], spec[256];
    td_hidden_text(hid, sizeof hid, c->hid, c->L);
    snprintf(spec, sizeof spec,
             "n_features=%d n_actions=%d hidden=%s dueling=%d batch=3 replay=4", c->nf, c->na,
             hid, c->dueling);
    dls_dqn *d = td_new(spec, 1);
    tnet t;
    tnet_layout(&t, c->nf, c->na, c->hid, c->L, c->dueling);
    ck_assert_uint_eq(dls_dqn_n_params(d), t.n);
    uint32_t widths[TD_MAXL + 1];
    ck_assert_uint_eq(dls_dqn_widths(d, NULL), (uint32_t)c->L);
    ck_assert_uint_eq(dls_dqn_widths(d, widths), (uint32_t)c->L);
    for (int l = 0; l <= c->L; l++)
        ck_assert_uint_eq(widths[l], (uint32_t)t.w[l]);
    float *pf = dls_dqn_params(d);
    double *p = malloc(t.n * sizeof(double));
    ck_assert_ptr_nonnull(p);
    for (int rep = 0; rep < 3; rep++) {
        if (rep) /* rep 0: the library's own initialisation */
            td_rand_params(&t, pf);
        td_to_double(pf, p, t.n);
        for (int k = 0; k < 20; k++) {
            float x[TD_MAXW], q[TD_MAXW], q2[TD_MAXW];
            double ref[TD_MAXW];
            for (int j = 0; j < c->nf; j++)
                x[j] = (float)td_range(-3.0, 3.0);
            dls_dqn_forward1(d, x, q);
            double mag;
            ref_forward_f(&t, p, x, ref, &mag);
            td_assert_q(q, ref, c->na, mag, 1e-5, "forward1 state", k);
            /* normalize=0: the backend's q is the same forward pass */
            const float *bq = td_ops->q(d, x, q2);
            td_assert_q(bq, ref, c->na, mag, 1e-5, "backend q state", k);
        }
    }
    free(p);
    td_free(d);
}
END_TEST

/* He initialisation: biases 0, weights of standard deviation sqrt(2/fan_in) */
/* init=torch: every weight and bias of a layer ~ U(-b, b), b = 1/sqrt(fan_in)
   (PyTorch's nn.Linear default): within the bound, with the uniform law's
   variance b^2/3, both networks equal; init=he (the default) differs */
START_TEST(test_init_torch)
{
    dls_dqn *d = td_new("n_features=40 n_actions=30 hidden=50,60 init=torch batch=2 replay=4", 8);
    static const int hid[2] = {50, 60};
    tnet t;
    tnet_layout(&t, 40, 30, hid, 2, 0);
    tslice ts[2 * TD_MAXL + 4];
    int k = tnet_tensors(&t, ts);
    const float *p = dls_dqn_params(d);
    for (int i = 0; i < k; i++) {
        int fan_in = ts[i].fan_in ? ts[i].fan_in : ts[i - 1].fan_in; /* a bias follows its W */
        double b = 1.0 / sqrt(fan_in), ss = 0;
        int nonzero = 0;
        for (size_t j = 0; j < ts[i].len; j++) {
            double v = p[ts[i].off + j];
            ck_assert_msg(fabs(v) <= b * (1 + 1e-6), "%s[%zu] = %g outside +-%g", ts[i].name, j,
                          v, b);
            ss += v * v;
            nonzero += v != 0;
        }
        ck_assert_int_eq(nonzero, (int)ts[i].len);
        /* 30 to 3000 draws: the sample variance within 3.5 of its standard errors */
        double var = ss / (double)ts[i].len, want = b * b / 3;
        double se = want * sqrt(0.8 / (double)ts[i].len); /* sd of u^2 is 2/sqrt(45) b^2 */
        ck_assert_msg(fabs(var - want) < 3.5 * se + 1e-12, "%s: variance %g, expected %g",
                      ts[i].name, var, want);
    }
    ck_assert_mem_eq(dls_dqn_target(d), p, t.n * sizeof(float));
    dls_dqn *h = td_new("n_features=40 n_actions=30 hidden=50,60 batch=2 replay=4", 8);
    ck_assert(memcmp(dls_dqn_params(h), p, t.n * sizeof(float)) != 0);
    td_free(h);
    td_free(d);
}
END_TEST

START_TEST(test_init)
{
    dls_dqn *d = td_new("n_features=40 n_actions=30 hidden=50,60 dueling=1 batch=2 replay=4", 8);
    static const int hid[2] = {50, 60};
    tnet t;
    tnet_layout(&t, 40, 30, hid, 2, 1);
    tslice ts[2 * TD_MAXL + 4];
    int k = tnet_tensors(&t, ts);
    const float *p = dls_dqn_params(d);
    for (int i = 0; i < k; i++) {
        if (!ts[i].fan_in) {
            for (size_t j = 0; j < ts[i].len; j++)
                ck_assert_float_eq(p[ts[i].off + j], 0.0f);
            continue;
        }
        double ss = 0;
        for (size_t j = 0; j < ts[i].len; j++)
            ss += (double)p[ts[i].off + j] * p[ts[i].off + j];
        double sd = sqrt(ss / (double)ts[i].len), want = sqrt(2.0 / ts[i].fan_in);
        /* W_v has only 60 draws: a looser band */
        double tol = ts[i].len < 100 ? 0.35 : 0.1;
        ck_assert_msg(fabs(sd / want - 1) < tol, "%s: sd %g, expected %g", ts[i].name, sd, want);
    }
    ck_assert_mem_eq(dls_dqn_target(d), p, t.n * sizeof(float));
    td_free(d);
}
END_TEST

/* ---- limits: bad input through the public API --------------------------------------------- */

#define BF 3
#define BA 4

typedef struct snapshot {
    dlsched_stats_t st;
    float q[6][BA];
} snapshot;

static void take(dlsched_agent *ag, snapshot *s)
{
    memset(s, 0, sizeof *s);
    s->st = tst_stats(ag);
    for (int i = 0; i < 6; i++) {
        float x[BF] = {0.1f * (float)i, 1.0f - 0.3f * (float)i, 0.5f};
        dlsched_state_t st = tst_state(x, BF);
        ck_assert_int_eq(dlsched_q_values(ag, &st, s->q[i], BA), DLSCHED_OK);
    }
}

static void assert_unchanged(dlsched_agent *ag, const snapshot *before)
{
    snapshot now;
    take(ag, &now);
    ck_assert_mem_eq(&now.st, &before->st, sizeof now.st);
    ck_assert_mem_eq(now.q, before->q, sizeof now.q);
}

typedef struct bad_case {
    dlsched_state_t st;
    int code;
    const char *needle;
} bad_case;

START_TEST(test_bad_input_changes_nothing)
{
    /* normalisation on: a rejected call that reached the running mean
       would move every Q-value */
    dlsched_agent *ag = tst_agent("algo=dqn n_features=3 n_actions=4 hidden=8,8 batch=4 "
                                  "replay=64 learning_starts=4 train_every=2 nstep=2 "
                                  "normalize=1 seed=3 ticket_capacity=8 epsilon_start=0.5 "
                                  "epsilon_end=0.5 target_update=0.5 lr=0.01");
    td_rng = 6;
    for (int i = 0; i < 12; i++) {
        float x[BF], nx[BF];
        for (int j = 0; j < BF; j++) {
            x[j] = (float)td_unif();
            nx[j] = (float)td_unif();
        }
        dlsched_state_t s = tst_state(x, BF), n = tst_state(nx, BF);
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &s, 0, &d), DLSCHED_OK);
        ck_assert_int_eq(dlsched_observe(ag, d.ticket, (float)td_unif(), &n, 0), DLSCHED_OK);
    }
    ck_assert_uint_gt(tst_stats(ag).train_steps, 0);
    float px[BF] = {0.6f, 0.6f, 0.6f};
    dlsched_state_t ps = tst_state(px, BF);
    dlsched_decision_t pend;
    ck_assert_int_eq(dlsched_act(ag, &ps, 0, &pend), DLSCHED_OK);
    snapshot before;
    take(ag, &before);

    float good[BF] = {0.5f, 0.5f, 0.5f}, nanx[BF] = {0.5f, NAN, 0.5f};
    float infx[BF] = {-INFINITY, 0.5f, 0.5f}, pinf[BF] = {0.5f, 0.5f, INFINITY};
    uint8_t none[BA] = {0, 0, 0, 0}, m01[BA] = {1, 1, 0, 0};
    dlsched_state_t s = tst_state(good, BF), bad;
    dlsched_decision_t d;
    memset(&d, 0x5a, sizeof d);
    dlsched_decision_t untouched = d;
    float q[BA];

    bad_case cases[16];
    int n = 0;
    bad = tst_state(nanx, BF);
    cases[n++] = (bad_case){bad, DLSCHED_EINVAL, "feature 1 is NaN"};
    bad = tst_state(infx, BF);
    cases[n++] = (bad_case){bad, DLSCHED_EINVAL, "feature 0 is -Inf"};
    bad = tst_state(pinf, BF);
    cases[n++] = (bad_case){bad, DLSCHED_EINVAL, "feature 2 is +Inf"};
    bad = tst_state(good, 2);
    cases[n++] = (bad_case){bad, DLSCHED_EINVAL, "n_features is 2"};
    bad = tst_state(good, 4);
    cases[n++] = (bad_case){bad, DLSCHED_EINVAL, "n_features is 4"};
    bad = tst_state(NULL, BF);
    cases[n++] = (bad_case){bad, DLSCHED_EINVAL, "features is NULL"};
    bad = s;
    bad.reserved = 7;
    cases[n++] = (bad_case){bad, DLSCHED_EINVAL, "reserved is 7"};
    bad = s;
    bad.n_mask = 3;
    bad.mask = m01;
    cases[n++] = (bad_case){bad, DLSCHED_EINVAL, "n_mask is 3"};
    bad = s;
    bad.n_mask = 5;
    bad.mask = m01;
    cases[n++] = (bad_case){bad, DLSCHED_EINVAL, "n_mask is 5"};
    bad = s;
    bad.n_mask = BA;
    cases[n++] = (bad_case){bad, DLSCHED_EINVAL, "mask is NULL"};
    bad = s;
    bad.mask = m01;
    cases[n++] = (bad_case){bad, DLSCHED_EINVAL, "n_mask is 0"};
    bad = s;
    bad.n_mask = BA;
    bad.mask = none;
    cases[n++] = (bad_case){bad, DLSCHED_ENOACTION, "allows no action"};
    bad = s;
    bad.hint = BA;
    cases[n++] = (bad_case){bad, DLSCHED_EINVAL, "hint 4"};
    bad = s;
    bad.hint = -2;
    cases[n++] = (bad_case){bad, DLSCHED_EINVAL, "hint -2"};
    bad = s;
    bad.n_mask = BA;
    bad.mask = m01;
    bad.hint = 2;
    cases[n++] = (bad_case){bad, DLSCHED_EINVAL, "hint 2 is masked out"};

    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(dlsched_act(ag, &cases[i].st, 0, &d), cases[i].code);
        tst_assert_error_has(cases[i].needle);
        tst_assert_error_has("state");
        ck_assert_mem_eq(&d, &untouched, sizeof d);
        ck_assert_int_eq(dlsched_act(ag, &cases[i].st, DLSCHED_ACT_GREEDY, &d), cases[i].code);
        ck_assert_int_eq(dlsched_observe(ag, pend.ticket, 1.0f, &cases[i].st, 0), cases[i].code);
        tst_assert_error_has(cases[i].needle);
        tst_assert_error_has("next");
        ck_assert_int_eq(dlsched_observe_transition(ag, &cases[i].st, 0, 1.0f, &s, 0),
                         cases[i].code);
        tst_assert_error_has(cases[i].needle);
        ck_assert_int_eq(dlsched_observe_transition(ag, &s, 0, 1.0f, &cases[i].st, 0),
                         cases[i].code);
        tst_assert_error_has(cases[i].needle);
        if (cases[i].code == DLSCHED_EINVAL) {
            ck_assert_int_eq(dlsched_q_values(ag, &cases[i].st, q, BA), DLSCHED_EINVAL);
            tst_assert_error_has(cases[i].needle);
            ck_assert_int_eq(dlsched_observe(ag, pend.ticket, 1.0f, &cases[i].st,
                                             DLSCHED_OBS_TERMINAL),
                             DLSCHED_EINVAL);
        }
        assert_unchanged(ag, &before);
    }

    /* rewards */
    ck_assert_int_eq(dlsched_observe(ag, pend.ticket, NAN, &s, 0), DLSCHED_EINVAL);
    tst_assert_error_has("reward is NaN");
    ck_assert_int_eq(dlsched_observe(ag, pend.ticket, INFINITY, &s, 0), DLSCHED_EINVAL);
    tst_assert_error_has("reward is +Inf");
    ck_assert_int_eq(dlsched_observe(ag, pend.ticket, -INFINITY, NULL, DLSCHED_OBS_TERMINAL),
                     DLSCHED_EINVAL);
    tst_assert_error_has("reward is -Inf");
    ck_assert_int_eq(dlsched_observe_transition(ag, &s, 0, NAN, &s, 0), DLSCHED_EINVAL);
    tst_assert_error_has("reward is NaN");
    /* flags */
    ck_assert_int_eq(dlsched_act(ag, &s, 2u, &d), DLSCHED_EINVAL);
    tst_assert_error_has("flags 0x2");
    ck_assert_int_eq(dlsched_act(ag, &s, 0x80000000u, &d), DLSCHED_EINVAL);
    tst_assert_error_has("flags");
    ck_assert_int_eq(dlsched_observe(ag, pend.ticket, 1.0f, &s, 4u), DLSCHED_EINVAL);
    tst_assert_error_has("0x4");
    ck_assert_int_eq(dlsched_observe_transition(ag, &s, 0, 1.0f, &s, 8u), DLSCHED_EINVAL);
    tst_assert_error_has("0x8");
    /* both flags together: accepted (terminated wins), but not with 4u */
    ck_assert_int_eq(dlsched_observe(ag, pend.ticket, 1.0f, &s,
                                     DLSCHED_OBS_TERMINAL | DLSCHED_OBS_TRUNCATED | 4u),
                     DLSCHED_EINVAL);
    tst_assert_error_has("0x7");
    ck_assert_int_eq(dlsched_observe(ag, pend.ticket, 1.0f, NULL, 0), DLSCHED_EINVAL);
    tst_assert_error_has("next is NULL");
    ck_assert_int_eq(dlsched_observe(ag, pend.ticket, 1.0f, NULL, DLSCHED_OBS_TRUNCATED),
                     DLSCHED_EINVAL);
    tst_assert_error_has("next is NULL");
    /* actions, sizes, NULLs */
    ck_assert_int_eq(dlsched_observe_transition(ag, &s, BA, 1.0f, &s, 0), DLSCHED_EINVAL);
    tst_assert_error_has("action 4");
    ck_assert_int_eq(dlsched_observe_transition(ag, &s, -1, 1.0f, &s, 0), DLSCHED_EINVAL);
    tst_assert_error_has("action -1");
    dlsched_state_t sm = s;
    sm.n_mask = BA;
    sm.mask = m01;
    ck_assert_int_eq(dlsched_observe_transition(ag, &sm, 3, 1.0f, &s, 0), DLSCHED_EINVAL);
    tst_assert_error_has("action 3 is masked");
    ck_assert_int_eq(dlsched_q_values(ag, &s, q, BA - 1), DLSCHED_EINVAL);
    tst_assert_error_has("n_actions=4");
    ck_assert_int_eq(dlsched_q_values(ag, &s, NULL, BA), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_act(ag, NULL, 0, &d), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_act(ag, &s, 0, NULL), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_observe(ag, pend.ticket + 1000, 1.0f, &s, 0), DLSCHED_ETICKET);
    tst_assert_error_has("ticket");
    assert_unchanged(ag, &before);

    /* the pending ticket is still observable, once */
    ck_assert_int_eq(dlsched_observe(ag, pend.ticket, 1.0f, &s, 0), DLSCHED_OK);
    ck_assert_int_eq(dlsched_observe(ag, pend.ticket, 1.0f, &s, 0), DLSCHED_ETICKET);
    dlsched_agent_free(ag);
}
END_TEST

/* an empty next mask is fine when the episode ends */
START_TEST(test_terminal_next_mask_empty_ok)
{
    dlsched_agent *ag = tst_agent("algo=dqn n_features=3 n_actions=4 hidden=4 batch=2 "
                                  "replay=8 learning_starts=1 train_every=1 seed=2");
    float x[BF] = {0.1f, 0.2f, 0.3f};
    uint8_t none[BA] = {0};
    dlsched_state_t s = tst_state(x, BF), n = tst_state(x, BF);
    n.n_mask = BA;
    n.mask = none;
    ck_assert_int_eq(dlsched_observe_transition(ag, &s, 1, 1.0f, &n, DLSCHED_OBS_TERMINAL),
                     DLSCHED_OK);
    ck_assert_int_eq(dlsched_observe_transition(ag, &s, 1, 1.0f, &n, 0), DLSCHED_ENOACTION);
    tst_assert_error_has("next");
    ck_assert_int_eq(dlsched_observe_transition(ag, &s, 1, 1.0f, &n, DLSCHED_OBS_TRUNCATED),
                     DLSCHED_ENOACTION);
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_eq(st.transitions, 1);
    ck_assert_uint_eq(st.transitions_stored, 1);
    ck_assert_uint_eq(st.train_steps, 1);
    dlsched_agent_free(ag);
}
END_TEST

/* terminated and truncated together learn exactly as terminated alone (whose
   targets test_nstep_* check by hand), and not as truncated: three agents of
   one seed fed the same episodes, nstep=2, differing only in the last flag */
START_TEST(test_terminal_and_truncated_together)
{
    static const uint32_t last_flag[3] = {DLSCHED_OBS_TERMINAL | DLSCHED_OBS_TRUNCATED,
                                          DLSCHED_OBS_TERMINAL, DLSCHED_OBS_TRUNCATED};
    float q[3][BA];
    float probe[BF] = {0.3f, -0.2f, 0.5f};
    for (int k = 0; k < 3; k++) {
        dlsched_agent *ag = tst_agent("algo=dqn n_features=3 n_actions=4 hidden=8 batch=8 "
                                      "replay=64 nstep=2 gamma=0.9 learning_starts=8 "
                                      "train_every=1 seed=5");
        uint64_t r = 77;
        for (int ep = 0; ep < 12; ep++) {
            float x[BF], x2[BF];
            for (int i = 0; i < BF; i++)
                x[i] = (float)tst_unif(&r);
            for (int t = 0; t < 4; t++) {
                for (int i = 0; i < BF; i++)
                    x2[i] = (float)tst_unif(&r);
                dlsched_state_t s = tst_state(x, BF), n = tst_state(x2, BF);
                uint32_t fl = t == 3 ? last_flag[k] : 0u;
                ck_assert_int_eq(dlsched_observe_transition(ag, &s, (int32_t)tst_below(&r, BA),
                                                            1.0f + (float)t, &n, fl),
                                 DLSCHED_OK);
                memcpy(x, x2, sizeof x);
            }
        }
        dlsched_state_t p = tst_state(probe, BF);
        ck_assert_int_eq(dlsched_q_values(ag, &p, q[k], BA), DLSCHED_OK);
        dlsched_agent_free(ag);
    }
    ck_assert_mem_eq(q[0], q[1], sizeof q[0]);
    ck_assert(memcmp(q[0], q[2], sizeof q[0]) != 0);
}
END_TEST

/* status of dlsched_config_set on a fresh config; the message names key */
static int td_set_rc(const char *key, const char *value)
{
    dlsched_config *cfg = NULL;
    ck_assert_int_eq(dlsched_config_new(&cfg), DLSCHED_OK);
    int rc = dlsched_config_set(cfg, key, value);
    dlsched_config_free(cfg);
    return rc;
}

START_TEST(test_config_errors)
{
    /* hidden: every element a width >= 1 */
    ck_assert_int_eq(td_set_rc("hidden", "0"), DLSCHED_ECONFIG);
    tst_assert_error_has("hidden");
    ck_assert_int_eq(td_set_rc("hidden", "4,,4"), DLSCHED_ECONFIG);
    tst_assert_error_has("hidden");
    ck_assert_int_eq(td_set_rc("hidden", "4,0"), DLSCHED_ECONFIG);
    tst_assert_error_has("hidden");
    ck_assert_int_eq(td_set_rc("hidden", "4,"), DLSCHED_ECONFIG);
    tst_assert_error_has("hidden");
    ck_assert_int_eq(td_set_rc("hidden", ""), DLSCHED_ECONFIG);
    ck_assert_int_eq(td_set_rc("hidden", "-3"), DLSCHED_ECONFIG);
    ck_assert_int_eq(td_set_rc("hidden", "2.5"), DLSCHED_ECONFIG);
    ck_assert_int_eq(td_set_rc("hidden", "4,4"), DLSCHED_OK);
    /* the other DQN keys' bounds */
    ck_assert_int_eq(td_set_rc("nstep", "0"), DLSCHED_ECONFIG);
    tst_assert_error_has("nstep");
    ck_assert_int_eq(td_set_rc("batch", "0"), DLSCHED_ECONFIG);
    tst_assert_error_has("batch");
    ck_assert_int_eq(td_set_rc("target_update", "0"), DLSCHED_ECONFIG);
    tst_assert_error_has("target_update");
    ck_assert_int_eq(td_set_rc("huber_delta", "0"), DLSCHED_ECONFIG);
    ck_assert_int_eq(td_set_rc("dueling", "2"), DLSCHED_ECONFIG);
    ck_assert_int_eq(td_set_rc("adam_beta1", "1"), DLSCHED_ECONFIG);
    ck_assert_int_eq(td_set_rc("grad_clip", "-1"), DLSCHED_ECONFIG);

    /* creation */
    ck_assert_int_eq(tst_agent_rc("algo=dqn n_features=3 n_actions=2 replay=0"),
                     DLSCHED_ECONFIG);
    tst_assert_error_has("replay");
    ck_assert_int_eq(tst_agent_rc("algo=dqn n_features=3 n_actions=2 hidden=4 replay=8 "
                                  "target_update=2.5"),
                     DLSCHED_ECONFIG);
    tst_assert_error_has("target_update");
    tst_assert_error_has("2.5");
    ck_assert_int_eq(tst_agent_rc("algo=dqn n_features=3 n_actions=2 hidden=4 replay=8 "
                                  "target_update=3"),
                     DLSCHED_OK);
    ck_assert_int_eq(tst_agent_rc("algo=dqn n_features=3 n_actions=2 hidden=4 replay=8 "
                                  "target_update=0.999"),
                     DLSCHED_OK);
    /* 3 features, 2 actions: 8*3 + 12 + 2 = 38 bytes per transition */
    ck_assert_int_eq(tst_agent_rc("algo=dqn n_features=3 n_actions=2 hidden=4 replay=1000 "
                                  "max_replay_bytes=37999"),
                     DLSCHED_ECONFIG);
    tst_assert_error_has("max_replay_bytes");
    ck_assert_int_eq(tst_agent_rc("algo=dqn n_features=3 n_actions=2 hidden=4 replay=1000 "
                                  "max_replay_bytes=38000"),
                     DLSCHED_OK);
    /* with PER: 16 more bytes per transition */
    ck_assert_int_eq(tst_agent_rc("algo=dqn n_features=3 n_actions=2 hidden=4 replay=1000 "
                                  "per=1 max_replay_bytes=38000"),
                     DLSCHED_ECONFIG);
    tst_assert_error_has("max_replay_bytes");
    ck_assert_int_eq(tst_agent_rc("algo=dqn n_features=1048576 n_actions=2 hidden=4 "
                                  "replay=4294967295"),
                     DLSCHED_ECONFIG);
    tst_assert_error_has("max_replay_bytes");
    /* no CUDA backend in this build */
    ck_assert_int_eq(dlsched_backend_available("cuda"), 0);
    ck_assert_int_eq(tst_agent_rc("algo=dqn n_features=3 n_actions=2 hidden=4 replay=8 "
                                  "device=cuda"),
                     DLSCHED_ENODEVICE);
    tst_assert_error_has("cuda");
    ck_assert_int_eq(tst_agent_rc("algo=dqn n_features=3 n_actions=2 hidden=4 replay=8 "
                                  "device=auto"),
                     DLSCHED_OK);
}
END_TEST

Suite *suite_dqn(void)
{
    Suite *s = suite_create("dqn");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_grad_finite_differences, 0,
                        (int)(sizeof gcases / sizeof gcases[0]));
    tcase_add_loop_test(tc, test_grad_partial_batch, 0,
                        (int)(sizeof gcases_partial / sizeof gcases_partial[0]));
    tcase_add_test(tc, test_adam_two_steps);
    tcase_add_test(tc, test_adam_clip);
    tcase_add_test(tc, test_target_hard_copy);
    tcase_add_test(tc, test_target_polyak);
    tcase_add_test(tc, test_nstep_returns);
    tcase_add_test(tc, test_nstep_one);
    tcase_add_test(tc, test_nstep_other);
    tcase_add_test(tc, test_nstep_by_hand);
    tcase_add_test(tc, test_normalize_backend);
    tcase_add_test(tc, test_normalize_agent);
    tcase_add_loop_test(tc, test_forward1, 0, (int)(sizeof fcases / sizeof fcases[0]));
    tcase_add_test(tc, test_init);
    tcase_add_test(tc, test_init_torch);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    tc = tcase_create("limits");
    tcase_add_test(tc, test_bad_input_changes_nothing);
    tcase_add_test(tc, test_terminal_next_mask_empty_ok);
    tcase_add_test(tc, test_terminal_and_truncated_together);
    tcase_add_test(tc, test_config_errors);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}
