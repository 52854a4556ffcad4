"""dlsched.gym.sb3_settings: Stable-Baselines3 / rl-baselines3-zoo DQN
hyperparameters to libdlsched keys, against values worked out here from
SB3's documented semantics (DQN's constructor and _on_step):

- training: every train_freq environment steps, gradient_steps gradient steps
  (-1: as many as environment steps collected);
- target network: polyak_update(tau) in _on_step, i.e. after every
  target_update_interval-th environment step, between training rounds;
- exploration: linear from exploration_initial_eps to exploration_final_eps
  over exploration_fraction * total_timesteps environment steps;
- max_grad_norm: gradient clipping by global norm; the loss is Huber (1);
  the target is max_a Q_target (not double DQN); net_arch [64, 64] ReLU.
"""
from __future__ import annotations

import math

import pytest

import dlsched
from dlsched.gym import SB3_DEFAULTS, sb3_settings

# rl-baselines3-zoo hyperparams/dqn.yml, CartPole-v1
ZOO_CARTPOLE = dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100000,
                    learning_starts=1000, gamma=0.99, target_update_interval=10,
                    train_freq=256, gradient_steps=128, exploration_fraction=0.16,
                    exploration_final_eps=0.04, policy_kwargs="dict(net_arch=[256, 256])")

CARTPOLE_KEYS = {
    "algo": "dqn", "lr": 0.0023, "batch": 64, "replay": 100000, "learning_starts": 1000,
    "gamma": 0.99, "train_every": 256, "gradient_steps": 128,
    # SB3 copies the target 10 env steps after each round of 128 gradient steps
    "target_update": 128,
    "epsilon_decay_steps": 8000,  # 0.16 * 50000
    "epsilon_end": 0.04, "epsilon_start": 1.0, "hidden": [256, 256], "double": 0,
    "grad_clip": 10.0, "huber_delta": 1.0, "dueling": 0, "nstep": 1, "explore": "egreedy",
    "init": "torch",  # SB3's q-network starts from PyTorch's nn.Linear initialisation
}


def check(out, expected):
    for key, value in expected.items():
        assert key in out, key
        if isinstance(value, float):
            assert out[key] == pytest.approx(value, rel=1e-12), key
        else:
            assert out[key] == value and type(out[key]) is type(value), key


def sb3_target_gaps(tui, train_freq, gradient_steps, env_steps):
    """Replay SB3's loop for tau = 1: each environment step ends with
    _on_step (a copy every tui-th call); after every train_freq-th step a
    round of gradient_steps. Returns the gradient steps between consecutive
    copies that changed the target (a copy with no training since the last
    one is a no-op)."""
    grads, last_copy_at, gaps = 0, None, []
    for step in range(1, env_steps + 1):
        if step % tui == 0 and grads != last_copy_at:
            if last_copy_at is not None:
                gaps.append(grads - last_copy_at)
            last_copy_at = grads
        if step % train_freq == 0:
            grads += gradient_steps
    return gaps


def sb3_polyak_per_gradient_step(tau, tui, train_freq, gradient_steps, env_steps):
    """The Polyak rate per gradient step that moves the target as far, over
    env_steps, as SB3's polyak_update(tau) every tui environment steps."""
    updates = env_steps // tui
    grads = env_steps // train_freq * gradient_steps
    return 1.0 - (1.0 - tau) ** (updates / grads)


# ---- the zoo's CartPole ---------------------------------------------------------

@pytest.mark.parametrize("policy_kwargs", ["dict(net_arch=[256, 256])",
                                           lambda: dict(net_arch=[256, 256]),
                                           "dict(activation_fn=nn.ReLU, net_arch=[256, 256])"])
def test_zoo_cartpole(policy_kwargs):
    pk = policy_kwargs() if callable(policy_kwargs) else policy_kwargs
    out = sb3_settings(50000, **{**ZOO_CARTPOLE, "policy_kwargs": pk})
    check(out, CARTPOLE_KEYS)
    gaps = sb3_target_gaps(10, 256, 128, 256 * 50)
    assert set(gaps) == {out["target_update"]}


