/*
 * dqn.c - deep Q-network learning (see dqn.h for the parameter layout)
 *
 * One gradient step on a minibatch of B transitions:
 *   1. online net forward on [s; s'] as one 2B-row pass (s' rows only for
 *      double DQN), target net forward on s' (B rows);
 *   2. y = R + disc * Q_target(s', a*), a* = argmax over allowed a' of
 *      Q_online(s', a') (double) or of Q_target(s', a') (plain);
 *   3. L = 1/B sum_i w_i huber(Q(s_i, a_i) - y_i), backward through the
 *      head and the ReLU trunk;
 *   4. global-norm clip, Adam, target update (hard copy or Polyak).
 * Every buffer is allocated in dls_dqn_new(); a step allocates nothing.
 */
#include "dqn.h"

#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/bytes.h"
#include "../core/config.h"
#include "gpu_ops.h"
#include "layout.h"

#define DLS_NORM_EPS 1e-8
#define DLS_NORM_CLIP 10.0f
#define DLS_PER_EPS 1e-6
/* models published to the act path: the current one, one being read by a
   slow reader, one to write */
#define DLS_SNAPSHOTS 3

typedef struct dls_snapshot {
    float *theta;
    float *nmean, *ninv;
    int norm_on;
    uint64_t version;
} dls_snapshot;

struct dls_dqn {
    const dls_ops *ops;
    char kern_note[256]; /* which CPU kernels and why (dls_cpu_ops_select) */
    uint32_t nf, na, L, maxw;
    uint32_t *w; /* widths w[0..L] */
    int dueling, dbl;
    size_t n_params;
    size_t *offW, *offb; /* trunk offsets */
    dls_layout hd; /* the head's offsets */
    float *theta, *theta_t, *grad, *adam_m, *adam_v;
    uint64_t steps; /* gradient steps applied */
    /* hyper-parameters */
    float lr, gamma, huber, clip, b1, b2, eps, tau;
    uint64_t hard_every;
    uint32_t B;
    uint64_t learning_starts, train_every, grad_steps;
    int threads;
    /* batch work buffers */
    float *xb;             /* 2B x nf: s rows, then s' rows */
    float **act_on;        /* per trunk layer: 2B x w[l+1] */
    float **act_t;         /* per trunk layer: B x w[l+1] */
    float *q_on, *q_t;     /* 2B x na, B x na */
    float *v_on, *v_t;     /* dueling: 2B, B */
    float *dh0, *dh1;      /* B x maxw, ping-pong */
    float *dq, *dv;        /* B x na, B */
    float *y, *qsa, *g, *td; /* B each */
    int32_t *ba;
    float *bret, *bdisc, *bw;
    uint8_t *bmask;        /* B x na */
    uint64_t *bidx;
    double *bprob;
    /* single-state work buffers */
    float *x1, *h1a, *h1b, *q1, *a1;
    /* input normalisation: running mean/variance (Welford) */
    int normalize;
    uint64_t n_seen;
    double *mean, *m2;
    float *nmean, *ninv;
    /* replay and its schedule */
    dls_replay rb;
    int per;
    double per_alpha, per_beta0;
    uint64_t per_beta_steps;
    uint64_t env_steps;
    /* n-step queue in observe order */
    uint32_t nstep, qn;
    float *qs, *qs2, *qr;
    int32_t *qa;
    uint8_t *qm2;
    uint8_t *qhasm;
    double last_loss;
    size_t bytes;
    int inline_train; /* learner=inline: learn() runs the training schedule */
    /* learner=thread: acting reads snap[cur] without the agent's lock. A
       reader pins a slot (ref) and re-checks cur; publish() writes only a
       slot that is neither current nor pinned, then makes it current. */
    dls_snapshot snap[DLS_SNAPSHOTS];
    atomic_uint snap_ref[DLS_SNAPSHOTS];
    atomic_uint snap_cur;
    /* device=cuda: training runs in the plugin's context gctx; the host keeps
       the replay ring (staging and checkpoints) and a copy of the weights
       for acting, refreshed from the device when read */
    const dls_gpu_ops *gpu;
    dls_gpu *gctx;
    uint64_t gpu_pending; /* ring rows written since the last upload */
    int gpu_stale;        /* 1: the device's weights are newer than theta */
    int gpu_stale_all;    /* 1: ... and target and Adam moments too */
    int gpu_failed;       /* a device call failed: training has stopped */
    char gpu_err[512];
};

/* ---- forward --------------------------------------------------------------- */

/* rows of x through the trunk (activations kept in act[l]) and the head */
static void dqn_forward(dls_dqn *d, const float *p, const float *x, int rows, float **act,
                        float *q, float *v)
{
    const dls_ops *o = d->ops;
    const float *in = x;
    for (uint32_t l = 0; l < d->L; l++) {
        int n = (int)d->w[l + 1], k = (int)d->w[l];
        /* H = relu(X W^T + b) */
        o->gemm(0, 1, rows, n, k, 1.0f, in, k, p + d->offW[l], k, 0.0f, act[l], n);
        o->bias_act(rows, n, p + d->offb[l], act[l], 1);
        in = act[l];
    }
    int h = (int)d->w[d->L], na = (int)d->na;
    if (!d->dueling) {
        o->gemm(0, 1, rows, na, h, 1.0f, in, h, p + d->hd.offWq, h, 0.0f, q, na);
        o->bias_act(rows, na, p + d->hd.offbq, q, 0);
        return;
    }
    /* Q = V + A - mean(A) */
    o->gemm(0, 1, rows, 1, h, 1.0f, in, h, p + d->hd.offWv, h, 0.0f, v, 1);
    o->bias_act(rows, 1, p + d->hd.offbv, v, 0);
    o->gemm(0, 1, rows, na, h, 1.0f, in, h, p + d->hd.offWa, h, 0.0f, q, na);
    o->bias_act(rows, na, p + d->hd.offba, q, 0);
    for (int r = 0; r < rows; r++) {
        float *qr = q + (size_t)r * na;
        float mean = 0;
        for (int a = 0; a < na; a++)
            mean += qr[a];
        mean /= (float)na;
        for (int a = 0; a < na; a++)
            qr[a] += v[r] - mean;
    }
}

/* one state through parameters p; h1a, h1b: maxw floats, a1: na floats */
static void dqn_forward1(const dls_dqn *d, const float *p, const float *x, float *q, float *h1a,
                         float *h1b, float *a1)
{
    const dls_ops *o = d->ops;
    const float *in = x;
    float *bufs[2] = {h1a, h1b};
    for (uint32_t l = 0; l < d->L; l++) {
        float *out = bufs[l & 1];
        o->dense1((int)d->w[l + 1], (int)d->w[l], p + d->offW[l], p + d->offb[l], in, out, 1);
        in = out;
    }
    int h = (int)d->w[d->L], na = (int)d->na;
    if (!d->dueling) {
        o->dense1(na, h, p + d->hd.offWq, p + d->hd.offbq, in, q, 0);
        return;
    }
    float v;
    o->dense1(1, h, p + d->hd.offWv, p + d->hd.offbv, in, &v, 0);
    o->dense1(na, h, p + d->hd.offWa, p + d->hd.offba, in, a1, 0);
    float mean = 0;
    for (int a = 0; a < na; a++)
        mean += a1[a];
    mean /= (float)na;
    for (int a = 0; a < na; a++)
        q[a] = v + a1[a] - mean;
}

void dls_dqn_forward1(dls_dqn *d, const float *x, float *q)
{
    dqn_forward1(d, d->theta, x, q, d->h1a, d->h1b, d->a1);
}

/* ---- loss and backward ----------------------------------------------------- */

