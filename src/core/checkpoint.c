/*
 * checkpoint.c - save and load agents (format in man5/dlsched-checkpoint.5)
 *
 *   offset 0   "DLSCHKPT"            magic, 8 bytes
 *          8   u32 format version     DLS_CKPT_VERSION
 *         12   u32 flags              bit 0: the replay buffer is included
 *         16   u64 body length        bytes of sections that follow
 *         24   sections               u32 tag, u32 0, u64 length, data
 *   24 + body  u32 CRC-32 (zlib)      of every byte before it
 *
 * Sections, in this order: 1 configuration (text, "key=value\n" for every
 * key that was set), 2 agent (shape, RNG, counters, apprenticeship), 4 guard
 * (format version 2; only when guard=1: state, statistics, counts), 3 model
 * (the backend's: table or network, optimiser, normaliser, n-step queue,
 * replay). All integers and floats little-endian. Every size read is checked
 * against the bytes left before it is used.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent_impl.h"
#include "bytes.h"

#define DLS_CKPT_MAGIC "DLSCHKPT"
#define DLS_CKPT_VERSION 2u
#define DLS_CKPT_HEADER 24u
#define DLS_CKPT_FLAG_REPLAY 1u

enum { DLS_SEC_CONFIG = 1, DLS_SEC_AGENT = 2, DLS_SEC_MODEL = 3, DLS_SEC_GUARD = 4 };

/* ---- save -------------------------------------------------------------------- */

static int dls_serialize(dlsched_agent *ag, dls_wbuf *w)
{
    int with_replay = dls_config_int(ag->cfg, DLS_KEY_SAVE_REPLAY) != 0;
    dls_w_bytes(w, DLS_CKPT_MAGIC, 8);
    dls_w_u32(w, DLS_CKPT_VERSION);
    dls_w_u32(w, with_replay ? DLS_CKPT_FLAG_REPLAY : 0);
    dls_w_u64(w, 0);

    size_t at = dls_w_sec_begin(w, DLS_SEC_CONFIG);
    for (int i = 0; i < DLS_N_KEYS; i++) {
        if (!dls_config_isset(ag->cfg, i))
            continue;
        const char *t = dls_config_text(ag->cfg, i);
        dls_w_bytes(w, dls_keys[i].name, strlen(dls_keys[i].name));
        dls_w_bytes(w, "=", 1);
        dls_w_bytes(w, t, strlen(t));
        dls_w_bytes(w, "\n", 1);
    }
    dls_w_sec_end(w, at);

    /* the model and the counters are read under both locks: a consistent
       snapshot while other threads act and observe */
    dls_agent_lock(ag);
    dls_agent_drain(ag);
    pthread_mutex_lock(&ag->tmu);
    at = dls_w_sec_begin(w, DLS_SEC_AGENT);
    dls_w_u32(w, ag->is_dqn ? DLS_ALGO_DQN : DLS_ALGO_QTABLE);
    dls_w_u32(w, ag->nf);
    dls_w_u32(w, ag->na);
    dls_w_bytes(w, ag->rng.s, sizeof ag->rng.s);
    uint64_t pending = dls_tickets_pending(&ag->tickets);
    dls_w_u64(w, ag->tickets_issued);
    dls_w_u64(w, ag->observed);
    dls_w_u64(w, ag->expired + pending); /* pending tickets are not saved */
    dls_w_u64(w, ag->timed_out);
    dls_w_u64(w, ag->n_rewards);
    dls_w_f64(w, ag->mean_reward);
    dls_w_u64(w, atomic_load(&ag->decisions));
    dls_w_u64(w, atomic_load(&ag->explored));
    dls_w_u64(w, atomic_load(&ag->hinted));
    dls_w_u64(w, atomic_load(&ag->transitions));
    /* the model version: learner=none never trains, its version is the
       imported weights' */
    dls_w_u64(w, dls_agent_version(ag));
    dls_w_f64(w, atomic_load(&ag->last_loss));
    dls_w_u32(w, (uint32_t)atomic_load(&ag->appr_active));
    dls_w_u64(w, ag->appr_left);
    dls_w_u32(w, ag->appr_pos);
    dls_w_u32(w, ag->appr_fill);
    dls_w_u32(w, ag->appr_agree);
    dls_w_bytes(w, ag->appr_window, sizeof ag->appr_window);
    dls_w_sec_end(w, at);
    if (ag->guard.enabled) {
        at = dls_w_sec_begin(w, DLS_SEC_GUARD);
        dls_guard_save(&ag->guard, w);
        dls_w_sec_end(w, at);
    }
    pthread_mutex_unlock(&ag->tmu);

    if (ag->ops->sync) { /* device training: the model back to the host first */
        int rc = ag->ops->sync(ag->impl);
        if (rc != DLSCHED_OK) {
            dls_agent_unlock(ag);
            return rc;
        }
    }
    if (!ag->ops->finite(ag->impl)) {
        dls_agent_unlock(ag);
        return dls_fail(DLSCHED_EBACKEND, "the model holds non-finite values (training "
                                          "diverged); not saved, so the last good "
                                          "checkpoint stays");
    }
    at = dls_w_sec_begin(w, DLS_SEC_MODEL);
    ag->ops->save(ag->impl, w, with_replay);
    dls_w_sec_end(w, at);
    dls_agent_unlock(ag);

    if (w->failed)
        return dls_fail(DLSCHED_ENOMEM, "out of memory serialising the agent");
    uint64_t body = w->len - DLS_CKPT_HEADER;
    memcpy(w->p + 16, &body, 8);
    dls_w_u32(w, dls_crc32(w->p, w->len));
    DLS_FAIL_IF(w->failed, DLSCHED_ENOMEM, "out of memory serialising the agent");
    return DLSCHED_OK;
}

