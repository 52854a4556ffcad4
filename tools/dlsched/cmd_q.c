/*
 * cmd_q.c - dlsched q FILE X0,X1,...: the Q-value of every action and the
 * greedy action for a state
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "ckpt_read.h"
#include "cmds.h"
#include "dlsched.h"
#include "msg.h"
#include "num.h"

/* "x0,x1,..." into a malloc'ed array; bad numbers are named */
static int parse_state_arg(const char *arg, float **out, uint32_t *count)
{
    size_t n = 1;
    for (const char *s = arg; *s; s++)
        n += *s == ',';
    char *copy = strdup(arg);
    float *x = malloc(n * sizeof *x);
    if (!copy || !x) {
        free(copy);
        free(x);
        dlt_errmsg("out of memory");
        return DLT_EXIT_FAIL;
    }
    char *s = copy;
    char b[200];
    for (size_t i = 0; i < n; i++) {
        char *comma = strchr(s, ',');
        if (comma)
            *comma = '\0';
        char *t = dlt_trim(s);
        enum dlt_num_status st = dlt_parse_float(t, &x[i]);
        if (st != DLT_NUM_OK) {
            dlt_errmsg("state: number %zu, '%s', %s", i + 1,
                       dlt_shown(t, strlen(t), 60, b, sizeof b), dlt_num_why(st));
            free(copy);
            free(x);
            return DLT_EXIT_USAGE;
        }
        s = comma ? comma + 1 : s;
    }
    free(copy);
    if (n > UINT32_MAX) {
        free(x);
        dlt_errmsg("state: too many numbers");
        return DLT_EXIT_USAGE;
    }
    *out = x;
    *count = (uint32_t)n;
    return DLT_EXIT_OK;
}

int cmd_q(int argc, char **argv)
{
    const char *pos[2];
    size_t npos;
    int a = dlt_parse_args(argc, argv, "q", NULL, 0, pos, 2, &npos);
    if (a != DLT_ARGS_GO)
        return a;
    if (npos != 2) {
        dlt_usage_error("q: a checkpoint FILE and a state X0,X1,... are needed");
        return DLT_EXIT_USAGE;
    }
    float *x = NULL;
    uint32_t n = 0;
    int ex = parse_state_arg(pos[1], &x, &n);
    if (ex != DLT_EXIT_OK)
        return ex;
    dlt_model_t m;
    ex = dlt_model_load(pos[0], &m);
    if (ex != DLT_EXIT_OK) {
        free(x);
        return ex;
    }
    if (n != m.nf) {
        dlt_errmsg("state: %u number%s given but the model has n_features=%u", n,
                   n == 1 ? "" : "s", m.nf);
        free(x);
        dlsched_agent_free(m.ag);
        return DLT_EXIT_USAGE;
    }
    float *q = malloc((size_t)m.na * sizeof *q);
    if (!q) {
        dlt_errmsg("out of memory");
        free(x);
        dlsched_agent_free(m.ag);
        return DLT_EXIT_FAIL;
    }
    dlsched_state_t s = {x, m.nf, 0, NULL, -1, 0};
    dlsched_decision_t d;
    int rc = dlsched_q_values(m.ag, &s, q, m.na);
    if (rc == DLSCHED_OK)
        rc = dlsched_act(m.ag, &s, DLSCHED_ACT_GREEDY, &d);
    if (rc != DLSCHED_OK) {
        dlt_errmsg("state: %s: %s", dlsched_strerror(rc), dlsched_last_error());
        ex = dlt_lib_exit(rc);
    } else {
        float best = -INFINITY;
        uint32_t ties = 0;
        for (uint32_t i = 0; i < m.na; i++)
            if (q[i] > best)
                best = q[i];
        for (uint32_t i = 0; i < m.na; i++) {
            printf("action %u: %.9g\n", i, (double)q[i]);
            ties += q[i] == best;
        }
        printf("greedy: %d\n", (int)d.action);
        if (ties > 1) {
            printf("tied: %u actions share the greatest Q-value (", ties);
            for (uint32_t i = 0, k = 0; i < m.na; i++)
                if (q[i] == best)
                    printf("%s%u", k++ ? " " : "", i);
            printf("); dlsched_act broke the tie at random\n");
        }
    }
    free(q);
    free(x);
    dlsched_agent_free(m.ag);
    return ex;
}
