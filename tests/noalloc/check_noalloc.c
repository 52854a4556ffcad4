/* check_noalloc.c - act, observe, observe_transition, q_values, stats and
 * training steps allocate nothing once the agent exists.
 *
 * This binary replaces malloc and friends with counting wrappers around
 * glibc's __libc_* entry points, so every allocation in the process
 * (libdlsched, OpenBLAS, libc) is seen. It is built and run without
 * sanitizers, which interpose the allocator themselves. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "dlsched.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static volatile int counting;
static volatile unsigned long n_alloc;

/* default visibility (the build hides symbols by default): the wrappers
   must replace the allocator for the shared libraries too (OpenBLAS, libc) */
#define EXPORT __attribute__((visibility("default")))
EXPORT void *malloc(size_t n);
EXPORT void *calloc(size_t a, size_t b);
EXPORT void *realloc(void *p, size_t n);
EXPORT void *aligned_alloc(size_t al, size_t n);
EXPORT int posix_memalign(void **out, size_t al, size_t n);
EXPORT void *memalign(size_t al, size_t n);
EXPORT void free(void *p);

void *malloc(size_t n)
{
    if (counting)
        n_alloc++;
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
    if (counting)
        n_alloc++;
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
    if (counting)
        n_alloc++;
    return __libc_realloc(p, n);
}
void *memalign(size_t al, size_t n)
{
    if (counting)
        n_alloc++;
    return __libc_memalign(al, n);
}
void *aligned_alloc(size_t al, size_t n)
{
    return memalign(al, n);
}
int posix_memalign(void **out, size_t al, size_t n)
{
    void *p = memalign(al, n);
    if (!p)
        return 12;
    *out = p;
    return 0;
}
void free(void *p)
{
    __libc_free(p);
}

#define NF 16
#define NA 8

static void run_steady_state(const char *spec, int train)
{
    dlsched_config *cfg;
    dlsched_agent *ag;
    ck_assert_int_eq(dlsched_config_new(&cfg), DLSCHED_OK);
    ck_assert_msg(dlsched_config_parse(cfg, spec) == DLSCHED_OK, "%s", dlsched_last_error());
    ck_assert_msg(dlsched_agent_new(cfg, &ag) == DLSCHED_OK, "%s", dlsched_last_error());
    dlsched_config_free(cfg);

    float x[NF], x2[NF], q[NA];
    uint8_t mask[NA];
    unsigned lcg = 5;
    int bad = 0;
    unsigned long before = 0;
    /* round 0 warms up (first training steps, BLAS buffers); round 1 counts */
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            before = n_alloc;
            counting = 1;
        }
        for (int i = 0; i < 3000; i++) {
            for (int j = 0; j < NF; j++) {
                lcg = lcg * 1103515245u + 12345u;
                x[j] = (float)((lcg >> 16) % 1000) / 1000.0f;
                x2[j] = 1.0f - x[j];
            }
            for (int a = 0; a < NA; a++)
                mask[a] = (uint8_t)((lcg >> a) & 1) | (a == 0);
            dlsched_state_t s = {x, NF, NA, mask, 0, 0};
            dlsched_state_t n = {x2, NF, 0, NULL, -1, 0};
            dlsched_decision_t d;
            dlsched_stats_t st;
            bad |= dlsched_act(ag, &s, 0, &d);
            bad |= dlsched_observe(ag, d.ticket, 0.5f, &n, (i % 50 == 0) ? DLSCHED_OBS_TERMINAL : 0);
            bad |= dlsched_observe_transition(ag, &s, 0, 1.0f, &n, 0);
            bad |= dlsched_act(ag, &s, DLSCHED_ACT_GREEDY, &d);
            bad |= dlsched_q_values(ag, &s, q, NA);
            bad |= dlsched_stats(ag, &st, sizeof st);
            if (train && i % 100 == 0)
                bad |= dlsched_train(ag, 3);
        }
        if (round == 1)
            counting = 0;
    }
    unsigned long allocs = n_alloc - before;
    dlsched_agent_free(ag);
    ck_assert_int_eq(bad, 0);
    ck_assert_msg(allocs == 0, "%lu allocations in the steady state of '%s'", allocs, spec);
}

START_TEST(test_qtable_no_alloc)
{
    run_steady_state("algo=qtable n_features=16 n_actions=8 bins=2 replay=1000 "
                     "ticket_capacity=256 default_reward=0",
                     1);
}
END_TEST

START_TEST(test_dqn_no_alloc)
{
    run_steady_state("algo=dqn n_features=16 n_actions=8 hidden=64,64 batch=32 replay=5000 "
                     "learning_starts=100 train_every=4 ticket_capacity=256 default_reward=0",
                     1);
}
END_TEST

START_TEST(test_dqn_variants_no_alloc)
{
    run_steady_state("algo=dqn n_features=16 n_actions=8 hidden=32 batch=16 replay=2000 "
                     "learning_starts=50 train_every=2 dueling=1 per=1 normalize=1 nstep=3 "
                     "double=0 target_update=0.01 explore=softmax",
                     1);
}
END_TEST

/* libdlsched's own kernels (cpu_kernels=own; OpenBLAS on a CPU without
   AVX2 and FMA): their packing buffer is on the stack, and they do not
   thread, so training with cpu_threads=2 allocates nothing either */
START_TEST(test_dqn_own_kernels_no_alloc)
{
    run_steady_state("algo=dqn n_features=16 n_actions=8 hidden=64,64 batch=32 replay=5000 "
                     "learning_starts=100 train_every=4 ticket_capacity=256 default_reward=0 "
                     "cpu_kernels=own",
                     1);
    run_steady_state("algo=dqn n_features=16 n_actions=8 hidden=160 batch=48 replay=5000 "
                     "learning_starts=100 train_every=2 dueling=1 cpu_kernels=own cpu_threads=2",
                     1);
}
END_TEST

/* With cpu_threads > 1, OpenBLAS 0.3.21's threaded GEMM driver mallocs a job
   array on every call, so only acting and storing are checked here (no
   training step runs: learning_starts is never reached). */
START_TEST(test_dqn_threads_act_no_alloc)
{
    run_steady_state("algo=dqn n_features=16 n_actions=8 hidden=64,64 batch=64 replay=20000 "
                     "learning_starts=1000000 cpu_threads=2",
                     0);
}
END_TEST

/* learner=thread: the acting threads and the learner (which trains during
   the counted round) allocate nothing either */
START_TEST(test_thread_learner_no_alloc)
{
    run_steady_state("algo=dqn n_features=16 n_actions=8 hidden=32,32 batch=16 replay=5000 "
                     "learning_starts=100 learner=thread replay_ratio=4 ticket_capacity=256 "
                     "default_reward=0 ticket_timeout_ms=1000 apprentice=100",
                     1);
    run_steady_state("algo=qtable n_features=16 n_actions=8 bins=2 replay=1000 learner=thread "
                     "ticket_capacity=256 default_reward=0",
                     1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("noalloc");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_qtable_no_alloc);
    tcase_add_test(tc, test_dqn_no_alloc);
    tcase_add_test(tc, test_dqn_variants_no_alloc);
    tcase_add_test(tc, test_dqn_threads_act_no_alloc);
    tcase_add_test(tc, test_dqn_own_kernels_no_alloc);
    tcase_add_test(tc, test_thread_learner_no_alloc);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
