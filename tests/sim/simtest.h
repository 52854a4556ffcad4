/*
 * simtest.h - what the simulator's test programs (check_sim.c, check_kv.c)
 * share: the source tree, scenario parsing and runs that must succeed,
 * temporary files, a log of each request's latency by id
 */
#ifndef DLSCHED_SIMTEST_H
#define DLSCHED_SIMTEST_H

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim.h"

static inline const char *top_dir(void)
{
    const char *t = getenv("DLSCHED_TOP");
    return t && *t ? t : ".";
}

static inline void parse_ok(const char *text, sim_scenario *sc)
{
    sim_err e = {{0}};
    int rc = sim_scenario_parse(text, "inline.scn", sc, &e);
    ck_assert_msg(rc == 0, "parse: %s", e.msg);
}

static inline sim_policy_spec policy(const sim_scenario *sc, const char *name)
{
    sim_policy_spec p;
    sim_err e = {{0}};
    ck_assert_msg(sim_policy_parse(sc, name, &p, &e) == 0, "policy %s: %s", name, e.msg);
    return p;
}

static inline void run_ok(const sim_scenario *sc, const char *name, const sim_options *opt,
                          sim_result *r)
{
    sim_policy_spec p = policy(sc, name);
    sim_err e = {{0}};
    int rc = sim_run_policy(sc, &p, opt, r, &e);
    ck_assert_msg(rc == 0, "run %s: %s", name, e.msg);
}

/* writes text to a fresh temporary file; path receives its name */
static inline void temp_file(char *path, size_t n, const char *suffix_tag, const char *text)
{
    snprintf(path, n, "/tmp/check_sim_%s_XXXXXX", suffix_tag);
    int fd = mkstemp(path);
    ck_assert_msg(fd >= 0, "mkstemp %s", path);
    size_t len = strlen(text);
    ck_assert_int_eq((long)write(fd, text, len), (long)len);
    close(fd);
}

/* each request's latency by id (ids below 8): an on_complete hook */
typedef struct {
    double done[8];
    int n;
} done_log;

static inline void log_done(void *user, uint64_t id, double arrive_ms, double done_ms,
                            int srv, int variant)
{
    done_log *l = user;
    (void)srv;
    (void)variant;
    ck_assert_uint_lt(id, 8);
    l->done[id] = done_ms - arrive_ms;
    l->n++;
}

#endif
