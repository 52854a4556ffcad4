/*
 * num.c - dlsched(1)'s numbers from text (num.h)
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "num.h"

enum dlt_num_status dlt_parse_float(const char *s, float *out)
{
    if (!*s)
        return DLT_NUM_EMPTY;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0')
        return DLT_NUM_BAD;
    if (isnan(v) || (isinf(v) && errno != ERANGE))
        return DLT_NUM_NONFINITE;
    if (isinf(v) || fabs(v) > FLT_MAX)
        return DLT_NUM_RANGE;
    *out = (float)v;
    return DLT_NUM_OK;
}

const char *dlt_num_why(enum dlt_num_status st)
{
    switch (st) {
    case DLT_NUM_EMPTY:
        return "is empty; a number is needed";
    case DLT_NUM_BAD:
        return "is not a number";
    case DLT_NUM_NONFINITE:
        return "is not finite";
    case DLT_NUM_RANGE:
        return "is out of the range of a float";
    default:
        return "is fine";
    }
}

char *dlt_trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 &&
           (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

int dlt_parse_u64(const char *s, uint64_t *out)
{
    if (*s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno == ERANGE)
        return -1;
    *out = (uint64_t)v;
    return 0;
}
