/*
 * msg.c - dlsched(1)'s messages (msg.h)
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dlsched.h"
#include "msg.h"

static void vmsg(const char *fmt, va_list ap, const char *end)
{
    fputs("dlsched: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(end, stderr);
}

void dlt_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap, "\n\n");
    va_end(ap);
    dlt_usage(stderr);
}

void dlt_errmsg(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap, "\n");
    va_end(ap);
}

int dlt_lib_exit(int rc)
{
    return (rc == DLSCHED_EINVAL || rc == DLSCHED_ECONFIG || rc == DLSCHED_EMISMATCH)
               ? DLT_EXIT_USAGE
               : DLT_EXIT_FAIL;
}

const char *dlt_shown(const char *s, size_t n, size_t max, char *buf, size_t cap)
{
    size_t o = 0;
    size_t i;
    for (i = 0; i < n && i < max && o + 8 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\' && ch != '\'') {
            buf[o++] = (char)ch;
        } else {
            snprintf(buf + o, cap - o, "\\x%02x", ch);
            o += 4;
        }
    }
    if (i < n && o + 4 <= cap) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}
