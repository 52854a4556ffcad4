/* check_checkpoint.c - checkpoints (dlsched_save, dlsched_load and their
 * buffer forms) through the public API only:
 *   a. exact continuation: save after 2,000 steps, load, run 2,000 more and
 *      compare bit for bit with an agent that ran 4,000 straight;
 *   b. pending tickets are not saved (the loaded agent counts them expired);
 *   c. overrides: run-time keys change and take effect, shape keys must
 *      equal the stored values (DLSCHED_EMISMATCH naming the key);
 *   d. format versions (a newer one is refused, saying so);
 *   e. committed v1 fixtures keep loading to the recorded values;
 *   f. atomic save: a saver killed with SIGKILL at a random moment leaves a
 *      checkpoint that loads, old or new, never a mix;
 *   g. hostile input: truncation, bit flips, random bytes, crafted values
 *      behind a valid CRC, NULL arguments, file-system errors;
 *   h. memory_bytes follows the documented sizes.
 * Every run is deterministic: fixed library seeds, learner=inline,
 * cpu_threads=1, and the test's own generator (tst_next() of tests.h).
 *
 * Environment: DLSCHED_TOP (source tree, for tests/fixtures; default "."),
 * DLSCHED_WRITE_FIXTURES=1 regenerates the fixtures (never in normal runs:
 * the committed files pin the format and must not change). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "tests.h"


#define CK_MAXF 8 /* most features of a test agent */
#define CK_MAXA 8 /* most actions */
#define CK_HEADER 24u

/* ---- byte helpers -------------------------------------------------------------- */

static uint32_t ck_rd32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t ck_rd64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void ck_wr32(unsigned char *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static void ck_wr64(unsigned char *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

/* zlib CRC-32 of every byte but the last 4, stored little-endian in them;
   the header's body length is set to match len */
static void ck_fix(unsigned char *b, size_t len)
{
    ck_assert_uint_ge(len, CK_HEADER + 4);
    ck_wr64(b + 16, (uint64_t)(len - CK_HEADER - 4));
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, b, (uInt)(len - 4));
    ck_wr32(b + len - 4, (uint32_t)c);
}

/* only the CRC (the body length left as it is) */
static void ck_fix_crc(unsigned char *b, size_t len)
{
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, b, (uInt)(len - 4));
    ck_wr32(b + len - 4, (uint32_t)c);
}

/* where the payloads of the sections lie, by index: 0 configuration,
   1 agent, 2 model, 3 guard (CK_SEC_GUARD; format version 2, only when the
   saved agent had guard=1). In the file they come in the order 1, 2, 4, 3
   by tag; has[3] says whether the guard's is there. */
#define CK_SEC_GUARD 3
typedef struct ck_secs {
    size_t off[4], len[4];
    int has[4];
} ck_secs;

static ck_secs ck_sections(const unsigned char *b, size_t len)
{
    static const uint32_t order[4] = {1, 2, 4, 3};
    ck_secs s;
    memset(&s, 0, sizeof s);
    size_t p = CK_HEADER;
    for (int i = 0; i < 4; i++) {
        ck_assert_uint_le(p + 16, len - 4);
        uint32_t tag = ck_rd32(b + p);
        if (tag != order[i] && order[i] == 4)
            continue; /* the guard's section is optional */
        ck_assert_uint_eq(tag, order[i]);
        ck_assert_uint_eq(ck_rd32(b + p + 4), 0);
        uint64_t l = ck_rd64(b + p + 8);
        int k = (int)tag - 1;
        s.has[k] = 1;
        s.off[k] = p + 16;
        s.len[k] = (size_t)l;
        p = s.off[k] + (size_t)l;
    }
    ck_assert_uint_eq(p, len - 4);
    return s;
}

/* a copy of b with section k's payload replaced by data (valid CRC); the
   guard's section, when there, stays in its place */
static unsigned char *ck_replace_section(const unsigned char *b, size_t len, int k,
                                         const void *data, size_t dlen, size_t *out_len)
{
    static const int order[4] = {0, 1, CK_SEC_GUARD, 2};
    ck_secs s = ck_sections(b, len);
    ck_assert(s.has[k]);
    size_t n = len - s.len[k] + dlen;
    unsigned char *o = malloc(n);
    ck_assert_ptr_nonnull(o);
    memcpy(o, b, CK_HEADER);
    size_t p = CK_HEADER;
    for (int j = 0; j < 4; j++) {
        int i = order[j];
        if (!s.has[i])
            continue;
        const void *src = i == k ? data : b + s.off[i];
        size_t l = i == k ? dlen : s.len[i];
        ck_wr32(o + p, (uint32_t)(i + 1));
        ck_wr32(o + p + 4, 0);
        ck_wr64(o + p + 8, (uint64_t)l);
        if (l)
            memcpy(o + p + 16, src, l);
        p += 16 + l;
    }
    ck_assert_uint_eq(p + 4, n);
    ck_fix(o, n);
    *out_len = n;
    return o;
}

static unsigned char *ck_dup(const void *b, size_t len)
{
    unsigned char *o = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(o);
    if (len)
        memcpy(o, b, len);
    return o;
}

/* ---- files ---------------------------------------------------------------------- */

static void ck_mkdtemp(char *dir, size_t n)
{
    const char *t = getenv("TMPDIR");
    snprintf(dir, n, "%s/dlsched-ckpt-XXXXXX", t && *t ? t : "/tmp");
    ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp %s: %s", dir, strerror(errno));
}

/* remove the files of a flat directory, then the directory */
static void ck_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[PATH_MAX];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static unsigned char *ck_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s: %s", path, strerror(errno));
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    ck_assert_int_ge(n, 0);
    ck_assert_int_eq(fseek(f, 0, SEEK_SET), 0);
    unsigned char *b = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* ---- agents, configs, buffers --------------------------------------------------- */

static dlsched_config *ck_cfg(const char *spec)
{
    dlsched_config *cfg = NULL;
    ck_assert_int_eq(dlsched_config_new(&cfg), DLSCHED_OK);
    int rc = dlsched_config_parse(cfg, spec);
    ck_assert_msg(rc == DLSCHED_OK, "parse '%s': %s", spec, dlsched_last_error());
    return cfg;
}

/* a checkpoint in memory (free with dlsched_buffer_free) */
static unsigned char *ck_save_buf(dlsched_agent *ag, size_t *len)
{
    void *b = NULL;
    int rc = dlsched_save_buffer(ag, &b, len);
    ck_assert_msg(rc == DLSCHED_OK, "save_buffer: %s", dlsched_last_error());
    ck_assert_ptr_nonnull(b);
    return b;
}

/* status of loading a buffer with overrides (NULL: none); the agent, if
   any, goes to *out (or is freed when out is NULL). On failure the output
   pointer must be left as it was. */
static int ck_load_rc(const void *b, size_t len, const char *ov, dlsched_agent **out)
{
    dlsched_config *cfg = ov ? ck_cfg(ov) : NULL;
    static int sentinel;
    dlsched_agent *ag = (dlsched_agent *)(void *)&sentinel;
    int rc = dlsched_load_buffer(b, len, cfg, &ag);
    dlsched_config_free(cfg);
    if (rc != DLSCHED_OK) {
        ck_assert_msg(ag == (dlsched_agent *)(void *)&sentinel,
                      "a failed load (%d) wrote its output", rc);
        return rc;
    }
    ck_assert_ptr_nonnull(ag);
    if (out)
        *out = ag;
    else
        dlsched_agent_free(ag);
    return rc;
}

static dlsched_agent *ck_load(const void *b, size_t len, const char *ov)
{
    dlsched_agent *ag = NULL;
    int rc = ck_load_rc(b, len, ov, &ag);
    ck_assert_msg(rc == DLSCHED_OK, "load_buffer (overrides '%s'): %d %s", ov ? ov : "",
                  rc, dlsched_last_error());
    return ag;
}

/* the load fails with DLSCHED_EFORMAT and a message holding needle (if any) */
static void ck_expect_eformat(const void *b, size_t len, const char *needle, const char *what)
{
    int rc = ck_load_rc(b, len, NULL, NULL);
    ck_assert_msg(rc == DLSCHED_EFORMAT, "%s: load gave %d (%s), want DLSCHED_EFORMAT", what,
                  rc, rc ? dlsched_last_error() : "accepted");
    ck_assert_msg(dlsched_last_error()[0] != '\0', "%s: no message", what);
    if (needle)
        ck_assert_msg(strstr(dlsched_last_error(), needle) != NULL,
                      "%s: message '%s' lacks '%s'", what, dlsched_last_error(), needle);
}

/* ---- comparisons ----------------------------------------------------------------- */

/* every counter and gauge of dlsched_stats_t, bit for bit */
static void ck_same_stats(dlsched_agent *a, dlsched_agent *b, const char *what)
{
    dlsched_stats_t x = tst_stats(a), y = tst_stats(b);
#define CK_SAME_U(f)                                                                      \
    ck_assert_msg(x.f == y.f, "%s: stats." #f " %llu != %llu", what,                      \
                  (unsigned long long)x.f, (unsigned long long)y.f)
#define CK_SAME_D(f)                                                                      \
    ck_assert_msg(memcmp(&x.f, &y.f, sizeof x.f) == 0, "%s: stats." #f " %a != %a", what, \
                  x.f, y.f)
    CK_SAME_U(size);
    CK_SAME_U(backend);
    CK_SAME_U(decisions);
    CK_SAME_U(explored);
    CK_SAME_U(hinted);
    CK_SAME_U(tickets_issued);
    CK_SAME_U(observed);
    CK_SAME_U(tickets_pending);
    CK_SAME_U(tickets_expired);
    CK_SAME_U(transitions);
    CK_SAME_U(transitions_stored);
    CK_SAME_U(train_steps);
    CK_SAME_U(model_version);
    CK_SAME_U(memory_bytes);
    CK_SAME_U(tickets_timed_out);
    CK_SAME_U(apprentice_left);
    CK_SAME_U(staged);
    CK_SAME_U(published_version);
    CK_SAME_D(epsilon);
    CK_SAME_D(last_loss);
    CK_SAME_D(mean_reward);
    CK_SAME_D(apprentice_agreement);
    CK_SAME_U(guard_state);
    CK_SAME_U(guard_epoch);
    CK_SAME_U(guard_switches);
    CK_SAME_U(guard_fallbacks);
    CK_SAME_U(guard_decisions);
    CK_SAME_U(guard_agreed);
    CK_SAME_U(guard_unsupported);
    CK_SAME_U(guard_by_learned);
    CK_SAME_U(guard_by_incumbent);
    CK_SAME_U(guard_samples_learned);
    CK_SAME_U(guard_samples_incumbent);
    CK_SAME_D(guard_value_learned);
    CK_SAME_D(guard_value_incumbent);
    CK_SAME_D(guard_advantage);
    CK_SAME_D(guard_advantage_low);
    CK_SAME_D(guard_advantage_high);
    CK_SAME_D(guard_led_incumbent);
    CK_SAME_D(guard_led_learned);
    CK_SAME_U(guard_regime_fallbacks);
#undef CK_SAME_U
#undef CK_SAME_D
}

#define CK_PROBES 400

/* Q-values of both agents over CK_PROBES fixed states (in and a little
   beyond [0, 1) per feature, so every qtable bin and both clamps are hit)
   must be bitwise equal and finite */
static void ck_same_q(dlsched_agent *a, dlsched_agent *b, uint32_t nf, uint32_t na,
                      const char *what)
{
    uint64_t g = 0xC0FFEE;
    for (int i = 0; i < CK_PROBES; i++) {
        float x[CK_MAXF], qa[CK_MAXA], qb[CK_MAXA];
        for (uint32_t j = 0; j < nf; j++)
            x[j] = (float)(1.5 * tst_unif(&g) - 0.25);
        dlsched_state_t st = tst_state(x, nf);
        ck_assert_int_eq(dlsched_q_values(a, &st, qa, na), DLSCHED_OK);
        ck_assert_int_eq(dlsched_q_values(b, &st, qb, na), DLSCHED_OK);
        for (uint32_t k = 0; k < na; k++)
            ck_assert_msg(isfinite(qa[k]), "%s: probe %d: Q not finite", what, i);
        ck_assert_msg(memcmp(qa, qb, na * sizeof(float)) == 0,
                      "%s: probe %d: Q differs (action 0: %a vs %a)", what, i, qa[0], qb[0]);
    }
}

/* the same decision, but for the ticket: ticket numbers are handles, and a
   loaded agent numbers its tickets afresh */
static void ck_same_decision(const dlsched_decision_t *x, const dlsched_decision_t *y,
                             int step, int who)
{
    ck_assert_msg(x->action == y->action && x->flags == y->flags &&
                      x->model_version == y->model_version &&
                      memcmp(&x->value, &y->value, sizeof x->value) == 0 &&
                      memcmp(&x->probability, &y->probability, sizeof x->probability) == 0,
                  "step %d: agent %d decided (a %d, flags %u, v %a, p %a, version %llu), agent "
                  "0 (a %d, flags %u, v %a, p %a, version %llu)",
                  step, who, y->action, y->flags, y->value, y->probability,
                  (unsigned long long)y->model_version, x->action, x->flags, x->value,
                  x->probability, (unsigned long long)x->model_version);
}

/* ---- a deterministic environment ------------------------------------------------ */

/* The input sequence comes from the test's generator only; the reward
   depends on the state and the action taken, so agents fed in lockstep see
   the same inputs exactly as long as they decide the same. */
typedef struct ck_env {
    uint64_t rng;
    uint32_t nf, na;
    float x[CK_MAXF];
    int have_x;
    uint64_t step;
    uint32_t train_every; /* 0: never call dlsched_train */
    uint32_t train_steps;
    int32_t hint; /* the host's hint on every decision (-1: none) */
} ck_env;

static ck_env ck_env_new(uint64_t seed, uint32_t nf, uint32_t na, uint32_t train_every,
                         uint32_t train_steps)
{
    ck_env e;
    memset(&e, 0, sizeof e);
    e.rng = seed;
    e.nf = nf;
    e.na = na;
    e.train_every = train_every;
    e.train_steps = train_steps;
    e.hint = -1;
    return e;
}

static void ck_features(ck_env *e, float *x)
{
    for (uint32_t j = 0; j < e->nf; j++)
        x[j] = (float)tst_unif(&e->rng);
}

/* n steps of act + observe into every agent of ags (ags[0] leads), with a
   logged transition every third step and dlsched_train every train_every
   steps; the decisions must agree at every step */