def test_zoo_yaml_bookkeeping_is_accepted():
    # the zoo's file also names the policy and n_timesteps; numbers may be floats
    out = sb3_settings(5e4, policy="MlpPolicy", n_timesteps=5e4,
                       **{**ZOO_CARTPOLE, "buffer_size": 1e5, "learning_starts": 1e3})
    check(out, CARTPOLE_KEYS)


def test_zoo_cartpole_policy_kwargs_not_modified():
    pk = dict(net_arch=[256, 256])
    sb3_settings(50000, **{**ZOO_CARTPOLE, "policy_kwargs": pk})
    assert pk == dict(net_arch=[256, 256])


def test_result_is_accepted_by_agent():
    keys = sb3_settings(50000, **ZOO_CARTPOLE)
    with dlsched.Agent(keys, n_features=4, n_actions=2) as a:
        assert (a.n_features, a.n_actions, a.algo) == (4, 2, "dqn")
        data = a.save_buffer()
    length = int.from_bytes(data[32:40], "little")
    lines = set(data[40:40 + length].decode().splitlines())
    for text in ("train_every=256", "gradient_steps=128", "hidden=256,256", "batch=64",
                 "replay=100000", "epsilon_decay_steps=8000", "double=0"):
        assert text in lines, text
    with dlsched.Agent({**sb3_settings(10000, tau=0.005, target_update_interval=8),
                        "n_features": 3, "n_actions": 2, "replay": 1000}) as a:
        assert a.algo == "dqn"


# ---- defaults ------------------------------------------------------------------

def test_defaults_are_sb3s():
    # stable_baselines3.DQN.__init__ (SB3 >= 2.3: learning_starts 100)
    assert SB3_DEFAULTS == {
        "learning_rate": 1e-4, "buffer_size": 1_000_000, "learning_starts": 100,
        "batch_size": 32, "tau": 1.0, "gamma": 0.99, "train_freq": 4, "gradient_steps": 1,
        "target_update_interval": 10_000, "exploration_fraction": 0.1,
        "exploration_initial_eps": 1.0, "exploration_final_eps": 0.05, "max_grad_norm": 10.0}
    out = sb3_settings(20000)
    check(out, {"lr": 1e-4, "replay": 1_000_000, "learning_starts": 100, "batch": 32,
                "gamma": 0.99, "train_every": 4, "gradient_steps": 1,
                "target_update": 2500,  # 10000 env steps / 4 per round * 1 step a round
                "epsilon_start": 1.0, "epsilon_end": 0.05,
                "epsilon_decay_steps": 2000,  # 0.1 * 20000
                "grad_clip": 10.0, "hidden": [64, 64], "double": 0})
    assert set(sb3_target_gaps(10_000, 4, 1, 60_000)) == {2500}


# ---- train_freq, gradient_steps, target_update_interval, tau ----------------------

def test_gradient_steps_minus_one_is_train_freq():
    out = sb3_settings(10000, train_freq=16, gradient_steps=-1, target_update_interval=64)
    assert (out["train_every"], out["gradient_steps"]) == (16, 16)
    assert out["target_update"] == 64  # 4 rounds of 16 between copies
    assert set(sb3_target_gaps(64, 16, 16, 1024)) == {64}


def test_train_freq_as_step_tuple():
    out = sb3_settings(10000, train_freq=(4, "step"))
    assert out["train_every"] == 4
    assert sb3_settings(10000, train_freq=[8, "step"])["train_every"] == 8


@pytest.mark.parametrize("tf", [(1, "episode"), (2, "episode"), (1, 2, 3), 0])
def test_bad_train_freq(tf):
    with pytest.raises(ValueError):
        sb3_settings(10000, train_freq=tf)


