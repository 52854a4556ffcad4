/*
 * csv.h - dlsched(1)'s logged transitions: a CSV file read line by line,
 * its columns found by name in the header (train-offline, eval)
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DLSCHED_TOOL_CSV_H
#define DLSCHED_TOOL_CSV_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "msg.h"

typedef struct dlt_csv {
    FILE *f;
    const char *name; /* in messages */
    char *line;
    size_t cap;
    uint64_t lineno;
    char **fld; /* the current record's fields, into line */
    size_t nfld, capfld;
} dlt_csv_t;

/* the column of each name the tool knows, from the header line */
typedef struct dlt_colmap {
    size_t ncols;
    char **names;  /* header names, copied */
    size_t *s_col; /* nf entries: column of s<i>, or SIZE_MAX */
    size_t *n_col; /* nf entries: column of n<i>, or SIZE_MAX */
    size_t action_col, reward_col, done_col, prob_col;
    uint64_t header_line;
} dlt_colmap_t;

#define DLT_NO_COL SIZE_MAX

void dlt_colmap_free(dlt_colmap_t *m);

/* open path ("-": stdin) and map the columns of its header line for nf
   features; need_next: n0.. and done required. DLT_EXIT_OK: c is open, to be
   ended with dlt_csv_end; else the exit status (reported) and c is closed.
   m is to be freed with dlt_colmap_free either way. */
int dlt_csv_open(dlt_csv_t *c, dlt_colmap_t *m, const char *path, uint32_t nf, int need_next);

/* close c after its rows: ex, or DLT_EXIT_USAGE (reported) when ex is
   DLT_EXIT_OK but there were no data rows */
int dlt_csv_end(dlt_csv_t *c, const dlt_colmap_t *m, uint64_t rows, int ex);

/* "dlsched: FILE:LINE: column 'NAME': 'VALUE' MESSAGE" on stderr */
void dlt_field_error(const dlt_csv_t *c, const dlt_colmap_t *m, size_t col, const char *fmt,
                     ...) DLT_PRINTF(4, 5);

/* the next data line (blank lines skipped) and the fields every command
   reads, checked: the state s0.. into x (nf floats), the action (0..na-1) and
   the reward. 1: a row; 0: end of file; -1: an error, reported, its exit
   status in *ex (2 malformed, 1 I/O). */
int dlt_csv_row(dlt_csv_t *c, const dlt_colmap_t *m, uint32_t nf, uint32_t na, float *x,
                int32_t *action, float *reward, int *ex);

/* a float from column col of the current row: 0, or -1 (reported) */
int dlt_get_float(const dlt_csv_t *c, const dlt_colmap_t *m, size_t col, float *out);

#endif