static void ck_drive(dlsched_agent **ags, int n_ags, ck_env *e, int steps)
{
    uint32_t nf = e->nf, na = e->na;
    for (int i = 0; i < steps; i++, e->step++) {
        if (!e->have_x) {
            ck_features(e, e->x);
            e->have_x = 1;
        }
        dlsched_state_t st = tst_state(e->x, nf);
        st.hint = e->hint;
        dlsched_decision_t d[4];
        ck_assert_int_le(n_ags, 4);
        for (int k = 0; k < n_ags; k++) {
            int rc = dlsched_act(ags[k], &st, 0, &d[k]);
            ck_assert_msg(rc == DLSCHED_OK, "act: %s", dlsched_last_error());
            ck_assert_uint_ne(d[k].ticket, 0);
            if (k)
                ck_same_decision(&d[0], &d[k], (int)e->step, k);
        }
        int a = d[0].action;
        float rw = e->x[(uint32_t)a % nf] - 0.5f * e->x[(uint32_t)(a + 1) % nf] +
                   (float)(tst_unif(&e->rng) - 0.5);
        float x2[CK_MAXF];
        ck_features(e, x2);
        uint8_t m2[CK_MAXA];
        for (uint32_t k = 0; k < na; k++)
            m2[k] = tst_below(&e->rng, 3) != 0;
        m2[tst_below(&e->rng, na)] = 1;
        dlsched_state_t nx = tst_state(x2, nf);
        if (tst_below(&e->rng, 2)) {
            nx.n_mask = na;
            nx.mask = m2;
        }
        uint32_t end = tst_below(&e->rng, 10);
        uint32_t fl = end == 0 ? DLSCHED_OBS_TERMINAL : end == 1 ? DLSCHED_OBS_TRUNCATED : 0;
        const dlsched_state_t *np = fl == DLSCHED_OBS_TERMINAL ? NULL : &nx;
        for (int k = 0; k < n_ags; k++) {
            int rc = dlsched_observe(ags[k], d[k].ticket, rw, np, fl);
            ck_assert_msg(rc == DLSCHED_OK, "observe: %s", dlsched_last_error());
        }
        if (fl == DLSCHED_OBS_TERMINAL)
            e->have_x = 0;
        else
            memcpy(e->x, x2, sizeof x2);

        if (e->step % 3 == 2) { /* a logged transition of the host's heuristic */
            float ls[CK_MAXF], ln[CK_MAXF];
            ck_features(e, ls);
            ck_features(e, ln);
            int32_t la = (int32_t)tst_below(&e->rng, na);
            float lr = (float)(2.0 * tst_unif(&e->rng) - 1.0);
            uint32_t lf = tst_below(&e->rng, 4) == 0 ? DLSCHED_OBS_TERMINAL : 0;
            dlsched_state_t s1 = tst_state(ls, nf), s2 = tst_state(ln, nf);
            for (int k = 0; k < n_ags; k++) {
                int rc = dlsched_observe_transition(ags[k], &s1, la, lr,
                                                    lf ? NULL : &s2, lf);
                ck_assert_msg(rc == DLSCHED_OK, "observe_transition: %s", dlsched_last_error());
            }
        }
        if (e->train_every && e->step % e->train_every == e->train_every - 1)
            for (int k = 0; k < n_ags; k++)
                ck_assert_int_eq(dlsched_train(ags[k], e->train_steps), DLSCHED_OK);
    }
}

/* ---- a. exact continuation ------------------------------------------------------ */

#define CK_QT "algo=qtable learner=inline n_features=2 n_actions=3 bins=6 seed=11 " \
              "epsilon_decay_steps=3000 gamma=0.9 "
#define CK_DQN                                                                           \
    "algo=dqn device=cpu cpu_threads=1 learner=inline n_features=4 n_actions=3 "         \
    "hidden=16,16 batch=16 learning_starts=200 train_every=4 target_update=100 "         \
    "replay=1000 seed=5 epsilon_decay_steps=3000 "
#define CK_HALF 2000

/* Agents a (4,000 steps straight) and b (2,000, saved, loaded twice: from a
   file and from a buffer, 2,000 more) see the same inputs; after the load
   and at the end every Q-value, every statistic and every later decision
   agree bit for bit, and so do checkpoints of the three at the end. */
static void ck_continuation_at(const char *spec, uint32_t nf, uint32_t na, uint32_t train_every,
                               uint32_t train_steps, int32_t hint, int first)
{
    dlsched_agent *a = tst_agent(spec), *b = tst_agent(spec);
    ck_env e = ck_env_new(0x1234 + strlen(spec), nf, na, train_every, train_steps);
    e.hint = hint;
    dlsched_agent *both[2] = {a, b};
    ck_drive(both, 2, &e, first);
    ck_assert_uint_eq(tst_stats(a).tickets_pending, 0);
    if (hint >= 0) {
        /* saved mid-run after the guard's switch, with an epoch under way */
        dlsched_stats_t g = tst_stats(a);
        ck_assert_msg(g.guard_switches >= 1 && g.guard_state == DLSCHED_GUARD_LEARNED,
                      "no switch before the save: state %u, %llu disagreements (learned "
                      "%llu, incumbent %llu), advantage %g [%g, %g]",
                      g.guard_state, (unsigned long long)(g.guard_by_learned +
                                                           g.guard_by_incumbent),
                      (unsigned long long)g.guard_by_learned,
                      (unsigned long long)g.guard_by_incumbent, g.guard_advantage,
                      g.guard_advantage_low, g.guard_advantage_high);
        ck_assert_uint_gt(g.guard_samples_learned + g.guard_samples_incumbent, 0);
    }

    char dir[PATH_MAX], path[PATH_MAX + 32];
    ck_mkdtemp(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/agent.ckpt", dir);
    int rc = dlsched_save(b, path);
    ck_assert_msg(rc == DLSCHED_OK, "save: %s", dlsched_last_error());
    size_t blen, flen;
    unsigned char *buf = ck_save_buf(b, &blen);
    unsigned char *file = ck_read_file(path, &flen);
    ck_assert_msg(flen == blen && memcmp(file, buf, blen) == 0,
                  "dlsched_save wrote other bytes than dlsched_save_buffer gives");
    free(file);

    dlsched_agent *b1 = NULL;
    rc = dlsched_load(path, NULL, &b1);
    ck_assert_msg(rc == DLSCHED_OK, "load: %s", dlsched_last_error());
    dlsched_agent *b2 = ck_load(buf, blen, NULL);
    dlsched_buffer_free(buf);
    dlsched_agent_free(b);
    ck_rmtree(dir);

    ck_same_q(a, b1, nf, na, "after load (file)");
    ck_same_q(a, b2, nf, na, "after load (buffer)");
    ck_same_stats(a, b1, "after load (file)");
    ck_same_stats(a, b2, "after load (buffer)");

    dlsched_agent *three[3] = {a, b1, b2};
    ck_drive(three, 3, &e, CK_HALF);
    ck_same_q(a, b1, nf, na, "continued (file)");
    ck_same_q(a, b2, nf, na, "continued (buffer)");
    ck_same_stats(a, b1, "continued (file)");
    ck_same_stats(a, b2, "continued (buffer)");
    dlsched_stats_t st = tst_stats(a);
    ck_assert_uint_eq(st.decisions, (uint64_t)first + CK_HALF);
    ck_assert_uint_gt(st.train_steps, 0);
    if (hint >= 0)
        ck_assert_uint_gt(st.guard_by_learned, 0);

    /* the whole learned state (weights, optimiser, replay, RNG) agrees */
    size_t la, l1, l2;
    unsigned char *ba = ck_save_buf(a, &la), *b1b = ck_save_buf(b1, &l1),
                  *b2b = ck_save_buf(b2, &l2);
    ck_assert_msg(la == l1 && memcmp(ba, b1b, la) == 0, "final checkpoints differ (file)");
    ck_assert_msg(la == l2 && memcmp(ba, b2b, la) == 0, "final checkpoints differ (buffer)");
    dlsched_buffer_free(ba);
    dlsched_buffer_free(b1b);
    dlsched_buffer_free(b2b);
    dlsched_agent_free(a);
    dlsched_agent_free(b1);
    dlsched_agent_free(b2);
}

static void ck_continuation_hinted(const char *spec, uint32_t nf, uint32_t na,
                                   uint32_t train_every, uint32_t train_steps, int32_t hint)
{
    ck_continuation_at(spec, nf, na, train_every, train_steps, hint, CK_HALF);
}

static void ck_continuation(const char *spec, uint32_t nf, uint32_t na, uint32_t train_every,
                            uint32_t train_steps)
{
    ck_continuation_hinted(spec, nf, na, train_every, train_steps, -1);
}

START_TEST(test_continue_qtable)
{
    /* replay=0 (the qtable default): the table is the whole learned state */
    ck_continuation(CK_QT, 2, 3, 0, 0);
}
END_TEST

START_TEST(test_continue_qtable_replay)
{
    /* replay ring of 500 wraps several times; dlsched_train samples it */
    ck_continuation(CK_QT "replay=500 save_replay=1", 2, 3, 50, 20);
}
END_TEST

START_TEST(test_continue_dqn)
{
    ck_continuation(CK_DQN "save_replay=1", 4, 3, 100, 3);
}
END_TEST

START_TEST(test_continue_dqn_dueling_per_normalize_nstep)
{
    /* n-step queue, sum-tree priorities, normaliser statistics, dueling head */
    ck_continuation(CK_DQN "save_replay=1 dueling=1 per=1 normalize=1 nstep=3", 4, 3, 100, 3);
}
END_TEST

/* The guard on, with a hint on every decision (action 0, which the learned
   policy beats: the reward favours action a where x[a] is large); the
   guard measures quickly (guard_share 0.3, tests from 20 outcomes per arm,
   3 visits) so that it has switched before the save and runs a new epoch
   across it: the experiment's sums, counts, tests and visit counts
   continue exactly. */
#define CK_GUARD "guard_share=0.3 guard_min_samples=20 guard_min_visits=3 "

START_TEST(test_continue_qtable_guard)
{
    ck_continuation_hinted(CK_QT CK_GUARD, 2, 3, 0, 0, 0);
}
END_TEST

START_TEST(test_continue_dqn_guard)
{
    ck_continuation_hinted(CK_DQN CK_GUARD "save_replay=1", 4, 3, 100, 3, 0);
}
END_TEST

/* Switchback (guard_block 6: blocks of 6 decisions by their arm and a
   tail of DLS_GUARD_TAIL (1) x 6 by the policy in charge, 12 decisions; a
   pair is 24; every hinted decision steps the blocks; guard_share 0.3: every
   pair is an experiment). The guard switches at decision 1921 (the test
   at 80 pairs = 1920 decisions; the new epoch starts with pair 80), and
   the save comes after 1935 decisions: in block 161 (the second of pair
   80, whose first block is closed and resolved) at position 3, past the
   burn-in of 1 and inside the arm's 6 decisions. The open pair continues
   exactly across the load. */
#define CK_GUARD_BLOCK CK_GUARD "guard_block=6 "
#define CK_MID_BLOCK 1959

START_TEST(test_continue_qtable_guard_block)
{
    ck_assert_int_eq(CK_MID_BLOCK / 12, 163);
    ck_assert_int_eq(CK_MID_BLOCK % 12, 3);
    ck_continuation_at(CK_QT CK_GUARD_BLOCK, 2, 3, 0, 0, 0, CK_MID_BLOCK);
}
END_TEST

/* save_replay=0: the checkpoint holds weights, target, Adam moments,
   normaliser, counters and RNG, but not the replay buffer. What holds: right
   after load the agent is the saved one but for an empty buffer (bitwise
   equal Q-values and counters, transitions_stored 0), and it refills the
   buffer from there. Exact continuation is NOT promised: later training
   samples a different buffer. It is promised only with save_replay=1 (or
   for qtable without replay). */
START_TEST(test_dqn_without_replay)
{
    dlsched_agent *a = tst_agent(CK_DQN "save_replay=0");
    ck_env e = ck_env_new(77, 4, 3, 100, 3);
    ck_drive(&a, 1, &e, CK_HALF);
    dlsched_stats_t sa = tst_stats(a);
    ck_assert_uint_gt(sa.transitions_stored, 0);
    ck_assert_uint_gt(sa.train_steps, 0);

    size_t len;
    unsigned char *buf = ck_save_buf(a, &len);
    ck_assert_uint_eq(ck_rd32(buf + 12) & 1u, 0); /* flags: no replay included */
    dlsched_agent *b = ck_load(buf, len, NULL);
    dlsched_buffer_free(buf);
    ck_same_q(a, b, 4, 3, "save_replay=0, after load");
    dlsched_stats_t sb = tst_stats(b);
    ck_assert_uint_eq(sb.transitions_stored, 0);
    /* every other counter is the saved one */
    ck_assert_uint_eq(sb.decisions, sa.decisions);
    ck_assert_uint_eq(sb.train_steps, sa.train_steps);
    ck_assert_uint_eq(sb.model_version, sa.model_version);
    ck_assert_uint_eq(sb.tickets_issued, sa.tickets_issued);
    ck_assert_uint_eq(sb.observed, sa.observed);
    ck_assert_uint_eq(sb.transitions, sa.transitions);
    ck_assert_uint_eq(sb.memory_bytes, sa.memory_bytes);
    ck_assert(memcmp(&sb.mean_reward, &sa.mean_reward, sizeof sa.mean_reward) == 0);
    ck_assert(memcmp(&sb.epsilon, &sa.epsilon, sizeof sa.epsilon) == 0);

    /* it refills its buffer: one stored transition per observe (nstep=1) */
    ck_env e2 = ck_env_new(78, 4, 3, 0, 0);
    ck_drive(&b, 1, &e2, 10);
    ck_assert_uint_ge(tst_stats(b).transitions_stored, 10);
    dlsched_agent_free(a);
    dlsched_agent_free(b);
}
END_TEST

/* ---- b. pending tickets ------------------------------------------------------------ */

#define CK_TK_SPEC "algo=qtable n_features=2 n_actions=3 bins=4 seed=3 "

/* an agent with 5 tickets issued, 2 observed, 3 pending */
static dlsched_agent *ck_pending_agent(uint64_t tickets[5])
{
    dlsched_agent *ag = tst_agent(CK_TK_SPEC);
    float x[2] = {0.3f, 0.6f};
    dlsched_state_t st = tst_state(x, 2);
    for (int i = 0; i < 5; i++) {
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &st, 0, &d), DLSCHED_OK);
        tickets[i] = d.ticket;
    }
    ck_assert_int_eq(dlsched_observe(ag, tickets[1], 1.0f, &st, 0), DLSCHED_OK);
    ck_assert_int_eq(dlsched_observe(ag, tickets[3], 0.5f, NULL, DLSCHED_OBS_TERMINAL),
                     DLSCHED_OK);
    dlsched_stats_t s = tst_stats(ag);
    ck_assert_uint_eq(s.tickets_issued, 5);
    ck_assert_uint_eq(s.tickets_pending, 3);
    ck_assert_uint_eq(s.tickets_expired, 0);
    return ag;
}

START_TEST(test_pending_tickets_not_saved)
{
    uint64_t t[5];
    dlsched_agent *ag = ck_pending_agent(t);
    size_t len;
    unsigned char *buf = ck_save_buf(ag, &len);
    dlsched_agent *ld = ck_load(buf, len, NULL);
    dlsched_stats_t s = tst_stats(ld);
    ck_assert_uint_eq(s.tickets_pending, 0);
    ck_assert_uint_eq(s.tickets_expired, 3);
    ck_assert_uint_eq(s.tickets_issued, 5);
    ck_assert_uint_eq(s.observed, 2);
    ck_assert_uint_eq(s.tickets_issued, s.observed + s.tickets_expired);
    /* the old tickets, pending or not, are unknown to the loaded agent */
    float x[2] = {0.3f, 0.6f};
    dlsched_state_t st = tst_state(x, 2);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(dlsched_observe(ld, t[i], 1.0f, &st, 0), DLSCHED_ETICKET);
    s = tst_stats(ld);
    ck_assert_uint_eq(s.observed, 2);
    ck_assert_uint_eq(s.tickets_expired, 3);
    /* the saved agent is untouched by saving: its tickets are still pending */
    ck_assert_uint_eq(tst_stats(ag).tickets_pending, 3);
    ck_assert_int_eq(dlsched_observe(ag, t[0], 1.0f, &st, 0), DLSCHED_OK);
    /* and a second checkpoint counts only what is pending now */
    dlsched_buffer_free(buf);
    buf = ck_save_buf(ag, &len);
    dlsched_agent *ld2 = ck_load(buf, len, NULL);
    s = tst_stats(ld2);
    ck_assert_uint_eq(s.observed, 3);
    ck_assert_uint_eq(s.tickets_expired, 2);
    ck_assert_uint_eq(s.tickets_pending, 0);
    dlsched_buffer_free(buf);
    dlsched_agent_free(ag);
    dlsched_agent_free(ld);
    dlsched_agent_free(ld2);
}
END_TEST

