#!/usr/bin/env python3
"""Several simulated servers as Ray actors feeding one learner, against the
single-process library doing the same work.

Each server is a Ray actor routing its own Poisson stream of requests to 8
replicas of different speeds (router.py) with a learner=none agent
(dlsched.ray.ActingAgent): act and observe are direct C calls, and between
chunks of 256 requests an explicit, non-blocking sync() ships the recorded
transitions to the Learner actor and takes its newest weights. The driver
evaluates the learner's published weights every --eval-every seconds on a
fixed stream (greedy, 3000 requests) until the mean latency reaches the
target: 90% of the way from join-shortest-queue (which ignores the speeds) to
join-shortest-expected-delay (which knows them; the agent does not).

Runs, in this order (--quick: inline, Ray x1 and x2, short):
  single inline    one process, one agent learning inside observe
  single thread    one process, one agent with learner=thread (the C thread trains)
  single exchange  one process: a learner=none agent acts, its transitions go
                   to a learner=thread agent by export/ingest every 256 requests,
                   weights back every 1024
  ray xN           N server actors + the Learner actor, N = --actors

Then the costs behind the projection, measured here: the per-transition cost
of a server (simulate + act + observe; export; ship), the learner's ingest
capacity through Ray (a driver shipping ready blobs as fast as it can to a
learner that does not train) and a training step.

Writes JSON lines (--out, default build/ray-scale/scale.jsonl) and a markdown
table next to them (table.md). A terminal shows progress on stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import router as R  # noqa: E402

import dlsched  # noqa: E402

CHUNK = 256  # requests per server step between syncs


# ---- the machine ------------------------------------------------------------------------

def _cpu() -> List[int]:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return [sum(v), idle]


class Busy:
    """The machine's CPU use (all processes, ours included) over an interval."""

    def __init__(self) -> None:
        self.t0 = _cpu()

    def share(self) -> float:
        t1 = _cpu()
        total = t1[0] - self.t0[0]
        return 0.0 if total <= 0 else 1.0 - (t1[1] - self.t0[1]) / total


def wait_quiet(max_wait_s: float, limit: float = 0.15) -> float:
    """Wait (up to max_wait_s) for a second in which the machine is below
    limit busy; returns the last second's share."""
    deadline = time.monotonic() + max_wait_s
    while True:
        b = Busy()
        time.sleep(1.0)
        s = b.share()
        if s < limit or time.monotonic() > deadline:
            return s


def machine() -> Dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return dict(cpus=os.cpu_count(), cpu=model, python=platform.python_version(),
                library=dlsched.library_version(), library_path=dlsched.library_path)


# ---- progress ---------------------------------------------------------------------------

class Progress:
    def __init__(self, enabled: Optional[bool] = None, silent: bool = False) -> None:
        self.on = sys.stderr.isatty() if enabled is None else enabled
        self.silent = silent

    def show(self, text: str) -> None:
        if self.on:
            sys.stderr.write("\r" + text[:150].ljust(150))
            sys.stderr.flush()

    def done(self, text: str) -> None:
        if self.silent:
            return
        if self.on:
            sys.stderr.write("\r" + " " * 150 + "\r")
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def line(label: str, t: float, n: int, version: int, lat: Optional[float],
         target: float) -> str:
    rate = n / t if t > 0 else 0.0
    lat_s = "-" if lat is None else f"{lat:.3f}"
    return (f"[{label}] {t:6.1f} s  transitions {n:>10,} ({rate:>9,.0f}/s)  "
            f"version {version:>7,}  latency {lat_s} (target {target:.3f})")


# ---- evaluation -------------------------------------------------------------------------

class Evaluator:
    """The greedy policy of given weights on the fixed evaluation stream."""

    def __init__(self, requests: int) -> None:
        self.agent = dlsched.Agent(R.SPEC, learner="none")
        self.requests = requests

    def __call__(self, weights: Any) -> float:
        self.agent.import_weights(weights)
        return R.evaluate(R.greedy(self.agent), requests=self.requests)


def learner_keys(seed: int) -> Dict[str, Any]:
    return dict(R.SPEC, seed=seed)


# ---- single process ---------------------------------------------------------------------

