/*
 * report.c - tables, JSON and plots of dlsched-sim(1)
 */
#define _POSIX_C_SOURCE 200809L
#include "sim.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *arrival_name(const sim_scenario *sc)
{
    static const char *const names[] = {"poisson", "mmpp", "diurnal", "trace"};
    return names[sc->process];
}

void sim_print_table(FILE *f, const sim_scenario *sc, const sim_result *r, size_t n)
{
    if (sc->is_edge) {
        sim_edge_print_table(f, sc, r, n);
        return;
    }
    fprintf(f, "\nscenario %s (%s): %d servers, %s arrivals, %.1f req/s offered, capacity %.1f "
            "req/s%s\n", sc->name, sc->path, sc->n_servers, arrival_name(sc), sc->rate,
            sc->capacity, sc->evaluate_online ? "; learned policies evaluated online" : "");
    fprintf(f, "%-16s %8s %9s %9s %9s %7s %9s %9s %6s", "policy", "requests", "p50 ms", "p95 ms",
            "p99 ms", "SLO %", "goodput", "w.goodput", "acc");
    for (int g = 0; g < sc->n_gpu; g++)
        fprintf(f, " %7.7s", sc->gpu[g].name);
    fprintf(f, " %9s\n", "decide ns");
    /* the best heuristic (by weighted goodput) is marked with '*' */
    size_t best = n;
    for (size_t i = 0; i < n; i++)
        if (strncmp(r[i].name, "qtable", 6) && strncmp(r[i].name, "dqn", 3) &&
            (best == n || r[i].weighted_goodput > r[best].weighted_goodput))
            best = i;
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%-15s%c %8llu %9.0f %9.0f %9.0f %7.2f %9.2f %9.2f %6.3f", r[i].name,
                i == best ? '*' : ' ', (unsigned long long)r[i].n, r[i].p50_ms, r[i].p95_ms,
                r[i].p99_ms, 100 * r[i].slo_attainment, r[i].goodput, r[i].weighted_goodput,
                r[i].mean_accuracy);
        for (int g = 0; g < sc->n_gpu; g++)
            fprintf(f, " %6.1f%%", 100 * r[i].util[g]);
        fprintf(f, " %9.0f\n", r[i].decision_ns);
    }
    fprintf(f, "(goodput: SLO-meeting requests/s; w.goodput: the same weighted by the variant's "
            "accuracy; GPU columns: slot utilisation; * best heuristic)\n");
    for (size_t i = 0; i < n && best < n; i++)
        if (!strncmp(r[i].name, "qtable", 6) || !strncmp(r[i].name, "dqn", 3))
            fprintf(f, "%s vs the best heuristic (%s): weighted goodput %+.1f%%, SLO attainment "
                    "%.2f%% vs %.2f%%\n", r[i].name, r[best].name,
                    r[best].weighted_goodput > 0
                        ? 100 * (r[i].weighted_goodput / r[best].weighted_goodput - 1)
                        : 0.0,
                    100 * r[i].slo_attainment, 100 * r[best].slo_attainment);
}

void sim_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

void sim_json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.6g", v);
    else
        fputs("null", f);
}

void sim_json_head_tail(FILE *f, const sim_scenario *sc)
{
    sim_json_num(f, sc->rate);
    fputs(", \"capacity\": ", f);
    sim_json_num(f, sc->capacity);
    if (sc->inc_resolved) {
        fputs(", \"incumbent\": ", f);
        sim_json_str(f, sc->inc_name);
    }
    fprintf(f, ", \"evaluation\": \"%s\"", sc->evaluate_online ? "online" : "frozen");
    if (sc->kv)
        fprintf(f, ", \"restart_s\": %g", sc->restart_s);
    fputs(", \"policies\": [", f);
}

void sim_json_fields(FILE *f, const sim_json_kv *kv, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        fprintf(f, ", \"%s\": ", kv[k].k);
        sim_json_num(f, kv[k].v);
    }
}

void sim_json_guard(FILE *f, const sim_result *r)
{
    static const char *const states[] = {"off", "incumbent", "learned", "fallen_back"};
    fprintf(f, ", \"guard\": {\"state\": \"%s\", \"switches\": %llu, "
               "\"fallbacks\": %llu, \"samples\": %llu, \"advantage\": ",
            states[r->guard_state & 3], (unsigned long long)r->guard_switches,
            (unsigned long long)r->guard_fallbacks, (unsigned long long)r->guard_pairs);
    sim_json_num(f, r->guard_adv);
    fputs(", \"low\": ", f);
    sim_json_num(f, r->guard_lo);
    fputs(", \"high\": ", f);
    sim_json_num(f, r->guard_hi);
    fputs(", \"learned_share\": ", f);
    sim_json_num(f, r->guard_learned_share);
    fputs(", \"eval_learned_share\": ", f);
    sim_json_num(f, r->eval_learned_share);
    fprintf(f, ", \"eval_state\": \"%s\", \"eval_fallbacks\": %llu}",
            states[r->eval_guard_state & 3], (unsigned long long)r->eval_fallbacks);
}

