"""Run an exported graph (ONNX Runtime) or its PyTorch original with one interface.

Both take the tokenizer's numpy encodings and return the task outputs by name, so validation,
benchmarks and the server compare like with like.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from compress import CompressError

if TYPE_CHECKING:
    import onnxruntime as ort

    from compress.artifact import Artifact
    from compress.export import TaskGraph
    from compress.head_graph import MultiHeadGraph

log = logging.getLogger(__name__)
Device = Literal["cpu", "cuda"]
Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]

PROVIDERS: dict[str, list[str]] = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
}


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def make_session(path: str | Path, device: Device = "cpu", threads: int | None = None) -> ort.InferenceSession:
    """An ONNX Runtime session on ``device`` with an explicit thread count.

    Raises:
        CompressError: CUDA was asked for but this onnxruntime build has no CUDA provider. We never
            fall back to the CPU silently.
    """
    import onnxruntime as ort

    if device not in PROVIDERS:
        raise CompressError(f"unknown device {device!r}; choose one of {', '.join(PROVIDERS)}")
    available = ort.get_available_providers()
    if device == "cuda" and "CUDAExecutionProvider" not in available:
        raise CompressError(
            "CUDA was requested but onnxruntime has no CUDAExecutionProvider (available: "
            f"{', '.join(available)}). Install the GPU build: pip uninstall -y onnxruntime && "
            "pip install onnxruntime-gpu — or use device cpu."
        )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or default_threads()
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=opts, providers=PROVIDERS[device])
    if device == "cuda" and session.get_providers()[0] != "CUDAExecutionProvider":
        raise CompressError(f"CUDA provider failed to initialise for {path}; providers: {session.get_providers()}")
    log.info("onnxruntime session %s on %s, %d threads", Path(path).name, device, opts.intra_op_num_threads)
    return session


class OnnxRunner:
    """Runs an ONNX task graph on numpy encodings."""

    def __init__(self, path: str | Path, device: Device = "cpu", threads: int | None = None) -> None:
        self.session = make_session(path, device, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, encoding: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {n: np.ascontiguousarray(encoding[n], dtype=np.int64) for n in self.input_names}
        return dict(zip(self.output_names, self.session.run(None, feed), strict=True))


class TorchRunner:
    """Runs the PyTorch task graph (the original model) on numpy encodings."""

    def __init__(self, graph: TaskGraph | MultiHeadGraph, input_names: Sequence[str], threads: int | None = None,
                 device: Device = "cpu") -> None:
        import torch

        self.graph = graph.eval()
        self.input_names = list(input_names)
        self.device = device
        if threads:
            torch.set_num_threads(threads)

    def __call__(self, encoding: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            out = self.graph(**{n: torch.from_numpy(np.asarray(encoding[n], dtype=np.int64)).to(self.device)
                                for n in self.input_names})
        return {k: (v.float() if v.is_floating_point() else v).cpu().numpy() for k, v in out.items()}


def torch_artifact_runner(artifact: Artifact, device: Device = "cpu", threads: int | None = None) -> TorchRunner:
    """Load a ``backend: torch`` artifact (fp32 weights + bitsandbytes recipe) and quantize it on ``device``."""
    from transformers import AutoConfig

    from compress.export import TaskGraph
    from compress.quantize.bnb import BnbConfig, quantize_bnb
    from compress.tasks import model_class

    m = artifact.manifest
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise CompressError("CUDA was requested but torch sees no GPU; use device cpu")
    config = AutoConfig.from_pretrained(str(artifact.directory))
    model = model_class(m.task, config).from_pretrained(str(artifact.directory)).eval()  # type: ignore[arg-type]
    if m.method in ("bnb-int8", "bnb-nf4"):
        model = quantize_bnb(model, BnbConfig.model_validate(m.quantization["config"]), device)
    else:
        model = model.to(device)
    mask_id = artifact.tokenizer().mask_token_id
    graph = TaskGraph(model, m.task, mask_token_id=mask_id, pooling=m.pooling or "mean")  # type: ignore[arg-type]
    return TorchRunner(graph, m.graph.inputs, threads=threads, device=device)
