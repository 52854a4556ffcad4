#!/usr/bin/env python3
"""anchors.py - libdlsched next to PyTorch on the CPU, in one run.

`make bench-anchors` runs it (not part of CI). One JSON line per figure on
stdout, like the C benchmarks (bench/bench.h): every torch figure next to the
libdlsched figure measured in the same run, interleaved with it round by
round, with its ratio; the machine, the kernels and the load average are
recorded. Diagnostics go to stderr. At the end the markdown table
(bench/anchors/table.py, regenerated from the JSON lines) is printed and
written to --table.

The network is the same on both sides: MLP 16-256-256-8 (ReLU), FP32.

(a) Act latency, one state, greedy (argmax over Q), each call timed alone
    with a perf_counter_ns / clock_gettime pair minus the median cost of an
    empty pair in the same language; p50 and p99 (nearest rank).
      torch: eager (nn.Sequential, inside torch.inference_mode() entered
        once around the loop), TorchScript (torch.jit.trace; torch.jit.script
        + freeze + optimize_for_inference) and torch.compile (in a child
        process with a timeout, as compiling needs a C++ compiler and can be
        slow), each call `f(x).argmax(1).item()` on a prebuilt 1x16 tensor:
        no conversion from the host's data is counted against torch. The
        time includes torch's own per-call (Python dispatch) overhead: that
        is what a torch user pays for one decision.
      libdlsched: dlsched_act(agent, state, DLSCHED_ACT_GREEDY, &d) timed in
        C (bench/anchors/anchors_c.c, run as a subprocess), no Python in
        the timed call, on a dqn agent 16-256-256-8.
    ratio = torch's fastest p50 / libdlsched p50; target >= 3.

(b) The double-DQN training step at batch 32, 64, 256, 1024 on a replay
    ring of 10000 random transitions, time per step (median over reps of
    k steps, k sized to ~40 ms per rep).
      torch (eager, a faithful step): uniform sampling of the batch
        (torch.randint + index), online forward on [s; s'] (one 2B-row
        pass), target forward on s', double-DQN target over allowed actions
        (masked argmax of the online Q(s') picks the action the target net
        evaluates), gather, smooth_l1_loss (= Huber, delta 1), backward,
        clip_grad_norm_(10), Adam step, hard target copy every 1000 steps.
        Adam as torch defaults it on the CPU and with fused=True; the
        faster is torch's figure.
      libdlsched: dlsched_train(agent, k) / k in C (anchors_c step), the
        same step (uniform replay, double=1, huber_delta=1, grad_clip=10,
        Adam, target_update=1000).
    ratio = torch's fastest / libdlsched; target >= 1.5 at every batch.

Threads: each side at its default and at one thread. torch's default is
torch.get_num_threads() at start-up (OpenMP, one per core); one thread is
torch.set_num_threads(1). libdlsched's default is cpu_threads=1 (OpenBLAS
runs one thread, acting never uses more), so its default-thread figure is
the cpu_threads=1 one; the training step is also measured with cpu_threads
= the number of CPUs, shown beside it. Neither side pins itself to a core.

Usage: anchors.py --c-bench PATH [--jsonl FILE] [--table FILE] [--quick]
                  [--rounds N] [--compile-timeout S] [--no-compile]
                  [--coretype auto|none|NAME]
--coretype auto (default): when OpenBLAS runs a generic kernel (Prescott,
Core2, ...) with OPENBLAS_CORETYPE unset on a CPU with AVX2 or AVX-512, the
libdlsched figures are measured a second time with OPENBLAS_CORETYPE set to
the CPU's best core (SkylakeX, Haswell) and reported beside the default ones.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import table as table_mod  # noqa: E402

NF, H, NA = 16, 256, 8
CAP = 10000
BATCHES = (32, 64, 256, 1024)
TARGET_ACT = 3.0
TARGET_STEP = 1.5
GENERIC_CORES = {"prescott", "core2", "nehalem", "atom", "katmai", "coppermine", "northwood",
                 "banias", "penryn", "dunnington", "generic"}

FAIRNESS = ("torch is timed in Python: its per-call dispatch overhead is what a torch user "
            "pays; libdlsched is timed in C (anchors_c), no Python in its timed calls; "
            "torch gets prebuilt tensors (no conversion counted) and inference_mode entered "
            "once outside the timed loop")


def log(*a):
    print("anchors:", *a, file=sys.stderr, flush=True)


def loadavg():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


OUT = []


def emit(**kw):
    kw.setdefault("loadavg", loadavg())
    line = json.dumps(kw, sort_keys=False)
    OUT.append(line)
    print(line, flush=True)


def pctl(sorted_v, p):
    """nearest-rank percentile of a sorted list"""
    import math
    n = len(sorted_v)
    rank = max(1, min(n, math.ceil(p / 100.0 * n)))
    return sorted_v[rank - 1]


def empty_pair_ns(n=100000):
    pc = time.perf_counter_ns
    v = []
    for _ in range(n):
        t0 = pc()
        t1 = pc()
        v.append(t1 - t0)
    v.sort()
    return v[n // 2]


# ---- the machine ----------------------------------------------------------------

def cpu_info():
    model, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name") and model == "unknown":
                    model = ln.split(":", 1)[1].strip()
                elif ln.startswith("flags") and not flags:
                    flags = set(ln.split(":", 1)[1].split())
    except OSError:
        pass
    return model, flags


def best_core(flags):
    if "avx512f" in flags and "avx512bw" in flags:
        return "SkylakeX"
    if "avx2" in flags and "fma" in flags:
        return "Haswell"
    return None


def git_describe():
    try:
        return subprocess.run(["git", "-C", TOP, "describe", "--always", "--dirty"],
                              capture_output=True, text=True, timeout=20).stdout.strip() or None
    except Exception:  # noqa: BLE001 - informative only
        return None


# ---- the C side -------------------------------------------------------------------

def run_c(cbench, args, env_extra=None, timeout=600):
    env = dict(os.environ)
    if env_extra:
        env.update(env_extra)
    p = subprocess.run([cbench] + args, capture_output=True, text=True, env=env, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("%s %s: exit %d: %s" % (cbench, " ".join(args), p.returncode,
                                                  p.stderr.strip()[-500:]))
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1])


# ---- torch ----------------------------------------------------------------------------

def build_net(torch, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(NF, H), torch.nn.ReLU(), torch.nn.Linear(H, H),
                               torch.nn.ReLU(), torch.nn.Linear(H, NA))


def act_states(torch, n=4096):
    g = torch.Generator().manual_seed(1234)
    return [torch.rand(1, NF, generator=g) for _ in range(n)]


def time_act(torch, f, xs, calls, warmup, pair_ns):
    """each call timed alone; returns sorted lap times in ns"""
    pc = time.perf_counter_ns
    n = len(xs)
    with torch.inference_mode():
        for i in range(warmup):
            f(xs[i % n]).item()
        laps = [0] * calls
        for i in range(calls):
            x = xs[i % n]
            t0 = pc()
            f(x).item()
            t1 = pc()
            laps[i] = t1 - t0 - pair_ns
    laps.sort()
    return laps


def torch_act_variants(torch):
    """name -> callable x -> LongTensor[1] (argmax), or name -> error string"""
    net = build_net(torch).eval()
    out = {}
    out["eager"] = lambda x: net(x).argmax(1)

    class Act(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(x).argmax(1)

    x0 = torch.rand(1, NF)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with torch.no_grad():
                tr = torch.jit.trace(Act(net), x0)
            out["torchscript_trace"] = tr
        except Exception as e:  # noqa: BLE001 - report the reason and go on
            out["torchscript_trace"] = "%s: %s" % (type(e).__name__, str(e)[:300])
        try:
            sc = torch.jit.script(Act(net).eval())
            fr = torch.jit.optimize_for_inference(torch.jit.freeze(sc))
            out["torchscript_frozen"] = fr
        except Exception as e:  # noqa: BLE001
            out["torchscript_frozen"] = "%s: %s" % (type(e).__name__, str(e)[:300])
    # every variant must agree with eager on the decision
    with torch.inference_mode():
        xs = act_states(torch, 64)
        want = [int(out["eager"](x)) for x in xs]
        for k, f in list(out.items()):
            if callable(f) and k != "eager":
                try:
                    got = [int(f(x)) for x in xs]
                    if got != want:
                        out[k] = "disagrees with eager on %d of 64 states" % sum(
                            a != b for a, b in zip(got, want))
                except Exception as e:  # noqa: BLE001
                    out[k] = "%s: %s" % (type(e).__name__, str(e)[:300])
    return out


def compile_child(args):
    """child process: torch.compile of the act function, timed; one JSON line"""
    import torch
    torch.set_num_threads(args.child_threads)
    net = build_net(torch).eval()

    def act(x):
        return net(x).argmax(1)

    t0 = time.time()
    f = torch.compile(act)
    xs = act_states(torch)
    with torch.inference_mode():
        f(xs[0])
        ok = all(int(f(x)) == int(act(x)) for x in xs[:64])
    compile_s = time.time() - t0
    pair = empty_pair_ns()
    rounds = []
    for _ in range(args.rounds):
        laps = time_act(torch, f, xs, args.act_calls, args.act_calls // 10, pair)
        rounds.append([pctl(laps, 50), pctl(laps, 99)])
    print(json.dumps({"compile_s": round(compile_s, 1), "agrees_with_eager": ok,
                      "rounds": rounds, "threads": torch.get_num_threads()}), flush=True)


def run_compile_child(args, threads):
    cmd = [sys.executable, os.path.abspath(__file__), "--child-compile", "--child-threads",
           str(threads), "--rounds", str(args.rounds), "--act-calls", str(args.act_calls),
           "--c-bench", args.c_bench]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.compile_timeout)
    except subprocess.TimeoutExpired:
        return None, "torch.compile did not finish within %d s (--compile-timeout)" % (
            args.compile_timeout)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        err = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        return None, "torch.compile failed (exit %d): %s" % (p.returncode,
                                                            " | ".join(err[-3:])[:400])
    res = json.loads(lines[-1])
    if not res["agrees_with_eager"]:
        return None, "torch.compile's decisions differ from eager's"
    return res, None


def torch_step_factory(torch, batch, adam_kw):
    import torch.nn.functional as F
    net, tgt = build_net(torch, 0), build_net(torch, 0)
    tgt.load_state_dict(net.state_dict())
    params = list(net.parameters())
    opt = torch.optim.Adam(params, lr=1e-4, **adam_kw)
    g = torch.Generator().manual_seed(4242 + batch)
    S = torch.rand(CAP, NF, generator=g)
    S2 = torch.rand(CAP, NF, generator=g)
    A = torch.randint(0, NA, (CAP,), generator=g)
    R = torch.rand(CAP, generator=g) * 2 - 1
    D = torch.where(torch.rand(CAP, generator=g) < 0.02, 0.0, 0.99)
    M = torch.ones(CAP, NA, dtype=torch.bool)
    count = [0]

    def step():
        idx = torch.randint(0, CAP, (batch,))
        s, s2, a, r, d, m = S[idx], S2[idx], A[idx], R[idx], D[idx], M[idx]
        q_all = net(torch.cat([s, s2]))
        q, q2_on = q_all[:batch], q_all[batch:].detach()
        with torch.no_grad():
            a_star = q2_on.masked_fill(~m, float("-inf")).argmax(1, keepdim=True)
            y = r + d * tgt(s2).gather(1, a_star).squeeze(1)
        loss = F.smooth_l1_loss(q.gather(1, a.unsqueeze(1)).squeeze(1), y, beta=1.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
        count[0] += 1
        if count[0] % 1000 == 0:
            with torch.no_grad():
                for pt, po in zip(tgt.parameters(), params):
                    pt.copy_(po)

    return step


def time_steps(step, reps, rep_ms):
    pc = time.perf_counter_ns
    for _ in range(3):
        step()
    t0 = pc()
    for _ in range(3):
        step()
    est = (pc() - t0) / 3
    k = max(1, min(100000, int(rep_ms * 1e6 / est)))
    v = []
    for _ in range(reps):
        t0 = pc()
        for _ in range(k):
            step()
        v.append((pc() - t0) / k / 1e3)
    return statistics.median(v), min(v), k


# ---- main ------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--c-bench", required=True, help="the anchors_c binary")
    ap.add_argument("--jsonl", help="also write the JSON lines here")
    ap.add_argument("--table", help="write the markdown table here")
    ap.add_argument("--quick", action="store_true", help="fewer calls and reps (smoke test)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--act-calls", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rep-ms", type=int, default=40)
    ap.add_argument("--compile-timeout", type=int, default=300)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--coretype", default="auto")
    ap.add_argument("--child-compile", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child-threads", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_compile:
        compile_child(args)
        return 0
    if args.quick:
        args.rounds, args.act_calls, args.reps, args.rep_ms = 1, 2000, 2, 10
    cbench = os.path.abspath(args.c_bench)
    t_start = time.time()

    import torch

    torch_default_threads = torch.get_num_threads()
    model, flags = cpu_info()
    nproc = os.cpu_count() or 1
    info = run_c(cbench, ["info"])

    # the OpenBLAS cores to measure libdlsched with
    cores = [("default", None)]
    env_core = os.environ.get("OPENBLAS_CORETYPE")
    best = best_core(flags)
    core_note = None
    if args.coretype not in ("auto", "none"):
        cores.append((args.coretype, {"OPENBLAS_CORETYPE": args.coretype}))
    elif args.coretype == "auto" and not env_core and best and \
            str(info.get("openblas_core", "")).lower() in GENERIC_CORES:
        cores.append((best, {"OPENBLAS_CORETYPE": best}))
        core_note = ("OpenBLAS chose the generic core %s on a CPU with %s: libdlsched is also "
                     "measured with OPENBLAS_CORETYPE=%s" % (info.get("openblas_core"),
                                                             "AVX-512" if best == "SkylakeX"
                                                             else "AVX2", best))
    core_names = {}
    for name, env in cores[1:]:
        core_names[name] = run_c(cbench, ["info"], env).get("openblas_core")

    try:
        cap = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001
        cap = None
    try:
        mkl_ver = torch.backends.mkl.get_version_string() if hasattr(
            torch.backends.mkl, "get_version_string") else None
    except Exception:  # noqa: BLE001
        mkl_ver = None
    cfg = torch.__config__.show()
    onednn = next((ln.strip(" -") for ln in cfg.splitlines() if "MKL-DNN" in ln or
                   "oneDNN" in ln), None)
    mkl_line = next((ln.strip(" -") for ln in cfg.splitlines() if "Math Kernel Library" in ln),
                    None)
    emit(bench="anchors_header",
         date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
         machine=model, nproc=nproc,
         cpu_features=" ".join(f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw",
                                          "avx512_vnni", "avx512_bf16", "amx_tile")
                               if f in flags),
         python=platform.python_version(),
         torch=torch.__version__, torch_threads_default=torch_default_threads,
         torch_interop_threads=torch.get_num_interop_threads(),
         torch_cpu_capability=cap, torch_mkl=torch.backends.mkl.is_available(),
         torch_mkl_version=mkl_ver or mkl_line,
         torch_mkldnn=torch.backends.mkldnn.is_available(), torch_onednn=onednn,
         omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
         library_version=info.get("library_version"), tree=git_describe(),
         openblas_core=info.get("openblas_core"), openblas_config=info.get("openblas_config"),
         openblas_coretype_env=env_core, openblas_extra_cores=core_names or None,
         openblas_note=core_note,
         libdlsched_default_cpu_threads=1,
         fairness=FAIRNESS,
         settings=dict(rounds=args.rounds, act_calls=args.act_calls, step_reps=args.reps,
                       step_rep_ms=args.rep_ms, replay=CAP, quick=args.quick))

    settings = [("default", torch_default_threads), ("1", 1)]

    # ---- (a) act latency
    pair = empty_pair_ns()
    variants = torch_act_variants(torch)
    for tname, tthreads in settings:
        torch.set_num_threads(tthreads)
        xs = act_states(torch)
        lib = {c: [] for c, _ in cores}
        tor = {k: [] for k, f in variants.items() if callable(f)}
        for rnd in range(args.rounds):
            order = [("c", c, env) for c, env in cores] + [("t", k, None) for k in tor]
            if rnd % 2:
                order.reverse()
            for side, name, env in order:
                if side == "c":
                    r = run_c(cbench, ["act", "--threads", "1", "--calls", str(args.act_calls),
                                       "--warmup", str(args.act_calls // 10)], env)
                    lib[name].append((r["p50_ns"], r["p99_ns"]))
                else:
                    laps = time_act(torch, variants[name], xs, args.act_calls,
                                    args.act_calls // 10, pair)
                    tor[name].append((pctl(laps, 50), pctl(laps, 99)))
        comp, comp_err = (None, "not tried (--no-compile)") if args.no_compile else \
            run_compile_child(args, tthreads)
        if comp:
            tor["torch_compile"] = [tuple(v) for v in comp["rounds"]]

        def med(rs, i):
            return statistics.median(v[i] for v in rs)

        ref50 = {c: med(lib[c], 0) for c in lib}
        ref99 = {c: med(lib[c], 1) for c in lib}
        for c, _ in cores:
            emit(bench="anchors_act", threads=tname, side="libdlsched",
                 variant="dlsched_act greedy",
                 openblas=c if c != "default" else info.get("openblas_core"),
                 openblas_coretype=None if c == "default" else c, cpu_threads=1,
                 p50_ns=round(ref50[c]), p99_ns=round(ref99[c]), rounds=args.rounds,
                 samples_per_round=args.act_calls, timing="C, clock_gettime pair per call")
        for k, rs in tor.items():
            p50, p99 = med(rs, 0), med(rs, 1)
            emit(bench="anchors_act", threads=tname, side="torch", variant=k,
                 torch_threads=tthreads, p50_ns=round(p50), p99_ns=round(p99),
                 reference=round(ref50["default"]), reference_name="libdlsched dlsched_act p50, "
                 "same run", ratio=round(p50 / ref50["default"], 2), rounds=args.rounds,
                 samples_per_round=args.act_calls,
                 compile_s=comp["compile_s"] if k == "torch_compile" else None,
                 timing="Python, perf_counter_ns pair per call, empty pair (%d ns) subtracted"
                 % pair)
        for k, f in variants.items():
            if not callable(f):
                emit(bench="anchors_act", threads=tname, side="torch", variant=k,
                     available=False, reason=f)
        if not comp:
            emit(bench="anchors_act", threads=tname, side="torch", variant="torch_compile",
                 available=False, reason=comp_err)
        fastest = min(tor, key=lambda k: med(tor[k], 0))
        for c, _ in cores:
            ratio = med(tor[fastest], 0) / ref50[c]
            emit(bench="anchors_act_ratio", threads=tname,
                 openblas=c if c != "default" else info.get("openblas_core"),
                 openblas_coretype=None if c == "default" else c,
                 torch_fastest=fastest, torch_p50_ns=round(med(tor[fastest], 0)),
                 libdlsched_p50_ns=round(ref50[c]), ratio=round(ratio, 2),
                 ratio_is="torch fastest p50 / libdlsched p50",
                 target=">= %g" % TARGET_ACT, met=ratio >= TARGET_ACT)
        log("act, threads %s: torch %s %.1f us, libdlsched %.1f us" % (
            tname, fastest, med(tor[fastest], 0) / 1e3, ref50["default"] / 1e3))

    # ---- (b) training step
    adams = [("adam", {}), ("adam_fused", {"fused": True})]
    for tname, tthreads in settings:
        torch.set_num_threads(tthreads)
        lib_threads = [1] + ([nproc] if tname == "default" and nproc > 1 else [])
        for batch in BATCHES:
            steps = {}
            adam_ok = {}
            for k, kw in adams:
                try:
                    steps[k] = torch_step_factory(torch, batch, kw)
                    steps[k]()
                except Exception as e:  # noqa: BLE001
                    adam_ok[k] = "%s: %s" % (type(e).__name__, str(e)[:300])
                    steps.pop(k, None)
            lib = {(c, t): [] for c, _ in cores for t in lib_threads}
            tor = {k: [] for k in steps}
            for rnd in range(args.rounds):
                order = [("c", (c, t), env) for c, env in cores for t in lib_threads] + \
                        [("t", k, None) for k in steps]
                if rnd % 2:
                    order.reverse()
                for side, key, env in order:
                    if side == "c":
                        r = run_c(cbench, ["step", "--batch", str(batch), "--threads",
                                           str(key[1]), "--reps", str(args.reps), "--rep-ms",
                                           str(args.rep_ms)], env)
                        lib[key].append((r["median_us"], r["min_us"]))
                    else:
                        m, mn, _k = time_steps(steps[key], args.reps, args.rep_ms)
                        tor[key].append((m, mn))
            ref = statistics.median(v[0] for v in lib[("default", 1)])
            for (c, t), rs in lib.items():
                emit(bench="anchors_step", threads=tname, batch=batch, side="libdlsched",
                     variant="dlsched_train", cpu_threads=t,
                     openblas=c if c != "default" else info.get("openblas_core"),
                     openblas_coretype=None if c == "default" else c,
                     median_us=round(statistics.median(v[0] for v in rs), 1),
                     min_us=round(min(v[1] for v in rs), 1), rounds=args.rounds,
                     timing="C, dlsched_train(agent, k) / k, median of %d reps x %d rounds"
                     % (args.reps, args.rounds))
            for k, rs in tor.items():
                m = statistics.median(v[0] for v in rs)
                emit(bench="anchors_step", threads=tname, batch=batch, side="torch", variant=k,
                     torch_threads=tthreads, median_us=round(m, 1),
                     min_us=round(min(v[1] for v in rs), 1), reference=round(ref, 1),
                     reference_name="libdlsched dlsched_train per step, cpu_threads=1, same run",
                     ratio=round(m / ref, 2), rounds=args.rounds,
                     timing="Python, k steps per rep, median of %d reps x %d rounds"
                     % (args.reps, args.rounds))
            for k, why in adam_ok.items():
                emit(bench="anchors_step", threads=tname, batch=batch, side="torch", variant=k,
                     available=False, reason=why)
            fastest = min(tor, key=lambda k: statistics.median(v[0] for v in tor[k]))
            tf = statistics.median(v[0] for v in tor[fastest])
            for (c, t), rs in lib.items():
                lm = statistics.median(v[0] for v in rs)
                emit(bench="anchors_step_ratio", threads=tname, batch=batch, cpu_threads=t,
                     openblas=c if c != "default" else info.get("openblas_core"),
                     openblas_coretype=None if c == "default" else c,
                     torch_fastest=fastest, torch_us=round(tf, 1), libdlsched_us=round(lm, 1),
                     ratio=round(tf / lm, 2), ratio_is="torch fastest / libdlsched",
                     target=">= %g" % TARGET_STEP, met=tf / lm >= TARGET_STEP,
                     primary=(c == "default" and t == 1))
            log("step, threads %s, batch %d: torch %s %.0f us, libdlsched %.0f us" % (
                tname, batch, fastest, tf, ref))

    torch.set_num_threads(torch_default_threads)
    emit(bench="anchors_footer", elapsed_s=round(time.time() - t_start, 1),
         date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    if args.jsonl:
        with open(args.jsonl, "w") as f:
            f.write("\n".join(OUT) + "\n")
    md = table_mod.render([json.loads(ln) for ln in OUT])
    print(md, file=sys.stderr)
    if args.table:
        with open(args.table, "w") as f:
            f.write(md)
        log("table written to %s" % args.table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