static double dqn_grad_core(dls_dqn *d, uint32_t B, const int32_t *a, const float *ret,
                            const float *disc, const uint8_t *mask2, const float *w,
                            float *td_abs)
{
    const dls_ops *o = d->ops;
    const float *p = d->theta;
    int na = (int)d->na, h = (int)d->w[d->L];
    /* xb holds the B s rows, then the B s' rows. Online forward on s, and
       on s' too for the double-DQN argmax, as one 2B-row pass. */
    dqn_forward(d, p, d->xb, (int)(d->dbl ? 2 * B : B), d->act_on, d->q_on, d->v_on);
    const float *s2 = d->xb + (size_t)B * d->nf;
    dqn_forward(d, d->theta_t, s2, (int)B, d->act_t, d->q_t, d->v_t);

    /* y = R + disc * Q_target(s', a*) */
    for (uint32_t i = 0; i < B; i++) {
        double y = ret[i];
        if (disc[i] != 0.0f) {
            const uint8_t *m = mask2 ? mask2 + (size_t)i * na : NULL;
            const float *qsel = d->dbl ? d->q_on + (size_t)(B + i) * na : d->q_t + (size_t)i * na;
            int best = -1;
            for (int k = 0; k < na; k++)
                if ((!m || m[k]) && (best < 0 || qsel[k] > qsel[best]))
                    best = k;
            if (best >= 0)
                y += (double)disc[i] * d->q_t[(size_t)i * na + best];
        }
        d->y[i] = (float)y;
        d->qsa[i] = d->q_on[(size_t)i * na + a[i]];
    }
    double loss = o->huber_grad((int)B, d->qsa, d->y, w, d->huber, d->g, td_abs);

    /* dL/dQ: g_i at (i, a_i), zero elsewhere */
    memset(d->dq, 0, (size_t)B * na * sizeof(float));
    for (uint32_t i = 0; i < B; i++)
        d->dq[(size_t)i * na + a[i]] = d->g[i];

    float *gr = d->grad;
    const float *H = d->L ? d->act_on[d->L - 1] : d->xb; /* first B rows: the s rows */
    float *dH = d->dh0, *dHn = d->dh1;
    if (!d->dueling) {
        /* dWq = dQ^T H, dbq = colsum dQ, dH = dQ Wq */
        o->gemm(1, 0, na, h, (int)B, 1.0f, d->dq, na, H, h, 0.0f, gr + d->hd.offWq, h);
        o->bias_act_grad((int)B, na, NULL, d->dq, gr + d->hd.offbq, 0);
        if (d->L)
            o->gemm(0, 0, (int)B, h, na, 1.0f, d->dq, na, p + d->hd.offWq, h, 0.0f, dH, h);
    } else {
        /* dV_i = sum_a dQ_ia;  dA_ib = dQ_ib - dV_i / na */
        for (uint32_t i = 0; i < B; i++) {
            float *dqi = d->dq + (size_t)i * na;
            float s = 0;
            for (int k = 0; k < na; k++)
                s += dqi[k];
            d->dv[i] = s;
            for (int k = 0; k < na; k++)
                dqi[k] -= s / (float)na;
        }
        o->gemm(1, 0, 1, h, (int)B, 1.0f, d->dv, 1, H, h, 0.0f, gr + d->hd.offWv, h);
        o->bias_act_grad((int)B, 1, NULL, d->dv, gr + d->hd.offbv, 0);
        o->gemm(1, 0, na, h, (int)B, 1.0f, d->dq, na, H, h, 0.0f, gr + d->hd.offWa, h);
        o->bias_act_grad((int)B, na, NULL, d->dq, gr + d->hd.offba, 0);
        if (d->L) {
            /* dH = dV Wv + dA Wa */
            o->gemm(0, 0, (int)B, h, 1, 1.0f, d->dv, 1, p + d->hd.offWv, h, 0.0f, dH, h);
            o->gemm(0, 0, (int)B, h, na, 1.0f, d->dq, na, p + d->hd.offWa, h, 1.0f, dH, h);
        }
    }
    for (uint32_t l = d->L; l-- > 0;) {
        int n = (int)d->w[l + 1], k = (int)d->w[l];
        const float *X = l ? d->act_on[l - 1] : d->xb;
        /* dZ = dH * [H > 0];  dW = dZ^T X;  db = colsum dZ;  dX = dZ W */
        o->bias_act_grad((int)B, n, d->act_on[l], dH, gr + d->offb[l], 1);
        o->gemm(1, 0, n, k, (int)B, 1.0f, dH, n, X, k, 0.0f, gr + d->offW[l], k);
        if (l) {
            o->gemm(0, 0, (int)B, k, n, 1.0f, dH, n, p + d->offW[l], k, 0.0f, dHn, k);
            float *t = dH;
            dH = dHn;
            dHn = t;
        }
    }
    return loss;
}

double dls_dqn_grad(dls_dqn *d, const dls_batch *b, float *td_abs)
{
    uint32_t B = b->n;
    size_t row = (size_t)d->nf * sizeof(float);
    memcpy(d->xb, b->s, B * row);
    memcpy(d->xb + (size_t)B * d->nf, b->s2, B * row);
    return dqn_grad_core(d, B, b->a, b->ret, b->disc, b->mask2, b->w, td_abs);
}

void dls_dqn_apply(dls_dqn *d)
{
    const dls_ops *o = d->ops;
    d->steps++;
    /* clip to the global norm: g *= min(1, clip / ||g||) */
    float gscale = 1.0f;
    if (d->clip > 0.0f) {
        double norm = sqrt(o->sumsq(d->n_params, d->grad));
        if (norm > d->clip)
            gscale = (float)(d->clip / norm);
    }
    o->adam(d->n_params, d->theta, d->grad, d->adam_m, d->adam_v, d->lr, d->b1, d->b2, d->eps,
            d->steps, gscale);
    /* target: theta' = tau theta + (1 - tau) theta'  or a copy every N steps */
    if (d->hard_every == 0)
        o->axpby(d->n_params, d->tau, d->theta, 1.0f - d->tau, d->theta_t);
    else if (d->steps % d->hard_every == 0)
        o->axpby(d->n_params, 1.0f, d->theta, 0.0f, d->theta_t);
}

/* ---- normalisation --------------------------------------------------------- */

static void dqn_norm_update(dls_dqn *d, const float *x)
{
    d->n_seen++;
    for (uint32_t j = 0; j < d->nf; j++) {
        /* Welford: mean += (x - mean)/n;  m2 += (x - mean_old)(x - mean_new) */
        double delta = x[j] - d->mean[j];
        d->mean[j] += delta / (double)d->n_seen;
        d->m2[j] += delta * (x[j] - d->mean[j]);
    }
    if (d->n_seen < 2)
        return;
    for (uint32_t j = 0; j < d->nf; j++) {
        double var = d->m2[j] / (double)d->n_seen;
        d->nmean[j] = (float)d->mean[j];
        d->ninv[j] = (float)(1.0 / sqrt(var + DLS_NORM_EPS));
    }
}

/* x_norm = clamp((x - mean) / sqrt(var + 1e-8), -10, 10); identity before
   two states were seen */
static void dqn_normalize_with(uint32_t nf, int on, const float *mean, const float *inv,
                               const float *x, float *out)
{
    if (!on) {
        memcpy(out, x, nf * sizeof(float));
        return;
    }
    for (uint32_t j = 0; j < nf; j++) {
        float v = (x[j] - mean[j]) * inv[j];
        out[j] = v > DLS_NORM_CLIP ? DLS_NORM_CLIP : (v < -DLS_NORM_CLIP ? -DLS_NORM_CLIP : v);
    }
}

static void dqn_normalize(const dls_dqn *d, const float *x, float *out)
{
    dqn_normalize_with(d->nf, d->normalize && d->n_seen >= 2, d->nmean, d->ninv, x, out);
}

