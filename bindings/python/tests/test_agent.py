"""dlsched.Agent against oracles computed here: Bellman updates of a tabular
agent worked out by hand, memory sizes from dlsched(7)'s MEMORY formula,
probabilities of egreedy exploration, counters from the calls made."""
from __future__ import annotations

import copy
import ctypes
import json
import math
import pickle

import pytest

import dlsched
from dlsched import _lib
from dlsched.errors import (ClosedError, ConfigError, InvalidArgumentError, MismatchError,
                            NoActionError, TicketError)

from conftest import GAMMA, LR, QSPEC, S0, S1, run_python

np = pytest.importorskip("numpy")


# ---- the oracle --------------------------------------------------------------

class Table:
    """Q-learning by hand for QSPEC: Q(s,a) += lr (r + gamma max Q(s') - Q(s,a))."""

    def __init__(self, n_actions: int = 2) -> None:
        self.q = {(s, a): 0.0 for s in (0, 1) for a in range(n_actions)}
        self.na = n_actions
        self.updates = 0
        self.last_loss = 0.0

    def update(self, s, a, r, s2=None, terminal=False, next_allowed=None):
        boot = 0.0
        if not terminal:
            allowed = range(self.na) if next_allowed is None else next_allowed
            boot = GAMMA * max(self.q[s2, b] for b in allowed)
        td = r + boot - self.q[s, a]
        self.q[s, a] += LR * td
        self.updates += 1
        self.last_loss = 0.5 * td * td

    def row(self, s):
        return [self.q[s, a] for a in range(self.na)]


def state_of(x):
    return 0 if x[0] < 1.0 else 1


def assert_table(agent, table):
    for s, x in ((0, S0), (1, S1)):
        got = agent.q_values(x)
        assert list(got) == pytest.approx(table.row(s), rel=1e-6, abs=1e-7), f"state {s}"


# ---- construction ----------------------------------------------------------

def qtable_memory(n_features, n_actions, bins, tickets, guard):
    """dlsched(7) MEMORY for algo=qtable: tickets, table, discretisation,
    guard visit counts, work space and the fixed part: 6824 bytes, as
    dlsched(7) states (1.4: the guard keeps guard_unit=key's statistics)."""
    states = math.prod(bins)
    return (tickets * (44 + 8) + states * n_actions * 4 + 32 * n_features
            + (states * n_actions * 2 if guard else 0) + 2 * 8 + 4 * n_actions + 6824)


def test_from_spec_string():
    with dlsched.Agent("algo=qtable n_features=2 n_actions=3 bins=4 ticket_capacity=16 "
                       "guard=0") as a:
        assert (a.n_features, a.n_actions, a.algo) == (2, 3, "qtable")
        assert a.stats().memory_bytes == qtable_memory(2, 3, [4, 4], 16, False)
    with dlsched.Agent(b"n_features=3 n_actions=2 hidden=8") as a:
        assert (a.n_features, a.n_actions, a.algo) == (3, 2, "dqn")


@pytest.mark.parametrize("guard", [False, True])
def test_from_dict_ints_floats_bools_lists(guard):
    cfg = {"algo": "qtable", "n_features": 2, "n_actions": 3, "bins": [4, 5],
           "feature_low": [0.0, -1.5], "feature_high": [1, 1.5], "lr": 0.25, "guard": guard,
           "ticket_capacity": 16}
    with dlsched.Agent(cfg) as a:
        # bins (a list), guard (a bool) and ticket_capacity reach the C side
        assert a.stats().memory_bytes == qtable_memory(2, 3, [4, 5], 16, guard)
        # lr (a float) and feature_low (a list of floats): the second feature's
        # bins are 0.6 wide from -1.5, so -1.4 and -0.8 are different states
        a.observe_transition([0.1, -1.4], 2, 1.0, terminated=True)
        assert list(a.q_values([0.1, -1.45])) == pytest.approx([0, 0, 0.25])
        assert list(a.q_values([0.1, -0.8])) == [0, 0, 0]


def checkpoint_text(agent) -> str:
    """The configuration section of a checkpoint (dlsched-checkpoint(5))."""
    data = agent.save_buffer()
    assert data[:8] == b"DLSCHKPT"
    length = int.from_bytes(data[32:40], "little")
    return data[40:40 + length].decode()


