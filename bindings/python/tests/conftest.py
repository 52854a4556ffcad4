"""Shared set-up for the dlsched Python tests.

The tests run against the library named by DLSCHED_LIBRARY (a full path),
else the one the dynamic loader finds by SONAME, else the repository's own
build, lib/libdlsched.so.1; they import the package from
bindings/python/src when it is not installed.
Tests that need a fresh process (the library is loaded once per process)
use ``run_python``.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterable, Optional

import pytest

TESTS = Path(__file__).resolve().parent
PKG_SRC = TESTS.parent / "src"
REPO = TESTS.parents[2]
HEADER = REPO / "include" / "dlsched.h"
REPO_LIB_DIR = REPO / "lib"

try:  # an installed package wins; else the source tree
    import dlsched  # noqa: F401
except ImportError:
    sys.path.insert(0, str(PKG_SRC))
    import dlsched  # noqa: F401
# child processes import the very package this process tests
PKG_ROOT = Path(dlsched.__file__).resolve().parent.parent


def _library() -> str:
    """The library under test: DLSCHED_LIBRARY, else what the loader finds
    by SONAME (make check-python sets LD_LIBRARY_PATH), else the tree's."""
    if os.environ.get("DLSCHED_LIBRARY"):
        return os.environ["DLSCHED_LIBRARY"]
    try:
        return dlsched.library_path
    except dlsched.LibraryError:
        pass
    if (REPO_LIB_DIR / "libdlsched.so.1").exists():
        os.environ["DLSCHED_LIBRARY"] = str(REPO_LIB_DIR / "libdlsched.so.1")
        return os.environ["DLSCHED_LIBRARY"]
    return ""


LIBRARY = _library()

# the spec of the small tabular agent whose Bellman updates the tests compute
# by hand: one feature in [0, 2) cut into two bins (x < 1: state 0, else 1)
QSPEC = "algo=qtable n_features=1 n_actions=2 bins=2 feature_low=0 feature_high=2 lr=0.5 gamma=0.9"
S0, S1 = [0.5], [1.5]
LR, GAMMA = 0.5, 0.9


def header_version() -> str:
    """MAJOR.MINOR.PATCH as include/dlsched.h defines it."""
    text = HEADER.read_text()
    parts = []
    for what in ("MAJOR", "MINOR", "PATCH"):
        m = re.search(rf"^#define\s+DLSCHED_VERSION_{what}\s+(\d+)\s*$", text, re.M)
        assert m, f"DLSCHED_VERSION_{what} not found in {HEADER}"
        parts.append(m.group(1))
    return ".".join(parts)


def child_env(set_: Optional[Dict[str, str]] = None, unset: Iterable[str] = ()) -> Dict[str, str]:
    """The environment for a child Python: this one, the package importable,
    plus ``set_`` and minus ``unset``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PKG_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("PYTHONSTARTUP", None)
    for k in unset:
        env.pop(k, None)
    env.update(set_ or {})
    return env


def run_python(code: str, set_: Optional[Dict[str, str]] = None, unset: Iterable[str] = (),
               args: Iterable[str] = (), cwd: Optional[Path] = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``python -c code`` in a fresh interpreter; capture text output."""
    return subprocess.run([sys.executable, "-c", code, *args], env=child_env(set_, unset),
                          cwd=str(cwd or REPO), capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="session")
def cc() -> str:
    """A C compiler able to build a shared library, or skip."""
    for name in (os.environ.get("CC", ""), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)  # type: ignore[return-value]
    pytest.skip("no C compiler to build the fake libraries with")


@pytest.fixture
def qagent():
    """The hand-computable tabular agent (see QSPEC); closed afterwards."""
    import dlsched
    with dlsched.Agent(QSPEC) as agent:
        yield agent
