"""The Agent: one libdlsched agent behind a Python object."""
from __future__ import annotations

import ctypes
import operator
import os
import struct
import threading
import weakref
from ctypes import (addressof, byref, c_char, c_char_p, c_float, c_size_t, c_uint8, c_uint32,
                    c_uint64, c_void_p)
from typing import (Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple,
                    Union)

from . import _lib
from .errors import ClosedError, InvalidArgumentError, raise_for

try:  # numpy is optional: without it lists and tuples still work
    import numpy as _np
except ImportError:  # pragma: no cover - exercised by the no-numpy test
    _np = None

PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
Config = Union[None, str, Mapping[str, Any]]

Blob = Union[bytes, bytearray, memoryview, Any]  # Any: a numpy array, another buffer

__all__ = ["Agent", "Decision", "Stats", "Blob"]


class Decision(NamedTuple):
    """What :meth:`Agent.act` decided.

    ``ticket`` is 0 for greedy decisions (nothing to observe).
    """
    action: int
    ticket: int
    explored: bool  #: chosen by exploration, not greedily
    hinted: bool  #: the host's hint returned as such (apprenticeship)
    value: float  #: the agent's estimate Q(s, action)
    probability: float  #: the behaviour policy's chance of this action
    model_version: int  #: learning updates behind the weights that decided
    incumbent: bool = False  #: the guard returned the hint (the incumbent decided)


_STAT_FIELDS = [name for name, _ in _lib.dlsched_stats_t._fields_
                if name not in ("size", "guard_reserved")]


class Stats:
    """A consistent snapshot of an agent's counters and gauges (dlsched_stats(3)).

    Attributes are the fields of ``dlsched_stats_t`` (``backend`` as "cpu" or
    "cuda", ``backend_reason``, ``blas_core`` and ``blas_reason`` as str);
    :meth:`as_dict` gives them all.
    """
    __slots__ = tuple(_STAT_FIELDS)

    def __init__(self, raw: _lib.dlsched_stats_t) -> None:
        for name in _STAT_FIELDS:
            setattr(self, name, getattr(raw, name))
        self.backend = "cuda" if raw.backend == 1 else "cpu"
        self.backend_reason = raw.backend_reason.decode("utf-8", "replace")
        self.blas_core = raw.blas_core.decode("utf-8", "replace")
        self.blas_reason = raw.blas_reason.decode("utf-8", "replace")

    def as_dict(self) -> Dict[str, Any]:
        return {name: getattr(self, name) for name in _STAT_FIELDS}

    def __repr__(self) -> str:
        return "Stats(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in _STAT_FIELDS) + ")"


def _text(value: Any, key: str) -> Optional[bytes]:
    """The text form of a config value: bools as 1/0, lists comma-joined."""
    if value is None:
        return None
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, (int, float, str)):
        return str(value).encode()
    if isinstance(value, (list, tuple)):
        return b",".join(_text(v, key) or b"" for v in value)
    if _np is not None and isinstance(value, (_np.generic, _np.ndarray)):
        return _text(value.tolist(), key)
    raise InvalidArgumentError(f"key {key!r}: cannot write a {type(value).__name__} as a value",
                               _lib.EINVAL, "config")


def _new_config(config: Config, keys: Mapping[str, Any], what: str) -> c_void_p:
    """A dlsched_config holding spec or mapping plus keyword keys; caller frees."""
    lib = _lib.lib()
    cfg = c_void_p()
    rc = lib.dlsched_config_new(byref(cfg))
    if rc:
        raise_for(rc, "dlsched_config_new")
    try:
        items: List[Tuple[str, Any]] = []
        if isinstance(config, (str, bytes)):
            spec = config.encode() if isinstance(config, str) else config
            rc = lib.dlsched_config_parse(cfg, spec)
            if rc:
                raise_for(rc, what)
        elif isinstance(config, Mapping):
            items.extend(config.items())
        elif config is not None:
            raise TypeError(f"config must be a spec string or a mapping, not "
                            f"{type(config).__name__}")
        items.extend(keys.items())
        for key, value in items:
            if not isinstance(key, str):
                raise TypeError(f"config keys are str, not {type(key).__name__}")
            rc = lib.dlsched_config_set(cfg, key.encode(), _text(value, key))
            if rc:
                raise_for(rc, what)
    except BaseException:
        lib.dlsched_config_free(cfg)
        raise
    return cfg