DLSCHED_API int dlsched_save_buffer(dlsched_agent *ag, void **buf, size_t *len)
{
    DLS_FAIL_IF(!ag, DLSCHED_EINVAL, "agent is NULL");
    DLS_FAIL_IF(!buf, DLSCHED_EINVAL, "buf is NULL");
    DLS_FAIL_IF(!len, DLSCHED_EINVAL, "len is NULL");
    dls_wbuf w = {NULL, 0, 0, 0};
    int rc = dls_serialize(ag, &w);
    if (rc != DLSCHED_OK) {
        free(w.p);
        return rc;
    }
    *buf = w.p;
    *len = w.len;
    return DLSCHED_OK;
}

DLSCHED_API void dlsched_buffer_free(void *buf)
{
    free(buf);
}

static int dls_write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

DLSCHED_API int dlsched_save(dlsched_agent *ag, const char *path)
{
    DLS_FAIL_IF(!ag, DLSCHED_EINVAL, "agent is NULL");
    DLS_FAIL_IF(!path || !*path, DLSCHED_EINVAL, "path is NULL or empty");
    size_t plen = strlen(path);
    DLS_FAIL_IF(plen > PATH_MAX - 16, DLSCHED_EINVAL, "path is longer than %d bytes",
                PATH_MAX - 16);
    dls_wbuf w = {NULL, 0, 0, 0};
    int rc = dls_serialize(ag, &w);
    if (rc != DLSCHED_OK) {
        free(w.p);
        return rc;
    }
    /* a temporary file beside the target, fsync, rename over it, fsync the
       directory: a crash leaves the old file or the new one, never a mix */
    /* O_EXCL with a fresh name; mode 0666 less the umask, as any new file,
       or the mode of the file it replaces */
    char tmp[PATH_MAX];
    int fd = -1;
    for (int attempt = 0; fd < 0 && attempt < 16; attempt++) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%lx", path, (long)getpid(),
                 (unsigned long)(ts.tv_nsec ^ ((uintptr_t)ag >> 4) ^ (unsigned long)attempt));
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        int e = errno;
        free(w.p);
        return dls_fail(DLSCHED_EIO, "cannot create a temporary file beside '%s': %s", path,
                        strerror(e));
    }
    struct stat old;
    if (stat(path, &old) == 0)
        fchmod(fd, old.st_mode & 07777);
    const char *step = NULL;
    if (dls_write_all(fd, w.p, w.len) != 0)
        step = "write";
    else if (fsync(fd) != 0)
        step = "fsync";
    int e = errno;
    if (close(fd) != 0 && !step) {
        step = "close";
        e = errno;
    }
    free(w.p);
    if (!step && rename(tmp, path) != 0) {
        step = "rename";
        e = errno;
    }
    if (step) {
        unlink(tmp);
        return dls_fail(DLSCHED_EIO, "saving '%s': %s failed: %s", path, step, strerror(e));
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) { /* the rename itself must reach the disk */
        int bad = fsync(dfd) != 0;
        e = errno;
        close(dfd);
        DLS_FAIL_IF(bad && e != EINVAL, DLSCHED_EIO,
                    "saving '%s': fsync of its directory failed: %s", path, strerror(e));
    }
    return DLSCHED_OK;
}

