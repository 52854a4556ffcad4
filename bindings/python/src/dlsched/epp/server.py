"""The Endpoint Picker protocol over Envoy's ext_proc (gRPC).

Per docs/proposals/004-endpoint-picker-protocol (v1.0.0) of
kubernetes-sigs/gateway-api-inference-extension:

* request: the subset hint is read from ProcessingRequest.metadata_context,
  filter metadata namespace ``envoy.lb.subset_hint``, key
  ``x-gateway-destination-endpoint-subset`` (a list of "ip:port"); when set,
  only those endpoints are picked from, and an empty list or no eligible
  endpoint gives an ImmediateResponse 503.
* answer: the header ``x-gateway-destination-endpoint`` and the dynamic
  metadata ``envoy.lb`` / ``x-gateway-destination-endpoint`` carry the same
  "ip:port[,ip:port...]" value, primary first; 503 when no endpoint is
  ready, 429 when the picker sheds.
* response: the endpoint that really served is read from
  metadata_context ``envoy.lb`` / ``x-gateway-destination-endpoint-served``
  (the proposal puts it in metadata; a response header of that name is
  read when the metadata is absent).

Body handling follows GIE's reference EPP (pkg/common/envoy/chunking.go):
in FULL_DUPLEX_STREAMED mode the request body is buffered to its end, then
the header mutation is sent, then the body is echoed as StreamedBodyResponse
chunks of at most 62,000 bytes (BodyByteLimit), end_of_stream on the last;
response body chunks are echoed as they come (so tokens stream through).
When the proxy sends headers with end_of_stream (no body, or body mode
NONE), the pick is made on the headers alone.
"""
from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import threading
import time
from concurrent import futures
from typing import Any, Dict, Iterable, Iterator, List, Optional

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from envoy.type.v3 import http_status_pb2
from google.protobuf import struct_pb2

from .picker import Picker, RequestContext

__all__ = ["ExtProcServicer", "serve", "native_library", "FRONTENDS", "BODY_BYTE_LIMIT", "DEST_HEADER", "DEST_NAMESPACE",
           "SUBSET_NAMESPACE", "SUBSET_KEY", "SERVED_KEY", "HEALTH_SERVICES"]

BODY_BYTE_LIMIT = 62000
DEST_HEADER = "x-gateway-destination-endpoint"
DEST_NAMESPACE = "envoy.lb"
SUBSET_NAMESPACE = "envoy.lb.subset_hint"
SUBSET_KEY = "x-gateway-destination-endpoint-subset"
SERVED_KEY = "x-gateway-destination-endpoint-served"
HEALTH_SERVICES = ("liveness", "readiness", "envoy.service.ext_proc.v3.ExternalProcessor")
MAX_REQUEST_BODY = 10 * 1024 * 1024  # GIE's maxRequestBodySize

log = logging.getLogger("dlsched.epp")


def _headers(hm: Any) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for h in hm.headers.headers:
        out[h.key.lower()] = h.raw_value.decode("utf-8", "replace") if h.raw_value else h.value
    return out


def _subset(req: Any) -> Optional[List[str]]:
    fm = req.metadata_context.filter_metadata
    if SUBSET_NAMESPACE not in fm:
        return None
    st = fm[SUBSET_NAMESPACE]
    if SUBSET_KEY not in st.fields:
        return None
    v = st.fields[SUBSET_KEY]
    kind = v.WhichOneof("kind")
    if kind == "list_value":
        return [x.string_value for x in v.list_value.values if x.string_value]
    if kind == "string_value":  # tolerate "a,b" as a single string
        return [x.strip() for x in v.string_value.split(",") if x.strip()]
    return []


def _served(req: Any) -> Optional[str]:
    fm = req.metadata_context.filter_metadata
    if DEST_NAMESPACE in fm and SERVED_KEY in fm[DEST_NAMESPACE].fields:
        v = fm[DEST_NAMESPACE].fields[SERVED_KEY].string_value
        return v.split(",")[0].strip() or None
    return None


def immediate(status: int, details: str) -> Any:
    return pb.ProcessingResponse(immediate_response=pb.ImmediateResponse(
        status=http_status_pb2.HttpStatus(code=status), body=details.encode(), details=details))


