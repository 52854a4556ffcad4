/* check_agent.c - the agent's public contract: tickets, counters, bad input */
#include <stdio.h>
#include <time.h>

#include "tests.h"

#define NF 2
#define NA 4
static dlsched_agent *ag;

static void setup(void)
{
    ag = tst_agent("algo=qtable n_features=2 n_actions=4 bins=4 feature_low=0 feature_high=1 "
                   "lr=0.5 gamma=0.9 seed=11 ticket_capacity=8 epsilon_start=0.5 "
                   "epsilon_end=0.5 replay=64");
}

static void teardown(void)
{
    dlsched_agent_free(ag);
    ag = NULL;
}

/* a fingerprint of everything observable: counters and every Q-value */
typedef struct snapshot {
    dlsched_stats_t st;
    float q[16][NA];
} snapshot;

static void take(snapshot *s)
{
    memset(s, 0, sizeof *s);
    s->st = tst_stats(ag);
    for (int i = 0; i < 16; i++) {
        float x[NF] = {(i % 4) * 0.25f + 0.1f, (i / 4) * 0.25f + 0.1f};
        dlsched_state_t st = tst_state(x, NF);
        ck_assert_int_eq(dlsched_q_values(ag, &st, s->q[i], NA), DLSCHED_OK);
    }
}

static void assert_unchanged(const snapshot *before)
{
    snapshot now;
    take(&now);
    ck_assert_mem_eq(&now.st, &before->st, sizeof now.st);
    ck_assert_mem_eq(now.q, before->q, sizeof now.q);
}

static dlsched_decision_t act_at(float a, float b)
{
    float x[NF] = {a, b};
    dlsched_state_t s = tst_state(x, NF);
    dlsched_decision_t d;
    ck_assert_int_eq(dlsched_act(ag, &s, 0, &d), DLSCHED_OK);
    return d;
}

static float q_at(float a, float b, int32_t action)
{
    float x[NF] = {a, b}, q[NA];
    dlsched_state_t s = tst_state(x, NF);
    ck_assert_int_eq(dlsched_q_values(ag, &s, q, NA), DLSCHED_OK);
    return q[action];
}

START_TEST(test_act_observe_basic)
{
    float x[NF] = {0.1f, 0.9f};
    dlsched_state_t s = tst_state(x, NF);
    dlsched_decision_t d;
    ck_assert_int_eq(dlsched_act(ag, &s, 0, &d), DLSCHED_OK);
    ck_assert_uint_ne(d.ticket, 0);
    ck_assert_int_ge(d.action, 0);
    ck_assert_int_lt(d.action, NA);
    ck_assert_uint_eq(d.model_version, 0);
    ck_assert_float_eq(d.value, 0.0f);
    ck_assert(d.probability > 0.0f && d.probability <= 1.0f);
    /* terminal: Q(s,a) = 0 + lr * (r - 0) = 0.5 * 2 */
    ck_assert_int_eq(dlsched_observe(ag, d.ticket, 2.0f, NULL, DLSCHED_OBS_TERMINAL),
                     DLSCHED_OK);
    ck_assert_float_eq_tol(q_at(0.1f, 0.9f, d.action), 1.0f, 1e-7);
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_eq(st.decisions, 1);
    ck_assert_uint_eq(st.tickets_issued, 1);
    ck_assert_uint_eq(st.observed, 1);
    ck_assert_uint_eq(st.tickets_pending, 0);
    ck_assert_uint_eq(st.train_steps, 1);
    ck_assert_uint_eq(st.model_version, 1);
    ck_assert_uint_eq(st.transitions_stored, 1);
    ck_assert_double_eq_tol(st.mean_reward, 2.0, 1e-12);
    ck_assert_double_eq_tol(st.last_loss, 0.5 * 2.0 * 2.0, 1e-9);
    ck_assert_uint_gt(st.memory_bytes, 16 * NA * sizeof(float));
    ck_assert_uint_eq(st.size, sizeof st);
    /* the next decision reports the new model version */
    d = act_at(0.5f, 0.5f);
    ck_assert_uint_eq(d.model_version, 1);
}
END_TEST

