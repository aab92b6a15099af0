"""Static int8 in QDQ format: activation ranges calibrated on sample texts ahead of time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from compress.quantize.int8_dynamic import REDUCE_RANGE
from compress.quantize.registry import MethodConfig, QuantContext, register


class Int8StaticConfig(MethodConfig):
    method: Literal["int8-static"] = "int8-static"
    calibration: str = Field(description="text file, one example per line, to calibrate "
                             "activation ranges on")
    per_channel: bool = True
    # As for dynamic int8: 7-bit weights where x86 without VNNI would saturate its u8*s8 16-bit adds
    # (compress picks it from the CPU; measured on AVX2: 22.9 dB SNR on a tiny BERT without, 27.9 with).
    reduce_range: bool | None = None
    calibrate: Literal["MinMax", "Entropy", "Percentile"] = Field(
        "Percentile", description="how activation ranges are set from the calibration data")
    percentile: float = Field(99.999, gt=50, le=100, description="the range's percentile "
                              "(calibrate Percentile)")
    symmetric_activations: bool = True

    def for_cpu(self, isa: str) -> Int8StaticConfig:
        if self.reduce_range is not None:
            return self
        return self.model_copy(update={"reduce_range": REDUCE_RANGE.get(isa, REDUCE_RANGE["generic"])})

    def calibration_file(self) -> str | None:
        return self.calibration


@register(Int8StaticConfig, op_types=("MatMul",))
def quantize_static_int8(src: Path, dst: Path, cfg: Int8StaticConfig, ctx: QuantContext,
                         exclude: Sequence[str]) -> dict[str, Any]:
    """Static int8 (QDQ), activation ranges calibrated on --calibration texts.

    Calibrates on ``ctx.calibration`` (the tokenized calibration texts) and writes a QDQ int8 model.
    """
    import onnx
    from onnx import TensorProto
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from tqdm.auto import tqdm

    if not ctx.calibration:
        raise ValueError("static int8 needs calibration texts: pass --calibration FILE")
    names = [i.name for i in onnx.load(str(src), load_external_data=False).graph.input]

    class Reader(CalibrationDataReader):
        """One batch per calibration step: batches differ in length, and ORT's histogram
        collectors stack the arrays of one step, so each step holds a single batch."""

        def __init__(self) -> None:
            self._batches = [{n: b[n] for n in names} for b in ctx.calibration]
            self._it: Iterator[dict[str, np.ndarray]] = iter(())
            self._bar = tqdm(total=len(self._batches), desc="calibrating", unit="batch", leave=False)

        def __len__(self) -> int:
            return len(self._batches)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._it = iter(self._batches[start_index:end_index])

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self._it, None)
            if item is not None:
                self._bar.update()
            elif self._bar.n >= len(self._batches):
                self._bar.close()
            return item

    quantize_static(
        str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["MatMul"],
        per_channel=cfg.per_channel, reduce_range=bool(cfg.for_cpu(ctx.isa).reduce_range),
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
        nodes_to_exclude=list(exclude), calibrate_method=CalibrationMethod[cfg.calibrate],
        extra_options={"DefaultTensorType": TensorProto.FLOAT, "ActivationSymmetric": cfg.symmetric_activations,
                       "MatMulConstBOnly": True, "CalibPercentile": cfg.percentile,
                       "CalibStridedMinMax": 1},  # collect batch by batch (see Reader)
    )
    return {"format": "QDQ", "calibration_batches": len(ctx.calibration), "calibrate": cfg.calibrate}
