/*
 * ckpt_read.h - dlsched(1)'s checkpoint reading: the header and sections
 * read by the tool itself, every offset checked against the bytes there are
 * (inspect describes files the library refuses; the format is in
 * src/core/checkpoint.c and dlsched-checkpoint(5)), and a checkpoint loaded
 * through the public API together with its shape (q, eval)
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DLSCHED_TOOL_CKPT_READ_H
#define DLSCHED_TOOL_CKPT_READ_H

#include <stddef.h>
#include <stdint.h>

#include "dlsched.h"

#define DLT_CKPT_HEADER 24u
#define DLT_CKPT_MIN (DLT_CKPT_HEADER + 4u)
#define DLT_CKPT_FLAG_REPLAY 1u
#define DLT_CKPT_KNOWN_VERSION 2u /* 2 (1.1): the guard's optional section, tag 4 */

/* little-endian fields of p[0..len), from pos; reading past len sets bad
   and gives 0 */
typedef struct dlt_rd {
    const unsigned char *p;
    size_t len, pos;
    int bad;
} dlt_rd_t;

/* 1 when n more bytes are there; else 0, and r is bad */
int dlt_rd_need(dlt_rd_t *r, size_t n);
uint32_t dlt_rd_u32(dlt_rd_t *r);
uint64_t dlt_rd_u64(dlt_rd_t *r);
double dlt_rd_f64(dlt_rd_t *r);

/* the n-byte (n <= 8) little-endian number at p, unchecked */
uint64_t dlt_le_get(const unsigned char *p, unsigned n);

typedef struct dlt_section {
    int found, truncated; /* truncated: len is what the file has */
    size_t off;           /* of its data, from the file start */
    size_t len;
} dlt_section_t;

typedef struct dlt_ckpt_view {
    int magic_ok, header_ok;
    uint32_t version, flags;
    uint64_t body;
    dlt_section_t sec[4]; /* by tag 1..3 */
} dlt_ckpt_view_t;

/* walk the header and the sections of p[0..len), printing them when verbose */
void dlt_ckpt_scan(const unsigned char *p, size_t len, dlt_ckpt_view_t *v, int verbose);

/* algo, n_features, n_actions from the agent section: 0, or -1 */
int dlt_ckpt_shape(const unsigned char *p, const dlt_ckpt_view_t *v, uint32_t *algo,
                   uint32_t *nf, uint32_t *na);

typedef struct dlt_model {
    dlsched_agent *ag;
    uint32_t algo, nf, na;
} dlt_model_t;

/* load a checkpoint with the public API (m->ag: the caller frees it with
   dlsched_agent_free); the shape is read back from the library's own
   serialisation of the loaded agent (the API has no getter). An exit
   status; errors reported. */
int dlt_model_load(const char *path, dlt_model_t *m);

#endif
