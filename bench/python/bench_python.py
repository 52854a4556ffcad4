#!/usr/bin/env python3
"""bench_python.py - what the Python bindings (bindings/python) cost over C.

One JSON line per figure on stdout, like the C benchmarks (bench/bench.h):
every figure next to a reference measured in the same run and process;
diagnostics go to stderr. `make bench-python` runs it in build/pyvenv.

(a) Acting, single thread, the calling thread pinned to its CPU. For a
    qtable agent (4 features x 4 bins x 8 actions) and a small dqn agent
    (4 features, hidden 64,64, 8 actions, learning_starts huge: acting never
    trains), five ways to make the same calls on fresh agents of the same
    configuration:

      c_loop          dlsched_act in a C loop (bench/python/act_floor.c,
                      compiled at run time into a temporary shared object
                      and called once through ctypes): the floor
      ctypes_argtypes lib.dlsched_act through ctypes with the package's
                      argtypes, every argument prebuilt (a state struct per
                      row): what any ctypes binding pays at least
      ctypes_raw      the same function object without argtypes, handle as
                      c_void_p (what Agent.act calls)
      agent_list      Agent.act(list of floats)
      agent_ndarray   Agent.act(float32 C-contiguous numpy array: no copy)

    act: each call timed alone with a perf_counter_ns pair (CLOCK_MONOTONIC,
    as in C) minus the median cost of an empty pair measured in the same
    language, p50 and p99; and as batches of 32 calls (mean per call, p50 of
    the batches). Tickets are observed, untimed, 64 requests later (batches:
    after the batch), as bench_qtable does, so they never fill up. Warm-up
    calls first, untimed: 50,000 (qtable), 10,000 (dqn), so that epsilon is
    at its end value (epsilon_decay_steps 10,000). added_p50_ns = Python p50
    - C loop p50; target <= 2000 ns for the qtable agent (met: true/false).
    act_observe: act and then observe its ticket at once (the pair timed).
    components: the cost of each step of a Python act, the previous way next
    to the current one (python_act_components). Garbage collection stays on,
    as in a user's process.

(b) CartPole-v1 DQN training through dlsched.gym.train with the
    rl-baselines3-zoo settings (sb3_settings: learning_rate 2.3e-3,
    batch_size 64, buffer_size 100000, learning_starts 1000, gamma 0.99,
    target_update_interval 10, train_freq 256, gradient_steps 128,
    exploration_fraction 0.16, exploration_final_eps 0.04, net_arch
    [256, 256]; total_timesteps 50000 as the zoo's n_timesteps, so epsilon
    decays over 8000 steps) for --train-steps environment steps (10,000),
    in environment steps per second, next to the environment alone
    stepping with random actions, and to the same loop with learning off.

Usage: bench_python.py [--quick] [--only act|train] [--train-steps N]
"""
from __future__ import annotations

import argparse
import copy
import ctypes
import gc
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))

# the package and library of this tree, unless the caller chose others
if not os.environ.get("DLSCHED_LIBRARY") and os.path.exists(os.path.join(TOP, "lib",
                                                                         "libdlsched.so.1")):
    os.environ["DLSCHED_LIBRARY"] = os.path.join(TOP, "lib", "libdlsched.so.1")
# this tree's package first (an installed copy may be older): the benchmark
# measures the tree it lives in
if os.path.isdir(os.path.join(TOP, "bindings", "python", "src", "dlsched")):
    sys.path.insert(0, os.path.join(TOP, "bindings", "python", "src"))
import dlsched  # noqa: E402
from dlsched import _lib  # noqa: E402

import numpy as np  # noqa: E402

pc = time.perf_counter_ns

QTABLE = ("algo=qtable n_features=4 n_actions=8 bins=4 feature_low=0 feature_high=1 seed=7 "
          "ticket_capacity=65536")
DQN = ("algo=dqn n_features=4 n_actions=8 hidden=64,64 cpu_threads=1 seed=7 replay=65536 "
       "learning_starts=4611686018427387904")
ROWS = 4096          # states cycled through (a random walk in [0, 1)^4)
WALK_STEP = 0.03
LAG = 64             # tickets in flight while acting
BATCH = 32
TARGET_ADDED_NS = 2000.0
HUGE = 4611686018427387904

