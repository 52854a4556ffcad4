/* check_rng.c - the per-agent generator against the published xoshiro256** */
#include "core/rng.h"
#include "tests.h"

static dls_rng rng;

static void setup(void)
{
    dls_rng_seed(&rng, 42);
}

/* Reference: xoshiro256** by Blackman and Vigna; with state {1,2,3,4} the
   outputs are 11520, 0, 1509978240, 1215971899390074240. */
START_TEST(test_reference_sequence)
{
    dls_rng r = {{1, 2, 3, 4}};
    ck_assert_uint_eq(dls_rng_next(&r), 11520ULL);
    ck_assert_uint_eq(dls_rng_next(&r), 0ULL);
    ck_assert_uint_eq(dls_rng_next(&r), 1509978240ULL);
    ck_assert_uint_eq(dls_rng_next(&r), 1215971899390074240ULL);
}
END_TEST

START_TEST(test_seeding)
{
    dls_rng a, b, c;
    dls_rng_seed(&a, 7);
    dls_rng_seed(&b, 7);
    dls_rng_seed(&c, 8);
    int same = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = dls_rng_next(&a), y = dls_rng_next(&b), z = dls_rng_next(&c);
        ck_assert_uint_eq(x, y);
        same += x == z;
    }
    ck_assert_int_lt(same, 2);
    /* seed 0 still gives a working (non-zero) state */
    dls_rng_seed(&a, 0);
    ck_assert_uint_ne(a.s[0] | a.s[1] | a.s[2] | a.s[3], 0);
}
END_TEST

/* chi-square of dls_rng_below over 10 cells: well below the 0.1% critical
   value 27.9 for 9 degrees of freedom */
START_TEST(test_below_uniform)
{
    const uint32_t n = 10, draws = 200000;
    uint32_t cnt[10] = {0};
    for (uint32_t i = 0; i < draws; i++) {
        uint32_t v = dls_rng_below(&rng, n);
        ck_assert_uint_lt(v, n);
        cnt[v]++;
    }
    double e = (double)draws / n, chi = 0;
    for (uint32_t i = 0; i < n; i++)
        chi += (cnt[i] - e) * (cnt[i] - e) / e;
    ck_assert_double_lt(chi, 27.9);
    for (int i = 0; i < 1000; i++)
        ck_assert_uint_eq(dls_rng_below(&rng, 1), 0);
    uint64_t big = (1ULL << 40) + 3;
    for (int i = 0; i < 1000; i++)
        ck_assert_uint_lt(dls_rng_below64(&rng, big), big);
}
END_TEST

START_TEST(test_uniform_range_and_mean)
{
    double sum = 0;
    for (int i = 0; i < 100000; i++) {
        double u = dls_rng_uniform(&rng);
        ck_assert(u >= 0.0 && u < 1.0);
        sum += u;
    }
    /* mean 0.5, sd of the mean 0.29/sqrt(1e5) = 0.0009 */
    ck_assert_double_eq_tol(sum / 100000, 0.5, 0.005);
}
END_TEST

Suite *suite_rng(void)
{
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_reference_sequence);
    tcase_add_test(tc, test_seeding);
    tcase_add_test(tc, test_uniform_range_and_mean);
    suite_add_tcase(s, tc);
    TCase *lim = tcase_create("limits");
    tcase_add_checked_fixture(lim, setup, NULL);
    tcase_add_test(lim, test_below_uniform);
    suite_add_tcase(s, lim);
    return s;
}
