/*
 * cmd_doctor.c - dlsched doctor [--quiet | --coretype]: what a host gets on this machine,
 * and what to change when something is wrong
 *
 * Five groups, in this order: the libdlsched.so.1 the dynamic loader gives
 * a host (found, where, which version, against this tool's own); the
 * OpenBLAS this process loaded (file, config, core, threads, the variables
 * that steer it); the CPU (CPUID, usable features, whether the OS saves the
 * YMM and ZMM registers); the verdict on OpenBLAS's kernels, checked by
 * creating a small dqn agent through the public API and reading its
 * blas_reason; the CUDA backend (informational: no GPU is not a finding).
 *
 * The BLAS, CPU and CUDA facts come from the library's own code linked into
 * this tool (blasinfo.h, kernels.h, plugin.h): the same code a host runs,
 * at this tool's version. Of the shared library it only calls
 * dlsched_version_string(), so that the tool works the same under the
 * sanitizers, where that library is not instrumented.
 *
 * A finding is something a host suffers from and the user can change; each
 * is followed by a "fix:" line. Exit status: 0 no finding, 1 findings,
 * 2 usage error.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dladdr, dlinfo */
#endif

#include <cblas.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backends/cpu/blasinfo.h"
#include "backends/cpu/kernels.h"
#include "cmds.h"
#include "core/plugin.h"
#include "dlsched.h"
#include "msg.h"

#define DOCTOR_SONAME "libdlsched.so.1"

/* the agent the verdict is checked with */
#define DOCTOR_AGENT_SPEC "algo=dqn n_features=4 n_actions=2 hidden=16 device=cpu"

/* untrusted text (environment, /proc, dlerror) is shown at most this long */
#define SHOWN_MAX 300

/* ---- the report: groups under a heading, findings counted ------------------------ */

typedef struct report {
    int quiet;           /* only findings (with their lines) and the last line */
    int findings;        /* counted by finding() */
    const char *section; /* the heading of the group being written */
    int heading_done;    /* that heading is out */
    int groups;          /* headings written: a blank line before the next */
} report_t;

static void section(report_t *r, const char *name)
{
    r->section = name;
    r->heading_done = 0;
}

static void vline(report_t *r, const char *label, const char *fmt, va_list ap)
{
    if (!r->heading_done) {
        if (r->groups++)
            putchar('\n');
        printf("%s:\n", r->section);
        r->heading_done = 1;
    }
    printf("  %s", label);
    vprintf(fmt, ap);
    putchar('\n');
}

