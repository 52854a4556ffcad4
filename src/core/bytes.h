/*
 * bytes.h - byte buffers for the binary formats (checkpoints, the exchange
 * blobs of transitions and weights): a growing writer, a bounds-checked
 * reader, sections and the CRC-32, little-endian (the only byte order built
 * for). A unit of its own below the models and the formats (bytes.c): the
 * models' save code and every format use it, it uses none of them.
 */
#ifndef DLS_BYTES_H
#define DLS_BYTES_H

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
/* a section: u32 tag, u32 0, u64 length, data; begin returns where the
   length goes, end writes it */
size_t dls_w_sec_begin(dls_wbuf *w, uint32_t tag);
void dls_w_sec_end(dls_wbuf *w, size_t at);
/* zlib's CRC-32 of n bytes (any n) */
uint32_t dls_crc32(const void *p, size_t n);
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

#endif /* DLS_BYTES_H */
