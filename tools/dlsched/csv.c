/*
 * csv.c - dlsched(1)'s logged transitions (csv.h)
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "csv.h"
#include "msg.h"
#include "num.h"

static int open_file(dlt_csv_t *c, const char *path)
{
    memset(c, 0, sizeof *c);
    c->name = path;
    if (strcmp(path, "-") == 0) {
        c->f = stdin;
        c->name = "(stdin)";
        return 0;
    }
    c->f = fopen(path, "r");
    if (!c->f) {
        dlt_errmsg("cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fileno(c->f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        dlt_errmsg("'%s' is a directory", path);
        fclose(c->f);
        c->f = NULL;
        return -1;
    }
    return 0;
}

static void csv_close(dlt_csv_t *c)
{
    if (c->f && c->f != stdin)
        fclose(c->f);
    free(c->line);
    free(c->fld);
    c->f = NULL;
    c->line = NULL;
    c->fld = NULL;
}

/* the next non-blank line, split at commas, fields trimmed.
   1: a record; 0: end of file; -1: error (reported, exit status 2 or 1 in *why) */
static int csv_next(dlt_csv_t *c, int *why)
{
    for (;;) {
        errno = 0;
        ssize_t n = getline(&c->line, &c->cap, c->f);
        if (n < 0) {
            if (ferror(c->f) || !feof(c->f)) {
                dlt_errmsg("%s: read error after line %" PRIu64 ": %s", c->name, c->lineno,
                           strerror(errno ? errno : EIO));
                *why = DLT_EXIT_FAIL;
                return -1;
            }
            return 0;
        }
        c->lineno++;
        if (memchr(c->line, '\0', (size_t)n) != NULL) {
            dlt_errmsg("%s:%" PRIu64 ": the line contains a NUL byte", c->name, c->lineno);
            *why = DLT_EXIT_USAGE;
            return -1;
        }
        char *s = c->line;
        if (c->lineno == 1 && (unsigned char)s[0] == 0xef && (unsigned char)s[1] == 0xbb &&
            (unsigned char)s[2] == 0xbf)
            s += 3; /* a UTF-8 byte order mark */
        s = dlt_trim(s);
        if (*s == '\0')
            continue;
        c->nfld = 0;
        for (;;) {
            if (c->nfld == c->capfld) {
                size_t ncap = c->capfld ? c->capfld * 2 : 64;
                char **nf = realloc(c->fld, ncap * sizeof *nf);
                if (!nf) {
                    dlt_errmsg("out of memory reading %s", c->name);
                    *why = DLT_EXIT_FAIL;
                    return -1;
                }
                c->fld = nf;
                c->capfld = ncap;
            }
            char *comma = strchr(s, ',');
            if (comma)
                *comma = '\0';
            c->fld[c->nfld++] = dlt_trim(s);
            if (!comma)
                break;
            s = comma + 1;
        }
        return 1;
    }
}

void dlt_colmap_free(dlt_colmap_t *m)
{
    if (m->names)
        for (size_t i = 0; i < m->ncols; i++)
            free(m->names[i]);
    free(m->names);
    free(m->s_col);
    free(m->n_col);
    memset(m, 0, sizeof *m);
}

/* s<i> / n<i> with i canonical decimal: i, else -1 */
static long feature_index(const char *name)
{
    const char *d = name + 1;
    size_t n = strlen(d);
    if (n == 0 || n > 8 || (n > 1 && d[0] == '0'))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (d[i] < '0' || d[i] > '9')
            return -1;
    return strtol(d, NULL, 10);
}

/* "s0", "s0,s1", "s0..s9" */
static void feature_range(char p, uint32_t nf, char *buf, size_t cap)
{
    if (nf == 1)
        snprintf(buf, cap, "%c0", p);
    else if (nf == 2)
        snprintf(buf, cap, "%c0, %c1", p, p);
    else
        snprintf(buf, cap, "%c0..%c%u", p, p, nf - 1);
}

