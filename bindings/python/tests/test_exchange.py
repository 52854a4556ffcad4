"""Experience and weights between agents (Since 1.3): Agent.export_transitions,
ingest_transitions, export_weights, import_weights. No Ray here.

The oracles: an agent that ingests an exported blob ends bitwise where an
agent with the same seed ends that was given the same transitions through
observe_transition, in the same order; a learner=none agent that imported a
learner's weights computes exactly the learner's Q-values.
"""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

import dlsched
from dlsched import _agent, _lib

from conftest import run_python

# the calls themselves need 1.3; the tests of older libraries below do not
needs13 = pytest.mark.skipif(_lib.load().version < 10300,
                             reason="the library under test is older than 1.3")

DQN = ("algo=dqn n_features=3 n_actions=4 hidden=16,16 seed=7 batch=8 learning_starts=16 "
       "train_every=4 gradient_steps=2 replay=512 normalize=1 cpu_threads=1")
QT = "algo=qtable n_features=2 n_actions=3 bins=4 feature_low=0 feature_high=1 seed=3 lr=0.3"
SPECS = {"dqn": DQN, "qtable": QT}


def _rng(seed=0):
    return np.random.default_rng(seed)


def play(actor, n, seed=0, masks=False, na=None, end_every=7, trunc_every=11):
    """Act and observe n times on a learner=none actor; the transitions as
    observe_transition arguments, in the order they were observed."""
    rng = _rng(seed)
    nf, na = actor.n_features, na or actor.n_actions
    log = []
    obs = rng.random(nf, dtype=np.float32)
    for i in range(n):
        d = actor.act(obs)
        nxt = rng.random(nf, dtype=np.float32)
        r = float(rng.normal())
        term = (i + 1) % end_every == 0
        trunc = not term and (i + 1) % trunc_every == 0
        nmask = None
        if masks and not term and i % 3 == 0:
            nmask = [True] * na
            nmask[int(rng.integers(na))] = False
        actor.observe(d.ticket, r, None if term else nxt, terminated=term, truncated=trunc,
                      next_mask=nmask)
        log.append((obs.copy(), d.action, r, None if term else nxt.copy(), term, trunc, nmask))
        obs = nxt
    return log


def feed(agent, log):
    for obs, a, r, nxt, term, trunc, nmask in log:
        agent.observe_transition(obs, a, r, nxt, terminated=term, truncated=trunc,
                                 next_mask=nmask)


def probes(nf, k=12):
    return [_rng(99 + i).random(nf, dtype=np.float32) for i in range(k)]


def same_model(a, b):
    for o in probes(a.n_features):
        assert np.array_equal(a.q_values(o), b.q_values(o)), o
    wa, va = a.export_weights()
    wb, vb = b.export_weights()
    assert va == vb
    assert wa == wb


# ---- round trips --------------------------------------------------------------------

@needs13
@pytest.mark.parametrize("algo", ["dqn", "qtable"])
@pytest.mark.parametrize("masks", [False, True])
def test_ingest_equals_observe_transition_bitwise(algo, masks):
    spec = SPECS[algo]
    with dlsched.Agent(spec, learner="none", exchange_capacity=1000) as actor, \
            dlsched.Agent(spec) as a, dlsched.Agent(spec) as b:
        log = play(actor, 300, seed=1, masks=masks)
        blob, count, dropped = actor.export_transitions()
        assert isinstance(blob, bytes)
        assert (count, dropped) == (300, 0)
        assert a.ingest_transitions(blob) == (300, 0)
        feed(b, log)
        sa, sb = a.stats(), b.stats()
        assert sa.transitions == sb.transitions == 300
        assert sa.train_steps == sb.train_steps
        if algo == "dqn":
            assert sa.train_steps > 0
        same_model(a, b)
        # the ring is empty now
        blob2, count2, _ = actor.export_transitions()
        assert count2 == 0
        assert a.ingest_transitions(blob2) == (0, 0)


