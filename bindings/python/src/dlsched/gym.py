"""Gymnasium helpers: train and evaluate an Agent on an environment, and
convert Stable-Baselines3 / rl-baselines3-zoo DQN hyperparameters.

    import gymnasium as gym, dlsched
    from dlsched.gym import env_keys, sb3_settings, train, evaluate

    env = gym.make("CartPole-v1")
    keys = sb3_settings(50_000, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000,
                        learning_starts=1000, gamma=0.99, target_update_interval=10,
                        train_freq=256, gradient_steps=128, exploration_fraction=0.16,
                        exploration_final_eps=0.04, policy_kwargs=dict(net_arch=[256, 256]))
    with dlsched.Agent({**env_keys(env), **keys}) as agent:
        train(env, agent, 50_000, seed=0)
        print(sum(evaluate(env, agent, 20)) / 20)

Observations: Box (flattened to float32) or Discrete (one-hot, or the index
as one feature, chosen by the agent's n_features or ``discrete_obs``).
Actions: Discrete. Gymnasium itself is imported only by the caller.
"""
from __future__ import annotations

import ast
import math
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from ._agent import Agent

__all__ = ["env_keys", "train", "evaluate", "Training", "sb3_settings", "SB3_DEFAULTS"]


# ---- spaces ---------------------------------------------------------------------

def _space_kind(space: Any) -> str:
    name = type(space).__name__
    if name in ("Box", "Discrete"):
        return name
    raise TypeError(f"dlsched.gym handles Box and Discrete observation spaces and Discrete "
                    f"action spaces, not {name}")


def _obs_size(space: Any) -> int:
    return int(math.prod(space.shape)) if _space_kind(space) == "Box" else int(space.n)


def env_keys(env: Any, algo: str = "dqn", discrete_obs: Optional[str] = None) -> Dict[str, Any]:
    """The keys an Agent needs for env: n_features and n_actions, and for a
    qtable on a Discrete observation space the bins of its index.

    ``discrete_obs`` ("onehot" or "index") chooses the encoding of a Discrete
    observation; the default is "index" for qtable and "onehot" for dqn.
    """
    obs, act = env.observation_space, env.action_space
    if _space_kind(act) != "Discrete":
        raise TypeError(f"the action space must be Discrete, not {type(act).__name__}")
    keys: Dict[str, Any] = {"algo": algo, "n_actions": int(act.n)}
    if _space_kind(obs) == "Box":
        keys["n_features"] = _obs_size(obs)
        return keys
    enc = discrete_obs or ("index" if algo == "qtable" else "onehot")
    if enc == "index":
        keys["n_features"] = 1
        if algo == "qtable":
            keys.update(bins=int(obs.n), feature_low=0, feature_high=int(obs.n))
    elif enc == "onehot":
        keys["n_features"] = int(obs.n)
        if algo == "qtable":
            keys.update(bins=2, feature_low=0, feature_high=1)
    else:
        raise ValueError(f"discrete_obs is {enc!r}; use 'onehot' or 'index'")
    return keys


def _encoder(env: Any, agent: Agent) -> Callable[[Any], Any]:
    """obs -> what agent.act takes, decided by the space and agent.n_features."""
    space = env.observation_space
    nf = agent.n_features
    if _space_kind(space) == "Box":
        if _obs_size(space) != nf:
            raise ValueError(f"the observation space has {_obs_size(space)} values; the agent "
                             f"has n_features={nf}")
        import numpy as np
        return lambda o: np.asarray(o, dtype=np.float32).reshape(-1)
    n, start = int(space.n), int(getattr(space, "start", 0))
    if nf == n and n > 1:
        def onehot(o: Any) -> List[float]:
            v = [0.0] * n
            v[int(o) - start] = 1.0
            return v
        return onehot
    if nf == 1:
        return lambda o: (float(int(o) - start) + 0.5,)  # the middle of index's bin
    raise ValueError(f"the observation space is Discrete({n}); the agent has n_features={nf} "
                     f"(use {n} for one-hot or 1 for the index)")


def _action_start(env: Any, agent: Agent) -> int:
    space = env.action_space
    if _space_kind(space) != "Discrete":
        raise TypeError("the action space must be Discrete")
    if int(space.n) != agent.n_actions:
        raise ValueError(f"the action space has {space.n} actions; the agent has "
                         f"n_actions={agent.n_actions}")
    return int(getattr(space, "start", 0))