ZOO_CARTPOLE = dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000,
                    learning_starts=1000, gamma=0.99, target_update_interval=10,
                    train_freq=256, gradient_steps=128, exploration_fraction=0.16,
                    exploration_final_eps=0.04, policy_kwargs=dict(net_arch=[256, 256]))
ZOO_TIMESTEPS = 50_000


# ---- machine and output ---------------------------------------------------------

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def openblas_info() -> dict:
    """The OpenBLAS libdlsched runs on (the one mapped into this process under
    the name libopenblas*, not numpy's own copy): config, core, threads."""
    _lib.load()
    path = None
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                p = line.split()[-1]
                if os.path.basename(p).startswith("libopenblas"):
                    path = p
                    break
    except OSError:
        pass
    out = {"openblas_library": path, "openblas_config": None, "openblas_core": None,
           "openblas_threads": None}
    if not path:
        return out
    try:
        ob = ctypes.CDLL(path)
        ob.openblas_get_config.restype = ctypes.c_char_p
        ob.openblas_get_corename.restype = ctypes.c_char_p
        out["openblas_config"] = ob.openblas_get_config().decode()
        out["openblas_core"] = ob.openblas_get_corename().decode()
        out["openblas_threads"] = int(ob.openblas_get_num_threads())
    except (OSError, AttributeError):
        pass
    return out


ENV = {}