@needs13
def test_ingest_in_pieces_equals_one_blob():
    with dlsched.Agent(DQN, learner="none", exchange_capacity=1000) as actor, \
            dlsched.Agent(DQN) as a, dlsched.Agent(DQN) as b:
        log = play(actor, 200, seed=2)
        parts, total = [], 0
        for m in (1, 7, 50, 0):
            blob, n, _ = actor.export_transitions(m)
            assert n == (m if m else 200 - total)
            parts.append(blob)
            total += n
        assert total == 200
        for p in parts:
            a.ingest_transitions(p)
        feed(b, log)
        same_model(a, b)


@needs13
def test_ingest_into_learner_thread_agent_learns():
    with dlsched.Agent(DQN, learner="none", exchange_capacity=1000) as actor, \
            dlsched.Agent(DQN, learner="thread") as a:
        play(actor, 300, seed=3)
        blob, n, _ = actor.export_transitions()
        assert a.ingest_transitions(blob) == (300, 0)
        a.train(5)  # takes in what is staged, trains, publishes
        st = a.stats()
        assert st.transitions == 300 and st.train_steps >= 5


@needs13
def test_expired_tickets_with_default_reward_are_recorded():
    spec = QT + " ticket_capacity=2 default_reward=-1"
    with dlsched.Agent(spec, learner="none", exchange_capacity=10) as actor, \
            dlsched.Agent(spec) as a, dlsched.Agent(spec) as b:
        obs = [np.float32([0.1, 0.2]), np.float32([0.6, 0.7]), np.float32([0.9, 0.3])]
        d = [actor.act(o) for o in obs]  # the third pushes the first out
        blob, n, _ = actor.export_transitions()
        assert n == 1
        a.ingest_transitions(blob)
        b.observe_transition(obs[0], d[0].action, -1.0, None, terminated=True)
        same_model(a, b)
    with dlsched.Agent(QT + " ticket_capacity=2", learner="none",
                       exchange_capacity=10) as actor:  # no default_reward: dropped
        for o in obs:
            actor.act(o)
        assert actor.export_transitions()[1] == 0


@needs13
def test_full_ring_drops_the_oldest_and_counts_them():
    with dlsched.Agent(QT, learner="none", exchange_capacity=10) as actor, \
            dlsched.Agent(QT) as a, dlsched.Agent(QT) as b:
        log = play(actor, 25, seed=4)
        blob, n, dropped = actor.export_transitions()
        assert (n, dropped) == (10, 15)
        a.ingest_transitions(blob)
        feed(b, log[15:])
        same_model(a, b)
        assert actor.export_transitions()[1:] == (0, 0)  # dropped counts since the last call


@needs13
def test_learning_agents_record_too():
    # any learner mode records with exchange_capacity > 0
    with dlsched.Agent(QT, exchange_capacity=100) as src, dlsched.Agent(QT) as a, \
            dlsched.Agent(QT) as b:
        log = play(src, 40, seed=5)
        blob, n, _ = src.export_transitions()
        assert n == 40
        a.ingest_transitions(blob)
        feed(b, log)
        same_model(a, b)


@needs13
def test_without_exchange_capacity_export_refuses():
    with dlsched.Agent(QT) as a:
        with pytest.raises(dlsched.ConfigError, match="exchange_capacity"):
            a.export_transitions()


