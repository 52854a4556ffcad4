/*
 * ckpt_read.c - dlsched(1)'s checkpoint reading (ckpt_read.h)
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "ckpt_read.h"
#include "dlsched.h"
#include "msg.h"

int dlt_rd_need(dlt_rd_t *r, size_t n)
{
    if (r->bad || n > r->len - r->pos) {
        r->bad = 1;
        return 0;
    }
    return 1;
}

uint64_t dlt_le_get(const unsigned char *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

uint32_t dlt_rd_u32(dlt_rd_t *r)
{
    if (!dlt_rd_need(r, 4))
        return 0;
    uint32_t v = (uint32_t)dlt_le_get(r->p + r->pos, 4);
    r->pos += 4;
    return v;
}

uint64_t dlt_rd_u64(dlt_rd_t *r)
{
    if (!dlt_rd_need(r, 8))
        return 0;
    uint64_t v = dlt_le_get(r->p + r->pos, 8);
    r->pos += 8;
    return v;
}

double dlt_rd_f64(dlt_rd_t *r)
{
    uint64_t u = dlt_rd_u64(r);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static const char *section_name(uint32_t tag)
{
    switch (tag) {
    case 1:
        return "configuration";
    case 2:
        return "agent";
    case 3:
        return "model";
    case 4:
        return "guard";
    default:
        return "unknown";
    }
}

void dlt_ckpt_scan(const unsigned char *p, size_t len, dlt_ckpt_view_t *v, int verbose)
{
    memset(v, 0, sizeof *v);
    v->magic_ok = len >= 8 && memcmp(p, "DLSCHKPT", 8) == 0;
    if (len < DLT_CKPT_HEADER)
        return;
    dlt_rd_t h = {p, len, 8, 0};
    v->version = dlt_rd_u32(&h);
    v->flags = dlt_rd_u32(&h);
    v->body = dlt_rd_u64(&h);
    v->header_ok = 1;
    /* the sections lie between the header and the CRC; a wrong body length
       is reported, and the walk stays inside the file either way */
    size_t end = len >= DLT_CKPT_MIN ? len - 4 : len;
    if (v->body < end - DLT_CKPT_HEADER)
        end = DLT_CKPT_HEADER + (size_t)v->body;
    dlt_rd_t r = {p, end, DLT_CKPT_HEADER, 0};
    unsigned shown_n = 0;
    int stopped = 0;
    if (verbose)
        printf("sections:\n");
    while (r.pos < r.len) {
        size_t at = r.pos;
        if (r.len - r.pos < 16) {
            if (verbose)
                printf("  at byte %zu: %zu stray bytes, too few for a section header\n", at,
                       r.len - r.pos);
            stopped = 1;
            break;
        }
        uint32_t tag = dlt_rd_u32(&r);
        uint32_t zero = dlt_rd_u32(&r);
        uint64_t slen = dlt_rd_u64(&r);
        size_t left = r.len - r.pos;
        if (slen > left) {
            if (verbose)
                printf("  at byte %zu: tag %" PRIu32 " (%s) claims %" PRIu64
                       " bytes but only %zu are left: TRUNCATED or corrupt\n",
                       at, tag, section_name(tag), slen, left);
            if (tag >= 1 && tag <= 3 && !v->sec[tag].found) { /* show what there is */
                v->sec[tag].found = 1;
                v->sec[tag].truncated = 1;
                v->sec[tag].off = r.pos;
                v->sec[tag].len = left;
            }
            stopped = 1;
            break;
        }
        if (verbose && shown_n < 32)
            printf("  tag %" PRIu32 " %-13s %" PRIu64 " bytes at byte %zu%s\n", tag,
                   section_name(tag), slen, r.pos,
                   zero != 0 ? " (reserved word is not 0)" : "");
        else if (verbose && shown_n == 32)
            printf("  ... (further sections not listed)\n");
        shown_n++;
        if (tag >= 1 && tag <= 3 && !v->sec[tag].found) {
            v->sec[tag].found = 1;
            v->sec[tag].off = r.pos;
            v->sec[tag].len = (size_t)slen;
        }
        r.pos += (size_t)slen;
    }
    if (verbose && shown_n == 0 && !stopped)
        printf("  (none)\n");
}

int dlt_ckpt_shape(const unsigned char *p, const dlt_ckpt_view_t *v, uint32_t *algo,
                   uint32_t *nf, uint32_t *na)
{
    if (!v->sec[2].found)
        return -1;
    dlt_rd_t r = {p + v->sec[2].off, v->sec[2].len, 0, 0};
    *algo = dlt_rd_u32(&r);
    *nf = dlt_rd_u32(&r);
    *na = dlt_rd_u32(&r);
    return r.bad ? -1 : 0;
}

int dlt_model_load(const char *path, dlt_model_t *m)
{
    /* dlsched_load() opens before it checks for a regular file: a FIFO
       would block it */
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        dlt_errmsg("cannot load '%s': not a regular file", path);
        return DLT_EXIT_FAIL;
    }
    dlsched_config *ov = NULL;
    int rc = dlsched_config_new(&ov);
    if (rc == DLSCHED_OK) /* no background thread for a read-only use */
        rc = dlsched_config_set(ov, "learner", "inline");
    if (rc == DLSCHED_OK)
        rc = dlsched_load(path, ov, &m->ag);
    dlsched_config_free(ov);
    if (rc != DLSCHED_OK) {
        dlt_errmsg("cannot load '%s': %s: %s", path, dlsched_strerror(rc),
                   dlsched_last_error());
        return DLT_EXIT_FAIL;
    }
    void *buf = NULL;
    size_t len = 0;
    rc = dlsched_save_buffer(m->ag, &buf, &len);
    if (rc != DLSCHED_OK) {
        dlt_errmsg("'%s': %s: %s", path, dlsched_strerror(rc), dlsched_last_error());
        dlsched_agent_free(m->ag);
        return DLT_EXIT_FAIL;
    }
    dlt_ckpt_view_t v;
    dlt_ckpt_scan(buf, len, &v, 0);
    int bad =
        dlt_ckpt_shape(buf, &v, &m->algo, &m->nf, &m->na) != 0 || m->nf == 0 || m->na == 0;
    dlsched_buffer_free(buf);
    if (bad) {
        dlt_errmsg("'%s': cannot read the agent's shape back", path);
        dlsched_agent_free(m->ag);
        return DLT_EXIT_FAIL;
    }
    return DLT_EXIT_OK;
}
