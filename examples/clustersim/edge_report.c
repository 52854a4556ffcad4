/*
 * edge_report.c - dlsched-sim's table, JSON and drive plot for an edge
 * scenario (the JSON keeps the cluster scenarios' per-policy keys
 * weighted_goodput and slo_attainment, so one checker serves both)
 */
#define _POSIX_C_SOURCE 200809L
#include "sim.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int is_learned_name(const char *n)
{
    return !strncmp(n, "qtable", 6) || !strncmp(n, "dqn", 3);
}

void sim_edge_print_table(FILE *f, const sim_scenario *sc, const sim_result *r, size_t n)
{
    const sim_edge *e = &sc->edge;
    fprintf(f, "\nscenario %s (%s): edge, device %s, %d streams, %.1f frames/s, %d scenes, "
            "%d power modes, thermal %s\n", sc->name, sc->path, e->device, e->n_streams,
            sc->rate, e->n_scenes, e->n_modes, e->thermal ? "on" : "off");
    fprintf(f, "%-13s %8s %8s %7s %7s %7s %8s %9s %6s %7s %6s %6s %7s %9s\n", "policy", "frames",
            "on time%", "late%", "drop%", "skip%", "s.miss%", "w.goodput", "acc", "reward",
            "watts", "thr%", "p99 ms", "decide ns");
    size_t best = n, inc = n;
    for (size_t i = 0; i < n; i++) {
        if (!is_learned_name(r[i].name) &&
            (best == n || r[i].weighted_goodput > r[best].weighted_goodput))
            best = i;
        if (sc->inc_resolved && !strcmp(r[i].name, sc->inc_name))
            inc = i;
    }
    for (size_t i = 0; i < n; i++) {
        double fr = r[i].n ? (double)r[i].n : 1;
        fprintf(f, "%-12s%c %8llu %8.2f %7.2f %7.2f %7.2f %8.2f %9.2f %6.3f %7.3f %6.2f %6.1f "
                "%7.1f %9.0f\n", r[i].name, i == best ? '*' : ' ', (unsigned long long)r[i].n,
                100 * r[i].slo_attainment, 100 * (double)r[i].late / fr,
                100 * (double)r[i].dropped / fr, 100 * (double)r[i].skipped / fr,
                100 * r[i].safety_misses, r[i].weighted_goodput, r[i].mean_accuracy,
                r[i].mean_reward, r[i].power_w, 100 * r[i].throttled_share, r[i].p99_ms,
                r[i].decision_ns);
    }
    fprintf(f, "(w.goodput: accuracy x safety weight of the frames on time, per second; s.miss: "
            "safety-weighted share of frames late, dropped or skipped; thr: time throttled; "
            "* best heuristic)\n");
    for (size_t i = 0; i < n; i++) {
        if (!is_learned_name(r[i].name))
            continue;
        if (best < n)
            fprintf(f, "%s vs the best heuristic (%s): weighted goodput %+.1f%%", r[i].name,
                    r[best].name,
                    r[best].weighted_goodput > 0
                        ? 100 * (r[i].weighted_goodput / r[best].weighted_goodput - 1)
                        : 0.0);
        if (inc < n)
            fprintf(f, "; vs the incumbent (%s): %+.1f%%, safety-weighted misses %.2f%% vs "
                    "%.2f%%", r[inc].name,
                    r[inc].weighted_goodput > 0
                        ? 100 * (r[i].weighted_goodput / r[inc].weighted_goodput - 1)
                        : 0.0,
                    100 * r[i].safety_misses, 100 * r[inc].safety_misses);
        fputc('\n', f);
    }
}