def num(v):
    """bench_line_num: integers as such, else 4 significant digits; NaN -> null."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return None
    if isinstance(v, bool):
        return v
    if float(v) == math.floor(v) and abs(v) < 1e15:
        return int(v)
    return float(f"{v:.4g}")


def emit(**fields):
    line = {k: (num(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
            for k, v in fields.items()}
    line["threads"] = "1"
    line.update(ENV)
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def pct(sorted_v, p):
    """nearest-rank percentile of a sorted list (bench_percentile)"""
    n = len(sorted_v)
    rank = max(1, min(n, math.ceil(p / 100.0 * n)))
    return sorted_v[rank - 1]


def summary(v):
    v = sorted(v)
    return pct(v, 50), pct(v, 99)


def pin_cpu() -> int:
    try:
        libc = ctypes.CDLL(None)
        cpu = int(libc.sched_getcpu())
        os.sched_setaffinity(0, {cpu})
        return cpu
    except (OSError, AttributeError, ValueError):
        return -1


# ---- inputs ---------------------------------------------------------------------

def walk(rows: int, nf: int, seed: int) -> np.ndarray:
    """a random walk in [0, 1): each feature moves by at most WALK_STEP per row"""
    rng = np.random.default_rng(seed)
    x = np.empty((rows, nf), dtype=np.float64)
    x[0] = rng.random(nf)
    for i in range(1, rows):
        v = x[i - 1] + WALK_STEP * (2 * rng.random(nf) - 1)
        v = np.where(v < 0, -v, v)
        v = np.where(v >= 1, 2 - v - 1e-6, v)
        x[i] = v
    return np.ascontiguousarray(x, dtype=np.float32)


def reward_of(i: int) -> float:
    """the same sequence as act_floor.c and bench_qtable.c (float32 arithmetic)"""
    v = np.float32(((i * 2654435761) % (1 << 64)) % 1000)
    return float(-v * np.float32(0.001))


# ---- the C floor ----------------------------------------------------------------

class Floor:
    def __init__(self, tmp: str) -> None:
        cc = os.environ.get("CC", "cc")
        so = os.path.join(tmp, "act_floor.so")
        cmd = [cc, "-O2", "-std=c11", "-D_GNU_SOURCE", "-shared", "-fPIC",
               "-I" + os.path.join(TOP, "include"), "-I" + os.path.join(TOP, "bench"),
               "-o", so, os.path.join(HERE, "act_floor.c")]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            sys.stderr.write(f"bench_python: compiling the C floor failed: {' '.join(cmd)}\n"
                             f"{r.stderr}\n")
            sys.exit(1)
        self.cmd = " ".join(["cc" if c == cc else c for c in cmd[:6]])
        f = ctypes.CDLL(so)
        u64p = ctypes.POINTER(ctypes.c_uint64)
        vp, sz, u32 = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint32
        f.floor_clock_overhead.restype = ctypes.c_uint64
        f.floor_clock_overhead.argtypes = [u64p, sz]
        f.floor_act.restype = ctypes.c_int
        f.floor_act.argtypes = [vp, vp, vp, vp, sz, u32, u32, sz, sz, u32, u32, ctypes.c_uint64,
                                u64p]
        f.floor_pair.restype = ctypes.c_int
        f.floor_pair.argtypes = [vp, vp, vp, vp, sz, u32, sz, sz, ctypes.c_uint64, u64p]
        self.f = f
        lib = _lib.lib()
        self.act_addr = ctypes.cast(lib.dlsched_act, vp).value
        self.observe_addr = ctypes.cast(lib.dlsched_observe, vp).value
        scratch = (ctypes.c_uint64 * 200_000)()
        self.clock_ns = int(f.floor_clock_overhead(scratch, 200_000))
        s = sorted(scratch)
        self.clock_p99 = pct(s, 99)

    def act(self, agent, x, warmup, n, batch=1, greedy=False):
        out = (ctypes.c_uint64 * n)()
        rc = self.f.floor_act(self.act_addr, self.observe_addr, agent._h, x.ctypes.data, x.shape[0],
                              x.shape[1], 1 if greedy else 0, warmup, n, LAG, batch,
                              self.clock_ns, out)
        if rc:
            raise RuntimeError(f"floor_act failed: {rc} {dlsched.strerror(rc)}")
        return list(out)

    def pair(self, agent, x, warmup, n):
        out = (ctypes.c_uint64 * n)()
        rc = self.f.floor_pair(self.act_addr, self.observe_addr, agent._h, x.ctypes.data, x.shape[0],
                               x.shape[1], warmup, n, self.clock_ns, out)
        if rc:
            raise RuntimeError(f"floor_pair failed: {rc} {dlsched.strerror(rc)}")
        return list(out)


# ---- the Python side ------------------------------------------------------------

def py_clock_overhead(n: int = 200_000):
    v = [0] * n
    for i in range(n):
        t0 = pc()
        t1 = pc()
        v[i] = t1 - t0
    return summary(v)


class Inputs:
    """One state set in every form the variants take, built before timing."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self.rows = x.shape[0]
        self.arrays = list(x)                       # C-contiguous float32 row views
        self.lists = [r.tolist() for r in x]
        self.rewards = [reward_of(i) for i in range(self.rows)]
        nf = x.shape[1]
        self.structs = []
        for r in self.arrays:
            st = _lib.dlsched_state_t()
            st.features = r.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            st.n_features = nf
            st.hint = -1
            self.structs.append(st)
        self.refs = [ctypes.byref(s) for s in self.structs]


def raw_function(name: str):
    lib = _lib.lib()
    fn = lib._FuncPtr((name, lib))
    fn.restype = ctypes.c_int
    return fn


def ctypes_funcs(kind: str, agent):
    """(act, observe, handle, ticket, reward converters) of a ctypes variant"""
    lib = _lib.lib()
    if kind == "ctypes_argtypes":
        return lib.dlsched_act, lib.dlsched_observe, agent._h, int, float
    return (raw_function("dlsched_act"), raw_function("dlsched_observe"),
            ctypes.c_void_p(agent._h), ctypes.c_uint64, ctypes.c_float)


def _check(rc, what):
    if rc:
        raise RuntimeError(f"{what} failed: {rc} {dlsched.strerror(rc)}")


# Each loop below times exactly one call (or one batch, or one pair) between
# two perf_counter_ns reads, with its arguments fetched before the first
# read; the untimed work (observing a lagged ticket) comes after the second.