class _Progress:
    """One line on stderr, rewritten, when it is a terminal (or when forced)."""

    def __init__(self, total: int, enabled: Optional[bool], what: str) -> None:
        self.on = sys.stderr.isatty() if enabled is None else bool(enabled)
        self.total, self.what, self.t0, self.last = total, what, time.perf_counter(), 0.0

    def update(self, done: int, returns: Sequence[float], force: bool = False) -> None:
        if not self.on:
            return
        now = time.perf_counter()
        if not force and now - self.last < 0.5:
            return
        self.last = now
        recent = returns[-20:]
        mean = f"{sum(recent) / len(recent):9.2f}" if recent else "        -"
        rate = done / max(now - self.t0, 1e-9)
        sys.stderr.write(f"\r{self.what} {done:>9}/{self.total} ({100.0 * done / self.total:5.1f}%)"
                         f"  episodes {len(returns):>6}  mean return (last 20) {mean}"
                         f"  {rate:8.0f}/s")
        if force:
            sys.stderr.write("\n")
        sys.stderr.flush()


# ---- train and evaluate -----------------------------------------------------------

class Training:
    """What :func:`train` did: ``returns`` of the finished episodes,
    ``evaluations`` as (environment step, mean greedy return) pairs, and the
    checkpoint (bytes) of the best evaluation, ``best_checkpoint``, with its
    ``best_step`` and ``best_mean`` (None without evaluations). Load it with
    ``dlsched.Agent.load_buffer(training.best_checkpoint)``."""

    def __init__(self) -> None:
        self.returns: List[float] = []
        self.evaluations: List[Tuple[int, float]] = []
        self.best_checkpoint: Optional[bytes] = None
        self.best_step: Optional[int] = None
        self.best_mean: Optional[float] = None

    def __repr__(self) -> str:
        return (f"Training(episodes={len(self.returns)}, evaluations={len(self.evaluations)}, "
                f"best_mean={self.best_mean}, best_step={self.best_step})")


def train(env: Any, agent: Agent, steps: int, seed: Optional[int] = None,
          progress: Optional[bool] = None, eval_env: Any = None, eval_every: int = 0,
          eval_episodes: int = 20, eval_seed: Optional[int] = None) -> Training:
    """Run ``steps`` environment steps of learning.

    ``env.reset(seed=seed)`` is called once; later episodes continue the
    environment's own random stream. Every step is act() then observe() with
    the step's reward: ``terminated`` ends the episode without bootstrap,
    ``truncated`` (a time limit) still bootstraps from the next observation,
    both together count as terminated. ``progress``: a status line on stderr
    (default: when stderr is a terminal).

    With ``eval_env`` and ``eval_every`` > 0, every ``eval_every`` steps (and
    after the last) the greedy policy plays ``eval_episodes`` episodes on
    ``eval_env`` (reset with ``eval_seed`` at the first evaluation only) and
    the checkpoint of the best mean so far is kept, like Stable-Baselines3's
    EvalCallback keeps best_model. Evaluation steps learn nothing and do not
    count in ``steps``.
    """
    enc = _encoder(env, agent)
    a0 = _action_start(env, agent)
    steps = int(steps)
    if eval_every and eval_env is None:
        raise ValueError("eval_every needs eval_env (a second environment)")
    prog = _Progress(steps, progress, "train")
    log = Training()
    returns = log.returns
    first_eval = [True]

    def run_eval(step: int) -> None:
        ev = evaluate(eval_env, agent, eval_episodes,
                      seed=eval_seed if first_eval[0] else None, progress=False)
        first_eval[0] = False
        mean = sum(ev) / len(ev)
        log.evaluations.append((step, mean))
        if log.best_mean is None or mean > log.best_mean:
            log.best_mean, log.best_step = mean, step
            log.best_checkpoint = agent.save_buffer()

    obs, _ = env.reset(seed=seed)
    x = enc(obs)
    ep = 0.0
    for i in range(steps):
        d = agent.act(x)
        obs, reward, terminated, truncated, _ = env.step(d.action + a0)
        x2 = enc(obs)
        agent.observe(d.ticket, float(reward), x2, bool(terminated), bool(truncated))
        ep += float(reward)
        if terminated or truncated:
            returns.append(ep)
            ep = 0.0
            obs, _ = env.reset()
            x2 = enc(obs)
        x = x2
        prog.update(i + 1, returns)
        if eval_every and (i + 1) % eval_every == 0:
            run_eval(i + 1)
    if eval_every and steps % eval_every:
        run_eval(steps)
    prog.update(steps, returns, force=True)
    return log