/* The old tickets stay unknown after the loaded agent issues its own: a
   ticket of the saved agent must never be taken for a decision of the
   loaded one (that would learn one decision's outcome for another). */
START_TEST(test_old_tickets_after_new_acts)
{
    uint64_t t[5];
    dlsched_agent *ag = ck_pending_agent(t);
    size_t len;
    unsigned char *buf = ck_save_buf(ag, &len);
    dlsched_agent *ld = ck_load(buf, len, NULL);
    dlsched_buffer_free(buf);
    float x[2] = {0.3f, 0.6f};
    dlsched_state_t st = tst_state(x, 2);
    uint64_t fresh[8];
    for (int i = 0; i < 8; i++) {
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ld, &st, 0, &d), DLSCHED_OK);
        fresh[i] = d.ticket;
    }
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 8; j++)
            ck_assert_msg(t[i] != fresh[j],
                          "the loaded agent issued ticket %llu, which the saved agent had "
                          "issued too (tickets are numbered afresh after a load)",
                          (unsigned long long)fresh[j]);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(dlsched_observe(ld, t[i], 1.0f, &st, 0), DLSCHED_ETICKET);
    dlsched_agent_free(ag);
    dlsched_agent_free(ld);
}
END_TEST

/* ---- c. overrides ------------------------------------------------------------------- */

#define CK_OV_QT "algo=qtable n_features=2 n_actions=3 bins=3,4 seed=9 "
#define CK_OV_DQN                                                                          \
    "algo=dqn device=cpu cpu_threads=1 n_features=4 n_actions=3 hidden=16,8 batch=8 "      \
    "learning_starts=50 replay=300 save_replay=1 seed=4 "
#define CK_OV_DQNX CK_OV_DQN "dueling=1 normalize=1 nstep=3 per=1"

/* a checkpoint (a malloc'd copy) of an agent of spec after some steps */
static unsigned char *ck_trained_buf(const char *spec, uint32_t nf, uint32_t na, int steps,
                                     size_t *len)
{
    dlsched_agent *ag = tst_agent(spec);
    ck_env e = ck_env_new(99, nf, na, 0, 0);
    ck_drive(&ag, 1, &e, steps);
    unsigned char *lib = ck_save_buf(ag, len);
    unsigned char *b = ck_dup(lib, *len); /* the test's own copy: free() it */
    dlsched_buffer_free(lib);
    dlsched_agent_free(ag);
    return b;
}

START_TEST(test_override_shape_keys)
{
    size_t lq, ld, lx;
    unsigned char *bq = ck_trained_buf(CK_OV_QT, 2, 3, 200, &lq);
    unsigned char *bd = ck_trained_buf(CK_OV_DQN, 4, 3, 200, &ld);
    unsigned char *bx = ck_trained_buf(CK_OV_DQNX, 4, 3, 200, &lx);
    static const struct {
        int which; /* 0 qtable, 1 dqn, 2 dqn with the variants */
        const char *key, *value;
    } bad[] = {
        {0, "n_features", "3"},     {0, "n_actions", "4"},     {0, "algo", "dqn"},
        {0, "bins", "3"},           {0, "bins", "4,3"},        {0, "feature_low", "-1"},
        {0, "feature_high", "2"},   {0, "replay", "10"},       {1, "n_features", "5"},
        {1, "n_actions", "2"},      {1, "algo", "qtable"},     {1, "hidden", "16,16"},
        {1, "hidden", "16"},        {1, "dueling", "1"},       {1, "normalize", "1"},
        {1, "replay", "301"},       {1, "nstep", "2"},         {1, "per", "1"},
        {2, "dueling", "0"},        {2, "normalize", "0"},     {2, "nstep", "1"},
        {2, "per", "0"},            {2, "replay", "100000"},   {2, "hidden", "8,16"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const unsigned char *b = bad[i].which == 0 ? bq : bad[i].which == 1 ? bd : bx;
        size_t l = bad[i].which == 0 ? lq : bad[i].which == 1 ? ld : lx;
        char spec[128], quoted[80];
        snprintf(spec, sizeof spec, "%s=%s", bad[i].key, bad[i].value);
        snprintf(quoted, sizeof quoted, "'%s'", bad[i].key);
        int rc = ck_load_rc(b, l, spec, NULL);
        ck_assert_msg(rc == DLSCHED_EMISMATCH, "override %s on checkpoint %d gave %d (%s)",
                      spec, bad[i].which, rc, dlsched_last_error());
        ck_assert_msg(strstr(dlsched_last_error(), quoted) != NULL,
                      "override %s: message '%s' does not name the key", spec,
                      dlsched_last_error());
    }

    /* every shape key given its stored value is accepted, also where the
       value is the stored configuration's default (replay, feature_low,
       feature_high for qtable; dueling ... for dqn) */
    dlsched_agent *o = ck_load(bq, lq, NULL), *p;
    p = ck_load(bq, lq, "n_features=2 n_actions=3 algo=qtable bins=3,4 feature_low=0 "
                        "feature_high=1 replay=0");
    ck_same_q(o, p, 2, 3, "qtable, equal shape overrides");
    dlsched_agent_free(o);
    dlsched_agent_free(p);
    o = ck_load(bd, ld, NULL);
    p = ck_load(bd, ld, "n_features=4 n_actions=3 algo=dqn hidden=16,8 dueling=0 normalize=0 "
                        "replay=300 nstep=1 per=0");
    ck_same_q(o, p, 4, 3, "dqn, equal shape overrides");
    dlsched_agent_free(o);
    dlsched_agent_free(p);
    o = ck_load(bx, lx, NULL);
    p = ck_load(bx, lx, "hidden=16,8 dueling=1 normalize=1 replay=300 nstep=3 per=1");
    ck_same_q(o, p, 4, 3, "dqn variants, equal shape overrides");
    dlsched_agent_free(o);
    dlsched_agent_free(p);
    free(bq);
    free(bd);
    free(bx);
}
END_TEST

/* explored decisions among n ticketed ones in a fixed state */
static uint64_t ck_explored(dlsched_agent *ag, uint32_t nf, int n, int32_t hint,
                            uint32_t *flags_or)
{
    float x[CK_MAXF] = {0.2f, 0.7f, 0.4f, 0.9f};
    dlsched_state_t st = tst_state(x, nf);
    st.hint = hint;
    uint64_t before = tst_stats(ag).explored;
    *flags_or = 0;
    for (int i = 0; i < n; i++) {
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &st, 0, &d), DLSCHED_OK);
        *flags_or |= d.flags;
        if (hint >= 0 && (d.flags & DLSCHED_DECISION_HINT))
            ck_assert_int_eq(d.action, hint);
        ck_assert_int_eq(dlsched_observe(ag, d.ticket, 0.0f, NULL, DLSCHED_OBS_TERMINAL),
                         DLSCHED_OK);
    }
    return tst_stats(ag).explored - before;
}

START_TEST(test_override_runtime_keys)
{
    size_t lq, ld;
    unsigned char *bq = ck_trained_buf(CK_OV_QT, 2, 3, 200, &lq);
    unsigned char *bd = ck_trained_buf(CK_OV_DQN, 4, 3, 200, &ld);
    uint32_t fl;

    /* the stored epsilon (decaying from 1 over 10000 tickets) is large */
    dlsched_agent *ag = ck_load(bq, lq, NULL);
    ck_assert_double_gt(tst_stats(ag).epsilon, 0.9);
    dlsched_agent_free(ag);

    /* epsilon_*: none explored at 0, all at 1; stats.epsilon follows */
    ag = ck_load(bq, lq, "epsilon_start=0 epsilon_end=0");
    ck_assert_double_eq(tst_stats(ag).epsilon, 0.0);
    ck_assert_uint_eq(ck_explored(ag, 2, 100, -1, &fl), 0);
    dlsched_agent_free(ag);
    ag = ck_load(bd, ld, "epsilon_start=1 epsilon_end=1");
    ck_assert_double_eq(tst_stats(ag).epsilon, 1.0);
    ck_assert_uint_eq(ck_explored(ag, 4, 100, -1, &fl), 100);
    dlsched_agent_free(ag);
    ag = ck_load(bq, lq, "epsilon_start=0.25 epsilon_end=0.25");
    ck_assert_double_eq(tst_stats(ag).epsilon, 0.25);
    dlsched_agent_free(ag);

    /* explore=hint at epsilon 1: every decision is the hint */
    ag = ck_load(bq, lq, "explore=hint epsilon_start=1 epsilon_end=1");
    ck_assert_uint_eq(ck_explored(ag, 2, 50, 2, &fl), 50);
    ck_assert_uint_ne(fl & DLSCHED_DECISION_HINT, 0);
    ck_assert_uint_eq(tst_stats(ag).hinted, 50);
    dlsched_agent_free(ag);
    /* explore=softmax: no epsilon */
    ag = ck_load(bq, lq, "explore=softmax");
    ck_assert_double_eq(tst_stats(ag).epsilon, 0.0);
    dlsched_agent_free(ag);

    /* lr: one terminal update Q += lr * (r - Q), in the table's arithmetic */
    static const float lrs[2] = {0.5f, 0.125f};
    for (int k = 0; k < 2; k++) {
        char spec[64];
        snprintf(spec, sizeof spec, "lr=%g", (double)lrs[k]);
        ag = ck_load(bq, lq, spec);
        float x[2] = {0.9f, 0.1f}, q0[3], q1[3];
        dlsched_state_t st = tst_state(x, 2);
        ck_assert_int_eq(dlsched_q_values(ag, &st, q0, 3), DLSCHED_OK);
        ck_assert_int_eq(dlsched_observe_transition(ag, &st, 1, 2.0f, NULL,
                                                    DLSCHED_OBS_TERMINAL),
                         DLSCHED_OK);
        ck_assert_int_eq(dlsched_q_values(ag, &st, q1, 3), DLSCHED_OK);
        float want = (float)((double)q0[1] + (double)lrs[k] * (2.0 - (double)q0[1]));
        ck_assert_msg(memcmp(&q1[1], &want, sizeof want) == 0, "lr=%g: Q %a, want %a",
                      (double)lrs[k], q1[1], want);
        dlsched_agent_free(ag);
    }

    /* ticket_capacity=2: the third pending ticket expires the first */
    ag = ck_load(bq, lq, "ticket_capacity=2");
    {
        float x[2] = {0.5f, 0.5f};
        dlsched_state_t st = tst_state(x, 2);
        dlsched_stats_t s0 = tst_stats(ag);
        uint64_t t0 = 0;
        for (int i = 0; i < 3; i++) {
            dlsched_decision_t d;
            ck_assert_int_eq(dlsched_act(ag, &st, 0, &d), DLSCHED_OK);
            if (i == 0)
                t0 = d.ticket;
        }
        dlsched_stats_t s1 = tst_stats(ag);
        ck_assert_uint_eq(s1.tickets_pending, 2);
        ck_assert_uint_eq(s1.tickets_expired, s0.tickets_expired + 1);
        ck_assert_int_eq(dlsched_observe(ag, t0, 1.0f, NULL, DLSCHED_OBS_TERMINAL),
                         DLSCHED_ETICKET);
    }
    dlsched_agent_free(ag);

    /* default_reward: an expired ticket is learned as a terminal transition
       with that reward (greedy decisions, so the action is known) */
    for (int with = 0; with < 2; with++) {
        ag = ck_load(bq, lq, with ? "ticket_capacity=1 epsilon_start=0 epsilon_end=0 "
                                    "default_reward=5 lr=0.5"
                                  : "ticket_capacity=1 epsilon_start=0 epsilon_end=0 lr=0.5");
        float x[2] = {0.1f, 0.1f}, y[2] = {0.9f, 0.9f}, q0[3], q1[3];
        dlsched_state_t sx = tst_state(x, 2), sy = tst_state(y, 2);
        ck_assert_int_eq(dlsched_q_values(ag, &sx, q0, 3), DLSCHED_OK);
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &sx, 0, &d), DLSCHED_OK);
        int32_t a = d.action;
        ck_assert_int_eq(dlsched_act(ag, &sy, 0, &d), DLSCHED_OK); /* expires the first */
        ck_assert_int_eq(dlsched_q_values(ag, &sx, q1, 3), DLSCHED_OK);
        float want = with ? (float)((double)q0[a] + 0.5 * (5.0 - (double)q0[a])) : q0[a];
        ck_assert_msg(memcmp(&q1[a], &want, sizeof want) == 0,
                      "default_reward %s: Q %a, want %a", with ? "5" : "unset", q1[a], want);
        dlsched_agent_free(ag);
    }

    /* seed: accepted (with learner=inline the RNG state itself is restored
       from the checkpoint) */
    ag = ck_load(bq, lq, "seed=424242");
    dlsched_agent_free(ag);

    /* learner=thread: the loaded model serves at once and keeps learning */
    const char *thr[2] = {"learner=thread", "learner=thread publish_every=1"};
    for (int k = 0; k < 2; k++) {
        const unsigned char *b = k ? bd : bq;
        size_t l = k ? ld : lq;
        uint32_t nf = k ? 4 : 2;
        dlsched_agent *inl = ck_load(b, l, NULL);
        ag = ck_load(b, l, thr[k]);
        ck_same_q(inl, ag, nf, 3, "learner=thread, after load");
        dlsched_stats_t s0 = tst_stats(ag);
        ck_env e = ck_env_new(5, nf, 3, 0, 0);
        ck_drive(&ag, 1, &e, 60);
        if (k)
            ck_assert_int_eq(dlsched_train(ag, 2), DLSCHED_OK); /* takes in what is staged */
        dlsched_stats_t s1 = tst_stats(ag);
        ck_assert_uint_eq(s1.decisions, s0.decisions + 60);
        ck_assert_uint_eq(s1.observed, s0.observed + 60);
        /* a checkpoint of the threaded agent loads back inline */
        size_t l2;
        unsigned char *b2 = ck_save_buf(ag, &l2);
        dlsched_agent *back = ck_load(b2, l2, "learner=inline");
        ck_assert_uint_eq(tst_stats(back).observed, s0.observed + 60);
        ck_assert_uint_eq(tst_stats(back).staged, 0);
        dlsched_buffer_free(b2);
        dlsched_agent_free(back);
        dlsched_agent_free(ag);
        dlsched_agent_free(inl);
    }

    /* device=cpu is accepted; device=cuda needs a usable CUDA backend */
    ag = ck_load(bd, ld, "device=cpu cpu_threads=2");
    dlsched_agent_free(ag);
    if (!dlsched_backend_available("cuda"))
        ck_assert_int_eq(ck_load_rc(bd, ld, "device=cuda", NULL), DLSCHED_ENODEVICE);

    free(bq);
    free(bd);
}
END_TEST

/* An override that the loaded agent cannot use is DLSCHED_ECONFIG (the
   header: "DLSCHED_ECONFIG or DLSCHED_ENODEVICE (an override is not
   usable)"), not DLSCHED_EFORMAT: the file is fine. */