/* ---- training on the device (device=cuda) ---------------------------------- */

static void dqn_gpu_fail(dls_dqn *d, const char *what)
{
    if (!d->gpu_failed)
        snprintf(d->gpu_err, sizeof d->gpu_err, "%s: %s", what, d->gpu->error(d->gctx));
    d->gpu_failed = 1;
}

/* a row was written at the ring position before rb.pos */
static void dqn_gpu_stored(dls_dqn *d)
{
    if (d->gpu && d->gpu_pending < d->rb.cap)
        d->gpu_pending++;
}

/* the rows written since the last upload, in one batch (two pieces where
   they wrap around the ring) */
static int dqn_gpu_upload(dls_dqn *d)
{
    const dls_replay *r = &d->rb;
    uint64_t n = d->gpu_pending, cap = r->cap;
    if (n == 0)
        return 0;
    uint64_t first = (r->pos + cap - n) % cap, n1 = cap - first < n ? cap - first : n;
    if (d->gpu->put_replay(d->gctx, first, n1, r->s, r->s2, r->a, r->ret, r->disc, r->mask2) != 0 ||
        (n > n1 &&
         d->gpu->put_replay(d->gctx, 0, n - n1, r->s, r->s2, r->a, r->ret, r->disc, r->mask2) != 0))
        return -1;
    d->gpu_pending = 0;
    return 0;
}

/* steps gradient steps on the device: one draw of the agent's generator
   seeds the call's minibatch indices */
static uint64_t dqn_gpu_train(dls_dqn *d, dls_rng *rng, uint64_t steps, double *loss)
{
    if (d->gpu_failed)
        return 0;
    if (dqn_gpu_upload(d) != 0) {
        dqn_gpu_fail(d, "uploading replay transitions to the GPU");
        return 0;
    }
    int norm_on = d->normalize && d->n_seen >= 2;
    dls_gpu_train_args args = {steps, d->rb.count, dls_rng_next(rng),
                               norm_on ? d->nmean : NULL, norm_on ? d->ninv : NULL};
    double l = 0;
    if (d->gpu->train(d->gctx, &args, &l) != 0) {
        dqn_gpu_fail(d, "a training step on the GPU");
        return 0;
    }
    d->steps += steps;
    d->gpu_stale = d->gpu_stale_all = 1;
    d->last_loss = l;
    *loss = l;
    return steps;
}

/* the online weights back on the host (for acting and publishing); on
   failure the host keeps the weights it has */
static void dqn_gpu_pull(dls_dqn *d)
{
    if (!d->gpu || !d->gpu_stale || d->gpu_failed)
        return;
    if (d->gpu->get_state(d->gctx, d->theta, NULL, NULL, NULL) != 0) {
        dqn_gpu_fail(d, "copying the weights back from the GPU");
        return;
    }
    d->gpu_stale = 0;
}

/* ---- one training step from replay ---------------------------------------- */

static double dqn_step(dls_dqn *d, dls_rng *rng)
{
    dls_replay *r = &d->rb;
    uint32_t B = d->B, nf = d->nf, na = d->na;
    const float *w = NULL;
    if (d->per) {
        dls_replay_sample_per(r, rng, B, d->bidx, d->bprob);
        /* w_i = (N P_i)^-beta / max_j w_j, beta annealed linearly to 1 */
        double frac = (double)d->steps / (double)d->per_beta_steps;
        double beta = d->per_beta0 + (1.0 - d->per_beta0) * (frac < 1.0 ? frac : 1.0);
        double wmax = 0;
        for (uint32_t i = 0; i < B; i++) {
            double wi = pow((double)r->count * d->bprob[i], -beta);
            d->bw[i] = (float)wi;
            if (wi > wmax)
                wmax = wi;
        }
        for (uint32_t i = 0; i < B; i++)
            d->bw[i] = (float)(d->bw[i] / wmax);
        w = d->bw;
    } else {
        dls_replay_sample_uniform(r, rng, B, d->bidx);
    }
    float *s2rows = d->xb + (size_t)B * nf;
    for (uint32_t i = 0; i < B; i++) {
        uint64_t j = d->bidx[i];
        dqn_normalize(d, r->s + j * nf, d->xb + (size_t)i * nf);
        dqn_normalize(d, r->s2 + j * nf, s2rows + (size_t)i * nf);
        d->ba[i] = r->a[j];
        d->bret[i] = r->ret[j];
        d->bdisc[i] = r->disc[j];
        memcpy(d->bmask + (size_t)i * na, r->mask2 + j * na, na);
    }
    double loss = dqn_grad_core(d, B, d->ba, d->bret, d->bdisc, d->bmask, w, d->td);
    dls_dqn_apply(d);
    if (d->per)
        for (uint32_t i = 0; i < B; i++)
            dls_replay_set_priority(r, d->bidx[i], pow(d->td[i] + DLS_PER_EPS, d->per_alpha));
    return loss;
}

static uint64_t dqn_train_n(dls_dqn *d, dls_rng *rng, uint64_t steps, double *loss)
{
    if (d->rb.count == 0 || steps == 0)
        return 0;
    if (d->gpu)
        return dqn_gpu_train(d, rng, steps, loss);
    /* the GEMMs of these steps may use up to cpu_threads OpenBLAS threads,
       each as many as its size pays for (the backend's rule: cpu_ops.c) */
    if (d->threads != 1)
        d->ops->set_threads(d->threads);
    for (uint64_t k = 0; k < steps; k++)
        d->last_loss = dqn_step(d, rng);
    if (d->threads != 1) /* acting stays single-threaded */
        d->ops->set_threads(1);
    *loss = d->last_loss;
    return steps;
}

/* ---- n-step returns in observe order --------------------------------------- */

/* emit queue entry i with return over entries i..e, bootstrapping from e's
   next state unless terminal */
static void dqn_emit(dls_dqn *d, uint32_t i, uint32_t e, int terminal)
{
    double R = 0, g = 1;
    for (uint32_t k = i; k <= e; k++) {
        R += g * d->qr[k];
        g *= d->gamma;
    }
    const uint8_t *m = d->qhasm[e] ? d->qm2 + (size_t)e * d->na : NULL;
    dls_replay_add(&d->rb, d->qs + (size_t)i * d->nf, d->qa[i], (float)R,
                   terminal ? 0.0f : (float)g, terminal ? NULL : d->qs2 + (size_t)e * d->nf, m);
    dqn_gpu_stored(d);
}

static void dqn_push(dls_dqn *d, const dls_transition *t)
{
    if (d->nstep == 1) { /* one-step: straight into the buffer */
        dls_replay_add(&d->rb, t->key, t->action, t->reward, t->terminal ? 0.0f : d->gamma,
                       t->terminal ? NULL : t->next_key, t->terminal ? NULL : t->next_mask);
        dqn_gpu_stored(d);
        return;
    }
    uint32_t k = d->qn++;
    memcpy(d->qs + (size_t)k * d->nf, t->key, d->nf * sizeof(float));
    d->qa[k] = t->action;
    d->qr[k] = t->reward;
    d->qhasm[k] = t->next_mask != NULL;
    if (!t->terminal)
        memcpy(d->qs2 + (size_t)k * d->nf, t->next_key, d->nf * sizeof(float));
    if (t->next_mask)
        memcpy(d->qm2 + (size_t)k * d->na, t->next_mask, d->na);
    if (t->terminal || t->truncated) {
        /* the episode ends here: flush every pending entry */
        for (uint32_t i = 0; i < d->qn; i++)
            dqn_emit(d, i, d->qn - 1, (int)t->terminal);
        d->qn = 0;
    } else if (d->qn == d->nstep) {
        dqn_emit(d, 0, d->qn - 1, 0);
        if (--d->qn == 0)
            return;
        memmove(d->qs, d->qs + d->nf, (size_t)d->qn * d->nf * sizeof(float));
        memmove(d->qs2, d->qs2 + d->nf, (size_t)d->qn * d->nf * sizeof(float));
        memmove(d->qa, d->qa + 1, d->qn * sizeof(int32_t));
        memmove(d->qr, d->qr + 1, d->qn * sizeof(float));
        memmove(d->qhasm, d->qhasm + 1, d->qn);
        memmove(d->qm2, d->qm2 + d->na, (size_t)d->qn * d->na);
    }
}

