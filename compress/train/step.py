"""The ``train:`` step of a models.yaml recipe: `compress train` into a model directory beside the
artifact, reused while its record says it was made from the same source, data and settings."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from compress.train.data import sha256_file
from compress.train.options import AUTO, TrainOptions
from compress.train.report import TRAINING

if TYPE_CHECKING:
    from compress.catalog import ModelEntry


def trained_model_dir(out: Path) -> Path:
    """Where the ``train:`` step keeps the trained model of the artifact ``out``."""
    return out.with_name(f"{out.name}.trained")


def _fits(target: Path, opts: TrainOptions) -> bool:
    """The model at ``target`` was trained with ``opts`` on the files as they are now."""
    record = target / TRAINING
    if not record.is_file():
        return False
    made = json.loads(record.read_text())
    hashes = {d["path"]: d["sha256"] for t in made["tasks"] for d in t["data"]}
    files = [f for t in opts.tasks for f in (t.data, t.held_out) if f and f != AUTO]
    return made["options"] == opts.model_dump() and all(
        Path(f).is_file() and hashes.get(f) == sha256_file(f) for f in files)


def train_step(entry: ModelEntry, out: Path, models: str | Path = "models.yaml",
               progress: Callable[[str], None] | None = None) -> Path:
    """Train ``entry``'s heads as its recipe's ``train:`` says (or reuse the model trained before) and
    return the trained model directory to compress."""
    from compress.train.workflow import train_model

    opts = entry.recipe.train
    assert opts is not None
    target = trained_model_dir(out)
    if _fits(target, opts):
        if progress:
            progress(f"reusing the trained model {target}")
        return target
    train_model(entry.name, target, opts, force=True, models=models, progress=progress,
                command=f"compress run {entry.name} (recipe train: step)")
    return target
