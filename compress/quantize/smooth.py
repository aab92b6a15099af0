"""SmoothQuant for ONNX graphs: move activation outliers into the weights before int8.

Dynamic int8 gives each activation tensor one scale at run time. Encoders carry a few hidden
channels whose values are tens of times larger than the rest (after LayerNorm, most of all), so that
one scale leaves the other channels a handful of levels. SmoothQuant (Xiao et al., 2023) divides
each input channel ``j`` of a MatMul by ``s_j`` and multiplies row ``j`` of its weight by the same
``s_j``: exact in fp32, and with ``s_j = max|x_j|^α / max|W_j|^(1-α)`` the activation's range evens
out while the weights, quantized per output channel, absorb the rest. The division is one ``Mul``
per activation tensor (shared by the MatMuls that read it: query, key and value read one).
Channel ranges are measured by running the fp32 graph on calibration batches.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from compress.quantize.graph import save_model

_FLOOR = 1e-5  # a channel that is never non-zero keeps a finite scale


def weight_matmuls_by_input(model: onnx.ModelProto, exclude: Iterable[str] = ()) -> dict[str, list[onnx.NodeProto]]:
    """The MatMuls with a 2-D float constant weight, grouped by the activation they read."""
    inits = {i.name: i for i in model.graph.initializer}
    readers = Counter(i for n in model.graph.node for i in n.input)
    skip = set(exclude)
    groups: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        w = inits.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) == 2 else None
        if (w is not None and len(w.dims) == 2 and w.data_type == TensorProto.FLOAT and node.name not in skip
                and readers[w.name] == 1):  # a weight read twice (tied) cannot take two sets of scales
            groups.setdefault(node.input[0], []).append(node)
    return groups


def channel_peaks(model: onnx.ModelProto, tensors: Sequence[str],
                  batches: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """max |x| per last-axis channel of each of ``tensors``, over the fp32 graph run on ``batches``."""
    from compress.session import make_session

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(helper.make_tensor_value_info(t, TensorProto.FLOAT, None) for t in tensors)
    peaks: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="smooth-") as tmp:  # a file, so a graph over 2 GiB loads too
        session = make_session(save_model(probe, Path(tmp) / "probe.onnx"), "cpu")
        feeds = [i.name for i in session.get_inputs()]
        for batch in batches:
            outs = session.run(list(tensors), {n: batch[n] for n in feeds})
            for name, x in zip(tensors, outs, strict=True):
                peak = np.abs(x).reshape(-1, x.shape[-1]).max(axis=0)
                peaks[name] = np.maximum(peaks[name], peak) if name in peaks else peak
        del session
    return peaks


def smooth_scales(act_peak: np.ndarray, weight_peak: np.ndarray, alpha: float) -> np.ndarray:
    """SmoothQuant's per-channel divisor ``s = a^α / w^(1-α)``."""
    a, w = np.maximum(act_peak, _FLOOR), np.maximum(weight_peak, _FLOOR)
    return (a**alpha / w ** (1 - alpha)).astype(np.float32)


def smooth_activations(model: onnx.ModelProto, batches: Sequence[dict[str, np.ndarray]], alpha: float,
                       exclude: Iterable[str] = (), peaks: dict[str, np.ndarray] | None = None) -> list[str]:
    """Rewrite ``model`` in place so each weight MatMul's input is smoothed; returns the tensors smoothed.

    Args:
        model: an fp32 graph.
        batches: calibration inputs, as the graph takes them.
        alpha: how much of the activation's range moves into the weights (0: none, 1: all).
        exclude: MatMul node names to leave alone (the accuracy gate keeps these in fp32 anyway).
        peaks: channel peaks measured before on this graph, by tensor; the missing ones are measured
            and added (the accuracy gate quantizes one graph many times).
    """
    groups = weight_matmuls_by_input(model, exclude)
    if not groups or not batches:
        return []
    peaks = {} if peaks is None else peaks
    missing = [x for x in groups if x not in peaks]
    if missing:
        peaks.update(channel_peaks(model, missing, batches))
    inits = {i.name: i for i in model.graph.initializer}
    muls: dict[str, onnx.NodeProto] = {}  # first reader's first output -> the Mul to put before it
    for x, nodes in groups.items():
        weights = [numpy_helper.to_array(inits[n.input[1]]) for n in nodes]
        s = smooth_scales(peaks[x], np.max([np.abs(w).max(axis=1) for w in weights], axis=0), alpha)
        for node, w in zip(nodes, weights, strict=True):
            inits[node.input[1]].CopyFrom(numpy_helper.from_array(w * s[:, None], node.input[1]))
            node.input[0] = f"{x}_smoothed"
        model.graph.initializer.append(numpy_helper.from_array(1 / s, f"{x}_smooth_divisor"))
        muls[nodes[0].output[0]] = helper.make_node("Mul", [x, f"{x}_smooth_divisor"], [f"{x}_smoothed"],
                                               name=f"{x}_smooth")
    _insert_before(model.graph, muls)
    return list(groups)


def _insert_before(graph: onnx.GraphProto, muls: dict[str, onnx.NodeProto]) -> None:
    """Put each new node right before the node it feeds first, keeping the graph in topological order."""
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.output[0] in muls:
            nodes.append(muls[node.output[0]])
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