START_TEST(test_override_unusable_is_econfig)
{
    size_t lx, lq;
    unsigned char *bx = ck_trained_buf(CK_OV_DQNX, 4, 3, 50, &lx);
    unsigned char *bq = ck_trained_buf(CK_OV_QT, 2, 3, 50, &lq);
    static const struct {
        int qt;
        const char *ov;
        const char *needle;
    } cases[] = {
        {0, "learner=thread", "nstep"},                 /* nstep=3 needs learner=inline */
        {0, "cpu_threads=2 learner=thread", "cpu_threads"},
        {1, "device=cuda", "cuda"},                     /* qtable runs on the CPU only */
        {1, "max_table_bytes=16", "max_table_bytes"},   /* below the stored table */
        {0, "max_replay_bytes=100", "max_replay_bytes"}, /* below the stored buffer */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = ck_load_rc(cases[i].qt ? bq : bx, cases[i].qt ? lq : lx, cases[i].ov, NULL);
        ck_assert_msg(rc == DLSCHED_ECONFIG, "override '%s' gave %d (%s), want ECONFIG",
                      cases[i].ov, rc, dlsched_last_error());
        tst_assert_error_has(cases[i].needle);
    }
    free(bx);
    free(bq);
}
END_TEST

/* ---- d. format versions --------------------------------------------------------------- */

START_TEST(test_format_versions)
{
    size_t len;
    unsigned char *buf = ck_trained_buf(CK_OV_QT, 2, 3, 30, &len);
    ck_assert(memcmp(buf, "DLSCHKPT", 8) == 0);
    ck_assert_uint_eq(ck_rd32(buf + 8), 2); /* since 1.1: the guard's section */
    ck_assert_uint_eq(ck_rd64(buf + 16), len - CK_HEADER - 4);
    ck_assert(ck_sections(buf, len).has[CK_SEC_GUARD]);
    ck_assert_int_eq(ck_load_rc(buf, len, NULL, NULL), DLSCHED_OK);

    unsigned char *b = ck_dup(buf, len);
    static const uint32_t newer[3] = {3, 1000, UINT32_MAX};
    for (int i = 0; i < 3; i++) {
        ck_wr32(b + 8, newer[i]);
        ck_fix_crc(b, len);
        ck_expect_eformat(b, len, "newer", "a newer format version");
    }
    ck_wr32(b + 8, 0);
    ck_fix_crc(b, len);
    ck_expect_eformat(b, len, NULL, "format version 0");
    /* unknown flags */
    memcpy(b, buf, len);
    ck_wr32(b + 12, ck_rd32(b + 12) | 2u);
    ck_fix_crc(b, len);
    ck_expect_eformat(b, len, "flags", "unknown header flags");
    free(b);
    free(buf);
}
END_TEST

/* ---- e. committed fixtures --------------------------------------------------------------- */

#define CK_FX_QT "algo=qtable n_features=2 n_actions=3 bins=3 seed=7 lr=0.2 gamma=0.9"
#define CK_FX_DQN                                                                        \
    "algo=dqn device=cpu cpu_threads=1 learner=inline n_features=3 n_actions=3 hidden=8 " \
    "batch=8 learning_starts=1000000 replay=64 save_replay=1 seed=3 target_update=10"

static void ck_fixture_path(char *buf, size_t n, const char *name)
{
    const char *top = getenv("DLSCHED_TOP");
    snprintf(buf, n, "%s/tests/fixtures/%s", top && *top ? top : ".", name);
}

static int ck_writing_fixtures(void)
{
    const char *w = getenv("DLSCHED_WRITE_FIXTURES");
    return w && strcmp(w, "1") == 0;
}

/* probe states of the fixtures: the qtable's 9 bin centres; 4 dqn states */
static void ck_fx_state(int dqn, int i, float *x)
{
    if (!dqn) {
        x[0] = (float)(i % 3) / 3.0f + 1.0f / 6.0f;
        x[1] = (float)(i / 3) / 3.0f + 1.0f / 6.0f;
        return;
    }
    static const float s[4][3] = {
        {0.0f, 0.0f, 0.0f}, {1.0f, 0.0f, 0.0f}, {0.25f, 0.5f, 0.75f}, {0.9f, 0.1f, 0.6f}};
    memcpy(x, s[i], sizeof s[i]);
}

/* the fixtures' histories: 300 logged transitions (qtable) or 200 and 50
   training steps (dqn), plus 20 ticketed decisions of which 3 stay pending */
static dlsched_agent *ck_fx_build(int dqn)
{
    dlsched_agent *ag = tst_agent(dqn ? CK_FX_DQN : CK_FX_QT);
    uint32_t nf = dqn ? 3 : 2;
    uint64_t g = dqn ? 0xD0 : 0x0F;
    int n = dqn ? 200 : 300;
    for (int i = 0; i < n; i++) {
        float x[3], y[3];
        for (uint32_t j = 0; j < nf; j++) {
            x[j] = (float)tst_unif(&g);
            y[j] = (float)tst_unif(&g);
        }
        int32_t a = (int32_t)tst_below(&g, 3);
        float r = x[0] - (float)a * 0.25f + (float)tst_unif(&g) * 0.1f;
        uint8_t m[3] = {1, (uint8_t)(i & 1), 1};
        dlsched_state_t s = tst_state(x, nf), s2 = tst_state(y, nf);
        if (i % 3 == 0) {
            s2.n_mask = 3;
            s2.mask = m;
        }
        uint32_t fl = i % 7 == 6 ? DLSCHED_OBS_TERMINAL : 0;
        ck_assert_int_eq(dlsched_observe_transition(ag, &s, a, r, fl ? NULL : &s2, fl),
                         DLSCHED_OK);
    }
    if (dqn)
        ck_assert_int_eq(dlsched_train(ag, 50), DLSCHED_OK);
    for (int i = 0; i < 20; i++) {
        float x[3] = {(float)tst_unif(&g), (float)tst_unif(&g), (float)tst_unif(&g)};
        dlsched_state_t s = tst_state(x, nf);
        dlsched_decision_t d;
        ck_assert_int_eq(dlsched_act(ag, &s, 0, &d), DLSCHED_OK);
        if (i < 17)
            ck_assert_int_eq(dlsched_observe(ag, d.ticket, x[1], NULL, DLSCHED_OBS_TERMINAL),
                             DLSCHED_OK);
    }
    return ag;
}

/* DLSCHED_WRITE_FIXTURES=1 only: write the fixture and print what the test
   below records (paste it there) */
static void ck_fx_write(int dqn, const char *name)
{
    char dir[PATH_MAX], path[PATH_MAX];
    ck_fixture_path(dir, sizeof dir, "");
    mkdir(dir, 0755);
    ck_fixture_path(path, sizeof path, name);
    dlsched_agent *ag = ck_fx_build(dqn);
    int rc = dlsched_save(ag, path);
    ck_assert_msg(rc == DLSCHED_OK, "writing %s: %s", path, dlsched_last_error());
    chmod(path, 0644);
    dlsched_stats_t s = tst_stats(ag);
    printf("/* %s */\n{%llu, %llu, %llu, %llu, %llu, %llu, %llu, %llu, %a, %a},\n", name,
           (unsigned long long)s.decisions, (unsigned long long)s.explored,
           (unsigned long long)s.tickets_issued, (unsigned long long)s.observed,
           (unsigned long long)(s.tickets_expired + s.tickets_pending), /* as loaded */
           (unsigned long long)s.transitions,
           (unsigned long long)s.transitions_stored, (unsigned long long)s.train_steps,
           s.mean_reward, s.last_loss);
    int n = dqn ? 4 : 9;
    for (int i = 0; i < n; i++) {
        float x[3], q[3];
        ck_fx_state(dqn, i, x);
        dlsched_state_t st = tst_state(x, dqn ? 3 : 2);
        ck_assert_int_eq(dlsched_q_values(ag, &st, q, 3), DLSCHED_OK);
        printf("{%af, %af, %af},\n", (double)q[0], (double)q[1], (double)q[2]);
    }
    fflush(stdout);
    dlsched_agent_free(ag);
}

typedef struct ck_fx_stats {
    uint64_t decisions, explored, issued, observed, expired, transitions, stored, train_steps;
    double mean_reward, last_loss;
} ck_fx_stats;

/* recorded with DLSCHED_WRITE_FIXTURES=1 when the fixtures were made */
static const ck_fx_stats ck_fx_qt_stats = {20, 20, 20, 17, 3, 300, 0, 317,
                                           0x1.308c372b4169bp-2, 0x1.d14f89f8ca324p-3};
static const float ck_fx_qt_q[9][3] = {
    {0x1.9b42e4p-2f, 0x1.0b051cp-1f, 0x1.8ae89ep-3f},
    {0x1.ba72d2p-1f, 0x1.a9edc4p-1f, 0x1.20a072p-1f},
    {0x1.a48e22p-1f, 0x1.eb16d4p-1f, 0x1.4da73cp-1f},
    {0x1.6ad964p-1f, 0x1.aa43ccp-2f, 0x1.e99f9cp-2f},
    {0x1.ba8c78p-1f, 0x1.b8b6c4p-1f, 0x1.fa715ep-2f},
    {0x1.01e7bp+0f, 0x1.0c1d4ap+0f, 0x1.9dd5p-1f},
    {0x1.71e412p-1f, 0x1.669eep-1f, 0x1.f46cb4p-3f},
    {0x1.02b068p+0f, 0x1.491726p-1f, 0x1.a7820cp-2f},
    {0x1.1d8db6p+0f, 0x1.456b84p+0f, 0x1.fa584cp-1f},
};
static const ck_fx_stats ck_fx_dqn_stats = {20, 20, 20, 17, 3, 200, 64, 50,
                                            0x1.52c3fbb4a5292p-2, 0x1.a52126909511ap-3};
static const float ck_fx_dqn_q[4][3] = {
    {0x1.6c703ep-5f, 0x1.63965ap-5f, 0x1.15e8dep-5f},
    {0x1.57f622p-3f, 0x1.2e501ap-3f, -0x1.fdf17cp-3f},
    {-0x1.17ba64p-1f, -0x1.85f35ep-1f, -0x1.68629cp-1f},
    {-0x1.3f27dcp-2f, -0x1.1bc1b4p-2f, -0x1.1d4feep-1f},
};

static void ck_fx_check(int dqn, const char *name)
{
    char path[PATH_MAX];
    ck_fixture_path(path, sizeof path, name);
    dlsched_agent *ag = NULL;
    int rc = dlsched_load(path, NULL, &ag);
    ck_assert_msg(rc == DLSCHED_OK, "%s must keep loading: %d %s", path, rc,
                  dlsched_last_error());
    const ck_fx_stats *w = dqn ? &ck_fx_dqn_stats : &ck_fx_qt_stats;
    dlsched_stats_t s = tst_stats(ag);
    ck_assert_uint_eq(s.decisions, w->decisions);
    ck_assert_uint_eq(s.explored, w->explored);
    ck_assert_uint_eq(s.tickets_issued, w->issued);
    ck_assert_uint_eq(s.observed, w->observed);
    ck_assert_uint_eq(s.tickets_expired, w->expired); /* the 3 pending at save time */
    ck_assert_uint_eq(s.tickets_pending, 0);
    ck_assert_uint_eq(s.transitions, w->transitions);
    ck_assert_uint_eq(s.transitions_stored, w->stored);
    ck_assert_uint_eq(s.train_steps, w->train_steps);
    ck_assert_uint_eq(s.model_version, w->train_steps);
    ck_assert_msg(s.mean_reward == w->mean_reward, "%s: mean_reward %a, recorded %a", name,
                  s.mean_reward, w->mean_reward);
    ck_assert_msg(s.last_loss == w->last_loss, "%s: last_loss %a, recorded %a", name,
                  s.last_loss, w->last_loss);
    int n = dqn ? 4 : 9;
    for (int i = 0; i < n; i++) {
        float x[3], q[3];
        ck_fx_state(dqn, i, x);
        dlsched_state_t st = tst_state(x, dqn ? 3 : 2);
        ck_assert_int_eq(dlsched_q_values(ag, &st, q, 3), DLSCHED_OK);
        for (int a = 0; a < 3; a++) {
            float want = dqn ? ck_fx_dqn_q[i][a] : ck_fx_qt_q[i][a];
            /* the table is read as stored: exact. The network's forward pass
               runs through the BLAS, whose summation order differs between
               CPU kernels: exact up to that rounding. */
            if (dqn)
                ck_assert_msg(fabsf(q[a] - want) <= 1e-5f * fmaxf(1.0f, fabsf(want)),
                              "%s: Q(probe %d, %d) = %a, recorded %a", name, i, a, q[a], want);
            else
                ck_assert_msg(memcmp(&q[a], &want, sizeof want) == 0,
                              "%s: Q(probe %d, %d) = %a, recorded %a", name, i, a, q[a], want);
        }
    }
    /* re-saving reproduces the file byte for byte: weights, Adam moments,
       replay and RNG, bit-exact. Since 1.1 the re-save is format 2 with the
       guard's section (the loaded agent has guard=1, the default): without
       that section and with the version field set back to 1 it is the
       format-1 file. */
    size_t flen, blen;
    unsigned char *file = ck_read_file(path, &flen);
    unsigned char *buf = ck_save_buf(ag, &blen);
    ck_assert_uint_eq(ck_rd32(file + 8), 1);
    ck_assert_uint_eq(ck_rd32(buf + 8), 2);
    ck_secs sb = ck_sections(buf, blen);
    ck_assert(sb.has[CK_SEC_GUARD]);
    size_t gl = 16 + sb.len[CK_SEC_GUARD], vl = blen - gl;
    unsigned char *v1 = malloc(vl);
    ck_assert_ptr_nonnull(v1);
    size_t g0 = sb.off[CK_SEC_GUARD] - 16;
    memcpy(v1, buf, g0);
    memcpy(v1 + g0, buf + g0 + gl, blen - g0 - gl);
    ck_wr32(v1 + 8, 1);
    ck_fix(v1, vl);
    ck_assert_msg(vl == flen && memcmp(v1, file, flen) == 0,
                  "%s: the re-save without its guard section differs from the fixture", name);
    free(v1);
    dlsched_buffer_free(buf);
    free(file);
    /* and it goes on learning */
    ck_env e = ck_env_new(1, dqn ? 3 : 2, 3, dqn ? 10 : 0, 2);
    ck_drive(&ag, 1, &e, 30);
    dlsched_agent_free(ag);
}

START_TEST(test_fixtures_v1)
{
    if (ck_writing_fixtures()) {
        ck_fx_write(0, "v1-qtable.ckpt");
        ck_fx_write(1, "v1-dqn.ckpt");
        return;
    }
    ck_fx_check(0, "v1-qtable.ckpt");
    ck_fx_check(1, "v1-dqn.ckpt");
}
END_TEST

/* ---- f. atomic save under SIGKILL ----------------------------------------------------------- */

#define CK_KILL_SPEC "algo=qtable n_features=2 n_actions=3 bins=8 seed=2 replay=64 save_replay=1"
#define CK_KILL_K 3     /* transitions between saves */
#define CK_KILL_ITERS 200

/* the saver: K transitions, a save, forever (until killed; alarm as a
   backstop); one byte on ready after its first save of the loop. Never
   returns into the test. */
static void ck_kill_child(dlsched_agent *ag, const char *path, int ready)
{
    alarm(30);
    uint64_t g = 0xA11;
    for (int round = 0;; round++) {
        for (int k = 0; k < CK_KILL_K; k++) {
            float x[2] = {(float)tst_unif(&g), (float)tst_unif(&g)};
            dlsched_state_t s = tst_state(x, 2);
            if (dlsched_observe_transition(ag, &s, (int32_t)tst_below(&g, 3), 1.0f, &s, 0) !=
                DLSCHED_OK)
                _exit(3);
        }
        if (dlsched_save(ag, path) != DLSCHED_OK)
            _exit(4);
        if (round == 0 && write(ready, "r", 1) != 1)
            _exit(5);
    }
}

