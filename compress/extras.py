"""What the serving-only install leaves out, and the one-line error that says how to add it."""

from __future__ import annotations

import importlib.util

from compress import CompressError

# The modules `compress` (and serve's torch backend and first-start compression) cannot run without.
COMPRESS_MODULES = ("torch", "transformers", "optimum", "onnx", "cpuinfo")
INSTALL = 'pip install "mlm-compress[compress]"'


def require_compress(what: str) -> None:
    """Raise unless the ``compress`` extra is installed.

    Example:
        >>> require_compress("serve.backend: torch")  # doctest: +SKIP

    Raises:
        CompressError: ``what needs torch, transformers, …: pip install "mlm-compress[compress]"``.
    """
    missing = [m for m in COMPRESS_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise CompressError(f"{what} needs {', '.join(missing)}, which the serving install leaves out: {INSTALL}")
