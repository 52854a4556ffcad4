/*
 * dlsched-sim - trace-driven inference-cluster simulator (see dlsched-sim(1))
 */
#define _POSIX_C_SOURCE 200809L
#include "sim.h"

#include <dlsched.h>

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fputs("usage: dlsched-sim [options] SCENARIO.scn...\n"
          "  -p, --policies LIST  comma-separated policies (default: every heuristic with\n"
          "                       every variant, greedy, qtable, dqn); e.g. jsq:small,greedy,dqn\n"
          "  -j, --json FILE      write the results as JSON\n"
          "  -o, --plots DIR      write plot data, gnuplot scripts and PNGs into DIR\n"
          "  -s, --scale F        multiply the warm-up and evaluation lengths by F\n"
          "      --seed N         warm-up seed N, evaluation seed N+1 (default: the file's)\n"
          "  -q, --quiet          no progress on stderr\n"
          "  -c, --check          read the scenarios, print a summary and exit\n"
          "  -h, --help, -V, --version\n",
          f);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"policies", required_argument, 0, 'p'}, {"json", required_argument, 0, 'j'},
        {"plots", required_argument, 0, 'o'},    {"scale", required_argument, 0, 's'},
        {"seed", required_argument, 0, 'S'},     {"quiet", no_argument, 0, 'q'},
        {"check", no_argument, 0, 'c'},          {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},        {0, 0, 0, 0}};
    const char *policies = NULL, *json = NULL, *plots = NULL;
    double scale = 1;
    long long seed = -1;
    int quiet = 0, check = 0, c;
    while ((c = getopt_long(argc, argv, "p:j:o:s:qchV", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'p': policies = optarg; break;
        case 'j': json = optarg; break;
        case 'o': plots = optarg; break;
        case 's':
            errno = 0;
            scale = strtod(optarg, &end);
            if (*end || errno || !(scale > 0) || scale > 1e6) {
                fprintf(stderr, "dlsched-sim: --scale: '%s' is not a number in (0, 1e6]\n",
                        optarg);
                return 2;
            }
            break;
        case 'S':
            errno = 0;
            seed = strtoll(optarg, &end, 10);
            if (*end || errno || seed < 0) {
                fprintf(stderr, "dlsched-sim: --seed: '%s' is not a non-negative integer\n",
                        optarg);
                return 2;
            }
            break;
        case 'q': quiet = 1; break;
        case 'c': check = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("dlsched-sim (libdlsched %s)\n", dlsched_version_string()); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind == argc) {
        usage(stderr);
        return 2;
    }
    FILE *jf = NULL;
    if (json && !check) {
        jf = fopen(json, "w");
        if (!jf) {
            fprintf(stderr, "dlsched-sim: %s: %s\n", json, strerror(errno));
            return 1;
        }
        if (argc - optind > 1)
            fputs("[\n", jf);
    }
    int status = 0;
    for (int a = optind; a < argc && !status; a++) {
        sim_scenario sc;
        sim_err err = {{0}};
        if (sim_scenario_load(argv[a], &sc, &err)) {
            fprintf(stderr, "dlsched-sim: %s\n", err.msg);
            status = 2;
            break;
        }
        if (seed >= 0) {
            sc.seed = (uint64_t)seed;
            sc.eval_seed = (uint64_t)seed + 1;
        }
        sim_policy_spec specs[128];
        size_t np = 0;
        if (policies) {
            char *list = strdup(policies), *save = NULL;
            for (char *t = strtok_r(list, ",", &save); t && !status;
                 t = strtok_r(NULL, ",", &save)) {
                if (np == 128 || sim_policy_parse(&sc, t, &specs[np++], &err)) {
                    fprintf(stderr, "dlsched-sim: %s\n", np == 128 ? "too many policies" : err.msg);
                    status = 2;
                }
            }
            free(list);
        } else {
            np = sim_default_policies(&sc, specs, 128);
        }
        if (status) {
            sim_scenario_free(&sc);
            break;
        }
        for (size_t i = 0; check && !status && i < np; i++)
            if (sim_check_learning(&sc, &specs[i], &err)) {
                fprintf(stderr, "dlsched-sim: %s: %s\n", argv[a], err.msg);
                status = 2;
            }
        if (status) {
            sim_scenario_free(&sc);
            break;
        }
        if (check) {
            printf("%s: scenario %s, %d GPU types, %d servers, %d variants, capacity %.2f "
                   "req/s, offered %.2f req/s, %zu policies%s\n",
                   argv[a], sc.name, sc.n_gpu, sc.n_servers, sc.n_var, sc.capacity, sc.rate, np,
                   sc.n_trace ? "" : "");
            if (sc.n_trace)
                printf("  trace %s: %zu requests, speedup %.3g\n", sc.trace_path, sc.n_trace,
                       sc.speedup);
            sim_scenario_free(&sc);
            continue;
        }
        if (!quiet)
            fprintf(stderr, "dlsched-sim: %s: %zu policies, offered %.1f req/s (capacity %.1f)\n",
                    sc.name, np, sc.rate, sc.capacity);
        sim_result *res = calloc(np, sizeof *res);
        sim_options opt = {.quiet = quiet, .progress = isatty(2), .time_decisions = 1,
                           .scale = scale};
        size_t done = 0;
        for (; res && done < np; done++)
            if (sim_run_policy(&sc, &specs[done], &opt, &res[done], &err)) {
                fprintf(stderr, "dlsched-sim: %s: %s: %s\n", argv[a], specs[done].name, err.msg);
                status = 1;
                break;
            }
        if (!res) {
            fprintf(stderr, "dlsched-sim: out of memory\n");
            status = 1;
        }
        if (!status) {
            sim_print_table(stdout, &sc, res, np);
            fflush(stdout);
            if (jf) {
                if (a > optind)
                    fputs(",\n", jf);
                sim_write_json(jf, &sc, res, np);
            }
            if (plots) {
                char msg[2048];
                int pr = sim_write_plots(plots, &sc, res, np, 1, msg, sizeof msg);
                if (pr < 0) {
                    fprintf(stderr, "dlsched-sim: plots: %s\n", msg);
                    status = 1;
                } else {
                    printf("plots: %s\n", msg);
                }
            }
        }
        for (size_t i = 0; i < done; i++)
            sim_result_free(&res[i]);
        free(res);
        sim_scenario_free(&sc);
    }
    if (jf) {
        if (argc - optind > 1)
            fputs("]\n", jf);
        if (fclose(jf) && !status) {
            fprintf(stderr, "dlsched-sim: %s: write error\n", json);
            status = 1;
        }
        if (!status)
            printf("json: %s\n", json);
    }
    return status;
}
