"""dlsched on Ray: many acting processes, one learner.

::

    import ray, dlsched.ray as dr

    learner = dr.start_learner(SPEC, "/var/lib/router/learner", publish_every=50,
                               checkpoint_every=2000, staleness=2000)

    @ray.remote
    class Server:
        def __init__(self, learner, i):
            self.acting = dr.ActingAgent(learner, SPEC, actor_id=f"server-{i}",
                                         sync_period_s=0.01)   # background sync thread
        def handle(self, obs):
            d = self.acting.act(obs)           # a direct C call: no Ray on this path
            ...
            self.acting.observe(d.ticket, reward, next_obs)

The pieces (README "Scaling out" has the picture, examples/ray the figures):

* :class:`ActingAgent` lives in the acting process (a Ray actor, a worker, or
  the driver). It owns a ``learner=none`` agent created there (from a spec or
  a checkpoint: ctypes handles cannot be pickled). ``act`` and ``observe`` are
  the agent's own methods: Ray is never on the act path. :meth:`ActingAgent.sync`
  does all the Ray work without ever blocking: it reaps finished shipments
  (``ray.wait(timeout=0)``), ships the recorded transitions in batches with
  fire-and-forget ``.remote`` calls, at most ``max_in_flight`` unanswered, and
  takes new weights in two non-blocking steps (ask the learner for its latest
  version; when the answer names an object, ``ray.wait(timeout=0)`` on it, then
  ``import_weights`` straight from the object store, zero-copy). Call it from
  the host's loop, or pass ``sync_period_s`` for a daemon thread that calls it.
  A learner that is down or restarting makes these calls fail with Ray errors:
  they are caught and counted, the batches that failed are kept (bounded) and
  sent again, one attempt per ``retry_s``, while the C ring holds what is
  recorded meanwhile (``exchange_capacity``; beyond it the oldest are dropped
  and counted), and acting goes on with the last weights.

* :class:`Learner` is a Ray actor (``max_restarts`` > 0, ``max_task_retries``
  = 0: a call retried into a native crash would crash the restarted process
  again; start it with :func:`start_learner`). It owns a ``learner=thread``
  agent: ``ingest`` hands each batch to ``dlsched_ingest_transitions`` with
  ``min_model_version = version - staleness`` (older transitions are dropped
  and counted), and the agent's own learner thread trains at the bounded
  ``replay_ratio`` (device=auto). A watcher thread publishes the weights
  every ``publish_every`` steps (``ray.put`` of a numpy uint8 array, so readers
  map it without a copy), checkpoints every ``checkpoint_every`` steps into
  its directory (a temporary name, then a rename, for the checkpoint and its
  JSON sidecar of counters), pings the registered acting actors, and on a
  (re)start the learner resumes from the last checkpoint there.

* Losses. Each shipment reports the acting side's pending tickets (decisions
  whose outcome has not been observed), its unshipped transitions and its
  cumulative shipped count. When an acting actor dies (its liveness ping
  fails with ``ActorDiedError``, or the driver calls ``actor_lost``), the
  learner counts as lost what it had in flight at its last contact: those
  tickets and unshipped transitions, plus shipped transitions that never
  arrived. :meth:`Learner.counters` has every figure.

Importing this module imports Ray; ``import dlsched`` never does.
"""
from __future__ import annotations

import json
import os
import threading
import time
import uuid
import warnings
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

try:
    import ray
    import ray.exceptions
except ImportError as e:  # pragma: no cover - exercised by test_ray without Ray
    raise ImportError("dlsched.ray needs Ray, which is not installed: pip install ray "
                      "(dlsched itself works without it)") from e

import numpy as np

from . import _agent
from ._agent import Agent, Config

__all__ = ["ActingAgent", "Learner", "start_learner", "CHECKPOINT", "SIDECAR"]

#: file names inside a learner's checkpoint directory
CHECKPOINT = "learner.dlsched"
SIDECAR = "learner.json"

_RayError = ray.exceptions.RayError
_TaskError = ray.exceptions.RayTaskError
_ActorDied = getattr(ray.exceptions, "ActorDiedError", ray.exceptions.RayActorError)


