#!/usr/bin/env python3
"""table.py - the markdown table of bench/anchors/anchors.py, from its JSON lines.

Usage: table.py ANCHORS.jsonl [OUT.md]   (stdout without OUT.md)

Lines that are not JSON objects are skipped, so the captured stdout of
`make bench-anchors` works as input too. No third-party imports.
"""
import json
import sys

ACT_COLS = [("eager", "torch eager"), ("torchscript_trace", "TorchScript trace"),
            ("torchscript_frozen", "TorchScript frozen"), ("torch_compile", "torch.compile")]
STEP_COLS = [("adam", "torch (Adam)"), ("adam_fused", "torch (Adam fused)")]


def us(ns):
    return "%.1f" % (ns / 1e3)


def yes(b):
    return "yes" if b else "**no**"


def render(lines):
    head = next((ln for ln in lines if ln.get("bench") == "anchors_header"), {})
    foot = next((ln for ln in lines if ln.get("bench") == "anchors_footer"), {})
    out = []
    w = out.append
    w("## libdlsched next to PyTorch on the CPU (make bench-anchors)")
    w("")
    w("Machine: %s, %s CPUs (%s); load average %s at the start, %s at the end; %s." % (
        head.get("machine"), head.get("nproc"), head.get("cpu_features"),
        fmt_load(head.get("loadavg")), fmt_load(foot.get("loadavg")), head.get("date")))
    w("libdlsched %s (tree %s), OpenBLAS core %s (OPENBLAS_CORETYPE %s)%s." % (
        head.get("library_version"), head.get("tree"), head.get("openblas_core"),
        head.get("openblas_coretype_env") or "unset",
        "; " + head["openblas_note"] if head.get("openblas_note") else ""))
    w("torch %s, %s threads by default, CPU capability %s, MKL %s, oneDNN %s." % (
        head.get("torch"), head.get("torch_threads_default"), head.get("torch_cpu_capability"),
        "yes" if head.get("torch_mkl") else "no", "yes" if head.get("torch_mkldnn") else "no"))
    w("Net 16-256-256-8 on both sides. %s." % head.get("fairness", ""))
    w("")

    # ---- act
    w("### Act latency, one state, greedy (µs, p50 / p99)")
    w("")
    w("| threads | " + " | ".join(n for _, n in ACT_COLS) +
      " | libdlsched dlsched_act | torch fastest / libdlsched (p50) | target ≥ 3× |")
    w("|---|" + "---:|" * len(ACT_COLS) + "---:|---:|---|")
    acts = [ln for ln in lines if ln.get("bench") == "anchors_act"]
    ratios = [ln for ln in lines if ln.get("bench") == "anchors_act_ratio"]
    for th in threads_of(acts):
        cells = []
        for k, _ in ACT_COLS:
            ln = next((a for a in acts if a["threads"] == th and a.get("side") == "torch" and
                       a.get("variant") == k), None)
            if ln is None:
                cells.append("–")
            elif ln.get("available") is False:
                cells.append("n/a")
            else:
                cells.append("%s / %s" % (us(ln["p50_ns"]), us(ln["p99_ns"])))
        for rl in [r for r in ratios if r["threads"] == th]:
            lib = next(a for a in acts if a["threads"] == th and a.get("side") == "libdlsched"
                       and a.get("openblas_coretype") == rl.get("openblas_coretype"))
            label = th_label(th, head) + core_label(rl)
            w("| %s | %s | %s / %s | %.1f× (%s) | %s |" % (
                label, " | ".join(cells), us(lib["p50_ns"]), us(lib["p99_ns"]), rl["ratio"],
                rl["torch_fastest"], yes(rl["met"])))
    w("")
    skipped = [a for a in acts if a.get("available") is False]
    for a in skipped:
        w("- %s (threads %s) not measured: %s" % (a["variant"], a["threads"], a["reason"]))
    if skipped:
        w("")

    # ---- step
    w("### Double-DQN training step (µs per step, median)")
    w("")
    w("| threads | batch | " + " | ".join(n for _, n in STEP_COLS) +
      " | libdlsched cpu_threads=1 | libdlsched cpu_threads=%s | torch fastest / libdlsched "
      "(default) | target ≥ 1.5× | with cpu_threads=%s |" % (head.get("nproc"),
                                                              head.get("nproc")))
    w("|---|---:|" + "---:|" * len(STEP_COLS) + "---:|---:|---:|---|---:|")
    steps = [ln for ln in lines if ln.get("bench") == "anchors_step"]
    sr = [ln for ln in lines if ln.get("bench") == "anchors_step_ratio"]
    cores = []
    for r in sr:
        if r.get("openblas_coretype") not in cores:
            cores.append(r.get("openblas_coretype"))
    for core in cores:
        for th in threads_of(steps):
            for b in sorted({s["batch"] for s in steps if s["threads"] == th}):
                cells = []
                for k, _ in STEP_COLS:
                    ln = next((s for s in steps if s["threads"] == th and s["batch"] == b and
                               s.get("side") == "torch" and s.get("variant") == k), None)
                    cells.append("–" if ln is None else "n/a" if ln.get("available") is False
                                 else "%.0f" % ln["median_us"])
                lib = {s["cpu_threads"]: s for s in steps if s["threads"] == th and
                       s["batch"] == b and s.get("side") == "libdlsched" and
                       s.get("openblas_coretype") == core}
                rs = {r["cpu_threads"]: r for r in sr if r["threads"] == th and r["batch"] == b
                      and r.get("openblas_coretype") == core}
                r1 = rs.get(1)
                rn = next((r for t, r in rs.items() if t != 1), None)
                ln_n = next((s for t, s in lib.items() if t != 1), None)
                w("| %s | %d | %s | %s | %s | %s | %s | %s |" % (
                    th_label(th, head) + core_label({"openblas_coretype": core}), b,
                    " | ".join(cells), "%.0f" % lib[1]["median_us"] if 1 in lib else "–",
                    "%.0f" % ln_n["median_us"] if ln_n else "–",
                    "%.2f×" % r1["ratio"] if r1 else "–", yes(r1["met"]) if r1 else "–",
                    "%.2f×" % rn["ratio"] if rn else "–"))
    w("")
    w("Ratios above 1 mean libdlsched is faster. threads \"default\": torch at "
      "torch.get_num_threads() = %s, libdlsched at its default cpu_threads=1 (acting is always "
      "one thread); \"1\": torch.set_num_threads(1), cpu_threads=1." %
      head.get("torch_threads_default"))
    w("")
    act_met = all(r["met"] for r in ratios if r.get("openblas_coretype") is None)
    step_met = all(r["met"] for r in sr if r.get("primary"))
    w("Targets (default OpenBLAS core): act ≥ 3× torch's fastest: %s; step ≥ 1.5× at every "
      "batch and thread setting: %s." % (yes(act_met), yes(step_met)))
    w("")
    return "\n".join(out)


def fmt_load(la):
    return " / ".join("%.2f" % v for v in la) if la else "?"


def threads_of(lines):
    seen = []
    for ln in lines:
        if ln.get("threads") not in seen:
            seen.append(ln.get("threads"))
    return seen


def th_label(th, head):
    return "default (torch %s)" % head.get("torch_threads_default") if th == "default" else th


def core_label(r):
    c = r.get("openblas_coretype")
    return "" if not c else ", OPENBLAS_CORETYPE=%s" % c


def read(path):
    lines = []
    with open(path) as f:
        for ln in f:
            ln = ln.strip()
            if ln.startswith("{"):
                try:
                    lines.append(json.loads(ln))
                except ValueError:
                    pass
    return lines


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    md = render(read(argv[1]))
    if len(argv) == 3:
        with open(argv[2], "w") as f:
            f.write(md)
    else:
        sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