/* ---- backend callbacks ------------------------------------------------------ */

static void dqn_encode(void *impl, const float *x, void *key)
{
    const dls_dqn *d = impl;
    memcpy(key, x, d->nf * sizeof(float));
}

static const float *dqn_q(void *impl, const void *key, float *scratch)
{
    dls_dqn *d = impl;
    (void)scratch;
    dqn_gpu_pull(d);
    dqn_normalize(d, key, d->x1);
    dls_dqn_forward1(d, d->x1, d->q1);
    return d->q1;
}

/* scratch of q_shared: x (nf) | h1a, h1b (maxw) | a1, q (na) */
static size_t dqn_scratch_floats(const void *impl)
{
    const dls_dqn *d = impl;
    return d->nf + 2 * (size_t)d->maxw + 2 * (size_t)d->na;
}

static const float *dqn_q_shared(void *impl, const void *key, float *scratch, uint64_t *version)
{
    dls_dqn *d = impl;
    unsigned c;
    for (;;) { /* pin the current snapshot */
        c = atomic_load(&d->snap_cur);
        atomic_fetch_add(&d->snap_ref[c], 1);
        if (atomic_load(&d->snap_cur) == c)
            break;
        atomic_fetch_sub(&d->snap_ref[c], 1);
    }
    const dls_snapshot *s = &d->snap[c];
    float *x = scratch, *h1a = x + d->nf, *h1b = h1a + d->maxw, *a1 = h1b + d->maxw;
    float *q = a1 + d->na;
    dqn_normalize_with(d->nf, s->norm_on, s->nmean, s->ninv, key, x);
    dqn_forward1(d, s->theta, x, q, h1a, h1b, a1);
    *version = s->version;
    atomic_fetch_sub(&d->snap_ref[c], 1);
    return q;
}

static int dqn_publish(void *impl)
{
    dls_dqn *d = impl;
    dqn_gpu_pull(d);
    unsigned cur = atomic_load(&d->snap_cur);
    for (unsigned k = 0; k < DLS_SNAPSHOTS; k++) {
        if (k == cur || atomic_load(&d->snap_ref[k]) != 0)
            continue;
        dls_snapshot *s = &d->snap[k];
        memcpy(s->theta, d->theta, d->n_params * sizeof(float));
        memcpy(s->nmean, d->nmean, d->nf * sizeof(float));
        memcpy(s->ninv, d->ninv, d->nf * sizeof(float));
        s->norm_on = d->normalize && d->n_seen >= 2;
        s->version = d->steps;
        atomic_store(&d->snap_cur, k);
        return 1;
    }
    /* every other slot is pinned by a reader: publish at the next call */
    return 0;
}

static uint64_t dqn_learn(void *impl, const dls_transition *t, dls_rng *rng, double *loss)
{
    dls_dqn *d = impl;
    if (d->normalize)
        dqn_norm_update(d, t->key);
    dqn_push(d, t);
    d->env_steps++;
    if (!d->inline_train || d->env_steps < d->learning_starts ||
        d->env_steps % d->train_every != 0)
        return 0;
    return dqn_train_n(d, rng, d->grad_steps, loss);
}

static uint64_t dqn_train(void *impl, dls_rng *rng, uint64_t steps, double *loss)
{
    return dqn_train_n(impl, rng, steps, loss);
}

static uint64_t dqn_stored(const void *impl)
{
    return ((const dls_dqn *)impl)->rb.count;
}

static size_t dqn_memory(const void *impl)
{
    const dls_dqn *d = impl;
    return d->bytes + (d->gctx ? d->gpu->device_bytes(d->gctx) : 0);
}

static int dqn_sync(void *impl)
{
    dls_dqn *d = impl;
    if (!d->gpu)
        return DLSCHED_OK;
    /* after a failure the device's state is unknown: nothing to save */
    DLS_FAIL_IF(d->gpu_failed, DLSCHED_EBACKEND, "%s", d->gpu_err);
    if (!d->gpu_stale_all)
        return DLSCHED_OK;
    if (d->gpu->get_state(d->gctx, d->theta, d->theta_t, d->adam_m, d->adam_v) != 0) {
        dqn_gpu_fail(d, "copying the model back from the GPU");
        return dls_fail(DLSCHED_EBACKEND, "%s", d->gpu_err);
    }
    d->gpu_stale = d->gpu_stale_all = 0;
    return DLSCHED_OK;
}

static const char *dqn_failure(const void *impl)
{
    const dls_dqn *d = impl;
    return d->gpu_failed ? d->gpu_err : NULL;
}

static void dqn_destroy(void *impl)
{
    dls_dqn *d = impl;
    if (!d)
        return;
    if (d->gctx)
        d->gpu->destroy(d->gctx);
    if (d->act_on)
        for (uint32_t l = 0; l < d->L; l++)
            free(d->act_on[l]);
    if (d->act_t)
        for (uint32_t l = 0; l < d->L; l++)
            free(d->act_t[l]);
    for (int k = 0; k < DLS_SNAPSHOTS; k++) {
        free(d->snap[k].theta);
        free(d->snap[k].nmean);
        free(d->snap[k].ninv);
    }
    void *bufs[] = {d->w, d->offW, d->offb, d->theta, d->theta_t, d->grad, d->adam_m, d->adam_v,
                    d->xb, d->act_on, d->act_t, d->q_on, d->q_t, d->v_on, d->v_t, d->dh0, d->dh1,
                    d->dq, d->dv, d->y, d->qsa, d->g, d->td, d->ba, d->bret, d->bdisc, d->bw,
                    d->bmask, d->bidx, d->bprob, d->x1, d->h1a, d->h1b, d->q1, d->a1, d->mean,
                    d->m2, d->nmean, d->ninv, d->qs, d->qs2, d->qr, d->qa, d->qm2, d->qhasm};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    dls_replay_free(&d->rb);
    free(d);
}

/* ---- checkpoint ----------------------------------------------------------------- */

/* section: parameters, target, Adam moments, step counters, normaliser,
   n-step queue; replay capacity, count, position and (with_replay) its
   arrays and priorities */
static void dqn_save(const void *impl, dls_wbuf *w, int with_replay)
{
    const dls_dqn *d = impl;
    size_t n = d->n_params, fs = sizeof(float);
    dls_w_u64(w, n);
    dls_w_bytes(w, d->theta, n * fs);
    dls_w_bytes(w, d->theta_t, n * fs);
    dls_w_bytes(w, d->adam_m, n * fs);
    dls_w_bytes(w, d->adam_v, n * fs);
    dls_w_u64(w, d->steps);
    dls_w_u64(w, d->env_steps);
    dls_w_f64(w, d->last_loss);
    dls_w_u64(w, d->n_seen);
    dls_w_bytes(w, d->mean, d->nf * sizeof(double));
    dls_w_bytes(w, d->m2, d->nf * sizeof(double));
    dls_w_u32(w, d->nstep);
    dls_w_u32(w, d->qn);
    dls_w_bytes(w, d->qs, (size_t)d->nstep * d->nf * fs);
    dls_w_bytes(w, d->qs2, (size_t)d->nstep * d->nf * fs);
    dls_w_bytes(w, d->qr, d->nstep * fs);
    dls_w_bytes(w, d->qa, d->nstep * sizeof(int32_t));
    dls_w_bytes(w, d->qm2, (size_t)d->nstep * d->na);
    dls_w_bytes(w, d->qhasm, d->nstep);
    const dls_replay *r = &d->rb;
    uint64_t count = with_replay ? r->count : 0;
    dls_w_u64(w, r->cap);
    dls_w_u64(w, count);
    dls_w_u64(w, with_replay ? r->pos : 0);
    if (count) {
        dls_w_bytes(w, r->s, r->cap * r->nf * fs);
        dls_w_bytes(w, r->s2, r->cap * r->nf * fs);
        dls_w_bytes(w, r->a, r->cap * sizeof(int32_t));
        dls_w_bytes(w, r->ret, r->cap * fs);
        dls_w_bytes(w, r->disc, r->cap * fs);
        dls_w_bytes(w, r->mask2, r->cap * r->na);
        dls_w_u32(w, (uint32_t)r->per);
        if (r->per) {
            dls_w_f64(w, r->max_priority);
            dls_w_bytes(w, r->tree + r->tree_n, r->cap * sizeof(double));
        }
    }
}

