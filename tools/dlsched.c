/*
 * dlsched.c - the dlsched command-line tool (dlsched(1))
 *
 *   dlsched inspect FILE
 *   dlsched q FILE X0,X1,...
 *   dlsched train-offline --config SPEC --data FILE.csv --out FILE [--steps N]
 *   dlsched eval FILE --data FILE.csv
 *
 * Everything goes through the public API (dlsched.h) except `inspect`,
 * which reads the checkpoint's header and sections itself (format in
 * src/core/checkpoint.c and dlsched-checkpoint(5)) so that it can describe
 * files the library refuses; every offset it reads is checked against the
 * bytes there are.
 *
 * Exit status: 0 success; 1 failure (a checkpoint that does not load, an
 * I/O or library error); 2 usage error or malformed input (options, state
 * vector, configuration spec, CSV data).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <zlib.h>

#include "dlsched.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* ---- messages ------------------------------------------------------------- */

static const char usage_text[] =
    "usage: dlsched COMMAND [ARGUMENTS]\n"
    "\n"
    "commands:\n"
    "  inspect FILE          describe a checkpoint (header, checksum, configuration,\n"
    "                        shape, counters) and check that it loads\n"
    "  q FILE X0,X1,...      Q-value of every action and the greedy action for a state\n"
    "  train-offline --config SPEC --data FILE.csv --out FILE [--steps N]\n"
    "                        learn from logged transitions and save a checkpoint\n"
    "  eval FILE --data FILE.csv\n"
    "                        agreement of the greedy policy with logged actions and,\n"
    "                        with a probability column, IPS and SNIPS estimates\n"
    "  --help                this text\n"
    "  --version             the libdlsched version\n"
    "\n"
    "CSV: a header line, then one transition per line; columns matched by name, in\n"
    "any order: s0..s{n-1} (state), action, reward, n0..n{n-1} (next state), done\n"
    "(0 or 1), probability (optional; eval only). Other names are ignored.\n"
    "\n"
    "Exit status: 0 success, 1 failure (e.g. the checkpoint does not load),\n"
    "2 usage error or malformed input. See dlsched(1).\n";

static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("dlsched: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n\n", stderr);
    va_end(ap);
    fputs(usage_text, stderr);
}

