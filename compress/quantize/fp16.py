"""fp16 weights and compute, for GPUs (on CPU it is slower than fp32: use int8 there)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from compress.quantize.registry import MethodConfig, QuantContext, register


class Fp16Config(MethodConfig):
    method: Literal["fp16"] = "fp16"
    keep_io_types: bool = Field(True, description="inputs and outputs stay int64/fp32, so clients see "
                                "no difference")


@register(Fp16Config, op_types=("MatMul", "Gather", "Add", "LayerNormalization", "Softmax"))
def convert_fp16(src: Path, dst: Path, cfg: Fp16Config, ctx: QuantContext,
                 exclude: Sequence[str]) -> dict[str, Any]:
    """fp16, for GPUs (slower than fp32 on CPUs).

    Converts float tensors to fp16, keeping the excluded nodes in fp32.
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=cfg.keep_io_types,
                                     node_block_list=list(exclude) or None)
    onnx.save(model, str(dst))
    return {"dtype": "float16", "keep_io_types": cfg.keep_io_types}
