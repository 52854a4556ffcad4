/*
 * args.h - dlsched(1)'s sub-command arguments: options by name, the rest
 * positional
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DLSCHED_TOOL_ARGS_H
#define DLSCHED_TOOL_ARGS_H

#include <stddef.h>

typedef struct dlt_opt {
    const char *name;   /* "--data" */
    const char **value; /* set to the option's value; NULL beforehand */
} dlt_opt_t;

/* dlt_parse_args: the command goes on */
enum { DLT_ARGS_GO = -1 };

/* options (--name VALUE or --name=VALUE) anywhere, "--" ends them; the rest
   are positional (at most maxpos, into pos; *npos of them). cmd names the
   sub-command in messages. Returns DLT_ARGS_GO, or the exit status to end
   the command with: DLT_EXIT_OK after --help or -h (the usage text printed
   on stdout), DLT_EXIT_USAGE after a usage error (reported). */
int dlt_parse_args(int argc, char **argv, const char *cmd, dlt_opt_t *opts, size_t nopts,
                   const char **pos, size_t maxpos, size_t *npos);

#endif
