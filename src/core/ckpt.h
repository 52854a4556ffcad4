/*
 * ckpt.h - byte buffers for checkpoints: a growing writer and a
 * bounds-checked reader, little-endian (the only byte order built for).
 */
#ifndef DLS_CKPT_H
#define DLS_CKPT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "libdlsched checkpoints are written for little-endian hosts"
#endif

typedef struct dls_wbuf {
    unsigned char *p;
    size_t len, cap;
    int failed; /* out of memory */
} dls_wbuf;

typedef struct dls_rbuf {
    const unsigned char *p;
    size_t len, pos;
    int bad; /* read past the end */
} dls_rbuf;

int dls_w_bytes(dls_wbuf *w, const void *src, size_t n);
static inline int dls_w_u32(dls_wbuf *w, uint32_t v) { return dls_w_bytes(w, &v, 4); }
static inline int dls_w_u64(dls_wbuf *w, uint64_t v) { return dls_w_bytes(w, &v, 8); }
static inline int dls_w_f64(dls_wbuf *w, double v) { return dls_w_bytes(w, &v, 8); }

/* copy n bytes out, or mark the buffer bad and zero dst */
static inline int dls_r_bytes(dls_rbuf *r, void *dst, size_t n)
{
    if (r->bad || n > r->len - r->pos) {
        r->bad = 1;
        memset(dst, 0, n);
        return -1;
    }
    memcpy(dst, r->p + r->pos, n);
    r->pos += n;
    return 0;
}

static inline uint32_t dls_r_u32(dls_rbuf *r)
{
    uint32_t v;
    dls_r_bytes(r, &v, 4);
    return v;
}

static inline uint64_t dls_r_u64(dls_rbuf *r)
{
    uint64_t v;
    dls_r_bytes(r, &v, 8);
    return v;
}

static inline double dls_r_f64(dls_rbuf *r)
{
    double v;
    dls_r_bytes(r, &v, 8);
    return v;
}

/* an array of count elements of size bytes, checked against the bytes left
   before anything is multiplied out */
static inline int dls_r_array(dls_rbuf *r, void *dst, uint64_t count, size_t size)
{
    if (r->bad || (size && count > (r->len - r->pos) / size)) {
        r->bad = 1;
        return -1;
    }
    return dls_r_bytes(r, dst, (size_t)count * size);
}

#endif
