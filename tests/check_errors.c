/* check_errors.c - status texts and the thread-local last error */
#include <pthread.h>

#include "tests.h"

START_TEST(test_strerror)
{
    for (int c = DLSCHED_OK; c <= DLSCHED_EBACKEND; c++) {
        const char *s = dlsched_strerror(c);
        ck_assert_ptr_nonnull(s);
        ck_assert_uint_gt(strlen(s), 3);
        ck_assert_str_ne(s, "unknown error code");
        for (int d = DLSCHED_OK; d < c; d++)
            ck_assert_str_ne(s, dlsched_strerror(d));
    }
    ck_assert_str_eq(dlsched_strerror(-1), "unknown error code");
    ck_assert_str_eq(dlsched_strerror(11), "unknown error code");
    ck_assert_str_eq(dlsched_strerror(1 << 30), "unknown error code");
}
END_TEST

/* the codes keep their explicit values forever */
START_TEST(test_codes_frozen)
{
    ck_assert_int_eq(DLSCHED_OK, 0);
    ck_assert_int_eq(DLSCHED_EINVAL, 1);
    ck_assert_int_eq(DLSCHED_ENOMEM, 2);
    ck_assert_int_eq(DLSCHED_ECONFIG, 3);
    ck_assert_int_eq(DLSCHED_ETICKET, 4);
    ck_assert_int_eq(DLSCHED_ENOACTION, 5);
    ck_assert_int_eq(DLSCHED_EIO, 6);
    ck_assert_int_eq(DLSCHED_EFORMAT, 7);
    ck_assert_int_eq(DLSCHED_EMISMATCH, 8);
    ck_assert_int_eq(DLSCHED_ENODEVICE, 9);
    ck_assert_int_eq(DLSCHED_EBACKEND, 10);
}
END_TEST

static void *other_thread(void *arg)
{
    char *seen = arg;
    /* a fresh thread sees no message of another thread's failure */
    strncpy(seen, dlsched_last_error(), 127);
    dlsched_config *c;
    dlsched_config_new(&c);
    dlsched_config_set(c, "gamma", "7");
    dlsched_config_free(c);
    return NULL;
}

START_TEST(test_last_error_thread_local)
{
    ck_assert_ptr_nonnull(dlsched_last_error());
    dlsched_config *c;
    ck_assert_int_eq(dlsched_config_new(&c), DLSCHED_OK);
    ck_assert_int_eq(dlsched_config_set(c, "lr", "-1"), DLSCHED_ECONFIG);
    char mine[256];
    strncpy(mine, dlsched_last_error(), sizeof mine - 1);
    mine[sizeof mine - 1] = '\0';
    char seen[128] = {0};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, other_thread, seen), 0);
    pthread_join(t, NULL);
    ck_assert_str_eq(seen, "");
    /* the other thread's failure did not overwrite ours */
    ck_assert_str_eq(dlsched_last_error(), mine);
    /* success does not clear it (errno semantics) */
    ck_assert_int_eq(dlsched_config_set(c, "lr", "0.5"), DLSCHED_OK);
    ck_assert_str_eq(dlsched_last_error(), mine);
    dlsched_config_free(c);
}
END_TEST

START_TEST(test_backend_available)
{
    ck_assert_int_eq(dlsched_backend_available("cpu"), 1);
    ck_assert_int_eq(dlsched_backend_available(NULL), 0);
    ck_assert_int_eq(dlsched_backend_available(""), 0);
    ck_assert_int_eq(dlsched_backend_available("tpu"), 0);
    ck_assert_int_eq(dlsched_backend_available("CPU"), 0);
    /* this version has no CUDA backend */
    ck_assert_int_eq(dlsched_backend_available("cuda"), 0);
}
END_TEST

Suite *suite_errors(void)
{
    Suite *s = suite_create("errors");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_strerror);
    tcase_add_test(tc, test_last_error_thread_local);
    tcase_add_test(tc, test_backend_available);
    suite_add_tcase(s, tc);
    TCase *lim = tcase_create("limits");
    tcase_add_test(lim, test_codes_frozen);
    suite_add_tcase(s, lim);
    return s;
}