static int dqn_all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

static int dqn_finite(const void *impl)
{
    const dls_dqn *d = impl;
    size_t n = d->n_params;
    if (!dqn_all_finite(d->theta, n) || !dqn_all_finite(d->theta_t, n) ||
        !dqn_all_finite(d->adam_m, n) || !dqn_all_finite(d->adam_v, n) || !isfinite(d->last_loss))
        return 0;
    for (uint32_t j = 0; j < d->nf; j++)
        if (!isfinite(d->mean[j]) || !isfinite(d->m2[j]))
            return 0;
    return 1;
}

static int dqn_load(void *impl, dls_rbuf *r, int with_replay)
{
    dls_dqn *d = impl;
    size_t n = d->n_params, fs = sizeof(float);
    uint64_t np = dls_r_u64(r);
    DLS_FAIL_IF(r->bad || np != n, DLSCHED_EFORMAT,
                "checkpoint: the network has %llu parameters but the configuration gives %zu",
                (unsigned long long)np, n);
    dls_r_array(r, d->theta, n, fs);
    dls_r_array(r, d->theta_t, n, fs);
    dls_r_array(r, d->adam_m, n, fs);
    dls_r_array(r, d->adam_v, n, fs);
    DLS_FAIL_IF(r->bad, DLSCHED_EFORMAT, "checkpoint: the network is truncated");
    DLS_FAIL_IF(!dqn_all_finite(d->theta, n) || !dqn_all_finite(d->theta_t, n) ||
                    !dqn_all_finite(d->adam_m, n) || !dqn_all_finite(d->adam_v, n),
                DLSCHED_EFORMAT, "checkpoint: a network parameter is not finite");
    for (size_t i = 0; i < n; i++)
        DLS_FAIL_IF(d->adam_v[i] < 0, DLSCHED_EFORMAT,
                    "checkpoint: Adam's second moment %zu is negative", i);
    d->steps = dls_r_u64(r);
    d->env_steps = dls_r_u64(r);
    d->last_loss = dls_r_f64(r);
    d->n_seen = dls_r_u64(r);
    dls_r_array(r, d->mean, d->nf, sizeof(double));
    dls_r_array(r, d->m2, d->nf, sizeof(double));
    uint32_t nstep = dls_r_u32(r), qn = dls_r_u32(r);
    DLS_FAIL_IF(r->bad || nstep != d->nstep || qn >= nstep,
                DLSCHED_EFORMAT, "checkpoint: n-step queue of %u for nstep=%u does not fit",
                qn, nstep);
    dls_r_array(r, d->qs, (uint64_t)nstep * d->nf, fs);
    dls_r_array(r, d->qs2, (uint64_t)nstep * d->nf, fs);
    dls_r_array(r, d->qr, nstep, fs);
    dls_r_array(r, d->qa, nstep, sizeof(int32_t));
    dls_r_array(r, d->qm2, (uint64_t)nstep * d->na, 1);
    dls_r_array(r, d->qhasm, nstep, 1);
    DLS_FAIL_IF(r->bad, DLSCHED_EFORMAT, "checkpoint: the learner state is truncated");
    for (uint32_t j = 0; j < d->nf; j++)
        DLS_FAIL_IF(!isfinite(d->mean[j]) || !isfinite(d->m2[j]) || d->m2[j] < 0,
                    DLSCHED_EFORMAT, "checkpoint: normaliser statistics of feature %u are bad", j);
    DLS_FAIL_IF(!isfinite(d->last_loss), DLSCHED_EFORMAT, "checkpoint: the loss is not finite");
    for (uint32_t k = 0; k < qn; k++)
        DLS_FAIL_IF(d->qa[k] < 0 || (uint32_t)d->qa[k] >= d->na || !isfinite(d->qr[k]) ||
                        d->qhasm[k] > 1 ||
                        !dqn_all_finite(d->qs + (size_t)k * d->nf, d->nf) ||
                        !dqn_all_finite(d->qs2 + (size_t)k * d->nf, d->nf),
                    DLSCHED_EFORMAT, "checkpoint: n-step entry %u is out of range", k);
    d->qn = qn;

    dls_replay *rb = &d->rb;
    uint64_t cap = dls_r_u64(r), count = dls_r_u64(r), pos = dls_r_u64(r);
    DLS_FAIL_IF(r->bad || cap != rb->cap || count > cap || pos >= cap ||
                    (count < cap && pos != count) || (!with_replay && count),
                DLSCHED_EFORMAT,
                "checkpoint: replay capacity %llu, count %llu, position %llu do not fit the "
                "configured replay=%llu",
                (unsigned long long)cap, (unsigned long long)count, (unsigned long long)pos,
                (unsigned long long)rb->cap);
    if (count) {
        dls_r_array(r, rb->s, cap * rb->nf, fs);
        dls_r_array(r, rb->s2, cap * rb->nf, fs);
        dls_r_array(r, rb->a, cap, sizeof(int32_t));
        dls_r_array(r, rb->ret, cap, fs);
        dls_r_array(r, rb->disc, cap, fs);
        dls_r_array(r, rb->mask2, cap, rb->na);
        uint32_t per = dls_r_u32(r);
        DLS_FAIL_IF(r->bad || (int)per != rb->per, DLSCHED_EFORMAT,
                    "checkpoint: the replay buffer is truncated or its per flag differs");
        for (uint64_t i = 0; i < count; i++) {
            uint32_t allowed = 0, bad = 0;
            for (uint32_t b = 0; b < rb->na; b++) {
                uint8_t m = rb->mask2[i * rb->na + b];
                allowed += m == 1;
                bad |= m > 1;
            }
            DLS_FAIL_IF(rb->a[i] < 0 || (uint32_t)rb->a[i] >= rb->na || !isfinite(rb->ret[i]) ||
                            !(rb->disc[i] >= 0 && rb->disc[i] <= 1) || bad ||
                            (rb->disc[i] > 0 && allowed == 0),
                        DLSCHED_EFORMAT, "checkpoint: replay transition %llu is out of range",
                        (unsigned long long)i);
        }
        DLS_FAIL_IF(!dqn_all_finite(rb->s, count * rb->nf) ||
                        !dqn_all_finite(rb->s2, count * rb->nf),
                    DLSCHED_EFORMAT, "checkpoint: a stored state is not finite");
        if (per) {
            rb->max_priority = dls_r_f64(r);
            DLS_FAIL_IF(dls_r_array(r, rb->tree + rb->tree_n, cap, sizeof(double)) != 0,
                        DLSCHED_EFORMAT, "checkpoint: the priorities are truncated");
            DLS_FAIL_IF(!(rb->max_priority > 0) || !isfinite(rb->max_priority),
                        DLSCHED_EFORMAT, "checkpoint: the largest priority is bad");
            for (uint64_t i = 0; i < cap; i++) {
                double p = rb->tree[rb->tree_n + i];
                DLS_FAIL_IF(!(p >= 0) || !isfinite(p) || (i >= count && p != 0) ||
                                (i < count && p <= 0),
                            DLSCHED_EFORMAT, "checkpoint: priority %llu is bad",
                            (unsigned long long)i);
            }
            for (uint64_t node = rb->tree_n - 1; node >= 1; node--)
                rb->tree[node] = rb->tree[2 * node] + rb->tree[2 * node + 1];
        }
    }
    rb->count = count;
    rb->pos = count ? pos : 0;
    /* the normaliser's float copies follow from the statistics, and must
       be usable floats */
    if (d->n_seen >= 2)
        for (uint32_t j = 0; j < d->nf; j++) {
            double var = d->m2[j] / (double)d->n_seen;
            d->nmean[j] = (float)d->mean[j];
            d->ninv[j] = (float)(1.0 / sqrt(var + DLS_NORM_EPS));
            DLS_FAIL_IF(!isfinite(d->nmean[j]) || !isfinite(d->ninv[j]) || !(d->ninv[j] > 0),
                        DLSCHED_EFORMAT,
                        "checkpoint: normaliser statistics of feature %u are out of float range",
                        j);
        }
    if (d->gpu) { /* the host state is the truth now: to the device with it */
        DLS_FAIL_IF(d->gpu_failed, DLSCHED_EBACKEND, "%s", d->gpu_err);
        if (d->gpu->set_state(d->gctx, d->theta, d->theta_t, d->adam_m, d->adam_v, d->steps) != 0) {
            dqn_gpu_fail(d, "copying the loaded model to the GPU");
            return dls_fail(DLSCHED_EBACKEND, "%s", d->gpu_err);
        }
        d->gpu_stale = d->gpu_stale_all = 0;
        d->gpu_pending = rb->count; /* uploaded before the next step */
    }
    dqn_publish(d); /* nobody reads a snapshot of an agent being loaded */
    return DLSCHED_OK;
}

