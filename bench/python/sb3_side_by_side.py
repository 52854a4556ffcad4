#!/usr/bin/env python3
"""sb3_side_by_side.py - Stable-Baselines3 DQN and libdlsched on CartPole-v1,
the same rl-baselines3-zoo settings, the same seeds, in one process.

Not part of CI or `make bench-python`: it needs PyTorch and SB3, which this
project does not install. A venv for it:

    python3 -m venv build/sb3venv
    build/sb3venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
    build/sb3venv/bin/pip install stable-baselines3 gymnasium numpy
    build/sb3venv/bin/python bench/python/sb3_side_by_side.py

(Where that index is out of reach, `pip install torch` from PyPI works too:
the CUDA build, several GB, run here on the CPU.)

For each seed, each library trains DQN for --steps environment steps (50,000,
the zoo's n_timesteps) with learning_rate 2.3e-3, batch_size 64,
buffer_size 100000, learning_starts 1000, gamma 0.99,
target_update_interval 10, train_freq 256, gradient_steps 128,
exploration_fraction 0.16, exploration_final_eps 0.04, net_arch [256, 256]
(libdlsched through dlsched.gym.sb3_settings), then plays 20 greedy episodes
(SB3: model.predict(deterministic=True); libdlsched: dlsched.gym.evaluate) on
a fresh CartPole-v1 reset with seed 1000 + seed once. One thread each:
torch.set_num_threads(1) and set_num_interop_threads(1); libdlsched
cpu_threads=1. The two alternate (SB3 then libdlsched for each seed), so that
a busy machine slows both alike.

Prints JSON lines (the machine, SB3's DQN defaults read from
inspect.signature(DQN.__init__) and compared with the values dlsched.gym
assumes, one line per training run, one summary per library), then a table.
"""
from __future__ import annotations

import argparse
import copy
import inspect
import json
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

PIP_HINT = ("pip install torch --index-url https://download.pytorch.org/whl/cpu && "
            "pip install stable-baselines3 gymnasium numpy   (in a venv, e.g. "
            "python3 -m venv build/sb3venv; from PyPI alone: pip install torch "
            "stable-baselines3 gymnasium numpy)")

try:
    import torch
    import stable_baselines3
    from stable_baselines3 import DQN
except ImportError as e:
    sys.stderr.write(f"sb3_side_by_side: stable_baselines3 / torch is not importable ({e}).\n"
                     f"Install them: {PIP_HINT}\n")
    sys.exit(2)
try:
    import gymnasium as gym
except ImportError:
    sys.stderr.write(f"sb3_side_by_side: gymnasium is not importable. Install: {PIP_HINT}\n")
    sys.exit(2)

import bench_python as bp  # noqa: E402  (this tree's dlsched, the machine helpers)
import dlsched  # noqa: E402
from dlsched.gym import SB3_DEFAULTS, env_keys, evaluate, sb3_settings, train  # noqa: E402

ZOO = dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
           gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
           exploration_fraction=0.16, exploration_final_eps=0.04,
           policy_kwargs=dict(net_arch=[256, 256]))

# what the brief (and dlsched.gym.SB3_DEFAULTS) take SB3's defaults to be
EXPECTED_DEFAULTS = dict(learning_rate=1e-4, buffer_size=1_000_000, learning_starts=100,
                         batch_size=32, tau=1.0, gamma=0.99, train_freq=4, gradient_steps=1,
                         target_update_interval=10_000, exploration_fraction=0.1,
                         exploration_initial_eps=1.0, exploration_final_eps=0.05,
                         max_grad_norm=10)


def emit(**fields):
    bp.emit(**fields)


def sb3_defaults():
    sig = inspect.signature(DQN.__init__)
    found = {k: p.default for k, p in sig.parameters.items()
             if p.default is not inspect.Parameter.empty}
    rows = {}
    for k, want in EXPECTED_DEFAULTS.items():
        got = found.get(k, "(no such parameter)")
        rows[k] = {"sb3": got, "expected": want, "same": got == want,
                   "dlsched_gym": SB3_DEFAULTS.get(k)}
    emit(bench="sb3_dqn_defaults", stable_baselines3=stable_baselines3.__version__,
         signature=str(sig), all_same=all(r["same"] for r in rows.values()),
         dlsched_gym_same=all(r["dlsched_gym"] == r["sb3"] for r in rows.values()),
         compared=rows, other_defaults={k: repr(v) for k, v in found.items()
                                        if k not in EXPECTED_DEFAULTS})
    return rows


def play(predict, episodes: int, seed: int):
    """greedy returns of `episodes` episodes on a fresh CartPole-v1, reset with
    seed once (the protocol of dlsched.gym.evaluate)"""
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=seed)
    out = []
    while len(out) < episodes:
        ep, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(predict(obs))
            ep += float(r)
            done = bool(term or trunc)
        out.append(ep)
        if len(out) < episodes:
            obs, _ = env.reset()
    env.close()
    return out


