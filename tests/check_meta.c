/* check_meta.c - the promises around the code: version, exports, man pages,
 * dependencies. Reads DLSCHED_TOP (source tree) and DLSCHED_SO (the built
 * libdlsched.so.1), which `make check` sets. */
#include <dlfcn.h>
#include <stdio.h>
#include <sys/stat.h>

#include "core/registry.h"
#include "tests.h"

#define MAXSYM 128

static const char *top(void)
{
    const char *t = getenv("DLSCHED_TOP");
    return t ? t : ".";
}

static const char *so_path(void)
{
    const char *p = getenv("DLSCHED_SO");
    return p ? p : "lib/libdlsched.so.1";
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* names listed under global: in the version script */
static int map_symbols(char names[][64])
{
    char path[600];
    snprintf(path, sizeof path, "%.400s/src/dlsched.map", top());
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char line[256];
    int n = 0, in_global = 0;
    while (fgets(line, sizeof line, f)) {
        char word[128];
        if (sscanf(line, " %127[a-zA-Z_0-9:*]", word) != 1)
            continue;
        if (strcmp(word, "global:") == 0) {
            in_global = 1;
            continue;
        }
        if (strcmp(word, "local:") == 0) {
            in_global = 0;
            continue;
        }
        if (in_global && strncmp(word, "dlsched_", 8) == 0) {
            ck_assert_int_lt(n, MAXSYM);
            snprintf(names[n++], 64, "%.63s", word);
        }
    }
    fclose(f);
    return n;
}

/* defined dynamic symbols of the shared library (without @@VERSION) */
static int exported_symbols(char names[][64])
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "nm -D --defined-only '%s'", so_path());
    FILE *p = popen(cmd, "r");
    ck_assert_msg(p != NULL, "cannot run nm");
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, p)) {
        char addr[64], type[8], name[128];
        if (sscanf(line, "%63s %7s %127s", addr, type, name) != 3)
            continue;
        if (type[0] == 'A') /* the version node itself */
            continue;
        char *at = strchr(name, '@');
        if (at)
            *at = '\0';
        ck_assert_int_lt(n, MAXSYM);
        snprintf(names[n++], 64, "%.63s", name);
    }
    ck_assert_int_eq(pclose(p), 0);
    return n;
}

static int has(char names[][64], int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return 1;
    return 0;
}

START_TEST(test_runtime_version)
{
    void *h = dlopen(so_path(), RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(h != NULL, "dlopen %s: %s", so_path(), dlerror());
    unsigned (*ver)(void) = (unsigned (*)(void))dlsym(h, "dlsched_version");
    const char *(*vstr)(void) = (const char *(*)(void))dlsym(h, "dlsched_version_string");
    ck_assert_ptr_nonnull(ver);
    ck_assert_ptr_nonnull(vstr);
    ck_assert_uint_eq(ver(), DLSCHED_VERSION_NUMBER);
    ck_assert_uint_eq(ver(), DLSCHED_VERSION_MAJOR * 10000u + DLSCHED_VERSION_MINOR * 100u +
                                 DLSCHED_VERSION_PATCH);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", DLSCHED_VERSION_MAJOR, DLSCHED_VERSION_MINOR,
             DLSCHED_VERSION_PATCH);
    ck_assert_str_eq(vstr(), want);
    ck_assert_str_eq(dlsched_version_string(), want);
    dlclose(h);
}
END_TEST

START_TEST(test_exports_equal_map)
{
    static char map[MAXSYM][64], exp[MAXSYM][64];
    int nm = map_symbols(map), ne = exported_symbols(exp);
    ck_assert_int_gt(nm, 10);
    for (int i = 0; i < ne; i++)
        ck_assert_msg(has(map, nm, exp[i]), "%s is exported but not in dlsched.map", exp[i]);
    for (int i = 0; i < nm; i++)
        ck_assert_msg(has(exp, ne, map[i]), "%s is in dlsched.map but not exported", map[i]);
    ck_assert_int_eq(nm, ne);
}
END_TEST