/* ---- exchange: the acting weights (dlsched-exchange(5)) ------------------------- */

/* u64 parameter count, the parameters (float32), u32 normaliser on, the
   normaliser's mean and inverse deviation (n_features float32 each) */
static void dqn_weights_save(void *impl, dls_wbuf *w)
{
    dls_dqn *d = impl;
    dqn_gpu_pull(d);
    dls_w_u64(w, d->n_params);
    dls_w_bytes(w, d->theta, d->n_params * sizeof(float));
    dls_w_u32(w, (uint32_t)(d->normalize && d->n_seen >= 2));
    dls_w_bytes(w, d->nmean, d->nf * sizeof(float));
    dls_w_bytes(w, d->ninv, d->nf * sizeof(float));
}

/* every one of the n float32 at p (any alignment) finite */
static int dqn_bytes_finite(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v;
        memcpy(&v, p + i * sizeof v, sizeof v);
        if (!isfinite(v))
            return 0;
    }
    return 1;
}

static int dqn_weights_load(void *impl, dls_rbuf *r, uint64_t version)
{
    dls_dqn *d = impl;
    uint64_t n = dls_r_u64(r);
    DLS_FAIL_IF(r->bad, DLSCHED_EFORMAT, "weights: truncated before the parameter count");
    DLS_FAIL_IF(n != d->n_params, DLSCHED_EMISMATCH,
                "weights: %llu parameters, this agent's network has %zu",
                (unsigned long long)n, d->n_params);
    size_t bytes = d->n_params * sizeof(float), nfb = d->nf * sizeof(float);
    DLS_FAIL_IF(r->len - r->pos != bytes + 4 + 2 * nfb, DLSCHED_EFORMAT,
                "weights: %zu bytes for %zu parameters and the normaliser, which take %zu",
                r->len - r->pos, d->n_params, bytes + 4 + 2 * nfb);
    const unsigned char *p = r->p + r->pos;
    uint32_t norm_on;
    memcpy(&norm_on, p + bytes, 4);
    DLS_FAIL_IF(norm_on > 1, DLSCHED_EFORMAT, "weights: normaliser flag %u is not 0 or 1",
                norm_on);
    DLS_FAIL_IF(norm_on && !d->normalize, DLSCHED_EMISMATCH,
                "weights: normalised features, but this agent has normalize=0");
    DLS_FAIL_IF(!dqn_bytes_finite(p, d->n_params) || !dqn_bytes_finite(p + bytes + 4, 2 * d->nf),
                DLSCHED_EFORMAT, "weights: a parameter or normaliser value is not finite");
    for (uint32_t j = 0; norm_on && j < d->nf; j++) {
        float inv;
        memcpy(&inv, p + bytes + 4 + nfb + (size_t)j * sizeof inv, sizeof inv);
        DLS_FAIL_IF(!(inv > 0.0f), DLSCHED_EFORMAT,
                    "weights: the normaliser's inverse deviation %u is %g, not > 0", j, inv);
    }
    memcpy(d->theta, p, bytes);
    memcpy(d->nmean, p + bytes + 4, nfb);
    memcpy(d->ninv, p + bytes + 4 + nfb, nfb);
    r->pos += bytes + 4 + 2 * nfb;
    d->n_seen = norm_on ? 2 : 0;
    d->steps = version;
    /* readers pin a snapshot only while they compute one decision: a free
       slot comes */
    while (!dqn_publish(d))
        sched_yield();
    return DLSCHED_OK;
}

static int dqn_key_ok(const void *impl, const void *key)
{
    const dls_dqn *d = impl;
    return dqn_bytes_finite(key, d->nf);
}

static const char *dqn_kernels(const void *impl)
{
    return ((const dls_dqn *)impl)->kern_note;
}

static const dls_backend_ops dls_dqn_backend = {
    "dqn",      1,         dqn_encode, dqn_q,    dqn_q_shared, dqn_scratch_floats, dqn_publish,
    dqn_learn,  dqn_train, dqn_stored, dqn_save, dqn_finite, dqn_load,     dqn_memory,         dqn_destroy,
    dqn_sync,   dqn_failure, NULL,       dqn_kernels, dqn_weights_save, dqn_weights_load,
    dqn_key_ok,
};

/* ---- creation ---------------------------------------------------------------- */

/* allocate n bytes, touch them, count them */
static void *dqn_alloc(dls_dqn *d, size_t n, int *failed)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        *failed = 1;
        return NULL;
    }
    memset(p, 0, n);
    dls_touch_pages(p, n);
    d->bytes += n;
    return p;
}

/* N(0, 1) by Box-Muller from the agent's generator */
static double dqn_gauss(dls_rng *rng)
{
    double u1 = 1.0 - dls_rng_uniform(rng), u2 = dls_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* init=he: W ~ N(0, 2 / fan_in), biases 0 (He et al.). init=torch: W and b ~
   U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's nn.Linear default (what
   Stable-Baselines3 networks start from); the weights are drawn before the
   biases */
static void dqn_init_dense(dls_dqn *d, dls_rng *rng, int torch, size_t offW, size_t offb,
                           uint32_t out, uint32_t in)
{
    if (torch) {
        double bound = 1.0 / sqrt(in);
        for (size_t i = 0; i < (size_t)out * in; i++)
            d->theta[offW + i] = (float)(bound * (2.0 * dls_rng_uniform(rng) - 1.0));
        for (size_t i = 0; i < out; i++)
            d->theta[offb + i] = (float)(bound * (2.0 * dls_rng_uniform(rng) - 1.0));
        return;
    }
    double sd = sqrt(2.0 / in);
    for (size_t i = 0; i < (size_t)out * in; i++)
        d->theta[offW + i] = (float)(sd * dqn_gauss(rng));
}

