"""The decision: which endpoint serves a request, and what that earned.

``Picker.pick`` filters the pool (ready endpoints, the proxy's subset hint),
sheds or fails with the protocol's status codes, computes the gateway's
scorer mix (scorers.gateway_pick) as the incumbent, and, with the
``learned`` policy, lets a dlsched Agent decide with that incumbent as the
hint and the guard on. The answer is the primary endpoint plus up to
``fallbacks`` others in the scorer mix's order.

``Picker.finish`` turns the streamed response into the ticket's reward:

    reward = -1    the server answered 5xx, or the proxy reset the stream
                   after the response started (no reward for a stream that
                   never completes: its ticket expires)
    reward =  1    2xx/3xx, TTFT <= SLO_ttft and, when the output token
                   count is known, TPOT = (E2E - TTFT) / (tokens - 1) <= SLO_tpot
    reward =  0    otherwise (late, or a 4xx the request itself caused)

TTFT runs from the pick to the first response body chunk the proxy
forwards; SLOs come from the request headers x-slo-ttft-ms and
x-slo-tpot-ms, else the command line's defaults. Each request is its own
episode (terminated), which is what a per-request choice sharing queues
with others is.

The guard's experiment randomises units, not single decisions or blocks of
time (guard_unit=key): a request's unit is the hash of its prompt's first
prefix block (signals.prompt_blocks; the unit passed to ``Agent.act``,
i.e. dlsched_act_unit), so every request whose prompt starts with the same
block (one system prompt, one few-shot preamble) is decided by the same arm
for the guard's epoch.
Where a prompt's KV cache lives is state that later requests of that prompt
inherit, and it outlives any time block: under switchback blocks
(guard_block) both arms would share the placements either one made, so the
experiment could neither credit the learned policy for a good placement nor
charge it for a bad one. A request without a full prefix block shares no
cached prompt with anything: it is a unit of its own.
"""
from __future__ import annotations

import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .._lib import LibraryError
from .discovery import Endpoint
from .scorers import Candidate, gateway_totals, TIE_EPS
from .signals import PrefixIndex, Scraper, SlotTable, gpu_features, prompt_blocks

__all__ = ["Picker", "PickResult", "RequestContext", "default_agent_spec", "FEATURES_PER_SLOT",
           "POLICIES"]

FEATURES_PER_SLOT = 8  # waiting, running, kv usage, prefix fraction, in-flight, GPU TB/s, variant bits, eligible
POLICIES = ("learned", "gateway", "round-robin")


def default_agent_spec(max_endpoints: int, seed: int = 1) -> str:
    """The default agent: dqn (128 continuous features for 16 slots are far
    too many to bin for qtable), a small net so a training step stays well
    under a millisecond, the learner in its own thread so a pick never waits
    for training, an apprenticeship on the gateway mix, then the guard,
    randomising whole shared prompts between the mix and the learned policy
    (guard_unit=key; see the module's docstring).

    guard_block=32 no longer shapes the experiment (guard_unit=key ignores
    it there), but it is not dead: it still sets the batches of the guard's
    regime check (the learned policy in charge against the mix's record):
    2 x 32 = 64 rewards instead of the 1024 of guard_block=1, so its first
    check comes 8 batches, 512 rewards, after a hand-over rather than 8192.
    The spec keeps it."""
    return (f"algo=dqn n_features={FEATURES_PER_SLOT * max_endpoints} n_actions={max_endpoints} "
            f"hidden=64,64 batch=64 learning_starts=512 lr=0.0005 normalize=1 gamma=0 "
            f"learner=thread apprentice=2000 epsilon_start=0.05 epsilon_end=0.01 "
            f"epsilon_decay_steps=20000 ticket_timeout_ms=120000 ticket_capacity=65536 "
            f"guard=1 guard_unit=key guard_block=32 seed={seed}")


@dataclass
class PickResult:
    status: int                     #: 200 picked, 503 none eligible/ready, 429 shed
    endpoints: List[str] = field(default_factory=list)  #: "ip:port", primary first
    reason: str = ""
    context: Optional["RequestContext"] = None


