#!/usr/bin/env python3
"""check_targets.py [options] RESULTS.json... - the simulator targets.

Reads the JSON files that `dlsched-sim --json` wrote (a scenario object or a
list of them) and checks the learned policies (qtable, dqn) against the
heuristics of the same run (every other policy is a heuristic):

  T1  every learned policy, on every scenario run:
        weighted_goodput >= 0.98 x the best heuristic's (the maximum
        weighted_goodput over the heuristics of that run), and
        slo_attainment >= the incumbent's - 0.01 (the incumbent: the policy
        named by the scenario's "incumbent" field);
      the full set is the shipped scenarios a-f x seeds 1-5, >= 30
      generated cluster scenarios and >= 16 generated edge scenarios
      (--random-edge) of one --random-seed.
  T2  scenario b: each learned policy's weighted goodput >= +8% over the
      best heuristic on every seed 1-5, and the mean over the seeds >= +10%.
  T4  scenario f (edge): each learned policy's weighted goodput >= +8% over
      the deadline-aware greedy ("deadline") on every seed 1-5, with
      safety_misses (the safety-weighted share of frames missed) no higher
      than its.
  T3  reported, not checked: the distribution of learned / best heuristic
      over the generated scenarios per learned policy (min, median, mean,
      share above +2%), with a PNG; and a PNG of the shipped scenarios x
      seeds.
  Gateway targets (issue 18; goodput, the KV model's scenarios):
  G1  scenario g (llm-d's setting): the gateway's goodput >= 1.5 x
      round-robin's (rr) on every seed;
  G2  every learned policy's goodput >= 0.98 x the gateway's on every seed
      of g and h and on every generated gateway case (gw<seed>-<index>-...);
  G3  scenario h (heterogeneous pool): every learned policy's goodput >=
      1.10 x the gateway's on every seed.
      TTFT p90 and E2E p90 (ttft_p90_ms, e2e_p90_ms) are reported beside
      the goodput of rr, fewest-waiting, least-kv, gateway and the learned
      policies; the full set has g and h x seeds 1-5 and >= 10 generated
      gateway cases of one --random-seed.

Scenario and seed: a generated scenario is recognised by its name
(g<random-seed>-<index>-..., ge<random-seed>-<index>-... for an edge one); any other scenario is a shipped one, grouped by
the letter before the first '-' of its name.  The seed of a shipped run is
taken from the JSON file's name, NAME-s<seed>.json (scripts/targets.sh writes
<letter>-s<seed>.json); a file without it counts as seed "file" (the
scenario file's own seeds) unless --seed is given.

Options:
  --subset     check only what was run (CI): no target for absent scenarios,
               seeds or learned policies; T2's mean is over the seeds present
  --out DIR    where summary.json and plots/ go (default: the directory of
               the first JSON file)
  --seed N     the seed of files whose name carries none
  --no-plots   no gnuplot scripts or PNGs
  --t1-only    exit status from T1, G1, G2 (and completeness) alone: T2 and
               G3 are still checked and their misses printed, marked as not
               enforced (CI: T2 is not met by this version; see the README)
  --gateway-only  exit status from G1, G2, G3 (and completeness) alone: the
               others are printed, marked as not enforced
  --g3-policies LIST  enforce G3 only for these learned policies (comma
               list; CI: qtable, whose runs do not depend on the CPU's BLAS
               kernels: dqn's floating-point sums, and so its runs, do)

Writes DIR/summary.json and DIR/plots/{targets-shipped,targets-generated}
.{dat,gp,png} (the PNGs when gnuplot is installed; without it a note is
printed and the PNGs are skipped); a summary.json among the inputs is
skipped.  Prints markdown tables and the misses.
Exit status: 0 all targets met, 1 a target missed (or the set is incomplete
without --subset), 2 unusable input.
"""
import json
import os
import re
import shutil
import statistics
import subprocess
import sys

LEARNED = ("qtable", "dqn")
SHIPPED = "abcdefgh"         # the shipped scenarios of the full set
SEEDS = (1, 2, 3, 4, 5)      # the seeds of the full set
MIN_GENERATED = 30           # generated cluster scenarios in the full set
MIN_GENERATED_EDGE = 16      # generated edge scenarios in the full set

