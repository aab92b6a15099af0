"""`compress train`: load a model, give it a head per task, train them together on the shared encoder,
score every task's held-out part before, during and after, and write a model directory with its
record and report."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from compress import CompressError
from compress.staging import check_writable, staged_directory
from compress.train.blend import blend, snapshot
from compress.train.data import TaskData, key, load_task
from compress.train.keep import Keeper
from compress.train.loop import TrainLog, figures, train
from compress.train.model import EMBEDDING, HeadRecord, MultiTaskModel, Pooling
from compress.train.objectives import OBJECTIVES, Classification, Objective, TokenClassification
from compress.train.options import AUTO, TrainOptions
from compress.train.report import TRAINING, write_report
from compress.train.sampling import default_steps, task_probabilities
from compress.train.store import load_source, save_trained

Progress = Callable[[str], None]


def _add_head(model: MultiTaskModel, task: TaskData) -> bool:
    """Give ``model`` the head ``task`` trains; True when it is new (its weights start at random)."""
    kind, name = task.spec.kind, task.name
    known = model.records.get(name)
    if kind == "mlm":
        lm = next((r for r in model.records.values() if r.kind == "fill-mask"), None)
        if lm is None:
            raise CompressError(f"task {name}: the model has no masked-LM head; mlm trains the one it has")
        if lm.name != name:
            model.records = {(name if n == lm.name else n): r for n, r in model.records.items()}
            lm.name = name
        return False
    if known is not None:
        if known.kind != kind or (known.labels and known.labels != task.labels):
            raise CompressError(f"task {name}: the model's head {name} is {known.kind} with labels {known.labels}; "
                                "name the new head differently")
        return False
    sentence_model = EMBEDDING in model.records
    pooling: Pooling = "mean" if sentence_model else "pooler" if model.pooler is not None else "cls"
    if kind == "embedding":
        model.new_head(HeadRecord(name, "embedding", pooling="mean", normalize=True), 0)
    elif kind == "token-classification":
        model.new_head(HeadRecord(name, kind, labels=task.labels), len(task.labels))
    elif kind == "rerank":
        model.new_head(HeadRecord(name, "rerank", pooling="cls" if sentence_model else pooling), 1)
    else:
        model.new_head(HeadRecord(name, "classification", labels=task.labels, pooling=pooling), len(task.labels))
    return True


def _keep_texts(opts: TrainOptions, tok: Any, tasks: list[TaskData]) -> list[str] | None:
    """``--keep-on``'s texts, less any that a held-out example contains (held-out data is never trained on).

    Raises:
        CompressError: too few texts left.
    """
    if opts.keep_on is None:
        return None
    from compress.data import read_texts
    from compress.train.data import auto_texts

    texts = auto_texts(tok)[0] if opts.keep_on == AUTO else read_texts(opts.keep_on)
    held = "\x00".join(key(x) + "\x00" + _other_text(x) for t in tasks for x in t.held_out)
    kept = [t for t in dict.fromkeys(texts) if t not in held]
    if len(kept) < 2:
        raise CompressError(f"--keep-on {opts.keep_on}: fewer than 2 texts left once held-out ones are removed")
    return kept


def _other_text(example: Any) -> str:
    """An example's second text (a positive, a passage, a pair's second), if it has one."""
    return str(getattr(example, "positive", None) or getattr(example, "text_pair", None) or "")


def _texts(task: TaskData) -> list[str]:
    return [key(x).replace("\x00", " ") for x in task.held_out]


def train_model(spec: str, out: str | Path, opts: TrainOptions, *, force: bool = False,
                models: str | Path = "models.yaml", trust_pickle: bool = False, command: str = "",
                progress: Progress | None = None) -> dict[str, Any]:
    """Fine-tune ``spec``'s encoder with a head per task and write the model directory ``out``.

    Args:
        spec: a model directory (also one `compress train` wrote), weights file, models.yaml name or hub id.
        out: the model directory to write (nothing is written when training fails).
        opts: the tasks, the kept heads, the schedule.
        force: replace an existing ``out``.
        models: models.yaml to look names up in.
        trust_pickle: allow a pickled module as the source (runs code from the file).
        command: the command line, recorded.
        progress: called with progress lines.

    Returns:
        The record written to ``out/training.json``.

    Raises:
        CompressError: bad input, with the fix in the message.

    Example:
        >>> opts = TrainOptions(tasks=[TaskSpec.parse("region:token-classification:regions.jsonl")])
        >>> train_model("antiberty", "models/antiberty-region", opts)  # doctest: +SKIP
    """
    from compress.catalog import DEFAULT_CATALOG, load_catalog

    out = Path(out)
    for t in opts.tasks:
        t.check_files()
    check_writable(out, force)  # before the slow part
    entry = None
    if not Path(spec).exists() and (Path(models).is_file() or Path(models) != DEFAULT_CATALOG):
        catalog = load_catalog(models)
        entry = catalog.get(spec) if spec in catalog.names() else None
    model, tok, source = load_source(spec, entry=entry, trust_pickle=trust_pickle)
    tasks = [load_task(t, opts, tok) for t in opts.tasks]
    original = snapshot(model) if opts.blend < 1 else {}  # before the new heads: they are not blended
    torch.manual_seed(opts.seed)  # the new heads' first weights: the same run after run
    new_heads = {t.name for t in tasks if _add_head(model, t)}
    objectives: list[Objective] = [OBJECTIVES[t.spec.kind](t, tok, opts) for t in tasks]
    keeper = Keeper(model, opts.keep_heads, _keep_texts(opts, tok, tasks), objectives[0].encode, opts.batch_size,
                    opts.seed)
    steps = opts.steps or default_steps([len(t.train) for t in tasks], opts.batch_size, opts.task_epochs())
    held_texts = [x for t in tasks for x in _texts(t)][: opts.n_eval]

    def evaluate() -> dict[str, Any]:
        model.eval()
        with torch.no_grad():
            return {"tasks": {o.name: o.evaluate(model, t.held_out) for o, t in zip(objectives, tasks, strict=True)},
                    "kept": keeper.agreement(model, objectives[0].encode, held_texts)}

    if progress:
        shares = task_probabilities([len(t.train) for t in tasks], opts)
        progress(f"training {len(tasks)} task(s) for {steps} steps: " + ", ".join(
            f"{t.name} ({t.spec.kind}, {len(t.train)} examples, {len(t.held_out)} held out, {p:.0%} of steps)"
            for t, p in zip(tasks, shares, strict=True)))
    checkpoint = Path(opts.checkpoint) if opts.checkpoint else out.parent / f".{out.name}.train-checkpoint.pt"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    if opts.probe and not checkpoint.exists():  # a resumed run has its heads' weights in the checkpoint
        _probe(model, objectives, tasks, new_heads, progress)
    identity = {"model": source.sha256 or source.path, "data": [sorted(t.sources.items()) for t in tasks]}
    log = train(model, tasks, objectives, keeper, opts, steps, new_heads=new_heads, evaluate=evaluate,
                checkpoint=checkpoint, identity=identity, progress=progress)
    if blend(model, original, opts.blend):
        log.evals.append({"step": steps, "blend": opts.blend, **evaluate()})
        if progress:
            progress(f"held out after blending {opts.blend:g} of the trained weights with the original: "
                     f"{figures(log.evals[-1], objectives)}")
    record = _record(source, opts, tasks, log, command)
    with staged_directory(out, force) as tmp:
        save_trained(model, tok, tmp, opts.max_length)
        (tmp / TRAINING).write_text(json.dumps(record, indent=2) + "\n")
        write_report(tmp, record, log)
    if not opts.checkpoint:
        checkpoint.unlink(missing_ok=True)  # the model is written: nothing left to resume
    return record


def _probe(model: MultiTaskModel, objectives: list[Objective], tasks: list[TaskData], new_heads: set[str],
           progress: Progress | None) -> None:
    """Start each new classification and token-classification head as a linear probe on the frozen encoder
    (:mod:`compress.train.probe`)."""
    from compress.train.probe import probe_heads

    heads = {o.name: (o.features, list(t.train)) for o, t in zip(objectives, tasks, strict=True)
             if o.name in new_heads and isinstance(o, Classification | TokenClassification)}
    if heads and progress:
        progress(f"fitting {', '.join(heads)} as a linear probe on the frozen encoder's outputs")
    for name, accuracy in probe_heads(model, heads).items():  # type: ignore[arg-type]
        if progress:
            progress(f"linear probe {name}: training accuracy {accuracy:.4f}")


def _record(source: Any, opts: TrainOptions, tasks: list[TaskData], log: TrainLog, command: str) -> dict[str, Any]:
    """training.json: how the model was made, and each task's held-out figures before and after."""
    return {
        "base_model": {"spec": source.spec, "sha256": source.sha256, "kind": source.kind},
        "tasks": [{"name": t.name, "kind": t.spec.kind, "weight": t.spec.weight, "labels": t.labels or None,
                   "data": [{"path": p, "sha256": h} for p, h in t.sources.items()],
                   "train_examples": len(t.train), "held_out_examples": len(t.held_out),
                   "held_out": t.spec.held_out or f"{opts.held_out_fraction:.0%} of the data (seed {opts.seed})",
                   "steps": log.counts[t.name]} for t in tasks],
        "kept_heads": opts.keep_heads, "frozen_heads": opts.freeze_heads, "frozen_encoder": opts.freeze_encoder,
        "steps": log.steps, "resumed_from": log.resumed_from, "train_seconds": round(log.seconds, 1),
        "options": opts.model_dump(), "before": log.evals[0], "after": log.evals[-1],
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "command": command,
    }
