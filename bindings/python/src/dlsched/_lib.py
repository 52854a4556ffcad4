"""Finding, loading and checking the shared library; the C structs.

Nothing here is public API except through the names ``dlsched`` re-exports.
The library is loaded at first use, not at import, so that ``import dlsched``
and ``python -m dlsched doctor`` work (and explain) when it is missing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from ctypes import (POINTER, Structure, c_char, c_char_p, c_double, c_float, c_int,
                    c_int32, c_size_t, c_uint, c_uint8, c_uint32, c_uint64, c_void_p)
from typing import List, Optional, Tuple

#: The library version this package needs at least: 1.1 accepts
#: terminated and truncated together (Gymnasium 1.x).
REQUIRED_MAJOR = 1
REQUIRED_MINOR = 1

SONAME = "libdlsched.so.1"

OK, EINVAL, ENOMEM, ECONFIG, ETICKET, ENOACTION, EIO, EFORMAT, EMISMATCH, ENODEVICE, \
    EBACKEND = range(11)

ACT_GREEDY = 1
OBS_TERMINAL = 1
OBS_TRUNCATED = 2
DECISION_EXPLORED = 1
DECISION_HINT = 2
DECISION_INCUMBENT = 4


class dlsched_state_t(Structure):
    _fields_ = [("features", POINTER(c_float)),
                ("n_features", c_uint32),
                ("n_mask", c_uint32),
                ("mask", POINTER(c_uint8)),
                ("hint", c_int32),
                ("reserved", c_uint32)]


class dlsched_decision_t(Structure):
    _fields_ = [("ticket", c_uint64),
                ("model_version", c_uint64),
                ("action", c_int32),
                ("flags", c_uint32),
                ("value", c_float),
                ("probability", c_float)]


class dlsched_stats_t(Structure):
    _fields_ = [("size", c_uint32),
                ("backend", c_uint32),
                ("decisions", c_uint64),
                ("explored", c_uint64),
                ("hinted", c_uint64),
                ("tickets_issued", c_uint64),
                ("observed", c_uint64),
                ("tickets_pending", c_uint64),
                ("tickets_expired", c_uint64),
                ("transitions", c_uint64),
                ("transitions_stored", c_uint64),
                ("train_steps", c_uint64),
                ("model_version", c_uint64),
                ("memory_bytes", c_uint64),
                ("epsilon", c_double),
                ("last_loss", c_double),
                ("mean_reward", c_double),
                ("tickets_timed_out", c_uint64),
                ("apprentice_left", c_uint64),
                ("apprentice_agreement", c_double),
                ("staged", c_uint64),
                ("published_version", c_uint64),
                ("backend_reason", c_char * 256),
                ("guard_state", c_uint32),
                ("guard_reserved", c_uint32),
                ("guard_epoch", c_uint64),
                ("guard_switches", c_uint64),
                ("guard_fallbacks", c_uint64),
                ("guard_decisions", c_uint64),
                ("guard_agreed", c_uint64),
                ("guard_unsupported", c_uint64),
                ("guard_by_learned", c_uint64),
                ("guard_by_incumbent", c_uint64),
                ("guard_samples_learned", c_uint64),
                ("guard_samples_incumbent", c_uint64),
                ("guard_value_learned", c_double),
                ("guard_value_incumbent", c_double),
                ("guard_advantage", c_double),
                ("guard_advantage_low", c_double),
                ("guard_advantage_high", c_double),
                ("guard_led_incumbent", c_double),
                ("guard_led_learned", c_double),
                ("guard_regime_fallbacks", c_uint64),
                # Since 1.2: OpenBLAS's kernels and the verdict on them
                ("blas_core", c_char * 32),
                ("blas_reason", c_char * 256)]


_state_p = POINTER(dlsched_state_t)
_vpp = POINTER(c_void_p)

# name: (restype, argtypes); every symbol the package calls
_PROTOTYPES = {
    "dlsched_version": (c_uint, []),
    "dlsched_version_string": (c_char_p, []),
    "dlsched_strerror": (c_char_p, [c_int]),
    "dlsched_last_error": (c_char_p, []),
    "dlsched_config_new": (c_int, [_vpp]),
    "dlsched_config_free": (None, [c_void_p]),
    "dlsched_config_set": (c_int, [c_void_p, c_char_p, c_char_p]),
    "dlsched_config_parse": (c_int, [c_void_p, c_char_p]),
    "dlsched_config_get": (c_int, [c_void_p, c_char_p, c_char_p, c_size_t]),
    "dlsched_agent_new": (c_int, [c_void_p, _vpp]),
    "dlsched_agent_free": (None, [c_void_p]),
    "dlsched_act": (c_int, [c_void_p, _state_p, c_uint32, POINTER(dlsched_decision_t)]),
    "dlsched_observe": (c_int, [c_void_p, c_uint64, c_float, _state_p, c_uint32]),
    "dlsched_observe_transition": (c_int, [c_void_p, _state_p, c_int32, c_float, _state_p,
                                           c_uint32]),
    "dlsched_train": (c_int, [c_void_p, c_uint32]),
    "dlsched_q_values": (c_int, [c_void_p, _state_p, POINTER(c_float), c_uint32]),
    "dlsched_save": (c_int, [c_void_p, c_char_p]),
    "dlsched_load": (c_int, [c_char_p, c_void_p, _vpp]),
    "dlsched_save_buffer": (c_int, [c_void_p, _vpp, POINTER(c_size_t)]),
    "dlsched_buffer_free": (None, [c_void_p]),
    "dlsched_load_buffer": (c_int, [c_void_p, c_size_t, c_void_p, _vpp]),
    "dlsched_stats": (c_int, [c_void_p, POINTER(dlsched_stats_t), c_size_t]),
    "dlsched_backend_available": (c_int, [c_char_p]),
}

# Since 1.3 (symbol node DLSCHED_1.1): experience and weights between agents.
# Resolved only from a library that says it is 1.3 or later; from an older
# one, calling them raises LibraryError naming the version they need.
EXCHANGE_VERSION = (1, 3)
_PROTOTYPES_1_3 = {
    "dlsched_export_transitions": (c_int, [c_void_p, c_uint32, _vpp, POINTER(c_size_t),
                                           POINTER(c_uint32), POINTER(c_uint64)]),
    "dlsched_ingest_transitions": (c_int, [c_void_p, c_void_p, c_size_t, c_uint64,
                                           POINTER(c_uint32), POINTER(c_uint32)]),
    "dlsched_export_weights": (c_int, [c_void_p, _vpp, POINTER(c_size_t), POINTER(c_uint64)]),
    "dlsched_import_weights": (c_int, [c_void_p, c_void_p, c_size_t, POINTER(c_uint64)]),
}

# Since 1.4 (symbol node DLSCHED_1.1): a decision of a named unit (the
# guard's guard_unit=key). Optional: bound when the library has it, whatever
# version it says (a library may carry it before its version number moves);
# without it the package still loads and only Agent.act(unit=...) raises
# LibraryError (missing_unit_error). A library that says 1.4 must have it.
UNIT_VERSION = (1, 4)
_PROTOTYPES_1_4 = {
    "dlsched_act_unit": (c_int, [c_void_p, _state_p, c_uint64, c_uint32,
                                 POINTER(dlsched_decision_t)]),
}


class LibraryError(ImportError):
    """The shared library could not be found, loaded or accepted.

    The message names every place tried (or the file loaded) and what was
    wrong with it: not found, a missing symbol, or an unsupported version.
    """


class _Loaded:
    __slots__ = ("lib", "path", "version")

    def __init__(self, lib: ctypes.CDLL, path: str, version: int) -> None:
        self.lib = lib
        self.path = path
        self.version = version


_lock = threading.Lock()
_loaded: Optional[_Loaded] = None


class _DlInfo(Structure):
    _fields_ = [("dli_fname", c_char_p), ("dli_fbase", c_void_p),
                ("dli_sname", c_char_p), ("dli_saddr", c_void_p)]


def _path_of(lib: ctypes.CDLL, fallback: str) -> str:
    """The file the dynamic loader actually mapped for lib (dladdr on a symbol)."""
    try:
        libc = ctypes.CDLL(None)
        dladdr = libc.dladdr
        dladdr.argtypes = [c_void_p, POINTER(_DlInfo)]
        dladdr.restype = c_int
        info = _DlInfo()
        addr = ctypes.cast(lib.dlsched_version, c_void_p).value
        if dladdr(addr, ctypes.byref(info)) and info.dli_fname:
            return os.path.realpath(os.fsdecode(info.dli_fname))
    except (AttributeError, OSError):
        pass
    return fallback


def _candidates() -> List[Tuple[str, str]]:
    """(what to hand dlopen, how it was found), in the documented order."""
    env = os.environ.get("DLSCHED_LIBRARY")
    if env:
        return [(env, "DLSCHED_LIBRARY")]
    out = [(SONAME, "the loader's search (ldconfig, LD_LIBRARY_PATH, rpath)")]
    found = ctypes.util.find_library("dlsched")
    # the unversioned development link could point at another major version
    if found and found != SONAME and not found.endswith(".so"):
        out.append((found, "ctypes.util.find_library"))
    return out


def _bind(lib: ctypes.CDLL, prototypes: dict) -> list:
    """Set restype/argtypes of every function in prototypes; the names the
    library lacks (then nothing is bound)."""
    missing = [name for name in prototypes if not hasattr(lib, name)]
    if not missing:
        for name, (restype, argtypes) in prototypes.items():
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
    return missing


def _check(lib: ctypes.CDLL, path: str) -> int:
    missing = _bind(lib, _PROTOTYPES)
    if missing:
        raise LibraryError(f"{path} is not a usable libdlsched: it lacks "
                           f"{', '.join(missing)}")
    version = int(lib.dlsched_version())
    major, minor = version // 10000, version // 100 % 100
    if major != REQUIRED_MAJOR or minor < REQUIRED_MINOR:
        raise LibraryError(
            f"{path} is libdlsched {major}.{minor}.{version % 100}; this package needs "
            f"{REQUIRED_MAJOR}.x with x >= {REQUIRED_MINOR} (set DLSCHED_LIBRARY to the "
            f"full path of a libdlsched.so.{REQUIRED_MAJOR})")
    if (major, minor) >= EXCHANGE_VERSION:
        # a library that says 1.3 must have what 1.3 exports
        missing = _bind(lib, _PROTOTYPES_1_3)
        if missing:
            raise LibraryError(f"{path} says it is libdlsched {major}.{minor}.{version % 100} "
                               f"but lacks {', '.join(missing)} (Since 1.3)")
    missing = _bind(lib, _PROTOTYPES_1_4)
    if missing and (major, minor) >= UNIT_VERSION:
        # likewise for 1.4; an older library simply lacks them
        raise LibraryError(f"{path} says it is libdlsched {major}.{minor}.{version % 100} "
                           f"but lacks {', '.join(missing)} (Since 1.4)")
    return version


def load() -> _Loaded:
    """Load (once per process) and check the library; raise LibraryError."""
    global _loaded
    if _loaded is not None:
        return _loaded
    with _lock:
        if _loaded is not None:
            return _loaded
        tried = []
        for name, how in _candidates():
            if how == "DLSCHED_LIBRARY" and not os.path.isabs(name):
                raise LibraryError(f"DLSCHED_LIBRARY={name!r} is not a full path; set it to "
                                   f"the absolute path of {SONAME}")
            try:
                lib = ctypes.CDLL(name)
            except OSError as e:
                tried.append(f"{name} (from {how}): {e}")
                continue
            path = _path_of(lib, name)
            version = _check(lib, path)
            _loaded = _Loaded(lib, path, version)
            return _loaded
        raise LibraryError(
            "libdlsched not found; tried " + "; ".join(tried) +
            f". Install it (make install, then ldconfig), add its directory to "
            f"LD_LIBRARY_PATH, or set DLSCHED_LIBRARY to the full path of {SONAME}")


def lib() -> ctypes.CDLL:
    return load().lib


def since(name: str, needed: Tuple[int, int] = EXCHANGE_VERSION) -> "ctypes._CFuncPtr":
    """The library's function name, which needs version needed or later;
    LibraryError naming both versions when the loaded library is older."""
    loaded = load()
    v = loaded.version
    if (v // 10000, v // 100 % 100) < needed:
        raise LibraryError(
            f"{name} needs libdlsched {needed[0]}.{needed[1]} or later; {loaded.path} is "
            f"{v // 10000}.{v // 100 % 100}.{v % 100} (set DLSCHED_LIBRARY to the full path "
            f"of a newer {SONAME})")
    return getattr(loaded.lib, name)


def missing_unit_error() -> LibraryError:
    """The error of Agent.act(unit=...) on a library without dlsched_act_unit."""
    loaded = load()
    v = loaded.version
    return LibraryError(
        f"dlsched_act_unit needs libdlsched {UNIT_VERSION[0]}.{UNIT_VERSION[1]} or later; "
        f"{loaded.path} is {v // 10000}.{v // 100 % 100}.{v % 100} and lacks it "
        f"(Agent.act(unit=...) calls it; set DLSCHED_LIBRARY to the full path of a newer "
        f"{SONAME}, or call act without unit)")