@dataclass
class RequestContext:
    slot: int
    hostport: str
    ticket: int
    source: str          #: learned, incumbent (the guard or apprenticeship gave the hint), gateway, round-robin
    t_pick: float
    slo_ttft: float      #: seconds
    slo_tpot: float
    blocks: List[int]
    served_slot: int = -1
    status: int = 0
    t_first: float = 0.0
    t_end: float = 0.0
    tail: bytes = b""
    done: bool = False


_TOKENS = re.compile(rb'"completion_tokens"\s*:\s*(\d+)')


def request_prompt(body: Optional[bytes]) -> str:
    """The prompt text of an OpenAI-style request body ("" when none)."""
    if not body:
        return ""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(doc, dict):
        return ""
    p = doc.get("prompt")
    if isinstance(p, str):
        return p
    if isinstance(p, list):
        return "".join(x for x in p if isinstance(x, str))
    msgs = doc.get("messages")
    if isinstance(msgs, list):
        parts = []
        for m in msgs:
            if isinstance(m, dict):
                c = m.get("content")
                if isinstance(c, str):
                    parts.append(f"{m.get('role', '')}:{c}\n")
        return "".join(parts)
    return ""


def _ms_header(headers: Mapping[str, str], name: str, default: float) -> float:
    v = headers.get(name)
    if v is None:
        return default
    try:
        x = float(v)
    except ValueError:
        return default
    return x / 1000.0 if x > 0 else default


