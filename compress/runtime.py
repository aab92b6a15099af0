"""Run an exported graph (ONNX Runtime) or its PyTorch original with one interface.

Both take the tokenizer's numpy encodings and return the task outputs by name, so validation,
benchmarks and the server compare like with like. ONNX Runtime sessions come from :mod:`compress.session`,
the one factory that serving uses too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from compress import CompressError
from compress.session import Device, make_session

if TYPE_CHECKING:
    from compress.artifact import Artifact
    from compress.export import TaskGraph
    from compress.head_graph import MultiHeadGraph

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


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

