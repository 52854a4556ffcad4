/* error.c - status texts, the thread-local last error, the version */
#include "internal.h"

#include <math.h>
#include <stdio.h>

/* room for the longest message: agent creation's fallback reason and BLAS
   reason together (34 + 255 + 2 + 255 bytes) */
static _Thread_local char dls_errbuf[640];

int dls_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dls_errbuf, sizeof dls_errbuf, fmt, ap);
    va_end(ap);
    return code;
}

const char *dls_fmt_float(double x, char *buf, size_t len)
{
    if (isnan(x))
        snprintf(buf, len, "NaN");
    else if (isinf(x))
        snprintf(buf, len, "%sInf", x < 0 ? "-" : "+");
    else
        snprintf(buf, len, "%.9g", x);
    return buf;
}

DLSCHED_API const char *dlsched_last_error(void)
{
    return dls_errbuf;
}

DLSCHED_API const char *dlsched_strerror(int status)
{
    switch (status) {
    case DLSCHED_OK:        return "success";
    case DLSCHED_EINVAL:    return "invalid argument";
    case DLSCHED_ENOMEM:    return "out of memory";
    case DLSCHED_ECONFIG:   return "invalid configuration";
    case DLSCHED_ETICKET:   return "unknown, expired or already-observed ticket";
    case DLSCHED_ENOACTION: return "the mask allows no action";
    case DLSCHED_EIO:       return "input/output error";
    case DLSCHED_EFORMAT:   return "malformed or foreign checkpoint";
    case DLSCHED_EMISMATCH: return "checkpoint and configuration disagree";
    case DLSCHED_ENODEVICE: return "requested device not usable";
    case DLSCHED_EBACKEND:  return "compute backend failure";
    default:                return "unknown error code";
    }
}

#define DLS_STR2(x) #x
#define DLS_STR(x) DLS_STR2(x)

DLSCHED_API unsigned dlsched_version(void)
{
    return DLSCHED_VERSION_NUMBER;
}

DLSCHED_API const char *dlsched_version_string(void)
{
    return DLS_STR(DLSCHED_VERSION_MAJOR) "." DLS_STR(DLSCHED_VERSION_MINOR) "." DLS_STR(
        DLSCHED_VERSION_PATCH);
}
