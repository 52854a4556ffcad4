/* plugin.h - the CUDA backend plugin as the core sees it (see plugin.c) */
#ifndef DLS_PLUGIN_H
#define DLS_PLUGIN_H

#include <stddef.h>

#include "../dqn/gpu_ops.h"
#include "internal.h"

/* room for a reason: why learning runs on the CPU */
#define DLS_REASON_LEN 384

/* Open the plugin at path and check its table (ABI version, size): 0 with
   *ops set (the object stays loaded), or -1 with the reason in why. Does
   not probe. */
int dls_plugin_open(const char *path, const dls_gpu_ops **ops, char *why, size_t len);

/* The process's CUDA backend: its table when the plugin loads and probes a
   usable GPU, else NULL with the reason in why (may be NULL). Found once,
   at the first call. */
const dls_gpu_ops *dls_cuda_backend(char *why, size_t len);

#endif
