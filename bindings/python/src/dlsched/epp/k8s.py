"""Kubernetes discovery: the model servers of an InferencePool.

KubernetesDiscovery has FileDiscovery's interface (start(callback), stop())
and finds the endpoints the way the Gateway API Inference Extension's
endpoint pickers do:

* it reads the named ``InferencePool`` (group inference.networking.k8s.io,
  version v1) for ``spec.selector.matchLabels`` and ``spec.targetPorts``
  and watches the pool, so a changed selector or port list takes effect
  without a restart (a deleted pool leaves no endpoints until it returns);
* it lists the Pods of the pool's namespace that match the selector and
  watches them from the list's resourceVersion; a watch that ends is
  resumed from the last resourceVersion seen, a ``410 Gone`` (the version
  is too old) relists, and a failed request is retried with a backoff;
* every Pod that is Ready (condition Ready=True), has a podIP and is not
  terminating (no deletionTimestamp) is an endpoint per target port:
  ``Endpoint(name, namespace, podIP, port, pod labels)``. With one target
  port the endpoint's name is the Pod's; with several, the i-th port's
  endpoint is ``<pod>-rank-<i>`` (as the inference extension names them),
  so every ``namespace/name`` stays unique.

The callback gets the full, sorted list once from start() and again on
every change of that list (labels included) -- from the watch threads, one
call at a time. Pods are matched against the selector on this side too, so
an event for a Pod outside the selector never makes an endpoint.

The API server: ``api_url`` (with an optional bearer ``token`` and CA
file) for tests and out-of-cluster use; by default the in-cluster service
account (``load_incluster_config``), else the kube config
(``load_kube_config``). The ServiceAccount needs get/list/watch on pods and
on inferencepools.inference.networking.k8s.io in the pool's namespace
(deploy/k8s/base/rbac.yaml).

Needs the ``kubernetes`` package (the ``epp`` extra).
"""
from __future__ import annotations

import json
import logging
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

from .discovery import DiscoveryError, Endpoint

__all__ = ["KubernetesDiscovery", "POOL_GROUP", "POOL_VERSION", "POOL_PLURAL",
           "pod_is_ready", "pool_spec", "endpoints_of"]

log = logging.getLogger("dlsched.epp.k8s")

POOL_GROUP = "inference.networking.k8s.io"
POOL_VERSION = "v1"
POOL_PLURAL = "inferencepools"
_SA_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def _kube():
    try:
        from kubernetes import client, config, watch  # the `epp` extra
    except ImportError as e:  # pragma: no cover - exercised without the package
        raise ImportError("dlsched.epp.k8s needs the 'kubernetes' package "
                          "(pip install 'dlsched[epp]')") from e
    return client, config, watch


class _Relist(Exception):
    """The watch cannot go on from its resourceVersion (410 Gone)."""


def pool_spec(pool: Dict[str, Any], where: str) -> Tuple[Dict[str, str], Tuple[int, ...]]:
    """(matchLabels, target port numbers) of an InferencePool object (API JSON).

    Raises DiscoveryError naming ``where`` (the pool) and the field at fault.
    """
    spec = pool.get("spec") if isinstance(pool, dict) else None
    if not isinstance(spec, dict):
        raise DiscoveryError(f"{where}: no spec")
    sel = spec.get("selector")
    labels = sel.get("matchLabels") if isinstance(sel, dict) else None
    if not isinstance(labels, dict) or not labels:
        raise DiscoveryError(f"{where}: spec.selector.matchLabels is missing or empty")
    tps = spec.get("targetPorts")
    if not isinstance(tps, list) or not tps:
        raise DiscoveryError(f"{where}: spec.targetPorts is missing or empty")
    ports: List[int] = []
    for i, tp in enumerate(tps):
        num = tp.get("number") if isinstance(tp, dict) else None
        if isinstance(num, bool) or not isinstance(num, int) or not 0 < num < 65536:
            raise DiscoveryError(f"{where}: spec.targetPorts[{i}].number {num!r} "
                                 "is not a port number (1..65535)")
        if num in ports:
            raise DiscoveryError(f"{where}: spec.targetPorts[{i}].number {num} is repeated")
        ports.append(num)
    return {str(k): str(v) for k, v in labels.items()}, tuple(ports)