class Picker:
    """Thread-safe picking and reward accounting for one pool."""

    def __init__(self, max_endpoints: int = 16, policy: str = "learned",
                 agent: Any = None, scraper: Optional[Scraper] = None,
                 fallbacks: int = 0, shed_queue: float = 256.0,
                 slo_ttft_ms: float = 2000.0, slo_tpot_ms: float = 100.0,
                 stale_s: float = 1.0, seed: int = 1, weights: Optional[Dict[str, float]] = None,
                 metrics: Any = None, tail_bytes: int = 4096) -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy {policy!r} is not one of {', '.join(POLICIES)}")
        if policy == "learned" and agent is None:
            raise ValueError("policy 'learned' needs an agent")
        if agent is not None and (agent.n_actions != max_endpoints
                                  or agent.n_features != FEATURES_PER_SLOT * max_endpoints):
            raise ValueError(f"agent has n_actions={agent.n_actions} n_features={agent.n_features}; "
                             f"--max-endpoints {max_endpoints} needs {max_endpoints} and "
                             f"{FEATURES_PER_SLOT * max_endpoints}")
        self.n = max_endpoints
        self.policy = policy
        self.agent = agent
        self.scraper = scraper if scraper is not None else Scraper()
        self.fallbacks = fallbacks
        self.shed_queue = shed_queue
        self.slo_ttft = slo_ttft_ms / 1000.0
        self.slo_tpot = slo_tpot_ms / 1000.0
        self.stale_s = stale_s
        self.weights = weights
        self.metrics = metrics
        self.tail_bytes = tail_bytes
        self.slots = SlotTable(max_endpoints)
        self.prefix = PrefixIndex()
        self.inflight = [0] * max_endpoints
        self.last_cold = [None] * max_endpoints  # type: List[Optional[int]]
        self.hw = [(0.0, 0.0)] * max_endpoints  # (GPU TB/s, variant bits) from the labels
        self.synced = False
        self.agent_errors = 0
        self.last_agent_error = ""
        self._seq = 0
        self._rr = 0
        self._units = True   # False once the library proved to lack dlsched_act_unit
        self._own_unit = 0   # the last unit of a request without a prefix block
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    # ---- endpoints ------------------------------------------------------
    def set_endpoints(self, endpoints: Sequence[Endpoint]) -> None:
        """The discovery callback: the full current list."""
        with self._lock:
            vacated = self.slots.update(endpoints)
            for s in vacated:
                self.inflight[s] = 0
                self.last_cold[s] = None
            current = [ep for ep in self.slots.slots if ep is not None]
            self.hw = [gpu_features(ep.labels) if ep is not None else (0.0, 0.0) for ep in self.slots.slots]
            self.synced = True
        for s in vacated:
            self.prefix.forget_slot(s)
        self.scraper.set_endpoints(current)

    def ready_metrics(self, now: Optional[float] = None) -> Dict[int, Any]:
        """Slot -> ServerMetrics of the endpoints scraped within stale_s
        (one read of each, so a scrape or a removal in between cannot split
        the check from the value)."""
        now = time.monotonic() if now is None else now
        out = {}
        for s in self.slots.occupied():
            got = self.scraper.latest(self.slots.slots[s].key)  # type: ignore[union-attr]
            if got is not None and now - got[1] <= self.stale_s:
                out[s] = got[0]
        return out

    def ready_slots(self, now: Optional[float] = None) -> List[int]:
        return list(self.ready_metrics(now))

    # ---- the decision ----------------------------------------------------
    def pick(self, headers: Mapping[str, str], body: Optional[bytes],
             subset: Optional[Sequence[str]]) -> PickResult:
        t0 = time.perf_counter()
        now = time.monotonic()
        blocks = prompt_blocks(request_prompt(body))
        with self._lock:
            sig = self.ready_metrics(now)
            ready = list(sig)
            if subset is not None:
                allowed = {self.slots.slot_of(hp) for hp in subset}
                eligible = [s for s in ready if s in allowed]
                if not eligible:
                    return self._refuse(503, "subset hint: none of " + (",".join(subset) or "(empty)")
                                        + " is a ready endpoint")
            else:
                eligible = ready
            if not eligible:
                return self._refuse(503, "no ready endpoint")
            if all(sig[s].waiting >= self.shed_queue for s in eligible):
                return self._refuse(429, f"every eligible endpoint has >= {self.shed_queue:g} waiting")
            matched = self.prefix.match(blocks, eligible)
            cands = [Candidate(sig[s].waiting, sig[s].kv_usage, matched[s], self.last_cold[s])
                     for s in eligible]
            totals = gateway_totals(cands, len(blocks), self.weights,
                                    [t for t in self.last_cold if t is not None])
            best = max(totals)
            tied = [i for i, t in enumerate(totals) if t >= best - TIE_EPS]
            gi = tied[0] if len(tied) == 1 else tied[self._rng.randrange(len(tied))]
            incumbent = eligible[gi]
            ticket = 0
            if self.policy == "round-robin":
                slot = eligible[self._rr % len(eligible)]
                self._rr += 1
                source = "round-robin"
            elif self.policy == "gateway":
                slot, source = incumbent, "gateway"
            else:
                feats = [0.0] * (FEATURES_PER_SLOT * self.n)
                mask = [0] * self.n
                nb = max(1, len(blocks))
                for s in eligible:
                    m = sig[s]
                    o = FEATURES_PER_SLOT * s
                    feats[o:o + FEATURES_PER_SLOT] = [m.waiting, m.running, m.kv_usage,
                                                      matched[s] / nb, float(self.inflight[s]),
                                                      *self.hw[s], 1.0]
                    mask[s] = 1
                slot = -1
                # the guard's unit (guard_unit=key): the shared prompt, i.e.
                # its first prefix block's hash (a Python hash: signed, so
                # reduced modulo 2**64). A request without a full block
                # shares no cached prompt: a unit of its own, from a counter
                # (not "no unit": dlsched_act is unit 0, which would make all
                # of them one large unit, decided by one arm per epoch)
                if blocks:
                    unit = blocks[0] & 0xFFFFFFFFFFFFFFFF
                else:
                    self._own_unit += 1
                    unit = self._own_unit
            cold = not any(matched[s] > 0 for s in eligible)
        if slot < 0:  # the agent decides outside the lock (it is thread-safe)
            try:
                if self._units:
                    try:
                        d = self.agent.act(feats, mask=mask, hint=incumbent, unit=unit)
                    except LibraryError:
                        # libdlsched < 1.4 (an agent from --config or a
                        # checkpoint without guard_unit=key): decide as before
                        self._units = False
                        d = self.agent.act(feats, mask=mask, hint=incumbent)
                else:
                    d = self.agent.act(feats, mask=mask, hint=incumbent)
                slot, ticket = d.action, d.ticket
                source = "incumbent" if (d.incumbent or d.hinted or slot == incumbent) else "learned"
            except Exception as e:  # never fail a request on the agent: serve the incumbent's pick
                self.agent_errors += 1
                self.last_agent_error = f"{type(e).__name__}: {e}"
                slot, source = incumbent, "incumbent"
        with self._lock:
            if cold:
                self._seq += 1
                self.last_cold[slot] = self._seq
            self.inflight[slot] += 1
            order = sorted(range(len(eligible)), key=lambda i: -totals[i])
            rest = [eligible[i] for i in order if eligible[i] != slot][: self.fallbacks]
            eps = [self.slots.slots[s].hostport for s in [slot] + rest]  # type: ignore[union-attr]
        self.prefix.add(blocks, slot)
        ctx = RequestContext(slot=slot, hostport=eps[0], ticket=ticket, source=source, t_pick=now,
                             slo_ttft=_ms_header(headers, "x-slo-ttft-ms", self.slo_ttft),
                             slo_tpot=_ms_header(headers, "x-slo-tpot-ms", self.slo_tpot),
                             blocks=blocks, served_slot=slot)
        if self.metrics is not None:
            self.metrics.picked(source, time.perf_counter() - t0)
        return PickResult(200, eps, "", ctx)

    def _refuse(self, status: int, reason: str) -> PickResult:
        if self.metrics is not None:
            self.metrics.refused(status)
        return PickResult(status, [], reason, None)

    # ---- the response ------------------------------------------------------
    def served(self, ctx: RequestContext, hostport: str) -> None:
        """The proxy reported which endpoint really served (after fallbacks)."""
        with self._lock:
            s = self.slots.slot_of(hostport)
            if s is None or s == ctx.served_slot:
                return
            if self.inflight[ctx.served_slot] > 0:
                self.inflight[ctx.served_slot] -= 1
            self.inflight[s] += 1
            ctx.served_slot = s
        self.prefix.add(ctx.blocks, s)

    def response_headers(self, ctx: RequestContext, status: int) -> None:
        ctx.status = status

    def response_body(self, ctx: RequestContext, chunk: bytes, end: bool) -> None:
        now = time.monotonic()
        if chunk and ctx.t_first == 0.0:
            ctx.t_first = now
        if chunk:
            ctx.tail = (ctx.tail + chunk)[-self.tail_bytes:]
        if end:
            ctx.t_end = now

    def finish(self, ctx: RequestContext, complete: bool) -> Optional[float]:
        """The stream ended: release the in-flight count and, when the
        response completed (or failed visibly), observe the reward. Returns
        the reward, or None when the ticket is left to expire."""
        if ctx.done:
            return None
        ctx.done = True
        with self._lock:
            if self.inflight[ctx.served_slot] > 0:
                self.inflight[ctx.served_slot] -= 1
        reward: Optional[float]
        if ctx.status >= 500 or (ctx.status and not complete and ctx.t_first):
            reward = -1.0
        elif complete and ctx.status:
            if ctx.t_end == 0.0:
                ctx.t_end = time.monotonic()
            reward = 1.0 if self._met(ctx) else 0.0
        else:
            reward = None
        outcome = "reset" if reward is None else "observed"
        if reward is not None and ctx.ticket:
            try:
                self.agent.observe(ctx.ticket, reward, terminated=True)
            except Exception:  # expired (ticket_timeout_ms) or already gone
                outcome = "expired"
        if self.metrics is not None:
            self.metrics.ticket(outcome if ctx.ticket else "untracked")
            self.metrics.finished(ctx, reward)
        return reward

    def _met(self, ctx: RequestContext) -> bool:
        if not 200 <= ctx.status < 400:
            return False
        first = ctx.t_first or ctx.t_end
        ttft = first - ctx.t_pick
        if ttft > ctx.slo_ttft:
            return False
        m = None
        for m in _TOKENS.finditer(ctx.tail):
            pass
        if m is not None:
            n = int(m.group(1))
            if n > 1 and (ctx.t_end - first) / (n - 1) > ctx.slo_tpot:
                return False
        return True
