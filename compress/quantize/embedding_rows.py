"""Embedding tables in int8 with one scale per row, in plain ONNX ops.

ONNX Runtime's dynamic quantizer gives a Gather's table one scale for the whole tensor, so the rare
rows with large values set the step for every token. A token whose row is small then loses most of
its precision: on short texts, where one token weighs much in the mean, that costs the embedding
accuracy. Here each row gets its own symmetric scale, and the lookup becomes

    Gather(table_int8, ids) -> Cast(float) -> Mul(Gather(row_scales, ids))

which every execution provider runs, at a quarter of the fp32 table's size plus one float per row.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def quantize_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per row: ``table ≈ q * scale`` with ``q`` int8 and ``scale`` of shape (rows, 1)."""
    peak = np.abs(table).max(axis=1, keepdims=True)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(table / scale), -127, 127).astype(np.int8)
    return q, scale


def quantize_embedding_rows(model: onnx.ModelProto, exclude: Iterable[str] = ()) -> list[str]:
    """Rewrite, in place, each Gather over a 2-D float32 table (axis 0) to an int8 per-row lookup.

    Nodes named in ``exclude`` keep their fp32 table. Returns the names of the rewritten nodes.
    """
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    skip = set(exclude)
    done: list[str] = []
    nodes: list[onnx.NodeProto] = []
    tables: dict[str, tuple[str, str]] = {}  # fp32 table -> (int8 table, row scales), shared by its Gathers
    for node in graph.node:
        table = inits.get(node.input[0]) if node.op_type == "Gather" and node.input else None
        if (table is None or node.name in skip or table.data_type != TensorProto.FLOAT
                or len(table.dims) != 2 or _axis(node) != 0):
            nodes.append(node)
            continue
        if table.name not in tables:
            q, scale = quantize_rows(numpy_helper.to_array(table))
            tables[table.name] = (f"{table.name}_int8_rows", f"{table.name}_row_scale")
            graph.initializer.extend([numpy_helper.from_array(q, tables[table.name][0]),
                                      numpy_helper.from_array(scale, tables[table.name][1])])
        nodes.extend(_row_lookup(node, *tables[table.name]))
        done.append(node.name)
    del graph.node[:]
    graph.node.extend(nodes)
    _drop_unused(graph, set(tables))
    return done


def _axis(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 0)


def _row_lookup(node: onnx.NodeProto, q: str, scale: str) -> list[onnx.NodeProto]:
    """The four nodes that replace ``node``: gather int8 rows and their scales, then rescale."""
    ids, out, name = node.input[1], node.output[0], node.name or node.output[0]
    return [
        helper.make_node("Gather", [q, ids], [f"{out}_int8"], name=name, axis=0),
        helper.make_node("Gather", [scale, ids], [f"{out}_scale"], name=f"{name}_scale", axis=0),
        helper.make_node("Cast", [f"{out}_int8"], [f"{out}_cast"], name=f"{name}_cast", to=TensorProto.FLOAT),
        helper.make_node("Mul", [f"{out}_cast", f"{out}_scale"], [out], name=f"{name}_rescale"),
    ]


def _drop_unused(graph: onnx.GraphProto, names: set[str]) -> None:
    """Remove the fp32 tables among ``names`` that no node reads any more (a tied decoder may)."""
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    keep = [i for i in graph.initializer if i.name not in names or i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