/* A saver killed at a random moment (0.2 - 5 ms after its first save of
   the loop, so that the kill lands while it saves again and again) leaves a
   checkpoint that loads, holding a whole number of K-transition rounds: the
   old file or the new one, never a mix (the CRC covers every byte). The
   killed child may leave its temporary file ("<path>.tmp.*") behind: at
   most one, and nothing else; no library can clean up after SIGKILL. */
START_TEST(test_atomic_save_sigkill)
{
    char dir[PATH_MAX], path[PATH_MAX + 32];
    ck_mkdtemp(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/agent.ckpt", dir);
    uint64_t g = 0x5EED;
    uint64_t most = 0;
    int tmp_left = 0;
    for (int it = 0; it < CK_KILL_ITERS; it++) {
        dlsched_agent *ag = tst_agent(CK_KILL_SPEC);
        int rc = dlsched_save(ag, path); /* the file exists before the child runs */
        ck_assert_msg(rc == DLSCHED_OK, "save: %s", dlsched_last_error());
        long ns = 200000L + (long)tst_below(&g, 4800001u);
        int pfd[2];
        ck_assert_int_eq(pipe(pfd), 0);
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            close(pfd[0]);
            ck_kill_child(ag, path, pfd[1]);
        }
        /* nothing may fail between fork and kill: the child runs until then */
        close(pfd[1]);
        char c;
        struct pollfd pf = {pfd[0], POLLIN, 0};
        int ready = poll(&pf, 1, 10000) == 1 && read(pfd[0], &c, 1) == 1;
        struct timespec ts = {0, ns};
        while (ready && nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        kill(pid, SIGKILL);
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        close(pfd[0]);
        dlsched_agent_free(ag);
        ck_assert_msg(ready, "iteration %d: the saver never saved (status 0x%x)", it, status);
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                      "iteration %d: the saver ended by itself (status 0x%x)", it, status);

        dlsched_agent *ld = NULL;
        rc = dlsched_load(path, NULL, &ld);
        ck_assert_msg(rc == DLSCHED_OK, "iteration %d (kill after %ld ns): load gave %d: %s", it,
                      ns, rc, dlsched_last_error());
        dlsched_stats_t s = tst_stats(ld);
        ck_assert_msg(s.transitions >= CK_KILL_K && s.transitions % CK_KILL_K == 0,
                      "iteration %d: %llu transitions is not a saved state", it,
                      (unsigned long long)s.transitions);
        ck_assert_uint_eq(s.train_steps, s.transitions);
        ck_assert_uint_eq(s.transitions_stored, s.transitions < 64 ? s.transitions : 64);
        ck_assert_uint_eq(s.decisions, 0);
        if (s.transitions > most)
            most = s.transitions;
        dlsched_agent_free(ld);

        /* what the directory holds: the checkpoint and at most one temporary */
        DIR *d = opendir(dir);
        ck_assert_ptr_nonnull(d);
        struct dirent *de;
        int n_ckpt = 0, n_tmp = 0, n_other = 0;
        char tmp[PATH_MAX + 300] = "";
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            if (strcmp(de->d_name, "agent.ckpt") == 0)
                n_ckpt++;
            else if (strncmp(de->d_name, "agent.ckpt.tmp.", 15) == 0) {
                n_tmp++;
                snprintf(tmp, sizeof tmp, "%s/%s", dir, de->d_name);
            } else
                n_other++;
        }
        closedir(d);
        ck_assert_int_eq(n_ckpt, 1);
        ck_assert_int_eq(n_other, 0);
        ck_assert_msg(n_tmp <= 1, "iteration %d: %d temporary files left", it, n_tmp);
        if (n_tmp) {
            tmp_left++;
            unlink(tmp);
        }
    }
    ck_rmtree(dir);
    if (getenv("DLSCHED_CKPT_VERBOSE"))
        printf("sigkill: most %llu transitions saved before a kill, %d of %d kills left a "
               "temporary file\n",
               (unsigned long long)most, tmp_left, CK_KILL_ITERS);
}
END_TEST

/* ---- g. hostile input ------------------------------------------------------------------------ */

#define CK_HQ_SPEC "algo=qtable n_features=2 n_actions=3 bins=3 seed=6 replay=8 save_replay=1"
#define CK_HD_SPEC                                                                         \
    "algo=dqn device=cpu cpu_threads=1 n_features=3 n_actions=3 hidden=8 batch=4 "        \
    "learning_starts=20 replay=16 save_replay=1 per=1 seed=8"

/* every truncation, every (sampled) bit flip: DLSCHED_EFORMAT */
static void ck_hostile(const unsigned char *buf, size_t len, size_t all_bits_bytes,
                       int sampled)
{
    for (size_t n = 0; n < len; n++) {
        int rc = ck_load_rc(buf, n, NULL, NULL);
        ck_assert_msg(rc == DLSCHED_EFORMAT, "truncated to %zu of %zu bytes: %d (%s)", n, len,
                      rc, dlsched_last_error());
    }
    unsigned char *b = ck_dup(buf, len);
    size_t lim = all_bits_bytes < len ? all_bits_bytes : len;
    for (size_t i = 0; i < lim * 8; i++) {
        b[i / 8] ^= (unsigned char)(1u << (i % 8));
        int rc = ck_load_rc(b, len, NULL, NULL);
        ck_assert_msg(rc == DLSCHED_EFORMAT, "bit %zu (byte %zu) flipped: %d (%s)", i, i / 8,
                      rc, dlsched_last_error());
        b[i / 8] ^= (unsigned char)(1u << (i % 8));
    }
    uint64_t g = 0xF11F;
    for (int k = 0; k < sampled && len > lim; k++) {
        size_t i = lim * 8 + (size_t)(tst_next(&g) % ((len - lim) * 8));
        b[i / 8] ^= (unsigned char)(1u << (i % 8));
        int rc = ck_load_rc(b, len, NULL, NULL);
        ck_assert_msg(rc == DLSCHED_EFORMAT, "bit %zu (byte %zu) flipped: %d (%s)", i, i / 8,
                      rc, dlsched_last_error());
        b[i / 8] ^= (unsigned char)(1u << (i % 8));
    }
    ck_assert(memcmp(b, buf, len) == 0);
    free(b);
}

START_TEST(test_limit_truncation_bitflips_qtable)
{
    size_t len;
    unsigned char *buf = ck_trained_buf(CK_HQ_SPEC, 2, 3, 40, &len);
    ck_hostile(buf, len, len, 0);
    free(buf);
}
END_TEST

START_TEST(test_limit_truncation_bitflips_dqn)
{
    size_t len;
    unsigned char *buf = ck_trained_buf(CK_HD_SPEC, 3, 3, 40, &len);
    ck_hostile(buf, len, 512, 2000);
    free(buf);
}
END_TEST

START_TEST(test_limit_random_buffers)
{
    uint64_t g = 0xBADF00D;
    unsigned char *b = malloc(8192);
    ck_assert_ptr_nonnull(b);
    for (int k = 0; k < 3000; k++) {
        size_t n = (size_t)(tst_next(&g) % 8192);
        for (size_t i = 0; i < n; i++)
            b[i] = (unsigned char)tst_next(&g);
        int mode = k % 3; /* raw; valid magic; valid magic, version, length and CRC */
        if (mode >= 1 && n >= 8)
            memcpy(b, "DLSCHKPT", 8);
        if (mode == 2 && n >= CK_HEADER + 4) {
            ck_wr32(b + 8, 1);
            ck_wr32(b + 12, (uint32_t)(tst_next(&g) & 1));
            if (k % 2 && n >= CK_HEADER + 20) /* a plausible first section header */
                ck_wr32(b + CK_HEADER, 1);
            ck_fix(b, n);
        }
        int rc = ck_load_rc(b, n, NULL, NULL);
        ck_assert_msg(rc == DLSCHED_EFORMAT, "random buffer %d (%zu bytes, mode %d): %d (%s)",
                      k, n, mode, rc, dlsched_last_error());
    }
    free(b);
}
END_TEST

/* a copy of buf with bytes at off replaced, CRC recomputed */
static unsigned char *ck_patch(const unsigned char *buf, size_t len, size_t off,
                               const void *v, size_t n)
{
    ck_assert_uint_le(off + n, len - 4);
    unsigned char *b = ck_dup(buf, len);
    memcpy(b + off, v, n);
    ck_fix_crc(b, len);
    return b;
}

static void ck_expect_patch(const unsigned char *buf, size_t len, size_t off, const void *v,
                            size_t n, const char *needle, const char *what)
{
    unsigned char *b = ck_patch(buf, len, off, v, n);
    ck_expect_eformat(b, len, needle, what);
    free(b);
}

/* offsets inside the agent section (checkpoint.c writes them in this order) */
#define CK_AG_RNG 12
#define CK_AG_ISSUED 44
#define CK_AG_OBSERVED 52
#define CK_AG_EXPIRED 60
#define CK_AG_MEAN_REWARD 84
#define CK_AG_DECISIONS 92
#define CK_AG_EXPLORED 100

START_TEST(test_limit_crafted_values)
{
    size_t len;
    unsigned char *buf = ck_trained_buf(CK_HQ_SPEC, 2, 3, 40, &len);
    ck_secs s = ck_sections(buf, len);
    size_t cfg = s.off[0], ag = s.off[1], mo = s.off[2];
    const float nan = NAN, inf = INFINITY;
    const double dnan = NAN;

    /* the Q-table: 9 states x 3 actions after n_states (u64) and n_actions (u32) */
    ck_assert_uint_eq(ck_rd64(buf + mo), 9);
    ck_expect_patch(buf, len, mo + 12 + 5 * 4, &nan, 4, "finite", "a Q-value is NaN");
    ck_expect_patch(buf, len, mo + 12 + 26 * 4, &inf, 4, "finite", "a Q-value is +inf");
    uint64_t v64 = 10;
    ck_expect_patch(buf, len, mo, &v64, 8, NULL, "n_states differs");
    /* replay: capacity, count, position after the table */
    size_t rp = mo + 12 + 27 * 4;
    ck_assert_uint_eq(ck_rd64(buf + rp), 8);
    ck_assert_uint_eq(ck_rd64(buf + rp + 8), 8);
    v64 = 9;
    ck_expect_patch(buf, len, rp + 8, &v64, 8, "replay", "replay count > capacity");
    ck_expect_patch(buf, len, rp + 16, &v64, 8, "replay", "replay position >= capacity");
    v64 = 7;
    ck_expect_patch(buf, len, rp, &v64, 8, "replay", "replay capacity differs");
    /* a stored transition's state index out of the table */
    v64 = 9;
    ck_expect_patch(buf, len, rp + 24, &v64, 8, "replay", "replay state out of range");
    int32_t a = 3;
    ck_expect_patch(buf, len, rp + 24 + 16 * 8, &a, 4, "replay", "replay action out of range");
    ck_expect_patch(buf, len, rp + 24 + 16 * 8 + 8 * 4, &nan, 4, "replay", "replay reward NaN");
    uint8_t fl = 4;
    ck_expect_patch(buf, len, rp + 24 + 16 * 8 + 16 * 4, &fl, 1, "replay", "replay flags");

    /* the agent section */
    uint32_t v32 = 7;
    ck_expect_patch(buf, len, ag, &v32, 4, NULL, "algo id unknown");
    v32 = 3;
    ck_expect_patch(buf, len, ag + 4, &v32, 4, NULL, "n_features differs");
    unsigned char zero[32] = {0};
    ck_expect_patch(buf, len, ag + CK_AG_RNG, zero, 32, "RNG", "RNG all zero");
    v64 = ck_rd64(buf + ag + CK_AG_ISSUED) + 1;
    ck_expect_patch(buf, len, ag + CK_AG_OBSERVED, &v64, 8, "reconcile", "observed > issued");
    ck_expect_patch(buf, len, ag + CK_AG_EXPIRED, &v64, 8, "reconcile", "expired > issued");
    v64 = ck_rd64(buf + ag + CK_AG_DECISIONS) + 1;
    ck_expect_patch(buf, len, ag + CK_AG_EXPLORED, &v64, 8, "reconcile",
                    "explored > decisions");
    ck_expect_patch(buf, len, ag + CK_AG_MEAN_REWARD, &dnan, 8, "finite", "mean_reward NaN");

    /* the configuration text */
    char *text = malloc(s.len[0] + 64);
    ck_assert_ptr_nonnull(text);
    memcpy(text, buf + cfg, s.len[0]);
    ck_assert_msg(memmem(text, s.len[0], "seed=6\n", 7) != NULL, "stored config: %.*s",
                  (int)s.len[0], text);
    static const struct {
        const char *append; /* replaces the whole text when it starts with '!' */
        const char *needle;
    } cfgs[] = {
        {"bogus_key=1\n", "bogus_key"},   /* unknown key */
        {"lr=-1\n", "lr"},                 /* out of range */
        {"no equals sign\n", "key=value"}, /* not key=value */
        {"seed=1", "terminated"},          /* no final newline */
        {"!algo=qtable\n", "n_features"},  /* required keys missing */
        {"n_actions=4\n", NULL},           /* the table no longer fits the section */
        {"bins=4\n", NULL},
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        size_t tl;
        if (cfgs[i].append[0] == '!') {
            tl = strlen(cfgs[i].append + 1);
            memcpy(text, cfgs[i].append + 1, tl);
        } else {
            tl = s.len[0];
            memcpy(text, buf + cfg, tl);
            memcpy(text + tl, cfgs[i].append, strlen(cfgs[i].append));
            tl += strlen(cfgs[i].append);
        }
        size_t nl;
        unsigned char *nb = ck_replace_section(buf, len, 0, text, tl, &nl);
        char what[96];
        snprintf(what, sizeof what, "config text + '%s'", cfgs[i].append);
        ck_expect_eformat(nb, nl, cfgs[i].needle, what);
        free(nb);
    }
    /* a NUL inside the text */
    memcpy(text, buf + cfg, s.len[0]);
    text[1] = '\0';
    {
        size_t nl;
        unsigned char *nb = ck_replace_section(buf, len, 0, text, s.len[0], &nl);
        ck_expect_eformat(nb, nl, NULL, "a NUL in the config text");
        free(nb);
    }
    free(text);

    /* framing: a wrong section tag, bytes after the model, a short model */
    {
        unsigned char *b = ck_dup(buf, len);
        ck_wr32(b + CK_HEADER, 2);
        ck_fix_crc(b, len);
        ck_expect_eformat(b, len, "section", "first section tagged 2");
        free(b);
        unsigned char *ext = malloc(len + 4);
        ck_assert_ptr_nonnull(ext);
        memcpy(ext, buf, len - 4);
        memset(ext + len - 4, 0, 4);
        ck_fix(ext, len + 4);
        ck_expect_eformat(ext, len + 4, NULL, "4 bytes after the model section");
        free(ext);
        size_t nl;
        unsigned char *nb = ck_replace_section(buf, len, 2, buf + mo, s.len[2] - 1, &nl);
        ck_expect_eformat(nb, nl, NULL, "model section 1 byte short");
        free(nb);
        unsigned char *longer = malloc(s.len[2] + 1);
        ck_assert_ptr_nonnull(longer);
        memcpy(longer, buf + mo, s.len[2]);
        longer[s.len[2]] = 0;
        nb = ck_replace_section(buf, len, 2, longer, s.len[2] + 1, &nl);
        ck_expect_eformat(nb, nl, "extra", "model section 1 byte long");
        free(nb);
        free(longer);
        unsigned char *agl = malloc(s.len[1] + 1);
        ck_assert_ptr_nonnull(agl);
        memcpy(agl, buf + ag, s.len[1]);
        agl[s.len[1]] = 0;
        nb = ck_replace_section(buf, len, 1, agl, s.len[1] + 1, &nl);
        ck_expect_eformat(nb, nl, "extra", "agent section 1 byte long");
        free(nb);
        free(agl);
        /* a section length beyond the end */
        b = ck_dup(buf, len);
        ck_wr64(b + CK_HEADER + 8, (uint64_t)len * 4);
        ck_fix_crc(b, len);
        ck_expect_eformat(b, len, "section", "config section longer than the file");
        ck_wr64(b + CK_HEADER + 8, UINT64_MAX);
        ck_fix_crc(b, len);
        ck_expect_eformat(b, len, "section", "config section of 2^64-1 bytes");
        free(b);
    }
    free(buf);
}
END_TEST