int sim_edge_write_json(FILE *f, const sim_scenario *sc, const sim_result *r, size_t n)
{
    const sim_edge *e = &sc->edge;
    fputs("{\"scenario\": ", f);
    sim_json_str(f, sc->name);
    fputs(", \"file\": ", f);
    sim_json_str(f, sc->path);
    fputs(", \"workload\": \"edge\", \"device\": ", f);
    sim_json_str(f, e->device);
    fprintf(f, ", \"streams\": %d, \"scenes\": %d, \"power_modes\": %d, \"thermal\": %s, "
            "\"offered_rate\": ", e->n_streams, e->n_scenes, e->n_modes,
            e->thermal ? "true" : "false");
    sim_json_head_tail(f, sc);
    for (size_t i = 0; i < n; i++) {
        fputs(i ? ",\n  {\"name\": " : "\n  {\"name\": ", f);
        sim_json_str(f, r[i].name);
        fprintf(f, ", \"requests\": %llu, \"frames\": %llu, \"late\": %llu, \"dropped\": %llu, "
                "\"skipped\": %llu", (unsigned long long)r[i].n, (unsigned long long)r[i].n,
                (unsigned long long)r[i].late, (unsigned long long)r[i].dropped,
                (unsigned long long)r[i].skipped);
        const sim_json_kv kv[] = {{"slo_attainment", r[i].slo_attainment},
                  {"goodput", r[i].goodput},
                  {"weighted_goodput", r[i].weighted_goodput},
                  {"safety_misses", r[i].safety_misses},
                  {"mean_accuracy", r[i].mean_accuracy},
                  {"mean_reward", r[i].mean_reward},
                  {"power_w", r[i].power_w},
                  {"throttled_share", r[i].throttled_share},
                  {"utilisation", r[i].util[0]},
                  {"p50_ms", r[i].p50_ms},
                  {"p95_ms", r[i].p95_ms},
                  {"p99_ms", r[i].p99_ms},
                  {"decision_ns", r[i].decision_ns},
                  {"train_s", r[i].train_s}};
        sim_json_fields(f, kv, sizeof kv / sizeof kv[0]);
        if (r[i].n_learn)
            sim_json_guard(f, &r[i]);
        fputs(", \"actions\": {", f);
        int first = 1;
        for (int a = 0; a < e->n_models * e->n_res + 1; a++) {
            char name[64];
            if (!r[i].action_count[a])
                continue;
            fprintf(f, "%s\"%s\": %llu", first ? "" : ", ",
                    sim_edge_action_name(sc, a, name, sizeof name),
                    (unsigned long long)r[i].action_count[a]);
            first = 0;
        }
        fputs("}}", f);
    }
    fputs("\n]}\n", f);
    return ferror(f) ? -1 : 0;
}

/* the temperature and model panels show the deadline greedy, the
   incumbent and the learned policies */
static int in_panels(const sim_scenario *sc, const sim_result *r, size_t i, size_t inc)
{
    (void)sc;
    return i == inc || !strcmp(r[i].name, "deadline") || is_learned_name(r[i].name);
}

/* the drive plot: scene; temperature and clock; the model chosen; the
   safety-weighted misses, per window of the evaluation */
