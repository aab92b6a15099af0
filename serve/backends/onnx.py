"""ONNX Runtime backend: the artifact's graph, as compressed, in a session from the one factory
(:mod:`compress.session`) that validated it, with the settings its manifest records."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from compress import CompressError
from serve.config import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from serve.spec import ModelSpec


class OnnxBackend:
    def __init__(self, spec: ModelSpec) -> None:
        from compress.session import make_session

        streams = spec.streams()
        threads = max(1, spec.threads() // streams)  # per forward pass
        path = Path(spec.artifact) / spec.graph_file
        try:
            self.session = make_session(path, spec.options.device, threads)
        except CompressError as e:
            raise ConfigError(f"{spec.name}: {e}") from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.description = (f"onnxruntime on {spec.options.device}, {streams} stream(s) of {threads} intra-op "
                            f"thread(s), {path}")

    def __call__(self, encoding: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.session.run(self.output_names, {n: encoding[n] for n in self.input_names})
        return dict(zip(self.output_names, outputs, strict=True))