def _config_get(cfg: c_void_p, key: str) -> str:
    buf = ctypes.create_string_buffer(512)
    rc = _lib.lib().dlsched_config_get(cfg, key.encode(), buf, len(buf))
    if rc:
        raise_for(rc, "dlsched_config_get")
    return buf.value.decode()


def _checkpoint_config(head: bytes) -> Dict[str, str]:
    """The configuration section of a checkpoint (dlsched-checkpoint(5)):
    24 bytes of header, then tag 1, 4 reserved bytes, u64 length, text."""
    if len(head) < 40 or head[:8] != b"DLSCHKPT":
        return {}
    tag, _res, length = struct.unpack_from("<IIQ", head, 24)
    if tag != 1 or 40 + length > len(head):
        return {}
    out = {}
    for line in head[40:40 + length].decode("ascii", "replace").splitlines():
        key, _, value = line.partition("=")
        out[key] = value
    return out


def _read_head(path: bytes) -> bytes:
    with open(path, "rb") as f:
        head = f.read(40)
        if len(head) == 40:
            (length,) = struct.unpack_from("<Q", head, 32)
            head += f.read(min(length, 1 << 20))
    return head


def _int32(value: Any, what: str) -> int:
    """value as an int32 argument: ctypes would silently wrap a larger one
    (hint 2**32 + 1 would pass as 1)."""
    v = operator.index(value)
    if not -0x80000000 <= v <= 0x7FFFFFFF:
        raise InvalidArgumentError(f"{what} {v} is out of range", _lib.EINVAL, "dlsched.Agent")
    return v


def _unit(value: Any) -> int:
    """value as act's unit: an int (numpy integers too) >= 0, taken modulo
    2**64 by the caller; a bool is refused like a non-integer (TypeError),
    a negative int with InvalidArgumentError."""
    if isinstance(value, bool) or (_np is not None and isinstance(value, _np.bool_)):
        raise TypeError("unit must be an int, not bool")
    v = operator.index(value)
    if v < 0:
        raise InvalidArgumentError(f"unit {v} is negative; it must be >= 0 (taken modulo "
                                   f"2**64)", _lib.EINVAL, "dlsched.Agent")
    return v


def _blob(data: Any, what: str) -> Tuple[Any, int, Any]:
    """(pointer argument, length, what must stay alive) for bytes handed to
    the library, which only reads them.

    bytes pass as they are; a C-contiguous numpy array (read-only ones too,
    as Ray's object store hands them out) by its address; a bytearray or a
    writable buffer through ctypes' from_buffer: no copy in these cases. A
    read-only buffer that is not bytes (a memoryview of one) is copied when
    numpy is missing, and a non-contiguous one always.
    """
    if isinstance(data, bytes):
        return data, len(data), data
    if _np is not None and isinstance(data, _np.ndarray):
        if not data.flags.c_contiguous:
            data = _np.ascontiguousarray(data)
        if data.nbytes == 0:
            return b"", 0, None
        return data.ctypes.data, data.nbytes, data
    try:
        mv = memoryview(data)
    except TypeError:
        raise TypeError(f"{what} must be bytes, a bytearray, a memoryview or a numpy "
                        f"uint8 array, not {type(data).__name__}") from None
    if mv.nbytes == 0:
        return b"", 0, None
    if not mv.c_contiguous:
        b = mv.tobytes()
        return b, len(b), b
    if _np is not None:
        arr = _np.frombuffer(mv.cast("B") if mv.format != "B" or mv.ndim != 1 else mv,
                             dtype=_np.uint8)
        return arr.ctypes.data, arr.nbytes, (arr, mv)
    if not mv.readonly:
        flat = mv.cast("B")
        keep = (c_char * flat.nbytes).from_buffer(flat)
        return keep, flat.nbytes, (keep, flat, mv)
    b = mv.tobytes()  # pragma: no cover - read-only buffer without numpy
    return b, len(b), b


def _take_buffer(lib: ctypes.CDLL, buf: c_void_p, n: int) -> bytes:
    """A library buffer's bytes as a bytes object; the buffer is freed."""
    try:
        return ctypes.string_at(buf, n) if n else b""
    finally:
        lib.dlsched_buffer_free(buf)


def _free_agent(lib: ctypes.CDLL, handle: int) -> None:
    lib.dlsched_agent_free(handle)


