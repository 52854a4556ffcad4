"""dlsched.ray: acting actors feeding one Learner actor, on a local Ray.

One Ray instance for the whole run (session fixture: 2 CPUs, no dashboard, a
small object store, worker logs not forwarded), always shut down. Skipped
without Ray or with a library older than 1.3.

The acting actors run a tiny task in a thread of their own: the state is 3
random numbers, the right action is floor(4 x state[0]), the reward minus
the distance to it, and each decision is observed ``delay`` decisions later,
so an actor always holds ``delay`` pending tickets: what it loses when killed.
"""
from __future__ import annotations

import os
import sys
import threading
import time

import pytest

ray = pytest.importorskip("ray")
np = pytest.importorskip("numpy")

import dlsched  # noqa: E402
from dlsched import _lib  # noqa: E402

from conftest import PKG_ROOT  # noqa: E402

if _lib.load().version < 10300:
    pytest.skip("the library under test is older than 1.3", allow_module_level=True)

import dlsched.ray as dr  # noqa: E402

SPEC = ("algo=dqn n_features=3 n_actions=4 hidden=32,32 seed=1 batch=32 learning_starts=200 "
        "replay=20000 lr=0.002 gamma=0 epsilon_decay_steps=3000 epsilon_end=0.05 guard=0")


