"""Finding, loading and checking the shared library.

The library is loaded once per process, so every case that needs another
library (or none) runs in a fresh interpreter. The fake libraries are built
here with the C compiler: they export every symbol the package checks, with
a dlsched_version() of our choosing.
"""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dlsched
from dlsched import _lib

from conftest import LIBRARY, REPO, child_env, header_version, run_python

# print the message of the LibraryError the first real use raises, or what loaded
PROBE = """
import sys
import dlsched
try:
    dlsched.backend_available("cpu")
except dlsched.LibraryError as e:
    assert isinstance(e, ImportError)
    print(e)
    sys.exit(3)
print(dlsched.library_path)
print(dlsched.library_version())
"""


def real(path) -> str:
    return os.path.realpath(str(path))


def build_fake(cc: str, tmp_path: Path, version: int, omit: tuple = (),
               name: str = "libfake.so.1", extra: tuple = ()) -> Path:
    """A shared library exporting each symbol of _lib._PROTOTYPES (less omit)
    and of extra; dlsched_version() returns ``version``, every other
    function 0."""
    lines = []
    for sym in [*_lib._PROTOTYPES, *extra]:
        if sym in omit:
            continue
        if sym == "dlsched_version":
            lines.append(f"unsigned dlsched_version(void) {{ return {version}u; }}")
        elif sym == "dlsched_version_string":
            v = f"{version // 10000}.{version // 100 % 100}.{version % 100}"
            lines.append(f'const char *dlsched_version_string(void) {{ return "{v}"; }}')
        else:
            lines.append(f"int {sym}(void) {{ return 0; }}")
    src = tmp_path / f"{name}.c"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / name
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(out), str(src)], check=True,
                   capture_output=True)
    return out


# ---- the library this session uses ---------------------------------------------

def test_library_path_is_the_file_loaded():
    assert LIBRARY, "DLSCHED_LIBRARY is not set and the repository has no lib/"
    path = dlsched.library_path
    assert path == real(LIBRARY)
    assert os.path.isfile(path) and not os.path.islink(path)


def test_library_version_is_the_headers():
    assert dlsched.library_version() == header_version()
    major, minor, patch = (int(x) for x in header_version().split("."))
    assert _lib.load().version == major * 10000 + minor * 100 + patch


def test_dlsched_library_full_path_in_a_fresh_process():
    r = run_python(PROBE, set_={"DLSCHED_LIBRARY": LIBRARY})
    assert r.returncode == 0, r.stderr + r.stdout
    assert r.stdout.split("\n")[:2] == [real(LIBRARY), header_version()]


def test_soname_through_ld_library_path():
    lib_dir = Path(LIBRARY).parent
    if not (lib_dir / _lib.SONAME).exists():
        pytest.skip(f"{lib_dir} has no {_lib.SONAME}")
    r = run_python(PROBE, set_={"LD_LIBRARY_PATH": str(lib_dir)}, unset=["DLSCHED_LIBRARY"])
    assert r.returncode == 0, r.stderr + r.stdout
    assert r.stdout.split("\n")[:2] == [real(lib_dir / _lib.SONAME), header_version()]


def test_import_does_not_load_and_missing_library_names_its_path():
    missing = "/nonexistent/libdlsched.so.1"
    code = ("import dlsched, dlsched._lib as L\n"
            "assert L._loaded is None\n" + PROBE)
    r = run_python(code, set_={"DLSCHED_LIBRARY": missing})
    assert r.returncode == 3, r.stderr + r.stdout
    assert missing in r.stdout
    assert "DLSCHED_LIBRARY" in r.stdout