def _raw(lib: ctypes.CDLL, name: str) -> Any:
    """A second function object for name without argtypes (returns int):
    its arguments must be ctypes values or byref()s of the right C types."""
    fn = lib._FuncPtr((name, lib))
    fn.restype = ctypes.c_int
    return fn


class _Scratch:
    """Per-thread C structs of one agent, so acting allocates little.

    The fast paths of act and observe (no mask, no hint) write the address
    of the features straight into a struct through ``state_fp``/``next_fp``
    (a c_void_p over the struct's ``features`` field) and copy lists and
    tuples into ``state_buf``/``next_buf``. ``state_plain``/``next_plain``
    say that the struct's other fields hold the no-mask, no-hint values
    (n_features, n_mask 0, mask NULL, hint -1); :meth:`Agent._fill` may leave
    them otherwise, and clears the flag.
    """
    __slots__ = ("state", "state_ref", "next", "next_ref", "dec", "dec_ref",
                 "state_fp", "next_fp", "state_buf", "next_buf", "state_buf_addr",
                 "next_buf_addr", "state_plain", "next_plain")

    def __init__(self, n_features: int = 0) -> None:
        self.state = _lib.dlsched_state_t()
        self.state_ref = byref(self.state)
        self.next = _lib.dlsched_state_t()
        self.next_ref = byref(self.next)
        self.dec = _lib.dlsched_decision_t()
        self.dec_ref = byref(self.dec)
        for st in (self.state, self.next):
            st.n_features = n_features
            st.hint = -1
        self.state_plain = self.next_plain = True
        self.state_fp = c_void_p.from_buffer(self.state, _FEATURES_OFFSET)
        self.next_fp = c_void_p.from_buffer(self.next, _FEATURES_OFFSET)
        self.state_buf = (c_float * max(n_features, 1))()
        self.next_buf = (c_float * max(n_features, 1))()
        self.state_buf_addr = addressof(self.state_buf)
        self.next_buf_addr = addressof(self.next_buf)


_F32P = ctypes.POINTER(c_float)
_U8P = ctypes.POINTER(c_uint8)
_FEATURES_OFFSET = _lib.dlsched_state_t.features.offset

# dlsched_decision_t read in one go: ticket, model_version, action, flags,
# value, probability (the same Python values as reading the fields one by
# one); checked against the ctypes layout, else the fields are read
_DECISION = struct.Struct("=QQiIff")
_DECISION_UNPACK = _DECISION.unpack_from if (
    _DECISION.size == ctypes.sizeof(_lib.dlsched_decision_t)
    and [getattr(_lib.dlsched_decision_t, f).offset
         for f in ("ticket", "model_version", "action", "flags", "value", "probability")]
    == [0, 8, 16, 20, 24, 28]) else None
# flags -> (explored, hinted, incumbent), i.e. bool(f & 1), bool(f & 2), bool(f & 4)
_FLAG_BITS = tuple((bool(f & 1), bool(f & 2), bool(f & 4)) for f in range(8))
_tuple_new = tuple.__new__
if _np is not None:
    _NDARRAY = _np.ndarray
    _F32 = _np.dtype(_np.float32)
else:  # pragma: no cover - without numpy no array reaches the fast path
    _NDARRAY = _F32 = None
_float_at = c_float.from_buffer
_LIST_TYPES = (list, tuple)


