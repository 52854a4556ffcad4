"""What the picker knows about its endpoints.

* ``parse_metrics``: a model server's Prometheus text exposition reduced to
  waiting requests, running requests and KV-cache usage (a fraction), for
  the metric names of the Gateway API Inference Extension's model server
  protocol (docs/proposals/003-model-server-protocol, its metric table):

  ============  ==========================  ===============================  ==========================
  server        waiting                     running                          KV-cache usage
  ============  ==========================  ===============================  ==========================
  vLLM          vllm:num_requests_waiting   vllm:num_requests_running        vllm:kv_cache_usage_perc
                                                                             (older: vllm:gpu_cache_usage_perc)
  SGLang        sglang:num_queue_reqs       sglang:num_running_reqs          sglang:token_usage
  trtllm-serve  trtllm_num_requests_waiting trtllm_num_requests_running      trtllm_kv_cache_utilization
  Triton        nv_trt_llm_request_metrics  nv_trt_llm_request_metrics       nv_trt_llm_kv_cache_block_metrics
  TRT-LLM       {request_type="waiting"}    {request_type="scheduled"}       {kv_cache_block_type="fraction"}
  ============  ==========================  ===============================  ==========================

  The trtllm-serve names are checked against TensorRT-LLM's own exporter
  (tensorrt_llm/metrics/collector.py: trtllm_num_requests_waiting is the
  engine's numQueuedRequests, trtllm_num_requests_running its
  numActiveRequests, trtllm_kv_cache_utilization usedNumBlocks /
  maxNumBlocks, a fraction) and the Triton ones against the TensorRT-LLM
  backend's metrics documentation (request_type waiting / scheduled,
  kv_cache_block_type fraction); neither server runs here.

  Samples of one name with different labels (one per model) are summed;
  usage takes the maximum.
* ``Scraper``: one thread per endpoint fetching http://address:port/metrics
  every interval over a kept-alive connection.
* ``PrefixIndex``: which endpoint the picker routed which prompt blocks to
  (chained block hashes as GIE's prefix proposal 0602 describes, 64
  characters per block, at most 256 blocks per prompt), bounded by an LRU.
* ``SlotTable``: endpoints to stable action slots (an endpoint that leaves
  and comes back gets its old slot when it is free).
"""
from __future__ import annotations

import http.client
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from .discovery import Endpoint

__all__ = ["ServerMetrics", "parse_metrics", "Scraper", "PrefixIndex", "SlotTable",
           "prompt_blocks", "BLOCK_CHARS", "MAX_BLOCKS", "gpu_features", "GPU_BANDWIDTH_TBS",
           "VARIANT_BITS"]

BLOCK_CHARS = 64   # GIE prefix plugin default block size (characters)
MAX_BLOCKS = 256   # GIE prefix plugin default maxPrefixBlocksToMatch


@dataclass(frozen=True)
class ServerMetrics:
    waiting: float
    running: float
    kv_usage: float
    kind: str  #: "vllm", "sglang", "trtllm", "triton"


# name -> (kind, field); fields: w waiting, r running, k kv usage
_SIMPLE = {
    "vllm:num_requests_waiting": ("vllm", "w"),
    "vllm:num_requests_running": ("vllm", "r"),
    "vllm:kv_cache_usage_perc": ("vllm", "k"),
    "vllm:gpu_cache_usage_perc": ("vllm", "k"),
    "sglang:num_queue_reqs": ("sglang", "w"),
    "sglang:num_running_reqs": ("sglang", "r"),
    "sglang:token_usage": ("sglang", "k"),
    "trtllm_num_requests_waiting": ("trtllm", "w"),
    "trtllm_num_requests_running": ("trtllm", "r"),
    "trtllm_kv_cache_utilization": ("trtllm", "k"),
}
_LABELLED = {  # Triton's TensorRT-LLM backend
    ("nv_trt_llm_request_metrics", "request_type", "waiting"): "w",
    ("nv_trt_llm_request_metrics", "request_type", "scheduled"): "r",
    ("nv_trt_llm_kv_cache_block_metrics", "kv_cache_block_type", "fraction"): "k",
}
# only the sample lines of the names above, found by one C-level scan of the
# page (a vLLM /metrics page is ~100-200 KB of histograms, scraped every 50 ms
# per endpoint: a Python loop over its lines held the GIL ~2 ms a page)
# (a literal "\n" first lets the regex engine skip between line starts)
_WANTED = re.compile(
    r"\n(%s)(\{[^}\n]*\})?[ \t]+(\S+)" % "|".join(
        re.escape(n) for n in sorted(set(_SIMPLE) | {k[0] for k in _LABELLED}, key=len, reverse=True)))


