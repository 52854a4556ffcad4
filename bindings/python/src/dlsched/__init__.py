"""libdlsched for Python: learned scheduling decisions over the C library.

    import dlsched
    with dlsched.Agent("algo=qtable n_features=2 n_actions=3 bins=4") as agent:
        d = agent.act([0.2, 0.7])
        agent.observe(d.ticket, reward=1.0, terminated=True)

The shared library is found at first use: the full path in DLSCHED_LIBRARY,
else ``libdlsched.so.1`` through the dynamic loader (ldconfig,
LD_LIBRARY_PATH, rpath), else ``ctypes.util.find_library("dlsched")``.
``python -m dlsched doctor`` reports what was found.
"""
from __future__ import annotations

from typing import Any

from . import _lib
from ._agent import Agent, Decision, Stats
from ._lib import LibraryError
from .errors import (BackendError, ClosedError, ConfigError, DlschedError, FormatError,
                     InvalidArgumentError, IOFailedError, MismatchError, NoActionError,
                     NoDeviceError, OutOfMemoryError, TicketError, UnknownStatusError)

__version__ = "1.4.0"

__all__ = ["Agent", "Decision", "Stats", "DlschedError", "InvalidArgumentError",
           "OutOfMemoryError", "ConfigError", "TicketError", "NoActionError", "IOFailedError",
           "FormatError", "MismatchError", "NoDeviceError", "BackendError", "ClosedError",
           "UnknownStatusError", "LibraryError", "library_version", "library_path",
           "backend_available", "strerror"]


def library_version() -> str:
    """The loaded library's version, "MAJOR.MINOR.PATCH" (loads it if needed)."""
    return _lib.lib().dlsched_version_string().decode()


def backend_available(device: str) -> bool:
    """dlsched_backend_available(3): can this build learn on "cpu" / "cuda"?"""
    return bool(_lib.lib().dlsched_backend_available(device.encode()))


def strerror(code: int) -> str:
    """dlsched_strerror(3): the static description of a status code."""
    return _lib.lib().dlsched_strerror(int(code)).decode()


def __getattr__(name: str) -> Any:
    if name == "library_path":  # the file actually loaded (loads it if needed)
        return _lib.load().path
    raise AttributeError(f"module 'dlsched' has no attribute {name!r}")
