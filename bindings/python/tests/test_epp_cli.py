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