def _config_dict(config: Config, keys: Mapping[str, Any]) -> Dict[str, Any]:
    """spec string or mapping plus keyword keys, as one dict (later wins)."""
    out: Dict[str, Any] = {}
    if isinstance(config, (str, bytes)):
        text = config.decode() if isinstance(config, bytes) else config
        for word in text.split():
            k, sep, v = word.partition("=")
            if not sep:
                raise ValueError(f"spec word {word!r} is not key=value")
            out[k] = v
    elif isinstance(config, Mapping):
        out.update(config)
    elif config is not None:
        raise TypeError(f"config must be a spec string or a mapping, not "
                        f"{type(config).__name__}")
    out.update(keys)
    return out


def _error_name(e: BaseException) -> str:
    return type(e).__name__


class _Batch:
    """One exported blob on the acting side; sent once it counts as shipped."""
    __slots__ = ("blob", "n", "sent")

    def __init__(self, blob: bytes, n: int) -> None:
        self.blob = blob
        self.n = n
        self.sent = False


# ---------------------------------------------------------------------------
# the acting side
# ---------------------------------------------------------------------------

class ActingAgent:
    """A ``learner=none`` agent in this process that ships its experience to
    a :class:`Learner` and acts with the learner's weights.

    ``learner``: the Learner's actor handle. The agent comes from ``spec`` (a
    spec string or mapping, plus ``keys``; ``replay=1`` unless ``keys`` say
    otherwise, since an actor never replays) or from ``checkpoint`` (bytes of
    ``save_buffer`` or a path; ``keys`` are overrides); either way with
    ``learner=none`` and ``exchange_capacity`` set here. Both None: the
    learner's own spec (a blocking call, here in the constructor only).

    ``act``, ``observe``, ``observe_transition`` and ``q_values`` are the
    agent's methods themselves (``self.agent``): no Ray, no Python layer.
    Experience and weights move only in :meth:`sync`, which never blocks;
    call it from the host loop every few milliseconds, or pass
    ``sync_period_s`` to have a daemon thread do so. :meth:`flush` (blocking,
    for the end of a run) ships everything and waits for the answers.

    Shipping: every sync exports what the ring recorded; a shipment (one
    ``learner.ingest.remote`` with a list of blobs) leaves when ``batch``
    transitions are waiting or the oldest waited ``max_delay_s``, and at most
    ``max_in_flight`` shipments are unanswered. While the learner is
    unreachable, the failed shipments are kept (at most ``max_retained``
    transitions, the oldest dropped and counted) and one attempt is made
    every ``retry_s``; nothing more is exported meanwhile, so the C ring
    (``exchange_capacity``) holds new experience and counts what it drops.

    Weights: every ``weights_poll_s`` one ``learner.latest.remote`` asks for
    weights newer than those held (or from a restarted learner); an answer
    names an object in the object store, fetched by a later sync once
    ``ray.wait(timeout=0)`` says it is here, and imported in place.

    :attr:`counters` is a snapshot of what happened (shipped, acknowledged,
    failures by kind, retained, dropped, weights imported and their version).
    """

    def __init__(self, learner: Any, spec: Config = None, *,
                 checkpoint: Union[None, bytes, str, "os.PathLike[str]"] = None,
                 actor_id: Optional[str] = None, batch: int = 1024, max_in_flight: int = 4,
                 max_delay_s: float = 0.05, exchange_capacity: int = 65536,
                 max_retained: int = 65536, retry_s: float = 0.5,
                 weights_poll_s: float = 0.05, sync_period_s: Optional[float] = None,
                 register: bool = True, **keys: Any) -> None:
        self.learner = learner
        self.actor_id = actor_id or f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        over = dict(keys, learner="none", exchange_capacity=int(exchange_capacity))
        if checkpoint is not None:
            # replay is a shape key of a checkpoint: the stored one stays
            if isinstance(checkpoint, (bytes, bytearray, memoryview)):
                self.agent = Agent.load_buffer(checkpoint, over)
            else:
                self.agent = Agent.load(checkpoint, over)
        else:
            if spec is None:
                spec = ray.get(learner.acting_spec.remote())
            # an actor never uses its replay buffer (dlsched(7) EXCHANGE: replay=1
            # saves the memory); a replay given in keys wins
            over.setdefault("replay", 1)
            self.agent = Agent(spec, **over)
        # the act path: the agent's own bound methods
        self.act = self.agent.act
        self.observe = self.agent.observe
        self.observe_transition = self.agent.observe_transition
        self.q_values = self.agent.q_values

        self.batch = int(batch)
        self.max_in_flight = int(max_in_flight)
        self.max_delay_s = float(max_delay_s)
        self.max_retained = int(max_retained)
        self.retry_s = float(retry_s)
        self.weights_poll_s = float(weights_poll_s)

        self._lock = threading.RLock()
        self._outbox: List[_Batch] = []  # exported, not yet shipped
        self._outbox_n = 0
        self._outbox_since = 0.0
        self._retained: List[_Batch] = []  # shipped, failed, to send again
        self._retained_n = 0
        self._inflight: Dict[Any, Tuple[List[_Batch], int]] = {}
        self._down_until = 0.0  # no attempt before this monotonic time
        self._down = False
        self._incarnation = ""  # of the learner whose weights we hold
        self._wq = None  # ObjectRef of a learner.latest call
        self._wobj: Optional[Tuple[Any, str, int]] = None  # (weights ref, incarnation, version)
        self._next_poll = 0.0
        self._seq = 0
        self._handle = None
        self._registered = False
        self.c: Dict[str, Any] = dict(
            exported=0, ring_dropped=0, shipments=0, shipped=0, acked=0, accepted=0,
            stale=0, rejected=0, ship_failures=0, failed_transitions=0, resent=0,
            retained_dropped=0, weights_polls=0, weights_imported=0, weights_version=0,
            weights_failures=0, errors={}, learner_down=False, learner_incarnation="",
            syncs=0)
        if register:
            try:
                self._handle = ray.get_runtime_context().current_actor
            except Exception:  # noqa: BLE001 - not inside an actor: no liveness pings
                self._handle = None
            self._register()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        if sync_period_s:
            self.start(sync_period_s)

    # ---- background sync ---------------------------------------------------
    def start(self, period_s: float = 0.01) -> None:
        """Call :meth:`sync` every ``period_s`` seconds on a daemon thread."""
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(period_s):
                try:
                    self.sync()
                except Exception as e:  # noqa: BLE001 - never let the thread die
                    self._count_error(e)

        self._thread = threading.Thread(target=loop, name=f"dlsched-sync-{self.actor_id}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background sync thread (if any)."""
        t = self._thread
        if t is not None:
            self._stop.set()
            t.join()
            self._thread = None

    # ---- counters ------------------------------------------------------------
    @property
    def counters(self) -> Dict[str, Any]:
        with self._lock:
            out = dict(self.c)
            out["errors"] = dict(self.c["errors"])
            out["in_flight"] = len(self._inflight)
            out["retained"] = self._retained_n
            out["outbox"] = self._outbox_n
            out["actor_id"] = self.actor_id
            return out

    def _count_error(self, e: BaseException) -> None:
        errs = self.c["errors"]
        k = _error_name(e)
        errs[k] = errs.get(k, 0) + 1

    def _register(self) -> None:
        try:
            self.learner.register.remote(self.actor_id, self._handle)
            self._registered = True
        except _RayError as e:  # pragma: no cover - submission itself rarely fails
            self._count_error(e)

    # ---- the sync ------------------------------------------------------------
    def sync(self) -> None:
        """Move experience and weights; never blocks on Ray (see the class)."""
        with self._lock:
            now = time.monotonic()
            self.c["syncs"] += 1
            self._reap()
            self._weights(now)
            if self._down:
                if now >= self._down_until and not self._inflight:
                    self._send(self._take_retained(), now)  # the probe
                return
            if self._retained and len(self._inflight) < self.max_in_flight:
                self._send(self._take_retained(), now)
            # export only while there is room (at most 4 batches wait here);
            # the rest stays in the ring
            room = 4 * self.batch - self._outbox_n
            if room > 0:
                blob, n, dropped = self.agent.export_transitions(room)
                self.c["ring_dropped"] += dropped
                if n:
                    if not self._outbox:
                        self._outbox_since = now
                    self._outbox.append(_Batch(blob, n))
                    self._outbox_n += n
                    self.c["exported"] += n
            while self._outbox and len(self._inflight) < self.max_in_flight and (
                    self._outbox_n >= self.batch or now - self._outbox_since >= self.max_delay_s):
                self._send(self._take_outbox(), now)

    def _take_outbox(self) -> List[_Batch]:
        # up to about one batch per shipment, whole blobs
        out, n = [], 0
        while self._outbox and (not out or n + self._outbox[0].n <= self.batch):
            b = self._outbox.pop(0)
            out.append(b)
            n += b.n
        self._outbox_n -= n
        return out

    def _take_retained(self) -> List[_Batch]:
        out, self._retained, self._retained_n = self._retained, [], 0
        return out

    def _retain(self, blobs: List[_Batch]) -> None:
        self._retained.extend(blobs)
        self._retained_n += sum(b.n for b in blobs)
        while self._retained_n > self.max_retained and len(self._retained) > 1:
            b = self._retained.pop(0)
            self._retained_n -= b.n
            self.c["retained_dropped"] += b.n

    def _report(self, new: int) -> Dict[str, Any]:
        st = self.agent.stats()
        return dict(seq=self._seq, shipped=self.c["shipped"] + new,
                    pending_tickets=st.tickets_pending,
                    unshipped=self._outbox_n + self._retained_n,
                    in_flight=len(self._inflight), decisions=st.decisions,
                    weights_version=self.c["weights_version"])

    def _send(self, blobs: List[_Batch], now: float) -> None:
        if not blobs:
            return
        n = sum(b.n for b in blobs)
        new = sum(b.n for b in blobs if not b.sent)
        self._seq += 1
        report = self._report(new)
        try:
            ref = self.learner.ingest.remote(self.actor_id, [b.blob for b in blobs], report)
        except _RayError as e:  # pragma: no cover - submission itself rarely fails
            self._failed(e, blobs, now)
            return
        self._inflight[ref] = (blobs, n)
        self.c["shipments"] += 1
        self.c["shipped"] += new  # transitions shipped at least once
        self.c["resent"] += n - new
        for b in blobs:
            b.sent = True

    def _failed(self, e: BaseException, blobs: List[_Batch], now: float) -> None:
        self.c["ship_failures"] += 1
        self.c["failed_transitions"] += sum(b.n for b in blobs)
        self._count_error(e)
        self._retain(blobs)
        self._down = True
        self.c["learner_down"] = True
        self._down_until = now + self.retry_s

    def _reap(self) -> None:
        if not self._inflight:
            return
        refs = list(self._inflight)
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        now = time.monotonic()
        for ref in ready:
            blobs, n = self._inflight.pop(ref)
            try:
                reply = ray.get(ref)
            except _TaskError as e:  # the learner's Python raised: do not resend
                self.c["rejected"] += n
                self._count_error(e)
                continue
            except _RayError as e:  # down, restarting, unreachable: keep, retry later
                self._failed(e, blobs, now)
                continue
            self._down = False
            self.c["learner_down"] = False
            self.c["acked"] += n
            self.c["accepted"] += reply.get("accepted", 0)
            self.c["stale"] += reply.get("stale", 0)
            self.c["rejected"] += reply.get("rejected", 0)
            if reply.get("incarnation") != self.c["learner_incarnation"]:
                self.c["learner_incarnation"] = reply.get("incarnation", "")
                self._next_poll = 0.0  # a new learner: ask for its weights now
            if not reply.get("known", True):
                self._register()

    def _weights(self, now: float) -> None:
        if self._wobj is not None:
            ref, inc, version = self._wobj
            ready, _ = ray.wait([ref], timeout=0)
            if not ready:
                return
            self._wobj = None
            try:
                arr = ray.get(ref)  # a read-only view of the object store: no copy
                v = self.agent.import_weights(arr)
                del arr
            except Exception as e:  # noqa: BLE001 - Ray errors, or a refused blob
                self.c["weights_failures"] += 1
                self._count_error(e)
                return
            self._incarnation = inc
            self.c["weights_imported"] += 1
            self.c["weights_version"] = v
            self._next_poll = now + self.weights_poll_s
            return
        if self._wq is not None:
            ready, _ = ray.wait([self._wq], timeout=0)
            if not ready:
                return
            wq, self._wq = self._wq, None
            try:
                reply = ray.get(wq)
            except _RayError as e:
                self.c["weights_failures"] += 1
                self._count_error(e)
                self._next_poll = now + self.retry_s
                return
            if reply is not None:
                inc, version, refs = reply
                self._wobj = (refs[0], inc, version)
                self._weights(now)  # often already local
            else:
                self._next_poll = now + self.weights_poll_s
            return
        if now >= self._next_poll:
            self.c["weights_polls"] += 1
            try:
                self._wq = self.learner.latest.remote(self._incarnation,
                                                      self.c["weights_version"])
            except _RayError as e:  # pragma: no cover
                self._count_error(e)
                self._next_poll = now + self.retry_s

    # ---- blocking helpers (not for the act path) ------------------------------
    def flush(self, timeout_s: float = 10.0) -> bool:
        """Ship everything recorded and wait (up to ``timeout_s``) until every
        shipment is answered; True when nothing is left unacknowledged."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                self.max_delay_s, saved = 0.0, self.max_delay_s
                try:
                    self.sync()
                finally:
                    self.max_delay_s = saved
                done = (not self._inflight and not self._outbox and not self._retained)
                refs = list(self._inflight)
            if done:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if refs:
                ray.wait(refs, num_returns=len(refs), timeout=min(left, 0.2))
            else:
                time.sleep(min(left, 0.02))

    def wait_weights(self, min_version: int = 1, timeout_s: float = 10.0) -> int:
        """Sync until weights of at least ``min_version`` are imported (blocking;
        for start-up and tests). Returns the version held."""
        deadline = time.monotonic() + timeout_s
        while self.c["weights_version"] < min_version and time.monotonic() < deadline:
            self.sync()
            time.sleep(0.01)
        return self.c["weights_version"]

    def close(self, flush_s: float = 0.0) -> None:
        """Stop the sync thread, optionally flush, free the agent."""
        self.stop()
        if flush_s > 0:
            try:
                self.flush(flush_s)
            except Exception as e:  # noqa: BLE001
                self._count_error(e)
        self.agent.close()


# ---------------------------------------------------------------------------
# the learner
# ---------------------------------------------------------------------------

def _atomic_json(path: str, data: Any) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class _ActorBook:
    """What the learner knows about one acting actor."""
    __slots__ = ("handle", "registered", "ping", "next_ping", "alive", "shipments", "received",
                 "accepted", "stale", "rejected", "report", "last_contact", "lost_tickets",
                 "lost_unshipped", "lost_in_ship", "died_at", "reason")

    def __init__(self) -> None:
        self.handle = None
        self.registered = False
        self.ping = None
        self.next_ping = 0.0
        self.alive = True
        self.shipments = self.received = self.accepted = self.stale = self.rejected = 0
        self.report: Dict[str, Any] = {}
        self.last_contact = 0.0
        self.lost_tickets = self.lost_unshipped = self.lost_in_ship = 0
        self.died_at: Optional[float] = None
        self.reason = ""

    def as_dict(self, now: float) -> Dict[str, Any]:
        r = self.report
        return dict(alive=self.alive, shipments=self.shipments, received=self.received,
                    accepted=self.accepted, stale=self.stale, rejected=self.rejected,
                    shipped_reported=r.get("shipped", 0),
                    pending_tickets=r.get("pending_tickets", 0),
                    unshipped=r.get("unshipped", 0), in_flight=r.get("in_flight", 0),
                    decisions=r.get("decisions", 0), weights_version=r.get("weights_version", 0),
                    last_contact_s_ago=(now - self.last_contact) if self.last_contact else None,
                    watched=self.handle is not None,
                    lost_tickets=self.lost_tickets, lost_unshipped=self.lost_unshipped,
                    lost_in_ship=self.lost_in_ship, reason=self.reason)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "_ActorBook":
        b = cls()
        for k in ("shipments", "received", "accepted", "stale", "rejected", "lost_tickets",
                  "lost_unshipped", "lost_in_ship"):
            setattr(b, k, int(d.get(k, 0)))
        b.alive = bool(d.get("alive", True))
        b.reason = d.get("reason", "")
        b.report = {k: d.get(k, 0) for k in ("pending_tickets", "unshipped", "in_flight",
                                               "decisions", "weights_version")}
        b.report["shipped"] = d.get("shipped_reported", 0)
        return b


@ray.remote(max_restarts=-1, max_task_retries=0)
class Learner:
    """The learner as a Ray actor: ingest, staleness filter, training thread,
    weights through the object store, checkpoints (see the module).

    Decorated with ``max_restarts=-1, max_task_retries=0``; prefer
    :func:`start_learner`, which keeps ``max_task_retries=0`` whatever else
    is given. Methods: ``ingest`` (acting side), ``register``, ``latest``,
    ``weights``, ``acting_spec``, ``actor_lost``, ``counters``,
    ``checkpoint``, ``pid``, ``stop``.
    """

    def __init__(self, spec: Config = None, checkpoint_dir: Optional[str] = None, *,
                 publish_every: int = 100, checkpoint_every: int = 2000,
                 staleness: Optional[int] = None, replay_ratio: float = 0,
                 device: str = "auto", save_replay: bool = True, liveness_s: float = 0.5,
                 poll_s: float = 0.005, **keys: Any) -> None:
        t0 = time.monotonic()
        self.dir = os.path.abspath(checkpoint_dir) if checkpoint_dir else None
        self.publish_every = max(1, int(publish_every))
        self.checkpoint_every = int(checkpoint_every)
        self.staleness = None if staleness is None else int(staleness)
        self.liveness_s = float(liveness_s)
        self.poll_s = float(poll_s)
        self.incarnation = uuid.uuid4().hex[:8]
        try:
            with warnings.catch_warnings():  # Ray 2.x warns inside its own property
                warnings.simplefilter("ignore")
                reconstructed = bool(ray.get_runtime_context().was_current_actor_reconstructed)
        except Exception:  # noqa: BLE001 - outside Ray (never in practice)
            reconstructed = False
        run = dict(learner="thread", device=device, publish_every=self.publish_every,
                   save_replay=1 if save_replay else 0)
        if replay_ratio:
            run["replay_ratio"] = replay_ratio
        side: Dict[str, Any] = {}
        self.resumed_from: Optional[int] = None
        ckpt = os.path.join(self.dir, CHECKPOINT) if self.dir else None
        if ckpt and os.path.exists(ckpt):
            self.agent = Agent.load(ckpt, run)
            self.resumed_from = self.agent.stats().model_version
            self.spec = _agent._checkpoint_config(_agent._read_head(os.fsencode(ckpt)))
            try:
                with open(os.path.join(self.dir, SIDECAR)) as f:
                    side = json.load(f)
            except (OSError, ValueError):
                side = {}
        else:
            if spec is None:
                raise ValueError(f"no checkpoint in {self.dir!r} and no spec to start from")
            self.spec = _config_dict(spec, keys)
            self.agent = Agent(dict(self.spec, **run))
            self.spec = {k: str(v) for k, v in self.spec.items()}
        if self.dir:
            os.makedirs(self.dir, exist_ok=True)
        self.lock = threading.Lock()
        prev = side.get("counters", {})
        self.c: Dict[str, Any] = dict(
            ingested=int(prev.get("ingested", 0)), stale_dropped=int(prev.get("stale_dropped", 0)),
            rejected=int(prev.get("rejected", 0)), shipments=int(prev.get("shipments", 0)),
            publishes=0, checkpoints=0, checkpoint_version=self.resumed_from,
            checkpoint_failures=0, restarts=int(side.get("restarts", 0)) + (1 if reconstructed
                                                                              else 0),
            resumed_from=self.resumed_from, incarnation=self.incarnation,
            dead_actors=int(prev.get("dead_actors", 0)),
            lost_tickets=int(prev.get("lost_tickets", 0)),
            lost_unshipped=int(prev.get("lost_unshipped", 0)),
            lost_in_ship=int(prev.get("lost_in_ship", 0)), ingest_s=0.0, errors={})
        self.actors: Dict[str, _ActorBook] = {
            k: _ActorBook.from_dict(v) for k, v in side.get("actors", {}).items()}
        self.published: Optional[Tuple[int, Any]] = None  # (version, ObjectRef)
        self.last_pub = -1
        self.last_pub_t = 0.0
        self.last_ckpt = self.resumed_from if self.resumed_from is not None else 0
        self.started = time.time()
        self._stop = threading.Event()
        if self.dir and (reconstructed or self.resumed_from is not None):
            # the restart counted at once: another crash before the next
            # checkpoint must not lose it
            try:
                self._sidecar(self.resumed_from or 0)
            except OSError as e:
                self._count_error(e)
        self._publish()  # the starting weights, so acting starts from them
        self.c["startup_s"] = time.monotonic() - t0
        self.watcher = threading.Thread(target=self._watch, name="dlsched-learner-watch",
                                        daemon=True)
        self.watcher.start()

    # ---- called by acting actors ----------------------------------------------
    def ingest(self, actor_id: str, blobs: List[Any], report: Dict[str, Any]) -> Dict[str, Any]:
        st = self.agent.stats()
        version = st.model_version
        floor = max(0, version - self.staleness) if self.staleness is not None else 0
        acc = stale = rej = 0
        n_in = 0
        t0 = time.perf_counter()
        for blob in blobs:
            try:
                a, s = self.agent.ingest_transitions(blob, floor)
            except (ValueError, TypeError) as e:  # FormatError, MismatchError, ...
                rej += 1
                with self.lock:
                    self._count_error(e)
                continue
            acc += a
            stale += s
            n_in += a + s
        spent = time.perf_counter() - t0
        now = time.monotonic()
        with self.lock:
            book = self.actors.get(actor_id)
            if book is None:
                book = self.actors[actor_id] = _ActorBook()
            known = book.registered
            book.shipments += 1
            book.received += n_in
            book.accepted += acc
            book.stale += stale
            book.rejected += rej
            book.report = dict(report)
            book.last_contact = now
            if not book.alive:  # a late shipment from a dead actor: it arrived after all
                late = min(book.lost_in_ship, n_in)
                book.lost_in_ship -= late
                self.c["lost_in_ship"] -= late
            self.c["ingested"] += acc
            self.c["stale_dropped"] += stale
            self.c["rejected"] += rej
            self.c["shipments"] += 1
            self.c["ingest_s"] += spent
        return dict(accepted=acc, stale=stale, rejected=rej, version=version, floor=floor,
                    incarnation=self.incarnation, known=bool(known))

    def register(self, actor_id: str, handle: Any = None) -> str:
        with self.lock:
            book = self.actors.get(actor_id)
            if book is None:
                book = self.actors[actor_id] = _ActorBook()
            book.handle = handle
            book.registered = True
            book.alive = True
            book.last_contact = time.monotonic()
        return self.incarnation

    def latest(self, incarnation: str = "", have_version: int = -1) -> Optional[tuple]:
        """None when the caller holds the newest weights of this incarnation;
        else (incarnation, version, [ObjectRef of a numpy uint8 array])."""
        pub = self.published
        if pub is None:
            return None
        version, ref = pub
        if incarnation == self.incarnation and have_version >= version:
            return None
        return (self.incarnation, version, [ref])

    # ---- called by the driver ---------------------------------------------------
    def acting_spec(self) -> Dict[str, str]:
        """The configuration acting agents are created from (shape keys included)."""
        drop = ("learner", "device", "save_replay", "publish_every", "replay_ratio")
        return {k: v for k, v in self.spec.items() if k not in drop}

    def actor_lost(self, actor_id: str, reason: str = "reported by the driver") -> bool:
        """Declare an acting actor dead (when the driver learns it first)."""
        with self.lock:
            book = self.actors.get(actor_id)
            if book is None or not book.alive:
                return False
            self._dead(book, reason)
            return True

    def counters(self) -> Dict[str, Any]:
        st = self.agent.stats()
        now = time.monotonic()
        with self.lock:
            out = dict(self.c)
            out["errors"] = dict(self.c["errors"])
            out["train_steps"] = st.train_steps
            out["version"] = st.model_version
            out["transitions"] = st.transitions
            out["staged"] = st.staged
            out["published_version"] = self.published[0] if self.published else None
            out["backend"] = st.backend
            out["last_loss"] = st.last_loss
            out["uptime_s"] = time.time() - self.started
            out["pid"] = os.getpid()
            out["actors"] = {k: b.as_dict(now) for k, b in self.actors.items()}
        return out

    def checkpoint(self) -> Optional[int]:
        """Checkpoint now; the version written (None without a directory)."""
        return self._checkpoint()

    def weights(self) -> Tuple[int, Any]:
        """(version, [ObjectRef]) of the last published weights."""
        pub = self.published
        return (pub[0], [pub[1]]) if pub else (-1, [])

    def pid(self) -> int:
        return os.getpid()

    def stop(self) -> None:
        self._stop.set()
        self.watcher.join()

    # ---- the watcher thread ------------------------------------------------------
    def _count_error(self, e: BaseException) -> None:
        errs = self.c["errors"]
        k = _error_name(e)
        errs[k] = errs.get(k, 0) + 1

    def _publish(self) -> None:
        blob, version = self.agent.export_weights()
        ref = ray.put(np.frombuffer(blob, dtype=np.uint8))
        self.published = (version, ref)  # one assignment: readers see old or new
        self.last_pub = version
        self.last_pub_t = time.monotonic()
        with self.lock:
            self.c["publishes"] += 1

    def _checkpoint(self) -> Optional[int]:
        if not self.dir:
            return None
        path = os.path.join(self.dir, CHECKPOINT)
        tmp = f"{path}.tmp-{os.getpid()}"
        try:
            # taken before the save: the file holds this version or a later one
            version = self.agent.stats().model_version
            self.agent.save(tmp)
            os.replace(tmp, path)
            with self.lock:
                self.c["checkpoints"] += 1
                self.c["checkpoint_version"] = version
            self._sidecar(version)
            self.last_ckpt = version
            return version
        except OSError as e:
            with self.lock:
                self.c["checkpoint_failures"] += 1
                self._count_error(e)
            return None

    def _sidecar(self, version: int) -> None:
        """The counters beside the checkpoint (a temporary name, then a rename)."""
        with self.lock:
            side = dict(version=version, restarts=self.c["restarts"],
                        incarnation=self.incarnation, time=time.time(),
                        counters={k: v for k, v in self.c.items() if k != "errors"},
                        actors={k: b.as_dict(time.monotonic()) for k, b in self.actors.items()})
        _atomic_json(os.path.join(self.dir, SIDECAR), side)

    def _dead(self, book: _ActorBook, reason: str) -> None:
        # self.lock held
        r = book.report
        book.alive = False
        book.reason = reason
        book.died_at = time.monotonic()
        book.lost_tickets = int(r.get("pending_tickets", 0))
        book.lost_unshipped = int(r.get("unshipped", 0))
        book.lost_in_ship = max(0, int(r.get("shipped", 0)) - book.received)
        book.ping = None
        self.c["dead_actors"] += 1
        self.c["lost_tickets"] += book.lost_tickets
        self.c["lost_unshipped"] += book.lost_unshipped
        self.c["lost_in_ship"] += book.lost_in_ship

    def _pings(self, now: float) -> None:
        with self.lock:
            watched = [(k, b) for k, b in self.actors.items() if b.alive and b.handle is not None]
        for key, book in watched:
            if book.ping is None:
                if now >= book.next_ping:
                    try:
                        book.ping = book.handle.__ray_ready__.remote()
                    except _RayError:  # pragma: no cover
                        book.ping = None
                continue
            ready, _ = ray.wait([book.ping], timeout=0)
            if not ready:
                continue
            ping, book.ping = book.ping, None
            book.next_ping = now + self.liveness_s
            try:
                ray.get(ping)
            except _ActorDied as e:
                with self.lock:
                    if book.alive:
                        self._dead(book, f"{_error_name(e)}")
            except _RayError as e:  # unavailable for now: ask again later
                with self.lock:
                    self._count_error(e)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                st = self.agent.stats()
                # export_weights gives a learner=thread agent's current weights,
                # versioned by its train steps: every publish_every steps, and the
                # last steps once training pauses
                v = st.train_steps
                if v >= self.last_pub + self.publish_every or (
                        v > self.last_pub and time.monotonic() - self.last_pub_t > 1.0):
                    self._publish()
                if self.checkpoint_every and st.train_steps >= self.last_ckpt + \
                        self.checkpoint_every:
                    self._checkpoint()
                self._pings(time.monotonic())
            except Exception as e:  # noqa: BLE001 - keep watching; counted
                with self.lock:
                    self._count_error(e)


def start_learner(spec: Config = None, checkpoint_dir: Optional[str] = None, *,
                  max_restarts: int = -1, name: Optional[str] = None,
                  num_cpus: Optional[float] = None, num_gpus: Optional[float] = None,
                  **kwargs: Any) -> Any:
    """Create the :class:`Learner` actor: ``max_restarts`` (default -1,
    without limit; must not be 0) and ``max_task_retries=0`` always.

    ``spec``: the agent's configuration (learner, device, publish_every and
    save_replay are set by the learner), used when ``checkpoint_dir`` holds
    no checkpoint; ``checkpoint_dir``: where it checkpoints and, on every
    (re)start, resumes from (its checkpoint's configuration then wins, with
    the run-time keys above). Keyword arguments:
    ``publish_every`` (M steps, default 100), ``checkpoint_every`` (N steps,
    2000; 0 never), ``staleness`` (K model versions, default None: keep all),
    ``replay_ratio`` (samples per transition taken in; 0: the inline ratio),
    ``device`` ("auto"), ``save_replay`` (True), ``liveness_s`` (0.5),
    further agent keys.
    """
    if max_restarts == 0:
        raise ValueError("max_restarts must be > 0 (or -1): the learner resumes from its "
                         "checkpoints only when Ray restarts it")
    opts: Dict[str, Any] = dict(max_restarts=max_restarts, max_task_retries=0)
    if name:
        opts["name"] = name
    if num_cpus is not None:
        opts["num_cpus"] = num_cpus
    if num_gpus is not None:
        opts["num_gpus"] = num_gpus
    return Learner.options(**opts).remote(spec, checkpoint_dir, **kwargs)