START_TEST(test_greedy_keeps_no_ticket)
{
    float x[NF] = {0.3f, 0.3f};
    dlsched_state_t s = tst_state(x, NF);
    dlsched_decision_t d;
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(dlsched_act(ag, &s, DLSCHED_ACT_GREEDY, &d), DLSCHED_OK);
        ck_assert_uint_eq(d.ticket, 0);
        ck_assert_uint_eq(d.flags & DLSCHED_DECISION_EXPLORED, 0);
    }
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_eq(st.decisions, 100);
    ck_assert_uint_eq(st.tickets_issued, 0);
    ck_assert_uint_eq(st.tickets_pending, 0);
    ck_assert_uint_eq(st.explored, 0);
    /* greedy decisions do not advance the epsilon schedule */
    ck_assert_double_eq_tol(st.epsilon, 0.5, 1e-12);
    ck_assert_int_eq(dlsched_observe(ag, 0, 1.0f, NULL, DLSCHED_OBS_TERMINAL), DLSCHED_ETICKET);
}
END_TEST

/* tickets observed out of order, each exactly once */
START_TEST(test_tickets_out_of_order)
{
    dlsched_decision_t d[6];
    for (int i = 0; i < 6; i++)
        d[i] = act_at(0.1f + 0.15f * i, 0.2f);
    static const int order[6] = {4, 0, 5, 2, 1, 3};
    for (int k = 0; k < 6; k++) {
        int i = order[k];
        ck_assert_int_eq(dlsched_observe(ag, d[i].ticket, (float)i, NULL, DLSCHED_OBS_TERMINAL),
                         DLSCHED_OK);
        ck_assert_int_eq(dlsched_observe(ag, d[i].ticket, 1.0f, NULL, DLSCHED_OBS_TERMINAL),
                         DLSCHED_ETICKET);
        tst_assert_error_has("ticket");
    }
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_eq(st.observed, 6);
    ck_assert_uint_eq(st.tickets_pending, 0);
    ck_assert_uint_eq(st.tickets_expired, 0);
    /* a ticket that never existed */
    ck_assert_int_eq(dlsched_observe(ag, 987654321ULL, 1.0f, NULL, DLSCHED_OBS_TERMINAL),
                     DLSCHED_ETICKET);
}
END_TEST

/* capacity 8: the ninth pending ticket expires the oldest; dropped without
   default_reward */
START_TEST(test_expiry_dropped)
{
    dlsched_decision_t d[12];
    for (int i = 0; i < 12; i++)
        d[i] = act_at(0.1f, 0.1f);
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_eq(st.tickets_issued, 12);
    ck_assert_uint_eq(st.tickets_pending, 8);
    ck_assert_uint_eq(st.tickets_expired, 4);
    ck_assert_uint_eq(st.train_steps, 0);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(dlsched_observe(ag, d[i].ticket, 1.0f, NULL, DLSCHED_OBS_TERMINAL),
                         DLSCHED_ETICKET);
    for (int i = 4; i < 12; i++)
        ck_assert_int_eq(dlsched_observe(ag, d[i].ticket, 1.0f, NULL, DLSCHED_OBS_TERMINAL),
                         DLSCHED_OK);
    st = tst_stats(ag);
    ck_assert_uint_eq(st.tickets_issued, st.observed + st.tickets_expired + st.tickets_pending);
}
END_TEST

/* the oldest PENDING ticket expires, not the oldest issued */
START_TEST(test_expiry_oldest_pending)
{
    dlsched_decision_t d[9];
    for (int i = 0; i < 8; i++)
        d[i] = act_at(0.1f, 0.1f);
    ck_assert_int_eq(dlsched_observe(ag, d[0].ticket, 1.0f, NULL, DLSCHED_OBS_TERMINAL),
                     DLSCHED_OK);
    d[8] = act_at(0.1f, 0.1f); /* 8 pending: no expiry */
    ck_assert_uint_eq(tst_stats(ag).tickets_expired, 0);
    act_at(0.1f, 0.1f); /* full: ticket 1 (the oldest pending) expires */
    ck_assert_uint_eq(tst_stats(ag).tickets_expired, 1);
    ck_assert_int_eq(dlsched_observe(ag, d[1].ticket, 1.0f, NULL, DLSCHED_OBS_TERMINAL),
                     DLSCHED_ETICKET);
    ck_assert_int_eq(dlsched_observe(ag, d[2].ticket, 1.0f, NULL, DLSCHED_OBS_TERMINAL),
                     DLSCHED_OK);
}
END_TEST

