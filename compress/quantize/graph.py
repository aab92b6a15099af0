"""Small helpers over ONNX graphs shared by the quantization methods and the accuracy gate."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import onnx

ONE_FILE_BYTES = 2**31 - 2**26  # protobuf's 2 GiB limit, with room for the graph itself
# "layer.3" in exported names; "Attention_3" for the attention that O2 fuses (numbered in layer order)
_LAYER = re.compile(r"layers?[./_](\d+)|^Attention_(\d+)$")


def weight_nodes(path: Path, op_types: tuple[str, ...]) -> list[str]:
    """Names of nodes of ``op_types`` whose weight is a constant initializer, in graph order."""
    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    out = []
    for node in model.graph.node:
        if node.op_type in op_types and any(i in inits for i in node.input):
            out.append(node.name)
    return out


def group_nodes(nodes: list[str], max_groups: int = 16) -> dict[str, list[str]]:
    """Group nodes by encoder layer (from their names) or, failing that, into contiguous chunks."""
    groups: dict[str, list[str]] = {}
    for n in nodes:
        m = _LAYER.search(n)
        key = f"layer.{m.group(1) or m.group(2)}" if m else ("embeddings" if "embed" in n.lower() else "head")
        groups.setdefault(key, []).append(n)
    if len(groups) > 2:
        return groups
    size = max(1, -(-len(nodes) // max_groups))
    return {f"nodes[{i}:{i + size}]": nodes[i:i + size] for i in range(0, len(nodes), size)}


def op_counts(path: Path) -> dict[str, int]:
    """How many nodes of each op type the graph has."""
    model = onnx.load(str(path), load_external_data=False)
    return dict(Counter(n.op_type for n in model.graph.node))


def file_bytes(path: Path) -> int:
    """Size of an ONNX file plus its external data files, if any."""
    total = path.stat().st_size
    for extra in path.parent.glob(path.name + "*"):
        if extra != path:
            total += extra.stat().st_size
    return total


def save_model(model: onnx.ModelProto, path: Path) -> Path:
    """Save ``model``; its weights go to ``path`` + ``.data`` beside it when one file could not hold them."""
    if model.ByteSize() < ONE_FILE_BYTES:
        onnx.save(model, str(path))
    else:
        onnx.save(model, str(path), save_as_external_data=True, location=_data_file(path).name)
    return path


def remove_model(path: Path) -> None:
    """Remove a graph written by :func:`save_model`, with its weights file if it has one."""
    for part in (path, _data_file(path)):
        part.unlink(missing_ok=True)


def _data_file(path: Path) -> Path:
    return path.with_name(path.name + ".data")