def run_single(mode: str, args: argparse.Namespace, target: float, prog: Progress,
               ev: Evaluator, seed: int) -> Dict[str, Any]:
    keys = learner_keys(seed)
    actor = learner = None
    if mode == "inline":
        # one gradient step of batch 64 every 8 observes: 8 samples per transition
        learner = dlsched.Agent(keys, train_every=R.SPEC["batch"] // R.REPLAY_RATIO,
                                gradient_steps=1)
        acting = learner
    elif mode == "thread":
        learner = dlsched.Agent(keys, learner="thread", replay_ratio=R.REPLAY_RATIO)
        acting = learner
    elif mode == "exchange":
        learner = dlsched.Agent(keys, learner="thread", replay_ratio=R.REPLAY_RATIO)
        actor = dlsched.Agent(keys, learner="none", exchange_capacity=65536, seed=seed + 1)
        acting = actor
    else:
        raise ValueError(mode)
    loop = R.Loop(acting, seed=seed + 100)
    busy = Busy()
    t0 = time.perf_counter()
    eval_s = 0.0
    next_eval = args.eval_every
    curve = []
    reached = None
    lat = None
    chunks = 0
    while True:
        loop.step(CHUNK)
        chunks += 1
        if actor is not None:
            blob, _, _ = actor.export_transitions()
            learner.ingest_transitions(blob)
            if chunks % 4 == 0:  # fresh weights every 1024 requests, as a server's sync
                actor.import_weights(learner.export_weights()[0])
        work = time.perf_counter() - t0 - eval_s
        if work >= next_eval:
            te = time.perf_counter()
            w, v = learner.export_weights()
            if actor is not None:
                actor.import_weights(w)
            lat = ev(w)
            eval_s += time.perf_counter() - te
            st = learner.stats()
            n = st.observed + st.transitions
            curve.append([round(work, 3), n, v, round(lat, 4)])
            prog.show(line(f"single {mode}", work, n, v, lat, target))
            if lat <= target and reached is None:
                reached = dict(time_s=work, transitions=n, version=v)
                break
            next_eval = work + args.eval_every
        if work >= args.max_s:
            break
    work = time.perf_counter() - t0 - eval_s
    st = learner.stats()
    n = st.observed + st.transitions
    out = dict(kind="run", mode=f"single {mode}", seed=seed, actors=0, processes=1,
               work_s=round(work, 3),
               transitions=n, throughput=n / work,
               train_steps=st.train_steps, samples_per_transition=(
                   st.train_steps * R.SPEC["batch"] / max(1, n)),
               reached=reached is not None,
               time_to_target_s=None if reached is None else round(reached["time_s"], 3),
               transitions_to_target=None if reached is None else reached["transitions"],
               final_latency=lat, target=target, machine_busy=round(busy.share(), 3),
               curve=curve)
    for a in (actor, learner):
        if a is not None:
            a.close()
    prog.done(line(f"single {mode}", work, n, st.model_version, lat, target)
              + ("  reached" if reached else "  not reached"))
    return out


# ---- Ray --------------------------------------------------------------------------------

def ray_classes():
    import ray
    import dlsched.ray as dr

    @ray.remote(max_concurrency=2)  # run() on one thread, halt()/info() on the other
    class Server:
        def __init__(self, learner: Any, idx: int, seed: int, batch: int) -> None:
            self.acting = dr.ActingAgent(learner, R.SPEC, actor_id=f"server-{idx}",
                                         batch=batch, max_in_flight=4,
                                         exchange_capacity=65536, seed=seed + 1000 * idx)
            self.loop = R.Loop(self.acting.agent, seed=seed + 100 + idx)
            self.halted = threading.Event()

        def ready(self) -> bool:
            return True

        def run(self, max_s: float) -> Dict[str, Any]:
            loop, sync = self.loop, self.acting.sync
            t0 = time.perf_counter()
            loop_s = sync_s = 0.0
            pc = time.perf_counter
            while not self.halted.is_set() and pc() - t0 < max_s:
                a = pc()
                loop.step(CHUNK)
                b = pc()
                sync()
                loop_s += b - a
                sync_s += pc() - b
            self.acting.flush(5.0)
            return dict(steps=loop.steps, loop_s=loop_s, sync_s=sync_s,
                        counters=self.acting.counters)

        def halt(self) -> bool:
            self.halted.set()
            return True

        def info(self) -> Dict[str, Any]:
            st = self.acting.agent.stats()
            return dict(decisions=st.decisions, pending=st.tickets_pending,
                        steps=self.loop.steps, counters=self.acting.counters)

    return Server


