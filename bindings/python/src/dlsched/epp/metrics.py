"""The picker's own Prometheus metrics (prometheus_client, one registry per
picker so several can live in one process):

    dlsched_epp_picks_total                      requests given an endpoint
    dlsched_epp_refusals_total{status}           503 (none eligible/ready), 429 (shed); the
                                                 front ends' own 413 (body over 10 MiB) and
                                                 "picker error" 503 are not counted
    dlsched_epp_decisions_total{source}          learned | incumbent (the hint: gateway mix,
                                                 apprenticeship or the guard) | gateway
                                                 (--policy gateway) | round-robin
    dlsched_epp_guard_state                      the agent's guard state, DLSCHED_GUARD_*
                                                 (0 off, 1 incumbent, 2 learned, 3 fallen
                                                 back; -1 no agent)
    dlsched_epp_pick_latency_seconds             histogram of the pick itself
    dlsched_epp_tickets_total{outcome}           observed | expired | reset | untracked
    dlsched_epp_rewards_total{value}             rewards observed: 1 SLO met, 0 missed, -1 failed
    dlsched_epp_frontend{frontend}               1 for the ext_proc front end serving
                                                 (native | python)
"""
from __future__ import annotations

import re
import urllib.request
from typing import Any, Dict, Optional

__all__ = ["EppMetrics", "read_epp_metrics"]


def read_epp_metrics(port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> Dict[str, float]:
    """A running picker's dlsched_epp_* samples from its /metrics endpoint
    (Prometheus text), keyed by name plus labels as exposed, e.g.
    ``dlsched_epp_decisions_total{source="incumbent"}``."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout) as r:
        text = r.read().decode()
    out: Dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r'^(dlsched_epp_\w+)(\{[^}]*\})?\s+(\S+)$', line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


class EppMetrics:
    def __init__(self, agent: Any = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        self.registry = CollectorRegistry()
        r = self.registry
        self.picks = Counter("dlsched_epp_picks", "Requests given an endpoint", registry=r)
        self.refusals = Counter("dlsched_epp_refusals", "Requests refused by the picker",
                                ["status"], registry=r)
        self.decisions = Counter("dlsched_epp_decisions", "Picks by who decided", ["source"],
                                 registry=r)
        self.guard_state = Gauge("dlsched_epp_guard_state",
                                 "Guard state: 0 off, 1 incumbent, 2 learned, 3 fallen back, -1 no agent",
                                 registry=r)
        self.latency = Histogram("dlsched_epp_pick_latency_seconds", "Time to pick an endpoint",
                                 buckets=(25e-6, 50e-6, 100e-6, 200e-6, 400e-6, 800e-6, 1.6e-3,
                                          3.2e-3, 6.4e-3, 12.8e-3, 25.6e-3, 51.2e-3),
                                 registry=r)
        self.tickets = Counter("dlsched_epp_tickets", "Request outcomes for the agent", ["outcome"],
                               registry=r)
        self.rewards = Counter("dlsched_epp_rewards", "Observed rewards by value (1 SLO met, "
                               "0 missed, -1 failed)", ["value"], registry=r)
        self.frontend = Gauge("dlsched_epp_frontend", "The ext_proc front end serving "
                              "(native: C++, python: grpc.aio)", ["frontend"], registry=r)
        self._agent = agent
        if agent is None:
            self.guard_state.set(-1)
        else:
            self.guard_state.set_function(self._guard)

    def _guard(self) -> float:
        try:
            return float(getattr(self._agent.stats(), "guard_state", -1))
        except Exception:
            return -1.0

    def serving(self, frontend: str) -> None:
        self.frontend.labels(frontend).set(1)

    def picked(self, source: str, seconds: float) -> None:
        self.picks.inc()
        self.decisions.labels(source).inc()
        self.latency.observe(seconds)

    def refused(self, status: int) -> None:
        self.refusals.labels(str(status)).inc()

    def ticket(self, outcome: str) -> None:
        self.tickets.labels(outcome).inc()

    def finished(self, ctx: Any, reward: Optional[float]) -> None:
        if reward is not None:
            self.rewards.labels(f"{reward:g}").inc()
