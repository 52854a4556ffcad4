"""Threads: acting and observing from many Python threads on one agent,
the GIL released inside C calls, and clean interpreter exits with live
agents. Nothing here measures time: outcomes are counts."""
from __future__ import annotations

import queue
import threading

import pytest

import dlsched

from conftest import run_python

np = pytest.importorskip("numpy")


def run_threads(targets):
    """Start every target, join them all, re-raise the first exception."""
    errors = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)
        return run
    threads = [threading.Thread(target=wrap(fn)) for fn in targets]
    for t in threads:
        t.start()
    return threads, errors


def join_all(threads, errors):
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "a thread hung"
    if errors:
        raise errors[0]


def actors_and_observers(agent, n_actors, acts_each, n_observers, state, observe, extra=()):
    """n_actors threads act acts_each times and queue their decisions;
    n_observers threads observe them. Returns the decisions and observes made."""
    q: "queue.Queue" = queue.Queue()
    decisions, observed = [], []
    lock = threading.Lock()

    def actor(k):
        def run():
            rng = np.random.default_rng(k)
            for i in range(acts_each):
                x = state(rng, i)
                d = agent.act(x)
                with lock:
                    decisions.append((x, d))
                q.put((x, d))
        return run

    def observer(k):
        def run():
            rng = np.random.default_rng(100 + k)
            while True:
                item = q.get()
                if item is None:
                    return
                observe(agent, rng, *item)
                with lock:
                    observed.append(item)
        return run

    obs_threads, obs_errors = run_threads([observer(k) for k in range(n_observers)])
    act_threads, act_errors = run_threads([actor(k) for k in range(n_actors)] + list(extra))
    try:
        join_all(act_threads, act_errors)
    finally:
        for _ in range(n_observers):
            q.put(None)
        join_all(obs_threads, obs_errors)
    return decisions, observed


def test_qtable_many_threads_learn_every_outcome():
    # lr 0.001, every outcome terminal with reward 1: after n updates of a
    # (state, action), in whatever order, Q = 1 - (1 - lr)^n. A lost or torn
    # update would show.
    lr = 0.001
    with dlsched.Agent("algo=qtable n_features=1 n_actions=3 bins=2 feature_low=0 "
                       f"feature_high=2 lr={lr} seed=11") as agent:
        snapshots = []

        def reader():
            for _ in range(200):
                snapshots.append(agent.stats())
                agent.q_values([0.5])

        def observe(a, rng, x, d):
            a.observe(d.ticket, 1.0, terminated=True)
        decisions, observed = actors_and_observers(
            agent, 4, 500, 2, lambda rng, i: [0.5] if i % 2 else [1.5], observe,
            extra=[reader])
        assert len(decisions) == len(observed) == 2000
        st = agent.stats()
        assert (st.decisions, st.tickets_issued, st.observed) == (2000, 2000, 2000)
        assert (st.tickets_pending, st.tickets_expired, st.train_steps) == (0, 0, 2000)
        for s in snapshots:
            assert s.tickets_issued == s.observed + s.tickets_expired + s.tickets_pending
        for s, x in ((0, [0.5]), (1, [1.5])):
            n = [sum(1 for xx, d in decisions if xx == x and d.action == a) for a in range(3)]
            assert sum(n) == 1000
            expected = [1 - (1 - lr) ** k for k in n]
            assert list(agent.q_values(x)) == pytest.approx(expected, rel=2e-4), s


def test_dqn_many_threads():
    with dlsched.Agent(n_features=4, n_actions=3, hidden=16, learning_starts=64,
                       train_every=4, batch=16, replay=2048, seed=2) as agent:
        def logged():
            rng = np.random.default_rng(50)
            for i in range(50):
                agent.observe_transition(rng.random(4, dtype=np.float32), i % 3, 0.5,
                                         rng.random(4, dtype=np.float32))
                agent.q_values(rng.random(4))

        def observe(a, rng, x, d):
            a.observe(d.ticket, float(d.action), rng.random(4, dtype=np.float32),
                      truncated=bool(d.ticket % 2))
        decisions, observed = actors_and_observers(
            agent, 3, 150, 2, lambda rng, i: rng.random(4, dtype=np.float32), observe,
            extra=[logged])
        st = agent.stats()
        assert (st.decisions, st.tickets_issued, st.observed) == (450, 450, 450)
        assert (st.tickets_pending, st.tickets_expired, st.transitions) == (0, 0, 50)
        assert st.transitions_stored == 500
        # inline training: gradient_steps=1 at the 64th transition and every 4th after
        assert st.train_steps == (500 - 64) // 4 + 1
        assert all(np.isfinite(agent.q_values(np.zeros(4))))


def test_train_releases_the_gil():
    with dlsched.Agent(n_features=8, n_actions=4, hidden=[256, 256], batch=256, replay=512,
                       learning_starts=10 ** 9, seed=3) as agent:
        rng = np.random.default_rng(0)
        for i in range(300):
            agent.observe_transition(rng.random(8), i % 4, 1.0, rng.random(8))
        steps = 400  # about 1 s of training here
        counter = [0]
        seen = set()
        stop = threading.Event()

        def spin():
            while not stop.is_set():
                counter[0] += 1
                seen.add(agent.stats().train_steps)
        t = threading.Thread(target=spin)
        t.start()
        try:
            before = counter[0]
            agent.train(steps)
            during = counter[0] - before
        finally:
            stop.set()
            t.join()
        assert agent.stats().train_steps == steps
        # the other thread ran while the C call did: it counted, and it saw the
        # training half done (with the GIL held it could see only 0 or steps)
        assert during > 1000
        assert any(0 < s < steps for s in seen)


EXIT_SCRIPT = r"""
import sys
import dlsched
mode, marker = sys.argv[1], sys.argv[2]
q = dlsched.Agent("algo=qtable n_features=1 n_actions=2 bins=2")
d = q.act([0.5])  # a pending ticket at exit
b = dlsched.Agent(n_features=2, n_actions=2, hidden=8, batch=8, learning_starts=8,
                  train_every=1, learner="thread")
for i in range(200):
    d = b.act([i % 7 / 7.0, 0.5])
    b.observe(d.ticket, 1.0, [0.25, 0.5])  # the learner has work at exit
b.act([0.5, 0.5])
if mode == "global":
    KEEP = b
elif mode == "cycle":
    class Holder:
        pass
    h = Holder()
    h.agent, h.me = b, h
    del h, b
open(marker, "w").write("reached the end")
if mode == "exit":
    sys.exit(0)
"""


@pytest.mark.parametrize("mode", ["exit", "end", "global", "cycle"])
def test_interpreter_exit_with_live_agents_is_silent(tmp_path, mode):
    marker = tmp_path / "marker"
    r = run_python(EXIT_SCRIPT, args=[mode, str(marker)])
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert marker.read_text() == "reached the end"
