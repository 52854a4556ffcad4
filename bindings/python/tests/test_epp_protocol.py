"""The ext_proc servicer driven directly with hand-built ProcessingRequests
(docs/proposals/004-endpoint-picker-protocol of the Gateway API Inference
Extension is the oracle for names and status codes). Every test runs
twice: on the Python servicer (StreamState) and on the native front end
(bindings/epp-native, over a real gRPC stream on loopback; skipped when
libdlsched_eppfront.so is not built: make epp-native)."""
from __future__ import annotations

import json
import threading

import pytest

pytest.importorskip("grpc")
pytest.importorskip("envoy.service.ext_proc.v3.external_processor_pb2")

from envoy.config.core.v3 import base_pb2  # noqa: E402
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb  # noqa: E402

from dlsched.epp.discovery import Endpoint  # noqa: E402
from dlsched.epp.picker import Picker  # noqa: E402
from dlsched.epp.server import ExtProcServicer, _NativeServer, native_library  # noqa: E402
from dlsched.epp.signals import Scraper, ServerMetrics  # noqa: E402

EPS = [Endpoint(f"s{i}", "default", f"10.0.0.{i + 1}", 8000) for i in range(4)]


class StaticScraper(Scraper):
    """No network: metrics are put by the test."""

    def set_endpoints(self, endpoints):
        pass


def make_picker(waiting=(0, 0, 0, 0), policy="gateway", **kw):
    sc = StaticScraper()
    p = Picker(max_endpoints=8, policy=policy, scraper=sc, fallbacks=kw.pop("fallbacks", 2), **kw)
    p.set_endpoints(EPS)
    for ep, w in zip(EPS, waiting):
        sc.put(ep.key, ServerMetrics(w, 0, 0.1, "vllm"))
    return p


def headers_msg(eos, extra=(), subset=None, served=None):
    hs = [base_pb2.HeaderValue(key=":method", raw_value=b"POST"),
          base_pb2.HeaderValue(key=":path", raw_value=b"/v1/completions")]
    hs += [base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in extra]
    req = pb.ProcessingRequest(request_headers=pb.HttpHeaders(
        headers=base_pb2.HeaderMap(headers=hs), end_of_stream=eos))
    if subset is not None:
        f = req.metadata_context.filter_metadata["envoy.lb.subset_hint"].fields
        f["x-gateway-destination-endpoint-subset"].list_value.values.extend([])
        for s in subset:
            f["x-gateway-destination-endpoint-subset"].list_value.values.add().string_value = s
    return req