@pytest.mark.parametrize("hidden", [[8, 8], (8, 8), "8,8", np.array([8, 8])])
def test_dqn_lists_and_bools_as_text(hidden):
    with dlsched.Agent({"n_features": np.int64(3), "n_actions": 2, "hidden": hidden,
                        "dueling": True, "normalize": False, "lr": 2.5e-4}) as a:
        lines = checkpoint_text(a).splitlines()
        assert "hidden=8,8" in lines and "dueling=1" in lines and "normalize=0" in lines
        assert any(l.startswith("lr=") and float(l[3:]) == 2.5e-4 for l in lines)
        assert a.algo == "dqn"


def test_keyword_keys_add_to_and_override_the_config():
    with dlsched.Agent("algo=qtable n_features=1", n_actions=2, bins=2) as a:
        assert (a.n_features, a.n_actions) == (1, 2)
    with dlsched.Agent({"algo": "qtable", "n_features": 1, "n_actions": 2}, n_actions=3) as a:
        assert a.n_actions == 3
    with dlsched.Agent(algo="qtable", n_features=4, n_actions=5) as a:
        assert (a.n_features, a.n_actions, a.algo) == (4, 5, "qtable")


@pytest.mark.parametrize("make,key", [
    (lambda: dlsched.Agent(QSPEC + " lr=-1"), "lr"),
    (lambda: dlsched.Agent({"algo": "qtable", "n_features": 1, "n_actions": 2, "lr": -1}), "lr"),
    (lambda: dlsched.Agent(QSPEC, lr=-1), "lr"),
    (lambda: dlsched.Agent(QSPEC, gamma=1.5), "gamma"),
    (lambda: dlsched.Agent(QSPEC + " no_such_key=1"), "no_such_key"),
    (lambda: dlsched.Agent({"n_features": 1, "n_actions": 2, "no_such_key": 1}), "no_such_key"),
    (lambda: dlsched.Agent(QSPEC, no_such_key=True), "no_such_key"),
    (lambda: dlsched.Agent("algo=qtable n_features=2"), "n_actions"),
    (lambda: dlsched.Agent(QSPEC, bins="x"), "bins"),
])
def test_config_errors_name_the_key(make, key):
    with pytest.raises(ConfigError) as ei:
        make()
    e = ei.value
    assert isinstance(e, ValueError) and e.code == _lib.ECONFIG
    assert f"'{key}'" in e.message


def test_config_value_and_type_errors():
    with pytest.raises(InvalidArgumentError, match="'lr'"):
        dlsched.Agent(QSPEC, lr=object())
    with pytest.raises(TypeError):
        dlsched.Agent(42)
    with pytest.raises(TypeError):
        dlsched.Agent({1: 2, "n_features": 1})


# ---- Bellman updates by hand ------------------------------------------------

def test_observe_transition_bellman_by_hand(qagent):
    t = Table()
    steps = [  # (x, a, r, x2, terminated, truncated)
        (S0, 0, 1.0, S1, False, False),
        (S1, 1, 2.0, S0, False, False),
        (S0, 1, -1.0, S1, False, True),
        (S1, 0, 3.0, S0, True, True),
        (S0, 0, 0.25, S1, True, False),
        (S1, 1, -0.5, S1, False, False),
        (S0, 0, 0.75, None, True, False),
    ]
    for x, a, r, x2, term, trunc in steps:
        qagent.observe_transition(x, a, r, x2, terminated=term, truncated=trunc)
        t.update(state_of(x), a, r, None if x2 is None else state_of(x2), terminal=term)
        assert_table(qagent, t)
        st = qagent.stats()
        assert st.last_loss == pytest.approx(t.last_loss, rel=1e-5)
    assert st.train_steps == st.model_version == t.updates == len(steps)
    assert st.transitions == len(steps)


@pytest.mark.parametrize("how", ["observe", "observe_transition"])
@pytest.mark.parametrize("terminated,truncated", [(False, False), (False, True), (True, False),
                                                  (True, True)])
def test_episode_flags(qagent, how, terminated, truncated):
    t = Table()
    # Q(1, .) = (1.0, -0.5) first: a bootstrap from state 1 adds 0.9
    for a, r in ((0, 2.0), (1, -1.0)):
        qagent.observe_transition(S1, a, r, terminated=True)
        t.update(1, a, r, terminal=True)
    if how == "observe":
        d = qagent.act(S0)
        action = d.action
        qagent.observe(d.ticket, 0.3, S1, terminated=terminated, truncated=truncated)
    else:
        action = 1
        qagent.observe_transition(S0, action, 0.3, S1, terminated=terminated,
                                  truncated=truncated)
    # terminated (alone or with truncated): no bootstrap; else r + gamma * 1.0
    expected = LR * (0.3 + (0.0 if terminated else GAMMA * 1.0))
    t.update(0, action, 0.3, 1, terminal=terminated)
    assert t.q[0, action] == pytest.approx(expected)
    assert_table(qagent, t)