def test_target_update_interval_in_gradient_steps():
    out = sb3_settings(10000, target_update_interval=1000, train_freq=4, gradient_steps=1)
    assert out["target_update"] == 250
    assert set(sb3_target_gaps(1000, 4, 1, 10_000)) == {250}
    out = sb3_settings(10000, target_update_interval=1000, train_freq=4, gradient_steps=2)
    assert out["target_update"] == 500


def test_polyak_tau():
    tui, tf, gs, tau = 8, 4, 2, 0.005
    per_update = gs * tui / tf  # 4 gradient steps between SB3's updates
    expected = 1 - (1 - 0.005) ** (1 / per_update)
    out = sb3_settings(10000, tau=tau, target_update_interval=tui, train_freq=tf,
                       gradient_steps=gs)
    assert out["target_update"] == pytest.approx(expected, rel=1e-12)
    assert 0 < out["target_update"] < 1
    assert expected == pytest.approx(sb3_polyak_per_gradient_step(tau, tui, tf, gs, 8000),
                                     rel=1e-12)


def test_polyak_tau_more_often_than_training():
    # SB3 with tau=0.005, target_update_interval=1, train_freq=4: four
    # polyak_update calls (one per environment step) per gradient step
    out = sb3_settings(10000, tau=0.005, target_update_interval=1, train_freq=4,
                       gradient_steps=1)
    expected = sb3_polyak_per_gradient_step(0.005, 1, 4, 1, 4000)
    assert expected == pytest.approx(1 - 0.995 ** 4)
    assert out["target_update"] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("tau", [0.0, -0.1, 1.5])
def test_bad_tau(tau):
    with pytest.raises(ValueError):
        sb3_settings(10000, tau=tau)


def test_max_grad_norm():
    assert sb3_settings(1000, max_grad_norm=0.5)["grad_clip"] == 0.5
    assert sb3_settings(1000, max_grad_norm=math.inf)["grad_clip"] == 0.0  # no clipping


# ---- refusals -------------------------------------------------------------------

def test_unknown_hyperparameter_is_a_type_error():
    with pytest.raises(TypeError, match="learning_ratee"):
        sb3_settings(1000, learning_ratee=1e-3)


@pytest.mark.parametrize("lr", ["lin_1e-4", "1e-4", lambda progress: 1e-4 * progress])
def test_learning_rate_schedule_is_refused(lr):
    with pytest.raises(ValueError, match="learning_rate"):
        sb3_settings(1000, learning_rate=lr)


def _class(name):
    return type(name, (), {})


@pytest.mark.parametrize("pk", ["dict(activation_fn=nn.Tanh, net_arch=[64])",
                                "dict(activation_fn=th.nn.ELU)",
                                lambda: {"activation_fn": _class("Tanh")},
                                lambda: {"activation_fn": _class("SiLU"), "net_arch": [8]}])
def test_non_relu_activation_is_refused(pk):
    with pytest.raises(ValueError, match="activation_fn"):
        sb3_settings(1000, policy_kwargs=pk() if callable(pk) else pk)


@pytest.mark.parametrize("pk", ["dict(activation_fn=nn.LeakyReLU)",
                                lambda: {"activation_fn": _class("LeakyReLU")}])
def test_leaky_relu_is_not_relu(pk):
    with pytest.raises(ValueError, match="activation_fn"):
        sb3_settings(1000, policy_kwargs=pk() if callable(pk) else pk)


def test_relu_activation_class_is_accepted():
    out = sb3_settings(1000, policy_kwargs={"activation_fn": _class("ReLU"), "net_arch": [32]})
    assert out["hidden"] == [32]


def test_other_refusals():
    with pytest.raises(ValueError):
        sb3_settings(1000, policy="CnnPolicy")
    with pytest.raises(ValueError):
        sb3_settings(1000, n_envs=4)
    with pytest.raises(ValueError):
        sb3_settings(0)
    with pytest.raises(ValueError):
        sb3_settings(1000, policy_kwargs=dict(net_arch=[]))
    with pytest.raises(ValueError):
        sb3_settings(1000, policy_kwargs=dict(dueling=True))