def _system_has_library() -> bool:
    if Path("/usr/local/lib", _lib.SONAME).exists():
        return True
    code = ("import ctypes, ctypes.util, sys\n"
            "try:\n    ctypes.CDLL('libdlsched.so.1'); sys.exit(0)\n"
            "except OSError:\n    pass\n"
            "sys.exit(0 if ctypes.util.find_library('dlsched') else 1)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       env=child_env({"LD_LIBRARY_PATH": ""}, ["DLSCHED_LIBRARY"]))
    return r.returncode == 0


def test_not_found_anywhere_says_how_to_fix():
    if _system_has_library():
        pytest.skip("libdlsched is installed system-wide: the loader would find it")
    r = run_python(PROBE, set_={"LD_LIBRARY_PATH": ""}, unset=["DLSCHED_LIBRARY"])
    assert r.returncode == 3, r.stderr + r.stdout
    msg = r.stdout
    assert "not found" in msg
    assert _lib.SONAME in msg
    # how to fix: each of the three remedies, after what was tried
    tried, _, fix = msg.rpartition(". ")
    assert tried and "DLSCHED_LIBRARY" in fix and "LD_LIBRARY_PATH" in fix
    assert "install" in fix and _lib.SONAME in fix
    assert r.stderr == ""


def test_relative_dlsched_library_is_rejected():
    rel = os.path.relpath(real(LIBRARY), REPO)
    assert (REPO / rel).exists()  # it would load: the rejection is for being relative
    r = run_python(PROBE, set_={"DLSCHED_LIBRARY": rel}, cwd=REPO)
    assert r.returncode == 3, r.stderr + r.stdout
    assert repr(rel) in r.stdout and "not a full path" in r.stdout


# ---- fake libraries: versions and symbols -------------------------------------

@pytest.mark.parametrize("version,text", [(20000, "2.0.0"), (10000, "1.0.0"),
                                          (10099, "1.0.99")])
def test_unsupported_version_is_refused(cc, tmp_path, version, text):
    fake = build_fake(cc, tmp_path, version)
    r = run_python(PROBE, set_={"DLSCHED_LIBRARY": str(fake)})
    assert r.returncode == 3, r.stderr + r.stdout
    assert real(fake) in r.stdout
    assert f"libdlsched {text}" in r.stdout


def test_newer_minor_version_is_accepted(cc, tmp_path):
    fake = build_fake(cc, tmp_path, 10205)
    r = run_python(PROBE, set_={"DLSCHED_LIBRARY": str(fake)})
    assert r.returncode == 0, r.stderr + r.stdout
    assert r.stdout.split("\n")[:2] == [real(fake), "1.2.5"]


@pytest.mark.parametrize("omit", [("dlsched_observe_transition",),
                                  ("dlsched_stats", "dlsched_backend_available")])
def test_missing_symbol_is_named(cc, tmp_path, omit):
    fake = build_fake(cc, tmp_path, 10100, omit=omit)
    # the fake really lacks them, and has the others
    lib = ctypes.CDLL(str(fake))
    assert not any(hasattr(lib, s) for s in omit) and hasattr(lib, "dlsched_act")
    r = run_python(PROBE, set_={"DLSCHED_LIBRARY": str(fake)})
    assert r.returncode == 3, r.stderr + r.stdout
    assert real(fake) in r.stdout
    for sym in omit:
        assert sym in r.stdout
    named = [s for s in _lib._PROTOTYPES if s in r.stdout.replace(",", " ").split()]
    assert sorted(named) == sorted(omit)


# ---- python -m dlsched doctor --------------------------------------------------

@pytest.mark.parametrize("argv", [["doctor"], []])
def test_doctor_reports_the_library(argv):
    r = subprocess.run([sys.executable, "-m", "dlsched", *argv], capture_output=True, text=True,
                       env=child_env({"DLSCHED_LIBRARY": LIBRARY}), timeout=120)
    assert r.returncode == 0, r.stderr + r.stdout
    assert f"library: {real(LIBRARY)}\n" in r.stdout
    assert f"library version: {header_version()} " in r.stdout
    assert "backend cpu: available" in r.stdout
    assert "smoke test" in r.stdout and "ok" in r.stdout
    assert "\nBLAS: OpenBLAS core " in r.stdout


def test_doctor_reports_generic_kernels():
    # OPENBLAS_CORETYPE=Prescott: the generic kernels; on a CPU with AVX2 and
    # FMA the dqn agent runs libdlsched's own kernels and the doctor says so
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    r = subprocess.run([sys.executable, "-m", "dlsched", "doctor"], capture_output=True, text=True,
                       env=child_env({"DLSCHED_LIBRARY": LIBRARY, "OPENBLAS_CORETYPE": "Prescott"}),
                       timeout=120)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "BLAS: OpenBLAS core Prescott; " in r.stdout
    if "avx2" in flags and "fma" in flags:
        isa = "AVX-512" if "avx512f" in flags else "AVX2"
        assert f"this agent runs libdlsched's own {isa} kernels (self-test passed)" in r.stdout


def test_doctor_fails_with_a_missing_library():
    r = subprocess.run([sys.executable, "-m", "dlsched", "doctor"], capture_output=True,
                       text=True, timeout=120,
                       env=child_env({"DLSCHED_LIBRARY": "/nonexistent/libdlsched.so.1"}))
    assert r.returncode == 1
    assert "NOT USABLE" in r.stdout and "/nonexistent/libdlsched.so.1" in r.stdout


def test_doctor_rejects_other_commands():
    r = subprocess.run([sys.executable, "-m", "dlsched", "frobnicate"], capture_output=True,
                       text=True, env=child_env(), timeout=120)
    assert r.returncode == 2 and "usage" in r.stderr and r.stdout == ""