/* a fact: left out with --quiet */
static void info(report_t *r, const char *fmt, ...) DLT_PRINTF(2, 3);
static void info(report_t *r, const char *fmt, ...)
{
    if (r->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vline(r, "", fmt, ap);
    va_end(ap);
}

/* something to act on; a fix() follows */
static void finding(report_t *r, const char *fmt, ...) DLT_PRINTF(2, 3);
static void finding(report_t *r, const char *fmt, ...)
{
    r->findings++;
    va_list ap;
    va_start(ap, fmt);
    vline(r, "finding: ", fmt, ap);
    va_end(ap);
}

/* a line of the last finding (its evidence), kept with --quiet */
static void detail(report_t *r, const char *fmt, ...) DLT_PRINTF(2, 3);
static void detail(report_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vline(r, "", fmt, ap);
    va_end(ap);
}

static void fix(report_t *r, const char *fmt, ...) DLT_PRINTF(2, 3);
static void fix(report_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vline(r, "fix: ", fmt, ap);
    va_end(ap);
}

/* printable, bounded: text from outside (NULL as ""), at most SHOWN_MAX
   bytes, control and non-ASCII bytes and backslashes as \xNN, "..." when cut
   (quotes are kept: the library's own messages have them); cap >= 8 */
static const char *shown(const char *s, char *buf, size_t cap)
{
    size_t o = 0, i;
    if (!s)
        s = "";
    for (i = 0; s[i] && i < SHOWN_MAX && o + 8 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\')
            buf[o++] = (char)ch;
        else
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", ch);
    }
    if (s[i] && o + 3 < cap) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

/* "path", or "path (its real path)" when that differs (a link) */
static void with_real_path(const char *path, char *out, size_t cap)
{
    char b[4 * SHOWN_MAX + 8], rb[4 * SHOWN_MAX + 8];
    char *real = path ? realpath(path, NULL) : NULL;
    if (real && strcmp(real, path) != 0)
        snprintf(out, cap, "%s (%s)", shown(path, b, sizeof b), shown(real, rb, sizeof rb));
    else
        snprintf(out, cap, "%s", shown(path, b, sizeof b));
    free(real);
}

/* ---- libdlsched.so.1 as a host gets it ----------------------------------------- */

/* dir receives the directory of the library found ("" when none) */
static void check_library(report_t *r, char *dir, size_t dlen)
{
    char b[4 * SHOWN_MAX + 8];
    const char *mine = dlsched_version_string();
    dir[0] = '\0';
    section(r, "library");
    info(r, "this tool: libdlsched %s (linked in statically)", mine);

    dlerror();
    void *h = dlopen(DOCTOR_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        detail(r, DOCTOR_SONAME ": not found: %s", shown(dlerror(), b, sizeof b));
        finding(r, "a program linked with -ldlsched does not start here: the loader does "
                   "not find " DOCTOR_SONAME);
        fix(r, "make install, then ldconfig (as root); or start the host with "
               "LD_LIBRARY_PATH=<the directory of " DOCTOR_SONAME ">");
        return;
    }
    void *sym = dlsym(h, "dlsched_version_string");
    const char *(*version)(void) = NULL;
    memcpy(&version, &sym, sizeof version); /* object to function pointer, as POSIX allows */

    const char *path = NULL;
#ifdef RTLD_DI_LINKMAP
    struct link_map *lm = NULL;
    if (dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0 && lm && lm->l_name && lm->l_name[0])
        path = lm->l_name;
#endif
    Dl_info di;
    if (!path && sym && dladdr(sym, &di) && di.dli_fname && di.dli_fname[0])
        path = di.dli_fname;
    char where[2 * sizeof b + 8];
    with_real_path(path ? path : "(path unknown)", where, sizeof where);
    /* its directory, absolute (a relative LD_LIBRARY_PATH gives a relative
       name: the host resolves it from its working directory, as here) */
    const char *slash = path ? strrchr(path, '/') : NULL;
    if (slash && (size_t)(slash - path) < dlen) {
        snprintf(dir, dlen, "%.*s", slash == path ? 1 : (int)(slash - path), path);
        char *abs = realpath(dir, NULL);
        if (abs && strlen(abs) < dlen)
            snprintf(dir, dlen, "%s", abs);
        free(abs);
    }

    if (!version) {
        detail(r, DOCTOR_SONAME ": %s", where);
        finding(r, "the " DOCTOR_SONAME " the loader finds is not libdlsched (no "
                   "dlsched_version_string)");
        fix(r, "remove or rename that file, then make install (and ldconfig) or set "
               "LD_LIBRARY_PATH=<the directory holding libdlsched's " DOCTOR_SONAME ">");
    } else {
        const char *theirs = version();
        char vb[64];
        shown(theirs, vb, sizeof vb);
        if (theirs && strcmp(theirs, mine) == 0) {
            info(r, DOCTOR_SONAME ": %s, version %s", where, vb);
        } else {
            detail(r, DOCTOR_SONAME ": %s, version %s", where, vb);
            finding(r, "a host loads libdlsched %s, this tool is %s: what follows describes %s", vb,
                    mine, mine);
            fix(r, "install the library and the tool from one build (make install, then "
                   "ldconfig), or point LD_LIBRARY_PATH at the lib/ of this tool's build");
        }
    }
    dlclose(h);
}

/* ---- OpenBLAS ------------------------------------------------------------------------ */

static void env_line(report_t *r, const char *name)
{
    char b[4 * SHOWN_MAX + 8];
    const char *v = getenv(name);
    if (!v)
        info(r, "%s: unset", name);
    else if (!*v)
        info(r, "%s: set, empty", name);
    else
        info(r, "%s: %s", name, shown(v, b, sizeof b));
}

static void check_blas(report_t *r, const dls_blas_info *bi, int threads)
{
    char b[4 * SHOWN_MAX + 8];
    section(r, "BLAS");
    /* the symbol as the loader resolves it: the library, not a PLT entry */
    void *sym = dlsym(RTLD_DEFAULT, "openblas_get_config");
    Dl_info di;
    if (sym && dladdr(sym, &di) && di.dli_fname && di.dli_fname[0]) {
        char where[2 * sizeof b + 8];
        with_real_path(di.dli_fname, where, sizeof where);
        info(r, "library: %s", where);
    } else {
        info(r, "library: unknown (openblas_get_config not found by dlsym)");
    }
    info(r, "config: %s", bi->config[0] ? shown(bi->config, b, sizeof b) : "unknown");
    info(r, "core: %s", bi->core[0] ? shown(bi->core, b, sizeof b) : "unknown");
    info(r, "threads: %d", threads);
    env_line(r, "OPENBLAS_CORETYPE");
    env_line(r, "OPENBLAS_NUM_THREADS");
    env_line(r, "OMP_NUM_THREADS");
}

/* ---- the CPU --------------------------------------------------------------------- */

/* the first "model name : ..." of /proc/cpuinfo, or why there is none */
static void cpu_model_name(char *out, size_t cap)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) {
        snprintf(out, cap, "unknown (/proc/cpuinfo: %s)", strerror(errno));
        return;
    }
    char *line = NULL;
    size_t n = 0;
    int found = 0;
    while (!found && getline(&line, &n, f) > 0) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        char *p = line + 10;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != ':')
            continue;
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        size_t len = strlen(p);
        while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        p[len] = '\0';
        shown(p, out, cap);
        found = 1;
    }
    free(line);
    fclose(f);
    if (!found)
        snprintf(out, cap, "unknown (no model name in /proc/cpuinfo)");
}