def run_sb3(seed: int, steps: int, episodes: int) -> dict:
    t0 = time.perf_counter()
    model = DQN("MlpPolicy", gym.make("CartPole-v1"), seed=seed, device="cpu", verbose=0,
                **copy.deepcopy(ZOO))
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps)
    wall = time.perf_counter() - t0
    rets = play(lambda o: int(model.predict(o, deterministic=True)[0]), episodes, 1000 + seed)
    return dict(library="sb3", seed=seed, train_wall_s=wall, setup_s=setup,
                env_steps=int(model.num_timesteps), gradient_steps=int(model._n_updates),
                eval_mean=statistics.fmean(rets), eval_min=min(rets), eval_returns=rets,
                net_arch=list(model.policy.net_arch), torch_threads=torch.get_num_threads(),
                torch_interop_threads=torch.get_num_interop_threads())


def run_dlsched(seed: int, steps: int, episodes: int) -> dict:
    env = gym.make("CartPole-v1")
    # a copy each time: sb3_settings takes net_arch out of the policy_kwargs
    # dict it is given (dlsched 1.1.0), so a second call would get [64, 64]
    keys = {**env_keys(env), **sb3_settings(steps, seed=seed, **copy.deepcopy(ZOO)),
            "cpu_threads": 1}
    t0 = time.perf_counter()
    agent = dlsched.Agent(keys)
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    train(env, agent, steps, seed=seed, progress=False)
    wall = time.perf_counter() - t0
    st = agent.stats()
    rets = evaluate(gym.make("CartPole-v1"), agent, episodes, seed=1000 + seed, progress=False)
    agent.close()
    env.close()
    return dict(library="libdlsched", seed=seed, train_wall_s=wall, setup_s=setup,
                env_steps=int(st.observed), gradient_steps=int(st.train_steps),
                eval_mean=statistics.fmean(rets), eval_min=min(rets), eval_returns=rets,
                net_arch=list(keys["hidden"]), cpu_threads=1, keys=" ".join(f"{k}={v}" for k, v in keys.items()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2", help="comma list (default 0,1,2)")
    ap.add_argument("--steps", type=int, default=50_000)
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--only", choices=["sb3", "libdlsched"])
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",") if s.strip()]

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    bp.ENV.update(machine=bp.cpu_model(), nproc=os.cpu_count(),
                  openblas_coretype=os.environ.get("OPENBLAS_CORETYPE"),
                  openblas_l2_size=os.environ.get("OPENBLAS_L2_SIZE"))
    ob = bp.openblas_info()
    emit(bench="sb3_side_by_side_header", python=platform.python_version(),
         torch=torch.__version__, torch_threads=torch.get_num_threads(),
         torch_interop_threads=torch.get_num_interop_threads(),
         torch_cpu_capability=torch.backends.cpu.get_cpu_capability(),
         torch_blas="MKL" if torch.backends.mkl.is_available() else "other",
         stable_baselines3=stable_baselines3.__version__, gymnasium=gym.__version__,
         dlsched_library=dlsched.library_version(), dlsched_library_path=dlsched.library_path,
         dlsched_cpu_threads=1, steps=a.steps, seeds=seeds, eval_episodes=a.episodes,
         loadavg_at_start=[round(x, 2) for x in os.getloadavg()],
         settings="rl-baselines3-zoo dqn.yml CartPole-v1: " + json.dumps(ZOO), **ob)
    sb3_defaults()

    results = []
    for seed in seeds:
        for lib, fn in (("sb3", run_sb3), ("libdlsched", run_dlsched)):
            if a.only and a.only != lib:
                continue
            r = fn(seed, a.steps, a.episodes)
            r["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
            results.append(r)
            emit(bench="sb3_side_by_side_run", **{k: v for k, v in r.items()})
    libs = [lib for lib in ("sb3", "libdlsched") if any(r["library"] == lib for r in results)]
    summ = {}
    for lib in libs:
        rs = [r for r in results if r["library"] == lib]
        summ[lib] = dict(
            runs=len(rs), train_wall_s_mean=statistics.fmean(r["train_wall_s"] for r in rs),
            train_wall_s=[round(r["train_wall_s"], 2) for r in rs],
            env_steps_per_s_mean=statistics.fmean(r["env_steps"] / r["train_wall_s"]
                                                  for r in rs),
            eval_mean_over_seeds=statistics.fmean(r["eval_mean"] for r in rs),
            eval_means=[r["eval_mean"] for r in rs],
            solved_475=sum(r["eval_mean"] >= 475 for r in rs))
        emit(bench="sb3_side_by_side_summary", library=lib, **summ[lib])

    print()
    print(f"CartPole-v1, zoo settings, {a.steps} env steps, greedy mean of {a.episodes} "
          f"episodes; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE') or 'unset'} "
          f"(OpenBLAS core {ob.get('openblas_core')}), torch threads "
          f"{torch.get_num_threads()}, libdlsched cpu_threads 1")
    print()
    print("| library | seed | net | env steps | gradient steps | train wall s | env steps/s | "
          "greedy mean | greedy min |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        net = "x".join(str(w) for w in r["net_arch"])
        print(f"| {r['library']} | {r['seed']} | {net} | {r['env_steps']} | {r['gradient_steps']} | "
              f"{r['train_wall_s']:.1f} | {r['env_steps'] / r['train_wall_s']:.0f} | "
              f"{r['eval_mean']:.1f} | {r['eval_min']:.0f} |")
    for lib in libs:
        s = summ[lib]
        print(f"| **{lib} mean** | | | | | {s['train_wall_s_mean']:.1f} | "
              f"{s['env_steps_per_s_mean']:.0f} | {s['eval_mean_over_seeds']:.1f} | "
              f"{s['solved_475']}/{s['runs']} >= 475 |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
