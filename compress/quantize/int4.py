"""4-bit weight-only quantization (ONNX Runtime MatMulNBits, block-wise symmetric)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compress.quantize import QuantContext, register


@dataclass(frozen=True)
class Int4Config:
    block_size: int = 32
    symmetric: bool = True
    # 4 = activations in int8 inside MatMulNBits: the fast path on CPUs with VNNI/AVX2.
    accuracy_level: int = 4
    # Embedding tables dominate small models; quantizing them (GatherBlockQuantized) shrinks those too.
    quantize_embeddings: bool = False


@register("int4", Int4Config, op_types=("MatMul", "Gather"))
def quantize_weight_only_int4(src: Path, dst: Path, cfg: Int4Config, ctx: QuantContext,
                              exclude: Sequence[str]) -> dict[str, Any]:
    """Quantize constant MatMul weights (and optionally Gather tables) to 4 bits, block-wise."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    if cfg.block_size < 16 or cfg.block_size & (cfg.block_size - 1):
        raise ValueError(f"block size must be a power of two >= 16, got {cfg.block_size}")
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