class Agent:
    """A libdlsched learning agent (dlsched_agent_new(3)).

    ``config`` is a spec string ("algo=qtable n_features=2 n_actions=3") or a
    mapping of keys to values (numbers, bools as 1/0, lists as comma lists);
    keyword arguments set further keys. See dlsched(7) for every key.

    Methods may be called from several threads at once, as the C API allows
    (the GIL is released inside every C call). :meth:`close` must not race
    with another call on the same agent. An agent cannot be pickled: save a
    checkpoint (:meth:`save_buffer`) and load it (:meth:`load_buffer`).
    """

    def __init__(self, config: Config = None, **keys: Any) -> None:
        self._h: Optional[int] = None
        lib = _lib.lib()
        cfg = _new_config(config, keys, "config")
        try:
            n_features = int(_config_get(cfg, "n_features") or 0)
            n_actions = int(_config_get(cfg, "n_actions") or 0)
            algo = _config_get(cfg, "algo")
            handle = c_void_p()
            rc = lib.dlsched_agent_new(cfg, byref(handle))
            if rc:
                raise_for(rc, "dlsched_agent_new")
        finally:
            lib.dlsched_config_free(cfg)
        self._setup(lib, handle.value, n_features, n_actions, algo)

    @classmethod
    def _adopt(cls, lib: ctypes.CDLL, handle: int, conf: Dict[str, str]) -> "Agent":
        self = cls.__new__(cls)
        self._h = None
        self._setup(lib, handle, int(conf.get("n_features", 0)), int(conf.get("n_actions", 0)),
                    conf.get("algo", "dqn"))
        return self

    def _setup(self, lib: ctypes.CDLL, handle: int, n_features: int, n_actions: int,
               algo: str) -> None:
        self._lib = lib
        self._h = handle
        self._nf = n_features
        self._na = n_actions
        self._algo = algo
        self._ftype = c_float * n_features
        self._mtype = c_uint8 * n_actions
        self._tls = threading.local()
        # act and observe call the C functions without ctypes' argtypes
        # conversion (half the cost of a call), with arguments that are
        # already C values: the handle as a c_void_p, the structs by
        # reference, ticket and reward built as c_uint64 and c_float
        self._hv = c_void_p(handle)
        self._act = _raw(lib, "dlsched_act")
        # Since 1.4, optional: None when the library lacks it (act(unit=...)
        # then raises LibraryError; everything else works)
        self._act_unit = (_raw(lib, "dlsched_act_unit") if hasattr(lib, "dlsched_act_unit")
                          else None)
        self._observe = _raw(lib, "dlsched_observe")
        self._observe_checked = lib.dlsched_observe
        self._finalizer = weakref.finalize(self, _free_agent, lib, handle)

    # ---- properties --------------------------------------------------------
    @property
    def n_features(self) -> int:
        """Features per state (the key n_features)."""
        return self._nf

    @property
    def n_actions(self) -> int:
        """Number of discrete actions (the key n_actions)."""
        return self._na

    @property
    def algo(self) -> str:
        """"qtable" or "dqn"."""
        return self._algo

    @property
    def closed(self) -> bool:
        return self._h is None

    # ---- lifetime ----------------------------------------------------------
    def close(self) -> None:
        """Free the agent now (dlsched_agent_free(3)). Idempotent."""
        self._h = None
        fin = getattr(self, "_finalizer", None)
        if fin is not None:
            fin()

    def __enter__(self) -> "Agent":
        self._handle()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError("a dlsched.Agent cannot be pickled or copied: pass a checkpoint "
                        "instead (data = agent.save_buffer(), then "
                        "dlsched.Agent.load_buffer(data) where it is needed)")

    def __repr__(self) -> str:
        state = "closed" if self._h is None else f"n_features={self._nf} n_actions={self._na}"
        return f"<dlsched.Agent algo={self._algo} {state}>"

    def _handle(self) -> int:
        h = self._h
        if h is None:
            raise ClosedError("the agent is closed", None, "dlsched.Agent")
        return h

    # ---- conversions -------------------------------------------------------
    def _fill(self, st: _lib.dlsched_state_t, obs: Any, mask: Any, hint: Optional[int],
              what: str) -> Tuple[Any, Any]:
        """Point st at obs and mask; return what must stay alive during the call."""
        n = self._nf
        if _np is not None and type(obs) is _np.ndarray:
            if obs.dtype != _np.float32 or not obs.flags.c_contiguous:
                obs = _np.ascontiguousarray(obs, dtype=_np.float32)
            if obs.size != n:
                raise InvalidArgumentError(f"{what} has {obs.size} values; the agent has "
                                           f"n_features={n}", _lib.EINVAL, "dlsched.Agent")
            keep = obs
            st.features = obs.ctypes.data_as(_F32P)
        else:
            if not isinstance(obs, (list, tuple)):
                if isinstance(obs, (int, float)):
                    obs = (obs,)
                elif _np is not None:
                    if not hasattr(obs, "__len__") and not hasattr(obs, "__array__"):
                        obs = list(obs)  # an iterator, as without numpy
                    obs = _np.asarray(obs, dtype=_np.float32).ravel().tolist()
                else:
                    obs = list(obs)
            if len(obs) != n:
                raise InvalidArgumentError(f"{what} has {len(obs)} values; the agent has "
                                           f"n_features={n}", _lib.EINVAL, "dlsched.Agent")
            try:
                keep = self._ftype(*obs)
            except TypeError as e:
                raise InvalidArgumentError(f"{what}: {e}", _lib.EINVAL,
                                           "dlsched.Agent") from None
            st.features = keep
        st.n_features = n
        keep_mask = None
        if mask is None:
            st.n_mask = 0
            st.mask = None
        else:
            keep_mask = self._mask(mask, what)
            st.n_mask = self._na
            st.mask = keep_mask
        st.hint = -1 if hint is None else _int32(hint, "hint")
        return keep, keep_mask

    def _mask(self, mask: Any, what: str) -> Any:
        na = self._na
        if _np is not None and type(mask) is _np.ndarray:
            if mask.dtype not in (_np.bool_, _np.uint8) or not mask.flags.c_contiguous:
                mask = _np.ascontiguousarray(mask != 0, dtype=_np.uint8)
            if mask.size != na:
                raise InvalidArgumentError(f"{what}'s mask has {mask.size} entries; the agent "
                                           f"has n_actions={na}", _lib.EINVAL, "dlsched.Agent")
            return mask.ctypes.data_as(_U8P)
        if isinstance(mask, (bytes, bytearray)):
            if len(mask) != na:
                raise InvalidArgumentError(f"{what}'s mask has {len(mask)} entries; the agent "
                                           f"has n_actions={na}", _lib.EINVAL, "dlsched.Agent")
            return self._mtype.from_buffer_copy(mask)
        mask = list(mask)
        if len(mask) != na:
            raise InvalidArgumentError(f"{what}'s mask has {len(mask)} entries; the agent has "
                                       f"n_actions={na}", _lib.EINVAL, "dlsched.Agent")
        return self._mtype(*[1 if m else 0 for m in mask])

    def _scratch(self) -> _Scratch:
        try:
            return self._tls.s
        except AttributeError:
            s = self._tls.s = _Scratch(self._nf)
            return s

    # ---- act and observe ---------------------------------------------------
    def act(self, obs: Any, mask: Any = None, hint: Optional[int] = None,
            greedy: bool = False, unit: Optional[int] = None) -> Decision:
        """Choose an action for the state ``obs`` (dlsched_act(3)).

        ``obs``: n_features numbers (a float32 C-contiguous numpy array passes
        without a copy; lists, tuples and other dtypes are converted).
        ``mask``: n_actions truthy/falsy entries, or None for all allowed.
        ``hint``: the host's own choice, or None. ``greedy``: no exploration
        and no ticket (evaluation).
        ``unit``: the unit the decision belongs to, an opaque key of the
        host's (a hash of the request's shared prompt, its tenant, ...):
        the call is then dlsched_act_unit() (include/dlsched.h). With the
        key ``guard_unit=key`` the guard's experiment assigns whole units,
        not single decisions or blocks of time, to the incumbent (the hint:
        ``incumbent`` is set on every decision of such a unit) or to the
        learned policy; under ``guard_unit=decision`` (the default), with
        the guard off, without a hint and with ``greedy`` the unit is
        ignored. An int (numpy integers too), taken modulo 2**64; a negative
        one raises :class:`InvalidArgumentError`, a bool or a non-integer
        :class:`TypeError`. None (the default) calls dlsched_act(3), which
        is unit 0. Needs libdlsched 1.4: with a library that lacks
        dlsched_act_unit a call with a unit raises :class:`LibraryError`;
        calls without one work as before.
        """
        if unit is not None:
            if type(unit) is int and unit >= 0:  # the common case, checked cheaply
                u = unit
            else:
                u = _unit(unit)
            fn = self._act_unit
            if fn is None:
                raise _lib.missing_unit_error()
        if self._h is None:
            raise ClosedError("the agent is closed", None, "dlsched.Agent")
        try:
            sc = self._tls.s
        except AttributeError:
            sc = self._scratch()
        keep = obs
        fast = False
        if mask is None and hint is None:
            t = type(obs)
            if t is _NDARRAY:
                # float32 of the right size: its own memory (from_buffer
                # refuses a read-only or non-C-contiguous one: the slow path)
                if obs.dtype is _F32 and obs.size == self._nf:
                    try:
                        sc.state_fp.value = addressof(_float_at(obs))
                        fast = True
                    except (TypeError, ValueError, BufferError):
                        pass
            elif t in _LIST_TYPES and len(obs) == self._nf:
                try:
                    sc.state_buf[:] = obs
                except TypeError as e:
                    raise InvalidArgumentError(f"obs: {e}", _lib.EINVAL,
                                               "dlsched.Agent") from None
                sc.state_fp.value = sc.state_buf_addr
                fast = True
        if fast:
            if not sc.state_plain:
                st = sc.state
                st.n_features = self._nf
                st.n_mask = 0
                st.mask = None
                st.hint = -1
                sc.state_plain = True
        else:
            sc.state_plain = False
            keep = self._fill(sc.state, obs, mask, hint, "obs")
        if unit is None:
            rc = self._act(self._hv, sc.state_ref, 1 if greedy else 0, sc.dec_ref)
        else:
            rc = fn(self._hv, sc.state_ref, c_uint64(u & 0xFFFFFFFFFFFFFFFF),
                    1 if greedy else 0, sc.dec_ref)
        del keep
        if rc:
            raise_for(rc, "dlsched_act" if unit is None else "dlsched_act_unit")
        if _DECISION_UNPACK is not None:
            ticket, version, action, f, value, prob = _DECISION_UNPACK(sc.dec)
            explored, hinted, incumbent = _FLAG_BITS[f & 7]
            return _tuple_new(Decision, (action, ticket, explored, hinted, value, prob,
                                         version, incumbent))
        d = sc.dec
        f = d.flags
        return Decision(d.action, d.ticket, bool(f & 1), bool(f & 2), d.value, d.probability,
                        d.model_version, bool(f & 4))

    @staticmethod
    def _flags(terminated: bool, truncated: bool) -> int:
        return (1 if terminated else 0) | (2 if truncated else 0)

    def observe(self, ticket: int, reward: float, next_obs: Any = None,
                terminated: bool = False, truncated: bool = False,
                next_mask: Any = None) -> None:
        """Report the reward a ticketed decision earned (dlsched_observe(3)).

        ``next_obs`` may be None only when ``terminated``. ``terminated`` and
        ``truncated`` may both be true (Gymnasium): terminated wins, no
        bootstrap. ``next_mask`` restricts the next state's actions.
        """
        if self._h is None:
            raise ClosedError("the agent is closed", None, "dlsched.Agent")
        nref = None
        keep = next_obs
        if next_obs is not None:
            try:
                sc = self._tls.s
            except AttributeError:
                sc = self._scratch()
            fast = False
            if next_mask is None:
                t = type(next_obs)
                if t is _NDARRAY:
                    if next_obs.dtype is _F32 and next_obs.size == self._nf:
                        try:
                            sc.next_fp.value = addressof(_float_at(next_obs))
                            fast = True
                        except (TypeError, ValueError, BufferError):
                            pass
                elif t in _LIST_TYPES and len(next_obs) == self._nf:
                    try:
                        sc.next_buf[:] = next_obs
                    except TypeError as e:
                        raise InvalidArgumentError(f"next_obs: {e}", _lib.EINVAL,
                                                   "dlsched.Agent") from None
                    sc.next_fp.value = sc.next_buf_addr
                    fast = True
            if fast:
                if not sc.next_plain:
                    nx = sc.next
                    nx.n_features = self._nf
                    nx.n_mask = 0
                    nx.mask = None
                    nx.hint = -1
                    sc.next_plain = True
            else:
                sc.next_plain = False
                keep = self._fill(sc.next, next_obs, next_mask, None, "next_obs")
            nref = sc.next_ref
        flags = (1 if terminated else 0) | (2 if truncated else 0)
        try:
            t_arg = c_uint64(ticket)
            r_arg = c_float(reward)
        except Exception:  # noqa: BLE001 - ctypes' own conversion, with its own error
            rc = self._observe_checked(self._handle(), ticket, reward, nref, flags)
        else:
            rc = self._observe(self._hv, t_arg, r_arg, nref, flags)
        del keep
        if rc:
            raise_for(rc, "dlsched_observe")

    def observe_transition(self, obs: Any, action: int, reward: float, next_obs: Any = None,
                           terminated: bool = False, truncated: bool = False,
                           mask: Any = None, next_mask: Any = None) -> None:
        """Learn from a transition that has no ticket, e.g. a log of the host's
        heuristic (dlsched_observe_transition(3))."""
        h = self._handle()
        st = _lib.dlsched_state_t()
        keep1 = self._fill(st, obs, mask, None, "obs")
        nref = None
        keep2 = None
        if next_obs is not None:
            nx = _lib.dlsched_state_t()
            keep2 = self._fill(nx, next_obs, next_mask, None, "next_obs")
            nref = byref(nx)
        rc = self._lib.dlsched_observe_transition(h, byref(st), _int32(action, "action"),
                                                  reward, nref,
                                                  self._flags(terminated, truncated))
        del keep1, keep2
        if rc:
            raise_for(rc, "dlsched_observe_transition")

    def train(self, steps: int) -> None:
        """Run ``steps`` learning updates on the replay buffer (dlsched_train(3));
        the GIL is released while they run."""
        h = self._handle()
        steps = int(steps)
        if steps < 0:
            raise InvalidArgumentError(f"steps is {steps}; it must be >= 0", _lib.EINVAL,
                                       "dlsched_train")
        while steps > 0:
            chunk = min(steps, 0xFFFFFFFF)
            rc = self._lib.dlsched_train(h, chunk)
            if rc:
                raise_for(rc, "dlsched_train")
            steps -= chunk

    def q_values(self, obs: Any, mask: Any = None) -> Any:
        """Q(obs, a) for every action: a float32 numpy array (a list without
        numpy); masked-out actions read -inf."""
        h = self._handle()
        st = _lib.dlsched_state_t()
        keep = self._fill(st, obs, mask, None, "obs")
        out = (c_float * self._na)()
        rc = self._lib.dlsched_q_values(h, byref(st), out, self._na)
        del keep
        if rc:
            raise_for(rc, "dlsched_q_values")
        if _np is not None:
            return _np.frombuffer(out, dtype=_np.float32).copy()
        return list(out)

    def stats(self) -> Stats:
        """Counters and gauges (dlsched_stats(3))."""
        h = self._handle()
        raw = _lib.dlsched_stats_t()
        rc = self._lib.dlsched_stats(h, byref(raw), ctypes.sizeof(raw))
        if rc:
            raise_for(rc, "dlsched_stats")
        return Stats(raw)

    # ---- persistence -------------------------------------------------------
    def save(self, path: PathLike) -> None:
        """Write a checkpoint atomically (dlsched_save(3))."""
        h = self._handle()
        rc = self._lib.dlsched_save(h, os.fsencode(path))
        if rc:
            raise_for(rc, "dlsched_save")

    def save_buffer(self) -> bytes:
        """The checkpoint as bytes, exactly what :meth:`save` writes."""
        h = self._handle()
        buf = c_void_p()
        n = c_size_t()
        rc = self._lib.dlsched_save_buffer(h, byref(buf), byref(n))
        if rc:
            raise_for(rc, "dlsched_save_buffer")
        try:
            return ctypes.string_at(buf, n.value)
        finally:
            self._lib.dlsched_buffer_free(buf)

    @classmethod
    def load(cls, path: PathLike, overrides: Config = None, **keys: Any) -> "Agent":
        """Create an agent from a checkpoint file (dlsched_load(3)); overrides
        set run-time keys (lr, exploration, device, ...)."""
        lib = _lib.lib()
        p = os.fsencode(path)
        cfg = _new_config(overrides, keys, "overrides") if (overrides or keys) else None
        handle = c_void_p()
        try:
            rc = lib.dlsched_load(p, cfg, byref(handle))
        finally:
            if cfg is not None:
                lib.dlsched_config_free(cfg)
        if rc:
            raise_for(rc, "dlsched_load")
        try:
            conf = _checkpoint_config(_read_head(p))
        except OSError:
            conf = {}
        return cls._adopt(lib, handle.value, conf)

    @classmethod
    def load_buffer(cls, data: Union[bytes, bytearray, memoryview], overrides: Config = None,
                    **keys: Any) -> "Agent":
        """Create an agent from checkpoint bytes (dlsched_load_buffer(3))."""
        lib = _lib.lib()
        data = bytes(data)
        cfg = _new_config(overrides, keys, "overrides") if (overrides or keys) else None
        handle = c_void_p()
        try:
            rc = lib.dlsched_load_buffer(data, len(data), cfg, byref(handle))
        finally:
            if cfg is not None:
                lib.dlsched_config_free(cfg)
        if rc:
            raise_for(rc, "dlsched_load_buffer")
        return cls._adopt(lib, handle.value, _checkpoint_config(data[:40 + (1 << 20)]))

    # ---- experience and weights between agents (Since 1.3) -----------------
    # A library older than 1.3 raises dlsched.LibraryError naming the version.

    def export_transitions(self, max: int = 0) -> Tuple[bytes, int, int]:
        """Take the completed transitions this agent recorded out of it,
        oldest first (dlsched_export_transitions(3); key exchange_capacity > 0).

        Returns ``(blob, count, dropped)``: ``blob`` is ``bytes`` (immutable,
        picklable, accepted as it is by :meth:`ingest_transitions` and by Ray
        without a further copy), holding ``count`` transitions, up to ``max``
        (0: all there are; an empty blob is valid). ``dropped`` counts the
        transitions the full ring dropped, oldest first, since the last call.
        Since 1.3.
        """
        fn = _lib.since("dlsched_export_transitions")
        h = self._handle()
        m = operator.index(max)
        if not 0 <= m <= 0xFFFFFFFF:
            raise InvalidArgumentError(f"max is {m}; it must be in 0 .. 2^32-1", _lib.EINVAL,
                                       "dlsched_export_transitions")
        buf = c_void_p()
        n = c_size_t()
        count = c_uint32()
        dropped = c_uint64()
        rc = fn(h, m, byref(buf), byref(n), byref(count), byref(dropped))
        if rc:
            raise_for(rc, "dlsched_export_transitions")
        return _take_buffer(self._lib, buf, n.value), count.value, dropped.value

    def ingest_transitions(self, blob: Blob, min_model_version: int = 0) -> Tuple[int, int]:
        """Learn from another agent's exported transitions
        (dlsched_ingest_transitions(3)); a learning agent only (learner=none
        raises :class:`ConfigError`).

        ``blob``: bytes, a bytearray, a memoryview or a C-contiguous numpy
        uint8 array (read-only ones too), read in place without a copy.
        Transitions decided by a model version below ``min_model_version``
        are dropped. Returns ``(accepted, stale)``. A corrupt, truncated or
        foreign blob raises :class:`FormatError`, one of another shape
        :class:`MismatchError`; nothing is taken in then. Since 1.3.
        """
        fn = _lib.since("dlsched_ingest_transitions")
        h = self._handle()
        ptr, n, keep = _blob(blob, "blob")
        v = operator.index(min_model_version)
        if not 0 <= v <= 0xFFFFFFFFFFFFFFFF:
            raise InvalidArgumentError(f"min_model_version is {v}; it must be >= 0",
                                       _lib.EINVAL, "dlsched_ingest_transitions")
        accepted = c_uint32()
        stale = c_uint32()
        rc = fn(h, ptr, n, v, byref(accepted), byref(stale))
        del keep
        if rc:
            raise_for(rc, "dlsched_ingest_transitions")
        return accepted.value, stale.value

    def export_weights(self) -> Tuple[bytes, int]:
        """The weights decisions are made with and their model version
        (dlsched_export_weights(3)): ``(blob, version)``, blob as bytes.
        Since 1.3."""
        fn = _lib.since("dlsched_export_weights")
        h = self._handle()
        buf = c_void_p()
        n = c_size_t()
        version = c_uint64()
        rc = fn(h, byref(buf), byref(n), byref(version))
        if rc:
            raise_for(rc, "dlsched_export_weights")
        return _take_buffer(self._lib, buf, n.value), version.value

    def import_weights(self, blob: Blob) -> int:
        """Act with weights another agent exported (dlsched_import_weights(3));
        learner=none agents only (:class:`ConfigError` otherwise). ``blob`` as
        for :meth:`ingest_transitions`, read in place. Returns the weights'
        model version, which later decisions report. Checked whole first:
        :class:`FormatError`, :class:`MismatchError`, and nothing changes.
        Since 1.3."""
        fn = _lib.since("dlsched_import_weights")
        h = self._handle()
        ptr, n, keep = _blob(blob, "blob")
        version = c_uint64()
        rc = fn(h, ptr, n, byref(version))
        del keep
        if rc:
            raise_for(rc, "dlsched_import_weights")
        return version.value