/* offsets inside a dqn model section of n parameters, nf features, nstep */
static size_t ck_dqn_off_after_net(uint64_t n)
{
    return 8 + 16 * (size_t)n; /* n, then theta, target, Adam m, Adam v */
}

START_TEST(test_limit_crafted_values_dqn)
{
    size_t len;
    unsigned char *buf = ck_trained_buf(CK_HD_SPEC " normalize=1 nstep=2", 3, 3, 60, &len);
    ck_secs s = ck_sections(buf, len);
    size_t mo = s.off[2];
    uint64_t n = ck_rd64(buf + mo);
    ck_assert_uint_eq(n, 3 * 8 + 8 + 8 * 3 + 3);
    const float nan = NAN, neg = -1.0f;
    const double dneg = -1.0, dnan = NAN;
    ck_expect_patch(buf, len, mo + 8 + 4 * 7, &nan, 4, "finite", "a weight is NaN");
    ck_expect_patch(buf, len, mo + 8 + 4 * n + 4, &nan, 4, "finite", "a target weight is NaN");
    ck_expect_patch(buf, len, mo + 8 + 12 * n + 4, &neg, 4, "negative", "Adam v < 0");
    uint64_t v64 = n + 1;
    ck_expect_patch(buf, len, mo, &v64, 8, "parameters", "parameter count differs");
    size_t p = mo + ck_dqn_off_after_net(n); /* steps, env_steps, last_loss, n_seen */
    ck_expect_patch(buf, len, p + 16, &dnan, 8, "finite", "last_loss NaN");
    size_t mean = p + 32, m2 = mean + 3 * 8, nst = m2 + 3 * 8;
    ck_expect_patch(buf, len, mean, &dnan, 8, "normaliser", "normaliser mean NaN");
    ck_expect_patch(buf, len, m2 + 8, &dneg, 8, "normaliser", "normaliser m2 < 0");
    ck_assert_uint_eq(ck_rd32(buf + nst), 2);
    uint32_t v32 = 3;
    ck_expect_patch(buf, len, nst, &v32, 4, "n-step", "nstep differs");
    v32 = 2;
    ck_expect_patch(buf, len, nst + 4, &v32, 4, "n-step", "n-step queue full");
    /* the n-step queue: qs, qs2 (2 x 3 floats each), qr (2), qa (2), qm2 (2 x 3), qhasm (2) */
    size_t qs = nst + 8, qr = qs + 2 * 2 * 3 * 4, qa = qr + 2 * 4, qm2 = qa + 2 * 4;
    size_t rb = qm2 + 2 * 3 + 2;
    ck_assert_uint_eq(ck_rd64(buf + rb), 16); /* replay capacity */
    uint64_t count = ck_rd64(buf + rb + 8);
    ck_assert_uint_gt(count, 0);
    v64 = 17;
    ck_expect_patch(buf, len, rb + 8, &v64, 8, "replay", "replay count > capacity");
    ck_expect_patch(buf, len, rb + 16, &v64, 8, "replay", "replay position >= capacity");
    size_t rs = rb + 24, ra = rs + 2 * 16 * 3 * 4, rr = ra + 16 * 4, rd = rr + 16 * 4;
    size_t rm = rd + 16 * 4, rper = rm + 16 * 3, rmax = rper + 4, rprio = rmax + 8;
    ck_assert_uint_eq(ck_rd32(buf + rper), 1);
    ck_expect_patch(buf, len, rs + 4, &nan, 4, "finite", "replay state NaN");
    int32_t a = -1;
    ck_expect_patch(buf, len, ra, &a, 4, "replay", "replay action -1");
    ck_expect_patch(buf, len, rr, &nan, 4, "replay", "replay return NaN");
    float d = 1.5f;
    ck_expect_patch(buf, len, rd, &d, 4, "replay", "replay discount 1.5");
    v32 = 0;
    ck_expect_patch(buf, len, rper, &v32, 4, "per", "per flag differs");
    double z = 0;
    ck_expect_patch(buf, len, rmax, &z, 8, "priority", "largest priority 0");
    ck_expect_patch(buf, len, rprio, &z, 8, "priority", "a stored transition's priority 0");
    ck_expect_patch(buf, len, rprio + 8, &dnan, 8, "priority", "a priority NaN");
    if (count < 16) {
        double one = 1.0;
        ck_expect_patch(buf, len, rprio + 8 * count, &one, 8, "priority",
                        "a priority beyond the count");
    }
    free(buf);
}
END_TEST

/* Values that pass every check above but break the agent later. Each must
   be DLSCHED_EFORMAT, or at the least leave the agent consistent (finite
   Q-values, reconciling counters). */

/* qtable replay: flags 2 (has a next mask, not terminal) with a mask that
   allows no action, which the API refuses (DLSCHED_ENOACTION) */
START_TEST(test_limit_crafted_empty_next_mask)
{
    size_t len;
    unsigned char *buf = ck_trained_buf(CK_HQ_SPEC, 2, 3, 40, &len);
    ck_secs s = ck_sections(buf, len);
    size_t rp = s.off[2] + 12 + 27 * 4, rflags = rp + 24 + 16 * 8 + 16 * 4;
    size_t rmask = rflags + 8;
    unsigned char *b = ck_dup(buf, len);
    for (int i = 0; i < 8; i++) {
        b[rflags + i] = 2;
        memset(b + rmask + 3 * i, 0, 3);
    }
    ck_fix_crc(b, len);
    dlsched_agent *ag = NULL;
    int rc = ck_load_rc(b, len, NULL, &ag);
    free(b);
    free(buf);
    if (rc != DLSCHED_OK) {
        ck_assert_int_eq(rc, DLSCHED_EFORMAT);
        return;
    }
    ck_assert_int_eq(dlsched_train(ag, 200), DLSCHED_OK);
    float q[3];
    for (int i = 0; i < 9; i++) {
        float x[2] = {(float)(i % 3) / 3 + 0.1f, (float)(i / 3) / 3 + 0.1f};
        dlsched_state_t st = tst_state(x, 2);
        ck_assert_int_eq(dlsched_q_values(ag, &st, q, 3), DLSCHED_OK);
        for (int k = 0; k < 3; k++)
            ck_assert_msg(isfinite(q[k]),
                          "qtable: a stored next mask allowing no action was accepted; after "
                          "training Q(cell %d, %d) = %g",
                          i, k, (double)q[k]);
    }
    dlsched_agent_free(ag);
}
END_TEST

/* counters: one ticket issued that was neither observed nor expired (the
   loaded agent has none pending) */
START_TEST(test_limit_crafted_unreconciled_tickets)
{
    size_t len;
    unsigned char *buf = ck_trained_buf(CK_HQ_SPEC, 2, 3, 40, &len);
    ck_secs s = ck_sections(buf, len);
    uint64_t v = ck_rd64(buf + s.off[1] + CK_AG_ISSUED) + 1;
    unsigned char *b = ck_patch(buf, len, s.off[1] + CK_AG_ISSUED, &v, 8);
    dlsched_agent *ag = NULL;
    int rc = ck_load_rc(b, len, NULL, &ag);
    free(b);
    free(buf);
    if (rc != DLSCHED_OK) {
        ck_assert_int_eq(rc, DLSCHED_EFORMAT);
        return;
    }
    dlsched_stats_t st = tst_stats(ag);
    dlsched_agent_free(ag);
    ck_assert_msg(st.tickets_issued == st.observed + st.tickets_expired + st.tickets_pending,
                  "counters that do not reconcile were accepted: issued %llu, observed %llu, "
                  "expired %llu, pending %llu",
                  (unsigned long long)st.tickets_issued, (unsigned long long)st.observed,
                  (unsigned long long)st.tickets_expired, (unsigned long long)st.tickets_pending);
}
END_TEST

/* the agent's state must stay sane: a checkpoint of it loads again (the
   loader refuses non-finite parameters, statistics and stored states) */
static void ck_assert_reloads(dlsched_agent *ag, const char *what)
{
    size_t len;
    unsigned char *b = ck_save_buf(ag, &len);
    int rc = ck_load_rc(b, len, NULL, NULL);
    ck_assert_msg(rc == DLSCHED_OK, "%s: a checkpoint of the agent no longer loads: %s", what,
                  dlsched_last_error());
    dlsched_buffer_free(b);
}

/* ---- the guard's section (format version 2) ------------------------------------------ */

/* offsets inside the guard's section (dls_guard_save writes them in this
   order; dlsched-checkpoint(5)) */
#define CK_GD_STATE 0
#define CK_GD_K 4
#define CK_GD_EPOCH 8
#define CK_GD_STATS 16 /* n, sum, sumsq (f64) per arm 0 (none), 1 (incumbent), 2 (learned) */
#define CK_GD_LAST 88  /* advantage, low, high at the last test (f64) */
#define CK_GD_COUNTS 112 /* switches, fallbacks, decisions, by_learned, by_incumbent,
                            agreed, unsupported (u64) */
#define CK_GD_BLOCKS 168 /* block, position (u64), its arm, the pair's second arm (u32),
                            pairs dropped (u64), sum and sum of squares of the pair
                            differences (f64) */
#define CK_GD_REGIME 216 /* the regime check: incumbent-led reference, then learned-led:
                            batches n, outcomes in the open batch (u64), sum and sum of
                            squares of the batch means, the open batch's sum (f64) */
#define CK_GD_REG_K 296  /* regime checks done (u32), 0 (u32) */
#define CK_GD_REG_FB 304 /* fallbacks by the regime check (u64) */
#define CK_GD_REGIONS 312
#define CK_GD_VISITS 320 /* 2 bytes per (region, action); dqn: then n (u64), mean and
                            variance per feature (f64); then the open blocks: */
#define CK_GD_OPEN_HEAD 8 /* their number (u32), 0 (u32) */
#define CK_GD_OPEN_REC 40 /* each: block number (u64), arm, closed, issued, resolved,
                             counted, 0 (u32), the counted rewards' sum (f64) */
#define CK_GUARD_MAX_TESTS 30 /* DLS_GUARD_MAX_TESTS, guard_tests' largest value */
#define CK_REGIME_BATCH_MAX (2 * 1048576) /* (1 + DLS_GUARD_TAIL) x guard_block's largest */

/* a checkpoint (own copy) of an agent that ran steps with hint 0 */
static unsigned char *ck_guard_buf(const char *spec, uint32_t nf, int steps, size_t *len)
{
    dlsched_agent *ag = tst_agent(spec);
    ck_env e = ck_env_new(41, nf, 3, 0, 0);
    e.hint = 0;
    ck_drive(&ag, 1, &e, steps);
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_gt(st.guard_decisions, 0);
    unsigned char *lib = ck_save_buf(ag, len);
    unsigned char *b = ck_dup(lib, *len);
    dlsched_buffer_free(lib);
    dlsched_agent_free(ag);
    return b;
}

/* A guard=0 checkpoint has no guard section: its layout is format 1's.
   Labelled version 1 it loads, to the same agent; a version-1 file with a
   guard section is refused (format 1 has none); a version-2 file loads
   with or without one; the override guard=0 drops a stored section, and an
   agent with the guard on loaded from a file without one starts afresh. */
START_TEST(test_format_v1_still_loads)
{
    size_t len;
    unsigned char *buf = ck_trained_buf(CK_OV_QT "guard=0", 2, 3, 60, &len);
    ck_assert_uint_eq(ck_rd32(buf + 8), 2);
    ck_assert(!ck_sections(buf, len).has[CK_SEC_GUARD]);
    dlsched_agent *v2 = ck_load(buf, len, NULL);
    ck_wr32(buf + 8, 1);
    ck_fix_crc(buf, len);
    dlsched_agent *v1 = ck_load(buf, len, NULL);
    ck_same_q(v1, v2, 2, 3, "format 1 vs 2");
    ck_same_stats(v1, v2, "format 1 vs 2");
    ck_assert_uint_eq(tst_stats(v1).guard_state, DLSCHED_GUARD_OFF);
    /* format 1 with the guard on (a 1.0 file, guard's default): afresh */
    dlsched_agent *on = ck_load(buf, len, "guard=1");
    dlsched_stats_t st = tst_stats(on);
    ck_assert_uint_eq(st.guard_state, DLSCHED_GUARD_INCUMBENT);
    ck_assert_uint_eq(st.guard_decisions, 0);
    ck_assert_uint_eq(st.guard_epoch, 0);
    ck_same_q(on, v2, 2, 3, "format 1, guard=1");
    /* its own save has the section, and loads */
    size_t l2;
    unsigned char *b2 = ck_save_buf(on, &l2);
    ck_assert(ck_sections(b2, l2).has[CK_SEC_GUARD]);
    dlsched_agent *again = ck_load(b2, l2, NULL);
    ck_same_stats(on, again, "guard section round trip");
    /* and with the override guard=0 the section is dropped */
    dlsched_agent *off = ck_load(b2, l2, "guard=0");
    ck_assert_uint_eq(tst_stats(off).guard_state, DLSCHED_GUARD_OFF);
    ck_same_q(off, v2, 2, 3, "guard section dropped");
    /* a version-1 file cannot have one */
    unsigned char *b1 = ck_dup(b2, l2);
    ck_wr32(b1 + 8, 1);
    ck_fix_crc(b1, l2);
    ck_expect_eformat(b1, l2, "model section", "format 1 with a guard section");
    free(b1);
    dlsched_buffer_free(b2);
    dlsched_agent_free(again);
    dlsched_agent_free(off);
    dlsched_agent_free(on);
    dlsched_agent_free(v1);
    dlsched_agent_free(v2);
    free(buf);
}
END_TEST

