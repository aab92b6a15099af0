"""Compress masked-language-model encoders into validated ONNX artifacts.

The public verbs are :func:`compress.pipeline.compress_model` (what ``compress run`` calls) and
:func:`compress.artifact.load_artifact` (what ``serve`` and the benchmarks call).
"""

from __future__ import annotations

__version__ = "0.1.0"


class CompressError(Exception):
    """A problem the user can fix (bad input, missing file, wrong flag); the message says how."""