def py_act_single(kind, agent, inp, warmup, n, clock):
    rows, rewards = inp.rows, inp.rewards
    lat = [0] * n
    ring = [0] * LAG
    if kind.startswith("ctypes"):
        act, observe, h, ct, cr = ctypes_funcs(kind, agent)
        xs = inp.refs
        dec = _lib.dlsched_decision_t()
        dref = ctypes.byref(dec)
        for i in range(warmup + n):
            x = xs[i % rows]
            t0 = pc()
            rc = act(h, x, 0, dref)
            t1 = pc()
            _check(rc, "dlsched_act")
            if i >= warmup:
                dt = t1 - t0 - clock
                lat[i - warmup] = dt if dt > 0 else 0
            k = i % LAG
            if i >= LAG and ring[k]:
                j = i - LAG
                _check(observe(h, ct(ring[k]), cr(rewards[j % rows]), xs[(j + 1) % rows], 0),
                       "dlsched_observe")
            ring[k] = dec.ticket
        return lat
    xs = inp.lists if kind == "agent_list" else inp.arrays
    act, observe = agent.act, agent.observe
    for i in range(warmup + n):
        x = xs[i % rows]
        t0 = pc()
        d = act(x)
        t1 = pc()
        if i >= warmup:
            dt = t1 - t0 - clock
            lat[i - warmup] = dt if dt > 0 else 0
        k = i % LAG
        if i >= LAG and ring[k]:
            j = i - LAG
            observe(ring[k], rewards[j % rows], xs[(j + 1) % rows])
        ring[k] = d.ticket
    return lat


def py_act_batches(kind, agent, inp, warmup, nbatches):
    """batches of BATCH calls, each batch one list comprehension over its
    inputs (the Python loop's own cost is in the figure, as C's is)"""
    rows, rewards = inp.rows, inp.rewards
    assert rows % BATCH == 0
    wb = (warmup + BATCH - 1) // BATCH
    out = [0] * nbatches
    if kind.startswith("ctypes"):
        act, observe, h, ct, cr = ctypes_funcs(kind, agent)
        xs = inp.refs
        decs = [_lib.dlsched_decision_t() for _ in range(BATCH)]
        drefs = [ctypes.byref(d) for d in decs]
        for b in range(wb + nbatches):
            i0 = (b * BATCH) % rows
            pairs = list(zip(xs[i0:i0 + BATCH], drefs))
            t0 = pc()
            rcs = [act(h, x, 0, dr) for x, dr in pairs]
            t1 = pc()
            _check(any(rcs), "dlsched_act")
            if b >= wb:
                out[b - wb] = t1 - t0
            for k, d in enumerate(decs):
                if d.ticket:
                    _check(observe(h, ct(d.ticket), cr(rewards[(i0 + k) % rows]),
                                   xs[(i0 + k + 1) % rows], 0), "dlsched_observe")
        return out
    xs = inp.lists if kind == "agent_list" else inp.arrays
    act, observe = agent.act, agent.observe
    for b in range(wb + nbatches):
        i0 = (b * BATCH) % rows
        chunk = xs[i0:i0 + BATCH]
        t0 = pc()
        res = [act(x) for x in chunk]
        t1 = pc()
        if b >= wb:
            out[b - wb] = t1 - t0
        for k, d in enumerate(res):
            if d.ticket:
                observe(d.ticket, rewards[(i0 + k) % rows], xs[(i0 + k + 1) % rows])
    return out


def py_pair(kind, agent, inp, warmup, n, clock):
    rows, rewards = inp.rows, inp.rewards
    lat = [0] * n
    if kind.startswith("ctypes"):
        act, observe, h, ct, cr = ctypes_funcs(kind, agent)
        xs = inp.refs
        dec = _lib.dlsched_decision_t()
        dref = ctypes.byref(dec)
        if kind == "ctypes_argtypes":
            for i in range(warmup + n):
                x, nx, r = xs[i % rows], xs[(i + 1) % rows], rewards[i % rows]
                t0 = pc()
                rc = act(h, x, 0, dref) or observe(h, dec.ticket, r, nx, 0)
                t1 = pc()
                _check(rc, "dlsched_act/observe")
                if i >= warmup:
                    dt = t1 - t0 - clock
                    lat[i - warmup] = dt if dt > 0 else 0
            return lat
        for i in range(warmup + n):
            x, nx, r = xs[i % rows], xs[(i + 1) % rows], rewards[i % rows]
            t0 = pc()
            rc = act(h, x, 0, dref) or observe(h, ct(dec.ticket), cr(r), nx, 0)
            t1 = pc()
            _check(rc, "dlsched_act/observe")
            if i >= warmup:
                dt = t1 - t0 - clock
                lat[i - warmup] = dt if dt > 0 else 0
        return lat
    xs = inp.lists if kind == "agent_list" else inp.arrays
    act, observe = agent.act, agent.observe
    for i in range(warmup + n):
        x, nx, r = xs[i % rows], xs[(i + 1) % rows], rewards[i % rows]
        t0 = pc()
        d = act(x)
        observe(d.ticket, r, nx)
        t1 = pc()
        if i >= warmup:
            dt = t1 - t0 - clock
            lat[i - warmup] = dt if dt > 0 else 0
    return lat


