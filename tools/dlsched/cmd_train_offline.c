/*
 * cmd_train_offline.c - dlsched train-offline --config SPEC --data FILE.csv
 * --out FILE [--steps N]: learn from logged transitions and save a
 * checkpoint
 *
 * SPDX-License-Identifier: MIT
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cmds.h"
#include "csv.h"
#include "dlsched.h"
#include "msg.h"
#include "num.h"

static int config_u64(const dlsched_config *cfg, const char *key, uint64_t *out)
{
    char buf[64];
    if (dlsched_config_get(cfg, key, buf, sizeof buf) != DLSCHED_OK ||
        dlt_parse_u64(buf, out) != 0)
        return -1;
    return 0;
}

int cmd_train_offline(int argc, char **argv)
{
    const char *spec = NULL, *data = NULL, *out = NULL, *steps_s = NULL;
    dlt_opt_t opts[] = {
        {"--config", &spec}, {"--data", &data}, {"--out", &out}, {"--steps", &steps_s}};
    const char *pos[1];
    size_t npos;
    int a = dlt_parse_args(argc, argv, "train-offline", opts, 4, pos, 0, &npos);
    if (a != DLT_ARGS_GO)
        return a;
    if (!spec || !data || !out) {
        dlt_usage_error("train-offline: --config, --data and --out are needed");
        return DLT_EXIT_USAGE;
    }
    if (!*out) {
        dlt_usage_error("train-offline: --out is empty");
        return DLT_EXIT_USAGE;
    }
    uint64_t steps = 0;
    if (steps_s && dlt_parse_u64(steps_s, &steps) != 0) {
        dlt_usage_error("train-offline: --steps '%s' is not a non-negative integer", steps_s);
        return DLT_EXIT_USAGE;
    }

    dlsched_config *cfg = NULL;
    int rc = dlsched_config_new(&cfg);
    if (rc != DLSCHED_OK) {
        dlt_errmsg("%s: %s", dlsched_strerror(rc), dlsched_last_error());
        return DLT_EXIT_FAIL;
    }
    rc = dlsched_config_parse(cfg, spec);
    if (rc != DLSCHED_OK) {
        dlt_errmsg("--config: %s", dlsched_last_error());
        dlsched_config_free(cfg);
        return dlt_lib_exit(rc);
    }
    uint64_t nf64 = 0, na64 = 0, replay = 0, batch = 1;
    char algo[32] = "";
    int have_shape =
        config_u64(cfg, "n_features", &nf64) == 0 && config_u64(cfg, "n_actions", &na64) == 0;
    dlsched_config_get(cfg, "algo", algo, sizeof algo);
    config_u64(cfg, "replay", &replay);
    config_u64(cfg, "batch", &batch);
    if (!have_shape) {
        dlt_errmsg("--config: n_features and n_actions are needed");
        dlsched_config_free(cfg);
        return DLT_EXIT_USAGE;
    }
    if (steps > 0 && replay == 0) {
        dlt_errmsg("--steps %" PRIu64
                   ": training steps replay stored transitions, but 'replay' "
                   "is 0 (add replay=N to --config)",
                   steps);
        dlsched_config_free(cfg);
        return DLT_EXIT_USAGE;
    }
    dlsched_agent *ag = NULL;
    rc = dlsched_agent_new(cfg, &ag);
    dlsched_config_free(cfg);
    if (rc != DLSCHED_OK) {
        dlt_errmsg("--config: %s: %s", dlsched_strerror(rc), dlsched_last_error());
        return dlt_lib_exit(rc);
    }
    uint32_t nf = (uint32_t)nf64, na = (uint32_t)na64;

    dlt_csv_t c;
    dlt_colmap_t m;
    memset(&m, 0, sizeof m);
    float *x = malloc(nf * sizeof *x), *y = malloc(nf * sizeof *y);
    int ex = DLT_EXIT_OK;
    if (!x || !y) {
        dlt_errmsg("out of memory");
        ex = DLT_EXIT_FAIL;
    } else if ((ex = dlt_csv_open(&c, &m, data, nf, 1)) == DLT_EXIT_OK) {
        uint64_t rows = 0;
        while (ex == DLT_EXIT_OK) {
            int32_t action = 0;
            float reward = 0, done = 0;
            if (dlt_csv_row(&c, &m, nf, na, x, &action, &reward, &ex) <= 0)
                break;
            enum dlt_num_status st = dlt_parse_float(c.fld[m.done_col], &done);
            if (st != DLT_NUM_OK || (done != 0.0f && done != 1.0f)) {
                dlt_field_error(&c, &m, m.done_col, "is not 0 or 1");
                ex = DLT_EXIT_USAGE;
                break;
            }
            /* a terminal row may leave the next state empty */
            int next_given = 1;
            if (done == 1.0f)
                for (uint32_t i = 0; i < nf; i++)
                    if (c.fld[m.n_col[i]][0] == '\0')
                        next_given = 0;
            for (uint32_t i = 0; next_given && i < nf; i++) {
                st = dlt_parse_float(c.fld[m.n_col[i]], &y[i]);
                if (st != DLT_NUM_OK) {
                    dlt_field_error(&c, &m, m.n_col[i], "%s%s", dlt_num_why(st),
                                    st == DLT_NUM_EMPTY
                                        ? " (the next state may be empty only when "
                                          "done is 1)"
                                        : "");
                    ex = DLT_EXIT_USAGE;
                    break;
                }
            }
            if (ex != DLT_EXIT_OK)
                break;
            dlsched_state_t s = {x, nf, 0, NULL, -1, 0};
            dlsched_state_t ns = {y, nf, 0, NULL, -1, 0};
            rc = dlsched_observe_transition(ag, &s, action, reward, next_given ? &ns : NULL,
                                            done == 1.0f ? DLSCHED_OBS_TERMINAL : 0);
            if (rc != DLSCHED_OK) {
                dlt_errmsg("%s:%" PRIu64 ": the library refused the transition: %s: %s", c.name,
                           c.lineno, dlsched_strerror(rc), dlsched_last_error());
                ex = dlt_lib_exit(rc);
                break;
            }
            rows++;
        }
        ex = dlt_csv_end(&c, &m, rows, ex);
        uint64_t extra = 0;
        if (ex == DLT_EXIT_OK) {
            if (steps_s)
                extra = steps;
            else if (replay == 0)
                extra = 0;
            else if (strcmp(algo, "qtable") == 0)
                extra = 10 * rows;
            else
                extra = (10 * rows + batch - 1) / (batch ? batch : 1);
            for (uint64_t left = extra; left > 0 && ex == DLT_EXIT_OK;) {
                uint32_t chunk = left > 1000000 ? 1000000 : (uint32_t)left;
                rc = dlsched_train(ag, chunk);
                if (rc != DLSCHED_OK) {
                    dlt_errmsg("training: %s: %s", dlsched_strerror(rc), dlsched_last_error());
                    ex = dlt_lib_exit(rc);
                }
                left -= chunk;
            }
        }
        if (ex == DLT_EXIT_OK) {
            rc = dlsched_save(ag, out);
            if (rc != DLSCHED_OK) {
                dlt_errmsg("%s: %s", dlsched_strerror(rc), dlsched_last_error());
                ex = DLT_EXIT_FAIL;
            }
        }
        if (ex == DLT_EXIT_OK) {
            dlsched_stats_t st;
            memset(&st, 0, sizeof st);
            dlsched_stats(ag, &st, sizeof st);
            printf("rows: %" PRIu64 "\n", rows);
            printf("transitions: %" PRIu64 "\n", st.transitions);
            printf("transitions_stored: %" PRIu64 "\n", st.transitions_stored);
            printf("extra_train_steps: %" PRIu64 "%s\n", extra, steps_s ? "" : " (default)");
            printf("train_steps: %" PRIu64 "\n", st.train_steps);
            printf("last_loss: %.9g\n", st.last_loss);
            printf("mean_reward: %.9g\n", st.mean_reward);
            printf("wrote: %s\n", out);
        }
    }
    dlt_colmap_free(&m);
    free(x);
    free(y);
    dlsched_agent_free(ag);
    return ex;
}
