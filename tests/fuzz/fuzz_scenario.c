/* fuzz_scenario.c - libFuzzer harness for dlsched-sim's scenario files: any
 * text must parse or give an error naming the file, never crash, hang or
 * leak; a scenario that parses (and is small enough) is simulated with a
 * heuristic and with greedy, and every request must complete exactly once
 * (sim_run_policy reports a run where submitted != completed as an error);
 * with the KV model, the gateway and least-kv too; an edge scenario with its
 * three heuristics.
 * Built by `make fuzz`. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    sim_scenario sc;
    sim_err err = {{0}};
    int rc = sim_scenario_parse(text, "fuzz.scn", &sc, &err);
    free(text);
    if (rc) {
        /* every error names the file */
        if (strncmp(err.msg, "fuzz.scn", 8) != 0)
            abort();
        return 0;
    }
    /* simulate only what stays small: a few hundred requests */
    double expect = sc.rate * sc.eval_s;
    if (sc.process != SIM_ARR_TRACE && sc.process != SIM_ARR_MMPP && expect > 0 && expect < 1e12) {
        sim_options opt = {.quiet = 1, .scale = 300.0 / expect};
        if (opt.scale > 1)
            opt.scale = 1;
        /* with the KV model, its policies too; an edge scenario: its three
           heuristics */
        static const char *const pols[] = {"greedy", "jsq", "lwl", "gateway", "least-kv"};
        static const char *const epols[] = {"deadline", "worst-case", "scene-rules"};
        for (size_t i = 0; i < (sc.kv ? 5u : 3u); i++) {
            sim_policy_spec p;
            char name[64];
            if (sc.is_edge)
                snprintf(name, sizeof name, "%s", epols[i]);
            else
                snprintf(name, sizeof name, "%s%s%s", pols[i], i && sc.n_var > 1 ? ":" : "",
                         i && sc.n_var > 1 ? sc.var[0].name : "");
            if (sim_policy_parse(&sc, name, &p, &err))
                continue; /* e.g. a variant loaded nowhere */
            sim_result res;
            if (sim_run_policy(&sc, &p, &opt, &res, &err) == 0)
                sim_result_free(&res);
            else if (strstr(err.msg, "internal"))
                abort();
        }
    }
    sim_scenario_free(&sc);
    return 0;
}