# ---- (a) acting -----------------------------------------------------------------

VARIANTS = ["c_loop", "ctypes_argtypes", "ctypes_raw", "agent_list", "agent_ndarray"]
REF_NAME = ("dlsched_act in a C loop in this process (bench/python/act_floor.c), same agent "
            "config, states and ticket lag")


def bench_act(floor, name, spec, samples, warmup, py_clock, targets):
    x = walk(ROWS, 4, 1000 if name == "qtable" else 1001)
    inp = Inputs(x)
    res = {}
    for v in VARIANTS:  # one call per timing
        agent = dlsched.Agent(spec)
        if v == "c_loop":
            lat = floor.act(agent, x, warmup, samples)
        else:
            lat = py_act_single(v, agent, inp, warmup, samples, py_clock)
        agent.close()
        res[v] = summary(lat)
    nb = max(1, samples // BATCH)
    means = {}
    for v in VARIANTS:  # batches of BATCH calls
        agent = dlsched.Agent(spec)
        if v == "c_loop":
            tb = floor.act(agent, x, warmup, nb, batch=BATCH)
        else:
            tb = py_act_batches(v, agent, inp, warmup, nb)
        agent.close()
        means[v] = summary([t / BATCH for t in tb])[0]
    c50, c99 = res["c_loop"]
    for v in VARIANTS:
        p50, p99 = res[v]
        fields = dict(bench="python_act_latency", agent=name, config=spec, variant=v,
                      p50_ns=p50, p99_ns=p99, batch32_p50_ns_per_call=means[v],
                      unit="ns", reference_p50_ns=c50, reference_p99_ns=c99,
                      reference_batch32_p50_ns_per_call=means["c_loop"],
                      reference_name=REF_NAME, ratio_p50=p50 / c50 if c50 else None,
                      added_p50_ns=p50 - c50, added_p99_ns=p99 - c99,
                      added_batch32_ns=means[v] - means["c_loop"],
                      samples=samples, warmup=warmup, act_in_flight=LAG,
                      timing=("C: clock_gettime pair minus its median" if v == "c_loop" else
                              "time.perf_counter_ns pair minus its median (Python)"),
                      clock_overhead_ns=floor.clock_ns if v == "c_loop" else py_clock)
        if name in targets and v.startswith("agent"):
            fields.update(target="added_p50_ns <= 2000", met=(p50 - c50) <= TARGET_ADDED_NS)
        emit(**fields)
    return res


def bench_pair(floor, name, spec, samples, warmup, py_clock):
    x = walk(ROWS, 4, 2000 if name == "qtable" else 2001)
    inp = Inputs(x)
    res = {}
    for v in VARIANTS:
        agent = dlsched.Agent(spec)
        if v == "c_loop":
            lat = floor.pair(agent, x, warmup, samples)
        else:
            lat = py_pair(v, agent, inp, warmup, samples, py_clock)
        agent.close()
        res[v] = summary(lat)
    c50, c99 = res["c_loop"]
    for v in VARIANTS:
        p50, p99 = res[v]
        emit(bench="python_act_observe_latency", agent=name, config=spec, variant=v,
             p50_ns=p50, p99_ns=p99, unit="ns", reference_p50_ns=c50, reference_p99_ns=c99,
             reference_name="dlsched_act then dlsched_observe of its ticket (next state, "
                            "flags 0) in a C loop in this process",
             ratio_p50=p50 / c50 if c50 else None, added_p50_ns=p50 - c50,
             added_p99_ns=p99 - c99, samples=samples, warmup=warmup,
             timing="one clock pair around act+observe, minus the pair's median")


def per_call(fn, n):
    """best of 5 runs of n calls: ns per call (a loop with fn() in it)"""
    best = None
    for _ in range(5):
        t0 = pc()
        for _ in range(n):
            fn()
        t = (pc() - t0) / n
        best = t if best is None or t < best else best
    return best


def bench_components(n):
    """What one Python act spends where: each step timed alone in a loop of
    n calls (best of 5, the empty loop subtracted), the package's previous
    way (1.1.0 as first written: argtypes, obs.ctypes.data_as, a new
    c_float array per list, Decision from the ctypes fields) next to the
    current one, and the whole act both ways (the previous act rebuilt here
    from the same pieces)."""
    from dlsched import _agent as A
    from dlsched.errors import raise_for
    agent = dlsched.Agent(QTABLE)
    x = walk(64, 4, 3)[7].copy()
    xl = x.tolist()
    lib = _lib.lib()
    st = _lib.dlsched_state_t()
    st.features = x.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    st.n_features, st.hint = 4, -1
    dec = _lib.dlsched_decision_t()
    sref, dref, h, hv = ctypes.byref(st), ctypes.byref(dec), agent._h, ctypes.c_void_p(agent._h)
    raw = raw_function("dlsched_act")
    f32p = ctypes.POINTER(ctypes.c_float)
    fbuf = (ctypes.c_float * 4)()
    fp = ctypes.c_void_p.from_buffer(st, _lib.dlsched_state_t.features.offset)
    tls = agent._tls
    D = dlsched.Decision
    unpack, bits, tnew = A._DECISION_UNPACK, A._FLAG_BITS, tuple.__new__
    lib.dlsched_act(h, sref, 1, dref)

    def decision_old():
        d = dec
        f = d.flags
        return D(d.action, d.ticket, bool(f & 1), bool(f & 2), d.value, d.probability,
                 d.model_version, bool(f & 4))

    def decision_new():
        ticket, version, action, f, value, prob = unpack(dec)
        explored, hinted, incumbent = bits[f & 7]
        return tnew(D, (action, ticket, explored, hinted, value, prob, version, incumbent))

    def act_old(obs, greedy=True):  # Agent.act before this benchmark's changes
        hh = agent._handle()
        sc = agent._scratch()
        keep = agent._fill(sc.state, obs, None, None, "obs")
        rc = lib.dlsched_act(hh, sc.state_ref, 1 if greedy else 0, sc.dec_ref)
        if rc:
            raise_for(rc, "dlsched_act")
        d = sc.dec
        f = d.flags
        del keep
        return D(d.action, d.ticket, bool(f & 1), bool(f & 2), d.value, d.probability,
                 d.model_version, bool(f & 4))

    agent.observe_transition(x, 3, 1.0, terminated=True)  # one argmax: the same decision
    assert act_old(x) == agent.act(x, greedy=True) == act_old(xl) == agent.act(xl, greedy=True)
    loop = per_call(lambda: None, n)
    items = [
        ("call", "old", "ctypes call with argtypes (int handle, byref structs)",
         lambda: lib.dlsched_act(h, sref, 1, dref)),
        ("call", "new", "ctypes call without argtypes (c_void_p handle, byref structs)",
         lambda: raw(hv, sref, 1, dref)),
        ("call", "ref", "ctypes call of a function without arguments (dlsched_version)",
         lambda: lib.dlsched_version()),
        ("ndarray", "old", "state.features = obs.ctypes.data_as(POINTER(c_float))",
         lambda: setattr(st, "features", x.ctypes.data_as(f32p))),
        ("ndarray", "alt", "obs.ctypes.data_as(POINTER(c_float)) alone",
         lambda: x.ctypes.data_as(f32p)),
        ("ndarray", "alt", "obs.ctypes.data", lambda: x.ctypes.data),
        ("ndarray", "alt", "obs.__array_interface__['data'][0]",
         lambda: x.__array_interface__["data"][0]),
        ("ndarray", "new", "alias.value = addressof(c_float.from_buffer(obs))",
         lambda: setattr(fp, "value", ctypes.addressof(ctypes.c_float.from_buffer(x)))),
        ("list", "old", "state.features = (c_float * n)(*obs)",
         lambda: setattr(st, "features", agent._ftype(*xl))),
        ("list", "new", "buf[:] = obs; alias.value = address of buf",
         lambda: (fbuf.__setitem__(slice(None), xl), setattr(fp, "value", 8))),
        ("checks", "old", "obs.dtype != float32 or not obs.flags.c_contiguous; obs.size",
         lambda: (x.dtype != np.float32 or not x.flags.c_contiguous) or x.size != 4),
        ("checks", "new", "type(obs) is ndarray and obs.dtype is float32 and obs.size == n",
         lambda: type(x) is A._NDARRAY and x.dtype is A._F32 and x.size == 4),
        ("fields", "old", "state.n_features, n_mask, mask, hint stored every call",
         lambda: (setattr(st, "n_features", 4), setattr(st, "n_mask", 0),
                  setattr(st, "mask", None), setattr(st, "hint", -1))),
        ("fields", "new", "(stored only after a call with a mask or a hint)", lambda: None),
        ("scratch", "old", "self._scratch() (method call + threading.local)",
         lambda: agent._scratch()),
        ("scratch", "new", "self._tls.s inline (try/except AttributeError)", lambda: tls.s),
        ("decision", "old", "Decision(d.action, d.ticket, bool(f & 1), ...) from ctypes fields",
         decision_old),
        ("decision", "new", "struct.unpack_from + flag table + tuple.__new__(Decision, ...)",
         decision_new),
        ("whole", "old", "Agent.act(ndarray, greedy=True), the previous code",
         lambda: act_old(x)),
        ("whole", "new", "Agent.act(ndarray, greedy=True)", lambda: agent.act(x, greedy=True)),
        ("whole", "old", "Agent.act(list, greedy=True), the previous code",
         lambda: act_old(xl)),
        ("whole", "new", "Agent.act(list, greedy=True)", lambda: agent.act(xl, greedy=True)),
    ]
    for part, way, what, fn in items:
        t = per_call(fn, n)
        emit(bench="python_act_components", part=part, way=way, step=what,
             value=max(t - loop, 0.0), unit="ns", reference=loop,
             reference_name="the same loop calling an empty lambda",
             timing=f"best of 5 loops of {n} calls, minus the empty loop")
    agent.close()


# ---- (b) CartPole training ------------------------------------------------------

def bench_train(steps: int) -> None:
    import gymnasium as gym
    from dlsched.gym import env_keys, sb3_settings, train

    def env_alone(seed: int) -> float:
        env = gym.make("CartPole-v1")
        env.reset(seed=seed)
        acts = np.random.default_rng(seed).integers(0, 2, size=steps).tolist()
        step, reset = env.step, env.reset
        t0 = pc()
        for a in acts:
            _o, _r, term, trunc, _i = step(a)
            if term or trunc:
                reset()
        t = (pc() - t0) / 1e9
        env.close()
        return steps / t

    def run(learn: bool):
        env = gym.make("CartPole-v1")
        # a copy each time: sb3_settings takes net_arch out of the policy_kwargs
        # dict it is given (dlsched 1.1.0), so a second call would get [64, 64]
        keys = {**env_keys(env), **sb3_settings(ZOO_TIMESTEPS, **copy.deepcopy(ZOO_CARTPOLE)),
                "seed": 1, "cpu_threads": 1}
        assert keys["hidden"] == [256, 256], keys
        if not learn:
            keys["learning_starts"] = HUGE
        with dlsched.Agent(keys) as agent:
            t0 = pc()
            log = train(env, agent, steps, seed=1, progress=False)
            t = (pc() - t0) / 1e9
            st = agent.stats()
        env.close()
        return steps / t, t, st, log, keys

    ref1 = env_alone(0)
    noln, _, _, _, _ = run(False)
    rate, wall, st, log, keys = run(True)
    ref2 = env_alone(1)
    ref = (ref1 + ref2) / 2
    cfg = " ".join(f"{k}={v}" for k, v in keys.items() if k not in ("seed",))
    emit(bench="python_cartpole_env_alone", value=ref, unit="steps/s",
         runs=[num(ref1), num(ref2)], env="CartPole-v1 (gymnasium " + gym.__version__ + ")",
         timing="env.step with pre-drawn random actions, env.reset at episode ends; the mean "
                "of a run before and one after the training runs")
    emit(bench="python_cartpole_loop_no_learning", value=noln, unit="steps/s", reference=ref,
         reference_name="the environment alone, random actions", ratio=noln / ref,
         env_steps=steps, config=cfg.replace(f"learning_starts={keys['learning_starts']}",
                                             f"learning_starts={HUGE}"),
         timing="dlsched.gym.train: act, env.step, observe per step; never trains")
    recent = log.returns[-20:]
    emit(bench="python_cartpole_dqn_train_throughput", value=rate, unit="steps/s",
         reference=ref, reference_name="the environment alone, random actions",
         ratio=rate / ref, env_steps=steps, wall_s=wall, train_steps=st.train_steps,
         gradient_steps_per_s=st.train_steps / wall, episodes=len(log.returns),
         mean_return_last20=(sum(recent) / len(recent)) if recent else None,
         zoo_settings="learning_rate 2.3e-3, batch_size 64, buffer_size 100000, "
                      "learning_starts 1000, gamma 0.99, target_update_interval 10, "
                      "train_freq 256, gradient_steps 128, exploration_fraction 0.16, "
                      "exploration_final_eps 0.04, net_arch [256, 256]; total_timesteps "
                      f"{ZOO_TIMESTEPS}",
         config=cfg, timing="dlsched.gym.train wall time (perf_counter_ns), seed 1")


# ---- main -----------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="few samples (a smoke run)")
    ap.add_argument("--only", choices=["act", "train"], help="one part only")
    ap.add_argument("--train-steps", type=int, default=10_000)
    a = ap.parse_args()
    samples, warmup, comp_n = (5000, 2000, 5000) if a.quick else (200_000, 50_000, 50_000)
    dqn_samples = samples // 4 if not a.quick else samples
    dqn_warmup = warmup // 5

    ENV.update(machine=cpu_model(), nproc=os.cpu_count(),
               openblas_coretype=os.environ.get("OPENBLAS_CORETYPE"),
               openblas_l2_size=os.environ.get("OPENBLAS_L2_SIZE"))
    cpu = pin_cpu()
    ob = openblas_info()
    with tempfile.TemporaryDirectory(prefix="bench_python.") as tmp:
        floor = Floor(tmp) if a.only != "train" else None
        py_clock, py_clock99 = py_clock_overhead()
        emit(bench="python_header", library_version=dlsched.library_version(),
             library_path=dlsched.library_path, package=os.path.dirname(dlsched.__file__),
             python=platform.python_version(), implementation=platform.python_implementation(),
             numpy=np.__version__, clock="time.perf_counter_ns (CLOCK_MONOTONIC); C: "
             "clock_gettime(CLOCK_MONOTONIC)",
             py_clock_overhead_ns=py_clock, py_clock_overhead_p99_ns=py_clock99,
             c_clock_overhead_ns=floor.clock_ns if floor else None,
             c_clock_overhead_p99_ns=floor.clock_p99 if floor else None,
             c_floor_build=floor.cmd if floor else None, pinned_cpu=cpu,
             gc="enabled (as in a user's process)", **ob)
        if a.only != "train":
            bench_act(floor, "qtable", QTABLE, samples, warmup, py_clock, ("qtable",))
            bench_act(floor, "dqn", DQN, dqn_samples, dqn_warmup, py_clock, ())
            bench_pair(floor, "qtable", QTABLE, samples // 2, warmup // 5, py_clock)
            bench_pair(floor, "dqn", DQN, dqn_samples // 2, dqn_warmup, py_clock)
            bench_components(comp_n)
    if a.only != "act":
        try:
            import gymnasium  # noqa: F401
        except ImportError:
            sys.stderr.write("bench_python: gymnasium is not installed: the CartPole part is "
                             "skipped (pip install gymnasium)\n")
            return 0
        bench_train(2000 if a.quick else a.train_steps)
    return 0


if __name__ == "__main__":
    gc.collect()
    sys.exit(main())