def run_ray(n: int, args: argparse.Namespace, target: float, prog: Progress,
            ev: Evaluator, seed: int) -> Dict[str, Any]:
    import ray
    import dlsched.ray as dr
    Server = ray_classes()
    label = f"ray x{n}"
    learner = dr.start_learner(learner_keys(seed), None, publish_every=args.publish_every,
                               checkpoint_every=0, replay_ratio=R.REPLAY_RATIO,
                               liveness_s=1.0)
    ray.get(learner.counters.remote())
    servers = [Server.remote(learner, i, seed, args.batch) for i in range(n)]
    ray.get([s.ready.remote() for s in servers])
    busy = Busy()
    t0 = time.perf_counter()
    runs = [s.run.remote(args.max_s + 5) for s in servers]
    curve = []
    reached = None
    lat = None
    c: Dict[str, Any] = {}
    next_eval = args.eval_every
    while True:
        now = time.perf_counter() - t0
        if now < next_eval:
            time.sleep(min(0.05, next_eval - now))
            continue
        version, refs = ray.get(learner.weights.remote())
        lat = ev(ray.get(refs[0]))
        c = ray.get(learner.counters.remote())
        t = time.perf_counter() - t0
        curve.append([round(t, 3), c["ingested"], version, round(lat, 4)])
        prog.show(line(label, t, c["ingested"], version, lat, target))
        if lat <= target:
            reached = dict(time_s=t, transitions=c["ingested"], version=version)
            break
        if t >= args.max_s:
            break
        next_eval = t + args.eval_every
    wall = time.perf_counter() - t0
    c = ray.get(learner.counters.remote())
    ray.get([s.halt.remote() for s in servers])
    results = ray.get(runs)
    steps = sum(r["steps"] for r in results)
    out = dict(kind="run", mode=label, seed=seed, actors=n, processes=n + 1,
               work_s=round(wall, 3),
               transitions=c["ingested"], throughput=c["ingested"] / wall,
               train_steps=c["train_steps"],
               samples_per_transition=c["train_steps"] * R.SPEC["batch"] / max(1, c["ingested"]),
               reached=reached is not None,
               time_to_target_s=None if reached is None else round(reached["time_s"], 3),
               transitions_to_target=None if reached is None else reached["transitions"],
               final_latency=lat, target=target, machine_busy=round(busy.share(), 3),
               stale_dropped=c["stale_dropped"], publishes=c["publishes"],
               learner_ingest_s_per_transition=c["ingest_s"] / max(1, c["ingested"]),
               actor_loop_us=1e6 * sum(r["loop_s"] for r in results) / max(1, steps),
               actor_sync_us=1e6 * sum(r["sync_s"] for r in results) / max(1, steps),
               actor_counters=[r["counters"] for r in results], curve=curve)
    for s in servers:
        ray.kill(s)
    ray.kill(learner)
    prog.done(line(label, wall, c["ingested"], c["version"], lat, target)
              + ("  reached" if reached else "  not reached"))
    return out


# ---- faults ---------------------------------------------------------------------------