int sim_edge_write_plots(const char *dir, const sim_scenario *sc, const sim_result *r, size_t n,
                         int run_gnuplot, char *msg, size_t msg_len)
{
    const sim_edge *e = &sc->edge;
    char name[80], path[2048];
    sim_safe_name(sc->name, name, sizeof name);
    if (mkdir(dir, 0777) && errno != EEXIST) {
        snprintf(msg, msg_len, "%s: %s", dir, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/%s-drive.dat", dir, name);
    FILE *f = sim_open_out(path, msg, msg_len);
    if (!f)
        return -1;
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "# %s: time_s scene temp_c clock model res_px safety_miss_%% skipped_%% "
                "on_time_%%\n", r[i].name);
        for (size_t w = 0; w < r[i].n_windows; w++) {
            const sim_edge_window *t = &r[i].timeline[w];
            fprintf(f, "%g %d %.3f %.4f %.4f %.1f %.4f %.4f %.4f\n",
                    (double)(w + 0.5) * sc->window_s, t->scene, t->temp_c, t->clock, t->model,
                    t->res_px, 100 * t->miss_weight, 100 * t->skipped,
                    100 * r[i].window_attain[w]);
        }
        fputs("\n\n", f);
    }
    if (sim_close_out(f, path, msg, msg_len))
        return -1;
    snprintf(path, sizeof path, "%s/%s.gp", dir, name);
    if (!(f = sim_open_out(path, msg, msg_len)))
        return -1;
    /* which blocks: see in_panels() for the choice and temperature panels;
       every policy for the misses */
    size_t inc = 0;
    for (size_t i = 0; i < n; i++)
        if (sc->inc_resolved && !strcmp(r[i].name, sc->inc_name))
            inc = i;
    fprintf(f, "# gnuplot %s.gp (run in %s)\n", name, dir);
    fprintf(f, "set terminal png size 1100,1000\nset output '%s-drive.png'\n", name);
    fprintf(f, "set multiplot layout 4,1 title 'Drive %s: windows of %g s'\n", sc->name,
            sc->window_s);
    fprintf(f, "set grid\nset key outside right\nset lmargin 12\nset rmargin 24\n");
    size_t nwmax = 0;
    for (size_t i = 0; i < n; i++)
        nwmax = r[i].n_windows > nwmax ? r[i].n_windows : nwmax;
    fprintf(f, "set xrange [0:%g]\nunset xlabel\n", (double)nwmax * sc->window_s);
    /* 1: the scene */
    fprintf(f, "set ylabel 'scene'\nset yrange [-0.5:%g]\nset ytics (", e->n_scenes - 0.5);
    for (int k = 0; k < e->n_scenes; k++)
        fprintf(f, "%s'%s' %d", k ? ", " : "", e->scene[k].name, k);
    fprintf(f, ")\nplot '%s-drive.dat' index %zu using 1:2 with steps lw 2 title 'scene'\n",
            name, inc);
    /* 2: temperature and clock */
    fprintf(f, "set ytics auto\nset autoscale y\nset ylabel 'temperature (C)'\n"
            "set y2label 'clock (x first mode)'\nset y2tics\nset y2range [0:1.1]\n");
    fprintf(f, "plot ");
    int b = 0;
    for (size_t i = 0; i < n; i++) {
        if (!in_panels(sc, r, i, inc))
            continue;
        fprintf(f, "%s'%s-drive.dat' index %zu using 1:3 with lines lw 2 title '%s temp', "
                "'%s-drive.dat' index %zu using 1:4 axes x1y2 with steps dt 2 title '%s clock'",
                b++ ? ", \\\n     " : "", name, i, r[i].name, name, i, r[i].name);
    }
    fprintf(f, "\nunset y2tics\nunset y2label\n");
    /* 3: the model chosen */
    fprintf(f, "set ylabel 'mean model run'\nset yrange [-0.2:%g]\nset ytics (",
            e->n_models - 0.8);
    for (int m = 0; m < e->n_models; m++)
        fprintf(f, "%s'%s' %d", m ? ", " : "", e->model[m].name, m);
    fprintf(f, ")\nplot ");
    b = 0;
    for (size_t i = 0; i < n; i++) {
        if (!in_panels(sc, r, i, inc))
            continue;
        fprintf(f, "%s'%s-drive.dat' index %zu using 1:5 with lines lw 2 title '%s'",
                b++ ? ", \\\n     " : "", name, i, r[i].name);
    }
    /* 4: misses */
    fprintf(f, "\nset ytics auto\nset autoscale y\nset yrange [0:*]\nset xlabel 'time (s)'\n"
            "set ylabel 'safety-weighted misses (%%)'\nplot ");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s'%s-drive.dat' index %zu using 1:7 with lines lw 2 title '%s'",
                i ? ", \\\n     " : "", name, i, r[i].name);
    fprintf(f, "\nunset multiplot\n");
    if (sim_close_out(f, path, msg, msg_len))
        return -1;
    if (!run_gnuplot) {
        snprintf(msg, msg_len, "%s/%s.gp (gnuplot not run)", dir, name);
        return 0;
    }
    int rc = sim_gnuplot(dir, name, msg, msg_len);
    if (rc)
        return rc;
    snprintf(msg, msg_len, "%s/%s-drive.png", dir, name);
    return 0;
}
