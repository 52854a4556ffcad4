/*
 * backend.h - what a learning algorithm provides to the agent core
 *
 * The core validates every input, owns the tickets, the RNG, exploration
 * and the counters, and serialises calls; a backend encodes states into
 * fixed-size keys, answers Q-values for a key and learns from transitions.
 */
#ifndef DLS_BACKEND_H
#define DLS_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

struct dls_wbuf;
struct dls_rbuf;

/* one experience: keys are the backend's encodings of the states */
typedef struct dls_transition {
    const void *key;       /* state at decision time */
    int32_t action;
    float reward;
    const void *next_key;  /* NULL when terminal */
    const uint8_t *next_mask; /* NULL = every action allowed */
    unsigned terminal;     /* 1: no bootstrap from next */
    unsigned truncated;    /* 1: the episode was cut off (bootstrap kept) */
} dls_transition;

typedef struct dls_backend_ops {
    const char *name;
    /* dlsched_train() runs this many steps per hold of the agent's lock */
    uint32_t train_chunk;
    /* encode n_features finite values into key (key_bytes bytes) */
    void (*encode)(void *impl, const float *features, void *key);
    /* Q-values of an encoded state: a pointer to n_actions floats, either
       internal (valid until the next update) or scratch; the caller holds
       the agent's lock */
    const float *(*q)(void *impl, const void *key, float *scratch);
    /* the same without the agent's lock, from the model last published to
       the act path (learner=thread); scratch holds scratch_floats() floats;
       *version = the training steps of that model */
    const float *(*q_shared)(void *impl, const void *key, float *scratch, uint64_t *version);
    size_t (*scratch_floats)(const void *impl);
    /* make the current model the one q_shared() reads (agent lock held) */
    int (*publish)(void *impl);
    /* learn from one transition (and store it for replay); returns the
       number of learning updates it made, *loss = the last one's loss */
    uint64_t (*learn)(void *impl, const dls_transition *t, dls_rng *rng, double *loss);
    /* steps updates from replayed experience; *loss = last loss; returns the
       number of updates done (0 when nothing is stored) */
    uint64_t (*train)(void *impl, dls_rng *rng, uint64_t steps, double *loss);
    uint64_t (*stored)(const void *impl);
    /* checkpoint: append the learned state (and the replay buffer when
       with_replay) to w; load it back into a backend created from the same
       configuration, checking every value (DLSCHED_EFORMAT + message) */
    void (*save)(const void *impl, struct dls_wbuf *w, int with_replay);
    /* 1 when every learned value is finite (a diverged model is not saved) */
    int (*finite)(const void *impl);
    int (*load)(void *impl, struct dls_rbuf *r, int with_replay);
    size_t (*memory)(const void *impl);
    void (*destroy)(void *impl);
    /* device training (NULL for host-only backends): bring the learned
       state from the device before a checkpoint reads it (DLSCHED_OK, or
       DLSCHED_EBACKEND with the message set) */
    int (*sync)(void *impl);
    /* the text of the device failure that stopped training, or NULL */
    const char *(*failure)(const void *impl);
    /* tabular backends: the number of states a key can name (0 .. n - 1;
       the guard's regions); NULL where keys are features */
    uint64_t (*states)(const void *impl);
    /* backends that multiply matrices on the CPU: which kernels this agent
       runs and why, for dlsched_stats' blas_reason ("" when OpenBLAS's own
       fit the CPU); NULL where no BLAS is used */
    const char *(*kernels)(const void *impl);
    /* exchange (dlsched-exchange(5)), under the agent's lock: the acting
       weights into w; weights from r, checked whole (DLSCHED_EFORMAT with
       the message set, nothing changed) before they replace the acting
       ones with this version (learner=none only); whether a key read from
       a blob is one the backend could have made (finite features, a state
       index in range) */
    void (*weights_save)(void *impl, struct dls_wbuf *w);
    int (*weights_load)(void *impl, struct dls_rbuf *r, uint64_t version);
    int (*key_ok)(const void *impl, const void *key);
} dls_backend_ops;

struct dlsched_config;
/* Create a backend from a checked config (n_features, n_actions known);
   *key_bytes = the size of its state encoding. */
int dls_qtable_new(const struct dlsched_config *cfg, const dls_backend_ops **ops, void **impl,
                   size_t *key_bytes);
int dls_dqn_new(const struct dlsched_config *cfg, dls_rng *rng, const dls_backend_ops **ops,
                void **impl, size_t *key_bytes);
/* the same, training on a device when gpu is not NULL (see src/dqn/gpu_ops.h);
   DLSCHED_ENODEVICE with the message set when the device context cannot be
   set up */
struct dls_gpu_ops;
int dls_dqn_new_on(const struct dlsched_config *cfg, dls_rng *rng, const struct dls_gpu_ops *gpu,
                   const dls_backend_ops **ops, void **impl, size_t *key_bytes);
/* why this configuration cannot train on a device (a static text naming
   the key), or NULL */
const char *dls_dqn_gpu_refusal(const struct dlsched_config *cfg);

#endif
