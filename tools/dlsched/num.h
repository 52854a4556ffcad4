/*
 * num.h - dlsched(1)'s numbers from text: the state vector of `q`, the
 * fields of the CSV data, --steps and configuration values
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DLSCHED_TOOL_NUM_H
#define DLSCHED_TOOL_NUM_H

#include <stdint.h>

enum dlt_num_status {
    DLT_NUM_OK,
    DLT_NUM_EMPTY,
    DLT_NUM_BAD,
    DLT_NUM_NONFINITE,
    DLT_NUM_RANGE
};

/* a finite number that fits a float; s is trimmed. *out is set only on
   DLT_NUM_OK. */
enum dlt_num_status dlt_parse_float(const char *s, float *out);

/* what is wrong, to follow the offending text: "is not a number" */
const char *dlt_num_why(enum dlt_num_status st);

/* s without leading blanks and tabs and without trailing blanks, tabs, CR and
   LF (cut in place) */
char *dlt_trim(char *s);

/* an unsigned decimal integer, whole string: 0, or -1 */
int dlt_parse_u64(const char *s, uint64_t *out);

#endif
