"""The benchmark models of the served tasks that no packaged model has: a tagger and a reranker.

- ``antiberty-region``: AntiBERTy with a ``region`` token-classification head (IMGT regions of anarci's
  human and mouse antibody V genes, benchmarks/training/data.py);
- ``minilm-rerank``: all-MiniLM-L6-v2 with an ``rr`` rerank head (BBC headline -> body pairs, BM25-mined
  negatives).

Each is made with `compress train` on the real encoder, frozen, for :data:`STEPS` steps only: the head is
far from a good one, but a forward pass costs what a well-trained head's does, so the speed figures are
honest, and the accuracy figures compare each variant with the PyTorch model it was made from (the
trained directory, run as `compress run` exports it). `python -m benchmarks train` trains these tasks in
full. The model directory is cached under the benchmark's ``--cache`` and made again when
:data:`RECIPE_VERSION` changes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from compress.artifact import Manifest
    from compress.catalog import ModelEntry
    from compress.head_graph import MultiHeadModel

STEPS = 30
BATCH_SIZE = 16
RECIPE_VERSION = 1  # bump when the training changes, so cached models are made again


@dataclass(frozen=True)
class TaskModel:
    """One benchmark model: its encoder (a models.yaml name), its head, and the case file it trains on."""

    name: str
    encoder: str
    head: str
    kind: str  # token-classification or rerank
    data: str  # a benchmarks/training/data.py case file, without extension


TASK_MODELS = {m.name: m for m in (
    TaskModel("antiberty-region", "antiberty", "region", "token-classification", "region-train"),
    TaskModel("minilm-rerank", "minilm", "rr", "rerank", "rerank-train"),
)}


def is_task_model(name: str) -> bool:
    return name in TASK_MODELS


def _is_current(directory: Path) -> bool:
    info = directory / "benchmark.json"
    return info.is_file() and json.loads(info.read_text()).get("recipe_version") == RECIPE_VERSION


def _case_file(data: str, directory: Path) -> Path:
    """One case file (the rerank rows mine BM25 negatives over the BBC train split: seconds)."""
    from benchmarks.training.data import bbc_articles_split, case_rows, region_genes, region_item, rerank_rows

    rows = ([region_item(g) for g in region_genes()["train"]] if data == "region-train"
            else rerank_rows(bbc_articles_split()[0]) if data == "rerank-train" else case_rows()[data])
    path = directory / f"{data}.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def build_task_model(name: str, cache: Path, catalog: str = "models.yaml", rebuild: bool = False) -> Path:
    """Train (or reuse) benchmark model ``name``'s head on its frozen encoder; returns the model directory
    (`compress train`'s, under ``cache``).

    Raises:
        ValueError: not a benchmark task model (the message lists them).

    Example:
        >>> d = build_task_model("minilm-rerank", Path("artifacts/bench"))  # doctest: +SKIP
    """
    from compress.train import TaskSpec, TrainOptions, train_model

    spec = _spec(name)
    directory = cache / f"{name}-model"
    if _is_current(directory) and not rebuild:
        return directory
    print(f"training {name}: a {spec.kind} head on the frozen {spec.encoder} encoder, {STEPS} steps",
          file=sys.stderr, flush=True)
    data_dir = cache / f"{name}-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    task = TaskSpec(name=spec.head, kind=spec.kind, data=str(_case_file(spec.data, data_dir)))  # type: ignore[arg-type]
    opts = TrainOptions(tasks=[task], freeze_encoder=True, steps=STEPS, batch_size=BATCH_SIZE, warmup=0.0,
                        probe=False, n_eval=32, eval_every=STEPS, checkpoint_every=STEPS, log_every=10)
    train_model(spec.encoder, directory, opts, force=True, models=catalog,
                command=f"benchmarks: {name} ({STEPS} steps, frozen encoder)")
    (directory / "benchmark.json").write_text(json.dumps({"recipe_version": RECIPE_VERSION, "steps": STEPS}) + "\n")
    return directory


def _spec(name: str) -> TaskModel:
    if name not in TASK_MODELS:
        raise ValueError(f"{name!r} is not a benchmark task model; they are: {', '.join(TASK_MODELS)}")
    return TASK_MODELS[name]


def head_model(name: str, cache: Path, catalog: str = "models.yaml") -> MultiHeadModel:
    """The trained model's head alone, as `compress run` exports it (the PyTorch original of its artifacts)."""
    from compress.head_graph import trained_heads

    return trained_heads(build_task_model(name, cache, catalog), [_spec(name).head])


def served_entry(name: str, artifact: Path, cache: Path) -> ModelEntry:
    """The models.yaml entry that serves ``artifact`` of ``name`` (one head: requests name the model alone)."""
    from compress.catalog import ModelEntry

    _spec(name)
    return ModelEntry(name=name, source=str(cache / f"{name}-model"), artifact=str(artifact))


def artifact_task(manifest: Manifest) -> str:
    """What an artifact answers: its task, or its one head's (an artifact of a trained head alone)."""
    heads = manifest.heads or []
    return heads[0].task if len(heads) == 1 else manifest.task