/* with default_reward, an expired ticket is learned as a terminal transition */
START_TEST(test_expiry_default_reward)
{
    dlsched_agent_free(ag);
    ag = tst_agent("algo=qtable n_features=2 n_actions=4 bins=4 lr=0.5 ticket_capacity=1 "
                   "default_reward=-4 epsilon_start=0 epsilon_end=0 seed=5");
    dlsched_decision_t first = act_at(0.1f, 0.1f);
    ck_assert_float_eq(q_at(0.1f, 0.1f, first.action), 0.0f);
    act_at(0.9f, 0.9f); /* expires the first */
    /* Q = 0 + 0.5 * (-4 - 0) */
    ck_assert_float_eq_tol(q_at(0.1f, 0.1f, first.action), -2.0f, 1e-7);
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_eq(st.tickets_expired, 1);
    ck_assert_uint_eq(st.train_steps, 1);
    ck_assert_int_eq(dlsched_observe(ag, first.ticket, 1.0f, NULL, DLSCHED_OBS_TERMINAL),
                     DLSCHED_ETICKET);
}
END_TEST

typedef struct bad_case {
    dlsched_state_t st;
    int code;
    const char *needle;
} bad_case;

/* Every bad input: its code, a message naming the culprit, nothing changed,
   and the ticket still observable afterwards. */