T1_WG = 0.98                 # learned wg >= T1_WG x best heuristic's
T1_SLO = 0.01                # learned SLO >= incumbent's - T1_SLO
T2_SCENARIO = "b"
T2_PER_SEED = 1.08           # b: learned / best heuristic on every seed
T2_MEAN = 1.10               # b: mean over seeds of learned / best heuristic
T3_ABOVE = 1.02              # share of generated scenarios above this ratio
T4_SCENARIO = "f"
T4_BASE = "deadline"         # f: learned / this heuristic, every seed
T4_RATIO = 1.08

G1_RATIO = 1.5               # g: gateway / rr goodput
G2_RATIO = 0.98              # learned / gateway goodput on g, h and gw cases
G3_RATIO = 1.10              # h: learned / gateway goodput
MIN_GATEWAY_GENERATED = 10   # generated gateway cases in the full set
GATEWAY_SHOWN = ("rr", "fewest-waiting", "least-kv", "gateway") + LEARNED

SUMMARY_KIND = "check_targets summary"
GEN_RE = re.compile(r"^g(e?)(\d+)-(\d+)-")
GW_RE = re.compile(r"^gw(\d+)-(\d+)-")
SEED_RE = re.compile(r"-s(\d+)\.json$")


class InputError(Exception):
    pass


def pct(ratio):
    return "%+.2f%%" % (100.0 * (ratio - 1.0))


def load(paths, seed_opt):
    """[(seed, scenario object, path)] of every scenario in every file."""
    runs = []
    for path in paths:
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            raise InputError("%s: %s" % (path, e))
        if isinstance(data, dict) and data.get("kind") == SUMMARY_KIND:
            continue        # our own summary.json, e.g. from build/targets/*.json
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            raise InputError("%s: not a scenario object or a list of them" % path)
        m = SEED_RE.search(os.path.basename(path))
        seed = int(m.group(1)) if m else seed_opt
        for sc in data:
            if not isinstance(sc, dict) or "scenario" not in sc or "policies" not in sc:
                raise InputError("%s: an entry without scenario/policies" % path)
            runs.append((seed, sc, path))
    return runs


def evaluate(sc):
    """The comparisons of one scenario run: a dict, or raises InputError."""
    name = sc["scenario"]
    pols = sc["policies"]
    heur = [p for p in pols if p["name"] not in LEARNED]
    if not heur:
        raise InputError("%s: no heuristic in the run" % name)
    best = max(heur, key=lambda p: p["weighted_goodput"])
    inc_name = sc.get("incumbent")
    inc = next((p for p in pols if p["name"] == inc_name), None)
    row = {
        "scenario": name,
        "file": sc.get("file"),
        "best_heuristic": best["name"],
        "best_heuristic_wg": best["weighted_goodput"],
        "best_heuristic_slo": best["slo_attainment"],
        "incumbent": inc_name,
        "incumbent_slo": inc["slo_attainment"] if inc else None,
        "edge": sc.get("workload") == "edge",
        "learned": {},
        "misses": [],
    }
    if inc is None:
        row["misses"].append("incumbent %r is not among the policies of the run" % inc_name)
    for p in pols:
        if p["name"] not in LEARNED:
            continue
        ratio = p["weighted_goodput"] / best["weighted_goodput"] if best["weighted_goodput"] > 0 \
            else (1.0 if p["weighted_goodput"] == 0 else float("inf"))
        d = {
            "weighted_goodput": p["weighted_goodput"],
            "slo_attainment": p["slo_attainment"],
            "ratio": ratio,
            "wg_ok": ratio >= T1_WG,
            "slo_diff": p["slo_attainment"] - inc["slo_attainment"] if inc else None,
            "slo_ok": inc is not None and p["slo_attainment"] >= inc["slo_attainment"] - T1_SLO,
            "safety_misses": p.get("safety_misses"),
            "guard": (p.get("guard") or {}).get("eval_state"),
            "learned_share": (p.get("guard") or {}).get("learned_share"),
        }
        base = next((q for q in pols if q["name"] == T4_BASE), None)
        if row["edge"] and base is not None:
            d["vs_deadline"] = p["weighted_goodput"] / base["weighted_goodput"] \
                if base["weighted_goodput"] > 0 else float("inf")
            d["deadline_misses"] = base.get("safety_misses")
        row["learned"][p["name"]] = d
        if not d["wg_ok"]:
            row["misses"].append("T1 %s weighted goodput %s vs the best heuristic %s (%.4g vs %.4g; "
                                 "target >= %s)" % (p["name"], pct(ratio), best["name"],
                                                    p["weighted_goodput"], best["weighted_goodput"],
                                                    pct(T1_WG)))
        if inc is not None and not d["slo_ok"]:
            row["misses"].append("T1 %s SLO attainment %.2f%% vs the incumbent %s %.2f%% "
                                 "(target >= %.2f%%)" % (p["name"], 100 * p["slo_attainment"],
                                                         inc_name, 100 * inc["slo_attainment"],
                                                         100 * (inc["slo_attainment"] - T1_SLO)))
    return row


