"""The one ONNX Runtime session factory: validation (``compress run``'s gate), the benchmarks and
``serve`` run an artifact's graph with the same settings, and the manifest records them.

The settings are a server's, since that is how an artifact runs once made:

- the intra-op threads do not spin-wait after a forward pass: a server's event loop and tokenizer
  need those cores between passes (spinning threads cut the served throughput to less than half on
  a 2-core machine);
- no memory pattern and no CPU arena: every pass has another shape, so a pattern planned for one
  shape is never reused, and an arena keeps the largest shapes' memory for good. Measured on int8
  MiniLM over 300 passes of random shapes (up to 8,192 tokens): RSS 98 MB -> 585 MB and still
  growing with both (onnxruntime's defaults), 412 MB with the arena alone, 307-347 MB with neither,
  at the same speed within noise.

None of them changes a result, so the gate's figures hold for the served graph. onnxruntime only:
this module imports neither torch nor transformers.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from compress import CompressError

if TYPE_CHECKING:
    import onnxruntime as ort

log = logging.getLogger(__name__)
Device = Literal["cpu", "cuda"]

PROVIDERS: dict[str, list[str]] = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
}
# Every session's options but the device and the intra-op threads (see the module's docstring).
SESSION_OPTIONS: dict[str, Any] = {"graph_optimization": "all", "inter_op_threads": 1, "intra_op_spinning": False,
                                   "memory_pattern": False, "cpu_memory_arena": False}


def default_threads() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def session_settings(device: Device = "cpu", threads: int | None = None) -> dict[str, Any]:
    """What :func:`make_session` sets, as the manifest records it."""
    return {"device": device, "intra_op_threads": threads or default_threads(), **SESSION_OPTIONS,
            "onnxruntime": _version()}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return "unknown"


def make_session(path: str | Path, device: Device = "cpu", threads: int | None = None) -> ort.InferenceSession:
    """An ONNX Runtime session on ``device`` with ``threads`` intra-op threads (default: every core).

    Example:
        >>> session = make_session("artifacts/minilm-int8/model.onnx", threads=2)  # doctest: +SKIP

    Raises:
        CompressError: an unknown device, or CUDA was asked for and this onnxruntime build cannot use
            it. There is no silent fallback to the CPU.
    """
    import onnxruntime as ort

    if device not in PROVIDERS:
        raise CompressError(f"unknown device {device!r}; choose one of {', '.join(PROVIDERS)}")
    available = ort.get_available_providers()
    if device == "cuda" and "CUDAExecutionProvider" not in available:
        raise CompressError(f"device cuda was requested but onnxruntime has no CUDAExecutionProvider (available: "
                            f"{', '.join(available)}). Install the GPU build: pip uninstall -y onnxruntime && "
                            "pip install onnxruntime-gpu, or use device cpu")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or default_threads()
    opts.inter_op_num_threads = SESSION_OPTIONS["inter_op_threads"]
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if SESSION_OPTIONS["intra_op_spinning"]
                                  else "0")
    opts.enable_mem_pattern = SESSION_OPTIONS["memory_pattern"]
    opts.enable_cpu_mem_arena = SESSION_OPTIONS["cpu_memory_arena"]
    session = ort.InferenceSession(str(path), sess_options=opts, providers=PROVIDERS[device])
    if device == "cuda" and session.get_providers()[0] != "CUDAExecutionProvider":
        raise CompressError(f"the CUDA provider failed to initialise for {path}; providers: {session.get_providers()}")
    log.info("onnxruntime session %s on %s, %d threads", Path(path).name, device, opts.intra_op_num_threads)
    return session
