/*
 * dqn.h - deep Q-network backend: an MLP trained with Huber loss, double
 * DQN targets, n-step returns, Adam and a target network, written against
 * the ops table of ops.h. Internal; tests and benchmarks use these entry
 * points to check the math against their own references.
 *
 * Parameter layout: one flat float array. For each trunk layer l = 0..L-1
 * (widths w[0] = n_features, w[l+1] = hidden[l]): W_l [w[l+1] x w[l]]
 * row-major, then b_l [w[l+1]]. Then the head on h = w[L]: plain:
 * W_q [na x h], b_q [na]; dueling: W_v [1 x h], b_v [1], W_a [na x h],
 * b_a [na], with Q = V + A - mean_a(A).
 */
#ifndef DLS_DQN_H
#define DLS_DQN_H

#include <stddef.h>
#include <stdint.h>

#include "../core/backend.h"
#include "../core/replay.h"
#include "ops.h"

typedef struct dls_dqn dls_dqn;

/* one minibatch; s and s2 hold n rows of n_features (already normalised) */
typedef struct dls_batch {
    uint32_t n;
    const float *s;
    const int32_t *a;
    const float *ret;    /* n-step return */
    const float *disc;   /* bootstrap discount gamma^k, 0 = terminal */
    const float *s2;
    const uint8_t *mask2; /* n x n_actions, 1 = allowed; NULL = all */
    const float *w;      /* importance weights; NULL = all 1 */
} dls_batch;

size_t dls_dqn_n_params(const dls_dqn *d);
float *dls_dqn_params(dls_dqn *d);
float *dls_dqn_target(dls_dqn *d);
float *dls_dqn_grads(dls_dqn *d);
/* Adam moments and step count */
float *dls_dqn_adam_m(dls_dqn *d);
float *dls_dqn_adam_v(dls_dqn *d);
/* trunk layer count L; widths[0..L] when widths is not NULL */
uint32_t dls_dqn_widths(const dls_dqn *d, uint32_t *widths);
/* Loss of a batch (n <= batch) with the online and target parameters as
   they are; gradients into dls_dqn_grads() (before clipping); td_abs
   (may be NULL) gets |Q(s,a) - y| per row. */
double dls_dqn_grad(dls_dqn *d, const dls_batch *b, float *td_abs);
/* clip the gradient to grad_clip global norm, one Adam step, target update */
void dls_dqn_apply(dls_dqn *d);
/* Q-values of one normalised state with the online parameters */
void dls_dqn_forward1(dls_dqn *d, const float *x, float *q);
/* replace the ops table (benchmarks record the GEMM shapes) */
void dls_dqn_set_ops(dls_dqn *d, const dls_ops *ops);
const dls_replay *dls_dqn_replay(const dls_dqn *d);
uint64_t dls_dqn_steps(const dls_dqn *d);

#endif