def gateway_eval(sc):
    """The gateway comparisons of one run (None without a gateway policy)."""
    pols = {p["name"]: p for p in sc["policies"]}
    gw = pols.get("gateway")
    if gw is None:
        return None

    def ratio(a, b):
        return a / b if b > 0 else (1.0 if a == 0 else float("inf"))
    rr = pols.get("rr")
    return {
        "goodput": gw["goodput"],
        "rr": rr["goodput"] if rr else None,
        "vs_rr": ratio(gw["goodput"], rr["goodput"]) if rr else None,
        "learned": {n: ratio(pols[n]["goodput"], gw["goodput"]) for n in LEARNED if n in pols},
        "policies": {n: {"goodput": pols[n]["goodput"],
                         "ttft_p90_ms": pols[n].get("ttft_p90_ms", float("nan")),
                         "e2e_p90_ms": pols[n].get("e2e_p90_ms", float("nan"))}
                     for n in GATEWAY_SHOWN if n in pols},
    }


def cell_wg(d):
    return pct(d["ratio"]) + ("" if d["wg_ok"] else " MISS")


def cell_slo(d):
    if d["slo_diff"] is None:
        return "%.2f%% (no incumbent) MISS" % (100 * d["slo_attainment"])
    return "%.2f%% (%+.2f)%s" % (100 * d["slo_attainment"], 100 * d["slo_diff"],
                                 "" if d["slo_ok"] else " MISS")


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def learned_cells(row, names):
    cells = []
    for n in names:
        d = row["learned"].get(n)
        if d is None:
            cells += ["-", "-", "-"]
        else:
            cells += [cell_wg(d), cell_slo(d), d["guard"] or "-"]
    return cells


def learned_head(names):
    head = []
    for n in names:
        head += ["%s w.goodput vs best" % n, "%s SLO (vs inc., pp)" % n, "%s guard" % n]
    return head


def seed_key(seed):
    return (seed is None, seed if seed is not None else 0)


def seed_label(seed):
    return "file" if seed is None else str(seed)


def distribution(ratios):
    if not ratios:
        return None
    return {
        "n": len(ratios),
        "min": min(ratios),
        "median": statistics.median(ratios),
        "mean": statistics.fmean(ratios),
        "max": max(ratios),
        "share_above": sum(r > T3_ABOVE for r in ratios) / len(ratios),
        "above": T3_ABOVE,
    }


# ---- plots (gnuplot, in the style of examples/clustersim/report.c) ----------

GP_HEAD = "set terminal png size %d,%d\nset key outside right\nset grid\n"