def test_act_observe_by_ticket(qagent):
    t = Table()
    for i in range(12):
        x = S0 if i % 3 else S1
        x2 = S1 if i % 2 else S0
        d = qagent.act(x)
        # the decision's value is the table's before the update
        assert d.value == pytest.approx(t.q[state_of(x), d.action], abs=1e-7)
        r = (i % 5) - 1.5
        qagent.observe(d.ticket, r, x2, terminated=(i == 7))
        t.update(state_of(x), d.action, r, state_of(x2), terminal=(i == 7))
        assert_table(qagent, t)
    st = qagent.stats()
    assert st.observed == st.tickets_issued == st.decisions == 12
    assert st.train_steps == 12 and st.tickets_pending == 0


def test_next_mask_limits_the_bootstrap(qagent):
    t = Table()
    for a, r in ((0, 2.0), (1, -1.0)):
        qagent.observe_transition(S1, a, r, terminated=True)
        t.update(1, a, r, terminal=True)
    # the best next action (0) is masked out: bootstrap from action 1's -0.5
    qagent.observe_transition(S0, 0, 0.3, S1, next_mask=[False, True])
    t.update(0, 0, 0.3, 1, next_allowed=[1])
    assert t.q[0, 0] == pytest.approx(LR * (0.3 + GAMMA * -0.5))
    assert_table(qagent, t)
    d = qagent.act(S0)
    qagent.observe(d.ticket, 0.0, S1, next_mask=b"\x00\x01")
    t.update(0, d.action, 0.0, 1, next_allowed=[1])
    assert_table(qagent, t)


def test_default_reward_learns_an_expired_ticket():
    with dlsched.Agent(QSPEC + " ticket_capacity=1 default_reward=-1") as a:
        d1 = a.act(S0)
        a.act(S0)  # pushes d1 out: learned as terminal with reward -1
        row = [0.0, 0.0]
        row[d1.action] = LR * -1.0
        assert list(a.q_values(S0)) == pytest.approx(row)
        with pytest.raises(TicketError):
            a.observe(d1.ticket, 1.0, terminated=True)
        st = a.stats()
        assert (st.tickets_expired, st.tickets_pending, st.train_steps) == (1, 1, 1)


def test_qtable_replay_training_by_hand():
    with dlsched.Agent(QSPEC + " replay=16") as a:
        a.observe_transition(S0, 1, 1.0, terminated=True)  # the only stored transition
        a.train(3)
        # Q <- Q + lr (1 - Q), four times from 0
        assert list(a.q_values(S0)) == pytest.approx([0.0, 1 - (1 - LR) ** 4])
        assert a.stats().train_steps == 4


# ---- masks and hints ---------------------------------------------------------

ALLOW_1_3 = [
    [False, True, False, True],
    [0, 1, 0, 2],
    (0, 1, 0, 1),
    b"\x00\x01\x00\x01",
    bytearray(b"\x00\x07\x00\x01"),
    np.array([False, True, False, True]),
    np.array([0, 1, 0, 1], dtype=np.uint8),
    np.array([0, 5, 0, 7], dtype=np.int64),
    np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.uint8)[1::2],
    np.array([False, False, True, True, False, False, True, True])[1::2],
]


@pytest.mark.parametrize("mask", ALLOW_1_3, ids=lambda m: type(m).__name__)
def test_mask_forms(mask):
    with dlsched.Agent("algo=qtable n_features=1 n_actions=4 bins=2 feature_low=0 "
                       "feature_high=2 seed=5") as a:
        actions = set()
        for _ in range(40):  # epsilon 1: uniform over the allowed actions
            d = a.act(S0, mask=mask)
            actions.add(d.action)
            assert d.probability == pytest.approx(0.5)
            a.observe(d.ticket, 0.0, S0, next_mask=mask)
        assert actions == {1, 3}
        q = a.q_values(S0, mask=mask)
        assert isinstance(q, np.ndarray) and q.dtype == np.float32 and q.shape == (4,)
        assert q[0] == q[2] == -math.inf
        assert math.isfinite(q[1]) and math.isfinite(q[3])
        assert a.act(S0, mask=mask, greedy=True).action in (1, 3)