/* every exported function is declared in the header and has its man3 page */
START_TEST(test_every_function_documented)
{
    static char exp[MAXSYM][64];
    int ne = exported_symbols(exp);
    char path[600];
    snprintf(path, sizeof path, "%.400s/include/dlsched.h", top());
    char *hdr = slurp(path);
    for (int i = 0; i < ne; i++) {
        char decl[96];
        snprintf(decl, sizeof decl, "%.63s(", exp[i]);
        int declared = 0;
        for (const char *p = strstr(hdr, decl); p && !declared; p = strstr(p + 1, decl))
            declared = p > hdr && (p[-1] == ' ' || p[-1] == '*') && strstr(p - 64 > hdr ? p - 64 : hdr, "DLSCHED_API");
        ck_assert_msg(declared, "%s is not declared in dlsched.h", exp[i]);
        snprintf(path, sizeof path, "%.400s/man/man3/%.63s.3", top(), exp[i]);
        struct stat sb;
        ck_assert_msg(stat(path, &sb) == 0, "no man page %s", path);
        char *page = slurp(path);
        ck_assert_msg(strstr(page, ".SH NAME"), "%s has no NAME section", path);
        static const char *sections[] = {"SYNOPSIS", "DESCRIPTION", "RETURN VALUE",
                                         "THREAD SAFETY", "EXAMPLE", "SEE ALSO", "HISTORY"};
        for (size_t k = 0; k < sizeof sections / sizeof sections[0]; k++)
            ck_assert_msg(strstr(page, sections[k]), "%s lacks %s", path, sections[k]);
        ck_assert_msg(strstr(page, exp[i]), "%s does not name %s", path, exp[i]);
        free(page);
    }
    free(hdr);
}
END_TEST

/* every config key of the registry is in dlsched(7) */
START_TEST(test_every_key_documented)
{
    char path[600];
    snprintf(path, sizeof path, "%.400s/man/man7/dlsched.7", top());
    char *page = slurp(path);
    for (int i = 0; i < DLS_N_KEYS; i++) {
        char row[80];
        snprintf(row, sizeof row, "\n%s;", dls_keys[i].name);
        ck_assert_msg(strstr(page, row), "key %s is not in the table of dlsched(7)",
                      dls_keys[i].name);
    }
    ck_assert_msg(!strstr(page, "@KEYTABLE@"), "dlsched(7) still has its placeholder");
    free(page);
}
END_TEST

/* the core links only libc, libm, pthreads, libdl, OpenBLAS and zlib, and
   never CUDA */
START_TEST(test_core_dependencies)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "readelf -d '%s'", so_path());
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    char line[512];
    int needed = 0;
    static const char *allowed[] = {"libc.so", "libm.so", "libpthread.so", "libdl.so",
                                    "libopenblas.so", "libblas.so", "libz.so",
                                    "ld-linux", "libasan", "libubsan", "libtsan"};
    while (fgets(line, sizeof line, p)) {
        char *b = strstr(line, "Shared library: [");
        if (!b)
            continue;
        needed++;
        b += strlen("Shared library: [");
        ck_assert_msg(!strstr(b, "cuda") && !strstr(b, "cublas"), "core links %s", b);
        int ok = 0;
        for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
            ok |= strncmp(b, allowed[i], strlen(allowed[i])) == 0;
        ck_assert_msg(ok, "unexpected run-time dependency %s", b);
    }
    ck_assert_int_eq(pclose(p), 0);
    ck_assert_int_gt(needed, 0);
    /* and it works with no CUDA plugin: */
    ck_assert_int_eq(dlsched_backend_available("cuda"), 0);
    dlsched_agent *ag = tst_agent("algo=qtable n_features=1 n_actions=2 device=auto");
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_eq(st.backend, DLSCHED_BACKEND_CPU);
    dlsched_agent_free(ag);
}
END_TEST

Suite *suite_meta(void)
{
    Suite *s = suite_create("meta");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_runtime_version);
    tcase_add_test(tc, test_exports_equal_map);
    tcase_add_test(tc, test_every_function_documented);
    tcase_add_test(tc, test_every_key_documented);
    suite_add_tcase(s, tc);
    TCase *lim = tcase_create("limits");
    tcase_add_test(lim, test_core_dependencies);
    suite_add_tcase(s, lim);
    return s;
}
