/* check_main.c - runs every suite. Environment: DLSCHED_TOP (source tree),
   DLSCHED_SO (the built shared library), set by `make check`. */
#include <stdio.h>

#include "tests.h"

int main(void)
{
    SRunner *sr = srunner_create(suite_config());
    srunner_add_suite(sr, suite_errors());
    srunner_add_suite(sr, suite_rng());
    srunner_add_suite(sr, suite_tickets());
    srunner_add_suite(sr, suite_agent());
    srunner_add_suite(sr, suite_explore());
    srunner_add_suite(sr, suite_qtable());
    srunner_add_suite(sr, suite_replay());
    srunner_add_suite(sr, suite_dqn());
    srunner_add_suite(sr, suite_dqn_learn());
    srunner_add_suite(sr, suite_threads());
    srunner_add_suite(sr, suite_serving());
    srunner_add_suite(sr, suite_checkpoint());
    srunner_add_suite(sr, suite_guard());
    srunner_add_suite(sr, suite_meta());
    srunner_add_suite(sr, suite_cuda());
    srunner_add_suite(sr, suite_blasinfo());
    srunner_add_suite(sr, suite_kernels());
    srunner_add_suite(sr, suite_exchange());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