/* read the header line and map the columns; need_next: n0.. and done required */
static int colmap_read(dlt_csv_t *c, dlt_colmap_t *m, uint32_t nf, int need_next)
{
    memset(m, 0, sizeof *m);
    int why = DLT_EXIT_USAGE;
    int got = csv_next(c, &why);
    if (got < 0)
        return why;
    if (got == 0) {
        dlt_errmsg("%s:%" PRIu64
                   ": the file is empty; a header line naming the columns is needed",
                   c->name, c->lineno + 1);
        return DLT_EXIT_USAGE;
    }
    m->header_line = c->lineno;
    m->ncols = c->nfld;
    m->names = calloc(m->ncols, sizeof *m->names);
    m->s_col = malloc(nf * sizeof *m->s_col);
    m->n_col = malloc(nf * sizeof *m->n_col);
    if (!m->names || !m->s_col || !m->n_col) {
        dlt_errmsg("out of memory reading %s", c->name);
        return DLT_EXIT_FAIL;
    }
    for (uint32_t i = 0; i < nf; i++)
        m->s_col[i] = m->n_col[i] = DLT_NO_COL;
    m->action_col = m->reward_col = m->done_col = m->prob_col = DLT_NO_COL;
    char b1[200];
    for (size_t j = 0; j < m->ncols; j++) {
        const char *name = c->fld[j];
        m->names[j] = strdup(name);
        if (!m->names[j]) {
            dlt_errmsg("out of memory reading %s", c->name);
            return DLT_EXIT_FAIL;
        }
        size_t *slot = NULL;
        if (strcmp(name, "action") == 0)
            slot = &m->action_col;
        else if (strcmp(name, "reward") == 0)
            slot = &m->reward_col;
        else if (strcmp(name, "done") == 0)
            slot = &m->done_col;
        else if (strcmp(name, "probability") == 0)
            slot = &m->prob_col;
        else if (name[0] == 's' || name[0] == 'n') {
            long k = feature_index(name);
            if (k >= 0 && (uint64_t)k >= nf) {
                char sr[40], nr[40];
                feature_range('s', nf, sr, sizeof sr);
                feature_range('n', nf, nr, sizeof nr);
                dlt_errmsg("%s:%" PRIu64 ": column %zu '%s': n_features is %u, so the state "
                           "columns are %s and %s",
                           c->name, c->lineno, j + 1,
                           dlt_shown(name, strlen(name), 40, b1, sizeof b1), nf, sr, nr);
                return DLT_EXIT_USAGE;
            }
            if (k >= 0)
                slot = name[0] == 's' ? &m->s_col[k] : &m->n_col[k];
        }
        if (!slot)
            continue; /* not ours: ignored */
        if (*slot != DLT_NO_COL) {
            dlt_errmsg("%s:%" PRIu64 ": column '%s' appears twice (columns %zu and %zu)",
                       c->name, c->lineno, name, *slot + 1, j + 1);
            return DLT_EXIT_USAGE;
        }
        *slot = j;
    }
    const char *missing = NULL;
    char mbuf[32];
    for (uint32_t i = 0; i < nf && !missing; i++)
        if (m->s_col[i] == DLT_NO_COL) {
            snprintf(mbuf, sizeof mbuf, "s%u", i);
            missing = mbuf;
        }
    if (!missing && m->action_col == DLT_NO_COL)
        missing = "action";
    if (!missing && m->reward_col == DLT_NO_COL)
        missing = "reward";
    for (uint32_t i = 0; need_next && i < nf && !missing; i++)
        if (m->n_col[i] == DLT_NO_COL) {
            snprintf(mbuf, sizeof mbuf, "n%u", i);
            missing = mbuf;
        }
    if (!missing && need_next && m->done_col == DLT_NO_COL)
        missing = "done";
    if (missing) {
        char sr[40], nr[40];
        feature_range('s', nf, sr, sizeof sr);
        feature_range('n', nf, nr, sizeof nr);
        dlt_errmsg("%s:%" PRIu64
                   ": column '%s' is missing from the header (needed: %s, action, "
                   "reward%s%s%s)",
                   c->name, c->lineno, missing, sr, need_next ? ", " : "", need_next ? nr : "",
                   need_next ? ", done" : "");
        return DLT_EXIT_USAGE;
    }
    return DLT_EXIT_OK;
}