def evaluate(env: Any, agent: Agent, episodes: int, seed: Optional[int] = None,
             progress: Optional[bool] = None) -> List[float]:
    """Play ``episodes`` episodes greedily (no exploration, nothing learned);
    return their returns. ``env.reset(seed=seed)`` once, as in :func:`train`."""
    enc = _encoder(env, agent)
    a0 = _action_start(env, agent)
    prog = _Progress(int(episodes), progress, "evaluate")
    returns: List[float] = []
    obs, _ = env.reset(seed=seed)
    while len(returns) < episodes:
        ep, done = 0.0, False
        while not done:
            d = agent.act(enc(obs), greedy=True)
            obs, reward, terminated, truncated, _ = env.step(d.action + a0)
            ep += float(reward)
            done = bool(terminated or truncated)
        returns.append(ep)
        prog.update(len(returns), returns)
        if len(returns) < episodes:
            obs, _ = env.reset()
    prog.update(len(returns), returns, force=True)
    return returns


# ---- Stable-Baselines3 / rl-baselines3-zoo DQN settings --------------------------

#: SB3's DQN defaults (stable_baselines3.DQN.__init__, 2.x), used for what the
#: caller does not give.
SB3_DEFAULTS: Dict[str, Any] = {
    "learning_rate": 1e-4, "buffer_size": 1_000_000, "learning_starts": 100,
    "batch_size": 32, "tau": 1.0, "gamma": 0.99, "train_freq": 4, "gradient_steps": 1,
    "target_update_interval": 10_000, "exploration_fraction": 0.1,
    "exploration_initial_eps": 1.0, "exploration_final_eps": 0.05, "max_grad_norm": 10.0,
}

# accepted and without effect on learning (logging, memory layout, the zoo's bookkeeping)
_IGNORED = {"verbose", "tensorboard_log", "stats_window_size", "optimize_memory_usage",
            "replay_buffer_class", "replay_buffer_kwargs", "_init_setup_model", "n_timesteps",
            "create_eval_env", "monitor_wrapper"}


def _policy_kwargs(pk: Any) -> Dict[str, Any]:
    """policy_kwargs as a dict; the zoo writes it as the string "dict(net_arch=[...])"."""
    if pk is None:
        return {}
    if isinstance(pk, dict):
        return dict(pk)  # a copy: the caller's dict is read, never changed
    if isinstance(pk, str):
        try:
            node = ast.parse(pk.strip(), mode="eval").body
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "dict" \
                    and not node.args:
                return {kw.arg: (ast.literal_eval(kw.value) if kw.arg != "activation_fn"
                                 else ast.unparse(kw.value)) for kw in node.keywords}
            return dict(ast.literal_eval(node))
        except (ValueError, SyntaxError, TypeError) as e:
            raise ValueError(f"policy_kwargs {pk!r}: not a dict(...) of literals ({e})") from None
    raise TypeError(f"policy_kwargs must be a dict or the zoo's string, not {type(pk).__name__}")


def _train_freq(tf: Any) -> int:
    if isinstance(tf, (list, tuple)):
        if len(tf) != 2:
            raise ValueError(f"train_freq {tf!r}: give an int or (n, 'step')")
        n, unit = tf
        unit = getattr(unit, "value", unit)
        if str(unit) != "step":
            raise ValueError(f"train_freq {tf!r}: libdlsched trains every n steps; "
                             f"(n, 'episode') has no equivalent")
        tf = n
    tf = int(tf)
    if tf < 1:
        raise ValueError(f"train_freq is {tf}; it must be >= 1")
    return tf


