"""Quantization methods: one small config model + one registered function per method, each in its module.

    quantize("int8", fp32_onnx, out_onnx, Int8DynamicConfig(), ctx)

An ONNX method takes an fp32 ONNX file and writes a quantized one; ``exclude`` names nodes to keep in
higher precision (the accuracy gate fills it). A torch method (bitsandbytes) quantizes a module at load.
The registry is the one list of methods: the recipe's ``method`` field, the CLI's method flags and
their options are all read from it (compress/quantize/registry.py), so a new method is one module
that calls :func:`register` and is imported here.
Presets are data, chosen by CPU instruction set (:meth:`MethodConfig.for_cpu`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Importing the method modules registers them.
from compress.quantize import bnb, fp16, fp32, int4, int8_dynamic, int8_static  # noqa: F401
from compress.quantize.registry import (
    Backend,
    Method,
    MethodConfig,
    QuantContext,
    QuantFn,
    get_method,
    method_config,
    methods,
    register,
)

__all__ = ["Backend", "Method", "MethodConfig", "QuantContext", "QuantFn", "get_method", "method_config", "methods",
           "quantize", "register"]


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

