"""Inference backends behind one small interface: numpy encodings in, the task graph's outputs out.

- ``onnxruntime``: runs the artifact's ONNX graph on the CPU, or CUDA when asked.
- ``torch``: runs a ``backend: torch`` artifact (bitsandbytes int8/nf4 recipes, quantized at load), or,
  asked for on an ONNX artifact, the entry's source weights in fp32 or with bitsandbytes int8 / NF4.

The default is the artifact's own backend (its manifest says which).

Asking for a device or library that is not there fails at start with the fix in the message; there
is no silent fallback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from serve.config import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from serve.options import ServeOptions
    from serve.spec import ModelSpec


class Backend(Protocol):
    input_names: list[str]
    description: str

    def __call__(self, encoding: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def check_available(backend: str, options: ServeOptions, name: str) -> None:
    """Fail fast, before any worker starts, when the requested device or library is missing.

    Raises:
        ConfigError: with what to install or change.
    """
    if backend == "onnxruntime" and options.device == "cuda":
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ConfigError(
                f"{name}: device cuda was requested but onnxruntime has no CUDAExecutionProvider (available: "
                f"{', '.join(ort.get_available_providers())}). Install the GPU build: pip uninstall -y onnxruntime "
                "&& pip install onnxruntime-gpu, or set serve.device: cpu")
    if backend == "torch":
        from compress import CompressError
        from compress.extras import require_compress

        try:
            require_compress(f"{name}: backend torch")
        except CompressError as e:
            raise ConfigError(str(e)) from None
        import torch

        if options.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"{name}: device cuda was requested but torch sees no CUDA device (torch "
                              f"{torch.__version__}); install a CUDA build of torch or set serve.device: cpu")
        if options.precision != "fp32":
            try:
                import bitsandbytes  # noqa: F401
            except ImportError:
                raise ConfigError(f"{name}: precision {options.precision} needs bitsandbytes: "
                                  "pip install 'mlm-compress[bnb]'") from None


def load_backend(spec: ModelSpec) -> Backend:
    """The model's backend (``serve.backend``, else the artifact's), loaded and ready."""
    if spec.backend == "torch":
        from serve.backends.torch import TorchBackend

        return TorchBackend(spec)
    from serve.backends.onnx import OnnxBackend

    return OnnxBackend(spec)
