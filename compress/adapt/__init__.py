"""Continued masked-LM training on a new domain, with replay of the original one (`compress adapt`).

The public verb is :func:`adapt_model` with an :class:`AdaptOptions`; the model directory it writes
loads with ``AutoModelForMaskedLM.from_pretrained`` and ``compress run``, and carries
``adaptation.json``, the record of how it was made.
"""

from __future__ import annotations

from compress.adapt.options import AdaptOptions
from compress.adapt.workflow import adapt_model

__all__ = ["AdaptOptions", "adapt_model"]
