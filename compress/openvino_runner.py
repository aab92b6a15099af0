"""OpenVINO, the one adapter: compile an artifact's ONNX graph (or an NNCF int8 IR) on the CPU, run it
on numpy encodings, and quantize it statically with NNCF.

Like :mod:`compress.session` for ONNX Runtime, this module holds the settings every OpenVINO run
uses (one stream of ``threads`` inference threads, the latency hint: a server runs one forward
pass per stream), so a benchmark's figures hold for the served graph. Neither torch nor
transformers is imported here; ``openvino`` and ``nncf`` come with ``pip install "mlm-compress[openvino]"``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from compress import CompressError
from compress.session import default_threads

log = logging.getLogger(__name__)
INSTALL = 'pip install "mlm-compress[openvino]"'


def require_openvino(what: str, nncf: bool = False) -> None:
    """Raise :class:`CompressError` with the install line when openvino (or nncf) is missing."""
    for name in ("openvino", "nncf") if nncf else ("openvino",):
        try:
            __import__(name)
        except ImportError:
            raise CompressError(f"{what} needs {name}: {INSTALL}") from None


def openvino_settings(threads: int | None = None) -> dict[str, Any]:
    """What :func:`compile_openvino` sets, as a manifest or report records it."""
    from importlib.metadata import version

    return {"device": "cpu", "inference_threads": threads or default_threads(), "streams": 1,
            "performance_hint": "LATENCY", "openvino": version("openvino")}


def compile_openvino(path: str | Path, threads: int | None = None) -> Any:
    """An OpenVINO compiled model of ``path`` (ONNX or IR ``.xml``) on the CPU with ``threads`` threads.

    Example:
        >>> compiled = compile_openvino("artifacts/minilm-fp32/model.onnx", threads=2)  # doctest: +SKIP

    Raises:
        CompressError: openvino is not installed, or it cannot read the graph.
    """
    require_openvino("the openvino runtime")
    import openvino as ov

    core = ov.Core()
    try:
        model = core.read_model(str(path))
    except RuntimeError as e:
        raise CompressError(f"openvino cannot read {path}: {e}") from None
    config = {"INFERENCE_NUM_THREADS": threads or default_threads(), "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
    compiled = core.compile_model(model, "CPU", config)
    log.info("openvino model %s on cpu, %d threads", Path(path).name, config["INFERENCE_NUM_THREADS"])
    return compiled


class OpenVinoRunner:
    """Runs an ONNX task graph (or its OpenVINO IR) with OpenVINO on numpy encodings; outputs by name."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.compiled = compile_openvino(path, threads)
        self.input_names = [i.get_any_name() for i in self.compiled.inputs]
        self.output_names = [o.get_any_name() for o in self.compiled.outputs]
        self.request = self.compiled.create_infer_request()

    def __call__(self, encoding: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {n: np.ascontiguousarray(encoding[n], dtype=np.int64) for n in self.input_names}
        self.request.infer(feed)
        # copies: the request's output buffers are reused by the next pass
        return {n: self.request.get_output_tensor(i).data.copy() for i, n in enumerate(self.output_names)}


def quantize_nncf(src: str | Path, dst: str | Path, calibration: Sequence[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Static int8 with NNCF (post-training, transformer preset) of ONNX graph ``src``, saved as IR ``dst``.

    Args:
        src: the fp32 ONNX graph.
        dst: the ``.xml`` to write (its ``.bin`` beside it).
        calibration: tokenized in-domain batches (the ones ONNX Runtime's static int8 calibrates on).

    Returns:
        What was done, for a report: ``calibration_batches``, ``nncf``.

    Raises:
        CompressError: openvino or nncf is missing, or there is no calibration data.
    """
    require_openvino("NNCF static int8", nncf=True)
    import nncf
    import openvino as ov

    if not calibration:
        raise CompressError("NNCF static int8 needs calibration batches")
    model = ov.Core().read_model(str(src))
    names = [i.get_any_name() for i in model.inputs]
    dataset = nncf.Dataset(list(calibration), lambda b: {n: np.asarray(b[n], dtype=np.int64) for n in names})
    quantized = nncf.quantize(model, dataset, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calibration))
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(dst), compress_to_fp16=False)
    return {"calibration_batches": len(calibration), "nncf": nncf.__version__}