def body_msgs(body, n_chunks):
    step = max(1, -(-len(body) // n_chunks))
    out = []
    for i in range(0, len(body), step):
        out.append(pb.ProcessingRequest(request_body=pb.HttpBody(
            body=body[i:i + step], end_of_stream=i + step >= len(body))))
    return out


FRONTEND = {"name": "python"}


@pytest.fixture(autouse=True, params=["python", "native"])
def frontend(request):
    if request.param == "native" and native_library() is None:
        pytest.skip("native front end not built (make epp-native)")
    FRONTEND["name"] = request.param
    yield request.param
    FRONTEND["name"] = "python"


def run(picker, msgs):
    if FRONTEND["name"] == "native":
        return run_native(picker, msgs)
    return list(ExtProcServicer(picker).Process(iter(msgs), None))


def run_native(picker, msgs):
    """The same messages over a gRPC stream to the native front end, in
    lock step as the Python servicer takes them: after each message the
    sender waits (up to 0.05 s: metrics go stale after 1 s) for that message's answer, if it has one,
    and for the front end's queued outcome callbacks, so that a test's generator sees the picker
    after the message."""
    import grpc
    from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
    srv = _NativeServer(picker, "127.0.0.1:0", native_library())
    got, cv = [], threading.Condition()

    def send():
        for m in msgs:
            with cv:
                n = len(got)
            yield m
            with cv:
                cv.wait_for(lambda: len(got) > n, timeout=0.05)
            srv.drain()  # the outcome callbacks of that message have run
    try:
        with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as ch:
            for r in pb_grpc.ExternalProcessorStub(ch).Process(send(), timeout=20):
                with cv:
                    got.append(r)
                    cv.notify_all()
    finally:
        srv.stop(1.0)
    return got


def dest(resp):
    """The header value and the metadata value of a request_headers answer."""
    sh = resp.request_headers.response.header_mutation.set_headers
    hv = [h.header.raw_value.decode() for h in sh if h.header.key == "x-gateway-destination-endpoint"]
    mv = resp.dynamic_metadata.fields["envoy.lb"].struct_value.fields[
        "x-gateway-destination-endpoint"].string_value
    assert len(hv) == 1
    return hv[0], mv


def test_headers_only_picks_on_headers():
    p = make_picker(waiting=(5, 0, 9, 9))
    out = run(p, [headers_msg(True)])
    assert len(out) == 1
    h, m = dest(out[0])
    assert h == m  # MUST NOT differ
    # queue scores 0.5, 1, 0, 0 (max 9 min 0: (9-5)/9 = .444) -> s1 (10.0.0.2) first,
    # then fallbacks in score order: s0, then s2 or s3
    parts = h.split(",")
    assert parts[0] == "10.0.0.2:8000" and parts[1] == "10.0.0.1:8000" and len(parts) == 3
    assert out[0].request_headers.response.clear_route_cache


def test_full_duplex_body_buffered_then_echoed():
    p = make_picker()
    body = json.dumps({"model": "m", "prompt": "x" * 1000, "max_tokens": 4}).encode()
    msgs = [headers_msg(False)] + body_msgs(body, 5)
    out = run(p, msgs)
    kinds = [r.WhichOneof("response") for r in out]
    assert kinds[0] == "request_headers"
    assert all(k == "request_body" for k in kinds[1:])
    echoed = b"".join(r.request_body.response.body_mutation.streamed_response.body for r in out[1:])
    assert echoed == body
    eos = [r.request_body.response.body_mutation.streamed_response.end_of_stream for r in out[1:]]
    assert eos[-1] and not any(eos[:-1])


def test_200kb_body_echoed_in_62000_byte_chunks():
    p = make_picker()
    body = bytes((i * 7 + 3) % 251 for i in range(200 * 1024))  # 204800 bytes
    out = run(p, [headers_msg(False)] + body_msgs(body, 7))
    chunks = [r.request_body.response.body_mutation.streamed_response for r in out[1:]]
    # 204800 = 3 * 62000 + 18800
    assert [len(c.body) for c in chunks] == [62000, 62000, 62000, 18800]
    assert [c.end_of_stream for c in chunks] == [False, False, False, True]
    assert b"".join(c.body for c in chunks) == body


def test_subset_hint_obeyed():
    p = make_picker(waiting=(0, 9, 9, 9))  # the scorer would take s0 ...
    out = run(p, [headers_msg(True, subset=["10.0.0.3:8000", "10.0.0.4:8000"])])
    h, m = dest(out[0])
    assert h == m
    assert set(h.split(",")) == {"10.0.0.3:8000", "10.0.0.4:8000"}  # ... but may not


def test_subset_empty_or_none_eligible_503():
    for subset in ([], ["10.9.9.9:8000"]):
        out = run(make_picker(), [headers_msg(True, subset=subset)])
        assert len(out) == 1 and out[0].immediate_response.status.code == 503


def test_no_endpoint_ready_503():
    p = Picker(max_endpoints=8, policy="gateway", scraper=StaticScraper())
    p.set_endpoints(EPS)  # discovered but never scraped: not ready
    out = run(p, [headers_msg(True)])
    assert out[0].immediate_response.status.code == 503
    p2 = Picker(max_endpoints=8, policy="gateway", scraper=StaticScraper())
    out = run(p2, [headers_msg(False)] + body_msgs(b"{}", 1))
    assert [r.WhichOneof("response") for r in out] == ["immediate_response"]
    assert out[0].immediate_response.status.code == 503


def test_stale_metrics_not_ready():
    sc = StaticScraper()
    p = Picker(max_endpoints=8, policy="gateway", scraper=sc, stale_s=1.0)
    p.set_endpoints(EPS[:1])
    sc.put(EPS[0].key, ServerMetrics(0, 0, 0, "vllm"), when=0.0)  # long ago
    assert run(p, [headers_msg(True)])[0].immediate_response.status.code == 503


def test_shedding_429_only_when_all_queues_full():
    p = make_picker(waiting=(300, 300, 300, 300), shed_queue=256)
    out = run(p, [headers_msg(True)])
    assert out[0].immediate_response.status.code == 429
    p = make_picker(waiting=(300, 300, 300, 10), shed_queue=256)
    # the full three had the last cold requests: the no-hit LRU does not
    # favour them over the fourth (llm-d ranks never-picked ones first)
    for k, ep in enumerate(EPS[:3]):
        p.last_cold[p.slots.slot_of(f"{ep.address}:{ep.port}")] = k + 1
    h, _ = dest(run(p, [headers_msg(True)])[0])
    assert h.startswith("10.0.0.4:8000")


def test_response_stream_echoed_and_reward_observed():
    p = make_picker(fallbacks=0)
    sse = [b'data: {"choices":[{"text":"a"}]}\n\n', b'data: {"choices":[{"text":"b"}],'
           b'"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n', b"data: [DONE]\n\n"]
    resp_hdr = pb.ProcessingRequest(response_headers=pb.HttpHeaders(headers=base_pb2.HeaderMap(
        headers=[base_pb2.HeaderValue(key=":status", raw_value=b"200")])))
    msgs = [headers_msg(True)] + [resp_hdr] + [
        pb.ProcessingRequest(response_body=pb.HttpBody(body=c, end_of_stream=i == len(sse) - 1))
        for i, c in enumerate(sse)]
    rewards = []
    orig = p.finish
    p.finish = lambda ctx, complete: rewards.append((orig(ctx, complete), ctx)) or rewards[-1][0]
    out = run(p, msgs)
    assert [r.WhichOneof("response") for r in out] == ["request_headers", "response_headers"] + [
        "response_body"] * 3
    assert b"".join(r.response_body.response.body_mutation.streamed_response.body
                    for r in out[2:]) == b"".join(sse)
    assert rewards[0][0] == 1.0 and rewards[0][1].status == 200
    assert p.inflight == [0] * 8


def test_served_metadata_moves_inflight():
    p = make_picker(waiting=(0, 9, 9, 9), fallbacks=1)
    resp_hdr = pb.ProcessingRequest(response_headers=pb.HttpHeaders(headers=base_pb2.HeaderMap(
        headers=[base_pb2.HeaderValue(key=":status", raw_value=b"200")])))
    resp_hdr.metadata_context.filter_metadata["envoy.lb"].fields[
        "x-gateway-destination-endpoint-served"].string_value = "10.0.0.3:8000"
    seen = []

    def msgs():
        yield headers_msg(True)
        seen.append(list(p.inflight))
        yield resp_hdr
        seen.append(list(p.inflight))
    run(p, msgs())
    assert seen[0][0] == 1 and seen[1][0] == 0 and seen[1][2] == 1
    assert p.inflight == [0] * 8  # a reset stream still releases it


def test_reset_stream_leaves_ticket_to_expire():
    p = make_picker()
    got = []
    orig = p.finish
    p.finish = lambda ctx, complete: got.append(orig(ctx, complete))
    run(p, [headers_msg(True)])  # the stream ends with no response
    assert got == [None]


def test_served_response_header_when_no_metadata():
    p = make_picker(waiting=(0, 9, 9, 9), fallbacks=1)
    resp_hdr = pb.ProcessingRequest(response_headers=pb.HttpHeaders(headers=base_pb2.HeaderMap(
        headers=[base_pb2.HeaderValue(key=":status", raw_value=b"200"),
                 base_pb2.HeaderValue(key="x-gateway-destination-endpoint-served",
                                      raw_value=b"10.0.0.4:8000")])))
    seen = []

    def msgs():
        yield headers_msg(True)
        yield resp_hdr
        seen.append(list(p.inflight))
    run(p, msgs())
    assert seen[0][0] == 0 and seen[0][3] == 1


def test_body_ended_by_trailers():
    p = make_picker(fallbacks=0)
    body = b'{"prompt": "hello"}'
    msgs = [headers_msg(False),
            pb.ProcessingRequest(request_body=pb.HttpBody(body=body[:7], end_of_stream=False)),
            pb.ProcessingRequest(request_body=pb.HttpBody(body=body[7:], end_of_stream=False)),
            pb.ProcessingRequest(request_trailers=pb.HttpTrailers())]
    out = run(p, msgs)
    assert [r.WhichOneof("response") for r in out] == ["request_headers", "request_body", "request_trailers"]
    sr = out[1].request_body.response.body_mutation.streamed_response
    assert sr.body == body and not sr.end_of_stream  # the trailers end the stream, not the body
    h, m = dest(out[0])
    assert h == m and h.count(":") == 1
