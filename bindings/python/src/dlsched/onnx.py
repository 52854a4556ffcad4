"""Export a dqn agent's greedy Q-network to ONNX (``pip install 'dlsched[onnx]'``).

    import dlsched, dlsched.onnx
    model = dlsched.onnx.export(agent, "policy.onnx")   # an onnx.ModelProto

The graph maps input ``state`` (float32, ``[N, n_features]``, N dynamic
unless ``batch`` is given) to output ``q`` (float32, ``[N, n_actions]``):
the Q-values ``Agent.q_values`` returns, for every state of the batch, so a
policy trained with libdlsched runs under ONNX Runtime, TensorRT or any
other ONNX runtime; the greedy action is the argmax of ``q`` (over the
allowed actions: masks stay with the host). It is built from the standard
operators only: the input normaliser when on (Sub, Mul, Clip), then per
hidden layer Gemm and Relu, then the head (Gemm; for ``dueling=1`` two
Gemm, Add, ReduceMean and Sub: Q = V + A - mean(A)).

The parameters come from ``Agent.export_weights()`` (dlsched-exchange(5):
the weights decisions are made with, and the normaliser's mean and inverse
deviation), the network's shape (``hidden``, ``dueling``) from the
configuration section of ``Agent.save_buffer()`` (dlsched-checkpoint(5)),
or from ``config`` when given. No C call beyond those two is needed.
"""
from __future__ import annotations

import os
import struct
import zlib
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from . import _lib
from ._agent import _checkpoint_config, _config_get, _new_config
from .errors import FormatError, InvalidArgumentError, MismatchError

__all__ = ["export", "DEFAULT_OPSET", "MIN_OPSET", "NORM_CLIP"]

#: the opset ``export`` writes unless told otherwise (ONNX Runtime >= 1.14,
#: TensorRT >= 8.6 read it)
DEFAULT_OPSET = 17
#: the oldest opset ``export`` can write (Clip takes its bounds as inputs)
MIN_OPSET = 11
#: the normaliser's clamp, DLS_NORM_CLIP in src/dqn/dqn.c
NORM_CLIP = 10.0

_INSTALL = "pip install 'dlsched[onnx]'"
_FN = "dlsched.onnx.export"


def _import_onnx() -> Tuple[Any, Any, Any]:
    """onnx, onnx.helper, numpy, imported at first use."""
    try:
        import numpy
        import onnx
        from onnx import helper
    except ImportError as e:
        raise ImportError(f"dlsched.onnx needs the onnx package (and numpy): {_INSTALL} "
                          f"({e})") from e
    return onnx, helper, numpy


def _parse_weights(blob: bytes, n_features: int, n_actions: int) -> Dict[str, Any]:
    """A dqn weights blob (dlsched-exchange(5)): model version, parameters
    (bytes of float32), normaliser flag, mean and inverse deviation."""
    def bad(what: str) -> FormatError:
        return FormatError(f"weights blob: {what}", _lib.EFORMAT, _FN)

    n = len(blob)
    if n < 28 + 24 + 16 or blob[:8] != b"DLSXCHNG":
        raise bad(f"not an exchange blob ({n} bytes)")
    fmt, kind, body = struct.unpack_from("<IIQ", blob, 8)
    if fmt != 1 or kind != 2:
        raise bad(f"format version {fmt}, kind {kind}; expected version 1, kind 2 (weights)")
    if 28 + body != n:
        raise bad(f"body length {body} does not fit the blob's {n} bytes")
    (crc,) = struct.unpack_from("<I", blob, n - 4)
    if zlib.crc32(blob[:n - 4]) & 0xFFFFFFFF != crc:
        raise bad("checksum mismatch")
    algo, nf, na, _k, _hash = struct.unpack_from("<IIIIQ", blob, 24)
    if algo != 1:
        raise bad(f"algo {algo} in the shape, not 1 (dqn)")
    if (nf, na) != (n_features, n_actions):
        raise MismatchError(f"weights blob for n_features={nf} n_actions={na}, the agent has "
                            f"{n_features} and {n_actions}", _lib.EMISMATCH, _FN)
    version, n_params = struct.unpack_from("<QQ", blob, 48)
    pos = 64
    end = pos + 4 * n_params
    if end + 4 + 8 * nf + 4 != n:
        raise bad(f"{n_params} parameters and {nf} features do not fill {n} bytes")
    (norm_on,) = struct.unpack_from("<I", blob, end)
    mean = blob[end + 4:end + 4 + 4 * nf]
    inv = blob[end + 4 + 4 * nf:end + 4 + 8 * nf]
    return {"version": version, "n_params": n_params, "params": blob[pos:end],
            "norm_on": norm_on, "mean": mean, "inv": inv}


