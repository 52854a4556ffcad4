/* internal.h - declarations shared by the library's source files (not installed) */
#ifndef DLS_INTERNAL_H
#define DLS_INTERNAL_H

#define DLSCHED_BUILDING 1
#include "dlsched.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define DLS_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define DLS_LIKELY(x) __builtin_expect(!!(x), 1)
#define DLS_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define DLS_PRINTF(a, b)
#define DLS_LIKELY(x) (x)
#define DLS_UNLIKELY(x) (x)
#endif

/* Record a thread-local message for dlsched_last_error() and return code. */
int dls_fail(int code, const char *fmt, ...) DLS_PRINTF(2, 3);

/* Every error path reads the same: the check, the code, the culprit. */
#define DLS_FAIL_IF(cond, code, ...)                 \
    do {                                             \
        if (DLS_UNLIKELY(cond))                      \
            return dls_fail((code), __VA_ARGS__);    \
    } while (0)

/* Propagate a non-zero status; the message is already set. */
#define DLS_TRY(expr)                   \
    do {                                \
        int dls_rc_ = (expr);           \
        if (dls_rc_ != DLSCHED_OK)      \
            return dls_rc_;             \
    } while (0)

/* "NaN", "+Inf", "-Inf" or the number, for messages about bad floats. */
const char *dls_fmt_float(double x, char *buf, size_t len);

/* Fault in every page of n bytes at p now, so that no request pays for it
   later. A zeroing memset is not enough: the compiler may turn malloc +
   memset(0) into calloc, which leaves fresh pages of the kernel's untouched.
   A volatile write per page cannot be elided. */
static inline void dls_touch_pages(void *p, size_t n)
{
    volatile unsigned char *b = p;
    for (size_t i = 0; i < n; i += 4096)
        b[i] = 0;
    if (n)
        b[n - 1] = 0;
}

#endif