def run_faults(args: argparse.Namespace, prog: Progress, seed: int) -> Dict[str, Any]:
    """Two servers and a checkpointing learner: kill one server, then the
    learner (Ray restarts it); what was lost, how long it took, which version."""
    import shutil
    import tempfile

    import ray
    import dlsched.ray as dr
    Server = ray_classes()
    ckdir = tempfile.mkdtemp(prefix="dlsched-ray-faults-")
    learner = dr.start_learner(learner_keys(seed), ckdir, publish_every=args.publish_every,
                               checkpoint_every=500, replay_ratio=R.REPLAY_RATIO,
                               liveness_s=0.2)
    ray.get(learner.counters.remote())
    servers = [Server.remote(learner, i, seed, args.batch) for i in range(2)]
    ray.get([s.ready.remote() for s in servers])
    runs = [s.run.remote(600) for s in servers]

    def counters(timeout: float = 10) -> Dict[str, Any]:
        return ray.get(learner.counters.remote(), timeout=timeout)

    def until(cond: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = cond()
            if v:
                return v
            time.sleep(0.02)
        raise RuntimeError(f"faults: timed out waiting for {what}")

    prog.show("[faults] warming up")
    # a trained policy first: with the first weights queues (pending tickets) run long
    until(lambda: (lambda c: c["checkpoints"] >= 2 and c["version"] >= 8000)(counters()), 90,
          "version 8000 and two checkpoints")
    # 1. kill a server
    prog.show("[faults] killing server-0")
    ray.kill(servers[0])
    t_kill = time.monotonic()
    c = until(lambda: (lambda c: c if not c["actors"]["server-0"]["alive"] else None)(
        counters()), 20, "the learner to notice server-0's death")
    noticed = time.monotonic() - t_kill
    dead = c["actors"]["server-0"]
    t1 = time.monotonic()
    time.sleep(1.0)
    c1 = counters()
    after_rate = (c1["ingested"] - c["ingested"]) / (time.monotonic() - t1)
    survivor = c1["actors"]["server-1"]
    # 2. kill the learner: Ray restarts it, it resumes from its last checkpoint
    prog.show("[faults] killing the learner")
    before = ray.get(servers[1].info.remote())
    c2 = counters()  # as late as possible before the kill
    ck_version, v_kill, old_inc = c2["checkpoint_version"], c2["version"], c2["incarnation"]
    ray.kill(learner, no_restart=False)
    t_kill = time.monotonic()

    def back() -> Optional[Dict[str, Any]]:
        # ray.kill is asynchronous: the old process may still answer a call or two
        try:
            c = counters(timeout=2)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            return None
        return c if c["incarnation"] != old_inc else None

    cb = until(back, 60, "the learner to come back")
    back_s = time.monotonic() - t_kill
    during = ray.get(servers[1].info.remote())
    inc = cb["incarnation"]
    seen: List[Dict[str, Any]] = []

    def reconnected() -> Optional[Dict[str, Any]]:
        i = ray.get(servers[1].info.remote())
        seen[:] = [i]
        c = i["counters"]
        ok = (c["learner_incarnation"] == inc
              and c["weights_imported"] > before["counters"]["weights_imported"])
        return i if ok else None

    try:
        until(reconnected, 30, "server-1 to reconnect")
    except RuntimeError as e:
        raise RuntimeError(f"{e}: its counters {seen[0]['counters'] if seen else None}, "
                           f"the learner's incarnation {inc}") from None
    reconnect_s = time.monotonic() - t_kill
    time.sleep(0.3)  # a few more syncs: the ring's drops are reported at the next export
    cc = ray.get(servers[1].info.remote())["counters"]
    out = dict(kind="faults", seed=seed,
               actor_kill=dict(noticed_s=round(noticed, 3), reason=dead["reason"],
                               lost_tickets=dead["lost_tickets"],
                               lost_unshipped=dead["lost_unshipped"],
                               lost_in_ship=dead["lost_in_ship"],
                               received_from_it=dead["received"],
                               survivor_lost=(survivor["lost_tickets"]
                                              + survivor["lost_unshipped"]
                                              + survivor["lost_in_ship"]),
                               ingest_rate_after=after_rate),
               learner_kill=dict(back_s=round(back_s, 3), reconnect_s=round(reconnect_s, 3),
                                 checkpoint_version=ck_version, learner_version_at_kill=v_kill,
                                 resumed_from=cb["resumed_from"], restarts=cb["restarts"],
                                 version_at_kill=before["counters"]["weights_version"],
                                 decisions_while_down=during["decisions"] - before["decisions"],
                                 ship_failures=cc["ship_failures"],
                                 failed_transitions=cc["failed_transitions"],
                                 resent=cc["resent"], retained_dropped=cc["retained_dropped"],
                                 ring_dropped=cc["ring_dropped"], errors=cc["errors"],
                                 weights_version_after=cc["weights_version"]))
    ray.get(servers[1].halt.remote())
    ray.get(runs[1])
    for s in servers:
        ray.kill(s)
    ray.kill(learner)
    shutil.rmtree(ckdir, ignore_errors=True)
    a, l_ = out["actor_kill"], out["learner_kill"]
    prog.done(f"[faults] server killed: noticed after {a['noticed_s']:.2f} s, lost "
              f"{a['lost_tickets']} pending tickets + {a['lost_unshipped']} unshipped + "
              f"{a['lost_in_ship']} in shipments (the survivor: {a['survivor_lost']}); learner "
              f"killed: back after {l_['back_s']:.2f} s from version {l_['resumed_from']} "
              f"(checkpoint {l_['checkpoint_version']}), server reconnected after "
              f"{l_['reconnect_s']:.2f} s, {l_['decisions_while_down']:,} decisions meanwhile")
    return out


# ---- costs for the projection ----------------------------------------------------------

def measure_costs(args: argparse.Namespace, prog: Progress, ev: Evaluator) -> Dict[str, Any]:
    import ray
    import dlsched.ray as dr
    secs = args.cost_s
    # a server's loop, in this process (one core, nothing else of ours running)
    prog.show("[costs] server loop")
    actor = dlsched.Agent(R.SPEC, learner="none", exchange_capacity=1 << 20, seed=3)
    actor.import_weights(ev.agent.export_weights()[0])  # the last evaluated: a trained policy
    loop = R.Loop(actor, seed=5)
    loop.step(2000)
    actor.export_transitions()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < secs:
        loop.step(CHUNK)
    loop_s = time.perf_counter() - t0
    steps = loop.steps - 2000
    # export in batches
    t0 = time.perf_counter()
    blobs, exported = [], 0
    while True:
        blob, k, _ = actor.export_transitions(args.batch)
        if k == 0:
            break
        blobs.append(blob)
        exported += k
    export_s = time.perf_counter() - t0
    blobs = blobs[:-1]  # whole batches only
    per_blob = args.batch
    # shipping: a .remote of one batch, as the server pays it (submission)
    prog.show("[costs] ship")
    learner = dr.start_learner(learner_keys(args.seed), None, checkpoint_every=0,
                               learning_starts=10 ** 9, liveness_s=10.0)
    ray.get(learner.counters.remote())
    sub_s = 0.0
    k = 0
    inflight = []
    t_end = time.perf_counter() + secs
    t_start = time.perf_counter()
    ingested0 = ray.get(learner.counters.remote())["ingested"]
    while time.perf_counter() < t_end:
        a = time.perf_counter()
        inflight.append(learner.ingest.remote("cost", [blobs[k % len(blobs)]], {}))
        sub_s += time.perf_counter() - a
        k += 1
        if len(inflight) >= 8:
            done, inflight = ray.wait(inflight, num_returns=1)
    ray.get(inflight)
    ship_wall = time.perf_counter() - t_start
    c = ray.get(learner.counters.remote())
    ingested = c["ingested"] - ingested0
    ray.kill(learner)
    # a training step of the learner's network at its batch
    prog.show("[costs] train step")
    t_agent = dlsched.Agent(learner_keys(args.seed), learning_starts=1000)
    for b in blobs[:40]:
        t_agent.ingest_transitions(b)
    t_agent.train(20)
    n_steps = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < secs:
        t_agent.train(50)
        n_steps += 50
    train_s = (time.perf_counter() - t0) / n_steps
    # ingest alone in C (no Ray), per transition
    i_agent = dlsched.Agent(learner_keys(args.seed), learning_starts=10 ** 9)
    t0 = time.perf_counter()
    m = 0
    while time.perf_counter() - t0 < secs / 2:
        for b in blobs[:20]:
            m += i_agent.ingest_transitions(b)[0]
    ingest_c = (time.perf_counter() - t0) / m
    actor.close()
    t_agent.close()
    i_agent.close()
    out = dict(kind="costs", batch=per_blob,
               server_loop_us=1e6 * loop_s / steps,
               export_us=1e6 * export_s / max(1, exported),
               ship_submit_us=1e6 * sub_s / max(1, k) / per_blob,
               learner_ingest_capacity=ingested / ship_wall,
               learner_ingest_c_us=1e6 * ingest_c,
               train_step_us=1e6 * train_s,
               replay_ratio=R.REPLAY_RATIO, train_batch=R.SPEC["batch"])
    prog.done(f"[costs] server {out['server_loop_us']:.1f} us + export {out['export_us']:.2f} "
              f"+ ship {out['ship_submit_us']:.2f} us per transition; learner ingests "
              f"{out['learner_ingest_capacity']:,.0f}/s through Ray "
              f"({out['learner_ingest_c_us']:.2f} us in C); train step "
              f"{out['train_step_us']:.0f} us")
    return out


def server_cost_us(costs: Dict[str, Any], runs: List[Dict[str, Any]]) -> float:
    """A server's time per transition: measured inside the Ray x1 servers
    (loop + sync), else the parts measured alone."""
    x1 = [r["actor_loop_us"] + r["actor_sync_us"] for r in runs if r["mode"] == "ray x1"]
    if x1:
        return statistics.median(x1)
    return costs["server_loop_us"] + costs["export_us"] + costs["ship_submit_us"]


def projection(costs: Dict[str, Any], runs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """throughput(n) = min(n * a, I); samples per transition = min(R, B / (c_t *
    throughput)); time to target = N* / throughput, N* the median transitions to
    target of the measured Ray setup whose median samples per transition is
    nearest (none below 3/4 of the fewest measured: not extrapolated)."""
    import math
    med = statistics.median
    a = 1e6 / server_cost_us(costs, runs)
    cap = costs["learner_ingest_capacity"]
    R_, B, ct = costs["replay_ratio"], costs["train_batch"], costs["train_step_us"] / 1e6
    groups = []
    for mode in sorted({r["mode"] for r in runs if r["mode"].startswith("ray")}):
        rs = [r for r in runs if r["mode"] == mode]
        ok = [r["transitions_to_target"] for r in rs if r["reached"]]
        if ok:
            groups.append((mode, med(r["samples_per_transition"] for r in rs), med(ok)))
    lowest = min((g[1] for g in groups), default=None)
    rows = []
    for n in (1, 2, 4, 8, 16, 32, 64, 128):
        thr = min(n * a, cap)
        ratio = min(R_, B / (ct * thr))
        near = None
        if groups and ratio >= 0.75 * lowest:
            near = min(groups, key=lambda g: abs(math.log(g[1] / ratio)))
        rows.append(dict(kind="projection", actors=n, actor_rate=a, learner_ingest_capacity=cap,
                         throughput=thr, bound="servers" if n * a < cap else "learner ingest",
                         samples_per_transition=ratio,
                         transitions_to_target=round(near[2]) if near else None,
                         from_run=near[0] if near else None,
                         time_to_target_s=near[2] / thr if near else None))
    return rows


# ---- the report -------------------------------------------------------------------------

def table(refs: Dict[str, float], target: float, runs: List[Dict[str, Any]],
          costs: Optional[Dict[str, Any]], proj: List[Dict[str, Any]],
          mach: Dict[str, Any], quick: bool, faults: Optional[Dict[str, Any]] = None) -> str:
    out = [f"# Ray scale-out ({'quick' if quick else 'full'} run)", "",
           f"Machine: {mach['cpus']} CPUs ({mach['cpu']}), Python {mach['python']}, "
           f"libdlsched {mach['library']}.", "",
           f"Evaluation stream: random {refs['random']:.2f} s, JSQ {refs['jsq']:.3f} s, "
           f"JSED {refs['jsed']:.3f} s mean latency; target {target:.3f} s "
           f"(90% of the way from JSQ to JSED).", "",
           "| run | processes | transitions/s into the learner | samples per transition "
           "| time to target | transitions to target | final latency | machine busy |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    modes: List[str] = []
    for r in runs:
        if r["mode"] not in modes:
            modes.append(r["mode"])
    for m in modes:
        rs = [r for r in runs if r["mode"] == m]
        ok = [r for r in rs if r["reached"]]
        med = statistics.median
        ttt = (f"{med(r['time_to_target_s'] for r in ok):.1f} s" if ok else "not reached")
        if len(rs) > 1:
            ttt += " (" + ", ".join(f"{r['time_to_target_s']:.1f}" if r["reached"] else "—"
                                    for r in rs) + ")"
        n2t = f"{med(r['transitions_to_target'] for r in ok):,.0f}" if ok else "—"
        lats = [r["final_latency"] for r in rs if r["final_latency"] is not None]
        lat = f"{med(lats):.3f}" if lats else "—"
        out.append(f"| {m} | {rs[0]['processes']} | {med(r['throughput'] for r in rs):,.0f} | "
                   f"{med(r['samples_per_transition'] for r in rs):.1f} | {ttt} | {n2t} | "
                   f"{lat} | {100 * med(r['machine_busy'] for r in rs):.0f}% |")
    if any(len([r for r in runs if r["mode"] == m]) > 1 for m in modes):
        out += ["", "Medians over the seeds; time to target per seed in brackets."]
    if costs:
        sc = server_cost_us(costs, runs)
        x1 = [r for r in runs if r["mode"] == "ray x1"]
        inside = ""
        if x1:
            inside = (f" Inside the Ray x1 servers: loop "
                      f"{statistics.median(r['actor_loop_us'] for r in x1):.2f} µs + sync "
                      f"{statistics.median(r['actor_sync_us'] for r in x1):.2f} µs (reaping, "
                      f"exporting, shipping, weights).")
        out += ["", "Measured costs (per transition unless said), each alone: server loop "
                f"(simulate, act, observe) {costs['server_loop_us']:.2f} µs, export "
                f"{costs['export_us']:.2f} µs, ship (submitting one `.remote` of "
                f"{costs['batch']}) {costs['ship_submit_us']:.2f} µs." + inside +
                f" A server core: {sc:.2f} µs, {1e6 / sc:,.0f} transitions/s. Learner: ingest "
                f"through Ray {costs['learner_ingest_capacity']:,.0f}/s "
                f"({costs['learner_ingest_c_us']:.2f} µs of it in C), training step "
                f"{costs['train_step_us']:.0f} µs at batch {costs['train_batch']}.", "",
                "**Projection** (a model, not measured): one core per server, a learner with "
                "one core for ingest and one for its training thread; "
                "throughput(n) = min(n × server rate, learner ingest capacity); the "
                "training thread runs back to back, so samples per transition = "
                f"min({costs['replay_ratio']}, batch / (train step × throughput)); time to "
                "target = transitions to target / throughput, the transitions taken from the "
                "measured Ray setup with the nearest samples per transition (fewer samples "
                "per transition need more transitions; no figure where the ratio falls "
                "below what was measured), ignoring the lag of weights and evaluation.", "",
                "| servers | transitions/s | bound | samples per transition "
                "| transitions to target (from) | time to target |",
                "| ---: | ---: | --- | ---: | ---: | ---: |"]
        for p in proj:
            ttt = "—" if p["time_to_target_s"] is None else f"{p['time_to_target_s']:.1f} s"
            n2t = ("— (below the measured ratios)" if p["transitions_to_target"] is None else
                   f"{p['transitions_to_target']:,} ({p['from_run']})")
            out.append(f"| {p['actors']} | {p['throughput']:,.0f} | {p['bound']} | "
                       f"{p['samples_per_transition']:.2f} | {n2t} | {ttt} |")
    if faults:
        a, l_ = faults["actor_kill"], faults["learner_kill"]
        out += ["", "Faults (2 servers, checkpoint every 500 steps, liveness ping every 0.2 s):",
                "", f"- server killed (`ray.kill`): the learner noticed after "
                f"{a['noticed_s']:.2f} s ({a['reason']}); lost: {a['lost_tickets']} pending "
                f"tickets, {a['lost_unshipped']} transitions not yet shipped, "
                f"{a['lost_in_ship']} in shipments; the other server lost "
                f"{a['survivor_lost']}; ingest went on at {a['ingest_rate_after']:,.0f}/s.",
                f"- learner killed (`ray.kill(no_restart=False)`): answering again after "
                f"{l_['back_s']:.2f} s, resumed from version {l_['resumed_from']}, its last "
                f"checkpoint (it had reached {l_['learner_version_at_kill']}; the last "
                f"checkpoint reported before the kill: {l_['checkpoint_version']}; the "
                f"servers acted with version {l_['version_at_kill']}); the surviving server made "
                f"{l_['decisions_while_down']:,} decisions meanwhile, had "
                f"{l_['ship_failures']} failed shipments ({l_['failed_transitions']:,} "
                f"transitions; {l_['resent']:,} sent again, {l_['retained_dropped']} dropped), "
                f"its exchange ring (65,536) dropped {l_['ring_dropped']:,} transitions recorded "
                f"while nothing was exported, and it took the new learner's weights "
                f"{l_['reconnect_s']:.2f} s after the kill (version {l_['weights_version_after']})."]
    return "\n".join(out) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI smoke size: under 60 s")
    ap.add_argument("--actors", default=None, help="comma list (default 1,2,4; quick 1,2)")
    ap.add_argument("--single", default=None,
                    help="single-process modes (default inline,thread,exchange; quick inline)")
    ap.add_argument("--max-s", type=float, default=None, help="per run (default 60; quick 6)")
    ap.add_argument("--eval-every", type=float, default=0.25, help="seconds")
    ap.add_argument("--eval-requests", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=1024, help="transitions per shipment")
    ap.add_argument("--publish-every", type=int, default=50)
    ap.add_argument("--cost-s", type=float, default=None, help="per cost measurement")
    ap.add_argument("--seed", type=int, default=1, help="the first run's; repeats add 1")
    ap.add_argument("--repeats", type=int, default=None, help="runs per setup (default 3; "
                    "quick 1)")
    ap.add_argument("--no-faults", action="store_true", help="skip the fault runs")
    ap.add_argument("--no-quiet-wait", action="store_true",
                    help="do not wait for a quiet machine before each run")
    ap.add_argument("--out", default=os.path.join(REPO, "build", "ray-scale", "scale.jsonl"))
    args = ap.parse_args(argv)
    q = args.quick
    actors = [int(x) for x in (args.actors or ("1,2" if q else "1,2,4")).split(",") if x]
    singles = [x for x in (args.single if args.single is not None else
                           ("inline" if q else "inline,thread,exchange")).split(",") if x]
    args.max_s = args.max_s or (6.0 if q else 60.0)
    args.cost_s = args.cost_s or (0.7 if q else 2.0)
    args.repeats = args.repeats or (1 if q else 3)
    prog = Progress()
    t_all = time.monotonic()
    try:
        import ray
    except ImportError:
        sys.stderr.write("scale.py needs Ray: pip install ray\n")
        return 2
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    mach = machine()
    refs = R.references(requests=args.eval_requests)
    target = R.target(0.9, refs)
    ev = Evaluator(args.eval_requests)
    records: List[Dict[str, Any]] = [dict(kind="setup", quick=q, machine=mach, references=refs,
                                          target=target, spec=R.SPEC, speeds=R.SPEEDS,
                                          load=R.LOAD, replay_ratio=R.REPLAY_RATIO,
                                          batch=args.batch, date=time.strftime("%Y-%m-%d"))]
    runs = []
    quiet = (lambda: wait_quiet(2.0 if q else 20.0)) if not args.no_quiet_wait else (
        lambda: None)
    for r in range(args.repeats):
        for mode in singles:
            quiet()
            runs.append(run_single(mode, args, target, prog, ev, args.seed + r))
    # workers import this directory's router and the same dlsched and library
    os.environ["DLSCHED_LIBRARY"] = dlsched.library_path
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(dlsched.__file__)))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [HERE, pkg] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False,
             object_store_memory=200 * 1024 * 1024, log_to_driver=False,
             configure_logging=False)
    try:
        if not q:  # start Ray's worker processes and imports before anything is timed
            prog.show("[warm-up] ray x1")
            warm = argparse.Namespace(**vars(args))
            warm.max_s = 2.0
            run_ray(1, warm, 0.0, Progress(False, silent=True), ev, args.seed)
        for r in range(args.repeats):
            for n in actors:
                quiet()
                runs.append(run_ray(n, args, target, prog, ev, args.seed + r))
        quiet()
        costs = measure_costs(args, prog, ev)
        faults = run_faults(args, prog, args.seed) if not args.no_faults else None
    finally:
        ray.shutdown()
    proj = projection(costs, runs)
    records += runs + [costs] + proj + ([faults] if faults else [])
    with open(args.out, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    md = table(refs, target, runs, costs, proj, mach, q, faults)
    md_path = os.path.join(os.path.dirname(os.path.abspath(args.out)), "table.md")
    with open(md_path, "w") as f:
        f.write(md)
    print(md)
    print(f"wrote {args.out} and {md_path} in {time.monotonic() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