def _shape_keys(agent: Any, config: Union[None, str, Mapping[str, Any]]) -> Tuple[List[int], int]:
    """The hidden widths and dueling flag, effective values (defaults
    included): of ``config`` when given, else of the agent's checkpoint."""
    if config is None:
        config = _checkpoint_config(agent.save_buffer())
    lib = _lib.lib()
    cfg = _new_config(config, {}, "config")
    try:
        hidden_text = _config_get(cfg, "hidden")
        dueling_text = _config_get(cfg, "dueling")
    finally:
        lib.dlsched_config_free(cfg)
    hidden = [int(w) for w in hidden_text.split(",") if w.strip()]
    return hidden, int(dueling_text or 0)


def _layout(nf: int, na: int, hidden: List[int], dueling: int) -> Tuple[List[Tuple[int, int]],
                                                                        Dict[str, int], int]:
    """src/dqn/layout.h: (offW, offb) per trunk layer, the head's offsets,
    the parameter count."""
    w = [nf] + hidden
    n = 0
    trunk = []
    for i in range(len(hidden)):
        offw = n
        n += w[i + 1] * w[i]
        trunk.append((offw, n))
        n += w[i + 1]
    h = w[-1]
    head: Dict[str, int] = {}
    if not dueling:
        head["Wq"] = n
        n += na * h
        head["bq"] = n
        n += na
    else:
        head["Wv"] = n
        n += h
        head["bv"] = n
        n += 1
        head["Wa"] = n
        n += na * h
        head["ba"] = n
        n += na
    return trunk, head, n