def test_masked_values_in_greedy_choice(qagent):
    qagent.observe_transition(S0, 0, 1.0, terminated=True)  # action 0 is best at S0
    assert qagent.act(S0, greedy=True).action == 0
    assert qagent.act(S0, mask=[0, 1], greedy=True).action == 1
    assert list(qagent.q_values(S0, mask=(True, False))) == [pytest.approx(0.5), -math.inf]


def test_mask_and_hint_do_not_stick():
    # a call with a mask or a hint, then calls without: those see neither
    with dlsched.Agent("algo=qtable n_features=1 n_actions=4 bins=2 feature_low=0 "
                       "feature_high=2 lr=0.5 gamma=0.9 apprentice=1000 seed=7") as a:
        assert a.act(S0, mask=[0, 0, 0, 1]).action == 3
        assert a.act(np.array(S0, dtype=np.float32), hint=2).hinted
        seen = set()
        for i in range(40):
            d = a.act(S0 if i % 2 else np.array(S0, dtype=np.float32))
            assert not d.hinted and d.probability == pytest.approx(0.25)
            seen.add(d.action)
        assert seen == {0, 1, 2, 3}
    with dlsched.Agent(QSPEC) as a:
        a.observe_transition(S1, 0, 2.0, terminated=True)  # Q(1, .) = (1.0, 0)
        d = a.act(S0)
        a.observe(d.ticket, 0.0, S1, next_mask=[0, 1])  # bootstrap from Q(1, 1) = 0
        assert a.q_values(S0)[d.action] == 0.0
        d = a.act(S0)
        q = a.q_values(S0)[d.action]
        a.observe(np.uint64(d.ticket), np.float32(0.5), S1)  # no mask: max is 1.0
        assert a.q_values(S0)[d.action] == pytest.approx(q + LR * (0.5 + GAMMA * 1.0 - q))


def test_all_false_mask_and_wrong_mask_size(qagent):
    with pytest.raises(NoActionError):
        qagent.act(S0, mask=[0, 0])
    with pytest.raises(InvalidArgumentError, match="mask has 3 entries"):
        qagent.act(S0, mask=[1, 1, 1])
    with pytest.raises(InvalidArgumentError, match="mask has 1 entries"):
        qagent.act(S0, mask=np.array([True]))
    assert qagent.stats().decisions == 0


def test_hint_in_apprenticeship():
    with dlsched.Agent("algo=qtable n_features=1 n_actions=4 bins=2 feature_low=0 "
                       "feature_high=2 apprentice=3") as a:
        for hint in (2, np.int64(0), 3):
            d = a.act(S0, hint=hint)
            assert (d.action, d.hinted, d.probability) == (int(hint), True, 1.0)
        st = a.stats()
        assert (st.hinted, st.apprentice_left) == (3, 0)


def test_explore_hint_follows_the_hint():
    with dlsched.Agent("algo=qtable n_features=1 n_actions=4 bins=2 feature_low=0 "
                       "feature_high=2 explore=hint epsilon_start=1 epsilon_end=1 guard=0") as a:
        assert [a.act(S0, hint=h).action for h in (3, 1, 0, 2)] == [3, 1, 0, 2]


@pytest.mark.parametrize("hint,words", [(2, "out of range"), (-2, "out of range"),
                                        (1, "masked out"), (2 ** 32 + 1, "out of range")])
def test_bad_hints(qagent, hint, words):
    with pytest.raises(InvalidArgumentError, match=words):
        qagent.act(S0, hint=hint, mask=[1, 0])
    assert qagent.stats().decisions == 0


def test_action_out_of_int32_is_not_wrapped(qagent):
    with pytest.raises(InvalidArgumentError):
        qagent.observe_transition(S0, 2 ** 32 + 1, 1.0, terminated=True)  # would wrap to 1
    assert qagent.stats().transitions == 0
    assert list(qagent.q_values(S0)) == [0, 0]


# ---- decisions -----------------------------------------------------------------

def test_greedy_decision_keeps_no_ticket(qagent):
    qagent.observe_transition(S0, 1, 1.0, terminated=True)
    d = qagent.act(S0, greedy=True)
    assert d.ticket == 0 and d.action == 1 and not d.explored
    assert d.value == pytest.approx(0.5)
    st = qagent.stats()
    assert (st.decisions, st.tickets_issued, st.tickets_pending) == (1, 0, 0)
    with pytest.raises(TicketError):
        qagent.observe(d.ticket, 1.0, terminated=True)