def write_plots(plotdir, shipped, generated, names):
    """Data and scripts; then gnuplot when present.  Returns notes to print."""
    os.makedirs(plotdir, exist_ok=True)
    scripts = []
    if shipped:
        with open(os.path.join(plotdir, "targets-shipped.dat"), "w") as f:
            f.write("# label %s\n" % " ".join("%s_wg_pct %s_slo_pp" % (n, n) for n in names))
            for r in shipped:
                cols = []
                for n in names:
                    d = r["learned"].get(n)
                    cols.append("%.4f" % (100 * (d["ratio"] - 1)) if d else "NaN")
                    cols.append("%.4f" % (100 * d["slo_diff"]) if d and d["slo_diff"] is not None
                                else "NaN")
                f.write("%s-s%s %s\n" % (r["group"], seed_label(r["seed"]), " ".join(cols)))
        gp = [GP_HEAD % (max(1000, 40 * len(shipped) + 300), 800),
              "set output 'targets-shipped.png'",
              "set multiplot layout 2,1 title 'Learned policies on the shipped scenarios x seeds'",
              "set style data histograms", "set style histogram clustered gap 1",
              "set style fill solid 0.8 border -1", "set boxwidth 0.9",
              "set xtics rotate by -45 scale 0",
              "set ylabel 'weighted goodput vs best heuristic (%)'",
              "set arrow 1 from graph 0, first %g to graph 1, first %g nohead dt 2 lw 2 lc rgb 'red'"
              % (100 * (T1_WG - 1), 100 * (T1_WG - 1)),
              "set arrow 2 from graph 0, first %g to graph 1, first %g nohead dt 3 lw 1 lc rgb 'dark-green'"
              % (100 * (T2_PER_SEED - 1), 100 * (T2_PER_SEED - 1)),
              "plot " + ", \\\n     ".join("'targets-shipped.dat' using %d:xtic(1) title '%s'"
                                          % (2 + 2 * i, n) for i, n in enumerate(names)),
              "unset arrow 2",
              "set ylabel 'SLO attainment vs incumbent (pp)'",
              "set arrow 1 from graph 0, first %g to graph 1, first %g nohead dt 2 lw 2 lc rgb 'red'"
              % (-100 * T1_SLO, -100 * T1_SLO),
              "plot " + ", \\\n     ".join("'targets-shipped.dat' using %d:xtic(1) title '%s'"
                                          % (3 + 2 * i, n) for i, n in enumerate(names)),
              "unset multiplot", ""]
        with open(os.path.join(plotdir, "targets-shipped.gp"), "w") as f:
            f.write("# gnuplot targets-shipped.gp (run in %s)\n" % plotdir)
            f.write("\n".join(gp))
        scripts.append("targets-shipped")
    if generated:
        # one block per learned policy: rank, sorted ratio in %, sorted SLO diff in pp
        with open(os.path.join(plotdir, "targets-generated.dat"), "w") as f:
            for n in names:
                wg = sorted(100 * (r["learned"][n]["ratio"] - 1) for r in generated if n in r["learned"])
                slo = sorted(100 * r["learned"][n]["slo_diff"] for r in generated
                             if n in r["learned"] and r["learned"][n]["slo_diff"] is not None)
                f.write("# %s: rank wg_pct_sorted slo_pp_sorted\n" % n)
                for i in range(max(len(wg), len(slo))):
                    f.write("%d %s %s\n" % (i + 1, "%.4f" % wg[i] if i < len(wg) else "NaN",
                                            "%.4f" % slo[i] if i < len(slo) else "NaN"))
                f.write("\n\n")
        gp = [GP_HEAD % (1000, 800),
              "set output 'targets-generated.png'",
              "set multiplot layout 2,1 title 'Learned policies on %d generated scenarios (sorted)'"
              % len(generated),
              "set xlabel 'scenarios, sorted'",
              "set ylabel 'weighted goodput vs best heuristic (%)'",
              "set arrow 1 from graph 0, first %g to graph 1, first %g nohead dt 2 lw 2 lc rgb 'red'"
              % (100 * (T1_WG - 1), 100 * (T1_WG - 1)),
              "set arrow 2 from graph 0, first %g to graph 1, first %g nohead dt 3 lw 1 lc rgb 'dark-green'"
              % (100 * (T3_ABOVE - 1), 100 * (T3_ABOVE - 1)),
              "plot " + ", \\\n     ".join("'targets-generated.dat' index %d using 1:2 with linespoints "
                                          "lw 2 pt 7 title '%s'" % (i, n) for i, n in enumerate(names)),
              "unset arrow 2",
              "set ylabel 'SLO attainment vs incumbent (pp)'",
              "set arrow 1 from graph 0, first %g to graph 1, first %g nohead dt 2 lw 2 lc rgb 'red'"
              % (-100 * T1_SLO, -100 * T1_SLO),
              "plot " + ", \\\n     ".join("'targets-generated.dat' index %d using 1:3 with linespoints "
                                          "lw 2 pt 7 title '%s'" % (i, n) for i, n in enumerate(names)),
              "unset multiplot", ""]
        with open(os.path.join(plotdir, "targets-generated.gp"), "w") as f:
            f.write("# gnuplot targets-generated.gp (run in %s)\n" % plotdir)
            f.write("\n".join(gp))
        scripts.append("targets-generated")
    notes = []
    if not scripts:
        return notes
    if shutil.which("gnuplot") is None:
        notes.append("gnuplot not found: scripts and data in %s, PNGs skipped" % plotdir)
        return notes
    for s in scripts:
        try:
            r = subprocess.run(["gnuplot", s + ".gp"], cwd=plotdir, capture_output=True, text=True,
                               timeout=120)
            if r.returncode != 0:
                notes.append("gnuplot %s.gp failed (exit %d): %s" % (s, r.returncode, r.stderr.strip()))
            else:
                notes.append("plot: %s" % os.path.join(plotdir, s + ".png"))
        except (OSError, subprocess.TimeoutExpired) as e:
            notes.append("gnuplot %s.gp failed: %s" % (s, e))
    return notes