def pod_is_ready(pod: Dict[str, Any]) -> bool:
    """Ready=True, a podIP, and not terminating (API JSON of a Pod)."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    if meta.get("deletionTimestamp"):
        return False
    if not status.get("podIP"):
        return False
    for cond in status.get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def _matches(pod: Dict[str, Any], selector: Dict[str, str]) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def endpoints_of(pods: Dict[str, Dict[str, Any]], namespace: str,
                 selector: Dict[str, str], ports: Tuple[int, ...]) -> List[Endpoint]:
    """The endpoints of the Ready pods that match ``selector``, sorted by name."""
    out: List[Endpoint] = []
    for name, pod in pods.items():
        if not _matches(pod, selector) or not pod_is_ready(pod):
            continue
        meta = pod.get("metadata") or {}
        labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
        ip = pod["status"]["podIP"]
        for i, port in enumerate(ports):
            ep_name = name if len(ports) == 1 else f"{name}-rank-{i}"
            out.append(Endpoint(name=ep_name, namespace=namespace, address=ip,
                                port=port, labels=labels))
    out.sort(key=lambda e: e.name)
    return out


def _selector_string(selector: Dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


class KubernetesDiscovery:
    """Endpoints of the InferencePool ``pool`` in ``namespace``.

    ``namespace`` None: the service account's namespace in a cluster, else
    "default". ``api_url``: the API server (``http://127.0.0.1:8080`` in the
    tests); None loads the in-cluster configuration, else the kube config
    (``kubeconfig``, ``context``). ``token`` and ``ca_file`` go with
    ``api_url``; ``verify_ssl`` False turns off TLS verification.

    ``watch_timeout`` (seconds) is the server-side timeout of one watch
    request (it is then resumed from its resourceVersion), ``backoff`` and
    ``max_backoff`` the retry delays after a failed request,
    ``start_timeout`` how long start() keeps retrying an unreachable API
    server before it gives up.

    Errors that a retry cannot mend -- the pool not found, access refused,
    a pool without selector or target ports -- are raised by start() as
    DiscoveryError naming the pool; after start they are logged and retried
    (a pool that later turns invalid or is deleted yields no endpoints).
    """

    def __init__(self, pool: str, namespace: Optional[str] = None,
                 api_url: Optional[str] = None, *, token: Optional[str] = None,
                 ca_file: Optional[str] = None, verify_ssl: bool = True,
                 kubeconfig: Optional[str] = None, context: Optional[str] = None,
                 watch_timeout: int = 300, backoff: float = 0.5, max_backoff: float = 30.0,
                 start_timeout: float = 30.0) -> None:
        if not pool:
            raise DiscoveryError("KubernetesDiscovery: no InferencePool name")
        client, config, _ = _kube()
        cfg = client.Configuration()
        in_cluster = False
        if api_url:
            cfg.host = api_url.rstrip("/")
            if token:
                cfg.api_key = {"authorization": token}
                cfg.api_key_prefix = {"authorization": "Bearer"}
            if ca_file:
                cfg.ssl_ca_cert = ca_file
            cfg.verify_ssl = bool(verify_ssl)
        else:
            try:
                config.load_incluster_config(client_configuration=cfg)
                in_cluster = True
            except config.ConfigException as e_in:
                try:
                    config.load_kube_config(config_file=kubeconfig, context=context,
                                            client_configuration=cfg)
                except Exception as e_kc:
                    raise DiscoveryError(
                        "KubernetesDiscovery: no API server: not in a cluster "
                        f"({e_in}) and no usable kube config ({e_kc}); give api_url") from None
        if namespace is None:
            namespace = "default"
            if in_cluster:
                try:
                    with open(_SA_NAMESPACE, "r", encoding="utf-8") as f:
                        namespace = f.read().strip() or "default"
                except OSError:
                    pass
        self.pool = pool
        self.namespace = namespace
        self.where = f"InferencePool {namespace}/{pool}"
        self.watch_timeout = int(watch_timeout)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.start_timeout = float(start_timeout)
        self.errors = 0
        self.last_error: Optional[str] = None
        self.relists = 0
        self._client = client
        self._api = client.ApiClient(configuration=cfg)
        self._core = client.CoreV1Api(self._api)
        self._custom = client.CustomObjectsApi(self._api)

        self._lock = threading.Lock()          # state below
        self._cb_lock = threading.Lock()       # one callback at a time
        self._stopping = threading.Event()
        self._selector: Optional[Dict[str, str]] = None
        self._ports: Tuple[int, ...] = ()
        self._pods: Dict[str, Dict[str, Any]] = {}
        self._pods_rv: Optional[str] = None
        self._pending = False  # a new selector's pods not listed yet
        self._pool_rv: Optional[str] = None
        self._pods_resync = threading.Event()  # selector changed: relist the pods
        self._pool_changed = threading.Event()  # wakes the pod thread (pool back)
        self._watches: List[Any] = []
        self._threads: List[threading.Thread] = []
        self._callback: Optional[Callable[[List[Endpoint]], None]] = None
        self._delivered: Optional[List[Tuple[Endpoint, Tuple[Tuple[str, str], ...]]]] = None

    # -- API calls ------------------------------------------------------

    def _explain(self, e: Exception, what: str) -> str:
        status = getattr(e, "status", None)
        if status == 404 and what == self.where:
            return (f"{what}: not found (is the InferencePool CRD installed "
                    f"and the pool applied in namespace {self.namespace}?)")
        if status in (401, 403):
            return (f"{what}: access refused (HTTP {status}): the service account needs "
                    "get/list/watch on pods and inferencepools."
                    f"{POOL_GROUP} in namespace {self.namespace}")
        if status is not None:
            reason = getattr(e, "reason", "") or ""
            return f"{what}: HTTP {status} {reason}".rstrip()
        return f"{what}: {type(e).__name__}: {e}"

    def _get_pool(self) -> Dict[str, Any]:
        return self._custom.get_namespaced_custom_object(
            POOL_GROUP, POOL_VERSION, self.namespace, POOL_PLURAL, self.pool)

    def _list_pods(self, selector: Dict[str, str]) -> Tuple[Dict[str, Dict[str, Any]], str]:
        resp = self._core.list_namespaced_pod(
            self.namespace, label_selector=_selector_string(selector),
            _preload_content=False, _request_timeout=(10, 60))
        try:
            doc = json.loads(resp.data)
        finally:
            resp.release_conn()
        if not isinstance(doc, dict) or doc.get("kind", "PodList") != "PodList" \
                or not isinstance(doc.get("items") or [], list):
            raise DiscoveryError(f"pods of {self.where}: the API server's answer is not a PodList")
        pods = {}
        for item in doc.get("items") or []:
            name = (item.get("metadata") or {}).get("name")
            if name:
                pods[name] = item
        rv = (doc.get("metadata") or {}).get("resourceVersion") or ""
        return pods, rv

    def _list_pool(self) -> Tuple[Optional[Dict[str, Any]], str]:
        doc = self._custom.list_namespaced_custom_object(
            POOL_GROUP, POOL_VERSION, self.namespace, POOL_PLURAL,
            field_selector=f"metadata.name={self.pool}", _request_timeout=(10, 60))
        items = [i for i in doc.get("items") or []
                 if (i.get("metadata") or {}).get("name") == self.pool]
        rv = (doc.get("metadata") or {}).get("resourceVersion") or ""
        return (items[0] if items else None), rv

    # -- state and callback -----------------------------------------------

    def _current(self) -> List[Endpoint]:
        with self._lock:
            if self._selector is None:
                return []
            return endpoints_of(self._pods, self.namespace, self._selector, self._ports)

    @property
    def endpoints(self) -> List[Endpoint]:
        return self._current()

    def _publish(self) -> None:
        """Call back if the endpoint list changed (labels included).

        The list is computed under the callback lock, so that calls from the
        two watch threads reach the callback in the order of the changes.
        """
        with self._cb_lock:
            with self._lock:
                if self._pending:
                    return
            eps = self._current()
            stamp = [(e, tuple(sorted(e.labels.items()))) for e in eps]
            if self._stopping.is_set() or self._callback is None or stamp == self._delivered:
                return
            self._delivered = stamp
            log.info("%s: %d endpoint(s): %s", self.where, len(eps),
                     ", ".join(f"{e.name}={e.hostport}" for e in eps) or "-")
            self._callback(eps)

    def _set_pool(self, obj: Optional[Dict[str, Any]]) -> None:
        """Take a pool object (None: deleted); resync the pods on a new selector."""
        if obj is None:
            sel, ports = None, ()
        else:
            try:
                sel, ports = pool_spec(obj, self.where)
            except DiscoveryError as e:
                self._error(str(e))
                sel, ports = None, ()
        with self._lock:
            new_sel = sel != self._selector
            self._selector, self._ports = sel, ports
            if new_sel:
                self._pods = {}
                self._pods_rv = None
                # the pods of the new selector are not listed yet: keep the
                # last list out there until they are (no empty gap)
                self._pending = sel is not None
        if new_sel:
            log.info("%s: selector %s, target ports %s", self.where,
                     _selector_string(sel) if sel else "(none)", list(ports))
            self._pods_resync.set()
            self._pool_changed.set()
            self._stop_watches("pods")

    def _error(self, msg: str) -> None:
        self.errors += 1
        self.last_error = msg
        log.warning("%s", msg)

    # -- watches ----------------------------------------------------------

    def _stop_watches(self, kind: str) -> None:
        with self._lock:
            ws = [w for k, w in self._watches if k == kind]
        for w in ws:
            w.stop()

    def _stream(self, kind: str, func: Callable[..., Any], *args: Any, **kwargs: Any):
        """Events of one watch request (raw API JSON); _Relist on 410 Gone."""
        _, _, watch = _kube()
        w = watch.Watch(return_type="object")
        entry = (kind, w)
        with self._lock:
            if self._stopping.is_set():
                return
            self._watches.append(entry)
        try:
            for ev in w.stream(func, *args, timeout_seconds=self.watch_timeout,
                               allow_watch_bookmarks=True,
                               _request_timeout=(10, self.watch_timeout + 30), **kwargs):
                if self._stopping.is_set():
                    return
                yield ev
        except self._client.ApiException as e:
            if e.status == 410:
                raise _Relist() from None
            raise
        finally:
            with self._lock:
                self._watches.remove(entry)

    def _sleep(self, delay: float) -> float:
        self._stopping.wait(delay)
        return min(max(delay * 2, self.backoff), self.max_backoff)

    def _pool_loop(self) -> None:
        delay = self.backoff
        rv = self._pool_rv
        while not self._stopping.is_set():
            try:
                if not rv:
                    obj, rv = self._list_pool()
                    self._set_pool(obj)
                    self._publish()
                for ev in self._stream("pool", self._custom.list_namespaced_custom_object,
                                       POOL_GROUP, POOL_VERSION, self.namespace, POOL_PLURAL,
                                       field_selector=f"metadata.name={self.pool}",
                                       resource_version=rv):
                    obj = ev.get("raw_object") or {}
                    meta = obj.get("metadata") or {}
                    rv = meta.get("resourceVersion") or rv
                    if ev["type"] == "BOOKMARK" or meta.get("name") != self.pool:
                        continue
                    self._set_pool(None if ev["type"] == "DELETED" else obj)
                    self._publish()
                delay = self.backoff
            except _Relist:
                log.info("%s: watch expired (410 Gone), listing again", self.where)
                self.relists += 1
                rv = None
            except Exception as e:  # network, HTTP: retried
                if self._stopping.is_set():
                    break
                self._error(self._explain(e, f"watch of {self.where}"))
                delay = self._sleep(delay)

    def _pod_loop(self) -> None:
        delay = self.backoff
        while not self._stopping.is_set():
            with self._lock:
                sel, rv = self._selector, self._pods_rv
            if sel is None:  # no pool (deleted or invalid): wait for one
                self._pool_changed.wait(1.0)
                self._pool_changed.clear()
                continue
            try:
                if self._pods_resync.is_set() or not rv:
                    self._pods_resync.clear()
                    pods, rv = self._list_pods(sel)
                    with self._lock:
                        if sel != self._selector:  # changed under the list: again
                            continue
                        self._pods, self._pods_rv = pods, rv
                        self._pending = False
                    self._publish()
                for ev in self._stream("pods", self._core.list_namespaced_pod, self.namespace,
                                       label_selector=_selector_string(sel),
                                       resource_version=rv):
                    if self._pods_resync.is_set():
                        break
                    obj = ev.get("raw_object") or {}
                    meta = obj.get("metadata") or {}
                    name = meta.get("name")
                    with self._lock:
                        if meta.get("resourceVersion"):
                            self._pods_rv = meta["resourceVersion"]
                        if ev["type"] == "BOOKMARK" or not name or sel != self._selector:
                            continue
                        if ev["type"] == "DELETED":
                            self._pods.pop(name, None)
                        elif ev["type"] in ("ADDED", "MODIFIED"):
                            self._pods[name] = obj
                    self._publish()
                delay = self.backoff
            except _Relist:
                log.info("pods of %s: watch expired (410 Gone), listing again", self.where)
                self.relists += 1
                with self._lock:
                    self._pods_rv = None  # list until a list succeeds
                self._pods_resync.set()
            except Exception as e:
                if self._stopping.is_set():
                    break
                if self._pods_resync.is_set():  # interrupted for the new selector
                    continue
                self._error(self._explain(e, f"pods of {self.where}"))
                delay = self._sleep(delay)

    # -- interface ----------------------------------------------------------

    def _initial(self) -> None:
        """The pool and its pods, retried while the API server is unreachable."""
        delay = self.backoff
        waited = 0.0
        while True:
            what = self.where
            try:
                pool = self._get_pool()
                pool_spec(pool, self.where)  # raises on a bad pool
                self._set_pool(pool)
                self._pool_rv = (pool.get("metadata") or {}).get("resourceVersion")
                with self._lock:
                    sel = self._selector
                what = f"pods of {self.where}"
                pods, rv = self._list_pods(sel)
                with self._lock:
                    self._pods, self._pods_rv = pods, rv
                    self._pending = False
                    self._pods_resync.clear()
                return
            except DiscoveryError:
                raise
            except self._client.ApiException as e:
                if e.status in (400, 401, 403, 404, 422):
                    raise DiscoveryError(self._explain(e, what)) from None
                err = e
            except Exception as e:
                err = e
            if waited >= self.start_timeout or self._stopping.is_set():
                raise DiscoveryError(self._explain(err, what) +
                                     f" (gave up after {waited:.0f} s)") from None
            self._error(self._explain(err, what))
            self._stopping.wait(delay)
            waited += delay
            delay = min(delay * 2, self.max_backoff)

    def start(self, callback: Callable[[List[Endpoint]], None]) -> None:
        """Read the pool and its pods, call back with the list, then watch both."""
        if self._threads:
            raise RuntimeError("KubernetesDiscovery already started")
        self._initial()
        self._callback = callback
        self._publish()
        for name, target in (("pool", self._pool_loop), ("pods", self._pod_loop)):
            t = threading.Thread(target=target, name=f"dlsched-epp-k8s-{name}", daemon=True)
            self._threads.append(t)
            t.start()

    def stop(self, timeout: float = 5.0) -> None:
        """No callback after this returns; the watch threads end."""
        with self._cb_lock:
            self._stopping.set()
        self._pool_changed.set()
        waited = 0.0
        for t in self._threads:
            while t.is_alive() and waited < timeout:
                self._stop_watches("pods")
                self._stop_watches("pool")
                t.join(0.05)
                waited += 0.05
        if any(t.is_alive() for t in self._threads):
            log.warning("%s: a watch thread is still waiting on the API server", self.where)
        self._threads = []
        self._api.close()