START_TEST(test_bad_input_changes_nothing)
{
    dlsched_decision_t d0 = act_at(0.2f, 0.2f);
    ck_assert_int_eq(dlsched_observe(ag, d0.ticket, 1.0f, NULL, DLSCHED_OBS_TERMINAL),
                     DLSCHED_OK);
    dlsched_decision_t pend = act_at(0.6f, 0.6f);
    snapshot before;
    take(&before);

    float good[NF] = {0.5f, 0.5f}, nanx[NF] = {0.5f, NAN}, infx[NF] = {-INFINITY, 0.5f};
    uint8_t none[NA] = {0, 0, 0, 0}, m01[NA] = {1, 1, 0, 0};
    dlsched_state_t s = tst_state(good, NF), bad;
    dlsched_decision_t d;
    memset(&d, 0x5a, sizeof d);
    dlsched_decision_t untouched = d;
    float q[NA];

    bad_case cases[12];
    int n = 0;
    bad = tst_state(nanx, NF);
    cases[n++] = (bad_case){bad, DLSCHED_EINVAL, "feature 1 is NaN"};
    bad = tst_state(infx, NF);
    cases[n++] = (bad_case){bad, DLSCHED_EINVAL, "feature 0 is -Inf"};
    bad = tst_state(good, 3);
    cases[n++] = (bad_case){bad, DLSCHED_EINVAL, "n_features is 3"};
    bad = tst_state(NULL, NF);
    cases[n++] = (bad_case){bad, DLSCHED_EINVAL, "features is NULL"};
    bad = s;
    bad.reserved = 1;
    cases[n++] = (bad_case){bad, DLSCHED_EINVAL, "reserved"};
    bad = s;
    bad.n_mask = 3;
    bad.mask = m01;
    cases[n++] = (bad_case){bad, DLSCHED_EINVAL, "n_mask is 3"};
    bad = s;
    bad.n_mask = NA;
    cases[n++] = (bad_case){bad, DLSCHED_EINVAL, "mask is NULL"};
    bad = s;
    bad.mask = m01;
    cases[n++] = (bad_case){bad, DLSCHED_EINVAL, "n_mask is 0"};
    bad = s;
    bad.n_mask = NA;
    bad.mask = none;
    cases[n++] = (bad_case){bad, DLSCHED_ENOACTION, "allows no action"};
    bad = s;
    bad.hint = NA;
    cases[n++] = (bad_case){bad, DLSCHED_EINVAL, "hint 4"};
    bad = s;
    bad.hint = -2;
    cases[n++] = (bad_case){bad, DLSCHED_EINVAL, "hint -2"};
    bad = s;
    bad.n_mask = NA;
    bad.mask = m01;
    bad.hint = 3;
    cases[n++] = (bad_case){bad, DLSCHED_EINVAL, "hint 3 is masked out"};

    for (int i = 0; i < n; i++) {
        /* act */
        ck_assert_int_eq(dlsched_act(ag, &cases[i].st, 0, &d), cases[i].code);
        tst_assert_error_has(cases[i].needle);
        tst_assert_error_has("state");
        ck_assert_mem_eq(&d, &untouched, sizeof d);
        /* observe with it as the next state (ENOACTION applies only when the
           episode goes on) */
        ck_assert_int_eq(dlsched_observe(ag, pend.ticket, 1.0f, &cases[i].st, 0), cases[i].code);
        tst_assert_error_has(cases[i].needle);
        tst_assert_error_has("next");
        ck_assert_int_eq(dlsched_observe_transition(ag, &cases[i].st, 0, 1.0f, &s, 0),
                         cases[i].code);
        ck_assert_int_eq(dlsched_observe_transition(ag, &s, 0, 1.0f, &cases[i].st, 0),
                         cases[i].code);
        if (cases[i].code == DLSCHED_EINVAL) {
            ck_assert_int_eq(dlsched_q_values(ag, &cases[i].st, q, NA), DLSCHED_EINVAL);
            ck_assert_int_eq(dlsched_observe(ag, pend.ticket, 1.0f, &cases[i].st,
                                             DLSCHED_OBS_TERMINAL),
                             DLSCHED_EINVAL);
        }
        assert_unchanged(&before);
    }

    /* rewards, flags, NULLs, actions */
    ck_assert_int_eq(dlsched_observe(ag, pend.ticket, NAN, &s, 0), DLSCHED_EINVAL);
    tst_assert_error_has("reward is NaN");
    ck_assert_int_eq(dlsched_observe(ag, pend.ticket, INFINITY, &s, 0), DLSCHED_EINVAL);
    tst_assert_error_has("reward is +Inf");
    ck_assert_int_eq(dlsched_observe(ag, pend.ticket, 1.0f, NULL, 0), DLSCHED_EINVAL);
    tst_assert_error_has("next is NULL");
    ck_assert_int_eq(dlsched_observe(ag, pend.ticket, 1.0f, NULL, DLSCHED_OBS_TRUNCATED),
                     DLSCHED_EINVAL);
    /* both flags together: accepted (terminated wins), but not with 4u */
    ck_assert_int_eq(dlsched_observe(ag, pend.ticket, 1.0f, &s,
                                     DLSCHED_OBS_TERMINAL | DLSCHED_OBS_TRUNCATED | 4u),
                     DLSCHED_EINVAL);
    tst_assert_error_has("0x7");
    ck_assert_int_eq(dlsched_observe(ag, pend.ticket, 1.0f, &s, 4u), DLSCHED_EINVAL);
    tst_assert_error_has("0x4");
    ck_assert_int_eq(dlsched_observe(NULL, pend.ticket, 1.0f, &s, 0), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_act(ag, &s, 2u, &d), DLSCHED_EINVAL);
    tst_assert_error_has("flags");
    ck_assert_int_eq(dlsched_act(ag, NULL, 0, &d), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_act(ag, &s, 0, NULL), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_act(NULL, &s, 0, &d), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_observe_transition(ag, &s, NA, 1.0f, &s, 0), DLSCHED_EINVAL);
    tst_assert_error_has("action 4");
    ck_assert_int_eq(dlsched_observe_transition(ag, &s, -1, 1.0f, &s, 0), DLSCHED_EINVAL);
    dlsched_state_t sm = s;
    sm.n_mask = NA;
    sm.mask = m01;
    ck_assert_int_eq(dlsched_observe_transition(ag, &sm, 2, 1.0f, &s, 0), DLSCHED_EINVAL);
    tst_assert_error_has("masked");
    ck_assert_int_eq(dlsched_observe_transition(ag, NULL, 0, 1.0f, &s, 0), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_observe_transition(ag, &s, 0, NAN, &s, 0), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_q_values(ag, &s, q, NA + 1), DLSCHED_EINVAL);
    tst_assert_error_has("n_actions=4");
    ck_assert_int_eq(dlsched_q_values(ag, &s, NULL, NA), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_q_values(NULL, &s, q, NA), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_train(NULL, 1), DLSCHED_EINVAL);
    dlsched_stats_t st;
    ck_assert_int_eq(dlsched_stats(ag, NULL, sizeof st), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_stats(ag, &st, 2), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_stats(NULL, &st, sizeof st), DLSCHED_EINVAL);
    assert_unchanged(&before);

    /* after all that, the pending ticket is still observable, once */
    ck_assert_int_eq(dlsched_observe(ag, pend.ticket, 1.0f, &s, 0), DLSCHED_OK);
    ck_assert_int_eq(dlsched_observe(ag, pend.ticket, 1.0f, &s, 0), DLSCHED_ETICKET);
}
END_TEST