static const struct {
    unsigned flag;
    const char *name;
} cpu_features[] = {
    {DLS_CPU_FMA, "FMA"},
    {DLS_CPU_AVX2, "AVX2"},
    {DLS_CPU_AVX512F, "AVX-512F"},
    {DLS_CPU_AVX512DQ, "AVX-512DQ"},
    {DLS_CPU_AVX512BW, "AVX-512BW"},
    {DLS_CPU_AVX512VL, "AVX-512VL"},
};

static void feature_list(unsigned flags, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof cpu_features / sizeof cpu_features[0]; i++) {
        if (!(flags & cpu_features[i].flag))
            continue;
        int n = snprintf(out + o, cap - o, "%s%s", o ? " " : "", cpu_features[i].name);
        if (n < 0 || (size_t)n >= cap - o)
            break;
        o += (size_t)n;
    }
    if (!o)
        snprintf(out, cap, "none of FMA, AVX2, AVX-512F/DQ/BW/VL");
}

static void check_cpu(report_t *r, const dls_cpu_info *cpu)
{
    char b[256];
    section(r, "CPU");
    cpu_model_name(b, sizeof b);
    info(r, "model name: %s", b);
    if (!cpu->known) {
        info(r, "cpuid: not available (not an x86 build): nothing is judged");
        return;
    }
    char vendor[sizeof cpu->vendor], vb[64];
    memcpy(vendor, cpu->vendor, sizeof vendor);
    vendor[sizeof vendor - 1] = '\0';
    info(r, "cpuid: %s family %u model %u", shown(vendor, vb, sizeof vb), cpu->family, cpu->model);
    feature_list(cpu->flags, b, sizeof b);
    info(r, "features: %s", b);
    info(r, "OS saves YMM state: %s", cpu->os_ymm ? "yes" : "no");
    info(r, "OS saves ZMM state: %s", cpu->os_zmm ? "yes" : "no");
    unsigned usable = dls_cpu_usable(cpu);
    feature_list(usable, b, sizeof b);
    info(r, "usable: %s", b);
    if (usable != cpu->flags)
        info(r, "note: the CPU reports features whose registers the OS does not save; they "
                "cannot be used");
    info(r, "libdlsched's own kernels: %s", dls_kern_isa_name(dls_kern_isa_for(usable)));
}

/* ---- the verdict, checked with an agent ------------------------------------------------ */

