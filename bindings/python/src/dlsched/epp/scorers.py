"""The gateway's scorer mix, as a pure function: the picker's hint.

The Gateway API Inference Extension's endpoint picker (and llm-d's
inference scheduler, which configures it) ranks the candidate endpoints of a
request by a weighted sum of scorers, each in [0, 1], and picks the highest
total. The mix reproduced here is llm-d's default "precise prefix" profile
as the issue states it: queue 2, KV-cache utilisation 2, prefix 3,
no-hit LRU 2.

Each scorer and its normalisation, with where it comes from:

queue
    ``(max_q - q) / (max_q - min_q)`` over the candidates' waiting queues;
    every candidate scores 1.0 when all queues are equal. Source: GIE's
    ``queue-scorer`` (pkg/epp/scheduling/framework/plugins/scorer/queue.go,
    v0.5-v1.0): a min-max normalisation of ``WaitingQueueSize`` so the
    shortest queue scores 1 and the longest 0.
kv-cache utilisation
    ``1 - usage`` with usage in [0, 1] (the model server's
    ``vllm:kv_cache_usage_perc`` is already a fraction despite its name),
    clamped to [0, 1]. Source: GIE's ``kv-cache-utilization-scorer``
    (``1 - KVCacheUsagePercent``).
prefix
    ``matched_blocks / total_blocks``: the number of the request's leading
    prompt blocks that the picker's own index says were routed to that
    endpoint, over the request's block count; 0 when the prompt has no
    block. Source: GIE's ``prefix-cache-scorer`` (proposal 0602,
    docs/proposals/0602-prefix-cache-aware-routing-proposal: chained block
    hashes, longest prefix match, score = matched / total).
no-hit LRU
    Only for a *cold* request (no candidate has a prefix match), as llm-d's
    ``no-hit-lru-scorer`` computes it (llm-d-inference-scheduler,
    pkg/plugins/scorer/no_hit_lru.go): of m candidates, those never picked
    for a cold request score ``1 - i / (m - 1)`` in candidate order (i =
    0, 1, ...); one picked before scores ``1 - (never + pos) / (m - 1)``,
    clamped at 0, where never is the number of never-picked candidates and
    pos its position in the scorer's LRU, which holds every endpoint ever
    picked for a cold request (candidates or not), oldest first; 1.0 when
    m = 1. A warm request gives every candidate the neutral 0.5. The
    simulator's ``gateway`` (examples/clustersim/kvcache.c, sim_gw_totals)
    computes the same; test_epp_scorers.py checks the two equal on random
    cases.

Highest weighted total wins; ties (within 1e-9) are broken uniformly at
random with the caller's random.Random, as GIE's max-score picker does.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

__all__ = ["Candidate", "DEFAULT_WEIGHTS", "queue_scores", "kv_scores", "prefix_scores",
           "nohit_lru_scores", "gateway_totals", "gateway_pick", "round_robin_pick"]

#: llm-d's default mix, as issue 19 gives it
DEFAULT_WEIGHTS: Dict[str, float] = {"queue": 2.0, "kv": 2.0, "prefix": 3.0, "nohit_lru": 2.0}

TIE_EPS = 1e-9


@dataclass(frozen=True)
class Candidate:
    """What the scorers see of one eligible endpoint."""
    waiting: float           #: requests waiting in the server's queue
    kv_usage: float          #: KV-cache usage, a fraction in [0, 1]
    matched_blocks: int = 0  #: leading prompt blocks found routed here
    last_cold_pick: Optional[int] = None  #: sequence number of its last cold pick, None = never


def queue_scores(waiting: Sequence[float]) -> List[float]:
    """(max - q) / (max - min); all 1.0 when max == min."""
    if not waiting:
        return []
    lo, hi = min(waiting), max(waiting)
    if hi == lo:
        return [1.0] * len(waiting)
    return [(hi - q) / (hi - lo) for q in waiting]


def kv_scores(usage: Sequence[float]) -> List[float]:
    """1 - usage, clamped to [0, 1]."""
    return [min(1.0, max(0.0, 1.0 - u)) for u in usage]


def prefix_scores(matched: Sequence[int], total_blocks: int) -> List[float]:
    """matched / total; 0 for a prompt without a block."""
    if total_blocks <= 0:
        return [0.0] * len(matched)
    return [min(m, total_blocks) / total_blocks for m in matched]


def nohit_lru_scores(last_cold_pick: Sequence[Optional[int]], cold: bool,
                     lru: Optional[Sequence[int]] = None) -> List[float]:
    """Warm request: 0.5 each. Cold: llm-d's ranks (module docstring).

    ``lru``: the last cold-pick sequence numbers of every endpoint the
    scorer's LRU holds (default: the candidates' own)."""
    m = len(last_cold_pick)
    if not cold:
        return [0.5] * m
    if m == 1:
        return [1.0]
    held = sorted(t for t in (lru if lru is not None else last_cold_pick) if t is not None)
    never = sum(1 for t in last_cold_pick if t is None)
    out: List[float] = []
    i = 0
    for t in last_cold_pick:
        if t is None:
            out.append(1.0 - i / (m - 1))
            i += 1
        else:
            pos = sum(1 for h in held if h < t)
            out.append(max(0.0, 1.0 - (never + pos) / (m - 1)))
    return out


def gateway_totals(cands: Sequence[Candidate], total_blocks: int,
                   weights: Optional[Dict[str, float]] = None,
                   lru: Optional[Sequence[int]] = None) -> List[float]:
    """The weighted sum of the four scorers per candidate (``lru``: see
    nohit_lru_scores)."""
    w = DEFAULT_WEIGHTS if weights is None else weights
    matched = [c.matched_blocks for c in cands]
    cold = not any(m > 0 for m in matched)
    parts = (
        (w.get("queue", 0.0), queue_scores([c.waiting for c in cands])),
        (w.get("kv", 0.0), kv_scores([c.kv_usage for c in cands])),
        (w.get("prefix", 0.0), prefix_scores(matched, total_blocks)),
        (w.get("nohit_lru", 0.0), nohit_lru_scores([c.last_cold_pick for c in cands], cold, lru)),
    )
    return [sum(wt * s[i] for wt, s in parts) for i in range(len(cands))]


def gateway_pick(cands: Sequence[Candidate], total_blocks: int, rng: random.Random,
                 weights: Optional[Dict[str, float]] = None) -> int:
    """Index of the highest total; ties broken uniformly with ``rng``."""
    if not cands:
        raise ValueError("gateway_pick: no candidate")
    totals = gateway_totals(cands, total_blocks, weights)
    best = max(totals)
    tied = [i for i, t in enumerate(totals) if t >= best - TIE_EPS]
    return tied[0] if len(tied) == 1 else tied[rng.randrange(len(tied))]


def round_robin_pick(n: int, counter: int) -> int:
    """The baseline: candidate ``counter mod n``."""
    if n <= 0:
        raise ValueError("round_robin_pick: no candidate")
    return counter % n
