"""The native front end with no picker (eppf_start without a pick
callback): make bench-epp's floor. Round-robin over its fixed endpoints,
the same protocol answers as with a picker (destination header and
envoy.lb metadata equal, the buffered body echoed in order, response
messages passed through), and a clear error with no endpoints."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("grpc")
pytest.importorskip("envoy.service.ext_proc.v3.external_processor_pb2")

import grpc  # noqa: E402
from envoy.config.core.v3 import base_pb2  # noqa: E402
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb  # noqa: E402
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc  # noqa: E402

from dlsched.epp.server import _NativeFloor, native_library  # noqa: E402

pytestmark = pytest.mark.skipif(native_library() is None,
                                reason="native front end not built (make epp-native)")


def stream(port, body):
    hs = base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key=":path", raw_value=b"/v1/completions")])
    msgs = [pb.ProcessingRequest(request_headers=pb.HttpHeaders(headers=hs, end_of_stream=False)),
            pb.ProcessingRequest(request_body=pb.HttpBody(body=body[:7], end_of_stream=False)),
            pb.ProcessingRequest(request_body=pb.HttpBody(body=body[7:], end_of_stream=True)),
            pb.ProcessingRequest(response_headers=pb.HttpHeaders(headers=base_pb2.HeaderMap(
                headers=[base_pb2.HeaderValue(key=":status", raw_value=b"200")]))),
            pb.ProcessingRequest(response_body=pb.HttpBody(body=b"data: x\n\n", end_of_stream=True))]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        return list(pb_grpc.ExternalProcessorStub(ch).Process(iter(msgs), timeout=10))


def test_round_robin_over_fixed_endpoints_with_protocol_answers():
    floor = _NativeFloor("127.0.0.1:0", "10.0.0.1:8000, 10.0.0.2:8000,,10.0.0.3:8000",
                         native_library())
    try:
        port = floor.port
        body = json.dumps({"prompt": "hello", "max_tokens": 1}).encode()
        seen = []
        for _ in range(6):
            out = stream(port, body)
            kinds = [r.WhichOneof("response") for r in out]
            assert kinds == ["request_headers", "request_body", "response_headers", "response_body"]
            sh = out[0].request_headers.response.header_mutation.set_headers
            hv = [x.header.raw_value.decode() for x in sh
                  if x.header.key == "x-gateway-destination-endpoint"]
            mv = out[0].dynamic_metadata.fields["envoy.lb"].struct_value.fields[
                "x-gateway-destination-endpoint"].string_value
            assert len(hv) == 1 and hv[0] == mv
            seen.append(mv)
            sr = out[1].request_body.response.body_mutation.streamed_response
            assert sr.body == body and sr.end_of_stream
            assert out[3].response_body.response.body_mutation.streamed_response.body == b"data: x\n\n"
        assert seen == ["10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"] * 2
    finally:
        floor.stop(0.1)


def test_no_pick_and_no_endpoints_is_an_error():
    with pytest.raises(OSError, match="no endpoints"):
        _NativeFloor("127.0.0.1:0", " , ", native_library())
