"""Optional dependencies of the benchmarks (the ``bench`` extra): import one, or say what to install."""

from __future__ import annotations

import importlib
from typing import Any


def require(module: str, requirement: str) -> Any:
    """Import ``module``, or raise a ValueError that says what to install.

    Example:
        >>> stats = require("scipy.stats", "scipy>=1.10")  # doctest: +SKIP
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ValueError(f"the benchmarks need {requirement}: pip install '{requirement}' "
                         "(or pip install -e '.[bench]')") from None
