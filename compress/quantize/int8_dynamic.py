"""Dynamic int8 (ONNX Runtime): int8 weights per channel, activations quantized at run time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from compress.quantize import MethodConfig, QuantContext, register

# Without VNNI, x86 multiplies u8*s8 pairs with a 16-bit saturating add (vpmaddubsw): 7-bit weights
# avoid the overflow. VNNI (and ARM) accumulate in 32 bits, so full-range weights are safe there.
REDUCE_RANGE: dict[str, bool] = {"avx512_vnni": False, "avx512": True, "avx2": True, "arm64": False, "generic": True}


class Int8DynamicConfig(MethodConfig):
    method: Literal["int8"] = "int8"
    per_channel: bool = Field(True, description="one scale per output channel (per tensor when off)")
    reduce_range: bool | None = Field(None, description="7-bit weights (default: from the "
                                      "CPU, on where u8*s8 saturates: AVX2 and AVX-512 without VNNI)")
    quantize_embeddings: bool = Field(True, description="quantize the embedding tables too (default: on for "
                                      "int8, off for int4)")

    def for_cpu(self, isa: str) -> Int8DynamicConfig:
        if self.reduce_range is not None:
            return self
        return self.model_copy(update={"reduce_range": REDUCE_RANGE.get(isa, REDUCE_RANGE["generic"])})


@register(Int8DynamicConfig, op_types=("MatMul", "Attention", "Gather", "EmbedLayerNormalization"))
def quantize_dynamic_int8(src: Path, dst: Path, cfg: Int8DynamicConfig, ctx: QuantContext,
                          exclude: Sequence[str]) -> dict[str, Any]:
    """Dynamic int8 (ONNX Runtime): int8 weights per channel, preset from the CPU's ISA.

    Quantizes MatMul weights (and embedding tables); activations are quantized at run time.
    """
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    ops = ["MatMul", "Attention"]
    if cfg.quantize_embeddings:  # the tables, standalone (Gather) or fused with LayerNorm by O2
        ops += ["Gather", "EmbedLayerNormalization"]
    quantize_dynamic(
        str(src), str(dst), op_types_to_quantize=ops, per_channel=cfg.per_channel,
        reduce_range=bool(cfg.for_cpu(ctx.isa).reduce_range), weight_type=QuantType.QInt8,
        nodes_to_exclude=list(exclude),
        extra_options={"MatMulConstBOnly": True, "DefaultTensorType": TensorProto.FLOAT},
    )
    return {"op_types": ops, "weight_type": "int8", "activation_type": "uint8 (dynamic)"}
