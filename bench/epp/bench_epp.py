"""make bench-epp: dlsched-epp behind a real Envoy, on loopback.

Part 1, policies: four emulated servers (H100, A100, L40S, A10G; each in
the emulator process), Envoy with the ext_proc filter, dlsched-epp as its
own process with --policy round-robin | gateway | learned, and the same
seeded Poisson load for each. Per policy, one JSON line: goodput (requests
meeting both SLOs, per second and as a share), TTFT p90, E2E p90, errors.

Part 2, added latency: the same fleet at a speed where the servers answer
in well under a millisecond, ``--rate`` (500/s) for ``--latency-n``
requests through (a) Envoy + ext_proc + dlsched-epp (learned), once per
ext_proc front end (``--frontends``: python = grpc.aio, native = the C++
front end of make epp-native), and (b) the same Envoy without ext_proc, the
client setting the destination header round-robin itself ("direct"),
interleaved. Added latency = the E2E percentile of (a)
minus that of (b), p50 and p99, and the picker's own pick time (its
histogram's mean). Beside them the floor: the native front end with no
picker at all (round-robin in C, eppf_start without a pick callback) behind
the same Envoy configuration, i.e. what the ext_proc path itself adds on
this machine; each front end's record has its figures above that floor
too. Part 2's load comes from bench/epp/eppload.c (one
thread, epoll; ``--eppload``, built by make bench-epp) so that measuring
costs little CPU and no GIL; without it, from the Python load generator
(``--loadgen python``: 128 threads, whose own GIL waits land in both
paths' percentiles). Everything shares this machine's cores: the figures
are an upper bound for a picker on its own core.

JSON lines to stdout and OUT/bench-epp.jsonl.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

from dlsched.epp.envoy_config import envoy_config
from dlsched.epp.loadgen import (Result, free_port, make_requests, percentile, run_load,
                                 start_envoy, wait_port)
from dlsched.epp.discovery import load_endpoints
from dlsched.epp.metrics import read_epp_metrics

GPUS = "H100,A100,L40S,A10G"


def start_fleet(workdir: str, speed: float) -> tuple:
    eps = os.path.join(workdir, "endpoints.yaml")
    if os.path.exists(eps):
        os.unlink(eps)
    p = subprocess.Popen([sys.executable, "-m", "dlsched.epp.emulator", "--fleet", GPUS,
                          "--speed", str(speed), "--endpoints-out", eps],
                         stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    end = time.monotonic() + 20
    while not os.path.exists(eps):
        if time.monotonic() > end or p.poll() is not None:
            raise RuntimeError("the emulator did not start")
        time.sleep(0.05)
    return p, eps


def serve_floor(port: int, endpoints: str) -> int:
    """--serve-floor: the native front end with no picker (round-robin in C
    over ``endpoints``) on ``port`` until SIGTERM."""
    from dlsched.epp.server import _NativeFloor, native_library
    try:
        floor = _NativeFloor(f"127.0.0.1:{port}", endpoints, native_library())
    except OSError as e:
        print(f"serve-floor: {e}", file=sys.stderr)
        return 1
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    floor.stop(1.0)
    return 0


def start_floor(hosts, workdir: str) -> tuple:
    gp = free_port()
    log = open(os.path.join(workdir, "epp-floor.log"), "w")
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve-floor", str(gp),
                          ",".join(hosts)], stdout=log, stderr=subprocess.STDOUT)
    wait_port(gp, 30)
    return p, gp


def start_epp(eps: str, policy: str, workdir: str, args: argparse.Namespace, tag: str,
              frontend: str = "auto") -> tuple:
    gp, hp, mp = free_port(), free_port(), free_port()
    log = open(os.path.join(workdir, f"epp-{tag}.log"), "w")
    cmd = [sys.executable, "-m", "dlsched.epp", "--endpoints", eps, "--policy", policy,
           "--grpc-port", str(gp), "--health-port", str(hp), "--metrics-port", str(mp),
           "--slo-ttft-ms", str(args.slo_ttft_ms), "--slo-tpot-ms", str(args.slo_tpot_ms),
           "--log-level", "WARNING"]
    if args.config and policy == "learned":
        cmd += ["--config", args.config]
    cmd += ["--frontend", frontend]
    cmd += args.epp_args.split()
    if args.epp_cpus:  # the picker on its own core(s), everything else elsewhere
        cmd = ["taskset", "-c", args.epp_cpus] + cmd
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    wait_port(mp, 30)
    time.sleep(0.5)  # first scrapes
    return p, gp, mp


def stop(*procs: subprocess.Popen) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


def run_load_c(binary: str, host: str, port: int, reqs, rate: float, seed: int, conns: int,
               workdir: str) -> list:
    """run_load's arrivals (the same seeded Poisson process) and Results, the
    requests sent by eppload (bench/epp/eppload.c)."""
    rng = random.Random(seed)
    t, inp = 0.0, [b"%d\n" % len(reqs)]
    for q in reqs:
        t += rng.expovariate(rate)
        body = q.body()
        head = "".join(f"{k}: {v}\r\n" for k, v in q.headers.items())
        raw = (f"POST /v1/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{head}\r\n"
               ).encode() + body
        inp.append(b"%d %d\n" % (int(t * 1e9), len(raw)) + raw)
    fin, fout = os.path.join(workdir, "eppload.in"), os.path.join(workdir, "eppload.out")
    with open(fin, "wb") as f:
        f.write(b"".join(inp))
    subprocess.run([binary, host, str(port), str(conns), fin, fout], check=True)
    data = open(fout, "rb").read()
    out, pos = [], 0
    for q in reqs:
        nl = data.index(b"\n", pos)
        i, st, ttft, e2e, att, blen = (int(x) for x in data[pos:nl].split())
        body = data[nl + 1:nl + 1 + blen]
        pos = nl + 1 + blen
        r = Result(i, status=st, attempts=att)
        if st:
            r.ttft, r.e2e = ttft / 1e9, e2e / 1e9
        r.body_ok = st == 200 and body == q.expected_response()
        out.append(r)
    return out


def summarise(res, reqs, args, duration):
    good = 0
    for r, q in zip(res, reqs):
        if not (r.status == 200 and r.body_ok):
            continue
        tpot = (r.e2e - r.ttft) / (q.max_tokens - 1) if q.max_tokens > 1 else 0.0
        if r.ttft <= args.slo_ttft_ms / 1000 and tpot <= args.slo_tpot_ms / 1000:
            good += 1
    ok = [r for r in res if r.status == 200]
    by_gpu = {}
    for r in ok:
        by_gpu[r.gpu] = by_gpu.get(r.gpu, 0) + 1
    return {"requests": len(res), "ok": len(ok), "errors": len(res) - len(ok),
            "bodies_intact": sum(r.body_ok for r in res),
            "goodput_rps": round(good / duration, 2), "goodput_share": round(good / len(res), 4),
            "ttft_p90_ms": round(1000 * percentile([r.ttft for r in ok], 90), 1),
            "e2e_p90_ms": round(1000 * percentile([r.e2e for r in ok], 90), 1),
            "by_gpu": by_gpu}


def emit(rec: dict, out) -> None:
    line = json.dumps(rec)
    print(line, flush=True)
    out.write(line + "\n")
    out.flush()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="build/bench-epp")
    ap.add_argument("--quick", action="store_true", help="short runs (about 2 minutes in all)")
    ap.add_argument("--policy-rate", type=float, default=60.0)
    ap.add_argument("--policy-n", type=int, default=4000)
    ap.add_argument("--speed", type=float, default=1.0, help="emulator speed for part 1")
    ap.add_argument("--rate", type=float, default=500.0, help="part 2 arrival rate")
    ap.add_argument("--latency-n", type=int, default=10000)
    ap.add_argument("--slo-ttft-ms", type=float, default=500.0)
    ap.add_argument("--slo-tpot-ms", type=float, default=40.0)
    ap.add_argument("--config", help="agent spec for the learned policy")
    ap.add_argument("--policies", default="round-robin,gateway,learned")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--epp-args", default="", help="more dlsched-epp arguments (one string)")
    ap.add_argument("--frontends", default="python,native",
                    help="ext_proc front ends measured in part 2 (python, native: each its own "
                         "picker and Envoy, the same direct baseline)")
    ap.add_argument("--loadgen", choices=("c", "python"), default="c",
                    help="part 2's load generator (c: --eppload; python: dlsched.epp.loadgen)")
    ap.add_argument("--eppload", default="build/bench-epp/eppload",
                    help="the C load generator (bench/epp/eppload.c)")
    ap.add_argument("--skip-policies", action="store_true", help="part 2 only")
    ap.add_argument("--epp-cpus", default="", help="taskset CPU list for dlsched-epp (e.g. 1); "
                    "the other processes get the remaining CPUs")
    ap.add_argument("--serve-floor", nargs=2, metavar=("PORT", "ENDPOINTS"),
                    help=argparse.SUPPRESS)  # the floor's process (part 2)
    args = ap.parse_args()
    if args.serve_floor:
        return serve_floor(int(args.serve_floor[0]), args.serve_floor[1])
    if args.epp_cpus:
        mine = set(range(os.cpu_count() or 1)) - {int(c) for c in args.epp_cpus.split(",")}
        if mine:
            os.sched_setaffinity(0, mine)  # inherited by the emulator and Envoy
    if args.quick:
        args.policy_n, args.latency_n = min(args.policy_n, 1200), min(args.latency_n, 3000)
    os.makedirs(args.out, exist_ok=True)
    out = open(os.path.join(args.out, "bench-epp.jsonl"), "w")
    work = tempfile.mkdtemp(prefix="bench-epp-")
    base = {"bench": "epp", "cpus": os.cpu_count(), "epp_cpus": args.epp_cpus or "shared", "epp_args": args.epp_args, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    # ---- part 1: policies on the same load
    fleet, eps = start_fleet(work, args.speed)
    try:
        for policy in ([] if args.skip_policies else args.policies.split(",")):
            # a fresh fleet state per policy: wait for the previous load to drain
            epp, gp, mp = start_epp(eps, policy, work, args, policy)
            lp, adm = free_port(), free_port()
            env = start_envoy(envoy_config(lp, gp, adm), work, concurrency=1)
            try:
                wait_port(lp, 20)
                reqs = make_requests(args.policy_n, seed=11, prefixes=16, prefix_chars=2048,
                                     tail_chars=256, max_tokens=(16, 32, 64))
                t0 = time.monotonic()
                res = run_load("127.0.0.1", lp, reqs, args.policy_rate, seed=12, workers=256)
                dur = time.monotonic() - t0
                rec = dict(base, part="policy", policy=policy, rate=args.policy_rate, speed=args.speed,
                           slo_ttft_ms=args.slo_ttft_ms, slo_tpot_ms=args.slo_tpot_ms,
                           seconds=round(dur, 1), **summarise(res, reqs, args, dur))
                m = read_epp_metrics(mp)
                rec["decisions"] = {k.split('"')[1]: v for k, v in m.items()
                                    if k.startswith("dlsched_epp_decisions_total{")}
                rec["guard_state"] = m.get("dlsched_epp_guard_state")
                rec["frontend"] = next((k.split('"')[1] for k in m
                                        if k.startswith("dlsched_epp_frontend{")), None)
                emit(rec, out)
            finally:
                stop(env, epp)
            time.sleep(1.0)
    finally:
        stop(fleet)

    if args.skip_latency:
        return 0
    # ---- part 2: added latency at --rate, per ext_proc front end; the direct
    # path measured between them, the same requests for all
    from dlsched.epp.server import native_library
    fes = [f for f in args.frontends.split(",") if f]
    if args.loadgen == "c" and not os.access(args.eppload, os.X_OK):
        print(f"bench-epp: no {args.eppload} (cc -O2 bench/epp/eppload.c): the Python load "
              "generator measures part 2", file=sys.stderr)
        args.loadgen = "python"
    if "native" in fes and native_library() is None:
        print("bench-epp: no native front end (make epp-native): measuring python only", file=sys.stderr)
        fes = [f for f in fes if f != "native"]
    fleet, eps = start_fleet(work, 1000.0)
    hosts = [e.hostport for e in load_endpoints(eps)]
    procs = []
    try:
        pickers = {}
        for fe in fes:
            epp, gp, mp = start_epp(eps, "learned", work, args, "latency-" + fe, frontend=fe)
            lp, adm = free_port(), free_port()
            os.makedirs(f"{work}/{fe}", exist_ok=True)
            env = start_envoy(envoy_config(lp, gp, adm), f"{work}/{fe}", concurrency=1)
            procs += [env, epp]
            pickers[fe] = (lp, mp)
        if native_library() is not None:  # the floor: the same path, no picker
            fl, fgp = start_floor(hosts, work)
            lp, adm = free_port(), free_port()
            os.makedirs(f"{work}/floor", exist_ok=True)
            env = start_envoy(envoy_config(lp, fgp, adm), f"{work}/floor", concurrency=1)
            procs += [env, fl]
            pickers["floor"] = (lp, None)
        dp, dadm = free_port(), free_port()
        os.makedirs(work + "/direct", exist_ok=True)
        denv = start_envoy(envoy_config(dp, 0, dadm, ext_proc=False), work + "/direct", concurrency=1)
        procs.append(denv)
        wait_port(dp, 20)
        for lp, _ in pickers.values():
            wait_port(lp, 20)
        figs = {}
        arms = list(pickers)  # the front ends, then the floor
        plan = [("warmup-" + a, pickers[a][0]) for a in arms]
        for rnd in range(2):  # direct, then each arm, twice: drift shows in all
            plan.append(("direct", dp))
            plan += [(a, pickers[a][0]) for a in arms]
        for path, port in plan:
            n = 500 if path.startswith("warmup") else args.latency_n // 2
            reqs = make_requests(n, seed=21, prefixes=16, prefix_chars=256, tail_chars=64,
                                 max_tokens=(1,))
            if path == "direct":
                for i, q in enumerate(reqs):
                    q.headers["x-gateway-destination-endpoint"] = hosts[i % len(hosts)]
            if args.loadgen == "c":
                res = run_load_c(args.eppload, "127.0.0.1", port, reqs, args.rate, 22, 128, work)
            else:
                res = run_load("127.0.0.1", port, reqs, args.rate, seed=22, workers=128)
            if not path.startswith("warmup"):
                figs.setdefault(path, []).extend(res)
        ok = {k: [r.e2e for r in v if r.status == 200 and r.body_ok] for k, v in figs.items()}
        def pct(key, p):
            return round(1000 * percentile(ok[key], p), 3)
        for arm in arms:
            rec = dict(base, part="latency", frontend=arm, rate=args.rate,
                       requests=args.latency_n, loadgen=args.loadgen)
            for key, name in (("direct", "direct"), (arm, "picker")):
                rec[f"{name}_ok"] = len(ok[key])
                rec[f"{name}_p50_ms"], rec[f"{name}_p99_ms"] = pct(key, 50), pct(key, 99)
            rec["added_p50_ms"] = round(rec["picker_p50_ms"] - rec["direct_p50_ms"], 3)
            rec["added_p99_ms"] = round(rec["picker_p99_ms"] - rec["direct_p99_ms"], 3)
            if arm == "floor":  # no picker: what the ext_proc path adds by itself
                rec["note"] = "native front end, no picker (round-robin in C)"
                emit(rec, out)
                continue
            if "floor" in ok:
                rec["above_floor_p50_ms"] = round(rec["picker_p50_ms"] - pct("floor", 50), 3)
                rec["above_floor_p99_ms"] = round(rec["picker_p99_ms"] - pct("floor", 99), 3)
            m = read_epp_metrics(pickers[arm][1])
            cnt = m.get("dlsched_epp_pick_latency_seconds_count", 0)
            rec["pick_mean_us"] = round(1e6 * m.get("dlsched_epp_pick_latency_seconds_sum", 0) / cnt, 1) if cnt else None
            rec["target_added_p99_ms"] = 2.0
            rec["met"] = rec["added_p99_ms"] <= 2.0
            emit(rec, out)
    finally:
        stop(*procs)
        stop(fleet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
