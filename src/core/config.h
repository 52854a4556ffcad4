/* config.h - internal access to a dlsched_config */
#ifndef DLS_CONFIG_H
#define DLS_CONFIG_H

#include "internal.h"
#include "registry.h"

/* ENUM indexes: the order of the choices strings in registry.h */
enum { DLS_ALGO_QTABLE = 0, DLS_ALGO_DQN = 1 };
enum { DLS_DEVICE_AUTO = 0, DLS_DEVICE_CPU = 1, DLS_DEVICE_CUDA = 2 };
enum { DLS_EXPLORE_EGREEDY = 0, DLS_EXPLORE_SOFTMAX = 1, DLS_EXPLORE_HINT = 2 };
enum { DLS_LEARNER_INLINE = 0, DLS_LEARNER_THREAD = 1, DLS_LEARNER_NONE = 2 };
enum { DLS_INIT_HE = 0, DLS_INIT_TORCH = 1 };
enum { DLS_KERNELS_AUTO = 0, DLS_KERNELS_OPENBLAS = 1, DLS_KERNELS_OWN = 2 };
enum { DLS_CUDA_MATH_FP32 = 0, DLS_CUDA_MATH_TF32 = 1 };

/* 1 when the key was set (explicitly, not by default) */
int dls_config_isset(const dlsched_config *cfg, enum dls_key_id id);
/* effective values: the set value, else the default for the configured algo.
   INT and ENUM keys read with _int (ENUM: index of the choice). */
int64_t dls_config_int(const dlsched_config *cfg, enum dls_key_id id);
double dls_config_float(const dlsched_config *cfg, enum dls_key_id id);
/* effective text, or NULL for a required or optional key that is unset */
const char *dls_config_text(const dlsched_config *cfg, enum dls_key_id id);
/* a list key expanded to n values (one value broadcast); ECONFIG when its
   length is neither 1 nor n */
int dls_config_list(const dlsched_config *cfg, enum dls_key_id id, uint32_t n, double *out);
/* deep copy; ENOMEM on failure */
int dls_config_dup(const dlsched_config *src, dlsched_config **out);
/* the effective default text of a key given the configured algo (NULL: none) */
const char *dls_config_default(const dlsched_config *cfg, enum dls_key_id id);

#endif