/* a dqn agent's blas_reason into reason; 0, or -1 with why */
static int agent_reason(char *reason, size_t cap, char *why, size_t wcap)
{
    dlsched_config *cfg = NULL;
    dlsched_agent *ag = NULL;
    int rc = dlsched_config_new(&cfg);
    if (rc == DLSCHED_OK)
        rc = dlsched_config_parse(cfg, DOCTOR_AGENT_SPEC);
    if (rc == DLSCHED_OK)
        rc = dlsched_agent_new(cfg, &ag);
    dlsched_stats_t st;
    memset(&st, 0, sizeof st);
    if (rc == DLSCHED_OK)
        rc = dlsched_stats(ag, &st, sizeof st);
    if (rc != DLSCHED_OK)
        snprintf(why, wcap, "%s: %s", dlsched_strerror(rc), dlsched_last_error());
    else
        snprintf(reason, cap, "%.*s", (int)sizeof st.blas_reason, st.blas_reason);
    dlsched_agent_free(ag);
    dlsched_config_free(cfg);
    return rc == DLSCHED_OK ? 0 : -1;
}

static void check_verdict(report_t *r, const dls_blas_info *bi)
{
    char b[4 * SHOWN_MAX + 8];
    char reason[512] = "", why[512] = "";
    section(r, "verdict");
    int have = agent_reason(reason, sizeof reason, why, sizeof why) == 0;
    const char *core = bi->core[0] ? bi->core : "unknown";

    if (bi->verdict.generic) {
        const char *best = bi->verdict.best ? bi->verdict.best : "?";
        int isa = dls_kern_isa_for(dls_cpu_usable(&bi->cpu));
        finding(r, "OpenBLAS runs its %s kernels on a CPU that allows %s", core, best);
        if (have && strstr(reason, "runs libdlsched's own"))
            detail(r,
                   "dqn agents run libdlsched's own %s kernels (cpu_kernels=auto); the "
                   "host's own BLAS calls run OpenBLAS's %s kernels",
                   dls_kern_isa_name(isa), core);
        else
            detail(r, "dqn agents run OpenBLAS's %s kernels too (see blas_reason)", core);
        if (have)
            detail(r, "blas_reason: %s", reason[0] ? shown(reason, b, sizeof b) : "(empty)");
        else
            detail(r, "dqn agent (" DOCTOR_AGENT_SPEC "): not created: %s",
                   shown(why, b, sizeof b));
        const char *nodyn = strstr(bi->verdict.reason, "no DYNAMIC_ARCH");
        if (nodyn)
            fix(r, "%s", nodyn);
        else
            fix(r,
                "export OPENBLAS_CORETYPE=%s in the host's environment before it starts "
                "(see dlsched(7) BLAS)",
                best);
        return;
    }

    if (!bi->cpu.known || !bi->core[0])
        info(r, "not judged: %s is unknown", bi->cpu.known ? "OpenBLAS's core" : "the CPU");
    else if ((dls_cpu_usable(&bi->cpu) & DLS_CPU_YMM_FEATURES) != DLS_CPU_YMM_FEATURES)
        info(r, "not judged: without usable AVX2 and FMA OpenBLAS's own choice (%s) stands", core);
    else
        info(r, "ok: OpenBLAS's kernels fit this CPU (%s)", core);
    if (!have) {
        detail(r, "dqn agent (" DOCTOR_AGENT_SPEC "): not created: %s", shown(why, b, sizeof b));
        finding(r, "a dqn agent on the CPU cannot be created here");
        fix(r, "see the message above; the library's own tests (make check) tell more");
    } else if (reason[0]) {
        info(r, "blas_reason: %s", shown(reason, b, sizeof b));
    } else {
        info(r, "blas_reason: (empty: dqn agents run OpenBLAS's kernels)");
    }
}

/* ---- CUDA -------------------------------------------------------------------------- */

/* where the core looks for the plugin: DLSCHED_PLUGIN_PATH, else beside the
   libdlsched.so.1 found (libdir; "" when none), for display */