/* crafted values in the guard's section behind a valid CRC: DLSCHED_EFORMAT */
static void ck_guard_crafted(const unsigned char *buf, size_t len, uint32_t tests,
                             uint64_t n_regions, int dqn, uint32_t nf)
{
    ck_secs s = ck_sections(buf, len);
    ck_assert(s.has[CK_SEC_GUARD]);
    size_t g = s.off[CK_SEC_GUARD], gl = s.len[CK_SEC_GUARD];
    size_t open = g + CK_GD_VISITS + n_regions * 3 * 2 + (dqn ? 8 + 16 * nf : 0);
    ck_assert_uint_eq(ck_rd32(buf + open), 0); /* guard_block 1: no blocks */
    ck_assert_uint_eq(gl, open + CK_GD_OPEN_HEAD - g);
    ck_assert_uint_eq(ck_rd64(buf + g + CK_GD_REGIONS), n_regions);
    /* the unchanged file loads */
    ck_assert_int_eq(ck_load_rc(buf, len, NULL, NULL), DLSCHED_OK);
    uint32_t v32;
    static const uint32_t bad_state[3] = {0, 4, UINT32_MAX};
    for (int i = 0; i < 3; i++)
        ck_expect_patch(buf, len, g + CK_GD_STATE, &bad_state[i], 4, "corrupt",
                        "guard state out of range");
    /* k: beyond DLS_GUARD_MAX_TESTS corrupt; up to it valid (k >= the
       loaded guard_tests starts a new epoch: test_guard_tests_override) */
    static const uint32_t bad_k[2] = {CK_GUARD_MAX_TESTS + 1, UINT32_MAX};
    for (int i = 0; i < 2; i++)
        ck_expect_patch(buf, len, g + CK_GD_K, &bad_k[i], 4, "corrupt", "k > 30");
    static const uint32_t ok_k[3] = {0, 1, CK_GUARD_MAX_TESTS};
    for (int i = 0; i < 3; i++) {
        unsigned char *ok = ck_patch(buf, len, g + CK_GD_K, &ok_k[i], 4);
        ck_assert_int_eq(ck_load_rc(ok, len, NULL, NULL), DLSCHED_OK);
        free(ok);
    }
    (void)tests;
    uint64_t v64 = n_regions + 1;
    ck_expect_patch(buf, len, g + CK_GD_REGIONS, &v64, 8, "corrupt", "other region count");
    /* statistics: n < 0, NaN or infinite sums, negative sum of squares */
    const double dnan = NAN, dinf = INFINITY, dneg = -1;
    for (int a = 0; a < 3; a++) {
        size_t o = g + CK_GD_STATS + (size_t)a * 24;
        ck_expect_patch(buf, len, o, &dneg, 8, "statistics", "n < 0");
        ck_expect_patch(buf, len, o, &dnan, 8, "statistics", "n NaN");
        ck_expect_patch(buf, len, o, &dinf, 8, "statistics", "n infinite");
        ck_expect_patch(buf, len, o + 8, &dnan, 8, "statistics", "sum NaN");
        ck_expect_patch(buf, len, o + 8, &dinf, 8, "statistics", "sum infinite");
        ck_expect_patch(buf, len, o + 16, &dnan, 8, "statistics", "sum of squares NaN");
        ck_expect_patch(buf, len, o + 16, &dneg, 8, "statistics", "sum of squares < 0");
    }
    for (int j = 0; j < 3; j++)
        ck_expect_patch(buf, len, g + CK_GD_LAST + (size_t)j * 8, &dnan, 8, "last test",
                        "last test NaN");
    /* decisions != agreed + unsupported + by_learned + by_incumbent */
    v64 = ck_rd64(buf + g + CK_GD_COUNTS + 16) + 1;
    ck_expect_patch(buf, len, g + CK_GD_COUNTS + 16, &v64, 8, "add up", "decisions + 1");
    for (int i = 3; i < 7; i++) {
        v64 = ck_rd64(buf + g + CK_GD_COUNTS + (size_t)i * 8) + 1;
        ck_expect_patch(buf, len, g + CK_GD_COUNTS + (size_t)i * 8, &v64, 8, "add up",
                        "a part + 1");
    }
    /* switchback blocks: arms beyond 2, a NaN or infinite sum, negative or
       NaN sum of squares */
    v32 = 3;
    ck_expect_patch(buf, len, g + CK_GD_BLOCKS + 16, &v32, 4, "blocks", "block arm 3");
    ck_expect_patch(buf, len, g + CK_GD_BLOCKS + 20, &v32, 4, "blocks", "second arm 3");
    ck_expect_patch(buf, len, g + CK_GD_BLOCKS + 32, &dnan, 8, "blocks", "pair sum NaN");
    ck_expect_patch(buf, len, g + CK_GD_BLOCKS + 32, &dinf, 8, "blocks", "pair sum infinite");
    ck_expect_patch(buf, len, g + CK_GD_BLOCKS + 40, &dneg, 8, "blocks", "pair sumsq < 0");
    ck_expect_patch(buf, len, g + CK_GD_BLOCKS + 40, &dnan, 8, "blocks", "pair sumsq NaN");
    /* the regime check, per record (incumbent-led, learned-led): in_batch at
       the largest batch; NaN or infinite sums; a negative, NaN or infinite
       sum of squares */
    for (int i = 0; i < 2; i++) {
        size_t o = g + CK_GD_REGIME + (size_t)i * 40;
        v64 = CK_REGIME_BATCH_MAX;
        ck_expect_patch(buf, len, o + 8, &v64, 8, "regime", "in_batch at the largest batch");
        v64 = UINT64_MAX;
        ck_expect_patch(buf, len, o + 8, &v64, 8, "regime", "in_batch huge");
        ck_expect_patch(buf, len, o + 16, &dnan, 8, "regime", "batch means' sum NaN");
        ck_expect_patch(buf, len, o + 16, &dinf, 8, "regime", "batch means' sum infinite");
        ck_expect_patch(buf, len, o + 24, &dneg, 8, "regime", "sum of squares < 0");
        ck_expect_patch(buf, len, o + 24, &dnan, 8, "regime", "sum of squares NaN");
        ck_expect_patch(buf, len, o + 24, &dinf, 8, "regime", "sum of squares infinite");
        ck_expect_patch(buf, len, o + 32, &dnan, 8, "regime", "open batch sum NaN");
        ck_expect_patch(buf, len, o + 32, &dinf, 8, "regime", "open batch sum infinite");
        /* an open batch as long as this guard_block's (1024) or longer,
           shorter than the largest: valid (a guard_block override), it
           starts afresh */
        v64 = 1024;
        unsigned char *ok = ck_patch(buf, len, o + 8, &v64, 8);
        ck_assert_int_eq(ck_load_rc(ok, len, NULL, NULL), DLSCHED_OK);
        free(ok);
    }
    v32 = CK_GUARD_MAX_TESTS + 1;
    ck_expect_patch(buf, len, g + CK_GD_REG_K, &v32, 4, "regime", "regime checks > 30");
    v64 = ck_rd64(buf + g + CK_GD_COUNTS + 8) + 1; /* more than all fallbacks */
    ck_expect_patch(buf, len, g + CK_GD_REG_FB, &v64, 8, "regime", "regime fallbacks");
    v32 = CK_GUARD_MAX_TESTS; /* all checks done: valid */
    unsigned char *okk = ck_patch(buf, len, g + CK_GD_REG_K, &v32, 4);
    ck_assert_int_eq(ck_load_rc(okk, len, NULL, NULL), DLSCHED_OK);
    free(okk);
    /* more open blocks than the ring holds; one announced that is not there */
    v32 = 65;
    ck_expect_patch(buf, len, open, &v32, 4, "open blocks", "65 open blocks");
    v32 = 1;
    ck_expect_patch(buf, len, open, &v32, 4, "truncated", "an open block missing");
    if (dqn) {
        size_t nn = g + CK_GD_VISITS + n_regions * 3 * 2, mean = nn + 8, m2 = mean + 8 * nf;
        ck_expect_patch(buf, len, mean, &dnan, 8, "feature statistics", "mean NaN");
        ck_expect_patch(buf, len, mean + 8 * (nf - 1), &dinf, 8, "feature statistics",
                        "mean infinite");
        ck_expect_patch(buf, len, m2, &dneg, 8, "feature statistics", "variance < 0");
        ck_expect_patch(buf, len, m2, &dnan, 8, "feature statistics", "variance NaN");
    }
    /* truncated: cut anywhere (a valid CRC and section lengths), or longer */
    static const size_t cut[] = {0,           3,          CK_GD_REGIME + 4, CK_GD_REG_FB,
                                 CK_GD_REGIONS + 4, CK_GD_VISITS, CK_GD_VISITS + 1};
    for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++) {
        size_t nl;
        unsigned char *nb = ck_replace_section(buf, len, CK_SEC_GUARD, buf + g, cut[i], &nl);
        ck_expect_eformat(nb, nl, "truncated", "guard section truncated");
        free(nb);
    }
    size_t nl;
    unsigned char *nb = ck_replace_section(buf, len, CK_SEC_GUARD, buf + g, gl - 1, &nl);
    ck_expect_eformat(nb, nl, "truncated", "guard section one byte short");
    free(nb);
    unsigned char *longer = malloc(gl + 1);
    ck_assert_ptr_nonnull(longer);
    memcpy(longer, buf + g, gl);
    longer[gl] = 0;
    nb = ck_replace_section(buf, len, CK_SEC_GUARD, longer, gl + 1, &nl);
    ck_expect_eformat(nb, nl, "extra bytes", "guard section one byte long");
    free(nb);
    free(longer);
}

/* switchback's open blocks (guard_block 4: blocks of 8 decisions with the
   tail, pairs of 16; guard_share 0.3: every pair an experiment): after 300
   decisions block 37 is under way (position 4) and pair 18 is open: block
   36 closed, 37 not. Each crafted record value: DLSCHED_EFORMAT. */
START_TEST(test_limit_crafted_guard_blocks)
{
    size_t len;
    unsigned char *buf =
        ck_guard_buf(CK_OV_QT "guard_block=4 guard_share=0.3 guard_min_samples=1000", 2, 300, &len);
    ck_assert_int_eq(ck_load_rc(buf, len, NULL, NULL), DLSCHED_OK);
    ck_secs s = ck_sections(buf, len);
    size_t g = s.off[CK_SEC_GUARD], open = g + CK_GD_VISITS + 12 * 3 * 2;
    ck_assert_uint_eq(s.len[CK_SEC_GUARD], open - g + CK_GD_OPEN_HEAD + 2 * CK_GD_OPEN_REC);
    ck_assert_uint_eq(ck_rd64(buf + g + CK_GD_BLOCKS), 37);    /* the block */
    ck_assert_uint_eq(ck_rd64(buf + g + CK_GD_BLOCKS + 8), 4); /* its position */
    ck_assert_uint_eq(ck_rd32(buf + open), 2);
    size_t r0 = open + CK_GD_OPEN_HEAD, r1 = r0 + CK_GD_OPEN_REC;
    ck_assert_uint_eq(ck_rd64(buf + r0), 36);
    ck_assert_uint_eq(ck_rd32(buf + r0 + 12), 1); /* closed */
    ck_assert_uint_eq(ck_rd32(buf + r0 + 16), 8); /* 8 tickets issued, all resolved */
    ck_assert_uint_eq(ck_rd32(buf + r0 + 20), 8);
    ck_assert_uint_eq(ck_rd32(buf + r0 + 24), 7); /* past the burn-in of 1 */
    ck_assert_uint_eq(ck_rd64(buf + r1), 37);
    ck_assert_uint_eq(ck_rd32(buf + r1 + 12), 0);
    ck_assert_uint_eq(ck_rd32(buf + r1 + 16), 4);
    ck_assert_uint_ne(ck_rd32(buf + r0 + 8), ck_rd32(buf + r1 + 8)); /* one arm each */
    uint64_t v64 = 38; /* a block to come */
    ck_expect_patch(buf, len, r1, &v64, 8, "open blocks", "block after the current");
    v64 = 37; /* not oldest first */
    ck_expect_patch(buf, len, r0, &v64, 8, "open blocks", "blocks out of order");
    v64 = UINT64_MAX;
    ck_expect_patch(buf, len, r0, &v64, 8, "open blocks", "block number huge");
    static const uint32_t bad_arm[3] = {0, 3, UINT32_MAX};
    for (int i = 0; i < 3; i++)
        ck_expect_patch(buf, len, r0 + 8, &bad_arm[i], 4, "open blocks", "arm");
    uint32_t v32 = 2;
    ck_expect_patch(buf, len, r0 + 12, &v32, 4, "open blocks", "closed 2");
    v32 = 9;
    ck_expect_patch(buf, len, r0 + 20, &v32, 4, "open blocks", "resolved > issued");
    v32 = 9;
    ck_expect_patch(buf, len, r0 + 24, &v32, 4, "open blocks", "counted > resolved");
    const double dnan = NAN, dinf = INFINITY;
    ck_expect_patch(buf, len, r1 + 32, &dnan, 8, "open blocks", "sum NaN");
    ck_expect_patch(buf, len, r1 + 32, &dinf, 8, "open blocks", "sum infinite");
    v32 = 3;
    ck_expect_patch(buf, len, open, &v32, 4, "truncated", "a third block announced");
    free(buf);
}
END_TEST

/* A stored k (tests done in the epoch) at or above the loaded agent's
   guard_tests (an override lower than the saved agent's) is valid: that
   epoch has run its tests, a new one starts (guard_epoch + 1, fresh
   statistics; the counters stay). Below it, the epoch goes on. */
START_TEST(test_guard_tests_override)
{
    size_t len;
    unsigned char *buf = ck_guard_buf(CK_OV_QT "guard_tests=5 guard_share=0.3 "
                                               "guard_min_samples=1000 guard_min_visits=3",
                                      2, 600, &len);
    size_t g = ck_sections(buf, len).off[CK_SEC_GUARD];
    uint32_t k = 3;
    unsigned char *b = ck_patch(buf, len, g + CK_GD_K, &k, 4);
    dlsched_agent *same = ck_load(b, len, NULL);
    dlsched_stats_t s0 = tst_stats(same);
    ck_assert_uint_gt(s0.guard_samples_learned, 0);
    ck_assert_uint_gt(s0.guard_samples_incumbent, 0);
    static const char *const lower[3] = {"guard_tests=1", "guard_tests=2", "guard_tests=3"};
    for (int i = 0; i < 3; i++) {
        dlsched_agent *ag = ck_load(b, len, lower[i]);
        dlsched_stats_t st = tst_stats(ag);
        ck_assert_uint_eq(st.guard_epoch, s0.guard_epoch + 1);
        ck_assert_uint_eq(st.guard_samples_learned, 0);
        ck_assert_uint_eq(st.guard_samples_incumbent, 0);
        ck_assert(st.guard_advantage_low == -INFINITY && st.guard_advantage_high == INFINITY);
        ck_assert_uint_eq(st.guard_state, s0.guard_state);
        ck_assert_uint_eq(st.guard_decisions, s0.guard_decisions);
        ck_assert_uint_eq(st.guard_switches, s0.guard_switches);
        ck_assert_uint_eq(st.guard_fallbacks, s0.guard_fallbacks);
        dlsched_agent_free(ag);
    }
    dlsched_agent *higher = ck_load(b, len, "guard_tests=4");
    ck_same_stats(same, higher, "k below the loaded guard_tests");
    dlsched_agent_free(higher);
    dlsched_agent_free(same);
    free(b);
    free(buf);
}
END_TEST

START_TEST(test_limit_crafted_guard)
{
    size_t len;
    /* qtable: its regions are the 3 x 4 cells */
    unsigned char *buf = ck_guard_buf(CK_OV_QT "guard_tests=5", 2, 300, &len);
    ck_guard_crafted(buf, len, 5, 12, 0, 2);
    free(buf);
    /* dqn: 2^guard_hash_bits regions, then the feature statistics */
    buf = ck_guard_buf(CK_OV_DQN "guard_hash_bits=4", 4, 120, &len);
    ck_guard_crafted(buf, len, 8, 16, 1, 4);
    free(buf);
}
END_TEST

/* a dqn checkpoint with normalize=1 nstep=2 and where its normaliser and
   n-step queue lie */
