/*
 * cmd_eval.c - dlsched eval FILE --data FILE.csv: agreement of the greedy
 * policy with logged actions and, with a probability column, IPS and SNIPS
 * estimates
 *
 * SPDX-License-Identifier: MIT
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "ckpt_read.h"
#include "cmds.h"
#include "csv.h"
#include "dlsched.h"
#include "msg.h"

int cmd_eval(int argc, char **argv)
{
    const char *data = NULL;
    dlt_opt_t opts[] = {{"--data", &data}};
    const char *pos[1];
    size_t npos;
    int a = dlt_parse_args(argc, argv, "eval", opts, 1, pos, 1, &npos);
    if (a != DLT_ARGS_GO)
        return a;
    if (npos != 1 || !data) {
        dlt_usage_error("eval: a checkpoint FILE and --data FILE.csv are needed");
        return DLT_EXIT_USAGE;
    }
    dlt_model_t mo;
    int ex = dlt_model_load(pos[0], &mo);
    if (ex != DLT_EXIT_OK)
        return ex;
    uint32_t nf = mo.nf, na = mo.na;
    float *x = malloc(nf * sizeof *x), *q = malloc(na * sizeof *q);
    dlt_csv_t c;
    dlt_colmap_t m;
    memset(&m, 0, sizeof m);
    if (!x || !q) {
        dlt_errmsg("out of memory");
        ex = DLT_EXIT_FAIL;
    } else if ((ex = dlt_csv_open(&c, &m, data, nf, 0)) == DLT_EXIT_OK) {
        uint64_t rows = 0;
        double agree = 0, reward_sum = 0, ips_sum = 0, w_sum = 0, wr_sum = 0;
        int has_p = m.prob_col != DLT_NO_COL;
        while (ex == DLT_EXIT_OK) {
            int32_t action = 0;
            float reward = 0, p = 1;
            if (dlt_csv_row(&c, &m, nf, na, x, &action, &reward, &ex) <= 0)
                break;
            if (has_p && dlt_get_float(&c, &m, m.prob_col, &p) != 0) {
                ex = DLT_EXIT_USAGE;
                break;
            }
            if (has_p && !(p > 0.0f && p <= 1.0f)) {
                dlt_field_error(&c, &m, m.prob_col, "is not a probability in (0, 1]");
                ex = DLT_EXIT_USAGE;
                break;
            }
            dlsched_state_t s = {x, nf, 0, NULL, -1, 0};
            int rc = dlsched_q_values(mo.ag, &s, q, na);
            if (rc != DLSCHED_OK) {
                dlt_errmsg("%s:%" PRIu64 ": %s: %s", c.name, c.lineno, dlsched_strerror(rc),
                           dlsched_last_error());
                ex = dlt_lib_exit(rc);
                break;
            }
            /* the greedy policy with the library's uniform tie-break: the
               logged action's probability under it is 1/k when it is one of
               k actions sharing the greatest Q-value, else 0 */
            float best = -INFINITY;
            uint32_t k = 0;
            for (uint32_t i = 0; i < na; i++)
                if (q[i] > best)
                    best = q[i];
            for (uint32_t i = 0; i < na; i++)
                k += q[i] == best;
            double pi = (k > 0 && q[action] == best) ? 1.0 / k : 0.0;
            agree += pi;
            reward_sum += reward;
            if (has_p) {
                double w = pi / p;
                ips_sum += reward * w;
                w_sum += w;
                wr_sum += reward * w;
            }
            rows++;
        }
        ex = dlt_csv_end(&c, &m, rows, ex);
        if (ex == DLT_EXIT_OK) {
            double nr = (double)rows;
            printf("rows: %" PRIu64 "\n", rows);
            printf("agreement: %.6f (share of rows whose logged action is the greedy one; "
                   "ties count 1/k)\n",
                   agree / nr);
            printf("logged_mean_reward: %.9g\n", reward_sum / nr);
            if (has_p) {
                printf("ips: %.9g (inverse propensity estimate of the greedy policy's mean "
                       "reward)\n",
                       ips_sum / nr);
                if (w_sum > 0)
                    printf("snips: %.9g (self-normalised; weights sum to %.6g, mean %.6g)\n",
                           wr_sum / w_sum, w_sum, w_sum / nr);
                else
                    printf("snips: undefined (no logged action is a greedy one)\n");
            } else {
                printf("ips: n/a (no probability column)\n");
                printf("snips: n/a (no probability column)\n");
            }
        }
    }
    dlt_colmap_free(&m);
    free(x);
    free(q);
    dlsched_agent_free(mo.ag);
    return ex;
}