def destination_response(value: str) -> Any:
    """The request-headers answer: header and dynamic metadata, same value."""
    common = pb.CommonResponse(
        clear_route_cache=True,
        header_mutation=pb.HeaderMutation(set_headers=[base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=DEST_HEADER, raw_value=value.encode()),
            append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD)]))
    md = struct_pb2.Struct()
    md.fields[DEST_NAMESPACE].struct_value.fields[DEST_HEADER].string_value = value
    return pb.ProcessingResponse(request_headers=pb.HeadersResponse(response=common),
                                 dynamic_metadata=md)


def body_chunks(body: bytes, eos: bool, response: bool) -> Iterator[Any]:
    """StreamedBodyResponse chunks of at most BODY_BYTE_LIMIT bytes (one,
    possibly empty, for an empty body); end_of_stream on the last if eos."""
    n = len(body)
    starts = range(0, n, BODY_BYTE_LIMIT) if n else [0]
    for i in starts:
        chunk = body[i:i + BODY_BYTE_LIMIT]
        last = i + BODY_BYTE_LIMIT >= n
        common = pb.CommonResponse(body_mutation=pb.BodyMutation(
            streamed_response=pb.StreamedBodyResponse(body=chunk, end_of_stream=eos and last)))
        br = pb.BodyResponse(response=common)
        yield pb.ProcessingResponse(response_body=br) if response else pb.ProcessingResponse(request_body=br)


class StreamState:
    """One ext_proc stream (one HTTP request) as a state machine:
    ``on(req)`` gives the responses for one ProcessingRequest; ``ended`` is
    set after an ImmediateResponse (the stream is over for the proxy);
    ``close()`` must run when the stream ends, however it ends."""

    __slots__ = ("p", "headers", "subset", "body", "ctx", "pending", "complete", "ended", "_value")

    def __init__(self, picker: Picker) -> None:
        self.p = picker
        self.headers: Dict[str, str] = {}
        self.subset: Optional[List[str]] = None
        self.body = bytearray()
        self.ctx: Optional[RequestContext] = None
        self.pending = False    # request headers seen, answer deferred to the body's end
        self.complete = False   # the response reached its end
        self.ended = False
        self._value = ""

    def _pick(self, body: Optional[bytes]) -> Optional[Any]:
        res = self.p.pick(self.headers, body, self.subset)
        if res.status != 200:
            self.ended = True
            return immediate(res.status, res.reason)
        self.ctx = res.context
        self._value = ",".join(res.endpoints)
        return None

    def on(self, req: Any) -> List[Any]:
        p = self.p
        kind = req.WhichOneof("request")
        if kind == "request_headers":
            self.headers = _headers(req.request_headers)
            self.subset = _subset(req)
            if req.request_headers.end_of_stream:
                refused = self._pick(None)
                if refused is not None:
                    return [refused]
                return [destination_response(self.ctx_value())]
            self.pending = True
            return []
        if kind == "request_body":
            rb = req.request_body
            if not self.pending:  # already answered: pass through
                return list(body_chunks(rb.body, rb.end_of_stream, response=False))
            if len(self.body) + len(rb.body) > MAX_REQUEST_BODY:
                self.ended = True
                return [immediate(413, f"request body over {MAX_REQUEST_BODY} bytes")]
            self.body += rb.body
            if not rb.end_of_stream:
                return []
            self.pending = False
            body, self.body = bytes(self.body), bytearray()
            refused = self._pick(body)
            if refused is not None:
                return [refused]
            return [destination_response(self.ctx_value())] + list(body_chunks(body, True, response=False))
        if kind == "request_trailers":
            out: List[Any] = []
            if self.pending:  # the body ended with trailers: pick now
                self.pending = False
                body, self.body = bytes(self.body), bytearray()
                refused = self._pick(body)
                if refused is not None:
                    return [refused]
                out = [destination_response(self.ctx_value())] + list(body_chunks(body, False, response=False))
            out.append(pb.ProcessingResponse(request_trailers=pb.TrailersResponse()))
            return out
        if kind == "response_headers":
            rh = req.response_headers
            ctx = self.ctx
            if ctx is not None:
                hdrs = _headers(rh)
                # the proposal's metadata first; a proxy that sends it as a response header instead
                served = _served(req) or (hdrs.get(SERVED_KEY, "").split(",")[0].strip() or None)
                if served:
                    p.served(ctx, served)
                try:
                    p.response_headers(ctx, int(hdrs.get(":status", "0")))
                except ValueError:
                    p.response_headers(ctx, 0)
                if rh.end_of_stream:
                    self.complete = True
            return [pb.ProcessingResponse(response_headers=pb.HeadersResponse())]
        if kind == "response_body":
            rb = req.response_body
            if self.ctx is not None:
                p.response_body(self.ctx, rb.body, rb.end_of_stream)
            if rb.end_of_stream:
                self.complete = True
            return list(body_chunks(rb.body, rb.end_of_stream, response=True))
        if kind == "response_trailers":
            self.complete = True
            if self.ctx is not None:
                p.response_body(self.ctx, b"", True)
            return [pb.ProcessingResponse(response_trailers=pb.TrailersResponse())]
        return []

    def ctx_value(self) -> str:
        return self._value

    def close(self) -> None:
        if self.ctx is not None:
            self.p.finish(self.ctx, self.complete)