int sim_write_json(FILE *f, const sim_scenario *sc, const sim_result *r, size_t n)
{
    if (sc->is_edge)
        return sim_edge_write_json(f, sc, r, n);
    fputs("{\"scenario\": ", f);
    sim_json_str(f, sc->name);
    fputs(", \"file\": ", f);
    sim_json_str(f, sc->path);
    fprintf(f, ", \"servers\": %d, \"offered_rate\": ", sc->n_servers);
    sim_json_head_tail(f, sc);
    for (size_t i = 0; i < n; i++) {
        fputs(i ? ",\n  {\"name\": " : "\n  {\"name\": ", f);
        sim_json_str(f, r[i].name);
        fprintf(f, ", \"requests\": %llu", (unsigned long long)r[i].n);
        const sim_json_kv kv[] = {{"slo_attainment", r[i].slo_attainment}, {"goodput", r[i].goodput},
                  {"weighted_goodput", r[i].weighted_goodput}, {"p50_ms", r[i].p50_ms},
                  {"p95_ms", r[i].p95_ms}, {"p99_ms", r[i].p99_ms},
                  {"mean_accuracy", r[i].mean_accuracy}, {"decision_ns", r[i].decision_ns},
                  {"train_s", r[i].train_s}, {"ttft_p90_ms", r[i].ttft_p90_ms},
                  {"e2e_p90_ms", r[i].e2e_p90_ms}};
        sim_json_fields(f, kv, sizeof kv / sizeof kv[0]);
        if (r[i].n_learn)
            sim_json_guard(f, &r[i]);
        if (sc->kv) {
            fputs(", \"prefix_hit_rate\": ", f);
            sim_json_num(f, r[i].prefix_hit_rate);
        }
        fputs(", \"utilisation\": {", f);
        for (int g = 0; g < sc->n_gpu; g++) {
            if (g)
                fputs(", ", f);
            sim_json_str(f, sc->gpu[g].name);
            fputs(": ", f);
            sim_json_num(f, r[i].util[g]);
        }
        fputs("}, \"variants\": {", f);
        for (int v = 0; v < sc->n_var; v++)
            fprintf(f, "%s\"%s\": %llu", v ? ", " : "", sc->var[v].name,
                    (unsigned long long)r[i].variant_count[v]);
        fputs("}}", f);
    }
    fputs("\n]}\n", f);
    return ferror(f) ? -1 : 0;
}

/* the learning curve is plotted as a moving average over this many windows */
#define LEARN_SMOOTH 15

/* file-name-safe copy of the scenario name */
void sim_safe_name(const char *in, char *out, size_t cap)
{
    size_t k = 0;
    for (; *in && k + 1 < cap; in++)
        out[k++] = (char)((*in >= 'a' && *in <= 'z') || (*in >= 'A' && *in <= 'Z') ||
                                  (*in >= '0' && *in <= '9') || *in == '-' || *in == '_'
                              ? *in
                              : '_');
    out[k] = 0;
}

/* a plot file for writing; on failure msg names it */
FILE *sim_open_out(const char *path, char *msg, size_t msg_len)
{
    FILE *f = fopen(path, "w");
    if (!f)
        snprintf(msg, msg_len, "%s: %s", path, strerror(errno));
    return f;
}

/* closes it; -1 with msg on a write error */
int sim_close_out(FILE *f, const char *path, char *msg, size_t msg_len)
{
    if (fclose(f) == 0)
        return 0;
    snprintf(msg, msg_len, "%s: write error", path);
    return -1;
}

/* the policies worth plotting: the best heuristic of each kind, greedy and
   the learned ones (all of them would be unreadable) */
static int plotted(const sim_result *r, size_t n, size_t i)
{
    const char *colon = strchr(r[i].name, ':');
    if (!colon)
        return 1;
    size_t bl = (size_t)(colon - r[i].name);
    for (size_t j = 0; j < n; j++)
        if (j != i && !strncmp(r[j].name, r[i].name, bl) && r[j].name[bl] == ':' &&
            r[j].weighted_goodput > r[i].weighted_goodput)
            return 0;
    return 1;
}