def test_decision_fields():
    assert dlsched.Decision._fields == ("action", "ticket", "explored", "hinted", "value",
                                        "probability", "model_version", "incumbent")
    with dlsched.Agent("algo=qtable n_features=1 n_actions=4 bins=2 feature_low=0 "
                       "feature_high=2 lr=0.5 epsilon_start=0.5 epsilon_end=0.5 seed=3") as a:
        a.observe_transition(S0, 2, 1.0, terminated=True)  # Q(0, 2) = 0.5: the greedy one
        seen = set()
        for _ in range(60):
            d = a.act(S0)
            assert isinstance(d, tuple) and isinstance(d.action, int)
            assert isinstance(d.ticket, int) and d.ticket != 0
            assert isinstance(d.explored, bool) and isinstance(d.hinted, bool)
            assert not d.hinted and not d.incumbent
            # egreedy, epsilon 0.5 over 4 actions: greedy 0.5 + 0.5/4, others 0.5/4
            assert d.probability == pytest.approx(0.625 if d.action == 2 else 0.125)
            assert d.value == pytest.approx(0.5 if d.action == 2 else 0.0)
            if d.action != 2:
                assert d.explored
            assert d.model_version == 1
            seen.add(d.action)
        assert seen == {0, 1, 2, 3}
        assert a.stats().decisions == 60


# ---- inputs ----------------------------------------------------------------------

GRID = "algo=qtable n_features=2 n_actions=3 bins=4 feature_low=0 feature_high=4 lr=0.5"

FORMS = {
    "list": lambda: [1.5, 2.5],
    "tuple": lambda: (1.5, 2.5),
    "float32": lambda: np.array([1.5, 2.5], dtype=np.float32),
    "float64": lambda: np.array([1.5, 2.5]),
    "int64": lambda: np.array([1, 2]),
    "int list": lambda: [1, 2],
    "big-endian": lambda: np.array([1.5, 2.5], dtype=">f4"),
    "strided": lambda: np.array([1.5, 9, 2.5, 9], dtype=np.float32)[::2],
    "2-d": lambda: np.array([[1.5, 2.5]], dtype=np.float32),
    "transposed": lambda: np.array([[1.5, 9.0], [2.5, 9.0]]).T[0],
    "read-only": lambda: np.frombuffer(np.array([1.5, 2.5], dtype=np.float32).tobytes(),
                                       dtype=np.float32),
    "generator": lambda: (v for v in (1.5, 2.5)),
    "range": lambda: range(1, 3),
}


@pytest.mark.parametrize("form", FORMS)
def test_input_forms_reach_the_same_state(form):
    with dlsched.Agent(GRID) as a:
        a.observe_transition(FORMS[form](), 1, 1.0, FORMS[form](), truncated=True)
        # bins (1, 2): Q = 0.5 * (1 + 0.9 * 0); (2, 1) is another state
        assert list(a.q_values([1.2, 2.7])) == pytest.approx([0, 0.5, 0])
        assert list(a.q_values([2.7, 1.2])) == [0, 0, 0]
        assert list(a.q_values(FORMS[form]())) == pytest.approx([0, 0.5, 0])
        d = a.act(FORMS[form](), greedy=True)
        assert (d.action, d.value) == (1, 0.5)
        d = a.act(FORMS[form]())
        a.observe(d.ticket, 2.0, FORMS[form](), terminated=True)
        assert a.q_values([1.2, 2.7])[d.action] == pytest.approx(
            [0.5 * 2.0, 0.5 + 0.5 * (2.0 - 0.5), 0.5 * 2.0][d.action])


def test_float32_array_is_passed_without_a_copy():
    agent = dlsched.Agent(GRID)
    x = np.array([0.5, 1.5], dtype=np.float32)
    st = _lib.dlsched_state_t()
    keep, _ = agent._fill(st, x, None, None, "obs")
    assert keep is x
    assert ctypes.cast(st.features, ctypes.c_void_p).value == x.ctypes.data
    for other in (np.array([0.5, 1.5]), np.array([0.5, 7, 1.5, 7], dtype=np.float32)[::2]):
        keep, _ = agent._fill(st, other, None, None, "obs")
        assert keep is not other and keep.dtype == np.float32 and keep.flags.c_contiguous
        assert list(keep) == [0.5, 1.5]
        assert ctypes.cast(st.features, ctypes.c_void_p).value == keep.ctypes.data
    # and on the real path: act hands the C function the array's own memory
    seen = []
    real = agent._act

    def spy(h, state_ref, flags, out):
        st = ctypes.cast(state_ref, ctypes.POINTER(_lib.dlsched_state_t)).contents
        seen.append(ctypes.cast(st.features, ctypes.c_void_p).value)
        return real(h, state_ref, flags, out)

    agent._act = spy
    agent.act(x)
    assert seen == [x.ctypes.data]
    agent.close()