void dlt_field_error(const dlt_csv_t *c, const dlt_colmap_t *m, size_t col, const char *fmt,
                     ...)
{
    char b1[200], b2[200];
    const char *name = m->names[col];
    const char *val = c->fld[col];
    fprintf(stderr, "dlsched: %s:%" PRIu64 ": column '%s': '%s' ", c->name, c->lineno,
            dlt_shown(name, strlen(name), 40, b1, sizeof b1),
            dlt_shown(val, strlen(val), 40, b2, sizeof b2));
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int check_ncols(const dlt_csv_t *c, const dlt_colmap_t *m)
{
    if (c->nfld == m->ncols)
        return 0;
    dlt_errmsg("%s:%" PRIu64 ": %zu column%s where the header (line %" PRIu64 ") has %zu",
               c->name, c->lineno, c->nfld, c->nfld == 1 ? "" : "s", m->header_line, m->ncols);
    return -1;
}

int dlt_get_float(const dlt_csv_t *c, const dlt_colmap_t *m, size_t col, float *out)
{
    enum dlt_num_status st = dlt_parse_float(c->fld[col], out);
    if (st == DLT_NUM_OK)
        return 0;
    dlt_field_error(c, m, col, "%s", dlt_num_why(st));
    return -1;
}

static int get_action(const dlt_csv_t *c, const dlt_colmap_t *m, uint32_t na, int32_t *out)
{
    const char *s = c->fld[m->action_col];
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end != '\0' || errno == ERANGE) {
        dlt_field_error(c, m, m->action_col, "is not an integer action (0..%u)", na - 1);
        return -1;
    }
    if (v < 0 || v >= (long long)na) {
        dlt_field_error(c, m, m->action_col,
                        "is out of range: the model has n_actions=%u (0..%u)", na, na - 1);
        return -1;
    }
    *out = (int32_t)v;
    return 0;
}

static int get_states(const dlt_csv_t *c, const dlt_colmap_t *m, uint32_t nf,
                      const size_t *cols, float *x)
{
    for (uint32_t i = 0; i < nf; i++)
        if (dlt_get_float(c, m, cols[i], &x[i]) != 0)
            return -1;
    return 0;
}

int dlt_csv_row(dlt_csv_t *c, const dlt_colmap_t *m, uint32_t nf, uint32_t na, float *x,
                int32_t *action, float *reward, int *ex)
{
    int why = DLT_EXIT_USAGE;
    int got = csv_next(c, &why);
    if (got < 0)
        *ex = why;
    if (got <= 0)
        return got;
    if (check_ncols(c, m) != 0 || get_states(c, m, nf, m->s_col, x) != 0 ||
        get_action(c, m, na, action) != 0 || dlt_get_float(c, m, m->reward_col, reward) != 0) {
        *ex = DLT_EXIT_USAGE;
        return -1;
    }
    return 1;
}

int dlt_csv_open(dlt_csv_t *c, dlt_colmap_t *m, const char *path, uint32_t nf, int need_next)
{
    if (open_file(c, path) != 0)
        return DLT_EXIT_FAIL;
    int ex = colmap_read(c, m, nf, need_next);
    if (ex != DLT_EXIT_OK)
        csv_close(c);
    return ex;
}

int dlt_csv_end(dlt_csv_t *c, const dlt_colmap_t *m, uint64_t rows, int ex)
{
    if (ex == DLT_EXIT_OK && rows == 0) {
        dlt_errmsg("%s: no data rows after the header (line %" PRIu64 ")", c->name,
                   m->header_line);
        ex = DLT_EXIT_USAGE;
    }
    csv_close(c);
    return ex;
}
