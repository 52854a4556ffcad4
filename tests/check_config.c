/* check_config.c - the configuration registry: parsing, bounds, messages */
#include <stdio.h>

#include "core/config.h"
#include "tests.h"

static dlsched_config *cfg;

static void setup(void)
{
    ck_assert_int_eq(dlsched_config_new(&cfg), DLSCHED_OK);
}

static void teardown(void)
{
    dlsched_config_free(cfg);
    cfg = NULL;
}

static const char *get(const char *key)
{
    static char buf[256];
    int rc = dlsched_config_get(cfg, key, buf, sizeof buf);
    ck_assert_msg(rc == DLSCHED_OK, "get %s: %s", key, dlsched_last_error());
    return buf;
}

START_TEST(test_defaults)
{
    ck_assert_str_eq(get("algo"), "dqn");
    ck_assert_str_eq(get("device"), "auto");
    ck_assert_str_eq(get("seed"), "1");
    ck_assert_str_eq(get("gamma"), "0.99");
    ck_assert_str_eq(get("lr"), "0.001");
    ck_assert_str_eq(get("explore"), "egreedy");
    ck_assert_str_eq(get("epsilon_start"), "1");
    ck_assert_str_eq(get("temperature"), "1");
    ck_assert_str_eq(get("epsilon_end"), "0.05");
    ck_assert_str_eq(get("epsilon_decay_steps"), "10000");
    ck_assert_str_eq(get("bins"), "8");
    ck_assert_str_eq(get("ticket_capacity"), "65536");
    ck_assert_str_eq(get("default_reward"), "");
    ck_assert_str_eq(get("n_features"), "");
    ck_assert_str_eq(get("max_table_bytes"), "1073741824");
    /* the learning-rate default follows the algorithm */
    ck_assert_int_eq(dlsched_config_set(cfg, "algo", "qtable"), DLSCHED_OK);
    ck_assert_str_eq(get("lr"), "0.1");
    ck_assert_str_eq(get("replay"), "0");
}
END_TEST

START_TEST(test_set_get_canonical)
{
    ck_assert_int_eq(dlsched_config_set(cfg, "lr", "1e-1"), DLSCHED_OK);
    ck_assert_str_eq(get("lr"), "0.1");
    ck_assert_int_eq(dlsched_config_set(cfg, "replay", "1e6"), DLSCHED_OK);
    ck_assert_str_eq(get("replay"), "1000000");
    ck_assert_int_eq(dlsched_config_set(cfg, "n_actions", " 8 "), DLSCHED_OK);
    ck_assert_str_eq(get("n_actions"), "8");
    ck_assert_int_eq(dlsched_config_set(cfg, "bins", "4, 5,6"), DLSCHED_OK);
    ck_assert_str_eq(get("bins"), "4,5,6");
    ck_assert_int_eq(dlsched_config_set(cfg, "feature_low", "-1.5,0,2e3"), DLSCHED_OK);
    ck_assert_str_eq(get("feature_low"), "-1.5,0,2000");
    ck_assert_int_eq(dlsched_config_set(cfg, "default_reward", "-3"), DLSCHED_OK);
    ck_assert_str_eq(get("default_reward"), "-3");
    /* NULL resets to the default, or to unset */
    ck_assert_int_eq(dlsched_config_set(cfg, "default_reward", NULL), DLSCHED_OK);
    ck_assert_str_eq(get("default_reward"), "");
    ck_assert_int_eq(dlsched_config_set(cfg, "lr", NULL), DLSCHED_OK);
    ck_assert_str_eq(get("lr"), "0.001");
}
END_TEST

START_TEST(test_parse)
{
    ck_assert_int_eq(dlsched_config_parse(cfg, "algo=qtable n_features=4\tn_actions=3\n"
                                               "  gamma=0.5 explore=softmax "),
                     DLSCHED_OK);
    ck_assert_str_eq(get("algo"), "qtable");
    ck_assert_str_eq(get("n_features"), "4");
    ck_assert_str_eq(get("n_actions"), "3");
    ck_assert_str_eq(get("gamma"), "0.5");
    ck_assert_str_eq(get("explore"), "softmax");
    ck_assert_int_eq(dlsched_config_parse(cfg, ""), DLSCHED_OK);
    ck_assert_int_eq(dlsched_config_parse(cfg, "   \n"), DLSCHED_OK);
    ck_assert_str_eq(get("gamma"), "0.5");
}
END_TEST

