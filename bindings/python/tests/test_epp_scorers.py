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
    # never (rank 0) -> 1, picked at 5 (rank 1) -> 0.5, picked at 9 (rank 2) -> 0
    assert nohit_lru_scores([9, None, 5], cold=True) == [0.0, 1.0, 0.5]
    # two never picked share rank 0; the third is rank 2 -> 0
    assert nohit_lru_scores([None, None, 1], cold=True) == [1.0, 1.0, 0.0]
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
    c = [Candidate(0, 0.0, 0, None)] * 4  # all equal: every total 2+2+0+2 = 6
    assert gateway_totals(c, 0) == pytest.approx([6.0] * 4)
    rng = random.Random(7)
    counts = [0] * 4
    for _ in range(4000):
        counts[gateway_pick(c, 0, rng)] += 1
    assert all(900 < k < 1100 for k in counts), counts


def test_custom_weights_and_empty():
    c = [Candidate(0, 0.9), Candidate(5, 0.1)]
    # kv only: .1 vs .9
    assert gateway_pick(c, 0, random.Random(0), {"kv": 1.0}) == 1
    with pytest.raises(ValueError, match="no candidate"):
        gateway_pick([], 0, random.Random(0))
