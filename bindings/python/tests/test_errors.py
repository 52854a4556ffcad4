"""Status codes to exceptions: each code 1..10 of dlsched.h has its
DlschedError subclass with .code and the C message, deriving from the
built-in a Python caller would catch. Real failures where the library can
be made to fail; the mapping alone (raise_for) for the others."""
from __future__ import annotations

import re
import threading

import pytest

import dlsched
from dlsched import _lib, errors

from conftest import HEADER, QSPEC, S0

# code, name in dlsched.h, class, built-in base
TABLE = [
    (1, "DLSCHED_EINVAL", dlsched.InvalidArgumentError, ValueError),
    (2, "DLSCHED_ENOMEM", dlsched.OutOfMemoryError, MemoryError),
    (3, "DLSCHED_ECONFIG", dlsched.ConfigError, ValueError),
    (4, "DLSCHED_ETICKET", dlsched.TicketError, LookupError),
    (5, "DLSCHED_ENOACTION", dlsched.NoActionError, ValueError),
    (6, "DLSCHED_EIO", dlsched.IOFailedError, OSError),
    (7, "DLSCHED_EFORMAT", dlsched.FormatError, ValueError),
    (8, "DLSCHED_EMISMATCH", dlsched.MismatchError, ValueError),
    (9, "DLSCHED_ENODEVICE", dlsched.NoDeviceError, RuntimeError),
    (10, "DLSCHED_EBACKEND", dlsched.BackendError, RuntimeError),
]


def in_fresh_thread(fn):
    """fn() on a new thread, whose dlsched_last_error() is still ""."""
    box = {}

    def run():
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            box["e"] = e
    t = threading.Thread(target=run)
    t.start()
    t.join()
    return box.get("e")


def test_codes_are_the_headers():
    text = HEADER.read_text()
    for code, name, _cls, _base in TABLE:
        m = re.search(rf"\b{name}\s*=\s*(\d+)", text)
        assert m and int(m.group(1)) == code, name


@pytest.mark.parametrize("code,name,cls,base", TABLE, ids=[t[1] for t in TABLE])
def test_mapping(code, name, cls, base):
    assert cls.code == code and errors.ERRORS[code] is cls
    assert issubclass(cls, dlsched.DlschedError) and issubclass(cls, base)
    # raise_for on a thread without a failure: the message is dlsched_strerror's
    e = in_fresh_thread(lambda: errors.raise_for(code, "dlsched_fake"))
    assert type(e) is cls
    assert e.code == code and e.function == "dlsched_fake"
    assert e.message == dlsched.strerror(code) and e.message
    assert e.message != dlsched.strerror(12345)  # a code the library knows
    assert str(e) == f"dlsched_fake: {e.message}"
    assert isinstance(e, base)


def test_unknown_code():
    e = in_fresh_thread(lambda: errors.raise_for(99, "dlsched_fake"))
    assert type(e) is dlsched.UnknownStatusError and isinstance(e, dlsched.DlschedError)
    assert e.code == 99 and e.message == "unknown error code"
    assert dlsched.strerror(99) == "unknown error code"
    assert not any(cls is dlsched.UnknownStatusError for cls in errors.ERRORS.values())


def test_message_is_this_threads_last_error():
    # each thread's failure carries its own message, whatever the other did
    def nan():
        with dlsched.Agent(QSPEC) as a:
            a.act([float("nan")])

    def cfg():
        dlsched.Agent(QSPEC, lr=-1)
    e1, e2 = in_fresh_thread(nan), in_fresh_thread(cfg)
    assert type(e1) is dlsched.InvalidArgumentError and "NaN" in e1.message
    assert type(e2) is dlsched.ConfigError and "'lr'" in e2.message
    assert "NaN" not in e2.message


# ---- real failures -------------------------------------------------------------

def _expect(cls, fn, *words):
    with pytest.raises(cls) as ei:
        fn()
    e = ei.value
    assert type(e) is cls and e.code == cls.code
    for w in words:
        assert w in e.message, (w, e.message)
    assert e.function.startswith("dlsched_") or e.function == "config"
    return e


def test_einval_nan():
    with dlsched.Agent(QSPEC) as a:
        e = _expect(dlsched.InvalidArgumentError, lambda: a.act([float("nan")]),
                    "feature 0", "NaN")
        assert isinstance(e, ValueError) and e.function == "dlsched_act"