/* a terminal observe may pass a next state with an empty mask */
START_TEST(test_terminal_next_mask_empty_ok)
{
    dlsched_decision_t d = act_at(0.2f, 0.2f);
    float x[NF] = {0.5f, 0.5f};
    uint8_t none[NA] = {0};
    dlsched_state_t n = tst_state(x, NF);
    n.n_mask = NA;
    n.mask = none;
    ck_assert_int_eq(dlsched_observe(ag, d.ticket, 1.0f, &n, DLSCHED_OBS_TERMINAL), DLSCHED_OK);
}
END_TEST

START_TEST(test_stats_size_prefix)
{
    act_at(0.1f, 0.1f);
    /* an older caller that knows only the first three members */
    struct {
        dlsched_stats_t st;
        unsigned char guard[16];
    } buf;
    memset(&buf, 0xee, sizeof buf);
    size_t small = offsetof(dlsched_stats_t, explored);
    ck_assert_int_eq(dlsched_stats(ag, &buf.st, small), DLSCHED_OK);
    ck_assert_uint_eq(buf.st.size, small);
    ck_assert_uint_eq(buf.st.decisions, 1);
    const unsigned char *p = (const unsigned char *)&buf.st;
    for (size_t i = small; i < sizeof buf; i++)
        ck_assert_uint_eq(p[i], 0xee);
    /* a newer caller with a larger struct: only our size is filled */
    memset(&buf, 0xee, sizeof buf);
    ck_assert_int_eq(dlsched_stats(ag, &buf.st, sizeof buf), DLSCHED_OK);
    ck_assert_uint_eq(buf.st.size, sizeof(dlsched_stats_t));
    for (size_t i = 0; i < sizeof buf.guard; i++)
        ck_assert_uint_eq(buf.guard[i], 0xee);
    ck_assert_int_eq(dlsched_stats(ag, &buf.st, sizeof(uint32_t)), DLSCHED_OK);
    ck_assert_uint_eq(buf.st.size, sizeof(uint32_t));
}
END_TEST

START_TEST(test_q_values_masked)
{
    float x[NF] = {0.5f, 0.5f}, q[NA];
    uint8_t m[NA] = {1, 0, 1, 0};
    dlsched_state_t s = tst_state(x, NF);
    s.n_mask = NA;
    s.mask = m;
    ck_assert_int_eq(dlsched_q_values(ag, &s, q, NA), DLSCHED_OK);
    ck_assert_float_eq(q[0], 0.0f);
    ck_assert(isinf(q[1]) && q[1] < 0);
    ck_assert_float_eq(q[2], 0.0f);
    ck_assert(isinf(q[3]) && q[3] < 0);
}
END_TEST

START_TEST(test_mean_reward_running)
{
    /* exact mean over the first rewards: 1, 2, ..., 10 -> 5.5 */
    for (int i = 1; i <= 10; i++) {
        dlsched_decision_t d = act_at(0.3f, 0.3f);
        ck_assert_int_eq(dlsched_observe(ag, d.ticket, (float)i, NULL, DLSCHED_OBS_TERMINAL),
                         DLSCHED_OK);
    }
    ck_assert_double_eq_tol(tst_stats(ag).mean_reward, 5.5, 1e-9);
}
END_TEST

START_TEST(test_agent_new_limits)
{
    dlsched_agent *a = NULL;
    dlsched_config *c;
    ck_assert_int_eq(dlsched_agent_new(NULL, &a), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_config_new(&c), DLSCHED_OK);
    ck_assert_int_eq(dlsched_agent_new(c, NULL), DLSCHED_EINVAL);
    ck_assert_int_eq(dlsched_agent_new(c, &a), DLSCHED_ECONFIG);
    tst_assert_error_has("n_features");
    ck_assert_ptr_null(a);
    ck_assert_int_eq(dlsched_config_parse(c, "algo=qtable n_features=2"), DLSCHED_OK);
    ck_assert_int_eq(dlsched_agent_new(c, &a), DLSCHED_ECONFIG);
    tst_assert_error_has("n_actions");
    dlsched_config_free(c);
    ck_assert_int_eq(tst_agent_rc("algo=dqn n_features=2 n_actions=2 replay=0"),
                     DLSCHED_ECONFIG);
    tst_assert_error_has("replay");
    ck_assert_int_eq(tst_agent_rc("algo=dqn n_features=2 n_actions=2 learner=thread "
                                  "cpu_threads=2"),
                     DLSCHED_ECONFIG);
    tst_assert_error_has("cpu_threads");
    ck_assert_int_eq(tst_agent_rc("algo=dqn n_features=2 n_actions=2 target_update=2.5"),
                     DLSCHED_ECONFIG);
    tst_assert_error_has("target_update");
    ck_assert_int_eq(tst_agent_rc("algo=qtable n_features=2 n_actions=2 replay=100000000 "
                                  "max_replay_bytes=1000000"),
                     DLSCHED_ECONFIG);
    tst_assert_error_has("max_replay_bytes");
    dlsched_agent_free(NULL);
}
END_TEST

