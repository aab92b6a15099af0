"""Quantization methods: one small config dataclass + one registered function per method.

    quantize("int8", fp32_onnx, out_onnx, Int8DynamicConfig(), ctx)

A method takes an fp32 ONNX file and writes a quantized one; ``exclude`` names nodes to keep in
higher precision (the accuracy gate fills it). Presets are data, chosen by CPU instruction set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class QuantContext:
    """What a method may need besides its config."""

    isa: str = "generic"
    calibration: list[dict[str, np.ndarray]] = field(default_factory=list)


QuantFn = Callable[[Path, Path, Any, QuantContext, Sequence[str]], dict[str, Any]]


@dataclass(frozen=True)
class Method:
    name: str
    config_cls: type
    fn: QuantFn
    op_types: tuple[str, ...]  # node types the method may quantize, for the accuracy gate


_METHODS: dict[str, Method] = {}


def register(name: str, config_cls: type, op_types: tuple[str, ...] = ("MatMul",)) -> Callable[[QuantFn], QuantFn]:
    """Register ``fn`` as quantization method ``name``."""
    def deco(fn: QuantFn) -> QuantFn:
        _METHODS[name] = Method(name, config_cls, fn, op_types)
        return fn
    return deco


def get_method(name: str) -> Method:
    try:
        return _METHODS[name]
    except KeyError:
        raise ValueError(f"unknown quantization method {name!r}; registered: {', '.join(sorted(_METHODS))}") from None


def methods() -> list[str]:
    return sorted(_METHODS)


def quantize(name: str, src: Path, dst: Path, config: Any, ctx: QuantContext,
             exclude: Sequence[str] = ()) -> dict[str, Any]:
    """Quantize ``src`` into ``dst`` with method ``name``; returns details for the manifest."""
    method = get_method(name)
    root = logging.getLogger()
    root.addFilter(_drop_preprocess_advice)
    try:
        return method.fn(src, dst, config, ctx, exclude)
    finally:
        root.removeFilter(_drop_preprocess_advice)


def _drop_preprocess_advice(record: logging.LogRecord) -> bool:
    # ONNX Runtime advises its image-model pre-processing on every call; our exported graphs are
    # already shape-inferred, so the advice is noise in our progress output.
    return not str(record.msg).startswith("Please consider to run pre-processing")


# Importing the method modules registers them.
from compress.quantize import fp16, int4, int8_dynamic, int8_static  # noqa: E402, F401