const char *dls_dqn_gpu_refusal(const dlsched_config *cfg)
{
    if (dls_config_int(cfg, DLS_KEY_PER))
        return "key 'per': prioritized replay (per=1) trains on the CPU only; the CUDA "
               "backend samples uniformly (use per=0, or device=cpu)";
    return NULL;
}

/* the device context: every buffer allocated, the initial weights copied */
static int dqn_gpu_setup(dls_dqn *d, const dls_gpu_ops *gpu, const dlsched_config *cfg)
{
    dls_gpu_desc desc = {d->nf, d->na, d->L, d->w, d->B, d->rb.cap, d->dueling, d->dbl,
                         dls_config_int(cfg, DLS_KEY_CUDA_MATH) == DLS_CUDA_MATH_TF32,
                         d->huber, d->clip, d->lr, d->b1, d->b2, d->eps, d->tau, d->hard_every};
    char err[400];
    err[0] = '\0';
    if (gpu->create(&desc, &d->gctx, err, sizeof err) != 0)
        return dls_fail(DLSCHED_ENODEVICE, "device=cuda: cannot set up training on the GPU: %s",
                        err);
    d->gpu = gpu;
    if (gpu->set_state(d->gctx, d->theta, d->theta_t, d->adam_m, d->adam_v, 0) != 0)
        return dls_fail(DLSCHED_ENODEVICE, "device=cuda: cannot copy the initial weights to "
                                           "the GPU: %s",
                        gpu->error(d->gctx));
    return DLSCHED_OK;
}

int dls_dqn_new(const dlsched_config *cfg, dls_rng *rng, const dls_backend_ops **ops, void **impl,
                size_t *key_bytes)
{
    return dls_dqn_new_on(cfg, rng, NULL, ops, impl, key_bytes);
}

