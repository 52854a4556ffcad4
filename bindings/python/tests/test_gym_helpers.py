"""dlsched.gym's train/evaluate on small hand-made environments whose
Q-values are computed by hand: terminated vs truncated, reset(seed=) once,
Discrete observations as index and one-hot, action offsets."""
from __future__ import annotations

import pytest

gym = pytest.importorskip("gymnasium")
np = pytest.importorskip("numpy")

import dlsched  # noqa: E402
from dlsched.gym import env_keys, evaluate, train  # noqa: E402


class Chain(gym.Env):
    """Two states, one action. 0 -> 1 with reward 1; 1 -> end with reward 2.
    ``ending`` says what the step out of state 1 reports: "both"
    (terminated and truncated), "terminated", or "truncated" (a time limit:
    the next observation is 0 and the value must bootstrap from it)."""

    def __init__(self, ending: str) -> None:
        self.observation_space = gym.spaces.Discrete(2)
        self.action_space = gym.spaces.Discrete(1, start=3)
        self.ending = ending
        self.s = 0
        self.seeds = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.seeds.append(seed)
        self.s = 0
        return 0, {}

    def step(self, action):
        assert action == 3  # Discrete(1, start=3): the helper adds the start
        if self.s == 0:
            self.s = 1
            return 1, 1.0, False, False, {}
        term = self.ending in ("both", "terminated")
        trunc = self.ending in ("both", "truncated")
        return 0, 2.0, term, trunc, {}


def _qtable(env):
    return dlsched.Agent({**env_keys(env, algo="qtable"), "lr": 1.0, "gamma": 0.5,
                          "epsilon_start": 0, "epsilon_end": 0, "replay": 0, "seed": 1})


@pytest.mark.parametrize("ending", ["both", "terminated"])
def test_terminated_does_not_bootstrap(ending):
    env = Chain(ending)
    with _qtable(env) as agent:
        log = train(env, agent, 40, seed=123, progress=False)
        # lr 1: Q(1) = 2 (no bootstrap), Q(0) = 1 + 0.5 * Q(1) = 2
        assert agent.q_values([1.5])[0] == pytest.approx(2.0)
        assert agent.q_values([0.5])[0] == pytest.approx(2.0)
        assert log.returns == [3.0] * 20
    assert env.seeds == [123] + [None] * 20  # reset(seed=) once, then the env's own stream


def test_truncated_bootstraps():
    env = Chain("truncated")
    with _qtable(env) as agent:
        train(env, agent, 400, seed=5, progress=False)
        # Q(1) = 2 + 0.5 Q(0), Q(0) = 1 + 0.5 Q(1): Q(1) = 10/3, Q(0) = 8/3
        assert agent.q_values([1.5])[0] == pytest.approx(10 / 3, abs=1e-5)
        assert agent.q_values([0.5])[0] == pytest.approx(8 / 3, abs=1e-5)


def test_evaluate_is_greedy_and_learns_nothing():
    env = Chain("terminated")
    with _qtable(env) as agent:
        train(env, agent, 10, seed=1, progress=False)
        before = agent.stats()
        returns = evaluate(env, agent, 7, seed=9, progress=False)
        after = agent.stats()
        assert returns == [3.0] * 7
        assert after.observed == before.observed and after.tickets_issued == before.tickets_issued
        assert after.decisions == before.decisions + 14


class Corridor(gym.Env):
    """Discrete(4) observations, two actions: 1 moves right (reward 0, +1 at
    the end), 0 ends the episode with reward 0.1. Optimal: always 1."""

    def __init__(self):
        self.observation_space = gym.spaces.Discrete(4)
        self.action_space = gym.spaces.Discrete(2)
        self.s = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.s = 0
        return self.s, {}

    def step(self, action):
        if action == 0:
            return self.s, 0.1, True, False, {}
        self.s += 1
        if self.s == 3:
            return self.s, 1.0, True, False, {}
        return self.s, 0.0, False, False, {}


@pytest.mark.parametrize("algo,encoding,n_features", [("qtable", None, 1), ("qtable", "onehot", 4),
                                                      ("dqn", None, 4), ("dqn", "index", 1)])
def test_discrete_observations(algo, encoding, n_features):
    env = Corridor()
    keys = env_keys(env, algo=algo, discrete_obs=encoding)
    assert keys["n_features"] == n_features and keys["n_actions"] == 2
    extra = {"lr": 0.5, "epsilon_decay_steps": 1500, "replay": 0} if algo == "qtable" else {
        "hidden": [16], "lr": 0.01, "learning_starts": 64, "train_every": 1, "batch": 16,
        "target_update": 50, "epsilon_decay_steps": 1500, "replay": 4000}
    with dlsched.Agent({**keys, "gamma": 0.9, "seed": 3, **extra}) as agent:
        train(env, agent, 3000, seed=0, progress=False)
        # Q*(s, 1) = 0.9^(2-s) > 0.1 = Q*(s, 0) for every s: one greedy episode returns 1
        assert evaluate(env, agent, 3, progress=False) == [1.0, 1.0, 1.0]


def test_mismatched_agent_is_refused():
    env = Corridor()
    with dlsched.Agent("algo=qtable n_features=3 n_actions=2") as agent:
        with pytest.raises(ValueError, match="n_features=3"):
            train(env, agent, 1, progress=False)
    with dlsched.Agent("algo=qtable n_features=1 n_actions=3") as agent:
        with pytest.raises(ValueError, match="n_actions=3"):
            evaluate(env, agent, 1, progress=False)
    with pytest.raises(TypeError, match="Discrete"):
        env_keys(type("E", (), {"observation_space": gym.spaces.Discrete(2),
                                "action_space": gym.spaces.Box(0, 1, (2,))})())
