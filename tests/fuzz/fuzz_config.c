/* fuzz_config.c - libFuzzer harness for dlsched_config_parse and agent
 * creation: any input must give DLSCHED_OK or a documented error code,
 * never a crash, a hang or a leak. Built by `make fuzz`. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dlsched.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *spec = malloc(size + 1);
    if (!spec)
        return 0;
    memcpy(spec, data, size);
    spec[size] = '\0';
    dlsched_config *cfg;
    if (dlsched_config_new(&cfg) != DLSCHED_OK) {
        free(spec);
        return 0;
    }
    int rc = dlsched_config_parse(cfg, spec);
    if (rc != DLSCHED_OK && rc != DLSCHED_ECONFIG && rc != DLSCHED_ENOMEM)
        abort();
    if (rc == DLSCHED_OK) {
        /* keep agents small: the fuzzer explores parsing, not allocation */
        dlsched_config_set(cfg, "max_table_bytes", "1000000");
        dlsched_config_set(cfg, "max_replay_bytes", "1000000");
        char buf[64];
        if (dlsched_config_get(cfg, "hidden", buf, sizeof buf) == DLSCHED_OK &&
            strlen(buf) > 12)
            dlsched_config_set(cfg, "hidden", "8");
        dlsched_config_set(cfg, "ticket_capacity", "64");
        dlsched_config_set(cfg, "learner", "inline");
        dlsched_agent *ag = NULL;
        rc = dlsched_agent_new(cfg, &ag);
        if (rc == DLSCHED_OK) {
            float x[4] = {0.1f, 0.2f, 0.3f, 0.4f};
            char nf[32];
            dlsched_config_get(cfg, "n_features", nf, sizeof nf);
            if (atoi(nf) <= 4) {
                dlsched_state_t s = {x, (uint32_t)atoi(nf), 0, NULL, -1, 0};
                dlsched_decision_t d;
                if (dlsched_act(ag, &s, 0, &d) == DLSCHED_OK)
                    dlsched_observe(ag, d.ticket, 1.0f, &s, 0);
            }
            dlsched_agent_free(ag);
        }
    }
    dlsched_config_free(cfg);
    free(spec);
    return 0;
}
