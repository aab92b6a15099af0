"""Continued masked-LM training on a new domain, with replay of the original one (`compress adapt`).

The public verb is :func:`adapt_model` with an :class:`AdaptOptions`; the model directory it writes
loads with ``AutoModelForMaskedLM.from_pretrained`` and ``compress run``, and carries
``adaptation.json``, the record of how it was made.
"""

from __future__ import annotations

from typing import Any

from compress.adapt.options import AdaptOptions

__all__ = ["AdaptOptions", "adapt_model"]


def __getattr__(name: str) -> Any:
    # adapt_model pulls in torch and the training loop; the recipe needs only AdaptOptions.
    if name == "adapt_model":
        from compress.adapt.workflow import adapt_model

        return adapt_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
