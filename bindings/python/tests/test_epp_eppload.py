"""bench/epp/eppload.c, make bench-epp's C load generator, against the
emulated model server: every request answered 200 with the body the
emulator generates for its prompt (expected_text, byte for byte, SSE
de-chunked), arrivals paced (60 requests 5 ms apart take at least 295
ms), TTFT <= E2E, kept-alive
connections reused (fewer connections than requests), and a closed port
gives every request status 0 after one retry. Skipped without the binary
($DLSCHED_EPPLOAD, built by make check-epp)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import pytest

from dlsched.epp.emulator import EmulatedServer, sse_events

EPPLOAD = os.environ.get("DLSCHED_EPPLOAD", "")
pytestmark = pytest.mark.skipif(not (EPPLOAD and os.access(EPPLOAD, os.X_OK)),
                                reason="no eppload binary (DLSCHED_EPPLOAD; make check-epp)")


def write_input(path, port, prompts, gap_ns):
    parts = [b"%d\n" % len(prompts)]
    for i, p in enumerate(prompts):
        body = json.dumps({"model": "emulated", "prompt": p, "max_tokens": 3, "stream": True}).encode()
        raw = (f"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        parts.append(b"%d %d\n" % (i * gap_ns, len(raw)) + raw)
    with open(path, "wb") as f:
        f.write(b"".join(parts))


def read_output(path, n):
    data = open(path, "rb").read()
    out, pos = [], 0
    for _ in range(n):
        nl = data.index(b"\n", pos)
        idx, st, ttft, e2e, att, blen = (int(x) for x in data[pos:nl].split())
        out.append((idx, st, ttft, e2e, att, data[nl + 1:nl + 1 + blen]))
        pos = nl + 1 + blen
    assert pos == len(data)
    return out


def test_bodies_latencies_and_kept_alive_connections(tmp_path):
    srv = EmulatedServer("H100", speed=50.0).start()
    accepted = []
    orig = srv.httpd.get_request

    def counting():  # one call per new connection
        conn = orig()
        accepted.append(1)
        return conn
    srv.httpd.get_request = counting
    try:
        prompts = [f"prompt number {i} " * (1 + i % 5) for i in range(60)]
        fin, fout = tmp_path / "in", tmp_path / "out"
        write_input(fin, srv.port, prompts, 5_000_000)  # one every 5 ms
        t0 = time.monotonic()
        subprocess.run([EPPLOAD, "127.0.0.1", str(srv.port), "8", str(fin), str(fout)], check=True,
                       timeout=60)
        took = time.monotonic() - t0
        res = read_output(fout, len(prompts))
    finally:
        srv.stop()
    for i, (idx, st, ttft, e2e, att, body) in enumerate(res):
        want = b"".join(sse_events(prompts[i], 3, "emulated", -(-len(prompts[i]) // 4)))
        assert idx == i and st == 200 and att == 1
        assert body == want
        assert 0 < ttft <= e2e < 10 * 10**9
    assert 1 <= len(accepted) <= 8 < len(prompts)
    assert took >= 0.295


def test_closed_port_every_request_status_0_after_one_retry(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    fin, fout = tmp_path / "in", tmp_path / "out"
    write_input(fin, port, ["a", "b", "c"], 1_000_000)
    subprocess.run([EPPLOAD, "127.0.0.1", str(port), "2", str(fin), str(fout)], check=True, timeout=60)
    for idx, st, ttft, e2e, att, body in read_output(fout, 3):
        assert (st, ttft, e2e, att, body) == (0, -1, -1, 2, b"")


def test_bad_input_exits_2(tmp_path):
    fin = tmp_path / "in"
    fin.write_bytes(b"2\n5 3\nabc1 3\nxyz")  # arrivals decrease
    r = subprocess.run([EPPLOAD, "127.0.0.1", "1", "2", str(fin), str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "arrivals must not decrease" in r.stderr
