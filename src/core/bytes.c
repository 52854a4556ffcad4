/*
 * bytes.c - the growing byte writer, sections and the CRC-32 of the binary
 * formats (bytes.h)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "bytes.h"

int dls_w_bytes(dls_wbuf *w, const void *src, size_t n)
{
    if (w->failed)
        return -1;
    if (n > w->cap - w->len) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap - w->len < n) {
            if (cap > SIZE_MAX / 2) {
                w->failed = 1;
                return -1;
            }
            cap *= 2;
        }
        unsigned char *p = realloc(w->p, cap);
        if (!p) {
            w->failed = 1;
            return -1;
        }
        w->p = p;
        w->cap = cap;
    }
    if (n)
        memcpy(w->p + w->len, src, n);
    w->len += n;
    return 0;
}

size_t dls_w_sec_begin(dls_wbuf *w, uint32_t tag)
{
    dls_w_u32(w, tag);
    dls_w_u32(w, 0);
    size_t at = w->len;
    dls_w_u64(w, 0);
    return at;
}

void dls_w_sec_end(dls_wbuf *w, size_t at)
{
    if (w->failed)
        return;
    uint64_t len = w->len - at - 8;
    memcpy(w->p + at, &len, 8);
}

uint32_t dls_crc32(const void *src, size_t n)
{
    const unsigned char *p = src;
    uLong c = crc32(0L, Z_NULL, 0);
    while (n > 0) { /* zlib takes uInt lengths */
        uInt chunk = n > 1u << 30 ? 1u << 30 : (uInt)n;
        c = crc32(c, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return (uint32_t)c;
}