@needs13
@pytest.mark.parametrize("algo", ["dqn", "qtable"])
def test_import_weights_gives_the_sources_q_values(algo):
    spec = SPECS[algo]
    with dlsched.Agent(spec, exchange_capacity=1000) as src, \
            dlsched.Agent(spec, learner="none", seed=123) as actor:
        play(src, 300, seed=6)
        if algo == "dqn":
            src.train(20)
        w, v = src.export_weights()
        st = src.stats()
        assert v == st.model_version and (algo == "qtable" or v == st.train_steps)
        assert actor.act(probes(src.n_features)[0]).model_version == 0  # before any import
        assert actor.import_weights(w) == v
        for o in probes(src.n_features):
            assert np.array_equal(actor.q_values(o), src.q_values(o))
            g = actor.act(o, greedy=True)
            assert g.model_version == v
            assert g.action == int(np.argmax(src.q_values(o)))
        assert actor.stats().model_version == v
        w2, v2 = actor.export_weights()  # a learner=none agent exports what it acts with
        assert (w2, v2) == (w, v)


@needs13
def test_decisions_carry_the_imported_version_into_the_blob():
    """Transitions are tagged with the version that decided them: ingesting
    with min_model_version drops exactly the older ones (stale)."""
    with dlsched.Agent(QT, exchange_capacity=10000) as src, \
            dlsched.Agent(QT, learner="none", exchange_capacity=1000) as actor, \
            dlsched.Agent(QT) as sink:
        play(actor, 10, seed=7)  # version 0
        play(src, 30, seed=8)
        w1, v1 = src.export_weights()
        assert v1 > 0
        actor.import_weights(w1)
        play(actor, 20, seed=9)  # version v1
        play(src, 30, seed=10)
        w2, v2 = src.export_weights()
        assert v2 > v1
        actor.import_weights(w2)
        play(actor, 5, seed=11)  # version v2
        blob, n, _ = actor.export_transitions()
        assert n == 35
        assert sink.ingest_transitions(blob, min_model_version=v1) == (25, 10)
        assert sink.ingest_transitions(blob, min_model_version=v1 + 1) == (5, 30)
        assert sink.ingest_transitions(blob, min_model_version=v2 + 1) == (0, 35)
        assert sink.ingest_transitions(blob, min_model_version=0) == (35, 0)
        assert sink.stats().transitions == 25 + 5 + 35


# ---- buffers of every kind --------------------------------------------------------------

@needs13
def test_blob_kinds_without_copies():
    with dlsched.Agent(QT, learner="none", exchange_capacity=100) as actor, \
            dlsched.Agent(QT) as a, dlsched.Agent(QT, exchange_capacity=10) as src:
        play(actor, 10, seed=12)
        blob, _, _ = actor.export_transitions()
        arr = np.frombuffer(blob, dtype=np.uint8)  # read-only, as Ray hands it out
        assert not arr.flags.writeable
        ba = bytearray(blob)
        kinds = [blob, ba, memoryview(blob), memoryview(ba), arr, arr.copy()]
        for k in kinds:
            assert a.ingest_transitions(k) == (10, 0), type(k)
        # pointers into the caller's memory, no copy
        ptr, n, keep = _agent._blob(arr, "blob")
        assert (ptr, n) == (arr.ctypes.data, len(blob))
        ptr, n, keep = _agent._blob(ba, "blob")
        assert ptr == ctypes.addressof((ctypes.c_char * len(ba)).from_buffer(ba))
        assert _agent._blob(blob, "blob")[0] is blob
        # weights the same ways
        play(src, 10, seed=13)
        w, v = src.export_weights()
        with dlsched.Agent(QT, learner="none") as b:
            for k in (w, bytearray(w), memoryview(w), np.frombuffer(w, np.uint8)):
                assert b.import_weights(k) == v
        # a non-contiguous array is copied, and still read right
        wide = np.zeros(2 * len(blob), np.uint8)
        wide[::2] = np.frombuffer(blob, np.uint8)
        assert a.ingest_transitions(wide[::2]) == (10, 0)
        for bad in ("text", 12, None, [1, 2]):
            with pytest.raises(TypeError):
                a.ingest_transitions(bad)


# ---- refusals ------------------------------------------------------------------------------

