"""A request router to learn: one server's Poisson stream of requests, each
sent to one of K replicas of different speeds (pure Python, no numpy on the
per-request path: K is small).

Each replica serves its queue first come, first served, at ``speed`` units
of work per second, so a request's latency is known when it is routed:
(the replica's backlog + its size) / its speed. The reward, -latency/SCALE,
arrives when the request completes (the decision's ticket stays pending
until then), with the state of the next routing decision as next state.

State (K + 1 numbers): each replica's backlog in seconds of work at speed 1,
divided by BACKLOG_NORM, and the request's size divided by SIZE_NORM. The
agent is not told the speeds: it has to learn them.

Policies to compare with: random (uniform over the replicas) and
join-shortest-queue (JSQ: the smallest backlog), which ignores the speeds,
and join-shortest-expected-delay (JSED: the smallest (backlog + size) /
speed), which knows them. The greedy learned policy is evaluated on a fixed
seed (:func:`evaluate`); the target is 90% of the way from JSQ to JSED.
"""
from __future__ import annotations

import heapq
import random
from typing import Callable, Dict, List, Optional, Sequence, Tuple

SPEEDS = (2.0, 1.5, 1.2, 1.0, 0.8, 0.6, 0.4, 0.25)  # work units per second
LOAD = 0.7  # arrival rate as a share of the total speed
MEAN_SIZE = 1.0  # exponential request sizes, mean 1 work unit
SCALE = 5.0  # reward = -latency / SCALE
BACKLOG_NORM = 10.0
SIZE_NORM = 4.0
N_FEATURES = len(SPEEDS) + 1
N_ACTIONS = len(SPEEDS)

#: the agent's configuration (shape and learning keys), for every process
SPEC = dict(algo="dqn", n_features=N_FEATURES, n_actions=N_ACTIONS, hidden="128,128",
            gamma=0.5, lr=0.001, batch=64, replay=100000, learning_starts=2000,
            epsilon_start=1.0, epsilon_end=0.05, epsilon_decay_steps=20000,
            target_update=250, guard=0, ticket_capacity=4096, cpu_threads=1)
#: samples per transition taken in (8: one gradient step of 64 per 8 transitions)
REPLAY_RATIO = 8


class Router:
    """One server: arrivals, replicas, pending requests; no learning inside."""

    __slots__ = ("rng", "speeds", "rate", "t", "backlog", "pending", "served", "lat_sum")

    def __init__(self, seed: int, speeds: Sequence[float] = SPEEDS, load: float = LOAD) -> None:
        self.rng = random.Random(seed)
        self.speeds = tuple(speeds)
        self.rate = load * sum(self.speeds) / MEAN_SIZE
        self.t = 0.0
        self.backlog = [0.0] * len(self.speeds)  # seconds of work left at each replica
        self.pending: List[Tuple[float, int, object]] = []  # (completion, seq, token)
        self.served = 0
        self.lat_sum = 0.0

    def next_request(self) -> Tuple[List[float], float]:
        """Advance to the next arrival; its state and its size."""
        dt = self.rng.expovariate(self.rate)
        self.t += dt
        b = self.backlog
        for i, v in enumerate(self.speeds):
            x = b[i] - v * dt
            b[i] = x if x > 0.0 else 0.0
        size = self.rng.expovariate(1.0 / MEAN_SIZE)
        state = [x / BACKLOG_NORM for x in b]
        state.append(size / SIZE_NORM)
        return state, size

    def route(self, replica: int, size: float, token: object = None) -> float:
        """Send the request to replica; its latency (it completes at t + latency)."""
        v = self.speeds[replica]
        lat = (self.backlog[replica] + size) / v
        self.backlog[replica] += size
        self.served += 1
        self.lat_sum += lat
        if token is not None:
            heapq.heappush(self.pending, (self.t + lat, self.served, token))
        return lat

    def completed(self) -> List[object]:
        """Tokens of the requests completed by now, oldest first."""
        out = []
        p = self.pending
        while p and p[0][0] <= self.t:
            out.append(heapq.heappop(p)[2])
        return out


def random_policy(rng: random.Random) -> Callable[[List[float], float], int]:
    k = len(SPEEDS)
    return lambda state, size: rng.randrange(k)


def jsq_policy(state: List[float], size: float) -> int:
    q = state[:-1]
    return min(range(len(q)), key=q.__getitem__)


def jsed_policy(state: List[float], size: float) -> int:
    b = [x * BACKLOG_NORM for x in state[:-1]]
    return min(range(len(b)), key=lambda i: (b[i] + size) / SPEEDS[i])


def evaluate(policy: Callable[[List[float], float], int], seed: int = 12345,
             requests: int = 3000) -> float:
    """Mean latency (seconds) of a policy over a fixed stream (same seed,
    same arrivals and sizes for every policy), from empty queues."""
    r = Router(seed)
    for _ in range(requests):
        state, size = r.next_request()
        r.route(policy(state, size), size)
    return r.lat_sum / r.served


def greedy(agent) -> Callable[[List[float], float], int]:
    act = agent.act
    return lambda state, size: act(state, greedy=True).action


def references(seed: int = 12345, requests: int = 3000) -> Dict[str, float]:
    """Mean latencies on the evaluation stream: random (averaged over 5
    random streams), JSQ and JSED."""
    rand = sum(evaluate(random_policy(random.Random(s)), seed, requests) for s in range(5)) / 5
    return dict(random=rand, jsq=evaluate(jsq_policy, seed, requests),
                jsed=evaluate(jsed_policy, seed, requests))


def target(fraction: float = 0.9, refs: Optional[Dict[str, float]] = None) -> float:
    """The mean latency a fraction of the way from JSQ to JSED."""
    r = refs or references()
    return r["jsq"] - fraction * (r["jsq"] - r["jsed"])


class Loop:
    """The per-request loop of a server around an agent: route each request
    with ``act``, and ``observe`` each decision when its request completes,
    with the state of the decision that followed it as next state."""

    __slots__ = ("router", "act", "observe", "last", "steps", "expired")

    def __init__(self, agent, seed: int) -> None:
        self.router = Router(seed)
        self.act = agent.act
        self.observe = agent.observe
        self.last = None  # [ticket, reward, next state] of the latest decision
        self.steps = 0
        self.expired = 0

    def step(self, n: int) -> None:
        """Serve n requests."""
        r = self.router
        act, observe, route, completed = self.act, self.observe, r.route, r.completed
        last = self.last
        for _ in range(n):
            state, size = r.next_request()
            if last is not None:
                last[2] = state
            for tok in completed():  # each completed before this arrival: next state known
                try:
                    observe(tok[0], tok[1], tok[2])
                except LookupError:  # its ticket expired (ticket_capacity): learned nothing
                    self.expired += 1
            d = act(state)
            last = [d.ticket, 0.0, None]
            last[1] = -route(d.action, size, last) / SCALE
        self.last = last
        self.steps += n
