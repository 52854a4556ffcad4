/*
 * msg.h - dlsched(1)'s exit statuses and messages: every message goes to
 * stderr as "dlsched: ...", usage errors followed by the usage text.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DLSCHED_TOOL_MSG_H
#define DLSCHED_TOOL_MSG_H

#include <stddef.h>
#include <stdio.h>

#define DLT_PRINTF(a, b) __attribute__((format(printf, a, b)))

enum { DLT_EXIT_OK = 0, DLT_EXIT_FAIL = 1, DLT_EXIT_USAGE = 2 };

/* the usage text of the whole tool, made from the command table (main.c) */
void dlt_usage(FILE *out);

/* "dlsched: MESSAGE", a blank line and the usage text, on stderr */
void dlt_usage_error(const char *fmt, ...) DLT_PRINTF(1, 2);

/* "dlsched: MESSAGE" on stderr */
void dlt_errmsg(const char *fmt, ...) DLT_PRINTF(1, 2);

/* the exit status for a library status code: bad input (2) or failure (1) */
int dlt_lib_exit(int rc);

/* a printable, bounded rendition of untrusted text: at most max of its n
   bytes, non-printable bytes as \xNN, "..." when cut; written into buf (cap
   bytes), which is returned */
const char *dlt_shown(const char *s, size_t n, size_t max, char *buf, size_t cap);

#endif