def test_econfig():
    e = _expect(dlsched.ConfigError, lambda: dlsched.Agent(QSPEC + " lr=-1"), "'lr'", "-1")
    assert isinstance(e, ValueError)
    _expect(dlsched.ConfigError, lambda: dlsched.Agent(QSPEC + " max_table_bytes=4"),
            "max_table_bytes")


def test_eticket_used_ticket():
    with dlsched.Agent(QSPEC) as a:
        d = a.act(S0)
        a.observe(d.ticket, 1.0, terminated=True)
        e = _expect(dlsched.TicketError, lambda: a.observe(d.ticket, 1.0, terminated=True),
                    str(d.ticket))
        assert isinstance(e, LookupError) and e.function == "dlsched_observe"
        _expect(dlsched.TicketError, lambda: a.observe(123456789, 1.0, terminated=True))


def test_enoaction_all_false_mask():
    with dlsched.Agent(QSPEC) as a:
        _expect(dlsched.NoActionError, lambda: a.act(S0, mask=[False, False]), "mask")
        # and the next state's mask while the episode goes on
        d = a.act(S0)
        _expect(dlsched.NoActionError,
                lambda: a.observe(d.ticket, 1.0, S0, next_mask=[0, 0]))


def test_eio(tmp_path):
    with dlsched.Agent(QSPEC) as a:
        target = tmp_path / "no" / "such" / "dir" / "a.ckpt"
        e = _expect(dlsched.IOFailedError, lambda: a.save(target), str(target))
        assert isinstance(e, OSError) and e.function == "dlsched_save"
    missing = tmp_path / "missing.ckpt"
    e = _expect(dlsched.IOFailedError, lambda: dlsched.Agent.load(missing), str(missing))
    assert isinstance(e, OSError) and e.function == "dlsched_load"


def test_eformat():
    with dlsched.Agent(QSPEC) as a:
        good = a.save_buffer()
    _expect(dlsched.FormatError, lambda: dlsched.Agent.load_buffer(b"garbage"))
    _expect(dlsched.FormatError, lambda: dlsched.Agent.load_buffer(b"\0" * 4096))
    _expect(dlsched.FormatError, lambda: dlsched.Agent.load_buffer(good[:-7]), "truncated")
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x10
    _expect(dlsched.FormatError, lambda: dlsched.Agent.load_buffer(flipped))


def test_eformat_truncated_file(tmp_path):
    with dlsched.Agent(QSPEC) as a:
        p = tmp_path / "a.ckpt"
        a.save(p)
    p.write_bytes(p.read_bytes()[:60])
    e = _expect(dlsched.FormatError, lambda: dlsched.Agent.load(p))
    assert isinstance(e, ValueError) and e.function == "dlsched_load"


def test_emismatch():
    with dlsched.Agent(QSPEC) as a:
        data = a.save_buffer()
    e = _expect(dlsched.MismatchError, lambda: dlsched.Agent.load_buffer(data, n_features=2),
                "'n_features'")
    assert isinstance(e, ValueError)


def test_enodevice():
    if dlsched.backend_available("cuda"):
        pytest.skip("a usable CUDA backend: device=cuda works here")
    e = _expect(dlsched.NoDeviceError,
                lambda: dlsched.Agent("n_features=2 n_actions=2 hidden=8 device=cuda"),
                "cuda")
    assert isinstance(e, RuntimeError) and e.function == "dlsched_agent_new"


def test_backend_available_answers():
    assert dlsched.backend_available("cpu") is True
    assert dlsched.backend_available("tpu") is False
    assert isinstance(dlsched.backend_available("cuda"), bool)


def test_closed_error_is_not_a_status():
    a = dlsched.Agent(QSPEC)
    a.close()
    with pytest.raises(dlsched.ClosedError) as ei:
        a.act(S0)
    assert ei.value.code is None and isinstance(ei.value, ValueError)
    assert None not in errors.ERRORS


def test_every_exception_is_exported():
    for name in ("DlschedError", "InvalidArgumentError", "OutOfMemoryError", "ConfigError",
                 "TicketError", "NoActionError", "IOFailedError", "FormatError",
                 "MismatchError", "NoDeviceError", "BackendError", "ClosedError",
                 "UnknownStatusError", "LibraryError"):
        assert name in dlsched.__all__ and getattr(dlsched, name) is getattr(
            errors if name != "LibraryError" else _lib, name)
