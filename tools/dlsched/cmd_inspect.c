/*
 * cmd_inspect.c - dlsched inspect FILE: describe a checkpoint (header,
 * checksum, configuration, shape, counters) and check that it loads
 *
 * The only sub-command that reads the checkpoint's header and sections itself
 * (ckpt_read.h), so that it can describe files the library refuses.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <zlib.h>

#include "args.h"
#include "ckpt_read.h"
#include "cmds.h"
#include "dlsched.h"
#include "msg.h"

#define APPRENTICE_WINDOW 1000u

/* the whole of a regular file; *buf is malloc'ed (non-NULL even when empty) */
static int read_whole_file(const char *path, unsigned char **buf, size_t *len)
{
    /* O_NONBLOCK: a FIFO must not block the open before it is refused */
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) {
        dlt_errmsg("cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        dlt_errmsg("'%s' is not a regular file", path);
        close(fd);
        return -1;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        dlt_errmsg("cannot open '%s': %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    size_t cap = sb.st_size > 0 ? (size_t)sb.st_size + 1 : 4096;
    if ((uint64_t)sb.st_size >= SIZE_MAX / 2) {
        dlt_errmsg("'%s' is too large (%lld bytes)", path, (long long)sb.st_size);
        fclose(f);
        return -1;
    }
    unsigned char *p = malloc(cap);
    size_t n = 0;
    while (p) {
        if (n == cap) { /* the file grew while being read */
            unsigned char *q = cap < SIZE_MAX / 2 ? realloc(p, cap * 2) : NULL;
            if (!q) {
                free(p);
                p = NULL;
                break;
            }
            p = q;
            cap *= 2;
        }
        size_t k = fread(p + n, 1, cap - n, f);
        n += k;
        if (k == 0)
            break;
    }
    if (!p) {
        dlt_errmsg("out of memory reading '%s'", path);
        fclose(f);
        return -1;
    }
    if (ferror(f)) {
        dlt_errmsg("reading '%s' failed: %s", path, strerror(errno));
        free(p);
        fclose(f);
        return -1;
    }
    fclose(f);
    *buf = p;
    *len = n;
    return 0;
}

static const char *algo_name(uint32_t algo)
{
    return algo == 0 ? "qtable" : algo == 1 ? "dqn" : "unknown";
}

static void print_config_section(const unsigned char *p, size_t len)
{
    const char *t = (const char *)p;
    size_t pos = 0, lines = 0;
    char buf[1200];
    if (len == 0)
        printf("  (empty: every key at its default)\n");
    while (pos < len) {
        if (lines == 200) {
            printf("  ... (%zu more bytes not shown)\n", len - pos);
            break;
        }
        const char *nl = memchr(t + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (t + pos)) : len - pos;
        printf("  %s%s\n", dlt_shown(t + pos, n, 256, buf, sizeof buf),
               nl ? "" : "   (not newline-terminated)");
        pos += n + (nl ? 1 : 0);
        lines++;
    }
}

enum field_kind { F_U32, F_U64, F_F64, F_RNG, F_WINDOW };

static const struct agent_field {
    const char *name;
    enum field_kind kind;
} agent_fields[] = {
    {"algo", F_U32},
    {"n_features", F_U32},
    {"n_actions", F_U32},
    {"rng_state", F_RNG},
    {"tickets_issued", F_U64},
    {"observed", F_U64},
    {"tickets_expired", F_U64},
    {"tickets_timed_out", F_U64},
    {"n_rewards", F_U64},
    {"mean_reward", F_F64},
    {"decisions", F_U64},
    {"explored", F_U64},
    {"hinted", F_U64},
    {"transitions", F_U64},
    {"train_steps", F_U64},
    {"last_loss", F_F64},
    {"apprentice_active", F_U32},
    {"apprentice_left", F_U64},
    {"apprentice_pos", F_U32},
    {"apprentice_fill", F_U32},
    {"apprentice_agree", F_U32},
    {"apprentice_window", F_WINDOW},
};

static void print_agent_section(const unsigned char *p, size_t len)
{
    dlt_rd_t r = {p, len, 0, 0};
    uint32_t shape[3] = {0, 0, 0};
    size_t nfields = sizeof agent_fields / sizeof agent_fields[0];
    size_t i;
    printf("agent counters:\n");
    for (i = 0; i < nfields; i++) {
        const struct agent_field *f = &agent_fields[i];
        size_t size = f->kind == F_U32      ? 4
                      : f->kind == F_RNG    ? 32
                      : f->kind == F_WINDOW ? APPRENTICE_WINDOW
                                            : 8;
        if (!dlt_rd_need(&r, size))
            break;
        printf("  %-18s ", f->name);
        if (f->kind == F_U32) {
            uint32_t x = dlt_rd_u32(&r);
            if (i < 3)
                shape[i] = x;
            if (i == 0)
                printf("%" PRIu32 " (%s)\n", x, algo_name(x));
            else
                printf("%" PRIu32 "\n", x);
        } else if (f->kind == F_U64) {
            printf("%" PRIu64 "\n", dlt_rd_u64(&r));
        } else if (f->kind == F_F64) {
            printf("%.17g\n", dlt_rd_f64(&r));
        } else if (f->kind == F_RNG) {
            for (int k = 0; k < 4; k++)
                printf("%s%016" PRIx64, k ? " " : "",
                       dlt_le_get(r.p + r.pos + 8 * (size_t)k, 8));
            printf("\n");
            r.pos += 32;
        } else {
            unsigned ones = 0, other = 0;
            for (unsigned k = 0; k < APPRENTICE_WINDOW; k++) {
                unsigned char b = r.p[r.pos + k];
                ones += b == 1;
                other += b > 1;
            }
            printf("%u bytes, %u set", APPRENTICE_WINDOW, ones);
            if (other)
                printf(", %u neither 0 nor 1 (corrupt)", other);
            printf("\n");
            r.pos += APPRENTICE_WINDOW;
        }
    }
    if (i < nfields)
        printf("  (TRUNCATED: the agent section ends after %zu bytes; %s and later fields "
               "are missing)\n",
               len, agent_fields[i].name);
    else if (r.pos != len)
        printf("  (%zu unexpected bytes after the known fields)\n", len - r.pos);
    if (i >= 3)
        printf("shape: algo=%s n_features=%" PRIu32 " n_actions=%" PRIu32 "\n",
               algo_name(shape[0]), shape[1], shape[2]);
}

static uint32_t crc32_of(const unsigned char *p, size_t n)
{
    uLong c = crc32(0L, Z_NULL, 0);
    while (n > 0) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return (uint32_t)c;
}

int cmd_inspect(int argc, char **argv)
{
    const char *pos[1];
    size_t npos;
    int a = dlt_parse_args(argc, argv, "inspect", NULL, 0, pos, 1, &npos);
    if (a != DLT_ARGS_GO)
        return a;
    if (npos != 1) {
        dlt_usage_error("inspect: a checkpoint FILE is needed");
        return DLT_EXIT_USAGE;
    }
    const char *path = pos[0];
    unsigned char *p;
    size_t len;
    if (read_whole_file(path, &p, &len) != 0)
        return DLT_EXIT_FAIL;

    printf("file: %s\n", path);
    printf("size: %zu bytes\n", len);
    dlt_ckpt_view_t v;
    printf("magic: %s\n", len >= 8 && memcmp(p, "DLSCHKPT", 8) == 0
                              ? "DLSCHKPT (ok)"
                              : "BAD (not a libdlsched checkpoint)");
    if (len >= DLT_CKPT_HEADER) {
        dlt_rd_t h = {p, len, 8, 0};
        uint32_t version = dlt_rd_u32(&h), flags = dlt_rd_u32(&h);
        uint64_t body = dlt_rd_u64(&h);
        printf("format version: %" PRIu32 "%s\n", version,
               version == 0                       ? " (invalid)"
               : version > DLT_CKPT_KNOWN_VERSION ? " (newer than this tool knows)"
                                                  : "");
        printf("flags: 0x%08" PRIx32 " (%s%s)\n", flags,
               flags & DLT_CKPT_FLAG_REPLAY ? "replay buffer included" : "no replay buffer",
               flags & ~DLT_CKPT_FLAG_REPLAY ? "; UNKNOWN bits set" : "");
        if (len >= DLT_CKPT_MIN && body == len - DLT_CKPT_MIN)
            printf("body length: %" PRIu64 " bytes (matches the file size)\n", body);
        else
            printf("body length: %" PRIu64 " bytes (MISMATCH: the file has room for %zu)\n",
                   body, len >= DLT_CKPT_MIN ? len - DLT_CKPT_MIN : 0);
    } else {
        printf("header: TRUNCATED (%zu of %u bytes)\n", len, DLT_CKPT_HEADER);
    }
    if (len >= DLT_CKPT_MIN) {
        uint32_t stored = (uint32_t)dlt_le_get(p + len - 4, 4);
        uint32_t computed = crc32_of(p, len - 4);
        if (stored == computed)
            printf("checksum: ok (crc32 0x%08" PRIx32 ")\n", stored);
        else
            printf("checksum: MISMATCH (stored 0x%08" PRIx32 ", computed 0x%08" PRIx32 ")\n",
                   stored, computed);
    } else {
        printf("checksum: MISSING (the file is shorter than %u bytes)\n", DLT_CKPT_MIN);
    }

    if (len >= DLT_CKPT_HEADER) {
        dlt_ckpt_scan(p, len, &v, 1);
        if (v.sec[1].found) {
            printf("configuration:%s\n", v.sec[1].truncated ? " (TRUNCATED)" : "");
            if (!v.sec[1].truncated || v.sec[1].len > 0)
                print_config_section(p + v.sec[1].off, v.sec[1].len);
        } else {
            printf("configuration: (no configuration section)\n");
        }
        if (v.sec[2].found)
            print_agent_section(p + v.sec[2].off, v.sec[2].len);
        else
            printf("agent counters: (no agent section)\n");
        if (v.sec[3].found)
            printf("model: %zu bytes%s (%s)\n", v.sec[3].len,
                   v.sec[3].truncated ? " (TRUNCATED)" : "",
                   v.flags & DLT_CKPT_FLAG_REPLAY ? "with the replay buffer"
                                                  : "no replay buffer");
        else
            printf("model: (no model section)\n");
    }
    free(p);

    /* what the library says, without overrides */
    dlsched_agent *ag = NULL;
    int rc = dlsched_load(path, NULL, &ag);
    if (rc != DLSCHED_OK) {
        printf("load: FAILED: %s: %s\n", dlsched_strerror(rc), dlsched_last_error());
        return DLT_EXIT_FAIL;
    }
    printf("load: ok\n");
    dlsched_stats_t st;
    if (dlsched_stats(ag, &st, sizeof st) == DLSCHED_OK) {
        printf("loaded agent:\n");
        printf("  model_version      %" PRIu64 "\n", st.model_version);
        printf("  transitions_stored %" PRIu64 "\n", st.transitions_stored);
        printf("  memory_bytes       %" PRIu64 "\n", st.memory_bytes);
        printf("  epsilon            %.9g\n", st.epsilon);
    }
    dlsched_agent_free(ag);
    return DLT_EXIT_OK;
}
