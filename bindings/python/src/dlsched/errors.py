"""Exceptions: one DlschedError subclass per status code of dlsched.h.

Each carries ``code`` (the C status, an int) and ``message`` (what
``dlsched_last_error()`` said on the failing thread, naming the culprit).
Each also derives from the built-in exception a Python caller would expect,
so ``except ValueError`` catches a bad argument as usual.
"""
from __future__ import annotations

from typing import Dict, Optional, Type

from . import _lib


class DlschedError(Exception):
    """A libdlsched call failed. ``code`` is the C status, ``message`` the detail."""

    code: Optional[int] = None

    def __init__(self, message: str, code: Optional[int] = None, function: str = "") -> None:
        if code is not None:
            self.code = code
        self.message = message
        self.function = function
        prefix = f"{function}: " if function else ""
        super().__init__(f"{prefix}{message}")


class InvalidArgumentError(DlschedError, ValueError):
    """DLSCHED_EINVAL: a bad argument (wrong size, NaN, bad mask, bad flag)."""
    code = _lib.EINVAL


class OutOfMemoryError(DlschedError, MemoryError):
    """DLSCHED_ENOMEM: an allocation failed."""
    code = _lib.ENOMEM


class ConfigError(DlschedError, ValueError):
    """DLSCHED_ECONFIG: unknown key, bad value, missing or contradictory config."""
    code = _lib.ECONFIG


class TicketError(DlschedError, LookupError):
    """DLSCHED_ETICKET: unknown, expired or already-observed ticket."""
    code = _lib.ETICKET


class NoActionError(DlschedError, ValueError):
    """DLSCHED_ENOACTION: the mask allows no action."""
    code = _lib.ENOACTION


class IOFailedError(DlschedError, OSError):
    """DLSCHED_EIO: the file system refused (the message names path and step)."""
    code = _lib.EIO

    def __init__(self, message: str, code: Optional[int] = None, function: str = "") -> None:
        DlschedError.__init__(self, message, code, function)


class FormatError(DlschedError, ValueError):
    """DLSCHED_EFORMAT: malformed, truncated or foreign checkpoint."""
    code = _lib.EFORMAT


class MismatchError(DlschedError, ValueError):
    """DLSCHED_EMISMATCH: checkpoint and overrides disagree on a shape."""
    code = _lib.EMISMATCH


class NoDeviceError(DlschedError, RuntimeError):
    """DLSCHED_ENODEVICE: the requested device is not usable."""
    code = _lib.ENODEVICE


class BackendError(DlschedError, RuntimeError):
    """DLSCHED_EBACKEND: the compute backend failed."""
    code = _lib.EBACKEND


class ClosedError(DlschedError, ValueError):
    """The agent was closed; no C call was made (``code`` is None)."""


class UnknownStatusError(DlschedError):
    """A status code this package does not know (a newer library)."""


ERRORS: Dict[int, Type[DlschedError]] = {
    cls.code: cls for cls in (InvalidArgumentError, OutOfMemoryError, ConfigError, TicketError,
                              NoActionError, IOFailedError, FormatError, MismatchError,
                              NoDeviceError, BackendError)  # type: ignore[misc]
}


def raise_for(code: int, function: str) -> None:
    """Raise the exception of a non-zero status, with this thread's last error."""
    lib = _lib.lib()
    message = (lib.dlsched_last_error() or b"").decode("utf-8", "replace")
    if not message:
        message = (lib.dlsched_strerror(code) or b"").decode("utf-8", "replace")
    cls = ERRORS.get(code)
    if cls is None:
        raise UnknownStatusError(message, code, function)
    raise cls(message, code, function)
