"""A model server emulator: OpenAI-style /v1/completions with streamed
tokens (SSE), timed by a small server model, and vLLM's gauges on /metrics.

    python -m dlsched.epp.emulator --gpu H100 --port 8001 [--gpu A10G --port 8002 ...]
    python -m dlsched.epp.emulator --fleet H100,A100,L40S,A10G --base-port 8001 \
        --endpoints-out endpoints.yaml

The server model (one 8B-class model in 16-bit weights per GPU, vLLM-like
continuous batching; a request is 1 token per 4 prompt characters):

* admission: a request waits (vllm:num_requests_waiting) until fewer than
  ``max_batch`` run and its prompt + max_tokens fit the free KV tokens;
* prefill: the prompt tokens not in the server's prefix cache (64-character
  blocks, LRU, as big as the KV capacity) at ``prefill_tps`` tokens/s;
* decode: each output token takes ``tpot_ms * (1 + batch_growth * (running - 1))``.

=======  ===========  =======  ============  ==========  =========
GPU      prefill t/s  tpot ms  growth/req    KV tokens   max batch
=======  ===========  =======  ============  ==========  =========
H100     20000        7        0.02          480000      64
A100     10000        11       0.02          170000      64
L40S     6000         16       0.03          230000      48
A10G     2500         28       0.04          50000       32
=======  ===========  =======  ============  ==========  =========

The figures are round orders of magnitude for Llama-3-8B class models
(bf16 weights 16 GB, 128 KiB of KV per token: 32 layers x 8 KV heads x 128
x 2 (K, V) x 2 bytes; KV tokens = (memory x 0.9 - 16 GB) / 128 KiB for 80,
40, 48 and 24 GB cards; decode time per token ~ weight bytes / memory
bandwidth (3.35, 2.0, 0.86, 0.6 TB/s) plus overhead; prefill at a fraction
of peak tensor throughput). They are an emulator's, not measurements:
heterogeneity of the right sign and size, not any card's exact speed.
``--speed`` divides every duration (speed 10: ten times faster).

The generated text is a pure function of the prompt (``expected_text``),
so a test can check a response byte for byte; the SHA-256 of the request
body as received is returned in the response header
``x-emulator-request-sha256``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import signal
import sys
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional

__all__ = ["GpuProfile", "PROFILES", "ServerModel", "EmulatedServer", "expected_text",
           "expected_tokens", "sse_events", "main"]


@dataclass(frozen=True)
class GpuProfile:
    prefill_tps: float
    tpot_ms: float
    batch_growth: float
    kv_tokens: int
    max_batch: int


PROFILES: Dict[str, GpuProfile] = {
    "H100": GpuProfile(20000, 7.0, 0.02, 480000, 64),
    "A100": GpuProfile(10000, 11.0, 0.02, 170000, 64),
    "L40S": GpuProfile(6000, 16.0, 0.03, 230000, 48),
    "A10G": GpuProfile(2500, 28.0, 0.04, 50000, 32),
}
BLOCK = 64


def expected_tokens(prompt: str, n: int) -> List[str]:
    """The n output tokens the emulator generates for this prompt."""
    seed = zlib.crc32(prompt.encode("utf-8"))
    return [f" t{(seed + 7919 * i) % 10007}" for i in range(n)]


def expected_text(prompt: str, n: int) -> str:
    return "".join(expected_tokens(prompt, n))


def sse_events(prompt: str, n: int, model: str, prompt_tokens: int) -> List[bytes]:
    """The exact SSE events of a streamed completion (the last carries usage)."""
    toks = expected_tokens(prompt, n)
    out = []
    for i, t in enumerate(toks):
        doc: Dict[str, object] = {"id": "cmpl-emu", "object": "text_completion", "model": model,
                                  "choices": [{"index": 0, "text": t,
                                               "finish_reason": "length" if i == n - 1 else None}]}
        if i == n - 1:
            doc["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": n,
                            "total_tokens": prompt_tokens + n}
        out.append(b"data: " + json.dumps(doc, separators=(",", ":")).encode() + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return out


class ServerModel:
    """Admission, prefix cache and timing of one emulated server."""

    def __init__(self, gpu: str, speed: float = 1.0) -> None:
        if gpu not in PROFILES:
            raise ValueError(f"unknown GPU type {gpu!r}: one of {', '.join(PROFILES)}")
        self.gpu = gpu
        self.prof = PROFILES[gpu]
        self.speed = speed
        self.cond = threading.Condition()
        self.waiting = 0
        self.running = 0
        self.kv_used = 0
        self.served = 0
        self.cache: "OrderedDict[int, None]" = OrderedDict()
        self.cache_blocks = self.prof.kv_tokens * 4 // BLOCK

    def _cached_chars(self, prompt: str) -> int:
        h, hit = 0, 0
        for i in range(len(prompt) // BLOCK):
            h = hash((prompt[i * BLOCK:(i + 1) * BLOCK], h))
            if h in self.cache and hit == i:
                self.cache.move_to_end(h)
                hit += 1
            else:
                self.cache[h] = None
        while len(self.cache) > self.cache_blocks:
            self.cache.popitem(last=False)
        return hit * BLOCK

    def admit(self, prompt: str, max_tokens: int) -> float:
        """Wait for a batch slot and KV room; returns the prefill seconds."""
        need = math.ceil(len(prompt) / 4) + max_tokens
        need = min(need, self.prof.kv_tokens)
        with self.cond:
            self.waiting += 1
            while self.running >= self.prof.max_batch or self.kv_used + need > self.prof.kv_tokens:
                self.cond.wait()
            self.waiting -= 1
            self.running += 1
            self.kv_used += need
            cached = self._cached_chars(prompt)
        return math.ceil((len(prompt) - cached) / 4) / self.prof.prefill_tps / self.speed

    def token_seconds(self) -> float:
        return self.prof.tpot_ms / 1000.0 * (1 + self.prof.batch_growth * max(0, self.running - 1)) / self.speed

    def release(self, prompt: str, max_tokens: int) -> None:
        need = min(math.ceil(len(prompt) / 4) + max_tokens, self.prof.kv_tokens)
        with self.cond:
            self.running -= 1
            self.kv_used -= need
            self.served += 1
            self.cond.notify_all()

    def metrics(self) -> str:
        with self.cond:
            w, r, k = self.waiting, self.running, self.kv_used / self.prof.kv_tokens
        lab = '{model_name="emulated"}'
        return (f"# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{lab} {w}\n"
                f"# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{lab} {r}\n"
                f"# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{lab} {k:.6f}\n"
                f"# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc{lab} {k:.6f}\n")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small SSE writes: no 40 ms delayed-ACK stalls
    model: ServerModel

    def log_message(self, fmt: str, *args: object) -> None:  # quiet
        pass

    def _send(self, code: int, body: bytes, ctype: str, extra: Optional[Dict[str, str]] = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/metrics":
            self._send(200, self.server.model.metrics().encode(), "text/plain; version=0.0.4")  # type: ignore[attr-defined]
        elif self.path in ("/health", "/v1/models"):
            self._send(200, b'{"status":"ok"}', "application/json")
        else:
            self._send(404, b'{"error":"not found"}', "application/json")

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = self._read_chunked()
        if self.path != "/v1/completions":
            self._send(404, b'{"error":"not found"}', "application/json")
            return
        try:
            req = json.loads(raw)
            prompt = req.get("prompt", "")
            if isinstance(prompt, list):
                prompt = "".join(prompt)
            max_tokens = int(req.get("max_tokens", 16))
            stream = bool(req.get("stream", False))
            if max_tokens < 1:
                raise ValueError("max_tokens must be at least 1")
        except (ValueError, TypeError, AttributeError) as e:
            self._send(400, json.dumps({"error": f"bad request: {e}"}).encode(), "application/json")
            return
        model: ServerModel = self.server.model  # type: ignore[attr-defined]
        extra = {"x-emulator-request-sha256": hashlib.sha256(raw).hexdigest(),
                 "x-emulator-gpu": model.gpu}
        ptoks = math.ceil(len(prompt) / 4)
        prefill = model.admit(prompt, max_tokens)
        try:
            time.sleep(prefill)
            if not stream:
                for _ in range(max_tokens):
                    time.sleep(model.token_seconds())
                doc = {"id": "cmpl-emu", "object": "text_completion", "model": "emulated",
                       "choices": [{"index": 0, "text": expected_text(prompt, max_tokens),
                                    "finish_reason": "length"}],
                       "usage": {"prompt_tokens": ptoks, "completion_tokens": max_tokens,
                                 "total_tokens": ptoks + max_tokens}}
                self._send(200, json.dumps(doc).encode(), "application/json", extra)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            for ev in sse_events(prompt, max_tokens, "emulated", ptoks):
                if not ev.startswith(b"data: [DONE]"):
                    time.sleep(model.token_seconds())
                self.wfile.write(b"%x\r\n%s\r\n" % (len(ev), ev))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            model.release(prompt, max_tokens)

    def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return bytes(out)
            out += self.rfile.read(size)
            self.rfile.readline()


class EmulatedServer:
    """One emulated model server on ``host:port`` (port 0: any free port)."""

    def __init__(self, gpu: str, port: int = 0, host: str = "127.0.0.1", speed: float = 1.0) -> None:
        self.model = ServerModel(gpu, speed)
        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 1024
        self.httpd.model = self.model  # type: ignore[attr-defined]
        self.host, self.port = self.httpd.server_address[:2]
        self._t = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                   daemon=True, name=f"emulator-{gpu}-{self.port}")

    def start(self) -> "EmulatedServer":
        self._t.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def write_endpoints(path: str, servers: List[EmulatedServer]) -> None:
    """An llm-d style endpoints file for these servers (atomic replace)."""
    import os
    lines = ["endpoints:"]
    for i, s in enumerate(servers):
        lines.append(f"  - name: emu-{i}-{s.model.gpu.lower()}\n    namespace: default\n"
                     f"    address: {s.host}\n    port: {s.port}\n"
                     f"    labels: {{gpu: {s.model.gpu}, variant: bf16}}")
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dlsched.epp.emulator", description=__doc__.split("\n")[0])
    ap.add_argument("--fleet", help="comma list of GPU types, one server each (e.g. H100,A100,L40S,A10G)")
    ap.add_argument("--base-port", type=int, default=0, help="first port of --fleet (0: any free ports)")
    ap.add_argument("--gpu", action="append", default=[], help="GPU type of a server (repeatable, with --port)")
    ap.add_argument("--port", action="append", type=int, default=[], help="its port")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--speed", type=float, default=1.0, help="divide every duration by this")
    ap.add_argument("--endpoints-out", help="write an endpoints.yaml for dlsched-epp --endpoints")
    a = ap.parse_args(argv)
    specs = []
    if a.fleet:
        for i, g in enumerate(a.fleet.split(",")):
            specs.append((g.strip(), a.base_port + i if a.base_port else 0))
    if len(a.port) not in (0, len(a.gpu)):
        ap.error("give one --port per --gpu (or none)")
    specs += [(g, a.port[i] if a.port else 0) for i, g in enumerate(a.gpu)]
    if not specs:
        ap.error("no server: give --fleet or --gpu")
    try:
        servers = [EmulatedServer(g, p, a.host, a.speed).start() for g, p in specs]
    except (ValueError, OSError) as e:
        print(f"emulator: {e}", file=sys.stderr)
        return 2
    for s in servers:
        print(f"{s.model.gpu} http://{s.host}:{s.port}", flush=True)
    if a.endpoints_out:
        write_endpoints(a.endpoints_out, servers)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    for s in servers:
        s.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