static void plugin_where(const char *libdir, char *out, size_t cap)
{
    char b[4 * SHOWN_MAX + 8];
    const char *env = getenv("DLSCHED_PLUGIN_PATH");
    if (env && *env) {
        struct stat st;
        if (env[0] != '/')
            snprintf(out, cap, "nowhere (DLSCHED_PLUGIN_PATH is not absolute)");
        else if (stat(env, &st) == 0 && S_ISDIR(st.st_mode))
            snprintf(out, cap, "%s/" DLS_GPU_PLUGIN_NAME " (DLSCHED_PLUGIN_PATH)",
                     shown(env, b, sizeof b));
        else
            snprintf(out, cap, "%s (DLSCHED_PLUGIN_PATH)", shown(env, b, sizeof b));
    } else if (libdir[0]) {
        snprintf(out, cap, "%s/" DLS_GPU_PLUGIN_NAME " (beside " DOCTOR_SONAME ")",
                 shown(libdir, b, sizeof b));
    } else {
        snprintf(out, cap, "beside this program (no " DOCTOR_SONAME " found)");
    }
}

static void check_cuda(report_t *r, const char *libdir)
{
    char b[4 * SHOWN_MAX + 8], where[4 * SHOWN_MAX + 64];
    section(r, "CUDA");
    const char *env = getenv("DLSCHED_PLUGIN_PATH");
    if (env && *env)
        info(r, "DLSCHED_PLUGIN_PATH: %s", shown(env, b, sizeof b));
    else
        info(r, "DLSCHED_PLUGIN_PATH: %s", env ? "set, empty" : "unset");
    plugin_where(libdir, where, sizeof where);
    info(r, "plugin: %s", where);

    /* a host looks beside its libdlsched.so; the core linked in here would
       look beside this program: point it where the host looks */
    if (!(env && *env) && libdir[0])
        setenv("DLSCHED_PLUGIN_PATH", libdir, 1);
    if (dlsched_backend_available("cuda")) {
        info(r, "cuda: usable (device=auto and device=cuda learn on the GPU)");
        return;
    }
    char why[DLS_REASON_LEN];
    why[0] = '\0';
    (void)dls_cuda_backend(why, sizeof why);
    info(r, "cuda: not usable: %s", why[0] ? shown(why, b, sizeof b) : "no reason given");
    info(r, "(informational: agents learn on the CPU; device=auto chooses it)");
}

/* ---- the command ----------------------------------------------------------------- */

int cmd_doctor(int argc, char **argv)
{
    report_t r = {0};
    int coretype = 0;
    for (int i = 0; i < argc; i++) {
        char b[200];
        const char *a = argv[i];
        if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            r.quiet = 1;
        } else if (strcmp(a, "--coretype") == 0) {
            coretype = 1;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            dlt_usage(stdout);
            return DLT_EXIT_OK;
        } else if (a[0] == '-') {
            dlt_usage_error("doctor: unknown option '%s'",
                            dlt_shown(a, strlen(a), 60, b, sizeof b));
            return DLT_EXIT_USAGE;
        } else {
            dlt_usage_error("doctor: unexpected argument '%s'",
                            dlt_shown(a, strlen(a), 60, b, sizeof b));
            return DLT_EXIT_USAGE;
        }
    }

    /* --coretype: only the OPENBLAS_CORETYPE that gives this CPU better
       kernels than OpenBLAS picked, or nothing (scripts/best-blas.sh) */
    if (coretype) {
        const dls_blas_info *bi = dls_blas_info_get();
        if (bi->verdict.generic && bi->verdict.best && strstr(bi->config, "DYNAMIC_ARCH"))
            printf("%s\n", bi->verdict.best);
        return DLT_EXIT_OK;
    }

    /* before any agent: creating a dqn agent sets OpenBLAS to one thread */
    int threads = openblas_get_num_threads();
    const dls_blas_info *bi = dls_blas_info_get();

    char libdir[PATH_MAX];
    check_library(&r, libdir, sizeof libdir);
    check_blas(&r, bi, threads);
    check_cpu(&r, &bi->cpu);
    check_verdict(&r, bi);
    check_cuda(&r, libdir);

    if (r.groups)
        putchar('\n');
    if (r.findings == 0) {
        printf("doctor: all is well\n");
        return DLT_EXIT_OK;
    }
    printf("doctor: %d finding%s to act on\n", r.findings, r.findings == 1 ? "" : "s");
    return DLT_EXIT_FAIL;
}