START_TEST(test_train)
{
    ck_assert_int_eq(dlsched_train(ag, 10), DLSCHED_OK); /* empty buffer */
    ck_assert_uint_eq(tst_stats(ag).train_steps, 0);
    dlsched_decision_t d = act_at(0.1f, 0.1f);
    ck_assert_int_eq(dlsched_observe(ag, d.ticket, 1.0f, NULL, DLSCHED_OBS_TERMINAL),
                     DLSCHED_OK);
    ck_assert_int_eq(dlsched_train(ag, 0), DLSCHED_OK);
    ck_assert_int_eq(dlsched_train(ag, 1000), DLSCHED_OK);
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_eq(st.train_steps, 1001);
    /* 1001 updates of Q toward 1 with lr 0.5 */
    ck_assert_float_eq_tol(q_at(0.1f, 0.1f, d.action), 1.0f, 1e-6);
    dlsched_agent *b = tst_agent("algo=qtable n_features=1 n_actions=2");
    ck_assert_int_eq(dlsched_train(b, 1), DLSCHED_ECONFIG);
    tst_assert_error_has("replay");
    dlsched_agent_free(b);
}
END_TEST

/* a ticket past ticket_timeout_ms is expired when it is observed, even if
   no other call expired it first */
START_TEST(test_timeout_on_own_observe)
{
    dlsched_agent_free(ag);
    ag = tst_agent("algo=qtable n_features=2 n_actions=4 bins=4 lr=0.5 ticket_timeout_ms=20 "
                   "default_reward=-4 epsilon_start=0 epsilon_end=0 seed=5");
    dlsched_decision_t d = act_at(0.1f, 0.1f);
    struct timespec ts = {0, 60 * 1000000L};
    nanosleep(&ts, NULL);
    ck_assert_int_eq(dlsched_observe(ag, d.ticket, 1.0f, NULL, DLSCHED_OBS_TERMINAL),
                     DLSCHED_ETICKET);
    tst_assert_error_has("ticket_timeout_ms");
    dlsched_stats_t st = tst_stats(ag);
    ck_assert_uint_eq(st.tickets_expired, 1);
    ck_assert_uint_eq(st.tickets_timed_out, 1);
    ck_assert_uint_eq(st.observed, 0);
    ck_assert_uint_eq(st.tickets_pending, 0);
    /* learned as terminal with default_reward: 0 + 0.5 * (-4 - 0) */
    ck_assert_float_eq_tol(q_at(0.1f, 0.1f, d.action), -2.0f, 1e-7);
}
END_TEST

Suite *suite_agent(void)
{
    Suite *s = suite_create("agent");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_act_observe_basic);
    tcase_add_test(tc, test_greedy_keeps_no_ticket);
    tcase_add_test(tc, test_tickets_out_of_order);
    tcase_add_test(tc, test_expiry_dropped);
    tcase_add_test(tc, test_expiry_oldest_pending);
    tcase_add_test(tc, test_expiry_default_reward);
    tcase_add_test(tc, test_timeout_on_own_observe);
    tcase_add_test(tc, test_stats_size_prefix);
    tcase_add_test(tc, test_q_values_masked);
    tcase_add_test(tc, test_mean_reward_running);
    tcase_add_test(tc, test_train);
    suite_add_tcase(s, tc);
    TCase *lim = tcase_create("limits");
    tcase_add_checked_fixture(lim, setup, teardown);
    tcase_add_test(lim, test_bad_input_changes_nothing);
    tcase_add_test(lim, test_terminal_next_mask_empty_ok);
    tcase_add_test(lim, test_agent_new_limits);
    suite_add_tcase(s, lim);
    return s;
}