class ExtProcServicer(pb_grpc.ExternalProcessorServicer):
    """envoy.service.ext_proc.v3.ExternalProcessor, one stream per request
    (synchronous: a thread per stream; the protocol tests drive it)."""

    def __init__(self, picker: Picker) -> None:
        self.picker = picker

    def Process(self, request_iterator: Iterable[Any], context: Any) -> Iterator[Any]:
        st = StreamState(self.picker)
        try:
            for req in request_iterator:
                yield from st.on(req)
                if st.ended:
                    return
        finally:
            st.close()


class AioExtProcServicer(pb_grpc.ExternalProcessorServicer):
    """The same protocol on grpc.aio (what ``serve`` runs: no thread per
    stream, several times the messages per second of the threaded server)."""

    def __init__(self, picker: Picker) -> None:
        self.picker = picker

    async def Process(self, request_iterator: Any, context: Any) -> Any:
        st = StreamState(self.picker)
        try:
            async for req in request_iterator:
                for r in st.on(req):
                    yield r
                if st.ended:
                    return
        finally:
            st.close()


class _AioServer:
    """grpc.aio server on its own event loop thread, with the sync server's
    start/stop surface."""

    def __init__(self, picker: Picker, address: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: Any = None
        self.port = 0
        self._err: Optional[BaseException] = None
        self._grace = 0.0
        self._stopping: Any = None
        self._t = threading.Thread(target=self._run, args=(picker, address), daemon=True,
                                   name="dlsched-epp-grpc")
        self._t.start()
        self._ready.wait()
        if self._err is not None:
            raise self._err

    def _run(self, picker: Picker, address: str) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            try:
                self._server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20),
                                                        ("grpc.so_reuseport", 0)])
                pb_grpc.add_ExternalProcessorServicer_to_server(AioExtProcServicer(picker), self._server)
                self.port = self._server.add_insecure_port(address)
                await self._server.start()
            except BaseException as e:  # a port in use arrives here as RuntimeError
                self._err = OSError(f"cannot listen on {address}: {e}")
                self._ready.set()
                return
            self._stopping = asyncio.Event()
            self._ready.set()
            await self._stopping.wait()
            await self._server.stop(self._grace)

        self._loop.run_until_complete(main())
        self._loop.close()

    def stop(self, grace: float) -> None:
        self._grace = grace
        if self._err is None and self._t.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._t.join(grace + 10)


FRONTENDS = ("auto", "native", "python")
NATIVE_ENV = "DLSCHED_EPPFRONT_LIBRARY"
NATIVE_NAME = "libdlsched_eppfront.so"

_PICK_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p,
                            ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p,
                            ctypes.c_size_t)
_RESP_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int, ctypes.c_void_p,
                            ctypes.c_size_t)
_FIRST_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_double)
_FINISH_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int, ctypes.c_double,
                              ctypes.c_void_p, ctypes.c_size_t)


def native_library() -> Optional[str]:
    """The native front end's shared library (bindings/epp-native, built by
    ``make epp-native``): $DLSCHED_EPPFRONT_LIBRARY, else libdlsched_eppfront.so
    on the loader's path; None when there is none."""
    path = os.environ.get(NATIVE_ENV)
    if path:
        return path
    found = ctypes.util.find_library("dlsched_eppfront")
    if found:
        return found
    try:
        ctypes.CDLL(NATIVE_NAME)
        return NATIVE_NAME
    except OSError:
        return None


def _text(ptr: Any, n: int) -> bytes:
    return ctypes.string_at(ptr, n) if n else b""


class _NativeLoadError(OSError):
    """The native front end's library does not load."""


