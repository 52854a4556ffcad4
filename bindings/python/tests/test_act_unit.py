"""Agent.act(unit=...): dlsched_act_unit (Since 1.4) against the contract in
include/dlsched.h ("dlsched_act_unit") and src/core/guard.h ("guard_unit =
key"): with guard_unit=key every ticketed decision of a unit is taken by the
arm its unit drew for the guard's epoch (the incumbent's arm returns the
hint with DLSCHED_DECISION_INCUMBENT and probability 1, the learned arm its
own choice); dlsched_act is dlsched_act_unit with unit 0; under
guard_unit=decision the unit is ignored. The binding's part: unit None
calls dlsched_act, an int is taken modulo 2**64, negative ints and bools are
refused before any C call, and a library without the symbol still loads."""
from __future__ import annotations

import random

import pytest

import dlsched
from dlsched import _lib
from dlsched.errors import InvalidArgumentError

from conftest import S0, S1, run_python

np = pytest.importorskip("numpy")

# one feature, two states, two actions; the hint is action 0 and the learned
# policy prefers action 1 in S0 (taught below), so the arms always differ
KEYED = ("algo=qtable n_features=1 n_actions=2 bins=2 feature_low=0 feature_high=2 lr=0.5 "
         "guard_unit=key guard_share=0.5 guard_min_visits=0 epsilon_start=0 epsilon_end=0 "
         "seed=5")
HINT, LEARNED = 0, 1
U64 = 2 ** 64


def keyed_agent(spec: str = KEYED) -> dlsched.Agent:
    a = dlsched.Agent(spec)
    a.observe_transition(S0, LEARNED, 1.0, terminated=True)  # Q(S0) = [0, 0.5]
    return a


def test_the_tree_library_has_act_unit():
    with dlsched.Agent(KEYED) as a:
        assert a._act_unit is not None


@pytest.mark.parametrize("spec", [
    KEYED,
    "algo=qtable n_features=1 n_actions=2 bins=2 feature_low=0 feature_high=2 seed=2",
    "algo=dqn n_features=1 n_actions=2 hidden=8 guard_unit=key seed=2",
])
def test_act_unit_gives_valid_decisions_and_tickets(spec):
    units = [0, 1, 7, 2 ** 63, U64 - 1, U64 + 3, np.uint64(U64 - 2), np.int64(12345)]
    with dlsched.Agent(spec) as a:
        tickets = []
        for i, u in enumerate(units * 3):
            obs = S0 if i % 2 else np.array(S1, dtype=np.float32)
            kw = {"hint": i % 2} if i % 3 else {}
            if i % 4 == 0:
                kw["mask"] = [1, 1]
            d = a.act(obs, unit=u, **kw)
            assert isinstance(d, dlsched.Decision)
            assert d.action in (0, 1) and d.ticket != 0
            assert 0.0 < d.probability <= 1.0
            tickets.append(d.ticket)
        assert len(set(tickets)) == len(tickets)
        # a greedy decision of a unit keeps no ticket, as without one
        g = a.act(S0, greedy=True, unit=3)
        assert g.ticket == 0 and g.action in (0, 1)
        for t in tickets:
            a.observe(t, 1.0, terminated=True)
        st = a.stats()
        assert (st.decisions, st.tickets_issued, st.observed, st.tickets_pending) == \
            (len(tickets) + 1, len(tickets), len(tickets), 0)


def test_guard_unit_key_one_arm_per_unit():
    n_units, per_unit = 60, 8
    order = [u for u in range(n_units) for _ in range(per_unit)]
    random.Random(1).shuffle(order)  # the units' decisions interleaved
    with keyed_agent() as a:
        epoch = a.stats().guard_epoch
        seen = {}
        for u in order:
            d = a.act(S0, hint=HINT, unit=u)
            assert d.ticket != 0 and not d.explored and not d.hinted
            seen.setdefault(u, set()).add((d.action, d.incumbent, d.probability))
        st = a.stats()
        assert st.guard_epoch == epoch  # no outcome, no test: one epoch throughout
        arms = {}
        for u, got in seen.items():
            assert len(got) == 1, f"unit {u} decided by both arms: {got}"
            (action, incumbent, prob), = got
            if incumbent:  # the incumbent's arm: the hint, no exploration
                assert (action, prob) == (HINT, 1.0)
            else:  # the learned arm: the learned choice (epsilon 0)
                assert action == LEARNED
            arms[u] = incumbent
        inc = [u for u in arms if arms[u]]
        lrn = [u for u in arms if not arms[u]]
        # guard_share=0.5: half of the 64 slots are the learned policy's
        assert len(inc) >= 10 and len(lrn) >= 10
        assert st.guard_by_incumbent == per_unit * len(inc)
        assert st.guard_by_learned == per_unit * len(lrn)
        # a unit is taken modulo 2**64, numpy integers as ints
        for u in inc[:3] + lrn[:3]:
            for same in (u + U64, u + 5 * U64, np.uint64(u)):
                assert a.act(S0, hint=HINT, unit=same).incumbent == arms[u]
        # without a hint there is no experiment: the unit does not matter
        for u in inc[:3] + lrn[:3]:
            d = a.act(S0, unit=u)
            assert (d.action, d.incumbent) == (LEARNED, False)