/* the parse is all or nothing */
START_TEST(test_parse_atomic)
{
    ck_assert_int_eq(dlsched_config_parse(cfg, "gamma=0.5"), DLSCHED_OK);
    ck_assert_int_eq(dlsched_config_parse(cfg, "gamma=0.7 lr=0.2 seed=-4 n_actions=2"),
                     DLSCHED_ECONFIG);
    tst_assert_error_has("seed");
    ck_assert_str_eq(get("gamma"), "0.5");
    ck_assert_str_eq(get("lr"), "0.001");
    ck_assert_str_eq(get("n_actions"), "");
    ck_assert_int_eq(dlsched_config_parse(cfg, "gamma=0.7 novalue"), DLSCHED_ECONFIG);
    tst_assert_error_has("novalue");
    ck_assert_int_eq(dlsched_config_parse(cfg, "=3"), DLSCHED_ECONFIG);
    ck_assert_int_eq(dlsched_config_parse(cfg, "gamma="), DLSCHED_ECONFIG);
    tst_assert_error_has("gamma");
    ck_assert_str_eq(get("gamma"), "0.5");
}
END_TEST

/* Every key of the registry: its default is accepted back, its bounds are
   accepted and the values just outside them are rejected with a message
   that names the key, the value and the range. */
START_TEST(test_registry_bounds)
{
    char buf[64], val[64];
    for (int i = 0; i < DLS_N_KEYS; i++) {
        const dls_key_info *k = &dls_keys[i];
        ck_assert_int_eq(dlsched_config_get(cfg, k->name, buf, sizeof buf), DLSCHED_OK);
        if (k->def) {
            ck_assert_msg(dlsched_config_set(cfg, k->name, k->def) == DLSCHED_OK, "%s=%s: %s",
                          k->name, k->def, dlsched_last_error());
        }
        if (k->type == DLS_T_ENUM) {
            ck_assert_int_eq(dlsched_config_set(cfg, k->name, "no-such-choice"),
                             DLSCHED_ECONFIG);
            tst_assert_error_has(k->name);
            tst_assert_error_has("no-such-choice");
            continue;
        }
        int is_int = k->type == DLS_T_INT || k->type == DLS_T_INTLIST;
        if (is_int) {
            snprintf(val, sizeof val, "%.0f", k->min);
            ck_assert_msg(dlsched_config_set(cfg, k->name, val) == DLSCHED_OK, "%s", k->name);
            snprintf(val, sizeof val, "%.0f", k->min - 1);
        } else {
            snprintf(val, sizeof val, "%.17g", k->min);
            ck_assert_msg(dlsched_config_set(cfg, k->name, val) == DLSCHED_OK, "%s=%s: %s",
                          k->name, val, dlsched_last_error());
            snprintf(val, sizeof val, "%.17g", k->min - (fabs(k->min) > 1 ? fabs(k->min) : 1));
        }
        ck_assert_msg(dlsched_config_set(cfg, k->name, val) == DLSCHED_ECONFIG, "%s=%s", k->name,
                      val);
        tst_assert_error_has(k->name);
        tst_assert_error_has("minimum");
        if (k->max < 1e18) {
            if (is_int)
                snprintf(val, sizeof val, "%.0f", k->max + 1);
            else
                snprintf(val, sizeof val, "%.17g", k->max * 2 + 1);
            ck_assert_msg(dlsched_config_set(cfg, k->name, val) == DLSCHED_ECONFIG, "%s=%s",
                          k->name, val);
            tst_assert_error_has("maximum");
            tst_assert_error_has(val);
        }
        dlsched_config_set(cfg, k->name, NULL);
    }
}
END_TEST

/* the ENUM indexes the code uses match the order of the choices */
START_TEST(test_enum_order)
{
    static const struct {
        const char *key, *val;
        enum dls_key_id id;
        int64_t idx;
    } c[] = {
        {"algo", "qtable", DLS_KEY_ALGO, DLS_ALGO_QTABLE},
        {"algo", "dqn", DLS_KEY_ALGO, DLS_ALGO_DQN},
        {"device", "auto", DLS_KEY_DEVICE, DLS_DEVICE_AUTO},
        {"device", "cpu", DLS_KEY_DEVICE, DLS_DEVICE_CPU},
        {"device", "cuda", DLS_KEY_DEVICE, DLS_DEVICE_CUDA},
        {"explore", "egreedy", DLS_KEY_EXPLORE, DLS_EXPLORE_EGREEDY},
        {"explore", "softmax", DLS_KEY_EXPLORE, DLS_EXPLORE_SOFTMAX},
        {"explore", "hint", DLS_KEY_EXPLORE, DLS_EXPLORE_HINT},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        ck_assert_int_eq(dlsched_config_set(cfg, c[i].key, c[i].val), DLSCHED_OK);
        ck_assert_int_eq(dls_config_int(cfg, c[i].id), c[i].idx);
    }
}
END_TEST

