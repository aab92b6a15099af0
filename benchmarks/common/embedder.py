"""An embedding artifact as bulk embedding runs it (:class:`serve.bulk.embedder.Embedder`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def embedder_entry(artifact: Path, threads: int) -> Any:
    """The models.yaml entry of ``artifact`` alone, on ``threads`` threads, truncating long texts."""
    from compress.catalog import ModelEntry

    return ModelEntry(name=artifact.name, source=str(artifact), artifact=str(artifact),
                      serve={"threads": threads, "truncate": True})
