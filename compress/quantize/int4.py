"""4-bit weight-only quantization (ONNX Runtime MatMulNBits, block-wise symmetric)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from compress.quantize.registry import MethodConfig, QuantContext, register


class Int4Config(MethodConfig):
    method: Literal["int4"] = "int4"
    block_size: int = Field(32, ge=16, description="weights per quantization block, a power of two")
    symmetric: bool = Field(True, description="symmetric blocks (no zero point)")
    accuracy_level: int = Field(4, ge=0, le=4, description="MatMulNBits compute type; 4 = int8 "
                                "activations, the fast path on CPUs with VNNI/AVX2")
    # Embedding tables dominate small models; quantizing them (GatherBlockQuantized) shrinks those too.
    quantize_embeddings: bool = False

    @field_validator("block_size")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v & (v - 1):
            raise ValueError(f"block size must be a power of two >= 16, got {v}")
        return v


@register(Int4Config, op_types=("MatMul", "Gather"))
def quantize_weight_only_int4(src: Path, dst: Path, cfg: Int4Config, ctx: QuantContext,
                              exclude: Sequence[str]) -> dict[str, Any]:
    """4-bit weight-only (MatMulNBits, block-wise symmetric); embedding tables optionally too."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    ops: tuple[str, ...] = ("MatMul", "Gather") if cfg.quantize_embeddings else ("MatMul",)
    q = MatMulNBitsQuantizer(
        onnx.load(str(src)), bits=4, block_size=cfg.block_size, is_symmetric=cfg.symmetric,
        accuracy_level=cfg.accuracy_level, nodes_to_exclude=list(exclude), op_types_to_quantize=ops,
        quant_axes=(("MatMul", 0), ("Gather", 1)),
    )
    q.process()
    q.model.save_model_to_file(str(dst), use_external_data_format=False)
    return {"op_types": list(ops), "bits": 4, "block_size": cfg.block_size, "symmetric": cfg.symmetric,
            "accuracy_level": cfg.accuracy_level}
