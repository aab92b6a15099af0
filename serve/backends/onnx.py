"""ONNX Runtime backend: the artifact's graph, as compressed.

The session is built here rather than with ``compress.runtime.make_session`` for the settings a
server needs and a one-off run does not:

- the intra-op threads do not spin-wait after a forward pass: the event loop and the tokenizer
  need those cores between passes (spinning threads cut the served throughput to less than half on
  a 2-core machine);
- no memory pattern and no CPU arena: every pass has another shape, so a pattern planned for one
  shape is never reused, and an arena keeps the largest shapes' memory for good. Measured on int8
  MiniLM over 300 passes of random shapes (up to 8,192 tokens): RSS 98 MB -> 585 MB and still
  growing with both (today's defaults), 412 MB with the arena alone, 307-347 MB with neither, at
  the same speed within noise.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from serve.config import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import onnxruntime as ort

    from serve.models import ModelSpec


def make_session(path: str | Path, device: str = "cpu", threads: int | None = None) -> ort.InferenceSession:
    """An ONNX Runtime session for serving: explicit threads, no spin-waiting, no silent CPU fallback.

    Raises:
        ConfigError: CUDA was asked for and onnxruntime cannot use it.
    """
    import onnxruntime as ort

    from compress.runtime import PROVIDERS, default_threads

    if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        raise ConfigError("device cuda was requested but onnxruntime has no CUDAExecutionProvider; install "
                          "onnxruntime-gpu or set serve.device: cpu")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or default_threads()
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.enable_mem_pattern = False
    opts.enable_cpu_mem_arena = False
    session = ort.InferenceSession(str(path), sess_options=opts, providers=PROVIDERS[device])
    if device == "cuda" and session.get_providers()[0] != "CUDAExecutionProvider":
        raise ConfigError(f"the CUDA provider failed to initialise for {path}: {session.get_providers()}")
    return session


class OnnxBackend:
    def __init__(self, spec: ModelSpec) -> None:
        streams = spec.streams()
        threads = max(1, spec.threads() // streams)  # per forward pass
        path = Path(spec.artifact) / spec.graph_file
        self.session = make_session(path, spec.options.device, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.description = (f"onnxruntime on {spec.options.device}, {streams} stream(s) of {threads} intra-op "
                            f"thread(s), {path}")

    def __call__(self, encoding: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.session.run(self.output_names, {n: encoding[n] for n in self.input_names})
        return dict(zip(self.output_names, outputs, strict=True))