def parse_metrics(text: str) -> Optional[ServerMetrics]:
    """The three signals of a /metrics page, or None when it has none of them."""
    acc = {"w": 0.0, "r": 0.0, "k": 0.0}
    seen = set()
    kind = ""
    for m in _WANTED.finditer("\n" + text):
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        field = None
        hit = _SIMPLE.get(name)
        if hit is not None:
            kind, field = hit
        else:
            for (n, lk, lv), f in _LABELLED.items():
                if n == name and re.search(r'\b%s="%s"' % (lk, lv), labels):
                    kind, field = "triton", f
                    break
        if field is None:
            continue
        try:
            v = float(value)
        except ValueError:
            continue
        if v != v:  # NaN
            continue
        seen.add(field)
        acc[field] = max(acc[field], v) if field == "k" else acc[field] + v
    if not seen:
        return None
    return ServerMetrics(acc["w"], acc["r"], min(1.0, max(0.0, acc["k"])), kind)


class Scraper:
    """Scrape each endpoint's /metrics every ``interval`` seconds.

    ``latest(key)`` gives (ServerMetrics, monotonic time of the scrape) or
    None; failures are counted per endpoint in ``failures``.
    """

    def __init__(self, interval: float = 0.05, timeout: float = 1.0,
                 path: str = "/metrics") -> None:
        self.interval = interval
        self.timeout = timeout
        self.path = path
        self.failures: Dict[str, int] = {}
        self._latest: Dict[str, Tuple[ServerMetrics, float]] = {}
        self._threads: Dict[str, Tuple[threading.Thread, threading.Event]] = {}
        self._lock = threading.Lock()

    def latest(self, key: str) -> Optional[Tuple[ServerMetrics, float]]:
        return self._latest.get(key)

    def put(self, key: str, metrics: ServerMetrics, when: Optional[float] = None) -> None:
        """Record metrics for an endpoint (what a scrape does; tests use it)."""
        self._latest[key] = (metrics, time.monotonic() if when is None else when)

    def _run(self, ep: Endpoint, stop: threading.Event) -> None:
        conn: Optional[http.client.HTTPConnection] = None
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(ep.address, ep.port, timeout=self.timeout)
                conn.request("GET", self.path)
                resp = conn.getresponse()
                body = resp.read()
                if resp.status != 200:
                    raise OSError(f"HTTP {resp.status}")
                m = parse_metrics(body.decode("utf-8", "replace"))
                if m is None:
                    raise OSError("no known model server metric")
                self._latest[ep.key] = (m, time.monotonic())
            except (OSError, http.client.HTTPException):
                self.failures[ep.key] = self.failures.get(ep.key, 0) + 1
                if conn is not None:
                    conn.close()
                    conn = None
            stop.wait(max(0.0, self.interval - (time.monotonic() - t0)))
        if conn is not None:
            conn.close()

    def set_endpoints(self, endpoints: Iterable[Endpoint]) -> None:
        want = {ep.key: ep for ep in endpoints}
        with self._lock:
            for key in list(self._threads):
                th, stop = self._threads[key]
                old = getattr(th, "endpoint")
                if key not in want or want[key].hostport != old.hostport:
                    stop.set()
                    del self._threads[key]
                    self._latest.pop(key, None)
            for key, ep in want.items():
                if key in self._threads:
                    continue
                stop = threading.Event()
                th = threading.Thread(target=self._run, args=(ep, stop), daemon=True,
                                      name=f"dlsched-epp-scrape-{ep.name}")
                th.endpoint = ep  # type: ignore[attr-defined]
                self._threads[key] = (th, stop)
                th.start()

    def stop(self) -> None:
        with self._lock:
            for th, stop in self._threads.values():
                stop.set()
            threads = [th for th, _ in self._threads.values()]
            self._threads.clear()
        for th in threads:
            th.join(timeout=2 * self.timeout)