static void errmsg(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("dlsched: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* status code class: bad input (2) or failure (1) */
static int lib_exit(int rc)
{
    return (rc == DLSCHED_EINVAL || rc == DLSCHED_ECONFIG || rc == DLSCHED_EMISMATCH)
               ? EXIT_USAGE
               : EXIT_FAIL;
}

/* a printable, bounded rendition of untrusted text: at most max source bytes,
   non-printable bytes as \xNN, "..." when cut */
static const char *shown(const char *s, size_t n, size_t max, char *buf, size_t cap)
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

/* ---- numbers ------------------------------------------------------------------ */

enum num_status { NUM_OK, NUM_EMPTY, NUM_BAD, NUM_NONFINITE, NUM_RANGE };

/* a finite number that fits a float; s is trimmed */
static enum num_status parse_float(const char *s, float *out)
{
    if (!*s)
        return NUM_EMPTY;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0')
        return NUM_BAD;
    if (isnan(v) || (isinf(v) && errno != ERANGE))
        return NUM_NONFINITE;
    if (isinf(v) || fabs(v) > FLT_MAX)
        return NUM_RANGE;
    *out = (float)v;
    return NUM_OK;
}

static const char *num_why(enum num_status st)
{
    switch (st) {
    case NUM_EMPTY:
        return "is empty; a number is needed";
    case NUM_BAD:
        return "is not a number";
    case NUM_NONFINITE:
        return "is not finite";
    case NUM_RANGE:
        return "is out of the range of a float";
    default:
        return "is fine";
    }
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' ||
                     s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

/* an unsigned decimal integer, whole string */
static int parse_u64(const char *s, uint64_t *out)
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

/* ---- files -------------------------------------------------------------------- */

/* the whole of a regular file; *buf is malloc'ed (non-NULL even when empty) */
static int read_whole_file(const char *path, unsigned char **buf, size_t *len)
{
    /* O_NONBLOCK: a FIFO must not block the open before it is refused */
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) {
        errmsg("cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        errmsg("'%s' is not a regular file", path);
        close(fd);
        return -1;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        errmsg("cannot open '%s': %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    size_t cap = sb.st_size > 0 ? (size_t)sb.st_size + 1 : 4096;
    if ((uint64_t)sb.st_size >= SIZE_MAX / 2) {
        errmsg("'%s' is too large (%lld bytes)", path, (long long)sb.st_size);
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
        errmsg("out of memory reading '%s'", path);
        fclose(f);
        return -1;
    }
    if (ferror(f)) {
        errmsg("reading '%s' failed: %s", path, strerror(errno));
        free(p);
        fclose(f);
        return -1;
    }
    fclose(f);
    *buf = p;
    *len = n;
    return 0;
}

/* ---- checkpoint reading (inspect, shapes) ------------------------------------- */

#define CKPT_HEADER 24u
#define CKPT_MIN (CKPT_HEADER + 4u)
#define CKPT_FLAG_REPLAY 1u
#define CKPT_KNOWN_VERSION 2u /* 2 (1.1): the guard's optional section, tag 4 */
#define APPRENTICE_WINDOW 1000u

typedef struct rd {
    const unsigned char *p;
    size_t len, pos;
    int bad;
} rd_t;

static int rd_need(rd_t *r, size_t n)
{
    if (r->bad || n > r->len - r->pos) {
        r->bad = 1;
        return 0;
    }
    return 1;
}

static uint64_t le_get(const unsigned char *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t rd_u32(rd_t *r)
{
    if (!rd_need(r, 4))
        return 0;
    uint32_t v = (uint32_t)le_get(r->p + r->pos, 4);
    r->pos += 4;
    return v;
}

static uint64_t rd_u64(rd_t *r)
{
    if (!rd_need(r, 8))
        return 0;
    uint64_t v = le_get(r->p + r->pos, 8);
    r->pos += 8;
    return v;
}

static double rd_f64(rd_t *r)
{
    uint64_t u = rd_u64(r);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

typedef struct section {
    int found, truncated; /* truncated: len is what the file has */
    size_t off; /* of its data, from the file start */
    size_t len;
} section_t;

typedef struct ckpt_view {
    int magic_ok, header_ok;
    uint32_t version, flags;
    uint64_t body;
    section_t sec[4]; /* by tag 1..3 */
} ckpt_view_t;

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

/* walk the header and the sections, printing them when verbose */
static void ckpt_scan(const unsigned char *p, size_t len, ckpt_view_t *v, int verbose)
{
    memset(v, 0, sizeof *v);
    v->magic_ok = len >= 8 && memcmp(p, "DLSCHKPT", 8) == 0;
    if (len < CKPT_HEADER)
        return;
    rd_t h = {p, len, 8, 0};
    v->version = rd_u32(&h);
    v->flags = rd_u32(&h);
    v->body = rd_u64(&h);
    v->header_ok = 1;
    /* the sections lie between the header and the CRC; a wrong body length
       is reported, and the walk stays inside the file either way */
    size_t end = len >= CKPT_MIN ? len - 4 : len;
    if (v->body < end - CKPT_HEADER)
        end = CKPT_HEADER + (size_t)v->body;
    rd_t r = {p, end, CKPT_HEADER, 0};
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
        uint32_t tag = rd_u32(&r);
        uint32_t zero = rd_u32(&r);
        uint64_t slen = rd_u64(&r);
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

/* algo, n_features, n_actions from the agent section */
static int ckpt_shape(const unsigned char *p, const ckpt_view_t *v, uint32_t *algo,
                      uint32_t *nf, uint32_t *na)
{
    if (!v->sec[2].found)
        return -1;
    rd_t r = {p + v->sec[2].off, v->sec[2].len, 0, 0};
    *algo = rd_u32(&r);
    *nf = rd_u32(&r);
    *na = rd_u32(&r);
    return r.bad ? -1 : 0;
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
        printf("  %s%s\n", shown(t + pos, n, 256, buf, sizeof buf),
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
    rd_t r = {p, len, 0, 0};
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
        if (!rd_need(&r, size))
            break;
        printf("  %-18s ", f->name);
        if (f->kind == F_U32) {
            uint32_t x = rd_u32(&r);
            if (i < 3)
                shape[i] = x;
            if (i == 0)
                printf("%" PRIu32 " (%s)\n", x, algo_name(x));
            else
                printf("%" PRIu32 "\n", x);
        } else if (f->kind == F_U64) {
            printf("%" PRIu64 "\n", rd_u64(&r));
        } else if (f->kind == F_F64) {
            printf("%.17g\n", rd_f64(&r));
        } else if (f->kind == F_RNG) {
            for (int k = 0; k < 4; k++)
                printf("%s%016" PRIx64, k ? " " : "", le_get(r.p + r.pos + 8 * (size_t)k, 8));
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

/* ---- agents ------------------------------------------------------------------- */

typedef struct model {
    dlsched_agent *ag;
    uint32_t algo, nf, na;
} model_t;

/* load a checkpoint with the public API; the shape is read back from the
   library's own serialisation of the loaded agent (the API has no getter) */
static int model_load(const char *path, model_t *m)
{
    /* dlsched_load() opens before it checks for a regular file: a FIFO
       would block it */
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        errmsg("cannot load '%s': not a regular file", path);
        return EXIT_FAIL;
    }
    dlsched_config *ov = NULL;
    int rc = dlsched_config_new(&ov);
    if (rc == DLSCHED_OK) /* no background thread for a read-only use */
        rc = dlsched_config_set(ov, "learner", "inline");
    if (rc == DLSCHED_OK)
        rc = dlsched_load(path, ov, &m->ag);
    dlsched_config_free(ov);
    if (rc != DLSCHED_OK) {
        errmsg("cannot load '%s': %s: %s", path, dlsched_strerror(rc), dlsched_last_error());
        return EXIT_FAIL;
    }
    void *buf = NULL;
    size_t len = 0;
    rc = dlsched_save_buffer(m->ag, &buf, &len);
    if (rc != DLSCHED_OK) {
        errmsg("'%s': %s: %s", path, dlsched_strerror(rc), dlsched_last_error());
        dlsched_agent_free(m->ag);
        return EXIT_FAIL;
    }
    ckpt_view_t v;
    ckpt_scan(buf, len, &v, 0);
    int bad = ckpt_shape(buf, &v, &m->algo, &m->nf, &m->na) != 0 || m->nf == 0 || m->na == 0;
    dlsched_buffer_free(buf);
    if (bad) {
        errmsg("'%s': cannot read the agent's shape back", path);
        dlsched_agent_free(m->ag);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* ---- options ------------------------------------------------------------------ */

typedef struct opt_spec {
    const char *name; /* "--data" */
    const char **value;
} opt_spec_t;

/* options (--name VALUE or --name=VALUE) anywhere, "--" ends them; the rest
   are positional. Returns -1 on a usage error (reported), 1 on --help. */
static int parse_args(int argc, char **argv, const char *cmd, opt_spec_t *opts, size_t nopts,
                      const char **pos, size_t maxpos, size_t *npos)
{
    int only_pos = 0;
    *npos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (!only_pos && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0))
            return 1;
        if (!only_pos && a[0] == '-' && a[1] == '-') {
            const char *eq = strchr(a, '=');
            size_t n = eq ? (size_t)(eq - a) : strlen(a);
            size_t k;
            for (k = 0; k < nopts; k++)
                if (strlen(opts[k].name) == n && strncmp(opts[k].name, a, n) == 0)
                    break;
            if (k == nopts) {
                usage_error("%s: unknown option '%.*s'", cmd, (int)n, a);
                return -1;
            }
            const char *val;
            if (eq) {
                val = eq + 1;
            } else if (i + 1 < argc) {
                val = argv[++i];
            } else {
                usage_error("%s: option %s needs a value", cmd, opts[k].name);
                return -1;
            }
            if (*opts[k].value) {
                usage_error("%s: option %s given twice", cmd, opts[k].name);
                return -1;
            }
            *opts[k].value = val;
            continue;
        }
        if (!only_pos && a[0] == '-' && a[1] != '\0' && a[1] != '.' &&
            (a[1] < '0' || a[1] > '9')) {
            usage_error("%s: unknown option '%s'", cmd, a);
            return -1;
        }
        if (*npos == maxpos) {
            usage_error("%s: unexpected argument '%s'", cmd, a);
            return -1;
        }
        pos[(*npos)++] = a;
    }
    return 0;
}

/* ---- CSV ---------------------------------------------------------------------- */

typedef struct csv {
    FILE *f;
    const char *name;
    char *line;
    size_t cap;
    uint64_t lineno;
    char **fld;
    size_t nfld, capfld;
} csv_t;

static int csv_open(csv_t *c, const char *path)
{
    memset(c, 0, sizeof *c);
    c->name = path;
    if (strcmp(path, "-") == 0) {
        c->f = stdin;
        c->name = "(stdin)";
        return 0;
    }
    c->f = fopen(path, "r");
    if (!c->f) {
        errmsg("cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fileno(c->f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        errmsg("'%s' is a directory", path);
        fclose(c->f);
        c->f = NULL;
        return -1;
    }
    return 0;
}

static void csv_close(csv_t *c)
{
    if (c->f && c->f != stdin)
        fclose(c->f);
    free(c->line);
    free(c->fld);
    c->f = NULL;
    c->line = NULL;
    c->fld = NULL;
}

/* the next non-blank line, split at commas, fields trimmed.
   1: a record; 0: end of file; -1: error (reported, exit status 2 or 1 in *why) */
static int csv_next(csv_t *c, int *why)
{
    for (;;) {
        errno = 0;
        ssize_t n = getline(&c->line, &c->cap, c->f);
        if (n < 0) {
            if (ferror(c->f) || !feof(c->f)) {
                errmsg("%s: read error after line %" PRIu64 ": %s", c->name, c->lineno,
                       strerror(errno ? errno : EIO));
                *why = EXIT_FAIL;
                return -1;
            }
            return 0;
        }
        c->lineno++;
        if (memchr(c->line, '\0', (size_t)n) != NULL) {
            errmsg("%s:%" PRIu64 ": the line contains a NUL byte", c->name, c->lineno);
            *why = EXIT_USAGE;
            return -1;
        }
        char *s = c->line;
        if (c->lineno == 1 && (unsigned char)s[0] == 0xef && (unsigned char)s[1] == 0xbb &&
            (unsigned char)s[2] == 0xbf)
            s += 3; /* a UTF-8 byte order mark */
        s = trim(s);
        if (*s == '\0')
            continue;
        c->nfld = 0;
        for (;;) {
            if (c->nfld == c->capfld) {
                size_t ncap = c->capfld ? c->capfld * 2 : 64;
                char **nf = realloc(c->fld, ncap * sizeof *nf);
                if (!nf) {
                    errmsg("out of memory reading %s", c->name);
                    *why = EXIT_FAIL;
                    return -1;
                }
                c->fld = nf;
                c->capfld = ncap;
            }
            char *comma = strchr(s, ',');
            if (comma)
                *comma = '\0';
            c->fld[c->nfld++] = trim(s);
            if (!comma)
                break;
            s = comma + 1;
        }
        return 1;
    }
}

enum col_role { COL_IGNORED, COL_S, COL_N, COL_ACTION, COL_REWARD, COL_DONE, COL_PROB };

typedef struct colmap {
    size_t ncols;
    char **names;      /* header names, copied */
    size_t *s_col;     /* nf entries: column of s<i>, or SIZE_MAX */
    size_t *n_col;     /* nf entries: column of n<i>, or SIZE_MAX */
    size_t action_col, reward_col, done_col, prob_col;
    uint64_t header_line;
} colmap_t;

#define NO_COL SIZE_MAX

static void colmap_free(colmap_t *m)
{
    if (m->names)
        for (size_t i = 0; i < m->ncols; i++)
            free(m->names[i]);
    free(m->names);
    free(m->s_col);
    free(m->n_col);
    memset(m, 0, sizeof *m);
}

/* s<i> / n<i> with i canonical decimal: i, else -1 */
static long feature_index(const char *name)
{
    const char *d = name + 1;
    size_t n = strlen(d);
    if (n == 0 || n > 8 || (n > 1 && d[0] == '0'))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (d[i] < '0' || d[i] > '9')
            return -1;
    return strtol(d, NULL, 10);
}

/* "s0", "s0,s1", "s0..s9" */
static void feature_range(char p, uint32_t nf, char *buf, size_t cap)
{
    if (nf == 1)
        snprintf(buf, cap, "%c0", p);
    else if (nf == 2)
        snprintf(buf, cap, "%c0, %c1", p, p);
    else
        snprintf(buf, cap, "%c0..%c%u", p, p, nf - 1);
}

/* read the header line and map the columns; need_next: n0.. and done required */
static int colmap_read(csv_t *c, colmap_t *m, uint32_t nf, int need_next)
{
    memset(m, 0, sizeof *m);
    int why = EXIT_USAGE;
    int got = csv_next(c, &why);
    if (got < 0)
        return why;
    if (got == 0) {
        errmsg("%s:%" PRIu64 ": the file is empty; a header line naming the columns is needed",
               c->name, c->lineno + 1);
        return EXIT_USAGE;
    }
    m->header_line = c->lineno;
    m->ncols = c->nfld;
    m->names = calloc(m->ncols, sizeof *m->names);
    m->s_col = malloc(nf * sizeof *m->s_col);
    m->n_col = malloc(nf * sizeof *m->n_col);
    if (!m->names || !m->s_col || !m->n_col) {
        errmsg("out of memory reading %s", c->name);
        return EXIT_FAIL;
    }
    for (uint32_t i = 0; i < nf; i++)
        m->s_col[i] = m->n_col[i] = NO_COL;
    m->action_col = m->reward_col = m->done_col = m->prob_col = NO_COL;
    char b1[200];
    for (size_t j = 0; j < m->ncols; j++) {
        const char *name = c->fld[j];
        m->names[j] = strdup(name);
        if (!m->names[j]) {
            errmsg("out of memory reading %s", c->name);
            return EXIT_FAIL;
        }
        size_t *slot = NULL;
        if (strcmp(name, "action") == 0)
            slot = &m->action_col;
        else if (strcmp(name, "reward") == 0)
            slot = &m->reward_col;
        else if (strcmp(name, "done") == 0)
            slot = &m->done_col;
        else if (strcmp(name, "probability") == 0)
            slot = &m->prob_col;
        else if (name[0] == 's' || name[0] == 'n') {
            long k = feature_index(name);
            if (k >= 0 && (uint64_t)k >= nf) {
                char sr[40], nr[40];
                feature_range('s', nf, sr, sizeof sr);
                feature_range('n', nf, nr, sizeof nr);
                errmsg("%s:%" PRIu64 ": column %zu '%s': n_features is %u, so the state "
                       "columns are %s and %s",
                       c->name, c->lineno, j + 1, shown(name, strlen(name), 40, b1, sizeof b1),
                       nf, sr, nr);
                return EXIT_USAGE;
            }
            if (k >= 0)
                slot = name[0] == 's' ? &m->s_col[k] : &m->n_col[k];
        }
        if (!slot)
            continue; /* not ours: ignored */
        if (*slot != NO_COL) {
            errmsg("%s:%" PRIu64 ": column '%s' appears twice (columns %zu and %zu)", c->name,
                   c->lineno, name, *slot + 1, j + 1);
            return EXIT_USAGE;
        }
        *slot = j;
    }
    const char *missing = NULL;
    char mbuf[32];
    for (uint32_t i = 0; i < nf && !missing; i++)
        if (m->s_col[i] == NO_COL) {
            snprintf(mbuf, sizeof mbuf, "s%u", i);
            missing = mbuf;
        }
    if (!missing && m->action_col == NO_COL)
        missing = "action";
    if (!missing && m->reward_col == NO_COL)
        missing = "reward";
    for (uint32_t i = 0; need_next && i < nf && !missing; i++)
        if (m->n_col[i] == NO_COL) {
            snprintf(mbuf, sizeof mbuf, "n%u", i);
            missing = mbuf;
        }
    if (!missing && need_next && m->done_col == NO_COL)
        missing = "done";
    if (missing) {
        char sr[40], nr[40];
        feature_range('s', nf, sr, sizeof sr);
        feature_range('n', nf, nr, sizeof nr);
        errmsg("%s:%" PRIu64 ": column '%s' is missing from the header (needed: %s, action, "
               "reward%s%s%s)",
               c->name, c->lineno, missing, sr, need_next ? ", " : "", need_next ? nr : "",
               need_next ? ", done" : "");
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

static void field_error(const csv_t *c, const colmap_t *m, size_t col, const char *fmt, ...)
{
    char b1[200], b2[200];
    const char *name = m->names[col];
    const char *val = c->fld[col];
    fprintf(stderr, "dlsched: %s:%" PRIu64 ": column '%s': '%s' ", c->name, c->lineno,
            shown(name, strlen(name), 40, b1, sizeof b1),
            shown(val, strlen(val), 40, b2, sizeof b2));
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int check_ncols(const csv_t *c, const colmap_t *m)
{
    if (c->nfld == m->ncols)
        return 0;
    errmsg("%s:%" PRIu64 ": %zu column%s where the header (line %" PRIu64 ") has %zu", c->name,
           c->lineno, c->nfld, c->nfld == 1 ? "" : "s", m->header_line, m->ncols);
    return -1;
}

static int get_float(const csv_t *c, const colmap_t *m, size_t col, float *out)
{
    enum num_status st = parse_float(c->fld[col], out);
    if (st == NUM_OK)
        return 0;
    field_error(c, m, col, "%s", num_why(st));
    return -1;
}

static int get_action(const csv_t *c, const colmap_t *m, uint32_t na, int32_t *out)
{
    const char *s = c->fld[m->action_col];
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end != '\0' || errno == ERANGE) {
        field_error(c, m, m->action_col, "is not an integer action (0..%u)", na - 1);
        return -1;
    }
    if (v < 0 || v >= (long long)na) {
        field_error(c, m, m->action_col, "is out of range: the model has n_actions=%u (0..%u)",
                    na, na - 1);
        return -1;
    }
    *out = (int32_t)v;
    return 0;
}

static int get_states(const csv_t *c, const colmap_t *m, uint32_t nf, const size_t *cols,
                      float *x)
{
    for (uint32_t i = 0; i < nf; i++)
        if (get_float(c, m, cols[i], &x[i]) != 0)
            return -1;
    return 0;
}

/* ---- inspect ------------------------------------------------------------------ */

static int cmd_inspect(int argc, char **argv)
{
    const char *pos[1];
    size_t npos;
    int a = parse_args(argc, argv, "inspect", NULL, 0, pos, 1, &npos);
    if (a > 0) {
        fputs(usage_text, stdout);
        return EXIT_OK;
    }
    if (a < 0)
        return EXIT_USAGE;
    if (npos != 1) {
        usage_error("inspect: a checkpoint FILE is needed");
        return EXIT_USAGE;
    }
    const char *path = pos[0];
    unsigned char *p;
    size_t len;
    if (read_whole_file(path, &p, &len) != 0)
        return EXIT_FAIL;

    printf("file: %s\n", path);
    printf("size: %zu bytes\n", len);
    ckpt_view_t v;
    printf("magic: %s\n", len >= 8 && memcmp(p, "DLSCHKPT", 8) == 0
                              ? "DLSCHKPT (ok)"
                              : "BAD (not a libdlsched checkpoint)");
    if (len >= CKPT_HEADER) {
        rd_t h = {p, len, 8, 0};
        uint32_t version = rd_u32(&h), flags = rd_u32(&h);
        uint64_t body = rd_u64(&h);
        printf("format version: %" PRIu32 "%s\n", version,
               version == 0                    ? " (invalid)"
               : version > CKPT_KNOWN_VERSION ? " (newer than this tool knows)"
                                               : "");
        printf("flags: 0x%08" PRIx32 " (%s%s)\n", flags,
               flags & CKPT_FLAG_REPLAY ? "replay buffer included" : "no replay buffer",
               flags & ~CKPT_FLAG_REPLAY ? "; UNKNOWN bits set" : "");
        if (len >= CKPT_MIN && body == len - CKPT_MIN)
            printf("body length: %" PRIu64 " bytes (matches the file size)\n", body);
        else
            printf("body length: %" PRIu64 " bytes (MISMATCH: the file has room for %zu)\n",
                   body, len >= CKPT_MIN ? len - CKPT_MIN : 0);
    } else {
        printf("header: TRUNCATED (%zu of %u bytes)\n", len, CKPT_HEADER);
    }
    if (len >= CKPT_MIN) {
        uint32_t stored = (uint32_t)le_get(p + len - 4, 4);
        uint32_t computed = crc32_of(p, len - 4);
        if (stored == computed)
            printf("checksum: ok (crc32 0x%08" PRIx32 ")\n", stored);
        else
            printf("checksum: MISMATCH (stored 0x%08" PRIx32 ", computed 0x%08" PRIx32 ")\n",
                   stored, computed);
    } else {
        printf("checksum: MISSING (the file is shorter than %u bytes)\n", CKPT_MIN);
    }

    if (len >= CKPT_HEADER) {
        ckpt_scan(p, len, &v, 1);
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
                   v.flags & CKPT_FLAG_REPLAY ? "with the replay buffer" : "no replay buffer");
        else
            printf("model: (no model section)\n");
    }
    free(p);

    /* what the library says, without overrides */
    dlsched_agent *ag = NULL;
    int rc = dlsched_load(path, NULL, &ag);
    if (rc != DLSCHED_OK) {
        printf("load: FAILED: %s: %s\n", dlsched_strerror(rc), dlsched_last_error());
        return EXIT_FAIL;
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
    return EXIT_OK;
}

/* ---- q -------------------------------------------------------------------------- */

/* "x0,x1,..." into a malloc'ed array; bad numbers are named */
static int parse_state_arg(const char *arg, float **out, uint32_t *count)
{
    size_t n = 1;
    for (const char *s = arg; *s; s++)
        n += *s == ',';
    char *copy = strdup(arg);
    float *x = malloc(n * sizeof *x);
    if (!copy || !x) {
        free(copy);
        free(x);
        errmsg("out of memory");
        return EXIT_FAIL;
    }
    char *s = copy;
    char b[200];
    for (size_t i = 0; i < n; i++) {
        char *comma = strchr(s, ',');
        if (comma)
            *comma = '\0';
        char *t = trim(s);
        enum num_status st = parse_float(t, &x[i]);
        if (st != NUM_OK) {
            errmsg("state: number %zu, '%s', %s", i + 1, shown(t, strlen(t), 60, b, sizeof b),
                   num_why(st));
            free(copy);
            free(x);
            return EXIT_USAGE;
        }
        s = comma ? comma + 1 : s;
    }
    free(copy);
    if (n > UINT32_MAX) {
        free(x);
        errmsg("state: too many numbers");
        return EXIT_USAGE;
    }
    *out = x;
    *count = (uint32_t)n;
    return EXIT_OK;
}

static int cmd_q(int argc, char **argv)
{
    const char *pos[2];
    size_t npos;
    int a = parse_args(argc, argv, "q", NULL, 0, pos, 2, &npos);
    if (a > 0) {
        fputs(usage_text, stdout);
        return EXIT_OK;
    }
    if (a < 0)
        return EXIT_USAGE;
    if (npos != 2) {
        usage_error("q: a checkpoint FILE and a state X0,X1,... are needed");
        return EXIT_USAGE;
    }
    float *x = NULL;
    uint32_t n = 0;
    int ex = parse_state_arg(pos[1], &x, &n);
    if (ex != EXIT_OK)
        return ex;
    model_t m;
    ex = model_load(pos[0], &m);
    if (ex != EXIT_OK) {
        free(x);
        return ex;
    }
    if (n != m.nf) {
        errmsg("state: %u number%s given but the model has n_features=%u", n, n == 1 ? "" : "s",
               m.nf);
        free(x);
        dlsched_agent_free(m.ag);
        return EXIT_USAGE;
    }
    float *q = malloc((size_t)m.na * sizeof *q);
    if (!q) {
        errmsg("out of memory");
        free(x);
        dlsched_agent_free(m.ag);
        return EXIT_FAIL;
    }
    dlsched_state_t s = {x, m.nf, 0, NULL, -1, 0};
    dlsched_decision_t d;
    int rc = dlsched_q_values(m.ag, &s, q, m.na);
    if (rc == DLSCHED_OK)
        rc = dlsched_act(m.ag, &s, DLSCHED_ACT_GREEDY, &d);
    if (rc != DLSCHED_OK) {
        errmsg("state: %s: %s", dlsched_strerror(rc), dlsched_last_error());
        ex = lib_exit(rc);
    } else {
        float best = -INFINITY;
        uint32_t ties = 0;
        for (uint32_t i = 0; i < m.na; i++)
            if (q[i] > best)
                best = q[i];
        for (uint32_t i = 0; i < m.na; i++) {
            printf("action %u: %.9g\n", i, (double)q[i]);
            ties += q[i] == best;
        }
        printf("greedy: %d\n", (int)d.action);
        if (ties > 1) {
            printf("tied: %u actions share the greatest Q-value (", ties);
            for (uint32_t i = 0, k = 0; i < m.na; i++)
                if (q[i] == best)
                    printf("%s%u", k++ ? " " : "", i);
            printf("); dlsched_act broke the tie at random\n");
        }
    }
    free(q);
    free(x);
    dlsched_agent_free(m.ag);
    return ex;
}

/* ---- train-offline -------------------------------------------------------------- */

static int config_u64(const dlsched_config *cfg, const char *key, uint64_t *out)
{
    char buf[64];
    if (dlsched_config_get(cfg, key, buf, sizeof buf) != DLSCHED_OK || parse_u64(buf, out) != 0)
        return -1;
    return 0;
}

static int cmd_train_offline(int argc, char **argv)
{
    const char *spec = NULL, *data = NULL, *out = NULL, *steps_s = NULL;
    opt_spec_t opts[] = {
        {"--config", &spec}, {"--data", &data}, {"--out", &out}, {"--steps", &steps_s}};
    const char *pos[1];
    size_t npos;
    int a = parse_args(argc, argv, "train-offline", opts, 4, pos, 0, &npos);
    if (a > 0) {
        fputs(usage_text, stdout);
        return EXIT_OK;
    }
    if (a < 0)
        return EXIT_USAGE;
    if (!spec || !data || !out) {
        usage_error("train-offline: --config, --data and --out are needed");
        return EXIT_USAGE;
    }
    if (!*out) {
        usage_error("train-offline: --out is empty");
        return EXIT_USAGE;
    }
    uint64_t steps = 0;
    if (steps_s && parse_u64(steps_s, &steps) != 0) {
        usage_error("train-offline: --steps '%s' is not a non-negative integer", steps_s);
        return EXIT_USAGE;
    }

    dlsched_config *cfg = NULL;
    int rc = dlsched_config_new(&cfg);
    if (rc != DLSCHED_OK) {
        errmsg("%s: %s", dlsched_strerror(rc), dlsched_last_error());
        return EXIT_FAIL;
    }
    rc = dlsched_config_parse(cfg, spec);
    if (rc != DLSCHED_OK) {
        errmsg("--config: %s", dlsched_last_error());
        dlsched_config_free(cfg);
        return lib_exit(rc);
    }
    uint64_t nf64 = 0, na64 = 0, replay = 0, batch = 1;
    char algo[32] = "";
    int have_shape = config_u64(cfg, "n_features", &nf64) == 0 &&
                     config_u64(cfg, "n_actions", &na64) == 0;
    dlsched_config_get(cfg, "algo", algo, sizeof algo);
    config_u64(cfg, "replay", &replay);
    config_u64(cfg, "batch", &batch);
    if (!have_shape) {
        errmsg("--config: n_features and n_actions are needed");
        dlsched_config_free(cfg);
        return EXIT_USAGE;
    }
    if (steps > 0 && replay == 0) {
        errmsg("--steps %" PRIu64 ": training steps replay stored transitions, but 'replay' "
               "is 0 (add replay=N to --config)",
               steps);
        dlsched_config_free(cfg);
        return EXIT_USAGE;
    }
    dlsched_agent *ag = NULL;
    rc = dlsched_agent_new(cfg, &ag);
    dlsched_config_free(cfg);
    if (rc != DLSCHED_OK) {
        errmsg("--config: %s: %s", dlsched_strerror(rc), dlsched_last_error());
        return lib_exit(rc);
    }
    uint32_t nf = (uint32_t)nf64, na = (uint32_t)na64;

    csv_t c;
    colmap_t m;
    memset(&m, 0, sizeof m);
    float *x = malloc(nf * sizeof *x), *y = malloc(nf * sizeof *y);
    int ex = EXIT_OK;
    if (!x || !y) {
        errmsg("out of memory");
        ex = EXIT_FAIL;
    } else if (csv_open(&c, data) != 0) {
        ex = EXIT_FAIL;
    } else {
        ex = colmap_read(&c, &m, nf, 1);
        uint64_t rows = 0;
        while (ex == EXIT_OK) {
            int why = EXIT_USAGE;
            int got = csv_next(&c, &why);
            if (got <= 0) {
                if (got < 0)
                    ex = why;
                break;
            }
            int32_t action = 0;
            float reward = 0, done = 0;
            if (check_ncols(&c, &m) != 0 || get_states(&c, &m, nf, m.s_col, x) != 0 ||
                get_action(&c, &m, na, &action) != 0 ||
                get_float(&c, &m, m.reward_col, &reward) != 0) {
                ex = EXIT_USAGE;
                break;
            }
            enum num_status st = parse_float(c.fld[m.done_col], &done);
            if (st != NUM_OK || (done != 0.0f && done != 1.0f)) {
                field_error(&c, &m, m.done_col, "is not 0 or 1");
                ex = EXIT_USAGE;
                break;
            }
            /* a terminal row may leave the next state empty */
            int next_given = 1;
            if (done == 1.0f)
                for (uint32_t i = 0; i < nf; i++)
                    if (c.fld[m.n_col[i]][0] == '\0')
                        next_given = 0;
            for (uint32_t i = 0; next_given && i < nf; i++) {
                st = parse_float(c.fld[m.n_col[i]], &y[i]);
                if (st != NUM_OK) {
                    field_error(&c, &m, m.n_col[i], "%s%s", num_why(st),
                                st == NUM_EMPTY ? " (the next state may be empty only when "
                                                  "done is 1)"
                                                : "");
                    ex = EXIT_USAGE;
                    break;
                }
            }
            if (ex != EXIT_OK)
                break;
            dlsched_state_t s = {x, nf, 0, NULL, -1, 0};
            dlsched_state_t ns = {y, nf, 0, NULL, -1, 0};
            rc = dlsched_observe_transition(ag, &s, action, reward, next_given ? &ns : NULL,
                                            done == 1.0f ? DLSCHED_OBS_TERMINAL : 0);
            if (rc != DLSCHED_OK) {
                errmsg("%s:%" PRIu64 ": the library refused the transition: %s: %s", c.name,
                       c.lineno, dlsched_strerror(rc), dlsched_last_error());
                ex = lib_exit(rc);
                break;
            }
            rows++;
        }
        if (ex == EXIT_OK && rows == 0) {
            errmsg("%s: no data rows after the header (line %" PRIu64 ")", c.name,
                   m.header_line);
            ex = EXIT_USAGE;
        }
        csv_close(&c);
        uint64_t extra = 0;
        if (ex == EXIT_OK) {
            if (steps_s)
                extra = steps;
            else if (replay == 0)
                extra = 0;
            else if (strcmp(algo, "qtable") == 0)
                extra = 10 * rows;
            else
                extra = (10 * rows + batch - 1) / (batch ? batch : 1);
            for (uint64_t left = extra; left > 0 && ex == EXIT_OK;) {
                uint32_t chunk = left > 1000000 ? 1000000 : (uint32_t)left;
                rc = dlsched_train(ag, chunk);
                if (rc != DLSCHED_OK) {
                    errmsg("training: %s: %s", dlsched_strerror(rc), dlsched_last_error());
                    ex = lib_exit(rc);
                }
                left -= chunk;
            }
        }
        if (ex == EXIT_OK) {
            rc = dlsched_save(ag, out);
            if (rc != DLSCHED_OK) {
                errmsg("%s: %s", dlsched_strerror(rc), dlsched_last_error());
                ex = EXIT_FAIL;
            }
        }
        if (ex == EXIT_OK) {
            dlsched_stats_t st;
            memset(&st, 0, sizeof st);
            dlsched_stats(ag, &st, sizeof st);
            printf("rows: %" PRIu64 "\n", rows);
            printf("transitions: %" PRIu64 "\n", st.transitions);
            printf("transitions_stored: %" PRIu64 "\n", st.transitions_stored);
            printf("extra_train_steps: %" PRIu64 "%s\n", extra,
                   steps_s ? "" : " (default)");
            printf("train_steps: %" PRIu64 "\n", st.train_steps);
            printf("last_loss: %.9g\n", st.last_loss);
            printf("mean_reward: %.9g\n", st.mean_reward);
            printf("wrote: %s\n", out);
        }
    }
    colmap_free(&m);
    free(x);
    free(y);
    dlsched_agent_free(ag);
    return ex;
}

/* ---- eval ------------------------------------------------------------------------ */

static int cmd_eval(int argc, char **argv)
{
    const char *data = NULL;
    opt_spec_t opts[] = {{"--data", &data}};
    const char *pos[1];
    size_t npos;
    int a = parse_args(argc, argv, "eval", opts, 1, pos, 1, &npos);
    if (a > 0) {
        fputs(usage_text, stdout);
        return EXIT_OK;
    }
    if (a < 0)
        return EXIT_USAGE;
    if (npos != 1 || !data) {
        usage_error("eval: a checkpoint FILE and --data FILE.csv are needed");
        return EXIT_USAGE;
    }
    model_t mo;
    int ex = model_load(pos[0], &mo);
    if (ex != EXIT_OK)
        return ex;
    uint32_t nf = mo.nf, na = mo.na;
    float *x = malloc(nf * sizeof *x), *q = malloc(na * sizeof *q);
    csv_t c;
    colmap_t m;
    memset(&m, 0, sizeof m);
    if (!x || !q) {
        errmsg("out of memory");
        ex = EXIT_FAIL;
    } else if (csv_open(&c, data) != 0) {
        ex = EXIT_FAIL;
    } else {
        ex = colmap_read(&c, &m, nf, 0);
        uint64_t rows = 0;
        double agree = 0, reward_sum = 0, ips_sum = 0, w_sum = 0, wr_sum = 0;
        int has_p = m.prob_col != NO_COL;
        while (ex == EXIT_OK) {
            int why = EXIT_USAGE;
            int got = csv_next(&c, &why);
            if (got <= 0) {
                if (got < 0)
                    ex = why;
                break;
            }
            int32_t action = 0;
            float reward = 0, p = 1;
            if (check_ncols(&c, &m) != 0 || get_states(&c, &m, nf, m.s_col, x) != 0 ||
                get_action(&c, &m, na, &action) != 0 ||
                get_float(&c, &m, m.reward_col, &reward) != 0 ||
                (has_p && get_float(&c, &m, m.prob_col, &p) != 0)) {
                ex = EXIT_USAGE;
                break;
            }
            if (has_p && !(p > 0.0f && p <= 1.0f)) {
                field_error(&c, &m, m.prob_col, "is not a probability in (0, 1]");
                ex = EXIT_USAGE;
                break;
            }
            dlsched_state_t s = {x, nf, 0, NULL, -1, 0};
            int rc = dlsched_q_values(mo.ag, &s, q, na);
            if (rc != DLSCHED_OK) {
                errmsg("%s:%" PRIu64 ": %s: %s", c.name, c.lineno, dlsched_strerror(rc),
                       dlsched_last_error());
                ex = lib_exit(rc);
                break;
            }
            /* the greedy policy with the library's uniform tie-break: the
               logged action's probability under it is 1/k when it is one of
               k actions sharing the greatest Q-value, else 0 */
            float best = -INFINITY;
            uint32_t k = 0;
            for (uint32_t i = 0; i < na; i++)
                if (q[i] > best)
                    best = q[i];
            for (uint32_t i = 0; i < na; i++)
                k += q[i] == best;
            double pi = (k > 0 && q[action] == best) ? 1.0 / k : 0.0;
            agree += pi;
            reward_sum += reward;
            if (has_p) {
                double w = pi / p;
                ips_sum += reward * w;
                w_sum += w;
                wr_sum += reward * w;
            }
            rows++;
        }
        if (ex == EXIT_OK && rows == 0) {
            errmsg("%s: no data rows after the header (line %" PRIu64 ")", c.name,
                   m.header_line);
            ex = EXIT_USAGE;
        }
        csv_close(&c);
        if (ex == EXIT_OK) {
            double nr = (double)rows;
            printf("rows: %" PRIu64 "\n", rows);
            printf("agreement: %.6f (share of rows whose logged action is the greedy one; "
                   "ties count 1/k)\n",
                   agree / nr);
            printf("logged_mean_reward: %.9g\n", reward_sum / nr);
            if (has_p) {
                printf("ips: %.9g (inverse propensity estimate of the greedy policy's mean "
                       "reward)\n",
                       ips_sum / nr);
                if (w_sum > 0)
                    printf("snips: %.9g (self-normalised; weights sum to %.6g, mean %.6g)\n",
                           wr_sum / w_sum, w_sum, w_sum / nr);
                else
                    printf("snips: undefined (no logged action is a greedy one)\n");
            } else {
                printf("ips: n/a (no probability column)\n");
                printf("snips: n/a (no probability column)\n");
            }
        }
    }
    colmap_free(&m);
    free(x);
    free(q);
    dlsched_agent_free(mo.ag);
    return ex;
}

/* ---- main ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage_error("a command is needed");
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    int ex;
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_text, stdout);
        ex = EXIT_OK;
    } else if (strcmp(cmd, "--version") == 0) {
        printf("dlsched (libdlsched) %s\n", dlsched_version_string());
        ex = EXIT_OK;
    } else if (strcmp(cmd, "inspect") == 0) {
        ex = cmd_inspect(argc - 2, argv + 2);
    } else if (strcmp(cmd, "q") == 0) {
        ex = cmd_q(argc - 2, argv + 2);
    } else if (strcmp(cmd, "train-offline") == 0) {
        ex = cmd_train_offline(argc - 2, argv + 2);
    } else if (strcmp(cmd, "eval") == 0) {
        ex = cmd_eval(argc - 2, argv + 2);
    } else {
        char b[200];
        usage_error("unknown command '%s'", shown(cmd, strlen(cmd), 60, b, sizeof b));
        ex = EXIT_USAGE;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        errmsg("writing the output failed: %s", strerror(errno));
        if (ex == EXIT_OK)
            ex = EXIT_FAIL;
    }
    return ex;
}