@needs13
def test_learner_none_refuses_training_and_ingest_learning_agents_refuse_import():
    with dlsched.Agent(DQN, learner="none", exchange_capacity=100) as actor, \
            dlsched.Agent(DQN) as learner:
        play(actor, 20, seed=14)
        blob, _, _ = actor.export_transitions()
        with pytest.raises(dlsched.ConfigError):
            actor.train(1)
        with pytest.raises(dlsched.ConfigError):
            actor.ingest_transitions(blob)
        w, _ = learner.export_weights()
        with pytest.raises(dlsched.ConfigError):
            learner.import_weights(w)
        with dlsched.Agent(DQN, learner="thread") as t:
            with pytest.raises(dlsched.ConfigError):
                t.import_weights(w)
        # learner=none acts and records without learning anything
        st = actor.stats()
        assert st.train_steps == 0 and st.transitions == 0


@pytest.mark.parametrize("other", ["n_actions=5", "n_features=4", "hidden=16,32",
                                   "algo=qtable bins=4"])
@needs13
def test_mismatch(other):
    with dlsched.Agent(DQN, learner="none", exchange_capacity=100) as actor, \
            dlsched.Agent(DQN) as src:
        play(actor, 20, seed=15)
        tblob, _, _ = actor.export_transitions()
        wblob, _ = src.export_weights()
    spec = DQN + " " + other
    with dlsched.Agent(spec) as learner, dlsched.Agent(spec, learner="none") as none:
        before = learner.stats().transitions
        with pytest.raises(dlsched.MismatchError):
            none.import_weights(wblob)
        if other.startswith("hidden="):
            # transitions carry raw features: another network takes them
            accepted, stale = learner.ingest_transitions(tblob)
            assert (accepted, stale) == (20, 0)
            assert learner.stats().transitions == before + 20
        else:
            with pytest.raises(dlsched.MismatchError):
                learner.ingest_transitions(tblob)
            assert learner.stats().transitions == before


def _fixtures():
    actor = dlsched.Agent(DQN, learner="none", exchange_capacity=100)
    play(actor, 20, seed=16)
    tblob, _, _ = actor.export_transitions()
    src = dlsched.Agent(DQN)
    wblob, _ = src.export_weights()
    return actor, src, tblob, wblob


