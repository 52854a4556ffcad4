/*
 * dlsched-sim - trace-driven inference-cluster simulator (see dlsched-sim(1))
 */
#define _POSIX_C_SOURCE 200809L
#include "sim.h"

#include <dlsched.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* the installed data (scenarios/, traces/): the Makefile's DATADIR */
#ifndef SIM_DATADIR
#define SIM_DATADIR "/usr/local/share/dlsched"
#endif

static void usage(FILE *f)
{
    fputs("usage: dlsched-sim [options] [SCENARIO.scn...]\n"
          "  -p, --policies LIST  comma-separated policies (default: every heuristic with\n"
          "                       every variant, greedy, qtable, dqn); e.g. jsq:small,greedy,dqn\n"
          "  -j, --json FILE      write the results as JSON\n"
          "  -o, --plots DIR      write plot data, gnuplot scripts and PNGs into DIR\n"
          "  -s, --scale F        multiply the warm-up and evaluation lengths by F\n"
          "      --seed N         warm-up seed N, evaluation seed N+1 (default: the file's)\n"
          "  -q, --quiet          no progress on stderr\n"
          "      --online         evaluate the learned policies as in service: tickets,\n"
          "                       learning and the guard's experiment go on (the default\n"
          "                       of scenarios with the KV model; [learning] evaluate)\n"
          "      --frozen         evaluate them with DLSCHED_ACT_GREEDY and the hint: the\n"
          "                       policy the guard settled on, no experiment (the default\n"
          "                       of the others)\n"
          "  -c, --check          read the scenarios, print a summary and exit\n"
          "      --random N       also run N generated scenarios (indexes 0..N-1, after the files)\n"
          "      --random-edge N  also run N generated edge scenarios (after --random's)\n"
          "      --random-seed S  the family of generated scenarios (default 1; --seed\n"
          "                       sets the simulation seeds, not this)\n"
          "      --random-gateway N  also run N generated gateway cases (the KV model;\n"
          "                       indexes 0..N-1 of the family, after the --random ones)\n"
          "      --write-scenarios DIR  write each generated scenario to DIR/NAME.scn\n"
          "      --traces DIR     the shipped traces, for generated trace replays (default:\n"
          "                       $DLSCHED_TOP/data/traces, ./data/traces, else "
          SIM_DATADIR "/traces)\n"
          "  -h, --help, -V, --version\n",
          f);
}

/* where the shipped traces are: --traces, else the source tree's, else the
   installed ones; made absolute so that a written scenario works anywhere */
static void find_traces(const char *given, char *out, size_t len)
{
    char path[SIM_PATH];
    const char *top = getenv("DLSCHED_TOP");
    struct stat st;
    if (given)
        snprintf(path, sizeof path, "%s", given);
    else if (top && *top &&
             (snprintf(path, sizeof path, "%s/data/traces", top), !stat(path, &st)) &&
             S_ISDIR(st.st_mode))
        ;
    else if (!stat("data/traces", &st) && S_ISDIR(st.st_mode))
        snprintf(path, sizeof path, "data/traces");
    else
        snprintf(path, sizeof path, "%s/traces", SIM_DATADIR);
    char *abs = realpath(path, NULL);
    snprintf(out, len, "%s", abs ? abs : path);
    free(abs);
}

/* generated scenario `index`: its text (to write with --write-scenarios),
   parsed; label names it in errors and reports */
