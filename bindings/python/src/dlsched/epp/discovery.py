"""Where the model servers are: the Endpoint record and file discovery.

A discovery source is an object with

    start(callback)  -- callback(list[Endpoint]) is called with the full,
                        current list once at start and again on every change
    stop()           -- no callback after stop() returns

FileDiscovery reads llm-d's standalone endpoints file::

    endpoints:
      - name: vllm-0
        namespace: default
        address: 10.0.0.7
        port: 8000
        labels: {gpu: H100, variant: fp8}

and reloads it when the file is replaced (an atomic rename gives a new inode;
an in-place write a new mtime or size): the file is polled, so it works on
any file system and for ConfigMap volume mounts, which swap a symlink.
KubernetesDiscovery (dlsched.epp.k8s) implements the same interface from an
InferencePool's selector.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

__all__ = ["Endpoint", "DiscoveryError", "FileDiscovery", "parse_endpoints", "load_endpoints"]


class DiscoveryError(ValueError):
    """An endpoints file or record that cannot be used; the message names it."""


@dataclass(frozen=True)
class Endpoint:
    """One model server: where it listens and what it runs on.

    ``address`` is an IPv4/IPv6 address or host name, ``port`` its serving
    port (the picker scrapes http://address:port/metrics and tells the proxy
    "address:port"). ``labels`` carry the GPU type and variant, read by the
    picker as ``gpu`` (or ``nvidia.com/gpu.product``) and ``variant``.
    """
    name: str
    namespace: str
    address: str
    port: int
    labels: Dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        """The "namespace/name" identity used by the slot table."""
        return f"{self.namespace}/{self.name}"

    @property
    def hostport(self) -> str:
        """"ip:port" as the proxy expects it ("[v6]:port" for IPv6)."""
        if ":" in self.address and not self.address.startswith("["):
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


def _endpoint(rec: Any, where: str) -> Endpoint:
    if not isinstance(rec, dict):
        raise DiscoveryError(f"{where}: an endpoint must be a mapping, got {type(rec).__name__}")
    for k in ("name", "address", "port"):
        if k not in rec or rec[k] in (None, ""):
            raise DiscoveryError(f"{where}: missing '{k}'")
    try:
        port = int(rec["port"])
    except (TypeError, ValueError):
        raise DiscoveryError(f"{where}: port {rec['port']!r} is not an integer") from None
    if not 0 < port < 65536:
        raise DiscoveryError(f"{where}: port {port} is outside 1..65535")
    labels = rec.get("labels") or {}
    if not isinstance(labels, dict):
        raise DiscoveryError(f"{where}: labels must be a mapping")
    return Endpoint(name=str(rec["name"]), namespace=str(rec.get("namespace") or "default"),
                    address=str(rec["address"]), port=port,
                    labels={str(k): str(v) for k, v in labels.items()})


def parse_endpoints(doc: Any, source: str = "endpoints") -> List[Endpoint]:
    """The endpoint list of a parsed endpoints document ({"endpoints": [...]}).

    Raises DiscoveryError naming the source and the entry at fault; duplicate
    namespace/name pairs are an error (the slot table keys on them).
    """
    if doc is None:
        return []
    if not isinstance(doc, dict) or "endpoints" not in doc:
        raise DiscoveryError(f"{source}: expected a mapping with an 'endpoints' list")
    recs = doc["endpoints"] or []
    if not isinstance(recs, list):
        raise DiscoveryError(f"{source}: 'endpoints' must be a list")
    out: List[Endpoint] = []
    seen = set()
    for i, rec in enumerate(recs):
        ep = _endpoint(rec, f"{source}: endpoints[{i}]")
        if ep.key in seen:
            raise DiscoveryError(f"{source}: endpoints[{i}]: duplicate endpoint {ep.key}")
        seen.add(ep.key)
        out.append(ep)
    return out


def load_endpoints(path: str) -> List[Endpoint]:
    """Read and parse an endpoints file (YAML, which includes JSON)."""
    import yaml  # the `epp` extra
    try:
        with open(path, "r", encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as e:
        raise DiscoveryError(f"{path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise DiscoveryError(f"{path}: not valid YAML: {e}") from None
    return parse_endpoints(doc, path)


class FileDiscovery:
    """Endpoints from a file, polled every ``interval`` seconds.

    A file that fails to parse keeps the last good list (the error is kept in
    ``last_error`` and counted in ``errors``); a missing file at start is an
    error from the constructor, so a typo fails fast.
    """

    def __init__(self, path: str, interval: float = 0.5) -> None:
        self.path = path
        self.interval = float(interval)
        self.errors = 0
        self.last_error: Optional[str] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._stamp: Optional[Tuple[int, int, int, int]] = None
        self._current = load_endpoints(path)  # fail fast
        self._stamp = self._stat()

    def _stat(self) -> Optional[Tuple[int, int, int, int]]:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_dev, st.st_mtime_ns, st.st_size)

    @property
    def endpoints(self) -> List[Endpoint]:
        return list(self._current)

    def poll(self) -> bool:
        """Re-read the file if it changed; True when the endpoint list changed."""
        stamp = self._stat()
        if stamp is None or stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            eps = load_endpoints(self.path)
        except DiscoveryError as e:
            self.errors += 1
            self.last_error = str(e)
            return False
        if eps == self._current and [e.labels for e in eps] == [e.labels for e in self._current]:
            return False
        self._current = eps
        return True

    def start(self, callback: Callable[[List[Endpoint]], None]) -> None:
        if self._thread is not None:
            raise RuntimeError("FileDiscovery already started")
        callback(self.endpoints)

        def run() -> None:
            while not self._stop.wait(self.interval):
                if self.poll():
                    callback(self.endpoints)

        self._thread = threading.Thread(target=run, name="dlsched-epp-file-discovery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
