#!/usr/bin/env python3
"""check_targets.py RESULTS.json - the simulator targets of the shipped scenarios.

Reads the JSON that `dlsched-sim --json` wrote for scenarios (a), (b), (c) and
checks, against the best heuristic of each scenario (by weighted goodput):
  a-homogeneous-poisson: every learned policy's goodput within 2% (qtable
                         picks only the GPU type and variant, so with one
                         type and one variant it has nothing to learn; dqn
                         picks the server)
  b-hetero-bursty:       the best learned policy's weighted goodput >= +10%,
                         with SLO attainment no lower
  c-trace-azure-conv:    the best learned policy's weighted goodput >= it
Exit status 1 when a target is missed.
"""
import json
import sys

LEARNED = ("qtable", "dqn")


def split(scenario):
    learned = [p for p in scenario["policies"] if p["name"] in LEARNED]
    heur = [p for p in scenario["policies"] if p["name"] not in LEARNED]
    best_h = max(heur, key=lambda p: p["weighted_goodput"])
    return learned, best_h


def main(path):
    with open(path) as f:
        data = json.load(f)
    if isinstance(data, dict):
        data = [data]
    failed = 0
    seen = set()
    for sc in data:
        name = sc["scenario"]
        learned, bh = split(sc)
        if name.startswith("a-"):
            best = min(learned, key=lambda p: p["goodput"])
            ratio = best["goodput"] / bh["goodput"]
            ok = ratio >= 0.98
            what = "goodput %.3f vs %.3f (%s): %+.2f%% (target >= -2%%)" % (
                best["goodput"], bh["goodput"], bh["name"], 100 * (ratio - 1))
        elif name.startswith("b-"):
            best = max(learned, key=lambda p: p["weighted_goodput"])
            ratio = best["weighted_goodput"] / bh["weighted_goodput"]
            ok = ratio >= 1.10 and best["slo_attainment"] >= bh["slo_attainment"]
            what = ("weighted goodput %.3f vs %.3f (%s): %+.2f%% (target >= +10%%), "
                    "SLO attainment %.4f vs %.4f (target: no lower)") % (
                best["weighted_goodput"], bh["weighted_goodput"], bh["name"],
                100 * (ratio - 1), best["slo_attainment"], bh["slo_attainment"])
        elif name.startswith("c-"):
            best = max(learned, key=lambda p: p["weighted_goodput"])
            ratio = best["weighted_goodput"] / bh["weighted_goodput"]
            ok = ratio >= 1.0
            what = "weighted goodput %.3f vs %.3f (%s): %+.2f%% (target >= 0%%)" % (
                best["weighted_goodput"], bh["weighted_goodput"], bh["name"],
                100 * (ratio - 1))
        else:
            continue
        seen.add(name[:2])
        print("%s %s: %s %s" % ("ok  " if ok else "MISS", name, best["name"], what))
        failed += not ok
    for want in ("a-", "b-", "c-"):
        if want not in seen:
            print("MISS: no scenario %s... in %s" % (want, path))
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
