/* quickstart.c - the smallest complete libdlsched host: pick one of three
 * replicas from two load features, report the reward, read what it learned.
 *
 *   cc quickstart.c $(pkg-config --cflags --libs dlsched) -o quickstart
 */
#include <dlsched.h>
#include <stdio.h>

#define CHECK(call)                                                              \
    do {                                                                         \
        int rc_ = (call);                                                        \
        if (rc_ != DLSCHED_OK) {                                                 \
            fprintf(stderr, "%s: %s: %s\n", #call, dlsched_strerror(rc_),        \
                    dlsched_last_error());                                       \
            return 1;                                                            \
        }                                                                        \
    } while (0)

int main(void)
{
    dlsched_config *cfg;
    dlsched_agent *agent;
    CHECK(dlsched_config_new(&cfg));
    CHECK(dlsched_config_parse(cfg, "algo=qtable n_features=2 n_actions=3 bins=4 "
                                    "epsilon_decay_steps=2000 seed=7"));
    CHECK(dlsched_agent_new(cfg, &agent));
    dlsched_config_free(cfg);

    /* The world: replica 2 is best when feature 0 (say, GPU load) is low,
       replica 0 otherwise. Rewards arrive later through the ticket. */
    unsigned lcg = 1;
    for (int i = 0; i < 20000; i++) {
        lcg = lcg * 1103515245u + 12345u;
        float x[2] = {(float)((lcg >> 16) % 1000) / 1000.0f, 0.5f};
        dlsched_state_t s = {x, 2, 0, NULL, -1, 0};
        dlsched_decision_t d;
        CHECK(dlsched_act(agent, &s, 0, &d));
        int best = x[0] < 0.5f ? 2 : 0;
        float reward = d.action == best ? 1.0f : 0.0f;
        CHECK(dlsched_observe(agent, d.ticket, reward, NULL, DLSCHED_OBS_TERMINAL));
    }

    int correct = 0;
    for (int i = 0; i < 100; i++) {
        float x[2] = {(float)i / 100.0f + 0.005f, 0.5f};
        dlsched_state_t s = {x, 2, 0, NULL, -1, 0};
        dlsched_decision_t d;
        CHECK(dlsched_act(agent, &s, DLSCHED_ACT_GREEDY, &d));
        correct += d.action == (x[0] < 0.5f ? 2 : 0);
    }
    dlsched_stats_t st;
    CHECK(dlsched_stats(agent, &st, sizeof st));
    printf("libdlsched %s: %d/100 greedy decisions pick the best replica "
           "(%llu decisions, %llu observed, mean reward %.3f)\n",
           dlsched_version_string(), correct, (unsigned long long)st.decisions,
           (unsigned long long)st.observed, st.mean_reward);
    dlsched_agent_free(agent);
    return correct >= 95 ? 0 : 1;
}