@needs13
def test_corruption_is_refused_and_changes_nothing():
    actor, src, tblob, wblob = _fixtures()
    with actor, src, dlsched.Agent(DQN) as learner:
        q0 = actor.q_values(probes(3)[0])
        rng = _rng(17)
        positions = sorted(set([0, 8, 12, 16, 24, len(tblob) - 1, len(tblob) - 4]
                               + rng.integers(0, len(tblob), 40).tolist()))
        for pos in positions:
            bad = bytearray(tblob)
            bad[pos] ^= 0x10
            with pytest.raises(dlsched.FormatError):
                learner.ingest_transitions(bad)
        for cut in (0, 1, 8, 23, 24, 40, len(tblob) // 2, len(tblob) - 1):
            with pytest.raises(dlsched.FormatError):
                learner.ingest_transitions(tblob[:cut])
        with pytest.raises(dlsched.FormatError):
            learner.ingest_transitions(tblob + b"\0")
        with pytest.raises(dlsched.FormatError):  # a weights blob given to ingest
            learner.ingest_transitions(wblob)
        assert learner.stats().transitions == 0
        for pos in (0, 10, 30, len(wblob) // 2, len(wblob) - 1):
            bad = bytearray(wblob)
            bad[pos] ^= 0x01
            with pytest.raises(dlsched.FormatError):
                actor.import_weights(bad)
        for cut in (0, 24, len(wblob) - 1):
            with pytest.raises(dlsched.FormatError):
                actor.import_weights(wblob[:cut])
        with pytest.raises(dlsched.FormatError):  # a transitions blob given to import
            actor.import_weights(tblob)
        with pytest.raises(dlsched.FormatError):  # a checkpoint is not a weights blob
            actor.import_weights(src.save_buffer())
        assert np.array_equal(actor.q_values(probes(3)[0]), q0)
        assert actor.act(probes(3)[0]).model_version == 0
        # and the good ones still go in
        assert learner.ingest_transitions(tblob) == (20, 0)
        assert actor.import_weights(wblob) == 0


@needs13
def test_bad_arguments():
    with dlsched.Agent(QT, learner="none", exchange_capacity=10) as actor, \
            dlsched.Agent(QT) as a:
        with pytest.raises(dlsched.InvalidArgumentError):
            actor.export_transitions(-1)
        with pytest.raises(dlsched.InvalidArgumentError):
            actor.export_transitions(2 ** 32)
        blob, _, _ = actor.export_transitions()
        with pytest.raises(dlsched.InvalidArgumentError):
            a.ingest_transitions(blob, -1)
    with pytest.raises(dlsched.ClosedError):
        actor.export_transitions()
    with pytest.raises(dlsched.ClosedError):
        a.ingest_transitions(blob)


@needs13
def test_checkpoint_overrides_make_an_acting_agent():
    """An acting agent made from a learner's checkpoint acts with its weights."""
    with dlsched.Agent(DQN, exchange_capacity=1000) as src:
        play(src, 200, seed=18)
        ckpt = src.save_buffer()
        with dlsched.Agent.load_buffer(ckpt, learner="none", exchange_capacity=50) as actor:
            for o in probes(3):
                assert np.array_equal(actor.q_values(o), src.q_values(o))
            with pytest.raises(dlsched.ConfigError):
                actor.train(1)
            play(actor, 5, seed=19)
            assert actor.export_transitions()[1] == 5


# ---- older libraries ---------------------------------------------------------------------------

OLD = """
import sys, dlsched
a = dlsched.Agent("n_features=1 n_actions=2")
for call in (lambda: a.export_transitions(), lambda: a.ingest_transitions(b"x"),
             lambda: a.export_weights(), lambda: a.import_weights(b"x")):
    try:
        call()
    except dlsched.LibraryError as e:
        print(e)
    else:
        sys.exit("no LibraryError")
"""


def test_older_library_loads_and_the_new_calls_name_the_version(cc, tmp_path):
    from test_loading import build_fake
    fake = build_fake(cc, tmp_path, 10200)
    r = run_python(OLD, set_={"DLSCHED_LIBRARY": str(fake)})
    assert r.returncode == 0, r.stderr + r.stdout
    lines = r.stdout.strip().split("\n")
    assert len(lines) == 4
    for name, line in zip(("dlsched_export_transitions", "dlsched_ingest_transitions",
                           "dlsched_export_weights", "dlsched_import_weights"), lines):
        assert line.startswith(f"{name} needs libdlsched 1.3 or later")
        assert "is 1.2.0" in line


def test_a_1_3_library_without_the_symbols_is_refused(cc, tmp_path):
    from test_loading import PROBE, build_fake
    fake = build_fake(cc, tmp_path, 10300)
    r = run_python(PROBE, set_={"DLSCHED_LIBRARY": str(fake)})
    assert r.returncode == 3, r.stderr + r.stdout
    assert "says it is libdlsched 1.3.0 but lacks dlsched_export_transitions" in r.stdout


def test_import_dlsched_does_not_import_ray():
    r = run_python("import sys, dlsched\ndlsched.Agent('n_features=1 n_actions=2').close()\n"
                   "print('ray' in sys.modules)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_dlsched_ray_without_ray_says_how_to_get_it():
    code = ("import sys\nsys.modules['ray'] = None  # as if Ray were not installed\n"
            "import dlsched\n"
            "try:\n    import dlsched.ray\nexcept ImportError as e:\n    print(e)\n"
            "else:\n    sys.exit('imported')\n")
    r = run_python(code)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "dlsched.ray needs Ray" in r.stdout and "pip install ray" in r.stdout
