"""Dynamic int8 (ONNX Runtime): int8 weights per channel, activations quantized at run time."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from compress.quantize.registry import MethodConfig, QuantContext, register

log = logging.getLogger(__name__)

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
    embedding_scales: Literal["row", "tensor"] = Field(
        "row", description="one scale per table row (plain ONNX ops; keeps short texts accurate) or one per "
        "table (ONNX Runtime's); tables fused by O2 into EmbedLayerNormalization take one per table")

    smooth_alpha: float | None = Field(
        0.7, ge=0, le=1, description="SmoothQuant: move this share of each activation's outlier range into "
        "the weights first (None or 0: off)")
    calibration: str | None = Field(None, description="text file, one example per line, to calibrate "
                                    "activations on (int8 default: in-domain texts held out from validation)")

    def calibration_file(self) -> str | None:
        return self.calibration if self.smooth_alpha else None

    def calibrates(self) -> bool:
        return bool(self.smooth_alpha)

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

    from compress.quantize.graph import remove_model

    ops = ["MatMul", "Attention"]
    if cfg.quantize_embeddings:  # the tables, standalone (Gather) or fused with LayerNorm by O2
        ops += ["EmbedLayerNormalization"] if _row_tables(cfg) else ["Gather", "EmbedLayerNormalization"]
    prepared, info = _prepare(src, dst.with_name(dst.stem + "_prepared.onnx"), cfg, ctx, exclude)
    try:
        quantize_dynamic(
            str(prepared), str(dst), op_types_to_quantize=ops, per_channel=cfg.per_channel,
            reduce_range=bool(cfg.for_cpu(ctx.isa).reduce_range), weight_type=QuantType.QInt8,
            nodes_to_exclude=list(exclude),
            extra_options={"MatMulConstBOnly": True, "DefaultTensorType": TensorProto.FLOAT},
        )
    finally:
        if prepared != src:
            remove_model(prepared)
    if "embedding_rows" in info:
        ops = [*ops, "Gather"]
    return {"op_types": ops, "weight_type": "int8", "activation_type": "uint8 (dynamic)", **info}


def _row_tables(cfg: Int8DynamicConfig) -> bool:
    return cfg.quantize_embeddings and cfg.embedding_scales == "row"


def _prepare(src: Path, dst: Path, cfg: Int8DynamicConfig, ctx: QuantContext,
             exclude: Sequence[str]) -> tuple[Path, dict[str, Any]]:
    """Smooth the activations and give the Gather tables int8 rows, in one pass over the fp32 graph.

    Returns the graph for ONNX Runtime's quantizer (``dst``, or ``src`` when nothing changes) and what
    was done. ONNX Runtime leaves the row-scaled Gathers alone: Gather is not among its op types then.
    """
    import onnx

    from compress.quantize.embedding_rows import quantize_embedding_rows
    from compress.quantize.graph import save_model
    from compress.quantize.smooth import smooth_activations

    smooth = bool(cfg.smooth_alpha and ctx.calibration)
    if cfg.smooth_alpha and not ctx.calibration:
        log.warning("int8: no calibration batches, so activations are not smoothed (smooth_alpha=%s)",
                    cfg.smooth_alpha)
    if not (smooth or _row_tables(cfg)):
        return src, {}
    model = onnx.load(str(src))
    info: dict[str, Any] = {}
    if smooth:
        info["smoothed_activations"] = len(smooth_activations(model, ctx.calibration, float(cfg.smooth_alpha or 0),
                                                              exclude, ctx.activation_peaks))
    if _row_tables(cfg):
        info["embedding_rows"] = quantize_embedding_rows(model, exclude)
    return save_model(model, dst), info