def export(agent: Any, path: Union[None, str, "os.PathLike[str]"] = None, opset: int = DEFAULT_OPSET,
           *, batch: Optional[int] = None,
           config: Union[None, str, Mapping[str, Any]] = None) -> Any:
    """The agent's greedy Q-network as an ``onnx.ModelProto``, saved to
    ``path`` when given.

    ``agent``: a dqn :class:`dlsched.Agent` (a learner or a ``learner=none``
    agent that imported weights); the weights it decides with now are
    exported. ``opset``: the ONNX operator set, ``MIN_OPSET`` up to what the
    installed onnx knows (default ``DEFAULT_OPSET``). ``batch``: a fixed
    batch size, else the batch dimension is dynamic ("N"). ``config``: the
    agent's spec or mapping, to read ``hidden`` and ``dueling`` from instead
    of its checkpoint (``save_buffer``).

    Raises ImportError without onnx, :class:`InvalidArgumentError` for a
    qtable agent or a bad opset or batch, :class:`MismatchError` when the
    configuration does not describe the exported weights. The model passes
    ``onnx.checker.check_model``; its metadata (``metadata_props``) records
    the library, the model version and the shape keys.
    """
    onnx, helper, np = _import_onnx()
    from onnx import TensorProto

    if getattr(agent, "algo", None) != "dqn":
        raise InvalidArgumentError(
            f"only a dqn agent has a Q-network to export; this agent is "
            f"algo={getattr(agent, 'algo', type(agent).__name__)} (a Q-table: read it with "
            f"q_values, or export_weights)", _lib.EINVAL, _FN)
    max_opset = onnx.defs.onnx_opset_version()
    opset = int(opset)
    if not MIN_OPSET <= opset <= max_opset:
        raise InvalidArgumentError(f"opset {opset}: this export writes opsets {MIN_OPSET} to "
                                   f"{max_opset} (the installed onnx {onnx.__version__})",
                                   _lib.EINVAL, _FN)
    if batch is not None and (int(batch) != batch or batch < 1):
        raise InvalidArgumentError(f"batch {batch!r}: a positive int, or None for a dynamic "
                                   "batch", _lib.EINVAL, _FN)

    nf, na = agent.n_features, agent.n_actions
    blob, _ = agent.export_weights()
    wts = _parse_weights(blob, nf, na)
    hidden, dueling = _shape_keys(agent, config)
    trunk, head, n_params = _layout(nf, na, hidden, dueling)
    if n_params != wts["n_params"]:
        raise MismatchError(
            f"hidden={','.join(map(str, hidden))} dueling={dueling} make {n_params} parameters, "
            f"the agent's weights have {wts['n_params']}", _lib.EMISMATCH, _FN)
    theta = np.frombuffer(wts["params"], dtype="<f4").astype(np.float32)

    inits: List[Any] = []
    nodes: List[Any] = []

    def const(name: str, array: Any) -> str:
        a = np.ascontiguousarray(array)
        dtype = TensorProto.INT64 if a.dtype == np.int64 else TensorProto.FLOAT
        inits.append(helper.make_tensor(name, dtype, list(a.shape), a.tobytes(), raw=True))
        return name

    def part(off: int, rows: int, cols: int = 0) -> Any:
        if cols:
            return theta[off:off + rows * cols].reshape(rows, cols)
        return theta[off:off + rows]

    def gemm(x: str, w: str, b: str, out: str) -> str:
        nodes.append(helper.make_node("Gemm", [x, w, b], [out], name=out, transB=1))
        return out

    x = "state"
    if wts["norm_on"]:
        mean = np.frombuffer(wts["mean"], dtype="<f4").astype(np.float32)
        inv = np.frombuffer(wts["inv"], dtype="<f4").astype(np.float32)
        nodes.append(helper.make_node("Sub", [x, const("norm.mean", mean)], ["norm.centred"],
                                      name="norm.centred"))
        nodes.append(helper.make_node("Mul", ["norm.centred", const("norm.inv", inv)],
                                      ["norm.scaled"], name="norm.scaled"))
        nodes.append(helper.make_node(
            "Clip", ["norm.scaled", const("norm.lo", np.array(-NORM_CLIP, np.float32)),
                     const("norm.hi", np.array(NORM_CLIP, np.float32))], ["norm.out"],
            name="norm.out"))
        x = "norm.out"
    widths = [nf] + hidden
    for i, (offw, offb) in enumerate(trunk):
        n_out, n_in = widths[i + 1], widths[i]
        y = gemm(x, const(f"trunk.{i}.weight", part(offw, n_out, n_in)),
                 const(f"trunk.{i}.bias", part(offb, n_out)), f"trunk.{i}.linear")
        x = f"trunk.{i}.relu"
        nodes.append(helper.make_node("Relu", [y], [x], name=x))
    h = widths[-1]
    if not dueling:
        gemm(x, const("head.q.weight", part(head["Wq"], na, h)),
             const("head.q.bias", part(head["bq"], na)), "q")
    else:
        # q = (V + A) - mean(A), in the order dqn_forward1 adds
        v = gemm(x, const("head.v.weight", part(head["Wv"], 1, h)),
                 const("head.v.bias", part(head["bv"], 1)), "head.v")
        a = gemm(x, const("head.a.weight", part(head["Wa"], na, h)),
                 const("head.a.bias", part(head["ba"], na)), "head.a")
        nodes.append(helper.make_node("Add", [v, a], ["head.va"], name="head.va"))
        if opset >= 18:  # axes became an input
            nodes.append(helper.make_node("ReduceMean", [a, const("head.axes",
                                                                  np.array([1], np.int64))],
                                          ["head.a_mean"], name="head.a_mean", keepdims=1))
        else:
            nodes.append(helper.make_node("ReduceMean", [a], ["head.a_mean"],
                                          name="head.a_mean", axes=[1], keepdims=1))
        nodes.append(helper.make_node("Sub", ["head.va", "head.a_mean"], ["q"], name="q"))

    dim: Union[int, str] = int(batch) if batch is not None else "N"
    graph = helper.make_graph(
        nodes, "dlsched_dqn_q",
        [helper.make_tensor_value_info("state", TensorProto.FLOAT, [dim, nf])],
        [helper.make_tensor_value_info("q", TensorProto.FLOAT, [dim, na])],
        initializer=inits,
        doc_string="libdlsched dqn greedy Q-network: q[N, n_actions] = Q(state[N, n_features])")
    opsets = [helper.make_opsetid("", opset)]
    kwargs: Dict[str, Any] = {}
    find_ir = getattr(helper, "find_min_ir_version_for", None)
    if find_ir is not None:  # the oldest IR that holds the opset: older runtimes read it
        kwargs["ir_version"] = find_ir(opsets)
    from . import __version__
    model = helper.make_model(graph, opset_imports=opsets, producer_name="dlsched",
                              producer_version=__version__, **kwargs)
    helper.set_model_props(model, {
        "dlsched.library_version": _lib.lib().dlsched_version_string().decode(),
        "dlsched.model_version": str(wts["version"]),
        "dlsched.algo": "dqn",
        "dlsched.n_features": str(nf),
        "dlsched.n_actions": str(na),
        "dlsched.hidden": ",".join(map(str, hidden)),
        "dlsched.dueling": str(dueling),
        "dlsched.normalize": str(wts["norm_on"]),
    })
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        onnx.save(model, os.fspath(path))
    return model
