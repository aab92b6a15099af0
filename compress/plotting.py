"""matplotlib for reports, headless, or None with a warning where it is not installed (plots are optional)."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or None (and a warning naming the package)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("no plot: pip install matplotlib")
        return None
    return plt