START_TEST(test_messages)
{
    ck_assert_int_eq(dlsched_config_set(cfg, "lr", "-1"), DLSCHED_ECONFIG);
    tst_assert_error_has("key 'lr'");
    tst_assert_error_has("-1");
    tst_assert_error_has("below the minimum");
    ck_assert_int_eq(dlsched_config_set(cfg, "gamma", "1.5"), DLSCHED_ECONFIG);
    tst_assert_error_has("gamma");
    tst_assert_error_has("1.5");
    tst_assert_error_has("0 .. 1");
    ck_assert_int_eq(dlsched_config_set(cfg, "lrr", "0.1"), DLSCHED_ECONFIG);
    tst_assert_error_has("unknown key 'lrr'");
    tst_assert_error_has("did you mean 'lr'");
    ck_assert_int_eq(dlsched_config_set(cfg, "bins", "4,0,3"), DLSCHED_ECONFIG);
    tst_assert_error_has("bins");
    tst_assert_error_has("element 1");
}
END_TEST

START_TEST(test_bad_values)
{
    static const char *bad[][2] = {
        {"lr", "nan"},        {"lr", "inf"},          {"lr", "-inf"},  {"lr", "0x1p-3"},
        {"lr", "0.1abc"},     {"lr", ""},             {"lr", "  "},    {"n_actions", "2.5"},
        {"n_actions", "0x10"}, {"n_actions", "8 9"},  {"seed", "1e300"}, {"n_actions", "-1"},
        {"bins", "4,,3"},     {"bins", ","},          {"algo", "QTABLE"}, {"explore", ""},
        {"n_features", "99999999999999999999999"}, {"feature_low", "1e31"},
    };
    ck_assert_int_eq(dlsched_config_set(cfg, "lr", "0.25"), DLSCHED_OK);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = dlsched_config_set(cfg, bad[i][0], bad[i][1]);
        ck_assert_msg(rc == DLSCHED_ECONFIG, "%s='%s' gave %d", bad[i][0], bad[i][1], rc);
        tst_assert_error_has(bad[i][0]);
    }
    ck_assert_str_eq(get("lr"), "0.25");
}
END_TEST

START_TEST(test_null_args)
{
    char buf[8];
    dlsched_config_free(NULL);
    ck_assert_int_eq(dlsched_config_new(NULL), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_config_set(NULL, "lr", "1"), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_config_set(cfg, NULL, "1"), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_config_parse(NULL, "lr=1"), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_config_parse(cfg, NULL), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_config_get(NULL, "lr", buf, sizeof buf), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_config_get(cfg, NULL, buf, sizeof buf), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_config_get(cfg, "lr", NULL, 8), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_config_get(cfg, "nokey", buf, sizeof buf), DLSCHED_ECONFIG);
    /* too small: "0.001" needs 6 bytes */
    ck_assert_int_eq(dlsched_config_get(cfg, "lr", buf, 5), DLSCHED_EINVAL);
    ck_assert_str_eq(buf, "");
    tst_assert_error_has("6");
    ck_assert_int_eq(dlsched_config_get(cfg, "lr", buf, 6), DLSCHED_OK);
    ck_assert_str_eq(buf, "0.001");
    ck_assert_int_eq(dlsched_config_get(cfg, "lr", buf, 0), DLSCHED_EINVAL);
}
END_TEST

/* the config is copied into the agent: later changes do not reach it */
START_TEST(test_agent_copies_config)
{
    ck_assert_int_eq(dlsched_config_parse(cfg, "algo=qtable n_features=1 n_actions=2 "
                                               "explore=egreedy epsilon_start=0 epsilon_end=0"),
                     DLSCHED_OK);
    dlsched_agent *ag = NULL;
    ck_assert_int_eq(dlsched_agent_new(cfg, &ag), DLSCHED_OK);
    ck_assert_int_eq(dlsched_config_set(cfg, "n_actions", "5"), DLSCHED_OK);
    dlsched_config_free(cfg);
    cfg = NULL;
    float q[2];
    float x = 0.5f;
    dlsched_state_t s = tst_state(&x, 1);
    ck_assert_int_eq(dlsched_q_values(ag, &s, q, 2), DLSCHED_OK);
    dlsched_agent_free(ag);
    setup();
}
END_TEST

Suite *suite_config(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_set_get_canonical);
    tcase_add_test(tc, test_parse);
    tcase_add_test(tc, test_enum_order);
    tcase_add_test(tc, test_agent_copies_config);
    suite_add_tcase(s, tc);
    TCase *lim = tcase_create("limits");
    tcase_add_checked_fixture(lim, setup, teardown);
    tcase_add_test(lim, test_parse_atomic);
    tcase_add_test(lim, test_registry_bounds);
    tcase_add_test(lim, test_messages);
    tcase_add_test(lim, test_bad_values);
    tcase_add_test(lim, test_null_args);
    suite_add_tcase(s, lim);
    return s;
}
