/*
 * main.c - the dlsched command-line tool (dlsched(1)): the table of
 * sub-commands, the usage text made from it, and the dispatch
 *
 *   dlsched inspect FILE
 *   dlsched q FILE X0,X1,...
 *   dlsched train-offline --config SPEC --data FILE.csv --out FILE [--steps N]
 *   dlsched eval FILE --data FILE.csv
 *   dlsched doctor [--quiet | --coretype]
 *
 * Everything goes through the public API (dlsched.h) except `inspect`,
 * which reads the checkpoint's header and sections itself (format in
 * src/core/checkpoint.c and dlsched-checkpoint(5)) so that it can describe
 * files the library refuses; every offset it reads is checked against the
 * bytes there are (ckpt_read.c); and `doctor`, which also asks the
 * library's internals (src/backends/cpu/blasinfo.h, kernels.h,
 * src/core/plugin.h) what OpenBLAS, the CPU and the CUDA plugin offer, and
 * the loader which libdlsched.so.1 a host gets.
 *
 * Exit status: 0 success; 1 failure (a checkpoint that does not load, an
 * I/O or library error; doctor: findings to act on); 2 usage error or malformed input (options, state
 * vector, configuration spec, CSV data).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "dlsched.h"
#include "msg.h"

/* the sub-commands, in the order of the usage text */
static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *args; /* what follows the name in the usage text */
    const char *help; /* one line; a "\n" where the usage text wraps it */
} commands[] = {
    {"inspect", cmd_inspect, "FILE",
     "describe a checkpoint (header, checksum, configuration,\n"
     "shape, counters) and check that it loads"},
    {"q", cmd_q, "FILE X0,X1,...", "Q-value of every action and the greedy action for a state"},
    {"train-offline", cmd_train_offline, "--config SPEC --data FILE.csv --out FILE [--steps N]",
     "learn from logged transitions and save a checkpoint"},
    {"eval", cmd_eval, "FILE --data FILE.csv",
     "agreement of the greedy policy with logged actions and,\n"
     "with a probability column, IPS and SNIPS estimates"},
    {"doctor", cmd_doctor, "[--quiet | --coretype]",
     "check what a host gets here: the libdlsched.so.1 it\n"
     "loads, OpenBLAS's kernels on this CPU, CUDA"},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const char usage_head[] = "usage: dlsched COMMAND [ARGUMENTS]\n"
                                 "\n"
                                 "commands:\n";

static const char usage_tail[] =
    "\n"
    "CSV: a header line, then one transition per line; columns matched by name, in\n"
    "any order: s0..s{n-1} (state), action, reward, n0..n{n-1} (next state), done\n"
    "(0 or 1), probability (optional; eval only). Other names are ignored.\n"
    "\n"
    "Exit status: 0 success, 1 failure (e.g. the checkpoint does not load;\n"
    "doctor: findings to act on), 2 usage error or malformed input. See dlsched(1).\n";

/* where the help of every row starts */
#define HELP_COLUMN 24

/* "  NAME ARGS" and the help from HELP_COLUMN: on the same line when two
   spaces fit between them, else on the next; the help's lines indented alike */
static void usage_row(FILE *out, const char *name, const char *args, const char *help)
{
    size_t n = 2 + strlen(name) + (args ? 1 + strlen(args) : 0);
    fprintf(out, "  %s%s%s", name, args ? " " : "", args ? args : "");
    if (n + 2 > HELP_COLUMN) {
        fputc('\n', out);
        n = 0;
    }
    for (;;) {
        const char *nl = strchr(help, '\n');
        int len = nl ? (int)(nl - help) : (int)strlen(help);
        fprintf(out, "%*s%.*s\n", HELP_COLUMN - (int)n, "", len, help);
        if (!nl)
            break;
        help = nl + 1;
        n = 0;
    }
}

static void write_usage(FILE *out)
{
    fputs(usage_head, out);
    for (size_t i = 0; i < N_COMMANDS; i++)
        usage_row(out, commands[i].name, commands[i].args, commands[i].help);
    usage_row(out, "--help", NULL, "this text");
    usage_row(out, "--version", NULL, "the libdlsched version");
    fputs(usage_tail, out);
}

void dlt_usage(FILE *out)
{
    /* composed first, to leave in one write: stderr is unbuffered */
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    int composed = 0;
    if (m) {
        write_usage(m);
        composed = fclose(m) == 0;
    }
    if (composed)
        fwrite(text, 1, len, out);
    else
        write_usage(out);
    free(text);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        dlt_usage_error("a command is needed");
        return DLT_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    size_t i;
    for (i = 0; i < N_COMMANDS; i++)
        if (strcmp(cmd, commands[i].name) == 0)
            break;
    int ex;
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        dlt_usage(stdout);
        ex = DLT_EXIT_OK;
    } else if (strcmp(cmd, "--version") == 0) {
        printf("dlsched (libdlsched) %s\n", dlsched_version_string());
        ex = DLT_EXIT_OK;
    } else if (i < N_COMMANDS) {
        ex = commands[i].run(argc - 2, argv + 2);
    } else {
        char b[200];
        dlt_usage_error("unknown command '%s'", dlt_shown(cmd, strlen(cmd), 60, b, sizeof b));
        ex = DLT_EXIT_USAGE;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        dlt_errmsg("writing the output failed: %s", strerror(errno));
        if (ex == DLT_EXIT_OK)
            ex = DLT_EXIT_FAIL;
    }
    return ex;
}