def _native_lib(library: str) -> Any:
    """libdlsched_eppfront.so loaded, its C ABI typed (eppf_start's callbacks
    may be NULL function pointers, e.g. _PICK_CB(): the no-picker floor)."""
    try:
        lib = ctypes.CDLL(library)
    except OSError as e:
        raise _NativeLoadError(f"native front end {library}: {e}") from None
    lib.eppf_start.restype = ctypes.c_void_p
    lib.eppf_start.argtypes = [ctypes.c_char_p, ctypes.c_size_t, _PICK_CB, _RESP_CB, _FIRST_CB,
                               _FINISH_CB, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.eppf_port.restype = ctypes.c_int
    lib.eppf_port.argtypes = [ctypes.c_void_p]
    lib.eppf_drain.restype = ctypes.c_int
    lib.eppf_drain.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.eppf_stop.restype = None
    lib.eppf_stop.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


class _NativeServer:
    """The ext_proc service in C++ (bindings/epp-native/eppfront.cc, gRPC's
    synchronous server): the same protocol as StreamState, with the picker
    called four times per request and no message of the stream handled in
    Python: the pick on the stream's gRPC thread (the request waits for it),
    the outcome (response headers, first response byte, end of stream) on
    the front end's dispatcher thread, queued in order, so that no response
    waits for the picker or the GIL."""

    def __init__(self, picker: Picker, address: str, library: str) -> None:
        lib = self._lib = _native_lib(library)
        self.library = library
        self.picker = picker
        self._ctx: Dict[int, RequestContext] = {}
        self._lock = threading.Lock()
        # the callbacks must outlive the server: kept on self
        self._cbs = (_PICK_CB(self._pick), _RESP_CB(self._resp), _FIRST_CB(self._first),
                     _FINISH_CB(self._finish))
        err = ctypes.create_string_buffer(512)
        self._h = lib.eppf_start(address.encode(), picker.tail_bytes, *self._cbs, None, err, len(err))
        if not self._h:
            raise OSError(err.value.decode("utf-8", "replace"))
        self.port = lib.eppf_port(self._h)

    # the callbacks run on gRPC's threads (pick) or the front end's dispatcher
    # thread (the rest); ctypes takes the GIL; they never raise
    def _pick(self, _u: Any, sid: int, hp: Any, hl: int, bp: Any, bl: int, has_body: int,
              sp: Any, sl: int, has_subset: int, out: Any, outcap: int) -> int:
        try:
            parts = _text(hp, hl).split(b"\0")
            headers = {parts[i].decode("utf-8", "replace"): parts[i + 1].decode("utf-8", "replace")
                       for i in range(0, len(parts) - 1, 2)}
            body = _text(bp, bl) if has_body else None
            subset = None
            if has_subset:
                subset = [x.decode("utf-8", "replace") for x in _text(sp, sl).split(b"\0") if x]
            res = self.picker.pick(headers, body, subset)
            if res.status == 200:
                with self._lock:
                    self._ctx[sid] = res.context
                text = ",".join(res.endpoints)
            else:
                text = res.reason
            status = res.status
        except Exception as e:  # never fail the stream on a picker bug: say it in the 503
            log.exception("pick failed")
            status, text = 503, f"picker error: {type(e).__name__}: {e}"
        data = text.encode("utf-8", "replace")[: max(0, outcap - 1)]
        ctypes.memmove(out, data + b"\0", len(data) + 1)
        return status

    def _resp(self, _u: Any, sid: int, status: int, sp: Any, sl: int) -> None:
        try:
            ctx = self._ctx.get(sid)
            if ctx is None:
                return
            if sl:
                self.picker.served(ctx, _text(sp, sl).decode("utf-8", "replace"))
            self.picker.response_headers(ctx, status)
        except Exception:
            log.exception("response headers")

    def _first(self, _u: Any, sid: int, t: float) -> None:
        ctx = self._ctx.get(sid)
        if ctx is not None and ctx.t_first == 0.0:
            ctx.t_first = t

    def _finish(self, _u: Any, sid: int, complete: int, t_end: float, tp: Any, tl: int) -> None:
        try:
            with self._lock:
                ctx = self._ctx.pop(sid, None)
            if ctx is None:
                return
            if tl:
                ctx.tail = _text(tp, tl)[-self.picker.tail_bytes:]
            if t_end:
                ctx.t_end = t_end
            self.picker.finish(ctx, bool(complete))
        except Exception:
            log.exception("finish")

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until the outcome callbacks of everything so far have run."""
        return bool(self._h) and self._lib.eppf_drain(self._h, int(timeout * 1000)) == 1

    def stop(self, grace: float) -> None:
        if self._h:
            h, self._h = self._h, None
            self._lib.eppf_stop(h, int(grace * 1000))


class _NativeFloor:
    """The native front end with no picker (eppf_start without callbacks):
    the same protocol, round-robin in C over ``endpoints`` ("a:p,b:p"), no
    Python on the stream. make bench-epp's floor of the ext_proc path."""

    def __init__(self, address: str, endpoints: str, library: str) -> None:
        self._lib = _native_lib(library)
        self._eps = ctypes.create_string_buffer(endpoints.encode())  # read by eppf_start
        err = ctypes.create_string_buffer(512)
        null = (_PICK_CB(), _RESP_CB(), _FIRST_CB(), _FINISH_CB())  # NULL function pointers
        self._h = self._lib.eppf_start(address.encode(), 1, *null,
                                       ctypes.cast(self._eps, ctypes.c_void_p), err, len(err))
        if not self._h:
            raise OSError(err.value.decode("utf-8", "replace"))
        self.port = self._lib.eppf_port(self._h)

    def stop(self, grace: float) -> None:
        if self._h:
            h, self._h = self._h, None
            self._lib.eppf_stop(h, int(grace * 1000))


def serve(picker: Picker, grpc_port: int, health_port: int, host: str = "[::]",
          frontend: str = "auto") -> "EppServer":
    """Start the ext_proc server and the health server (grpc.health.v1 with
    the services liveness, readiness and the ext_proc service name). Port 0
    picks a free port (EppServer.port, .health_port). frontend: "native"
    (the C++ front end, libdlsched_eppfront.so), "python" (grpc.aio) or
    "auto" (native when its library loads, else python); EppServer.frontend
    says which runs."""
    if frontend not in FRONTENDS:
        raise ValueError(f"frontend {frontend!r} is not one of {', '.join(FRONTENDS)}")
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    hserver = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)])
    hs = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(hs, hserver)
    try:
        hbound = hserver.add_insecure_port(f"{host}:{health_port}")
    except RuntimeError as e:
        raise OSError(f"cannot listen on health port {health_port}: {e}") from None
    if hbound == 0:
        raise OSError(f"cannot listen on health port {health_port}")
    server: Any = None
    lib = native_library() if frontend != "python" else None
    if frontend == "native" and lib is None:
        raise OSError(f"--frontend native: no {NATIVE_NAME} (make epp-native; or set {NATIVE_ENV})")
    if lib is not None:
        try:
            server = _NativeServer(picker, f"{host}:{grpc_port}", lib)
        except _NativeLoadError as e:
            if frontend == "native":
                raise OSError(f"--frontend native: {e}") from None
            log.warning("%s: serving with grpc.aio", e)
    if server is None:
        server = _AioServer(picker, f"{host}:{grpc_port}")
    if server.port == 0:
        server.stop(0)
        raise OSError(f"cannot listen on gRPC port {grpc_port}")
    hs.set("liveness", health_pb2.HealthCheckResponse.SERVING)
    for name in HEALTH_SERVICES[1:] + ("",):
        hs.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    hserver.start()
    return EppServer(server, hserver, hs, picker, server.port, hbound)


class EppServer:
    """The running servers; ``update_health`` follows the picker's sync."""

    def __init__(self, server: Any, hserver: Any, health: Any, picker: Picker,
                 port: int, health_port: int) -> None:
        self.server, self.hserver, self.health, self.picker = server, hserver, health, picker
        self.port, self.health_port = port, health_port
        self.frontend = "native" if isinstance(server, _NativeServer) else "python"
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._watch, daemon=True, name="dlsched-epp-health")
        self._t.start()

    def _watch(self) -> None:
        from grpc_health.v1 import health_pb2
        last = None
        while True:
            ok = self.picker.synced and bool(self.picker.ready_slots())
            if ok != last:
                st = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
                for name in HEALTH_SERVICES[1:] + ("",):
                    self.health.set(name, st)
                last = ok
            if self._stop.wait(0.1):
                return

    def stop(self, grace: float = 1.0) -> None:
        self._stop.set()
        self.server.stop(grace)
        self.hserver.stop(0).wait()