# ---- main -------------------------------------------------------------------

def main(argv):
    subset = False
    t1_only = False
    gateway_only = False
    g3_policies = None
    no_plots = False
    out = None
    seed_opt = None
    paths = []
    it = iter(argv)
    for a in it:
        if a == "--subset":
            subset = True
        elif a == "--t1-only":
            t1_only = True
        elif a == "--gateway-only":
            gateway_only = True
        elif a == "--g3-policies":
            v = next(it, None)
            if not v:
                print("--g3-policies needs a value", file=sys.stderr)
                return 2
            g3_policies = set(v.split(","))
        elif a == "--no-plots":
            no_plots = True
        elif a in ("--out", "--seed"):
            v = next(it, None)
            if v is None:
                print("%s needs a value" % a, file=sys.stderr)
                return 2
            if a == "--out":
                out = v
            else:
                try:
                    seed_opt = int(v)
                except ValueError:
                    print("--seed: not an integer: %s" % v, file=sys.stderr)
                    return 2
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        elif a.startswith("-") and a != "-":
            print("unknown option %s\n%s" % (a, __doc__), file=sys.stderr)
            return 2
        else:
            paths.append(a)
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    if out is None:
        out = os.path.dirname(paths[0]) or "."

    try:
        runs = load(paths, seed_opt)
        rows = []
        for seed, sc, path in runs:
            r = evaluate(sc)
            r["seed"] = seed
            r["json"] = path
            m = GEN_RE.match(sc["scenario"])
            mg = GW_RE.match(sc["scenario"])
            r["gateway"] = gateway_eval(sc)
            if mg:
                r["kind"] = "gateway-generated"
                r["random_seed"] = int(mg.group(1))
                r["index"] = int(mg.group(2))
            elif m:
                r["kind"] = "generated"
                r["random_seed"] = int(m.group(2))
                r["index"] = int(m.group(3))
            else:
                r["kind"] = "shipped"
                r["group"] = sc["scenario"].split("-", 1)[0]
            rows.append(r)
    except (InputError, KeyError, TypeError, ZeroDivisionError) as e:
        print("check_targets: unusable input: %s" % e, file=sys.stderr)
        return 2

    misses = []
    names = [n for n in LEARNED if any(n in r["learned"] for r in rows)]
    if not subset:
        names = list(LEARNED)

    # one run per (scenario, seed): a duplicate is an input error of the harness
    seen = {}
    for r in rows:
        key = (r["scenario"], r["seed"]) if r["kind"] == "shipped" else (r["scenario"],)
        if key in seen:
            misses.append("duplicate run of %s (seed %s) in %s and %s" % (
                r["scenario"], seed_label(r["seed"]), seen[key], r["json"]))
        seen[key] = r["json"]

    shipped = sorted((r for r in rows if r["kind"] == "shipped"),
                     key=lambda r: (r["group"], seed_key(r["seed"]), r["scenario"]))
    generated = sorted((r for r in rows if r["kind"] == "generated"),
                       key=lambda r: (r["edge"], r["random_seed"], r["index"]))
    gw_generated = sorted((r for r in rows if r["kind"] == "gateway-generated"),
                          key=lambda r: (r["random_seed"], r["index"]))

    for r in shipped + generated + gw_generated:
        where = "%s seed %s" % (r["scenario"], seed_label(r["seed"])) if r["kind"] == "shipped" \
            else r["scenario"]
        if not r["learned"]:
            r["misses"].append("no learned policy in the run")
        elif not subset:
            for n in LEARNED:
                if n not in r["learned"]:
                    r["misses"].append("learned policy %s not in the run" % n)
        misses += ["%s: %s" % (where, m) for m in r["misses"]]

    if not subset:
        have = {(r["group"], r["seed"]) for r in shipped}
        for g in SHIPPED:
            lack = [s for s in SEEDS if (g, s) not in have]
            if lack:
                misses.append("incomplete: scenario %s lacks seed%s %s" % (
                    g, "s" if len(lack) > 1 else "", ",".join(map(str, lack))))
        fams = {}
        for r in generated:
            fams.setdefault(r["random_seed"], set()).add(r["index"])
        if len(fams) > 1:
            misses.append("generated scenarios of several --random-seed values: %s" %
                          ",".join(map(str, sorted(fams))))
        n_edge = sum(1 for r in generated if r["edge"])
        if len(generated) - n_edge < MIN_GENERATED:
            misses.append("incomplete: %d generated cluster scenarios, want >= %d" % (
                len(generated) - n_edge, MIN_GENERATED))
        if n_edge < MIN_GENERATED_EDGE:
            misses.append("incomplete: %d generated edge scenarios, want >= %d" % (
                n_edge, MIN_GENERATED_EDGE))
        if len(generated) < MIN_GENERATED:
            misses.append("incomplete: %d generated scenarios, want >= %d" % (len(generated),
                                                                              MIN_GENERATED))
        if len(gw_generated) < MIN_GATEWAY_GENERATED:
            misses.append("incomplete: %d generated gateway cases, want >= %d" % (
                len(gw_generated), MIN_GATEWAY_GENERATED))

    # G1-G3: the gateway targets (goodput)
    gw_rows = [r for r in shipped if r["group"] in ("g", "h")] + gw_generated
    for r in gw_rows:
        where = "%s seed %s" % (r["scenario"], seed_label(r["seed"])) \
            if r["kind"] == "shipped" else r["scenario"]
        g = r["gateway"]
        if g is None:
            misses.append("G %s: no gateway policy in the run" % where)
            continue
        if r["kind"] == "shipped" and r["group"] == "g":
            if g["rr"] is None:
                misses.append("G1 %s: no rr in the run" % where)
            elif not g["vs_rr"] >= G1_RATIO:
                misses.append("G1 %s: gateway %s over rr (%.4g vs %.4g req/s; target >= %s)" % (
                    where, pct(g["vs_rr"]), g["goodput"], g["rr"], pct(G1_RATIO)))
        for n, x in g["learned"].items():
            if not x >= G2_RATIO:
                misses.append("G2 %s: %s %s vs the gateway (target >= %s)" % (
                    where, n, pct(x), pct(G2_RATIO)))
            if r["kind"] == "shipped" and r["group"] == "h" and not x >= G3_RATIO:
                misses.append("G3 %s: %s %s over the gateway (target >= %s)" % (
                    where, n, pct(x), pct(G3_RATIO)))

    # T2: scenario b, per seed and mean over the seeds
    t2 = {}
    b_rows = [r for r in shipped if r["group"] == T2_SCENARIO and r["seed"] is not None]
    for n in names:
        per = [(r["seed"], r["learned"][n]["ratio"]) for r in b_rows if n in r["learned"]]
        if not per:
            if not subset:
                misses.append("T2 %s: no run of scenario %s with a seed" % (n, T2_SCENARIO))
            continue
        mean = statistics.fmean(x for _, x in per)
        low = [(s, x) for s, x in per if x < T2_PER_SEED]
        t2[n] = {"per_seed": {str(s): x for s, x in per}, "mean": mean,
                 "per_seed_ok": not low, "mean_ok": mean >= T2_MEAN,
                 "seeds": [s for s, _ in per]}
        for s, x in low:
            misses.append("T2 %s scenario %s seed %d: %s over the best heuristic (target >= %s)"
                          % (n, T2_SCENARIO, s, pct(x), pct(T2_PER_SEED)))
        if mean < T2_MEAN:
            misses.append("T2 %s scenario %s: mean over seeds %s %s (target >= %s)" % (
                n, T2_SCENARIO, ",".join(str(s) for s, _ in per), pct(mean), pct(T2_MEAN)))

    # T4: scenario f (edge) against the deadline-aware greedy, every seed
    t4 = {}
    f_rows = [r for r in shipped if r["group"] == T4_SCENARIO and r["seed"] is not None]
    for n in names:
        per = [(r["seed"], r["learned"][n]) for r in f_rows if n in r["learned"]]
        if not per:
            if not subset:
                misses.append("T4 %s: no run of scenario %s with a seed" % (n, T4_SCENARIO))
            continue
        t4[n] = {str(s): {"ratio": d.get("vs_deadline"), "misses": d["safety_misses"],
                          "deadline_misses": d.get("deadline_misses")} for s, d in per}
        for s, d in per:
            x, m, bm = d.get("vs_deadline"), d["safety_misses"], d.get("deadline_misses")
            if x is None or bm is None:
                misses.append("T4 %s scenario %s seed %d: no %s policy in the run" % (
                    n, T4_SCENARIO, s, T4_BASE))
                continue
            if x < T4_RATIO:
                misses.append("T4 %s scenario %s seed %d: %s over %s (target >= %s)" % (
                    n, T4_SCENARIO, s, pct(x), T4_BASE, pct(T4_RATIO)))
            if m > bm:
                misses.append("T4 %s scenario %s seed %d: safety-weighted misses %.2f%% above "
                              "%s's %.2f%%" % (n, T4_SCENARIO, s, 100 * m, T4_BASE, 100 * bm))

    # T3: the distribution over the generated set
    t3 = {}
    for n in names:
        dist = distribution([r["learned"][n]["ratio"] for r in generated if n in r["learned"]])
        if dist:
            dist["t1_misses"] = sum(1 for r in generated if n in r["learned"] and
                                    not (r["learned"][n]["wg_ok"] and r["learned"][n]["slo_ok"]))
            t3[n] = dist

    # ---- report
    print("## Targets%s\n" % (" (subset: only what was run)" if subset else ""))
    print("T1: each learned policy's weighted goodput >= %g x the best heuristic's (%s) and "
          "its SLO attainment >= the incumbent's - %g pp; T2 (scenario %s): weighted goodput "
          ">= %s over the best heuristic on every seed, mean over the seeds >= %s.\n" % (
              T1_WG, pct(T1_WG), 100 * T1_SLO, T2_SCENARIO, pct(T2_PER_SEED), pct(T2_MEAN)))
    if shipped:
        print("### Shipped scenarios x seeds\n")
        print(table(["scenario", "seed", "best heuristic", "incumbent (SLO)"] + learned_head(names),
                    [[r["scenario"], seed_label(r["seed"]), "%s %.4g" % (r["best_heuristic"],
                                                                         r["best_heuristic_wg"]),
                      "%s %s" % (r["incumbent"], "%.2f%%" % (100 * r["incumbent_slo"])
                                 if r["incumbent_slo"] is not None else "-")]
                     + learned_cells(r, names) for r in shipped]))
        print()
    if t2:
        print("### T2: scenario %s, weighted goodput over the best heuristic\n" % T2_SCENARIO)
        seeds = sorted({s for d in t2.values() for s in d["seeds"]})
        trows = []
        for n, d in t2.items():
            cells = []
            for s in seeds:
                x = d["per_seed"].get(str(s))
                cells.append("-" if x is None else pct(x) + ("" if x >= T2_PER_SEED else " MISS"))
            cells.append(pct(d["mean"]) + ("" if d["mean_ok"] else " MISS"))
            trows.append([n] + cells)
        print(table(["policy"] + ["seed %d" % s for s in seeds] + ["mean"], trows))
        print()
    if t4:
        print("### T4: scenario %s (edge), learned vs %s: weighted goodput; safety-weighted "
              "misses (its)\n" % (T4_SCENARIO, T4_BASE))
        seeds = sorted({int(s) for d in t4.values() for s in d})
        trows = []
        for n, d in t4.items():
            cells = []
            for s in seeds:
                x = d.get(str(s))
                if x is None or x["ratio"] is None:
                    cells.append("-")
                    continue
                ok = x["ratio"] >= T4_RATIO and x["misses"] <= x["deadline_misses"]
                cells.append("%s; %.2f%% (%.2f%%)%s" % (pct(x["ratio"]), 100 * x["misses"],
                                                        100 * x["deadline_misses"],
                                                        "" if ok else " MISS"))
            trows.append([n] + cells)
        print(table(["policy"] + ["seed %d" % s for s in seeds], trows))
        print()
    if generated:
        print("### Generated scenarios\n")
        print(table(["index", "scenario", "best heuristic", "incumbent (SLO)"] + learned_head(names),
                    [[r["index"], r["scenario"], "%s %.4g" % (r["best_heuristic"],
                                                              r["best_heuristic_wg"]),
                      "%s %s" % (r["incumbent"], "%.2f%%" % (100 * r["incumbent_slo"])
                                 if r["incumbent_slo"] is not None else "-")]
                     + learned_cells(r, names) for r in generated]))
        print()
    if t3:
        print("### Generated scenarios: learned / best heuristic (weighted goodput)\n")
        print(table(["policy", "n", "min", "median", "mean", "max", "share > %s" % pct(T3_ABOVE),
                     "T1 misses"],
                    [[n, d["n"], pct(d["min"]), pct(d["median"]), pct(d["mean"]), pct(d["max"]),
                      "%.0f%%" % (100 * d["share_above"]), d["t1_misses"]] for n, d in t3.items()]))
        print()

    if gw_rows:
        print("### Gateway targets: goodput (req/s), TTFT p90 / E2E p90 (s)\n")
        print("G1 (g): gateway >= %s over rr; G2: learned >= %s of the gateway (g, h, gw "
              "cases); G3 (h): learned >= %s over the gateway.\n" % (
                  pct(G1_RATIO), pct(G2_RATIO), pct(G3_RATIO)))
        head = ["scenario", "seed"] + [n for n in GATEWAY_SHOWN] + ["gateway vs rr"] + \
            ["%s vs gateway" % n for n in names]
        trows = []
        for r in gw_rows:
            g = r["gateway"]
            if g is None:
                continue
            cells = [r["scenario"], seed_label(r["seed"]) if r["kind"] == "shipped" else "-"]
            for n in GATEWAY_SHOWN:
                p = g["policies"].get(n)
                cells.append("-" if p is None else "%.3g (%.1f / %.1f)" % (
                    p["goodput"], p["ttft_p90_ms"] / 1000, p["e2e_p90_ms"] / 1000))
            cells.append(pct(g["vs_rr"]) if g["rr"] else "-")
            cells += [pct(g["learned"][n]) if n in g["learned"] else "-" for n in names]
            trows.append(cells)
        print(table(head, trows))
        print()

    notes = []
    if not no_plots and (shipped or generated):
        notes = write_plots(os.path.join(out, "plots"), shipped, generated, names)

    summary = {
        "kind": SUMMARY_KIND,
        "subset": subset,
        "files": sorted({r["json"] for r in rows}),
        "targets": {"t1_wg_ratio": T1_WG, "t1_slo_margin": T1_SLO, "t2_scenario": T2_SCENARIO,
                    "t2_per_seed_ratio": T2_PER_SEED, "t2_mean_ratio": T2_MEAN,
                    "t3_above_ratio": T3_ABOVE, "shipped": SHIPPED, "seeds": list(SEEDS),
                    "min_generated": MIN_GENERATED, "min_generated_edge": MIN_GENERATED_EDGE,
                    "t4_scenario": T4_SCENARIO, "t4_base": T4_BASE, "t4_ratio": T4_RATIO},
        "shipped": shipped,
        "t2": t2,
        "t4": t4,
        "generated": generated,
        "generated_distribution": t3,
        "gateway_generated": gw_generated,
        "gateway_targets": {"g1_ratio": G1_RATIO, "g2_ratio": G2_RATIO, "g3_ratio": G3_RATIO,
                            "min_gateway_generated": MIN_GATEWAY_GENERATED},
        "misses": misses,
        "ok": not misses,
    }
    os.makedirs(out, exist_ok=True)
    spath = os.path.join(out, "summary.json")
    with open(spath, "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    for n in notes:
        print(n)
    print("summary: %s" % spath)
    if misses:
        print("\n### Misses (%d)\n" % len(misses))
        def not_enforced(m):
            if t1_only and m.startswith(("T2 ", "G3 ")):
                return "--t1-only"
            if gateway_only and not m.startswith(("G1 ", "G2 ", "G3 ", "incomplete")):
                return "--gateway-only"
            if (g3_policies is not None and m.startswith("G3 ")
                    and m.split(": ", 1)[1].split(" ", 1)[0] not in g3_policies):
                return "--g3-policies"
            return None
        for m in misses:
            why = not_enforced(m)
            print("- " + m + (" (not enforced: %s)" % why if why else ""))
        enforced = [m for m in misses if not not_enforced(m)]
        if enforced:
            return 1
        print("\nthe enforced targets are met (%d shipped runs, %d generated, %d gateway "
              "cases); the misses above are not enforced" % (len(shipped), len(generated),
                                                             len(gw_generated)))
        return 0
    print("\nall targets met (%d shipped runs, %d generated)" % (len(shipped), len(generated)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