static unsigned char *ck_dqn_norm_buf(size_t *len, size_t *mean, size_t *m2, size_t *nst)
{
    /* steps until the n-step queue holds a transition (after an observe
       that ends no episode) */
    dlsched_agent *ag = tst_agent(CK_HD_SPEC " normalize=1 nstep=2");
    ck_env e = ck_env_new(99, 3, 3, 0, 0);
    ck_drive(&ag, 1, &e, 60);
    unsigned char *buf;
    size_t p;
    for (int tries = 0;; tries++) {
        ck_assert_int_lt(tries, 100);
        buf = ck_save_buf(ag, len);
        ck_secs s = ck_sections(buf, *len);
        uint64_t n = ck_rd64(buf + s.off[2]);
        p = s.off[2] + ck_dqn_off_after_net(n);
        if (ck_rd32(buf + p + 32 + 48 + 4) > 0)
            break;
        dlsched_buffer_free(buf);
        ck_drive(&ag, 1, &e, 1);
    }
    unsigned char *own = ck_dup(buf, *len);
    dlsched_buffer_free(buf);
    buf = own;
    dlsched_agent_free(ag);
    ck_assert_uint_ge(ck_rd64(buf + p + 24), 2); /* n_seen */
    *mean = p + 32;
    *m2 = *mean + 24;
    *nst = *m2 + 24;
    return buf;
}

/* dqn: normaliser mean 1e300 (finite as a double, infinite as a float) */
START_TEST(test_limit_crafted_normaliser_range)
{
    size_t len, mean, m2, nst;
    unsigned char *buf = ck_dqn_norm_buf(&len, &mean, &m2, &nst);
    double big = 1e300;
    unsigned char *b = ck_dup(buf, len);
    memcpy(b + mean, &big, 8);
    memcpy(b + m2, &big, 8);
    ck_fix_crc(b, len);
    dlsched_agent *ag = NULL;
    int rc = ck_load_rc(b, len, NULL, &ag);
    free(b);
    free(buf);
    if (rc != DLSCHED_OK) {
        ck_assert_int_eq(rc, DLSCHED_EFORMAT);
        return;
    }
    /* acting: the ReLU happens to turn the NaN features into zeros */
    float x[3] = {0.5f, 0.5f, 0.5f}, q[3];
    dlsched_state_t st = tst_state(x, 3);
    ck_assert_int_eq(dlsched_q_values(ag, &st, q, 3), DLSCHED_OK);
    for (int k = 0; k < 3; k++)
        ck_assert_msg(isfinite(q[k]), "dqn: normaliser mean 1e300, m2 1e300 accepted; Q(%d) = %g",
                      k, (double)q[k]);
    /* training: the gradient of the first layer is dH x^T */
    ck_assert_int_eq(dlsched_train(ag, 20), DLSCHED_OK);
    ck_assert_int_eq(dlsched_q_values(ag, &st, q, 3), DLSCHED_OK);
    dlsched_stats_t s = tst_stats(ag);
    ck_assert_reloads(ag, "dqn: normaliser mean 1e300, m2 1e300 accepted, 20 training steps");
    dlsched_agent_free(ag);
    for (int k = 0; k < 3; k++)
        ck_assert_msg(isfinite(q[k]),
                      "dqn: normaliser mean 1e300, m2 1e300 accepted; after 20 training steps "
                      "Q(%d) = %g (loss %g)",
                      k, (double)q[k], s.last_loss);
}
END_TEST

/* dqn: a NaN in a state waiting in the n-step queue */
START_TEST(test_limit_crafted_nstep_queue_nan)
{
    size_t len, mean, m2, nst;
    unsigned char *buf = ck_dqn_norm_buf(&len, &mean, &m2, &nst);
    (void)mean;
    (void)m2;
    uint32_t qn = ck_rd32(buf + nst + 4);
    ck_assert_uint_ge(qn, 1);
    float fnan = NAN;
    unsigned char *b = ck_dup(buf, len);
    for (uint32_t k = 0; k < qn; k++) { /* qs and qs2 of every queued entry */
        memcpy(b + nst + 8 + k * 12, &fnan, 4);
        memcpy(b + nst + 8 + 24 + k * 12, &fnan, 4);
    }
    ck_fix_crc(b, len);
    dlsched_agent *ag = NULL;
    int rc = ck_load_rc(b, len, NULL, &ag);
    free(b);
    free(buf);
    if (rc != DLSCHED_OK) {
        ck_assert_int_eq(rc, DLSCHED_EFORMAT);
        return;
    }
    ck_env e = ck_env_new(3, 3, 3, 1, 20);
    ck_drive(&ag, 1, &e, 20);
    float x[3] = {0.5f, 0.5f, 0.5f}, q[3];
    dlsched_state_t st = tst_state(x, 3);
    ck_assert_int_eq(dlsched_q_values(ag, &st, q, 3), DLSCHED_OK);
    ck_assert_reloads(ag, "dqn: a NaN state in the n-step queue accepted, 20 steps later");
    dlsched_agent_free(ag);
    for (int k = 0; k < 3; k++)
        ck_assert_msg(isfinite(q[k]),
                      "dqn: a NaN state in the n-step queue was accepted; after training "
                      "Q(%d) = %g",
                      k, (double)q[k]);
}
END_TEST

/* Whatever dlsched_save_buffer accepts to write, dlsched_load_buffer must
   read back: also for a network that diverged on huge (finite, so legal)
   features. (A save may refuse such an agent instead, with an error.) */
START_TEST(test_limit_diverged_model_roundtrip)
{
    dlsched_agent *ag = tst_agent("algo=dqn device=cpu cpu_threads=1 n_features=3 n_actions=3 "
                                  "hidden=8 batch=4 learning_starts=1 replay=64 seed=2");
    float x[3] = {3e38f, -3e38f, 1e30f};
    dlsched_state_t st = tst_state(x, 3);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(dlsched_observe_transition(ag, &st, i % 3, 1.0f, &st, 0), DLSCHED_OK);
    ck_assert_int_eq(dlsched_train(ag, 20), DLSCHED_OK);
    void *b = NULL;
    size_t len = 0;
    int rc = dlsched_save_buffer(ag, &b, &len);
    if (rc == DLSCHED_OK) {
        int lr = ck_load_rc(b, len, NULL, NULL);
        ck_assert_msg(lr == DLSCHED_OK,
                      "dlsched_save_buffer wrote a checkpoint that dlsched_load_buffer refuses: "
                      "%d %s",
                      lr, dlsched_last_error());
        dlsched_buffer_free(b);
    } else {
        /* the library refuses to save a diverged model */
        ck_assert_int_eq(rc, DLSCHED_EBACKEND);
        tst_assert_error_has("non-finite");
    }
    dlsched_agent_free(ag);
}
END_TEST

START_TEST(test_limit_null_and_io)
{
    dlsched_agent *ag = tst_agent(CK_HQ_SPEC);
    size_t len;
    unsigned char *buf = ck_save_buf(ag, &len);
    static int sentinel;
    dlsched_agent *out = (dlsched_agent *)(void *)&sentinel;
    void *vb = &sentinel;
    size_t l = 12345;

    ck_assert_int_eq(dlsched_load_buffer(NULL, len, NULL, &out), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_load_buffer(buf, len, NULL, NULL), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_load(NULL, NULL, &out), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_load("x.ckpt", NULL, NULL), DLSCHED_EINVAL);
    ck_assert_ptr_eq(out, &sentinel);
    ck_assert_int_eq(dlsched_save(NULL, "x.ckpt"), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_save(ag, NULL), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_save(ag, ""), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_save_buffer(NULL, &vb, &l), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_save_buffer(ag, NULL, &l), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_save_buffer(ag, &vb, NULL), DLSCHED_EINVAL);
    ck_assert_ptr_eq(vb, &sentinel);
    ck_assert_uint_eq(l, 12345);
    dlsched_buffer_free(NULL);

    char dir[PATH_MAX], path[PATH_MAX + 64];
    ck_mkdtemp(dir, sizeof dir);
    /* a missing file */
    snprintf(path, sizeof path, "%s/missing.ckpt", dir);
    ck_assert_int_eq(dlsched_load(path, NULL, &out), DLSCHED_EIO);
    tst_assert_error_has(path);
    ck_assert_ptr_eq(out, &sentinel);
    /* a directory */
    ck_assert_int_eq(dlsched_load(dir, NULL, &out), DLSCHED_EIO);
    tst_assert_error_has(dir);
    /* an empty file and a short one are EFORMAT, not EIO */
    snprintf(path, sizeof path, "%s/empty.ckpt", dir);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_int_eq(dlsched_load(path, NULL, &out), DLSCHED_EFORMAT);
    /* a save into a directory that does not exist: EIO, nothing created */
    snprintf(path, sizeof path, "%s/nodir/agent.ckpt", dir);
    ck_assert_int_eq(dlsched_save(ag, path), DLSCHED_EIO);
    tst_assert_error_has(path);
    snprintf(path, sizeof path, "%s/nodir", dir);
    struct stat sb;
    ck_assert_int_ne(stat(path, &sb), 0);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    int entries = 0;
    while ((de = readdir(d)) != NULL)
        entries += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    ck_assert_int_eq(entries, 1); /* empty.ckpt */
    /* a save over a directory fails at the rename: EIO, no temporary left */
    snprintf(path, sizeof path, "%s/sub", dir);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    ck_assert_int_eq(dlsched_save(ag, path), DLSCHED_EIO);
    tst_assert_error_has(path);
    d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    entries = 0;
    while ((de = readdir(d)) != NULL)
        entries += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    ck_assert_int_eq(entries, 2); /* empty.ckpt, sub */
    rmdir(path);
    /* a good save replaces the file, and keeps its mode */
    snprintf(path, sizeof path, "%s/agent.ckpt", dir);
    ck_assert_int_eq(dlsched_save(ag, path), DLSCHED_OK);
    ck_assert_int_eq(chmod(path, 0640), 0);
    ck_assert_int_eq(dlsched_save(ag, path), DLSCHED_OK);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_uint_eq(sb.st_mode & 0777, 0640);
    dlsched_agent *ld = NULL;
    ck_assert_int_eq(dlsched_load(path, NULL, &ld), DLSCHED_OK);
    dlsched_agent_free(ld);

    ck_rmtree(dir);
    dlsched_buffer_free(buf);
    dlsched_agent_free(ag);
}
END_TEST

/* ---- h. memory ----------------------------------------------------------------------------- */

START_TEST(test_memory_bytes)
{
    /* qtable: the table is prod(bins) * n_actions * 4 bytes, and the
       guard's visit counts 2 bytes per (cell, action) */
    dlsched_agent *a = tst_agent("algo=qtable n_features=2 n_actions=3 bins=4,5 guard=0");
    dlsched_agent *b = tst_agent("algo=qtable n_features=2 n_actions=3 bins=8,5 guard=0");
    uint64_t ma = tst_stats(a).memory_bytes, mb = tst_stats(b).memory_bytes;
    ck_assert_uint_gt(ma, 0);
    ck_assert_uint_eq(mb - ma, (uint64_t)(8 * 5 - 4 * 5) * 3 * 4);
    dlsched_agent_free(a);
    dlsched_agent_free(b);
    a = tst_agent("algo=qtable n_features=2 n_actions=3 bins=4,5");
    ck_assert_uint_eq(tst_stats(a).memory_bytes - ma, (uint64_t)4 * 5 * 3 * 2);
    b = tst_agent("algo=qtable n_features=2 n_actions=3 bins=8,5");
    ma = tst_stats(a).memory_bytes;
    mb = tst_stats(b).memory_bytes;
    ck_assert_uint_eq(mb - ma, (uint64_t)(8 * 5 - 4 * 5) * 3 * (4 + 2));
    /* a loaded agent counts the same */
    size_t len;
    unsigned char *buf = ck_save_buf(b, &len);
    dlsched_agent *c = ck_load(buf, len, NULL);
    ck_assert_uint_eq(tst_stats(c).memory_bytes, mb);
    dlsched_buffer_free(buf);
    dlsched_agent_free(a);
    dlsched_agent_free(b);
    dlsched_agent_free(c);

    /* dqn: 8 * n_features + 12 + n_actions bytes per replay transition */
#define CK_MEM_DQN "algo=dqn device=cpu n_features=5 n_actions=7 hidden=8 batch=4 "
    a = tst_agent(CK_MEM_DQN "replay=100");
    b = tst_agent(CK_MEM_DQN "replay=350");
    ma = tst_stats(a).memory_bytes;
    mb = tst_stats(b).memory_bytes;
    ck_assert_uint_gt(ma, 0);
    ck_assert_uint_eq(mb - ma, (uint64_t)250 * (8 * 5 + 12 + 7));
    buf = ck_save_buf(b, &len);
    c = ck_load(buf, len, NULL);
    ck_assert_uint_eq(tst_stats(c).memory_bytes, mb);
    dlsched_buffer_free(buf);
    dlsched_agent_free(a);
    dlsched_agent_free(b);
    dlsched_agent_free(c);
    /* the guard (dqn): 2^guard_hash_bits x n_actions 2-byte counts, the
       n_features x bits projection (floats), and the running mean and
       variance of every feature (doubles, with float copies) */
    a = tst_agent(CK_MEM_DQN "replay=100 guard=0");
    b = tst_agent(CK_MEM_DQN "replay=100 guard_hash_bits=10");
    ck_assert_uint_eq(tst_stats(b).memory_bytes - tst_stats(a).memory_bytes,
                      (uint64_t)1024 * 7 * 2 + 5 * 10 * 4 + 2 * 5 * 8 + 2 * 5 * 4);
    dlsched_agent_free(a);
    dlsched_agent_free(b);
#undef CK_MEM_DQN
}
END_TEST

Suite *suite_checkpoint(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_continue_qtable);
    tcase_add_test(tc, test_continue_qtable_replay);
    tcase_add_test(tc, test_continue_dqn);
    tcase_add_test(tc, test_continue_dqn_dueling_per_normalize_nstep);
    tcase_add_test(tc, test_continue_qtable_guard);
    tcase_add_test(tc, test_continue_dqn_guard);
    tcase_add_test(tc, test_continue_qtable_guard_block);
    tcase_add_test(tc, test_dqn_without_replay);
    tcase_add_test(tc, test_pending_tickets_not_saved);
    tcase_add_test(tc, test_old_tickets_after_new_acts);
    tcase_add_test(tc, test_override_shape_keys);
    tcase_add_test(tc, test_override_runtime_keys);
    tcase_add_test(tc, test_override_unusable_is_econfig);
    tcase_add_test(tc, test_format_versions);
    tcase_add_test(tc, test_format_v1_still_loads);
    tcase_add_test(tc, test_fixtures_v1);
    tcase_add_test(tc, test_memory_bytes);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_atomic_save_sigkill);
    tcase_add_test(tc, test_limit_truncation_bitflips_qtable);
    tcase_add_test(tc, test_limit_truncation_bitflips_dqn);
    tcase_add_test(tc, test_limit_random_buffers);
    tcase_add_test(tc, test_limit_crafted_values);
    tcase_add_test(tc, test_limit_crafted_values_dqn);
    tcase_add_test(tc, test_limit_crafted_empty_next_mask);
    tcase_add_test(tc, test_limit_crafted_unreconciled_tickets);
    tcase_add_test(tc, test_limit_crafted_normaliser_range);
    tcase_add_test(tc, test_limit_crafted_nstep_queue_nan);
    tcase_add_test(tc, test_limit_crafted_guard);
    tcase_add_test(tc, test_limit_crafted_guard_blocks);
    tcase_add_test(tc, test_guard_tests_override);
    tcase_add_test(tc, test_limit_diverged_model_roundtrip);
    tcase_add_test(tc, test_limit_null_and_io);
    suite_add_tcase(s, tc);
    return s;
}