def test_unit_none_is_plain_act():
    # exploration on, so that the decisions follow the agent's RNG stream
    spec = ("algo=qtable n_features=1 n_actions=3 bins=2 feature_low=0 feature_high=2 "
            "epsilon_start=0.5 epsilon_end=0.5 guard_min_visits=0 guard_share=0.5 seed=11")
    for keyed in ("", " guard_unit=key"):
        with dlsched.Agent(spec + keyed) as a, dlsched.Agent(spec + keyed) as b:
            rng = random.Random(3)
            for i in range(300):
                x = [rng.uniform(0, 2)]
                obs = x if i % 3 else np.array(x, dtype=np.float32)
                kw = {}
                if i % 2:
                    kw["hint"] = rng.randrange(3)
                if i % 5 == 0:
                    kw["mask"] = [1, 1, 1]
                da = a.act(obs, **kw)
                db = b.act(obs, unit=None, **kw)
                assert da == db, (i, kw)
                r = rng.choice([0.0, 1.0])
                a.observe(da.ticket, r, terminated=True)
                b.observe(db.ticket, r, terminated=True)
            assert a.stats().as_dict() == b.stats().as_dict()


@pytest.mark.parametrize("keyed", [False, True])
def test_unit_0_is_dlsched_act_and_unit_ignored_per_decision(keyed):
    """dlsched_act() is dlsched_act_unit() with unit 0; under guard_unit=
    decision (the default) any unit gives plain act's decisions."""
    spec = ("algo=qtable n_features=1 n_actions=3 bins=2 feature_low=0 feature_high=2 "
            "epsilon_start=0.3 epsilon_end=0.3 guard_min_visits=0 guard_share=0.5 seed=4"
            + (" guard_unit=key" if keyed else ""))
    with dlsched.Agent(spec) as a, dlsched.Agent(spec) as b:
        rng = random.Random(8)
        for i in range(300):
            x = [rng.uniform(0, 2)]
            hint = rng.randrange(3)
            unit = 0 if keyed else rng.randrange(U64)
            da = a.act(x, hint=hint)
            db = b.act(x, hint=hint, unit=unit)
            assert da == db, i
            r = rng.choice([0.0, 1.0])
            a.observe(da.ticket, r, terminated=True)
            b.observe(db.ticket, r, terminated=True)


class _Forbidden:
    def __call__(self, *args):
        raise AssertionError("a C function was called")


@pytest.mark.parametrize("unit,error,words", [
    (True, TypeError, "not bool"),
    (False, TypeError, "not bool"),
    ("np.bool_", TypeError, "not bool"),
    (1.0, TypeError, "float"),
    ("7", TypeError, "str"),
    (-1, InvalidArgumentError, "unit -1 is negative"),
    (-U64, InvalidArgumentError, "negative"),
    ("np.int64(-3)", InvalidArgumentError, "unit -3 is negative"),
])
def test_bad_units_are_refused_before_any_c_call(unit, error, words):
    if unit == "np.bool_":
        unit = np.bool_(True)
    elif unit == "np.int64(-3)":
        unit = np.int64(-3)
    with dlsched.Agent(KEYED) as a:
        real = a._act_unit
        a._act_unit = _Forbidden()
        try:
            for kw in ({}, {"hint": 0}, {"mask": [1, 1], "hint": 1}):
                with pytest.raises(error, match=words) as ei:
                    a.act(S0, unit=unit, **kw)
                if error is InvalidArgumentError:
                    assert ei.value.code == _lib.EINVAL
        finally:
            a._act_unit = real
        assert a.stats().decisions == 0


def test_closed_agent_with_unit():
    a = dlsched.Agent(KEYED)
    a.close()
    with pytest.raises(dlsched.ClosedError):
        a.act(S0, unit=1)


# ---- older libraries ---------------------------------------------------------------------------

OLD = """
import sys, dlsched
print(dlsched.library_version())
a = dlsched.Agent("n_features=1 n_actions=2")
try:
    a.act([0.5], hint=0, unit=1)
except dlsched.LibraryError as e:
    print(e)
else:
    sys.exit("no LibraryError")
try:
    a.act([0.5], unit=-1)  # a bad unit is still a bad unit
except ValueError as e:
    print(type(e).__name__)
"""


@pytest.mark.parametrize("version,extra", [(10200, ()), (10300, tuple(_lib._PROTOTYPES_1_3))])
def test_older_library_loads_and_act_with_unit_names_the_version(cc, tmp_path, version, extra):
    from test_loading import build_fake
    fake = build_fake(cc, tmp_path, version, extra=extra)
    r = run_python(OLD, set_={"DLSCHED_LIBRARY": str(fake)})
    assert r.returncode == 0, r.stderr + r.stdout
    lines = r.stdout.strip().split("\n")
    v = f"1.{version // 100 % 100}.0"
    assert lines[0] == v
    assert lines[1].startswith("dlsched_act_unit needs libdlsched 1.4 or later; ")
    assert f"is {v} and lacks it" in lines[1]
    assert lines[2] == "InvalidArgumentError"


def test_a_1_4_library_without_act_unit_is_refused(cc, tmp_path):
    from test_loading import PROBE, build_fake
    fake = build_fake(cc, tmp_path, 10400, extra=tuple(_lib._PROTOTYPES_1_3))
    r = run_python(PROBE, set_={"DLSCHED_LIBRARY": str(fake)})
    assert r.returncode == 3, r.stderr + r.stdout
    assert "says it is libdlsched 1.4.0 but lacks dlsched_act_unit (Since 1.4)" in r.stdout
    # with it, the 1.4 library loads
    fake = build_fake(cc, tmp_path, 10400, name="libfake14.so.1",
                      extra=tuple(_lib._PROTOTYPES_1_3) + ("dlsched_act_unit",))
    r = run_python(PROBE, set_={"DLSCHED_LIBRARY": str(fake)})
    assert r.returncode == 0, r.stderr + r.stdout
    assert r.stdout.split("\n")[1] == "1.4.0"