static int load_random(uint64_t family, unsigned index, int kind, const char *traces,
                       const char *dir, int check, sim_scenario *sc, sim_err *err)
{
    static char text[SIM_GENERATE_LEN];
    /* kind: 0 --random, 1 --random-edge, 2 --random-gateway */
    if (kind == 1 ? sim_generate_edge(family, index, text, sizeof text, err)
        : kind == 2 ? sim_generate_gateway(family, index, traces, text, sizeof text, err)
                    : sim_generate(family, index, traces, text, sizeof text, err))
        return -1;
    char name[64] = "", label[SIM_PATH];
    const char *n = strstr(text, "\nname = ");
    if (n)
        sscanf(n, "\nname = %63s", name);
    snprintf(label, sizeof label, "random%s:%llu:%u",
             kind == 1 ? "-edge" : kind == 2 ? "-gateway" : "",
             (unsigned long long)family, index);
    if (dir) {
        snprintf(label, sizeof label, "%s/%s.scn", dir, name);
        FILE *f = fopen(label, "w");
        if (!f || fputs(text, f) == EOF || fclose(f)) {
            snprintf(err->msg, sizeof err->msg, "%.400s: %s", label, strerror(errno));
            return -1;
        }
    }
    if (check) {
        const char *s = strstr(text, "# summary: ");
        if (s)
            printf("%s: %.*s\n", label, (int)strcspn(s + 11, "\n"), s + 11);
    }
    return sim_scenario_parse(text, label, sc, err);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"policies", required_argument, 0, 'p'}, {"json", required_argument, 0, 'j'},
        {"plots", required_argument, 0, 'o'},    {"scale", required_argument, 0, 's'},
        {"seed", required_argument, 0, 'S'},     {"quiet", no_argument, 0, 'q'},
        {"check", no_argument, 0, 'c'},          {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},        {"random", required_argument, 0, 'R'},
        {"random-edge", required_argument, 0, 'E'},
        {"random-seed", required_argument, 0, 'F'},
        {"write-scenarios", required_argument, 0, 'W'},
        {"traces", required_argument, 0, 'T'},   {"frozen", no_argument, 0, 'Z'},
        {"online", no_argument, 0, 'N'},         {"random-gateway", required_argument, 0, 'G'},
        {0, 0, 0, 0}};
    const char *write_dir = NULL, *traces_opt = NULL;
    long long n_random = 0, n_edge = 0, n_gateway = 0;
    unsigned long long family = 1;
    const char *policies = NULL, *json = NULL, *plots = NULL;
    double scale = 1;
    long long seed = -1;
    int quiet = 0, check = 0, frozen = -1, c;
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
        case 'R':
            errno = 0;
            n_random = strtoll(optarg, &end, 10);
            if (*end || errno || n_random < 0 || n_random > UINT_MAX) {
                fprintf(stderr, "dlsched-sim: --random: '%s' is not a count\n", optarg);
                return 2;
            }
            break;
        case 'E':
            errno = 0;
            n_edge = strtoll(optarg, &end, 10);
            if (*end || errno || n_edge < 0 || n_edge > UINT_MAX) {
                fprintf(stderr, "dlsched-sim: --random-edge: '%s' is not a count\n", optarg);
                return 2;
            }
            break;
        case 'G':
            errno = 0;
            n_gateway = strtoll(optarg, &end, 10);
            if (*end || errno || n_gateway < 0 || n_gateway > UINT_MAX) {
                fprintf(stderr, "dlsched-sim: --random-gateway: '%s' is not a count\n", optarg);
                return 2;
            }
            break;
        case 'F':
            errno = 0;
            family = strtoull(optarg, &end, 10);
            if (*end || errno || optarg[0] == '-' || !optarg[0]) {
                fprintf(stderr,
                        "dlsched-sim: --random-seed: '%s' is not a non-negative integer\n",
                        optarg);
                return 2;
            }
            break;
        case 'W': write_dir = optarg; break;
        case 'T': traces_opt = optarg; break;
        case 'q': quiet = 1; break;
        case 'Z': frozen = 1; break;
        case 'N': frozen = 0; break;
        case 'c': check = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("dlsched-sim (libdlsched %s)\n", dlsched_version_string()); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind == argc && !n_random && !n_edge && !n_gateway) {
        usage(stderr);
        return 2;
    }
    /* the scenario files, then the generated ones */
    long long n_in = (long long)(argc - optind) + n_random + n_edge + n_gateway;
    char traces[SIM_PATH] = "";
    if (n_random || n_gateway)
        find_traces(traces_opt, traces, sizeof traces);
    if (write_dir) {
        struct stat st;
        if (mkdir(write_dir, 0777) && !(errno == EEXIST && !stat(write_dir, &st) &&
                                        S_ISDIR(st.st_mode))) {
            fprintf(stderr, "dlsched-sim: %s: %s\n", write_dir, strerror(errno));
            return 1;
        }
    }
    FILE *jf = NULL;
    if (json && !check) {
        jf = fopen(json, "w");
        if (!jf) {
            fprintf(stderr, "dlsched-sim: %s: %s\n", json, strerror(errno));
            return 1;
        }
        if (n_in > 1)
            fputs("[\n", jf);
    }
    int status = 0;
    for (long long in = 0; in < n_in && !status; in++) {
        sim_scenario sc;
        sim_err err = {{0}};
        int is_file = in < argc - optind;
        int rc = is_file ? sim_scenario_load(argv[optind + in], &sc, &err)
                 : in - (argc - optind) < n_random
                     ? load_random(family, (unsigned)(in - (argc - optind)), 0, traces, write_dir,
                                   check, &sc, &err)
                 : in - (argc - optind) < n_random + n_edge
                     ? load_random(family, (unsigned)(in - (argc - optind) - n_random), 1, traces,
                                   write_dir, check, &sc, &err)
                     : load_random(family,
                                   (unsigned)(in - (argc - optind) - n_random - n_edge), 2,
                                   traces, write_dir, check, &sc, &err);
        if (rc) {
            fprintf(stderr, "dlsched-sim: %s\n", err.msg);
            status = 2;
            break;
        }
        const char *file = is_file ? argv[optind + in] : sc.path;
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
                fprintf(stderr, "dlsched-sim: %s: %s\n", file, err.msg);
                status = 2;
            }
        if (status) {
            sim_scenario_free(&sc);
            break;
        }
        if (check && sc.is_edge) {
            printf("%s: scenario %s (edge), device %s, %d streams, %d models x %d "
                   "resolutions, %d scenes, %d power modes, thermal %s, %.1f frames/s "
                   "offered (capacity %.1f with the most accurate model), %zu policies\n",
                   file, sc.name, sc.edge.device, sc.edge.n_streams, sc.edge.n_models,
                   sc.edge.n_res, sc.edge.n_scenes, sc.edge.n_modes,
                   sc.edge.thermal ? "on" : "off", sc.rate, sc.capacity, np);
            sim_scenario_free(&sc);
            continue;
        }
        if (check) {
            printf("%s: scenario %s, %d GPU types, %d servers, %d variants, capacity %.2f "
                   "req/s, offered %.2f req/s, %zu policies%s\n",
                   file, sc.name, sc.n_gpu, sc.n_servers, sc.n_var, sc.capacity, sc.rate, np,
                   sc.n_trace ? "" : "");
            if (sc.n_trace)
                printf("  trace %s: %zu requests, speedup %.3g\n", sc.trace_path, sc.n_trace,
                       sc.speedup);
            sim_scenario_free(&sc);
            continue;
        }
        if (!quiet)
            fprintf(stderr, "dlsched-sim: %s: %zu policies, offered %.1f %s/s (capacity %.1f)\n",
                    sc.name, np, sc.rate, sc.is_edge ? "frames" : "req", sc.capacity);
        sim_result *res = calloc(np, sizeof *res);
        /* the evaluation: --online / --frozen, else the scenario's */
        if (frozen >= 0)
            sc.evaluate_online = !frozen;
        sim_options opt = {.quiet = quiet, .progress = isatty(2), .time_decisions = 1,
                           .scale = scale, .frozen = !sc.evaluate_online};
        /* the learned policies' incumbent, once for all of them */
        for (size_t i = 0; i < np && !sc.inc_resolved && !status; i++)
            if (sim_policy_learned(specs[i].kind)) {
                if (sim_resolve_incumbent(&sc, &opt, &err)) {
                    fprintf(stderr, "dlsched-sim: %s: %s\n", file, err.msg);
                    status = 1;
                } else if (!quiet) {
                    fprintf(stderr, "dlsched-sim: %s: incumbent %s%s\n", sc.name, sc.inc_name,
                            strcmp(sc.incumbent, "auto") ? ""
                            : sc.is_edge ? " (the best heuristic on the warm-up drive)"
                                                         : " (best heuristic on a quarter of "
                                                           "the warm-up)");
                }
            }
        size_t done = 0;
        for (; res && !status && done < np; done++)
            if (sim_run_policy(&sc, &specs[done], &opt, &res[done], &err)) {
                fprintf(stderr, "dlsched-sim: %s: %s: %s\n", file, specs[done].name, err.msg);
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
                if (in > 0)
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
        if (n_in > 1)
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
