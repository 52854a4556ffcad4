"""dlsched.epp.scorers against hand-worked cases (each total computed by hand
in the comment beside it)."""
from __future__ import annotations

import random

import pytest

from dlsched.epp.scorers import (Candidate, gateway_pick, gateway_totals, kv_scores,
                                 nohit_lru_scores, prefix_scores, queue_scores)


def test_queue_min_max():
    # max 10, min 2: (10-2)/8 = 1, (10-6)/8 = 0.5, (10-10)/8 = 0
    assert queue_scores([2, 6, 10]) == [1.0, 0.5, 0.0]
    assert queue_scores([3, 3]) == [1.0, 1.0]
    assert queue_scores([]) == []


def test_kv_clamped():
    assert kv_scores([0.0, 0.25, 1.0, 1.5, -0.1]) == [1.0, 0.75, 0.0, 0.0, 1.0]


def test_prefix_fraction():
    assert prefix_scores([0, 2, 4], 4) == [0.0, 0.5, 1.0]
    assert prefix_scores([3], 0) == [0.0]


def test_nohit_lru_rank():
    # llm-d's no_hit_lru.go: never picked first, in candidate order (i / (m - 1));
    # then never + LRU position. never (i 0) -> 1; picked at 5 (1 + 0) -> 0.5;
    # picked at 9 (1 + 1) -> 0
    assert nohit_lru_scores([9, None, 5], cold=True) == [0.0, 1.0, 0.5]
    # two never picked: 1 and 0.5 in candidate order; the third 2 + 0 -> 0
    assert nohit_lru_scores([None, None, 1], cold=True) == [1.0, 0.5, 0.0]
    # the LRU holds endpoints that are not candidates: a candidate picked at 7
    # behind 3 and 5 (not candidates) ranks 0 + 2 of m - 1 = 2 -> 0
    assert nohit_lru_scores([7, 9, 8], cold=True, lru=[3, 5, 7, 8, 9]) == [0.0, 0.0, 0.0]
    assert nohit_lru_scores([7, None, 8], cold=True, lru=[3, 7, 8]) == [0.0, 1.0, 0.0]
    assert nohit_lru_scores([7, None, 8], cold=True) == [0.5, 1.0, 0.0]
    assert nohit_lru_scores([4], cold=True) == [1.0]
    assert nohit_lru_scores([1, 2, None], cold=False) == [0.5, 0.5, 0.5]


def test_totals_warm_request():
    # total_blocks 4. A: q 0, kv .5, 4 blocks; B: q 4, kv 0, 0 blocks; C: q 2, kv .9, 2 blocks
    # queue: A 1, B 0, C .5; kv: A .5, B 1, C .1; prefix: A 1, B 0, C .5; lru: .5 each (warm)
    # A = 2*1 + 2*.5 + 3*1 + 2*.5 = 7; B = 0 + 2 + 0 + 1 = 3; C = 1 + .2 + 1.5 + 1 = 3.7
    c = [Candidate(0, 0.5, 4, 3), Candidate(4, 0.0, 0, None), Candidate(2, 0.9, 2, 1)]
    assert gateway_totals(c, 4) == pytest.approx([7.0, 3.0, 3.7])
    assert gateway_pick(c, 4, random.Random(0)) == 0


def test_totals_cold_request_lru_decides():
    # equal queues and kv: queue 1 each (2), kv .5 each (1), prefix 0; cold:
    # last picks 7, None, 3 -> ranks 2, 0, 1 -> lru 0, 1, .5 -> totals 3, 5, 4
    c = [Candidate(1, 0.5, 0, 7), Candidate(1, 0.5, 0, None), Candidate(1, 0.5, 0, 3)]
    assert gateway_totals(c, 5) == pytest.approx([3.0, 5.0, 4.0])
    assert gateway_pick(c, 5, random.Random(0)) == 1


def test_prefix_outweighs_queue():
    # A: q 8 kv .2, 3 of 3 blocks; B: q 0 kv .2, none. warm.
    # A = 0 + 1.6 + 3 + 1 = 5.6; B = 2 + 1.6 + 0 + 1 = 4.6
    c = [Candidate(8, 0.2, 3, 1), Candidate(0, 0.2, 0, 2)]
    assert gateway_totals(c, 3) == pytest.approx([5.6, 4.6])
    assert gateway_pick(c, 3, random.Random(1)) == 0