class _Forbidden:
    """Stands for the library: any C call fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"{name} was called")


def _no_c(*args):
    raise AssertionError("a C function was called")


@pytest.mark.parametrize("call", [
    lambda a: a.act([0.5, 0.5]),
    lambda a: a.act([]),
    lambda a: a.act(np.zeros(3, dtype=np.float32)),
    lambda a: a.act(np.zeros((2, 2))),
    lambda a: a.act([0.5], mask=[1]),
    lambda a: a.act([0.5], mask=b"\x01\x01\x01"),
    lambda a: a.act(["x"]),
    lambda a: a.act([0.5], hint=2 ** 40),
    lambda a: a.observe(1, 1.0, [1, 2]),
    lambda a: a.observe(1, 1.0, [0.5], next_mask=[1, 1, 1]),
    lambda a: a.observe_transition([1, 2], 0, 1.0, [0.5]),
    lambda a: a.observe_transition([0.5], 0, 1.0, [0.5, 1]),
    lambda a: a.observe_transition([0.5], 0, 1.0, [0.5], mask=[1]),
    lambda a: a.q_values([1, 2]),
    lambda a: a.q_values([0.5], mask=[1, 1, 1]),
    lambda a: a.train(-1),
])
def test_wrong_sizes_fail_before_any_c_call(qagent, call):
    lib, act, obs = qagent._lib, qagent._act, qagent._observe
    qagent._lib, qagent._act, qagent._observe = _Forbidden(), _no_c, _no_c
    try:
        with pytest.raises(InvalidArgumentError) as ei:
            call(qagent)
    finally:
        qagent._lib, qagent._act, qagent._observe = lib, act, obs
    assert ei.value.code == _lib.EINVAL
    st = qagent.stats()
    assert (st.decisions, st.observed, st.transitions, st.train_steps) == (0, 0, 0, 0)


def test_nan_and_inf_are_refused_by_the_library():
    with dlsched.Agent(GRID) as a:
        with pytest.raises(InvalidArgumentError) as ei:
            a.act([0.5, float("nan")])
        assert ei.value.function == "dlsched_act" and "feature 1 is NaN" in ei.value.message
        with pytest.raises(InvalidArgumentError, match="feature 0"):
            a.q_values(np.array([np.inf, 1.0]))
        d = a.act([0.5, 0.5])
        with pytest.raises(InvalidArgumentError, match="feature 1"):
            a.observe(d.ticket, 1.0, [0.5, float("nan")])
        with pytest.raises(InvalidArgumentError):
            a.observe(d.ticket, float("nan"), [0.5, 0.5])
        # a rejected observe changes nothing: the ticket is still pending
        assert a.stats().tickets_pending == 1
        a.observe(d.ticket, 1.0, terminated=True)
        assert a.stats().observed == 1


def test_next_obs_needed_unless_terminated(qagent):
    for trunc in (False, True):
        with pytest.raises(InvalidArgumentError, match="NULL"):
            qagent.observe_transition(S0, 0, 1.0, None, truncated=trunc)
    qagent.observe_transition(S0, 0, 1.0, None, terminated=True)
    assert qagent.stats().transitions == 1


# ---- statistics -------------------------------------------------------------

def test_stats_are_consistent():
    with dlsched.Agent(QSPEC + " ticket_capacity=4") as a:
        tickets = [a.act(S0).ticket for _ in range(6)]  # the first two expire
        a.act(S1, greedy=True)
        for tk in tickets[:2]:
            with pytest.raises(TicketError):
                a.observe(tk, 1.0, terminated=True)
        a.observe(tickets[2], 1.0, S1)
        a.observe(tickets[5], 1.0, terminated=True)
        for _ in range(3):
            a.observe_transition(S1, 0, 0.5, S0)
        st = a.stats()
        assert st.tickets_issued == st.observed + st.tickets_expired + st.tickets_pending
        assert (st.decisions, st.tickets_issued, st.observed, st.tickets_expired,
                st.tickets_pending) == (7, 6, 2, 2, 2)
        assert st.transitions == 3
        assert st.train_steps == st.model_version == 5  # expired tickets are dropped
        assert st.backend == "cpu" and isinstance(st.backend_reason, str)
        d = st.as_dict()
        assert d["decisions"] == 7 and "size" not in d and "guard_reserved" not in d
        assert set(d) == {n for n, _ in _lib.dlsched_stats_t._fields_} - {"size",
                                                                          "guard_reserved"}
        assert "decisions=7" in repr(st)


# ---- persistence -------------------------------------------------------------

def _trained_qagent():
    a = dlsched.Agent(QSPEC + " seed=9")
    for i, (x, act, r, x2) in enumerate([(S0, 0, 1.0, S1), (S1, 1, 2.0, S0),
                                         (S0, 1, -1.0, S1), (S1, 0, 0.5, S0)]):
        a.observe_transition(x, act, r, x2)
    return a


def _small_dqn(**keys):
    a = dlsched.Agent(n_features=3, n_actions=2, hidden=[8, 8], batch=4, replay=64,
                      learning_starts=10 ** 9, seed=4, **keys)
    rng = np.random.default_rng(1)
    for i in range(16):
        a.observe_transition(rng.random(3), i % 2, float(i % 3), rng.random(3))
    return a


STATES3 = [[0.1, 0.2, 0.3], [0.9, 0.1, 0.5], [0.4, 0.4, 0.0]]


@pytest.mark.parametrize("kind", ["str", "Path", "bytes"])
def test_save_and_load_file_qtable(tmp_path, kind):
    a = _trained_qagent()
    p = tmp_path / "q.ckpt"
    a.save({"str": str(p), "Path": p, "bytes": bytes(p)}[kind])
    assert p.read_bytes() == a.save_buffer()
    b = dlsched.Agent.load({"str": str(p), "Path": p, "bytes": bytes(p)}[kind])
    assert (b.n_features, b.n_actions, b.algo) == (1, 2, "qtable")
    for x in (S0, S1):
        assert np.array_equal(a.q_values(x), b.q_values(x))
    # the loaded agent keeps the stored lr and gamma: one more update by hand
    q1 = list(b.q_values(S1))
    b.observe_transition(S0, 0, 0.2, S1)
    q0 = a.q_values(S0)[0]
    assert b.q_values(S0)[0] == pytest.approx(q0 + LR * (0.2 + GAMMA * max(q1) - q0))
    a.close()
    b.close()


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_save_buffer_round_trip(wrap):
    for a in (_trained_qagent(), _small_dqn(), _small_dqn(algo="dqn", dueling=1)):
        a.train(3) if a.algo == "dqn" else None
        b = dlsched.Agent.load_buffer(wrap(a.save_buffer()))
        assert (b.n_features, b.n_actions, b.algo) == (a.n_features, a.n_actions, a.algo)
        for x in ([S0, S1] if a.algo == "qtable" else STATES3):
            assert np.array_equal(a.q_values(x), b.q_values(x))
        assert b.save_buffer() == a.save_buffer()
        a.close()
        b.close()


def test_load_dqn_file_keeps_shape(tmp_path):
    a = _small_dqn()
    a.train(2)
    a.save(tmp_path / "d.ckpt")
    b = dlsched.Agent.load(tmp_path / "d.ckpt")
    assert (b.n_features, b.n_actions, b.algo) == (3, 2, "dqn")
    for x in STATES3:
        assert np.array_equal(a.q_values(x), b.q_values(x))


@pytest.mark.parametrize("how", ["keyword", "dict", "spec", "buffer"])
def test_load_with_lr_override(tmp_path, how):
    a = _trained_qagent()
    p = tmp_path / "q.ckpt"
    a.save(p)
    if how == "keyword":
        b = dlsched.Agent.load(p, lr=0.2)
    elif how == "dict":
        b = dlsched.Agent.load(p, {"lr": 0.2})
    elif how == "spec":
        b = dlsched.Agent.load(str(p), "lr=0.2")
    else:
        b = dlsched.Agent.load_buffer(a.save_buffer(), lr=0.2)
    assert b.algo == "qtable"
    before = b.q_values(S1)[1]
    b.observe_transition(S1, 1, 1.0, terminated=True)
    assert b.q_values(S1)[1] == pytest.approx(before + 0.2 * (1.0 - before))


@pytest.mark.parametrize("key,value", [("n_features", 2), ("n_actions", 3), ("bins", 3),
                                       ("algo", "dqn")])
def test_load_with_shape_override_is_a_mismatch(tmp_path, key, value):
    a = _trained_qagent()
    a.save(tmp_path / "q.ckpt")
    with pytest.raises(MismatchError) as ei:
        dlsched.Agent.load(tmp_path / "q.ckpt", **{key: value})
    assert f"'{key}'" in ei.value.message and ei.value.code == _lib.EMISMATCH
    with pytest.raises(MismatchError):
        dlsched.Agent.load_buffer(a.save_buffer(), {key: value})


# ---- training ------------------------------------------------------------------

def test_train_counts_steps_exactly():
    with _small_dqn() as a:
        st0 = a.stats()
        assert st0.train_steps == 0 and st0.transitions_stored == 16
        a.train(7)
        assert a.stats().train_steps == 7
        a.train(0)
        assert a.stats().train_steps == 7
        with pytest.raises(InvalidArgumentError) as ei:
            a.train(-1)
        assert isinstance(ei.value, ValueError)
        a.train(np.int64(5))
        st = a.stats()
        assert st.train_steps == st.model_version == 12


def test_train_without_replay_is_a_config_error(qagent):
    with pytest.raises(ConfigError, match="replay"):
        qagent.train(1)


# ---- lifetime ----------------------------------------------------------------------

CALLS = {
    "act": lambda a: a.act(S0),
    "act greedy": lambda a: a.act(S0, greedy=True),
    "observe": lambda a: a.observe(1, 1.0, terminated=True),
    "observe_transition": lambda a: a.observe_transition(S0, 0, 1.0, terminated=True),
    "train": lambda a: a.train(1),
    "q_values": lambda a: a.q_values(S0),
    "stats": lambda a: a.stats(),
    "save": lambda a: a.save("/tmp/never-written.ckpt"),
    "save_buffer": lambda a: a.save_buffer(),
    "enter": lambda a: a.__enter__(),
}


@pytest.mark.parametrize("call", CALLS)
def test_use_after_close_raises_closed_error(call):
    a = dlsched.Agent(QSPEC)
    a.close()
    a.close()  # idempotent
    assert a.closed
    with pytest.raises(ClosedError) as ei:
        CALLS[call](a)
    assert ei.value.code is None and isinstance(ei.value, dlsched.DlschedError)
    assert "closed" in repr(a)


def test_context_manager_closes():
    with dlsched.Agent(QSPEC) as a:
        assert not a.closed
        a.act(S0)
    assert a.closed
    with pytest.raises(RuntimeError):
        with dlsched.Agent(QSPEC) as b:
            raise RuntimeError("boom")
    assert b.closed
    with pytest.raises(ClosedError):
        b.stats()


@pytest.mark.parametrize("op", [pickle.dumps, copy.deepcopy, copy.copy,
                                lambda a: pickle.dumps(a, protocol=2)])
def test_agent_cannot_be_pickled_or_copied(qagent, op):
    with pytest.raises(TypeError) as ei:
        op(qagent)
    assert "save_buffer" in str(ei.value) and "checkpoint" in str(ei.value)


# ---- without numpy -------------------------------------------------------------

NO_NUMPY = r"""
import json, sys
sys.modules["numpy"] = None  # import numpy now raises ImportError
import dlsched
from dlsched import _agent
assert _agent._np is None
spec, s0, s1 = sys.argv[1], [0.5], (1.5,)
out = {}
with dlsched.Agent(spec) as a:
    a.observe_transition(s0, 0, 1.0, s1)
    a.observe_transition(iter([1.5]), 1, 2.0, [0.5])
    a.observe_transition(0.5, 1, -1.0, s1, truncated=True)
    a.observe_transition(s1, 0, 3.0, s0, terminated=True, truncated=True)
    q = a.q_values(s0)
    out["type"] = type(q).__name__
    out["q0"], out["q1"] = q, a.q_values(s1)
    out["masked"] = [repr(v) for v in a.q_values(s0, mask=[False, True])]
    out["greedy"] = a.act(s0, mask=b"\x00\x01", greedy=True).action
    try:
        a.act([0.5, 0.5])
    except dlsched.InvalidArgumentError as e:
        out["size_error"] = str(e)
print(json.dumps(out))
"""


def test_without_numpy_lists_work():
    r = run_python(NO_NUMPY, args=[QSPEC])
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    t = Table()
    t.update(0, 0, 1.0, 1)
    t.update(1, 1, 2.0, 0)
    t.update(0, 1, -1.0, 1)
    t.update(1, 0, 3.0, 0, terminal=True)
    assert out["type"] == "list"
    assert out["q0"] == pytest.approx(t.row(0)) and out["q1"] == pytest.approx(t.row(1))
    assert out["masked"][0] == "-inf" and float(out["masked"][1]) == pytest.approx(t.q[0, 1])
    assert out["greedy"] == 1
    assert "n_features=1" in out["size_error"]
