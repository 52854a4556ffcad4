/* check_tickets.c - the bounded ticket table, against a plain list model */
#include "core/rng.h"
#include "core/tickets.h"
#include "tests.h"

static dls_tickets t;

static void teardown(void)
{
    dls_tickets_free(&t);
}

START_TEST(test_issue_find_release)
{
    ck_assert_int_eq(dls_tickets_init(&t, 4, 8), 0);
    uint32_t s1, s2;
    uint64_t a = dls_tickets_issue(&t, 3, &s1);
    uint64_t b = dls_tickets_issue(&t, 5, &s2);
    ck_assert_uint_ne(a, 0);
    ck_assert_uint_ne(a, b);
    ck_assert_uint_eq(dls_tickets_find(&t, a), s1);
    ck_assert_uint_eq(dls_tickets_find(&t, b), s2);
    ck_assert_int_eq(dls_tickets_action(&t, s2), 5);
    ck_assert_uint_eq(dls_tickets_pending(&t), 2);
    ck_assert_uint_eq(t.head, s1);
    dls_tickets_release(&t, s1);
    ck_assert_uint_eq(dls_tickets_find(&t, a), DLS_NO_SLOT);
    ck_assert_uint_eq(t.head, s2);
    /* the freed slot is reused with a new ticket; the old one stays unknown */
    uint32_t s3;
    uint64_t c = dls_tickets_issue(&t, 1, &s3);
    ck_assert_uint_eq(s3, s1);
    ck_assert_uint_ne(c, a);
    ck_assert_uint_eq(dls_tickets_find(&t, a), DLS_NO_SLOT);
    ck_assert_uint_eq(dls_tickets_find(&t, 0), DLS_NO_SLOT);
    ck_assert_uint_eq(dls_tickets_find(&t, UINT64_MAX), DLS_NO_SLOT);
}
END_TEST

/* random issue/release against a model: the head is always the oldest
   pending ticket, lookups agree, ids never repeat */
START_TEST(test_against_model)
{
    enum { CAP = 37, OPS = 20000 };
    ck_assert_int_eq(dls_tickets_init(&t, CAP, 4), 0);
    uint64_t model[CAP]; /* pending tickets in issue order */
    uint32_t slot_of[CAP];
    int n = 0;
    uint64_t last = 0;
    dls_rng r;
    dls_rng_seed(&r, 3);
    for (int op = 0; op < OPS; op++) {
        if (n < CAP && (n == 0 || dls_rng_below(&r, 2))) {
            uint32_t s;
            uint64_t id = dls_tickets_issue(&t, op, &s);
            ck_assert_uint_gt(id, last); /* monotonic until the seq wraps */
            last = id;
            model[n] = id;
            slot_of[n++] = s;
        } else {
            int k = (int)dls_rng_below(&r, (uint32_t)n);
            ck_assert_uint_eq(dls_tickets_find(&t, model[k]), slot_of[k]);
            dls_tickets_release(&t, slot_of[k]);
            ck_assert_uint_eq(dls_tickets_find(&t, model[k]), DLS_NO_SLOT);
            memmove(model + k, model + k + 1, (size_t)(n - k - 1) * sizeof model[0]);
            memmove(slot_of + k, slot_of + k + 1, (size_t)(n - k - 1) * sizeof slot_of[0]);
            n--;
        }
        ck_assert_uint_eq(dls_tickets_pending(&t), (uint32_t)n);
        if (n > 0) {
            ck_assert_uint_eq(t.head, slot_of[0]);
            ck_assert_uint_eq(t.tail, slot_of[n - 1]);
        } else {
            ck_assert_uint_eq(t.head, DLS_NO_SLOT);
        }
    }
}
END_TEST

START_TEST(test_capacity_one)
{
    ck_assert_int_eq(dls_tickets_init(&t, 1, 8), 0);
    uint32_t s;
    uint64_t a = dls_tickets_issue(&t, 0, &s);
    ck_assert_uint_eq(t.n_free, 0);
    dls_tickets_release(&t, s);
    uint64_t b = dls_tickets_issue(&t, 0, &s);
    ck_assert_uint_ne(a, b);
    ck_assert_uint_eq(dls_tickets_find(&t, a), DLS_NO_SLOT);
    ck_assert_uint_eq(dls_tickets_find(&t, b), 0);
}
END_TEST

Suite *suite_tickets(void)
{
    Suite *s = suite_create("tickets");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_issue_find_release);
    tcase_add_test(tc, test_against_model);
    suite_add_tcase(s, tc);
    TCase *lim = tcase_create("limits");
    tcase_add_checked_fixture(lim, NULL, teardown);
    tcase_add_test(lim, test_capacity_one);
    suite_add_tcase(s, lim);
    return s;
}