def prompt_blocks(prompt: str, block: int = BLOCK_CHARS, max_blocks: int = MAX_BLOCKS) -> List[int]:
    """Chained hashes of the prompt's full blocks: h_i = hash(block_i, h_{i-1})."""
    out: List[int] = []
    h = 0
    n = min(len(prompt) // block, max_blocks)
    for i in range(n):
        h = hash((prompt[i * block:(i + 1) * block], h))
        out.append(h)
    return out


class PrefixIndex:
    """Block hash -> the slots it was routed to, least recently used evicted
    first once ``capacity`` block hashes are held. Thread-safe."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._map: "OrderedDict[int, set]" = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._map)

    def match(self, blocks: Sequence[int], slots: Iterable[int]) -> Dict[int, int]:
        """Matched blocks for each of ``slots``, as GIE's prefix scorer counts
        them (matchLongestPrefix in its prefix plugin, and dlsched-sim's
        sim_gw_match): walk the prompt's blocks in order, stop at the first
        block no endpoint holds, and count for every endpoint each block it
        holds up to there. With chained hashes this is each endpoint's
        leading chain, unless the LRU evicted a block in the middle."""
        res = {s: 0 for s in slots}
        with self._lock:
            for h in blocks:
                where = self._map.get(h)
                if not where:
                    break
                for s in where:
                    if s in res:
                        res[s] += 1
        return res

    def add(self, blocks: Sequence[int], slot: int) -> None:
        with self._lock:
            for h in blocks:
                where = self._map.get(h)
                if where is None:
                    self._map[h] = {slot}
                else:
                    where.add(slot)
                    self._map.move_to_end(h)
            while len(self._map) > self.capacity:
                self._map.popitem(last=False)

    def forget_slot(self, slot: int) -> None:
        with self._lock:
            for h in [h for h, w in self._map.items() if slot in w]:
                w = self._map[h]
                w.discard(slot)
                if not w:
                    del self._map[h]


class SlotTable:
    """Endpoints to action slots 0..n-1, stable while an endpoint stays.

    An endpoint keeps its slot across updates; a new endpoint takes the slot
    it had before if that is free, else the lowest free slot. Endpoints
    beyond ``n`` slots are left out (``overflow`` names them).
    """

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"max endpoints {n} must be at least 1")
        self.n = n
        self.slots: List[Optional[Endpoint]] = [None] * n
        self.overflow: List[str] = []
        self._history: Dict[str, int] = {}
        self._by_hostport: Dict[str, int] = {}

    def update(self, endpoints: Sequence[Endpoint]) -> List[int]:
        """Apply a full endpoint list; returns the slots that were vacated."""
        want = {ep.key: ep for ep in endpoints}
        vacated = []
        for i, ep in enumerate(self.slots):
            if ep is not None and (ep.key not in want or want[ep.key].hostport != ep.hostport):
                self.slots[i] = None
                vacated.append(i)
        placed = {ep.key: i for i, ep in enumerate(self.slots) if ep is not None}
        for key, i in placed.items():
            self.slots[i] = want[key]  # labels may have changed
        self.overflow = []
        for ep in endpoints:
            if ep.key in placed:
                continue
            prev = self._history.get(ep.key)
            if prev is not None and self.slots[prev] is None:
                i = prev
            else:
                free = [j for j, e in enumerate(self.slots) if e is None]
                if not free:
                    self.overflow.append(ep.key)
                    continue
                i = free[0]
            self.slots[i] = ep
            self._history[ep.key] = i
        self._by_hostport = {ep.hostport: i for i, ep in enumerate(self.slots) if ep is not None}
        return vacated

    def slot_of(self, hostport: str) -> Optional[int]:
        return self._by_hostport.get(hostport)

    def occupied(self) -> List[int]:
        return [i for i, ep in enumerate(self.slots) if ep is not None]


#: HBM bandwidth in TB/s per GPU product (vendor data sheets): decode speed
#: is bound by it, so it is the one number that ranks a model's servers
GPU_BANDWIDTH_TBS = {"B200": 8.0, "H200": 4.8, "H100": 3.35, "H800": 3.35, "GH200": 4.0,
                     "MI300X": 5.3, "MI250": 3.2, "A100": 2.0, "A800": 2.0, "L40S": 0.86,
                     "L40": 0.86, "A10G": 0.6, "A10": 0.6, "L4": 0.3, "T4": 0.32, "V100": 0.9}
#: bits per weight of a model variant label
VARIANT_BITS = {"fp32": 32, "bf16": 16, "fp16": 16, "float16": 16, "bfloat16": 16, "fp8": 8,
                "int8": 8, "w8a8": 8, "fp4": 4, "nvfp4": 4, "int4": 4, "awq": 4, "gptq": 4, "w4a16": 4}
_GPU_KEYS = ("gpu", "nvidia.com/gpu.product", "gpu-type", "accelerator", "cloud.google.com/gke-accelerator")
_VARIANT_KEYS = ("variant", "quantization", "dtype")


def gpu_features(labels: Dict[str, str]) -> Tuple[float, float]:
    """(HBM TB/s of the GPU named in the labels, bits per weight of the
    variant), 0 for what the labels do not say or the tables do not know.
    The longest product name contained in the label wins ("H100" in
    "NVIDIA-H100-80GB-HBM3"; "A100" before "A10")."""
    bw = 0.0
    for k in _GPU_KEYS:
        v = labels.get(k)
        if v:
            up = v.upper()
            best = ""
            for name in GPU_BANDWIDTH_TBS:
                if name in up and len(name) > len(best):
                    best = name
            if best:
                bw = GPU_BANDWIDTH_TBS[best]
                break
    bits = 0.0
    for k in _VARIANT_KEYS:
        v = labels.get(k)
        if v and v.lower() in VARIANT_BITS:
            bits = float(VARIANT_BITS[v.lower()])
            break
    return bw, bits
