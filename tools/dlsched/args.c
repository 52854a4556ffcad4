/*
 * args.c - dlsched(1)'s sub-command arguments (args.h)
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "msg.h"

int dlt_parse_args(int argc, char **argv, const char *cmd, dlt_opt_t *opts, size_t nopts,
                   const char **pos, size_t maxpos, size_t *npos)
{
    int only_pos = 0;
    *npos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (!only_pos && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
            dlt_usage(stdout);
            return DLT_EXIT_OK;
        }
        if (!only_pos && a[0] == '-' && a[1] == '-') {
            const char *eq = strchr(a, '=');
            size_t n = eq ? (size_t)(eq - a) : strlen(a);
            size_t k;
            for (k = 0; k < nopts; k++)
                if (strlen(opts[k].name) == n && strncmp(opts[k].name, a, n) == 0)
                    break;
            if (k == nopts) {
                dlt_usage_error("%s: unknown option '%.*s'", cmd, (int)n, a);
                return DLT_EXIT_USAGE;
            }
            const char *val;
            if (eq) {
                val = eq + 1;
            } else if (i + 1 < argc) {
                val = argv[++i];
            } else {
                dlt_usage_error("%s: option %s needs a value", cmd, opts[k].name);
                return DLT_EXIT_USAGE;
            }
            if (*opts[k].value) {
                dlt_usage_error("%s: option %s given twice", cmd, opts[k].name);
                return DLT_EXIT_USAGE;
            }
            *opts[k].value = val;
            continue;
        }
        if (!only_pos && a[0] == '-' && a[1] != '\0' && a[1] != '.' &&
            (a[1] < '0' || a[1] > '9')) {
            dlt_usage_error("%s: unknown option '%s'", cmd, a);
            return DLT_EXIT_USAGE;
        }
        if (*npos == maxpos) {
            dlt_usage_error("%s: unexpected argument '%s'", cmd, a);
            return DLT_EXIT_USAGE;
        }
        pos[(*npos)++] = a;
    }
    return DLT_ARGS_GO;
}
