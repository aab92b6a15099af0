"""Dynamic int8 (ONNX Runtime): int8 weights per channel, activations quantized at run time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compress.quantize import QuantContext, register


@dataclass(frozen=True)
class Int8DynamicConfig:
    per_channel: bool = True
    # Without VNNI, x86 multiplies u8*s8 pairs with a 16-bit saturating add (vpmaddubsw): 7-bit weights
    # avoid the overflow. VNNI (and ARM) accumulate in 32 bits, so full-range weights are safe there.
    reduce_range: bool = False
    quantize_embeddings: bool = True


PRESETS: dict[str, Int8DynamicConfig] = {
    "avx512_vnni": Int8DynamicConfig(reduce_range=False),
    "avx512": Int8DynamicConfig(reduce_range=True),
    "avx2": Int8DynamicConfig(reduce_range=True),
    "arm64": Int8DynamicConfig(reduce_range=False),
    "generic": Int8DynamicConfig(reduce_range=True),
}


@register("int8", Int8DynamicConfig, op_types=("MatMul", "Attention", "Gather", "EmbedLayerNormalization"))
def quantize_dynamic_int8(src: Path, dst: Path, cfg: Int8DynamicConfig, ctx: QuantContext,
                          exclude: Sequence[str]) -> dict[str, Any]:
    """Quantize MatMul weights (and embedding tables) to int8 with ONNX Runtime."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    ops = ["MatMul", "Attention"]
    if cfg.quantize_embeddings:  # the tables, standalone (Gather) or fused with LayerNorm by O2
        ops += ["Gather", "EmbedLayerNormalization"]
    quantize_dynamic(
        str(src), str(dst), op_types_to_quantize=ops, per_channel=cfg.per_channel,
        reduce_range=cfg.reduce_range, weight_type=QuantType.QInt8, nodes_to_exclude=list(exclude),
        extra_options={"MatMulConstBOnly": True, "DefaultTensorType": TensorProto.FLOAT},
    )
    return {"op_types": ops, "weight_type": "int8", "activation_type": "uint8 (dynamic)"}