def wait_for(cond, timeout, what, every=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


@pytest.fixture(scope="session")
def ray_session():
    # the workers import the very package and library this process tests
    os.environ["DLSCHED_LIBRARY"] = dlsched.library_path
    paths = [str(PKG_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    # the Worker class below travels by value: workers cannot import this file
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=90 * 1024 * 1024,
             log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


@ray.remote
class Worker:
    """An acting actor: an ActingAgent with a background sync thread, and a
    thread acting and observing as fast as ``pace_s`` lets it."""

    def __init__(self, learner, wid, delay, pace_s=0.0005, seed=0, **kw):
        kw.setdefault("batch", 64)
        kw.setdefault("sync_period_s", 0.01)
        self.a = dr.ActingAgent(learner, SPEC, actor_id=wid, **kw)
        self.delay, self.pace_s = delay, pace_s
        self.rng = np.random.default_rng(seed)
        self.versions = {}  # model_version -> decisions
        self.running = threading.Event()
        self.running.set()
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _loop(self):
        pend = []
        obs = self.rng.random(3, dtype=np.float32)
        while True:
            self.running.wait()
            d = self.a.act(obs)
            self.versions[d.model_version] = self.versions.get(d.model_version, 0) + 1
            pend.append((d.ticket, -abs(int(obs[0] * 4) - d.action)))
            obs = self.rng.random(3, dtype=np.float32)
            if len(pend) > self.delay:
                t, r = pend.pop(0)
                self.a.observe(t, float(r), obs)
            time.sleep(self.pace_s)

    def pause(self, on=True):
        (self.running.clear if on else self.running.set)()
        time.sleep(0.01)
        return True

    def info(self):
        with self.a._lock:  # no sync (and no weights import) between the two reads
            st = self.a.agent.stats()
            counters = self.a.counters
        return dict(counters=counters, versions=dict(self.versions),
                    decisions=st.decisions, pending=st.tickets_pending,
                    model_version=st.model_version)

    def flush(self, timeout_s=10.0):
        return self.a.flush(timeout_s)


def counters(learner, timeout=10):
    return ray.get(learner.counters.remote(), timeout=timeout)


def test_experience_flows_and_weights_come_back(ray_session, tmp_path):
    learner = dr.start_learner(SPEC, str(tmp_path), publish_every=20, checkpoint_every=0,
                               replay_ratio=4, liveness_s=0.2)
    ws = [Worker.remote(learner, f"flow-{i}", delay=3 + i, seed=i) for i in range(2)]
    c = wait_for(lambda: (lambda c: c if c["train_steps"] >= 500 and c["publishes"] >= 5
                          else None)(counters(learner)), 40, "500 train steps")
    assert c["ingested"] >= 1000 and c["stale_dropped"] == 0 and not c["errors"]
    infos = wait_for(lambda: (lambda i: i if all(x["counters"]["weights_version"] >= 100
                                                 for x in i) else None)(
        ray.get([w.info.remote() for w in ws])), 20, "actors to take weights of version 100")
    for x in infos:
        cc = x["counters"]
        assert cc["weights_imported"] >= 2 and cc["ship_failures"] == 0
        # decisions report the versions the learner published
        assert x["model_version"] == cc["weights_version"] <= counters(learner)["version"]
        assert max(x["versions"]) >= 100
    ray.get([w.pause.remote() for w in ws])
    assert all(ray.get([w.flush.remote() for w in ws]))
    infos = ray.get([w.info.remote() for w in ws])
    c = counters(learner)
    for i, x in enumerate(infos):
        book = c["actors"][f"flow-{i}"]
        assert book["received"] == x["counters"]["shipped"] == x["counters"]["acked"]
        assert book["alive"] and book["watched"] and book["lost_tickets"] == 0
        assert book["pending_tickets"] == 3 + i  # reported at the last contact
    # and the learner learned the task: the greedy action is floor(4 x state[0])
    version, (ref,) = ray.get(learner.weights.remote())
    with dlsched.Agent(SPEC, learner="none") as probe:
        assert probe.import_weights(ray.get(ref)) == version
        right = sum(probe.act([x, 0.5, 0.5], greedy=True).action == int(x * 4)
                    for x in np.linspace(0.02, 0.98, 25))
    print(f"greedy right {right}/25 at version {version}")
    assert right >= 20, right
    for w in ws:
        ray.kill(w)
    ray.kill(learner)


def test_staleness_filter(ray_session):
    """A shipment decided by weights more than K versions old is dropped and
    counted, on both sides."""
    learner = dr.start_learner(SPEC, None, publish_every=10, checkpoint_every=0, staleness=50,
                               replay_ratio=8)
    # an acting agent in this process that never asks for weights: version 0
    old = dr.ActingAgent(learner, SPEC, actor_id="stale", weights_poll_s=1e9, batch=100)
    old._next_poll = float("inf")
    rng = np.random.default_rng(5)

    def play(n):
        for _ in range(n):
            obs = rng.random(3, dtype=np.float32)
            d = old.act(obs)
            old.observe(d.ticket, -abs(int(obs[0] * 4) - d.action), rng.random(3, np.float32))

    play(400)
    assert old.flush()
    assert old.counters["accepted"] == 400 and old.counters["stale"] == 0
    wait_for(lambda: counters(learner)["version"] > 60, 20, "version > 60")
    play(150)
    assert old.flush()
    cc = old.counters
    assert (cc["accepted"], cc["stale"]) == (400, 150)
    c = counters(learner)
    assert c["stale_dropped"] == 150 and c["actors"]["stale"]["stale"] == 150
    assert c["ingested"] == 400
    # not an actor: nothing pings it; the driver says when it is gone
    d = old.act(rng.random(3, dtype=np.float32))  # one ticket pending ...
    old.observe(d.ticket, 0.0, rng.random(3, np.float32))
    old.act(rng.random(3, dtype=np.float32))  # ... and one more, reported with the last batch
    assert old.flush()
    book = counters(learner)["actors"]["stale"]
    assert not book["watched"] and book["pending_tickets"] == 1
    assert ray.get(learner.actor_lost.remote("stale", "test"))
    c = counters(learner)
    assert c["dead_actors"] == 1 and c["lost_tickets"] == 1
    assert c["actors"]["stale"]["reason"] == "test" and not c["actors"]["stale"]["alive"]
    assert not ray.get(learner.actor_lost.remote("stale"))  # once
    old.close()
    ray.kill(learner)


def test_actor_kill_loses_only_its_tickets(ray_session, tmp_path):
    learner = dr.start_learner(SPEC, str(tmp_path), publish_every=20, checkpoint_every=0,
                               replay_ratio=4, liveness_s=0.2)
    a = Worker.remote(learner, "victim", delay=5, seed=11)
    b = Worker.remote(learner, "survivor", delay=9, seed=12)
    wait_for(lambda: all(counters(learner)["actors"].get(k, {}).get("received", 0) > 500
                         for k in ("victim", "survivor")), 30, "both actors shipping")
    ray.kill(a)
    t_kill = time.monotonic()
    c = wait_for(lambda: (lambda c: c if not c["actors"]["victim"]["alive"] else None)(
        counters(learner)), 10, "the learner to notice the dead actor")
    noticed_s = time.monotonic() - t_kill
    v = c["actors"]["victim"]
    assert v["reason"] == "ActorDiedError"
    # what it had in flight at its last contact: its pending tickets (5, or 6
    # when the report fell between an act and its observe), nothing unshipped
    assert v["lost_tickets"] in (5, 6)
    assert v["lost_tickets"] + v["lost_unshipped"] + v["lost_in_ship"] == \
        c["lost_tickets"] + c["lost_unshipped"] + c["lost_in_ship"]
    assert c["dead_actors"] == 1
    s = c["actors"]["survivor"]
    assert s["alive"] and s["lost_tickets"] == s["lost_unshipped"] == s["lost_in_ship"] == 0
    # the learner keeps going on the survivor's experience
    before = c["ingested"]
    wait_for(lambda: counters(learner)["ingested"] > before + 500, 20, "more experience")
    print(f"victim lost {v['lost_tickets']} tickets, {v['lost_unshipped']} unshipped, "
          f"{v['lost_in_ship']} in shipments; noticed after {noticed_s:.2f} s")
    ray.kill(b)
    ray.kill(learner)


def test_learner_kill_resumes_from_its_checkpoint(ray_session, tmp_path):
    learner = dr.start_learner(SPEC, str(tmp_path), publish_every=20, checkpoint_every=100,
                               replay_ratio=4, liveness_s=0.2)
    ws = [Worker.remote(learner, f"r-{i}", delay=4, seed=20 + i, retry_s=0.2)
          for i in range(2)]
    c = wait_for(lambda: (lambda c: c if c["checkpoints"] >= 2 else None)(counters(learner)),
                 40, "two checkpoints")
    first = c["incarnation"]
    wait_for(lambda: all(i["counters"]["weights_version"] > 0
                         for i in ray.get([w.info.remote() for w in ws])), 10, "weights")
    pid = ray.get(learner.pid.remote())
    ckpt_version = counters(learner)["checkpoint_version"]
    before = ray.get([w.info.remote() for w in ws])
    ray.kill(learner, no_restart=False)
    t_kill = time.monotonic()
    # meanwhile the actors act on with the weights they hold
    during = ray.get([w.info.remote() for w in ws])

    def back():
        # ray.kill is asynchronous: the old process may answer a call or two first
        try:
            c = counters(learner, timeout=2)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            return None
        return c if c["incarnation"] != first else None

    c = wait_for(back, 30, "the learner to come back")
    back_s = time.monotonic() - t_kill
    assert c["incarnation"] != first and ray.get(learner.pid.remote()) != pid
    assert c["restarts"] == 1
    assert c["resumed_from"] is not None and c["resumed_from"] >= ckpt_version
    assert c["version"] >= c["resumed_from"]
    for b, d in zip(before, during):
        assert d["decisions"] >= b["decisions"]
    # the actors reconnect: shipments acknowledged by the new learner and its weights
    wait_for(lambda: all(i["counters"]["learner_incarnation"] == c["incarnation"]
                         and i["counters"]["weights_version"] > 0
                         for i in ray.get([w.info.remote() for w in ws])), 20,
             "actors to reconnect")
    after = ray.get([w.info.remote() for w in ws])
    for b, a in zip(before, after):
        assert a["decisions"] > b["decisions"]
        assert a["counters"]["acked"] > b["counters"]["acked"]
    failures = sum(a["counters"]["ship_failures"] for a in after)
    c2 = counters(learner)
    assert set(c2["actors"]) >= {"r-0", "r-1"} and all(
        c2["actors"][k]["watched"] for k in ("r-0", "r-1"))  # registered again
    print(f"learner back after {back_s:.2f} s from version {c['resumed_from']} "
          f"(checkpoint {ckpt_version}); {failures} failed shipments, resent")
    for w in ws:
        ray.kill(w)
    ray.kill(learner)