int dls_dqn_new_on(const dlsched_config *cfg, dls_rng *rng, const dls_gpu_ops *gpu,
                   const dls_backend_ops **ops, void **impl, size_t *key_bytes)
{
    dls_dqn *d = calloc(1, sizeof *d);
    DLS_FAIL_IF(!d, DLSCHED_ENOMEM, "out of memory for the DQN");
    d->ops = dls_cpu_ops();
    d->nf = (uint32_t)dls_config_int(cfg, DLS_KEY_N_FEATURES);
    d->na = (uint32_t)dls_config_int(cfg, DLS_KEY_N_ACTIONS);
    d->dueling = (int)dls_config_int(cfg, DLS_KEY_DUELING);
    d->dbl = (int)dls_config_int(cfg, DLS_KEY_DOUBLE);
    d->normalize = (int)dls_config_int(cfg, DLS_KEY_NORMALIZE);
    d->lr = (float)dls_config_float(cfg, DLS_KEY_LR);
    d->gamma = (float)dls_config_float(cfg, DLS_KEY_GAMMA);
    d->huber = (float)dls_config_float(cfg, DLS_KEY_HUBER_DELTA);
    d->clip = (float)dls_config_float(cfg, DLS_KEY_GRAD_CLIP);
    d->b1 = (float)dls_config_float(cfg, DLS_KEY_ADAM_BETA1);
    d->b2 = (float)dls_config_float(cfg, DLS_KEY_ADAM_BETA2);
    d->eps = (float)dls_config_float(cfg, DLS_KEY_ADAM_EPS);
    d->B = (uint32_t)dls_config_int(cfg, DLS_KEY_BATCH);
    d->learning_starts = (uint64_t)dls_config_int(cfg, DLS_KEY_LEARNING_STARTS);
    d->train_every = (uint64_t)dls_config_int(cfg, DLS_KEY_TRAIN_EVERY);
    d->grad_steps = (uint64_t)dls_config_int(cfg, DLS_KEY_GRADIENT_STEPS);
    d->threads = (int)dls_config_int(cfg, DLS_KEY_CPU_THREADS);
    d->nstep = (uint32_t)dls_config_int(cfg, DLS_KEY_NSTEP);
    d->per = (int)dls_config_int(cfg, DLS_KEY_PER);
    d->per_alpha = dls_config_float(cfg, DLS_KEY_PER_ALPHA);
    d->per_beta0 = dls_config_float(cfg, DLS_KEY_PER_BETA);
    d->per_beta_steps = (uint64_t)dls_config_int(cfg, DLS_KEY_PER_BETA_STEPS);
    double tu = dls_config_float(cfg, DLS_KEY_TARGET_UPDATE);
    if (tu >= 1.0) {
        if (tu != floor(tu) || tu > 4e18) {
            dqn_destroy(d);
            return dls_fail(DLSCHED_ECONFIG,
                            "key 'target_update': %.9g is >= 1 (a hard copy every N steps) but "
                            "not an integer",
                            tu);
        }
        d->hard_every = (uint64_t)tu;
    } else {
        d->tau = (float)tu;
    }
    if (d->nstep > 1 && dls_config_int(cfg, DLS_KEY_LEARNER) == DLS_LEARNER_THREAD) {
        dqn_destroy(d);
        return dls_fail(DLSCHED_ECONFIG, "key 'nstep' is %u but learner=thread takes "
                                         "transitions from many threads in no order; use "
                                         "nstep=1 or learner=inline",
                        (unsigned)dls_config_int(cfg, DLS_KEY_NSTEP));
    }
    uint64_t rcap = (uint64_t)dls_config_int(cfg, DLS_KEY_REPLAY);
    if (rcap == 0) {
        dqn_destroy(d);
        return dls_fail(DLSCHED_ECONFIG, "key 'replay' is 0 but algo=dqn learns from a replay "
                                         "buffer (give replay >= 1)");
    }
    uint64_t rbytes = dls_replay_bytes(rcap, d->nf, d->na, d->per);
    uint64_t max_replay = (uint64_t)dls_config_int(cfg, DLS_KEY_MAX_REPLAY_BYTES);
    if (rbytes > max_replay) {
        int rc = dls_fail(DLSCHED_ECONFIG,
                          "replay %llu transitions need %llu bytes (%zu per transition%s), above "
                          "max_replay_bytes %llu; lower replay or raise max_replay_bytes",
                          (unsigned long long)rcap, (unsigned long long)rbytes,
                          dls_replay_bytes_per(d->nf, d->na, 0),
                          d->per ? " plus the sum-tree" : "", (unsigned long long)max_replay);
        dqn_destroy(d);
        return rc;
    }

    /* widths: n_features, then hidden */
    const char *ht = dls_config_text(cfg, DLS_KEY_HIDDEN);
    uint32_t L = 1;
    for (const char *c = ht; *c; c++)
        L += *c == ',';
    d->L = L;
    int failed = 0;
    d->w = dqn_alloc(d, (L + 1) * sizeof(uint32_t), &failed);
    d->offW = dqn_alloc(d, L * sizeof(size_t), &failed);
    d->offb = dqn_alloc(d, L * sizeof(size_t), &failed);
    if (failed) {
        dqn_destroy(d);
        return dls_fail(DLSCHED_ENOMEM, "out of memory for the DQN");
    }
    d->w[0] = d->nf;
    const char *c = ht;
    for (uint32_t l = 1; l <= L; l++) {
        d->w[l] = (uint32_t)strtoul(c, (char **)&c, 10);
        if (*c == ',')
            c++;
    }
    size_t n = dls_layout_compute(L, d->w, d->na, d->dueling, d->offW, d->offb, &d->hd);
    d->maxw = d->hd.maxw;
    uint32_t h = d->w[L], na = d->na, nf = d->nf, B = d->B;

    /* OpenBLAS or libdlsched's own kernels, self-tested on this net's shapes:
       the trunk's widths then the head's outputs */
    {
        unsigned *wt = malloc((L + 2) * sizeof *wt);
        if (!wt) {
            dqn_destroy(d);
            return dls_fail(DLSCHED_ENOMEM, "out of memory for the DQN");
        }
        for (uint32_t l = 0; l <= L; l++)
            wt[l] = d->w[l];
        wt[L + 1] = na;
        d->ops = dls_cpu_ops_select((int)dls_config_int(cfg, DLS_KEY_CPU_KERNELS), wt,
                                    (int)L + 2, d->dueling ? 1 : 0, (int)B, d->kern_note,
                                    sizeof d->kern_note);
        free(wt);
    }
    d->n_params = n;

    size_t fs = sizeof(float);
    d->theta = dqn_alloc(d, n * fs, &failed);
    d->theta_t = dqn_alloc(d, n * fs, &failed);
    d->grad = dqn_alloc(d, n * fs, &failed);
    d->adam_m = dqn_alloc(d, n * fs, &failed);
    d->adam_v = dqn_alloc(d, n * fs, &failed);
    d->xb = dqn_alloc(d, 2 * (size_t)B * nf * fs, &failed);
    d->act_on = dqn_alloc(d, L * sizeof(float *), &failed);
    d->act_t = dqn_alloc(d, L * sizeof(float *), &failed);
    for (uint32_t l = 0; !failed && l < L; l++) {
        d->act_on[l] = dqn_alloc(d, 2 * (size_t)B * d->w[l + 1] * fs, &failed);
        d->act_t[l] = dqn_alloc(d, (size_t)B * d->w[l + 1] * fs, &failed);
    }
    d->q_on = dqn_alloc(d, 2 * (size_t)B * na * fs, &failed);
    d->q_t = dqn_alloc(d, (size_t)B * na * fs, &failed);
    d->v_on = dqn_alloc(d, 2 * (size_t)B * fs, &failed);
    d->v_t = dqn_alloc(d, (size_t)B * fs, &failed);
    d->dh0 = dqn_alloc(d, (size_t)B * d->maxw * fs, &failed);
    d->dh1 = dqn_alloc(d, (size_t)B * d->maxw * fs, &failed);
    d->dq = dqn_alloc(d, (size_t)B * na * fs, &failed);
    d->dv = dqn_alloc(d, (size_t)B * fs, &failed);
    d->y = dqn_alloc(d, B * fs, &failed);
    d->qsa = dqn_alloc(d, B * fs, &failed);
    d->g = dqn_alloc(d, B * fs, &failed);
    d->td = dqn_alloc(d, B * fs, &failed);
    d->ba = dqn_alloc(d, B * sizeof(int32_t), &failed);
    d->bret = dqn_alloc(d, B * fs, &failed);
    d->bdisc = dqn_alloc(d, B * fs, &failed);
    d->bw = dqn_alloc(d, B * fs, &failed);
    d->bmask = dqn_alloc(d, (size_t)B * na, &failed);
    d->bidx = dqn_alloc(d, B * sizeof(uint64_t), &failed);
    d->bprob = dqn_alloc(d, B * sizeof(double), &failed);
    d->x1 = dqn_alloc(d, nf * fs, &failed);
    d->h1a = dqn_alloc(d, d->maxw * fs, &failed);
    d->h1b = dqn_alloc(d, d->maxw * fs, &failed);
    d->q1 = dqn_alloc(d, na * fs, &failed);
    d->a1 = dqn_alloc(d, na * fs, &failed);
    d->mean = dqn_alloc(d, nf * sizeof(double), &failed);
    d->m2 = dqn_alloc(d, nf * sizeof(double), &failed);
    d->nmean = dqn_alloc(d, nf * fs, &failed);
    d->ninv = dqn_alloc(d, nf * fs, &failed);
    d->qs = dqn_alloc(d, (size_t)d->nstep * nf * fs, &failed);
    d->qs2 = dqn_alloc(d, (size_t)d->nstep * nf * fs, &failed);
    d->qr = dqn_alloc(d, d->nstep * fs, &failed);
    d->qa = dqn_alloc(d, d->nstep * sizeof(int32_t), &failed);
    d->qm2 = dqn_alloc(d, (size_t)d->nstep * na, &failed);
    d->qhasm = dqn_alloc(d, d->nstep, &failed);
    for (int k = 0; k < DLS_SNAPSHOTS; k++) {
        d->snap[k].theta = dqn_alloc(d, n * fs, &failed);
        d->snap[k].nmean = dqn_alloc(d, nf * fs, &failed);
        d->snap[k].ninv = dqn_alloc(d, nf * fs, &failed);
        atomic_init(&d->snap_ref[k], 0);
    }
    atomic_init(&d->snap_cur, 0);
    if (failed || dls_replay_init(&d->rb, rcap, nf, na, d->per) != 0) {
        dqn_destroy(d);
        return dls_fail(DLSCHED_ENOMEM, "out of memory for a DQN with %zu parameters and a "
                                        "replay buffer of %llu transitions",
                        n, (unsigned long long)rcap);
    }
    d->bytes += sizeof *d + rbytes;
    for (uint32_t j = 0; j < nf; j++)
        d->ninv[j] = 1.0f;

    int torch = dls_config_int(cfg, DLS_KEY_INIT) == DLS_INIT_TORCH;
    for (uint32_t l = 0; l < L; l++)
        dqn_init_dense(d, rng, torch, d->offW[l], d->offb[l], d->w[l + 1], d->w[l]);
    if (!d->dueling) {
        dqn_init_dense(d, rng, torch, d->hd.offWq, d->hd.offbq, na, h);
    } else {
        dqn_init_dense(d, rng, torch, d->hd.offWv, d->hd.offbv, 1, h);
        dqn_init_dense(d, rng, torch, d->hd.offWa, d->hd.offba, na, h);
    }
    memcpy(d->theta_t, d->theta, n * fs);
    d->inline_train = dls_config_int(cfg, DLS_KEY_LEARNER) == DLS_LEARNER_INLINE;
    /* the act path of learner=thread starts from the initial weights */
    if (gpu) {
        const char *no = dls_dqn_gpu_refusal(cfg);
        int rc = no ? dls_fail(DLSCHED_ECONFIG, "device=cuda: %s", no) : dqn_gpu_setup(d, gpu, cfg);
        if (rc != DLSCHED_OK) {
            dqn_destroy(d);
            return rc;
        }
    }
    atomic_store(&d->snap_cur, 1);
    dqn_publish(d);
    /* acting must never wait on BLAS threads: OpenBLAS (process-wide) runs
       single-threaded except inside a training call with cpu_threads > 1 */
    d->ops->set_threads(1);

    *ops = &dls_dqn_backend;
    *impl = d;
    *key_bytes = nf * sizeof(float); /* the raw features */
    return DLSCHED_OK;
}

/* ---- accessors for tests and benchmarks -------------------------------------- */

size_t dls_dqn_n_params(const dls_dqn *d) { return d->n_params; }
float *dls_dqn_params(dls_dqn *d) { return d->theta; }
float *dls_dqn_target(dls_dqn *d) { return d->theta_t; }
float *dls_dqn_grads(dls_dqn *d) { return d->grad; }
float *dls_dqn_adam_m(dls_dqn *d) { return d->adam_m; }
float *dls_dqn_adam_v(dls_dqn *d) { return d->adam_v; }
void dls_dqn_set_ops(dls_dqn *d, const dls_ops *ops) { d->ops = ops; }
const dls_replay *dls_dqn_replay(const dls_dqn *d) { return &d->rb; }
uint64_t dls_dqn_steps(const dls_dqn *d) { return d->steps; }

uint32_t dls_dqn_widths(const dls_dqn *d, uint32_t *widths)
{
    if (widths)
        for (uint32_t l = 0; l <= d->L; l++)
            widths[l] = d->w[l];
    return d->L;
}
