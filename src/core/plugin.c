/*
 * plugin.c - finding and loading the CUDA backend plugin
 *
 * The core never links CUDA. The plugin, libdlsched_cuda.so, is looked for
 * in DLSCHED_PLUGIN_PATH (an absolute directory or file name; ignored in
 * set-uid programs) or else beside the object holding this code
 * (libdlsched.so, or the program a static libdlsched.a was linked into),
 * never in the current directory or the loader's search path. It is opened
 * with RTLD_NOW | RTLD_LOCAL, its one entry symbol returns its table, and
 * the table's ABI version and size are checked before anything else in it
 * is used. Then probe() says whether a GPU is usable.
 *
 * The outcome is process-wide (a loaded shared object is): found once, at
 * the first agent or dlsched_backend_available() that asks, and kept. The
 * plugin is never unloaded: the CUDA runtime it holds may own threads.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../backends/cpu/blasinfo.h"
#include "plugin.h"

int dls_plugin_open(const char *path, const dls_gpu_ops **ops, char *why, size_t len)
{
    *ops = NULL;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(why, len, "cannot load the CUDA plugin %s: %s", path, e ? e : "unknown error");
        return -1;
    }
    dls_gpu_entry_fn entry;
    void *sym = dlsym(h, DLS_GPU_ENTRY);
    memcpy(&entry, &sym, sizeof entry); /* object to function pointer, as POSIX allows */
    const dls_gpu_ops *o = entry ? entry() : NULL;
    if (!entry || !o) {
        snprintf(why, len, "%s is not a libdlsched plugin: %s", path,
                 entry ? "its entry returned no table" : "no " DLS_GPU_ENTRY " symbol");
    } else if (o->abi_version != DLS_GPU_ABI) {
        snprintf(why, len,
                 "the CUDA plugin %s has plugin ABI version %u but this libdlsched %s needs "
                 "version %u (install the plugin built with this library)",
                 path, o->abi_version, dlsched_version_string(), DLS_GPU_ABI);
    } else if (o->size < sizeof(dls_gpu_ops)) {
        snprintf(why, len,
                 "the CUDA plugin %s has a table of %u bytes but this libdlsched %s needs %zu "
                 "(install the plugin built with this library)",
                 path, o->size, dlsched_version_string(), sizeof(dls_gpu_ops));
    } else {
        *ops = o;
        return 0; /* kept open for the life of the process */
    }
    dlclose(h);
    return -1;
}

/* where the plugin should be: 0, or -1 with the reason */
static int dls_plugin_path(char *path, size_t plen, char *why, size_t len)
{
    const char *env = secure_getenv("DLSCHED_PLUGIN_PATH");
    if (env && *env) {
        if (env[0] != '/') {
            snprintf(why, len,
                     "DLSCHED_PLUGIN_PATH '%s' is not an absolute path (the current directory "
                     "is never searched)",
                     env);
            return -1;
        }
        struct stat st;
        int dir = stat(env, &st) == 0 && S_ISDIR(st.st_mode);
        int n = dir ? snprintf(path, plen, "%s/%s", env, DLS_GPU_PLUGIN_NAME)
                    : snprintf(path, plen, "%s", env);
        if (n < 0 || (size_t)n >= plen) {
            snprintf(why, len, "DLSCHED_PLUGIN_PATH is too long");
            return -1;
        }
        return 0;
    }
    Dl_info info;
    void *self = (void *)(uintptr_t)&dls_plugin_open;
    if (!dladdr(self, &info) || !info.dli_fname || !strchr(info.dli_fname, '/')) {
        snprintf(why, len, "cannot tell where libdlsched was loaded from; set "
                           "DLSCHED_PLUGIN_PATH to the directory of " DLS_GPU_PLUGIN_NAME);
        return -1;
    }
    const char *slash = strrchr(info.dli_fname, '/');
    int n = snprintf(path, plen, "%.*s/%s", (int)(slash - info.dli_fname), info.dli_fname,
                     DLS_GPU_PLUGIN_NAME);
    if (n < 0 || (size_t)n >= plen) {
        snprintf(why, len, "the directory of libdlsched is too long a path");
        return -1;
    }
    return 0;
}

static pthread_once_t dls_cuda_once = PTHREAD_ONCE_INIT;
static const dls_gpu_ops *dls_cuda_ops;
static char dls_cuda_why[DLS_REASON_LEN];

static void dls_cuda_find(void)
{
    char path[4096];
    const dls_gpu_ops *o;
    if (dls_plugin_path(path, sizeof path, dls_cuda_why, sizeof dls_cuda_why) != 0 ||
        dls_plugin_open(path, &o, dls_cuda_why, sizeof dls_cuda_why) != 0)
        return;
    char why[DLS_REASON_LEN - 64];
    why[0] = '\0';
    if (!o->probe(why, sizeof why)) {
        snprintf(dls_cuda_why, sizeof dls_cuda_why, "%s", why[0] ? why : "no usable GPU");
        return;
    }
    dls_cuda_ops = o;
}

const dls_gpu_ops *dls_cuda_backend(char *why, size_t len)
{
    pthread_once(&dls_cuda_once, dls_cuda_find);
    if (!dls_cuda_ops && why)
        snprintf(why, len, "%s", dls_cuda_why);
    return dls_cuda_ops;
}

DLSCHED_API int dlsched_backend_available(const char *device)
{
    if (!device)
        return 0;
    if (strcmp(device, "cpu") == 0) {
        (void)dls_blas_info_get(); /* found here, once, for the agents to come */
        return 1;
    }
    if (strcmp(device, "cuda") == 0)
        return dls_cuda_backend(NULL, 0) != NULL;
    return 0;
}