int sim_write_plots(const char *dir, const sim_scenario *sc, const sim_result *r, size_t n,
                    int run_gnuplot, char *msg, size_t msg_len)
{
    if (sc->is_edge)
        return sim_edge_write_plots(dir, sc, r, n, run_gnuplot, msg, msg_len);
    char name[80], path[2048];
    sim_safe_name(sc->name, name, sizeof name);
    if (mkdir(dir, 0777) && errno != EEXIST) {
        snprintf(msg, msg_len, "%s: %s", dir, strerror(errno));
        return -1;
    }
    /* data: one block per policy (gnuplot "index") */
    snprintf(path, sizeof path, "%s/%s-slo.dat", dir, name);
    FILE *f = sim_open_out(path, msg, msg_len);
    if (!f)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!plotted(r, n, i))
            continue;
        fprintf(f, "# %s\n", r[i].name);
        for (size_t w = 0; w < r[i].n_windows; w++)
            if (isfinite(r[i].window_attain[w]))
                fprintf(f, "%g %g\n", (double)(w + 0.5) * sc->window_s,
                        100 * r[i].window_attain[w]);
        fputs("\n\n", f);
    }
    if (sim_close_out(f, path, msg, msg_len))
        return -1;
    snprintf(path, sizeof path, "%s/%s-learning.dat", dir, name);
    if (!(f = sim_open_out(path, msg, msg_len)))
        return -1;
    size_t lblocks = 0;
    for (size_t i = 0; i < n; i++) {
        if (!r[i].n_learn)
            continue;
        fprintf(f, "# %s: window_start_s mean_reward slo_attainment_%% "
                "mean_reward_over_the_last_%d_windows\n", r[i].name, LEARN_SMOOTH);
        double sum = 0;
        int cnt = 0;
        for (size_t w = 0; w < r[i].n_learn; w++) {
            if (isfinite(r[i].learn_reward[w]))
                sum += r[i].learn_reward[w], cnt++;
            if (w >= LEARN_SMOOTH && isfinite(r[i].learn_reward[w - LEARN_SMOOTH]))
                sum -= r[i].learn_reward[w - LEARN_SMOOTH], cnt--;
            if (isfinite(r[i].learn_reward[w]))
                fprintf(f, "%g %g %g %g\n", (double)w * sc->window_s, r[i].learn_reward[w],
                        100 * r[i].learn_attain[w], cnt ? sum / cnt : 0.0);
        }
        fputs("\n\n", f);
        lblocks++;
    }
    if (sim_close_out(f, path, msg, msg_len))
        return -1;
    snprintf(path, sizeof path, "%s/%s.gp", dir, name);
    if (!(f = sim_open_out(path, msg, msg_len)))
        return -1;
    fprintf(f, "# gnuplot %s.gp (run in %s)\n", name, dir);
    fprintf(f, "set terminal png size 1000,560\nset key outside right\nset grid\n");
    fprintf(f, "set output '%s-slo.png'\nset title 'SLO attainment over the evaluation "
            "period: %s'\nset xlabel 'time (s)'\nset ylabel 'SLO attainment (%%)'\n"
            "set yrange [0:105]\n", name, sc->name);
    fprintf(f, "plot ");
    size_t b = 0;
    for (size_t i = 0; i < n; i++) {
        if (!plotted(r, n, i))
            continue;
        fprintf(f, "%s'%s-slo.dat' index %zu with lines lw 2 title '%s'", b ? ", \\\n     " : "",
                name, b, r[i].name);
        b++;
    }
    fputs("\n", f);
    if (lblocks) {
        fprintf(f, "set output '%s-learning.png'\nset title 'Learning curve (warm-up, online; "
                "moving average over %g s): %s'\nset ylabel 'mean reward per request'\n"
                "set autoscale y\n", name, LEARN_SMOOTH * sc->window_s, sc->name);
        fprintf(f, "plot ");
        size_t lb = 0;
        for (size_t i = 0; i < n; i++)
            if (r[i].n_learn) {
                fprintf(f, "%s'%s-learning.dat' index %zu using 1:4 with lines lw 2 title '%s'",
                        lb ? ", \\\n     " : "", name, lb, r[i].name);
                lb++;
            }
        fputs("\n", f);
    }
    if (sim_close_out(f, path, msg, msg_len))
        return -1;
    if (!run_gnuplot) {
        snprintf(msg, msg_len, "%s/%s.gp (gnuplot not run)", dir, name);
        return 0;
    }
    int rc = sim_gnuplot(dir, name, msg, msg_len);
    if (rc)
        return rc;
    snprintf(msg, msg_len, "%s/%s-slo.png%s", dir, name, lblocks ? " and -learning.png" : "");
    return 0;
}

int sim_gnuplot(const char *dir, const char *name, char *msg, size_t msg_len)
{
    char path[2048];
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(msg, msg_len, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        if (chdir(dir))
            _exit(126);
        snprintf(path, sizeof path, "%s.gp", name);
        execlp("gnuplot", "gnuplot", path, (char *)NULL);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            snprintf(msg, msg_len, "waitpid: %s", strerror(errno));
            return -1;
        }
    if (!WIFEXITED(status) || WEXITSTATUS(status)) {
        snprintf(msg, msg_len, "gnuplot failed (exit %d)%s; data and script are in %s",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                 WIFEXITED(status) && WEXITSTATUS(status) == 127 ? ": not installed" : "", dir);
        return 1;
    }
    return 0;
}