/* ---- load -------------------------------------------------------------------- */

/* the next section, which must carry tag */
static int dls_section(dls_rbuf *all, uint32_t tag, const char *name, dls_rbuf *sec)
{
    uint32_t t = dls_r_u32(all);
    dls_r_u32(all);
    uint64_t len = dls_r_u64(all);
    DLS_FAIL_IF(all->bad || t != tag, DLSCHED_EFORMAT,
                "checkpoint: expected the %s section (tag %u) at byte %zu", name, tag,
                all->pos);
    DLS_FAIL_IF(len > all->len - all->pos, DLSCHED_EFORMAT,
                "checkpoint: the %s section claims %llu bytes but %zu are left", name,
                (unsigned long long)len, all->len - all->pos);
    sec->p = all->p + all->pos;
    sec->len = (size_t)len;
    sec->pos = 0;
    sec->bad = 0;
    all->pos += (size_t)len;
    return DLSCHED_OK;
}

/* the stored configuration, with the overrides applied */
static int dls_load_config(dls_rbuf *sec, const dlsched_config *ov, dlsched_config **out)
{
    DLS_FAIL_IF(memchr(sec->p, '\0', sec->len) != NULL, DLSCHED_EFORMAT,
                "checkpoint: the configuration holds a NUL byte");
    dlsched_config *cfg;
    DLS_TRY(dlsched_config_new(&cfg));
    char *text = malloc(sec->len + 1);
    if (!text) {
        dlsched_config_free(cfg);
        return dls_fail(DLSCHED_ENOMEM, "out of memory reading a checkpoint");
    }
    memcpy(text, sec->p, sec->len);
    text[sec->len] = '\0';
    int rc = DLSCHED_OK;
    for (char *line = text, *next; rc == DLSCHED_OK && *line; line = next) {
        char *nl = strchr(line, '\n');
        if (!nl) {
            rc = dls_fail(DLSCHED_EFORMAT, "checkpoint: the configuration is not terminated");
            break;
        }
        *nl = '\0';
        next = nl + 1;
        char *eq = strchr(line, '=');
        if (!eq) {
            rc = dls_fail(DLSCHED_EFORMAT, "checkpoint: configuration line '%.40s' is not "
                                           "key=value",
                          line);
            break;
        }
        *eq = '\0';
        if (dlsched_config_set(cfg, line, eq + 1) != DLSCHED_OK) {
            char msg[400];
            snprintf(msg, sizeof msg, "%s", dlsched_last_error());
            rc = dls_fail(DLSCHED_EFORMAT, "checkpoint: stored configuration: %s", msg);
        }
    }
    free(text);
    for (int i = 0; rc == DLSCHED_OK && ov && i < DLS_N_KEYS; i++) {
        if (!dls_config_isset(ov, i))
            continue;
        const char *want = dls_config_text(ov, i);
        if (dls_keys[i].flags & (DLS_K_SHAPE | DLS_K_STORED)) {
            const char *have = dls_config_text(cfg, i);
            int same = have && strcmp(have, want) == 0;
            if (!same && have && (i == DLS_KEY_BINS || i == DLS_KEY_FEATURE_LOW ||
                                  i == DLS_KEY_FEATURE_HIGH)) {
                /* per-feature lists: "3" and "3,3" say the same */
                uint32_t nf = (uint32_t)dls_config_int(cfg, DLS_KEY_N_FEATURES);
                double *a = malloc(2 * (size_t)nf * sizeof *a);
                if (a) {
                    same = dls_config_list(cfg, i, nf, a) == DLSCHED_OK &&
                           dls_config_list(ov, i, nf, a + nf) == DLSCHED_OK &&
                           memcmp(a, a + nf, nf * sizeof *a) == 0;
                    free(a);
                }
            }
            if (!same)
                rc = dls_fail(DLSCHED_EMISMATCH,
                              "key '%s': the checkpoint has %s but the override says %s (it "
                              "fixes the stored model's shape)",
                              dls_keys[i].name, have ? have : "(unset)", want);
            continue;
        }
        rc = dlsched_config_set(cfg, dls_keys[i].name, want);
    }
    if (rc != DLSCHED_OK) {
        dlsched_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return DLSCHED_OK;
}

static int dls_load_agent_section(dlsched_agent *ag, dls_rbuf *r)
{
    uint32_t algo = dls_r_u32(r), nf = dls_r_u32(r), na = dls_r_u32(r);
    DLS_FAIL_IF(r->bad || algo != (uint32_t)(ag->is_dqn ? DLS_ALGO_DQN : DLS_ALGO_QTABLE) ||
                    nf != ag->nf || na != ag->na,
                DLSCHED_EFORMAT, "checkpoint: the agent section does not match its configuration");
    dls_r_bytes(r, ag->rng.s, sizeof ag->rng.s);
    uint64_t issued = dls_r_u64(r), observed = dls_r_u64(r), expired = dls_r_u64(r);
    uint64_t timed_out = dls_r_u64(r), n_rewards = dls_r_u64(r);
    double mean_reward = dls_r_f64(r);
    uint64_t decisions = dls_r_u64(r), explored = dls_r_u64(r), hinted = dls_r_u64(r);
    uint64_t transitions = dls_r_u64(r), train_steps = dls_r_u64(r);
    double last_loss = dls_r_f64(r);
    uint32_t active = dls_r_u32(r);
    uint64_t left = dls_r_u64(r);
    uint32_t pos = dls_r_u32(r), fill = dls_r_u32(r), agree = dls_r_u32(r);
    dls_r_bytes(r, ag->appr_window, sizeof ag->appr_window);
    DLS_FAIL_IF(r->bad, DLSCHED_EFORMAT, "checkpoint: the agent section is truncated");
    DLS_FAIL_IF((ag->rng.s[0] | ag->rng.s[1] | ag->rng.s[2] | ag->rng.s[3]) == 0,
                DLSCHED_EFORMAT, "checkpoint: the RNG state is all zero");
    DLS_FAIL_IF(observed > issued || expired != issued - observed || timed_out > expired ||
                    explored > decisions || hinted > decisions,
                DLSCHED_EFORMAT, "checkpoint: the counters do not reconcile");
    DLS_FAIL_IF(!isfinite(mean_reward) || !isfinite(last_loss), DLSCHED_EFORMAT,
                "checkpoint: a statistic is not finite");
    uint32_t sum = 0;
    for (uint32_t i = 0; i < DLS_APPRENTICE_WINDOW; i++) {
        DLS_FAIL_IF(ag->appr_window[i] > 1, DLSCHED_EFORMAT,
                    "checkpoint: the apprenticeship window is corrupt");
        sum += i < fill ? ag->appr_window[i] : 0;
    }
    DLS_FAIL_IF(active > 1 || fill > DLS_APPRENTICE_WINDOW || pos >= DLS_APPRENTICE_WINDOW ||
                    (fill < DLS_APPRENTICE_WINDOW && pos != fill) ||
                    agree > fill || sum != agree ||
                    (active && !left),
                DLSCHED_EFORMAT, "checkpoint: the apprenticeship state is corrupt");
    ag->tickets_issued = issued;
    /* tickets keep counting from where the saved agent stopped, so one of
       its tickets is never mistaken for a new one */
    ag->tickets.seq = issued;
    ag->observed = observed;
    ag->expired = expired;
    ag->timed_out = timed_out;
    ag->n_rewards = n_rewards;
    ag->mean_reward = mean_reward;
    atomic_store(&ag->decisions, decisions);
    atomic_store(&ag->explored, explored);
    atomic_store(&ag->hinted, hinted);
    atomic_store(&ag->transitions, transitions);
    if (ag->learner_none)
        atomic_store(&ag->imported_version, train_steps);
    else
        atomic_store(&ag->train_steps, train_steps);
    atomic_store(&ag->last_loss, last_loss);
    atomic_store(&ag->appr_active, (int)active);
    ag->appr_left = left;
    ag->appr_pos = pos;
    ag->appr_fill = fill;
    ag->appr_agree = agree;
    return DLSCHED_OK;
}

/* the smallest model section the configuration implies: the Q-table, or
   the parameters, target and Adam moments (saturating, never overflowing) */
static uint64_t dls_model_min_bytes(const dlsched_config *cfg)
{
    const uint64_t cap = UINT64_MAX / 4;
    uint64_t nf = (uint64_t)dls_config_int(cfg, DLS_KEY_N_FEATURES);
    uint64_t na = (uint64_t)dls_config_int(cfg, DLS_KEY_N_ACTIONS);
    if (nf == 0 || na == 0) /* required keys missing: agent creation says so */
        return 0;
    if (dls_config_int(cfg, DLS_KEY_ALGO) == DLS_ALGO_QTABLE) {
        double *bins = malloc(nf * sizeof *bins);
        uint64_t states = 1;
        /* a bins list of the wrong length: agent creation says so */
        if (!bins || dls_config_list(cfg, DLS_KEY_BINS, (uint32_t)nf, bins) != DLSCHED_OK) {
            free(bins);
            return 0;
        }
        for (uint64_t i = 0; i < nf && states <= cap; i++) {
            uint64_t b = (uint64_t)bins[i];
            states = states > cap / b ? cap + 1 : states * b;
        }
        free(bins);
        return states > cap / na / 4 ? cap : states * na * 4;
    }
    uint64_t n = 0, in = nf;
    const char *c = dls_config_text(cfg, DLS_KEY_HIDDEN);
    while (*c) {
        uint64_t out = strtoull(c, (char **)&c, 10);
        if (*c == ',')
            c++;
        n += (in + 1) * out;
        in = out;
    }
    n += (in + 1) * (na + (dls_config_int(cfg, DLS_KEY_DUELING) ? 1 : 0));
    return n > cap / 16 ? cap : n * 16;
}

DLSCHED_API int dlsched_load_buffer(const void *buf, size_t len, const dlsched_config *overrides,
                                    dlsched_agent **out)
{
    DLS_FAIL_IF(!buf, DLSCHED_EINVAL, "buf is NULL");
    DLS_FAIL_IF(!out, DLSCHED_EINVAL, "out is NULL");
    const unsigned char *p = buf;
    DLS_FAIL_IF(len < DLS_CKPT_HEADER + 4, DLSCHED_EFORMAT,
                "checkpoint: %zu bytes is too short for a libdlsched checkpoint", len);
    DLS_FAIL_IF(memcmp(p, DLS_CKPT_MAGIC, 8) != 0, DLSCHED_EFORMAT,
                "checkpoint: not a libdlsched checkpoint (bad magic)");
    uint32_t version, flags;
    uint64_t body;
    memcpy(&version, p + 8, 4);
    memcpy(&flags, p + 12, 4);
    memcpy(&body, p + 16, 8);
    DLS_FAIL_IF(version > DLS_CKPT_VERSION, DLSCHED_EFORMAT,
                "checkpoint: format version %u is newer than this library's %u (libdlsched %s); "
                "load it with a newer libdlsched",
                version, DLS_CKPT_VERSION, dlsched_version_string());
    DLS_FAIL_IF(version == 0, DLSCHED_EFORMAT, "checkpoint: format version 0 is invalid");
    DLS_FAIL_IF(body != len - DLS_CKPT_HEADER - 4, DLSCHED_EFORMAT,
                "checkpoint: the header announces %llu bytes of sections but %zu are there "
                "(truncated or extended)",
                (unsigned long long)body, len - DLS_CKPT_HEADER - 4);
    uint32_t crc;
    memcpy(&crc, p + len - 4, 4);
    DLS_FAIL_IF(crc != dls_crc32(p, len - 4), DLSCHED_EFORMAT,
                "checkpoint: checksum mismatch (the data is corrupt)");
    DLS_FAIL_IF(flags & ~DLS_CKPT_FLAG_REPLAY, DLSCHED_EFORMAT,
                "checkpoint: unknown flags 0x%x", flags);

    dls_rbuf all = {p + DLS_CKPT_HEADER, (size_t)body, 0, 0}, sec_cfg, sec_agent, sec_model,
             sec_guard = {NULL, 0, 0, 0};
    DLS_TRY(dls_section(&all, DLS_SEC_CONFIG, "configuration", &sec_cfg));
    DLS_TRY(dls_section(&all, DLS_SEC_AGENT, "agent", &sec_agent));
    /* version 2: the guard's section, when the saved agent had the guard on */
    uint32_t next_tag = 0;
    if (all.len - all.pos >= 4)
        memcpy(&next_tag, all.p + all.pos, 4);
    int has_guard = version >= 2 && next_tag == DLS_SEC_GUARD;
    if (has_guard)
        DLS_TRY(dls_section(&all, DLS_SEC_GUARD, "guard", &sec_guard));
    DLS_TRY(dls_section(&all, DLS_SEC_MODEL, "model", &sec_model));
    DLS_FAIL_IF(all.pos != all.len, DLSCHED_EFORMAT,
                "checkpoint: %zu unexpected bytes after the model section", all.len - all.pos);

    dlsched_config *cfg = NULL;
    DLS_TRY(dls_load_config(&sec_cfg, overrides, &cfg));
    /* the model the configuration describes must be in the file before
       anything is allocated for it */
    uint64_t need = dls_model_min_bytes(cfg);
    if (need > sec_model.len) {
        dlsched_config_free(cfg);
        return dls_fail(DLSCHED_EFORMAT,
                        "checkpoint: its configuration needs a model of at least %llu bytes but "
                        "the model section has %zu",
                        (unsigned long long)need, sec_model.len);
    }
    dlsched_agent *ag = NULL;
    int rc = dlsched_agent_new(cfg, &ag);
    dlsched_config_free(cfg);
    if (rc != DLSCHED_OK) {
        /* without overrides the stored configuration itself is at fault */
        int has_ov = 0;
        for (int i = 0; overrides && i < DLS_N_KEYS; i++)
            has_ov |= dls_config_isset(overrides, i);
        if (rc == DLSCHED_ECONFIG && !has_ov) {
            char msg[400];
            snprintf(msg, sizeof msg, "%s", dlsched_last_error());
            rc = dls_fail(DLSCHED_EFORMAT, "checkpoint: stored configuration: %s", msg);
        }
        return rc;
    }
    dls_agent_lock(ag);
    rc = dls_load_agent_section(ag, &sec_agent);
    if (rc == DLSCHED_OK && sec_agent.pos != sec_agent.len)
        rc = dls_fail(DLSCHED_EFORMAT, "checkpoint: the agent section has extra bytes");
    /* a guard section is taken when the loaded agent has the guard on too
       (an override guard=0 drops it); without one the guard starts afresh */
    if (rc == DLSCHED_OK && has_guard && ag->guard.enabled) {
        pthread_mutex_lock(&ag->tmu);
        rc = dls_guard_load(&ag->guard, &sec_guard);
        pthread_mutex_unlock(&ag->tmu);
        if (rc == DLSCHED_OK && sec_guard.pos != sec_guard.len)
            rc = dls_fail(DLSCHED_EFORMAT, "checkpoint: the guard section has extra bytes");
    }
    if (rc == DLSCHED_OK)
        rc = ag->ops->load(ag->impl, &sec_model, (flags & DLS_CKPT_FLAG_REPLAY) != 0);
    if (rc == DLSCHED_OK && (sec_model.bad || sec_model.pos != sec_model.len))
        rc = dls_fail(DLSCHED_EFORMAT, "checkpoint: the model section has %s bytes",
                      sec_model.bad ? "too few" : "extra");
    if (rc == DLSCHED_OK) {
        uint64_t stored = ag->ops->stored(ag->impl);
        atomic_store(&ag->stored, stored);
        /* learner=thread: the loaded buffer counts as already sampled */
        ag->stored_total = stored;
        ag->sampled_total = (uint64_t)(ag->replay_ratio * (double)stored);
        atomic_store(&ag->published_version, atomic_load(&ag->train_steps));
    }
    dls_agent_unlock(ag);
    if (rc != DLSCHED_OK) {
        dlsched_agent_free(ag);
        return rc;
    }
    *out = ag;
    return DLSCHED_OK;
}

DLSCHED_API int dlsched_load(const char *path, const dlsched_config *overrides,
                             dlsched_agent **out)
{
    DLS_FAIL_IF(!path, DLSCHED_EINVAL, "path is NULL");
    DLS_FAIL_IF(!out, DLSCHED_EINVAL, "out is NULL");
    /* O_NONBLOCK: a FIFO must not block the open; it is refused below */
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    DLS_FAIL_IF(fd < 0, DLSCHED_EIO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    int st = fstat(fd, &sb);
    if (st != 0 || !S_ISREG(sb.st_mode)) {
        int e = st != 0 ? errno : 0;
        close(fd);
        return dls_fail(DLSCHED_EIO, "'%s' is not a regular file%s%s", path, e ? ": " : "",
                        e ? strerror(e) : "");
    }
    size_t n = (size_t)sb.st_size;
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf) {
        close(fd);
        return dls_fail(DLSCHED_ENOMEM, "out of memory reading '%s' (%zu bytes)", path, n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, buf + got, n - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    int e = errno;
    close(fd);
    if (got != n) {
        free(buf);
        return dls_fail(DLSCHED_EIO, "reading '%s' failed: %s", path, strerror(e));
    }
    int rc = dlsched_load_buffer(buf, n, overrides, out);
    free(buf);
    return rc;
}