def sb3_settings(total_timesteps: Union[int, float], **hyperparams: Any) -> Dict[str, Any]:
    """libdlsched keys for SB3 DQN hyperparameters, written exactly as
    ``DQN(...)`` or the rl-baselines3-zoo YAML takes them.

    ``total_timesteps`` is SB3's ``learn()`` argument: exploration_fraction
    is a share of it. Unknown hyperparameters raise TypeError, ones with no
    libdlsched equivalent (a learning-rate schedule, train_freq in episodes,
    a non-ReLU activation, n_envs > 1, the zoo's normalize/frame_stack)
    raise ValueError. The result is a dict ``Agent()`` accepts; add
    n_features and n_actions (``env_keys``). See the README's conversion
    table for each key.
    """
    hp = dict(SB3_DEFAULTS)
    extra = {}
    for key, value in hyperparams.items():
        if key in SB3_DEFAULTS:
            hp[key] = value
        elif key in _IGNORED:
            continue
        else:
            extra[key] = value
    total = int(total_timesteps)
    if total < 1:
        raise ValueError(f"total_timesteps is {total_timesteps}; it must be >= 1")
    # SB3's DQN: no double target, Huber (smooth L1, delta 1) loss, PyTorch's
    # nn.Linear initialisation
    out: Dict[str, Any] = {"algo": "dqn", "explore": "egreedy", "double": 0, "dueling": 0,
                           "nstep": 1, "huber_delta": 1.0, "normalize": 0, "init": "torch"}
    extra.pop("policy_kwargs", None)  # read below
    policy = extra.pop("policy", "MlpPolicy")
    if policy not in ("MlpPolicy",) and getattr(policy, "__name__", "") != "MlpPolicy":
        raise ValueError(f"policy {policy!r}: libdlsched's network is an MLP (MlpPolicy)")
    if int(extra.pop("n_envs", 1)) != 1:
        raise ValueError("n_envs > 1: libdlsched steps one environment (see the README)")
    if "seed" in extra:
        seed = extra.pop("seed")
        if seed is not None:
            out["seed"] = int(seed)
    if "device" in extra:
        dev = str(extra.pop("device"))
        out["device"] = {"auto": "auto", "cpu": "cpu"}.get(dev, "cuda" if "cuda" in dev else dev)
    if "n_steps" in extra:  # SB3 >= 2.6: n-step returns
        out["nstep"] = int(extra.pop("n_steps"))
    for key in ("normalize", "frame_stack", "env_wrapper", "callback", "vec_env_wrapper",
                "optimizer_class", "optimizer_kwargs"):
        if key in extra and extra[key] not in (None, False, {}):
            raise ValueError(f"{key}={extra[key]!r} has no libdlsched equivalent")
        extra.pop(key, None)
    if extra:
        raise TypeError(f"sb3_settings() got unknown DQN hyperparameters: "
                        f"{', '.join(sorted(extra))}")

    lr = hp["learning_rate"]
    if isinstance(lr, str) or callable(lr):
        raise ValueError(f"learning_rate {lr!r}: libdlsched's learning rate is a constant")
    out["lr"] = float(lr)
    out["batch"] = int(hp["batch_size"])
    out["replay"] = int(hp["buffer_size"])
    out["learning_starts"] = int(hp["learning_starts"])
    out["gamma"] = float(hp["gamma"])
    tf = _train_freq(hp["train_freq"])
    gs = int(hp["gradient_steps"])
    if gs == -1:  # SB3: as many gradient steps as environment steps collected
        gs = tf
    if gs < 1:
        raise ValueError(f"gradient_steps is {gs}; give >= 1 or -1")
    out["train_every"] = tf
    out["gradient_steps"] = gs
    # SB3 counts target_update_interval in environment steps; libdlsched's
    # target_update counts gradient steps. SB3 updates the target between
    # training rounds (during collection), so at most once per round.
    tui = int(hp["target_update_interval"])
    if tui < 1:
        raise ValueError(f"target_update_interval is {tui}; it must be >= 1")
    per_update = gs * max(1.0, tui / tf)  # gradient steps between target updates
    tau = float(hp["tau"])
    if not 0.0 < tau <= 1.0:
        raise ValueError(f"tau is {tau}; it must be in (0, 1]")
    if tau == 1.0:
        out["target_update"] = max(1, int(round(per_update)))
    else:
        # Polyak every gradient step with the same decay per environment step:
        # SB3 applies (1 - tau) every target_update_interval environment steps
        # (several times between two rounds when it is below train_freq), and
        # a round of gs gradient steps comes every train_freq environment steps
        out["target_update"] = 1.0 - (1.0 - tau) ** (tf / (tui * gs))
    out["epsilon_start"] = float(hp["exploration_initial_eps"])
    out["epsilon_end"] = float(hp["exploration_final_eps"])
    out["epsilon_decay_steps"] = int(round(float(hp["exploration_fraction"]) * total))
    mgn = hp["max_grad_norm"]
    out["grad_clip"] = 0.0 if mgn is None or math.isinf(float(mgn)) else float(mgn)
    pk = _policy_kwargs(hyperparams.get("policy_kwargs"))
    net = pk.pop("net_arch", [64, 64])
    if isinstance(net, dict):
        net = net.get("qf", net.get("pi"))
    if not net or not all(isinstance(w, int) and w > 0 for w in net):
        raise ValueError(f"net_arch {net!r}: give a non-empty list of layer widths")
    out["hidden"] = [int(w) for w in net]
    act = pk.pop("activation_fn", None)
    act_name = str(getattr(act, "__name__", act)).rsplit(".", 1)[-1]
    if act is not None and act_name != "ReLU":
        raise ValueError(f"activation_fn {act!r}: libdlsched's hidden layers are ReLU")
    pk.pop("normalize_images", None)
    if pk:
        raise ValueError(f"policy_kwargs {sorted(pk)} have no libdlsched equivalent")
    return out
