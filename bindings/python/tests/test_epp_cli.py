"""dlsched-epp's command line: errors name the culprit, the default agent
spec, a checkpoint resumed at start."""
from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("grpc")
pytest.importorskip("yaml")
pytest.importorskip("prometheus_client")

from conftest import LIBRARY, child_env  # noqa: E402


def epp(*args, timeout=30):
    return subprocess.run([sys.executable, "-m", "dlsched.epp", *args], capture_output=True, text=True,
                          env=child_env({"DLSCHED_LIBRARY": LIBRARY} if LIBRARY else {}),
                          timeout=timeout)


def test_needs_a_source():
    r = epp()
    assert r.returncode == 2 and "--endpoints" in r.stderr and "--pool" in r.stderr


def test_bad_log_level_is_a_usage_error():
    r = epp("--endpoints", "x.yaml", "--log-level", "loud")
    assert r.returncode == 2 and "--log-level" in r.stderr and "Traceback" not in r.stderr


def test_bad_endpoints_file_named(tmp_path):
    p = tmp_path / "eps.yaml"
    p.write_text("endpoints:\n- {name: a, address: 10.0.0.1}\n")
    r = epp("--endpoints", str(p), "--policy", "gateway")
    assert r.returncode == 2 and f"{p}: endpoints[0]: missing 'port'" in r.stderr


def test_print_config():
    r = epp("--print-config", "--max-endpoints", "8")
    assert r.returncode == 0
    assert "algo=dqn" in r.stdout and "n_features=64" in r.stdout and "n_actions=8" in r.stdout


@pytest.mark.skipif(not LIBRARY, reason="libdlsched not found")
def test_bad_config_and_checkpoint_named(tmp_path):
    p = tmp_path / "eps.yaml"
    p.write_text("endpoints: []\n")
    r = epp("--endpoints", str(p), "--config", "algo=dqn n_features=128 n_actions=16 lr=-1")
    assert r.returncode == 2 and "lr" in r.stderr
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    r = epp("--endpoints", str(p), "--checkpoint", str(bad))
    assert r.returncode == 2 and f"checkpoint {bad}: FormatError" in r.stderr


@pytest.mark.skipif(not LIBRARY, reason="libdlsched not found")
def test_checkpoint_resumed(tmp_path):
    import dlsched
    from dlsched.epp.picker import default_agent_spec
    ck = tmp_path / "a.ckpt"
    with dlsched.Agent(default_agent_spec(16)) as a:
        a.save(str(ck))
    p = tmp_path / "eps.yaml"
    p.write_text("endpoints: []\n")
    proc = subprocess.Popen([sys.executable, "-m", "dlsched.epp", "--endpoints", str(p), "--checkpoint",
                             str(ck), "--grpc-port", "0", "--health-port", "0", "--metrics-port", "0"],
                            stderr=subprocess.PIPE, text=True, env=child_env({"DLSCHED_LIBRARY": LIBRARY}))
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "serving ext_proc" in line:
            break
    proc.terminate()
    rest = proc.communicate(timeout=20)[1]
    assert proc.returncode == 0, rest
    assert "serving ext_proc" in lines[-1]
    assert any(f"resumed from checkpoint {ck}" in x for x in lines), lines


@pytest.mark.skipif(not LIBRARY, reason="libdlsched not found")
def test_checkpoint_saved_periodically(tmp_path):
    """--checkpoint-interval-s: the agent is saved while serving, not only at
    SIGTERM; each save is a checkpoint the library loads (same shape)."""
    import os
    import time
    import dlsched
    ck = tmp_path / "periodic.ckpt"
    p = tmp_path / "eps.yaml"
    p.write_text("endpoints: []\n")
    proc = subprocess.Popen([sys.executable, "-m", "dlsched.epp", "--endpoints", str(p), "--checkpoint",
                             str(ck), "--checkpoint-interval-s", "0.3", "--max-endpoints", "8",
                             "--grpc-port", "0", "--health-port", "0", "--metrics-port", "0"],
                            stderr=subprocess.PIPE, text=True, env=child_env({"DLSCHED_LIBRARY": LIBRARY}))
    try:
        for line in proc.stderr:
            if "serving ext_proc" in line:
                break
        end = time.monotonic() + 15
        while not ck.exists():
            assert time.monotonic() < end, "no periodic checkpoint within 15 s"
            time.sleep(0.05)
        first = os.stat(ck).st_mtime_ns
        while os.stat(ck).st_mtime_ns == first:  # a second save, while still serving
            assert time.monotonic() < end, "one periodic checkpoint only"
            time.sleep(0.05)
        assert proc.poll() is None
        with dlsched.Agent.load(str(ck)) as a:
            assert a.n_actions == 8
    finally:
        proc.terminate()
        rest = proc.communicate(timeout=20)[1]
    assert proc.returncode == 0, rest


def test_pool_unreachable_exits_2_naming_it(tmp_path):
    """--pool with an API server that does not answer: exit status 2 and a
    message naming the pool (not a traceback)."""
    pytest.importorskip("kubernetes")
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    kc = tmp_path / "kubeconfig"
    kc.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "http://127.0.0.1:{port}"}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u, namespace: llm}}}}]
current-context: x
""")
    r = subprocess.run([sys.executable, "-m", "dlsched.epp", "--pool", "mypool", "--namespace", "llm",
                        "--policy", "gateway", "--grpc-port", "0", "--health-port", "0",
                        "--metrics-port", "0", "--discovery-timeout-s", "1"],
                       capture_output=True, text=True, timeout=120,
                       env=child_env({"KUBECONFIG": str(kc),
                                      **({"DLSCHED_LIBRARY": LIBRARY} if LIBRARY else {})}))
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "mypool" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