def test_tie_break_is_random_and_uniform():
    # a warm request (each candidate matched 2 of 4 blocks): no-hit LRU 0.5 for
    # all; every total 2 + 2 + 3 x 0.5 + 2 x 0.5 = 6.5
    c = [Candidate(0, 0.0, 2, None)] * 4
    assert gateway_totals(c, 4) == pytest.approx([6.5] * 4)
    rng = random.Random(7)
    counts = [0] * 4
    for _ in range(4000):
        counts[gateway_pick(c, 4, rng)] += 1
    assert all(900 < k < 1100 for k in counts), counts
    # a cold request with no endpoint ever picked cold: llm-d's no-hit LRU
    # ranks them in candidate order (1, 2/3, 1/3, 0): no tie
    cold = [Candidate(0, 0.0, 0, None)] * 4
    assert gateway_totals(cold, 0) == pytest.approx([6.0, 4 + 4 / 3, 4 + 2 / 3, 4.0])


def test_custom_weights_and_empty():
    c = [Candidate(0, 0.9), Candidate(5, 0.1)]
    # kv only: .1 vs .9
    assert gateway_pick(c, 0, random.Random(0), {"kv": 1.0}) == 1
    with pytest.raises(ValueError, match="no candidate"):
        gateway_pick([], 0, random.Random(0))


def _gw_scores_binary():
    """The simulator's scorer driver (tests/sim/gw_scores.c): DLSCHED_GW_SCORES,
    else the default build tree's; None when neither exists."""
    import os
    path = os.environ.get("DLSCHED_GW_SCORES")
    if not path:
        top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))))
        path = os.path.join(top, "build", "default", "tests", "gw_scores")
    return path if os.path.exists(path) else None


def test_totals_equal_the_simulators():
    """The picker's hint and the simulator's `gateway` policy are one scorer
    mix: random cases through both (the simulator's sim_gw_totals via
    tests/sim/gw_scores.c), totals equal to 1e-12."""
    import random
    import subprocess
    binary = _gw_scores_binary()
    if binary is None:
        import pytest
        pytest.skip("tests/sim/gw_scores not built (make build/default/tests/gw_scores)")
    rng = random.Random(19)
    cases, want = [], []
    for _ in range(400):
        nc = rng.randint(1, 8)
        weights = {"queue": rng.choice([2.0, 1.0, 0.0, 3.5]), "kv": rng.choice([2.0, 0.5]),
                   "prefix": rng.choice([3.0, 1.0]), "nohit_lru": rng.choice([2.0, 0.0, 1.5])}
        total_blocks = rng.randint(0, 12)
        cold_case = rng.random() < 0.5
        seq = rng.sample(range(1, 60), 12)   # distinct cold-pick sequence numbers
        cands, lru = [], []
        for i in range(nc):
            matched = 0 if cold_case or total_blocks == 0 else rng.randint(0, total_blocks)
            at = seq[i] if rng.random() < 0.6 else None
            cands.append(Candidate(waiting=rng.randint(0, 9), kv_usage=rng.randint(0, 16) / 16,
                                   matched_blocks=matched, last_cold_pick=at))
            if at is not None:
                lru.append(at)
        extra = [seq[8 + k] for k in range(rng.randint(0, 3))]  # picked, not candidates
        lru += extra
        cold = not any(c.matched_blocks > 0 for c in cands)
        want.append(gateway_totals(cands, total_blocks, weights, lru))
        fields = [weights["queue"], weights["kv"], weights["prefix"], weights["nohit_lru"],
                  int(cold), nc]
        for c in cands:
            frac = c.matched_blocks / total_blocks if total_blocks else 0.0
            fields += [c.waiting, repr(c.kv_usage), repr(frac), c.last_cold_pick or 0]
        fields += [len(extra)] + extra
        cases.append(" ".join(str(f) for f in fields))
    out = subprocess.run([binary], input="\n".join(cases) + "\n", capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert len(out) == len(cases)
    for k, (line, w) in enumerate(zip(out, want)):
        got = [float(x) for x in line.split()]
        assert len(got) == len(w), (k, cases[k])
        for g, x in zip(got, w):
            assert abs(g - x) <= 1e-12, (k, cases[k], got, w)
