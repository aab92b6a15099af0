"""``compress run --prune``: pruning with recovery as a run does it, from the recipe's ``prune:`` step
(:class:`compress.recipe.PruneStep`): texts, checkpoint beside the artifact, errors as
:class:`~compress.CompressError`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compress import CompressError
from compress.data import read_texts

if TYPE_CHECKING:
    from compress.prune.distill import DistillConfig
    from compress.recipe import PruneStep
    from compress.sources import LoadedModel

Progress = Callable[[str], None]
Figures = dict[str, dict[str, float]]  # gate label -> metric -> value
TEXT_FIELDS = ("text", "text_pair", "query", "anchor", "positive", "negative", "tokens")  # of a task data file


def checkpoint_path(out: Path, prune: PruneStep | None) -> Path | None:
    """Where the recovery checkpoint of the artifact ``out`` goes (None: not pruned)."""
    if prune is None:
        return None
    return Path(prune.checkpoint) if prune.checkpoint else out.parent / f".{out.name}.prune-checkpoint.pt"


def prune_for_run(loaded: LoadedModel, opts: PruneStep, validate_texts: list[str], checkpoint: Path | None,
                  progress: Progress | None = None) -> tuple[LoadedModel, dict[str, Any]]:
    """Prune and recover ``loaded`` as ``opts`` say, for ``compress run``.

    Args:
        loaded: the original model (not modified).
        opts: the recipe's ``prune:`` step.
        validate_texts: the run's validation texts: never trained on; the first 128 give the
            before/after figures.
        checkpoint: the recovery checkpoint (see :func:`checkpoint_path`).
        progress: called with progress lines.

    Returns:
        The pruned model and the manifest's ``pruning`` record
        (:func:`compress.prune.workflow.prune_and_recover`).

    Raises:
        CompressError: a bad option, recovery data with nothing outside the validation set, or a
            checkpoint from another recipe.
    """
    from compress.prune import make_config
    from compress.prune.importance import ScoreConfig
    from compress.prune.workflow import prune_and_recover

    try:
        overrides: dict[str, Any] = {"head_cost_factor": opts.head_cost_factor} if opts.head_cost_factor else {}
        if opts.rounds:
            overrides["rounds"] = opts.rounds
        if opts.score_batches:
            overrides["scoring"] = ScoreConfig(batches=opts.score_batches)
        config = make_config(opts.method, opts.fraction, speedup=opts.speedup, **overrides)
    except (TypeError, ValueError) as e:
        raise CompressError(f"--prune: {e}") from None
    recover = recovery_config(opts, checkpoint)
    texts = training_texts(loaded, opts, validate_texts)
    try:
        return prune_and_recover(loaded, config, texts, recover, validate_texts=validate_texts[:128],
                                 data_name=opts.recover_data or "", progress=progress)
    except ValueError as e:
        raise CompressError(str(e)) from None


def recovery_config(opts: PruneStep, checkpoint: Path | None) -> DistillConfig:
    """The distillation ``opts`` ask for.

    Raises:
        CompressError: a value distillation refuses.
    """
    from compress.prune.distill import DistillConfig
    from compress.prune.objectives import LossWeights

    try:
        hidden = opts.recover_hidden_weight
        weights = LossWeights() if hidden is None else LossWeights(hidden=hidden)
        return DistillConfig(steps=opts.recover_steps, weights=weights, group_by_length=opts.recover_group_by_length,
                             checkpoint=str(checkpoint) if checkpoint else None)
    except (TypeError, ValueError) as e:
        raise CompressError(f"--prune: {e}") from None


def _data_texts(path: str) -> list[str]:
    """A text file's lines, or the texts of a task data file (JSONL, CSV, TSV as ``compress train`` reads them):
    every text field of every row (a retrieval file's queries and passages, a tagging file's words joined)."""
    from compress.train.rows import read_rows

    if Path(path).suffix.lower() not in (".jsonl", ".json", ".csv", ".tsv"):
        return read_texts(path)
    texts: dict[str, None] = {}
    for row in read_rows(path):
        for name in TEXT_FIELDS:
            value = row.fields.get(name)
            if isinstance(value, list):
                value = " ".join(map(str, value))
            if isinstance(value, str) and value.strip():
                texts[value.strip()] = None
    if not texts:
        raise CompressError(f"--recover-data {path}: no text fields ({', '.join(TEXT_FIELDS)}) in its rows")
    return list(texts)


def training_texts(loaded: LoadedModel, opts: PruneStep, validate_texts: list[str]) -> list[str]:
    """The texts to score and distil on: ``--recover-data`` (a text file, or a task data file's texts) or
    in-domain data, minus the validation texts.

    Raises:
        CompressError: recovery data with nothing outside the validation set.
    """
    from compress.prune.workflow import recovery_texts

    held_out = set(validate_texts)
    if opts.recover_data:
        texts = [t for t in _data_texts(opts.recover_data) if t not in held_out]
        if not texts:
            raise CompressError(f"--recover-data {opts.recover_data} has no texts outside the validation set")
        return texts
    return recovery_texts(loaded.tokenizer, exclude=validate_texts)


def search_for_run(loaded: LoadedModel, opts: PruneStep, validate_texts: list[str],
                   score: Callable[[LoadedModel], Figures], passes: Callable[[Figures], bool],
                   original: Figures | None = None, progress: Progress | None = None
                   ) -> tuple[LoadedModel, dict[str, Any]]:
    """``--prune auto``: the fastest pruned ``loaded`` inside the task gates (:mod:`compress.prune.search`).

    Args:
        loaded: the original model (not modified).
        opts: the recipe's ``prune:`` step (``method: auto``, optional ``target_speedup``).
        validate_texts: the run's validation texts, never trained on.
        score: a model's task-gate figures; ``passes``: whether they are inside every gate.
        original: the original's figures, when already measured.
        progress: called with progress lines.

    Returns:
        The chosen model and the manifest's ``pruning`` record, the search under ``search``.

    Raises:
        CompressError: no candidate passes, or none reaches the target (the message says by how much).
    """
    from compress.prune.model_parts import encoder_params
    from compress.prune.search import SearchMiss, chosen_record, search_pruning, with_note

    recover = recovery_config(opts, None)  # candidates are not checkpointed: each is one short recovery
    texts = training_texts(loaded, opts, validate_texts)
    try:
        found = search_pruning(loaded, score, passes, texts, recover, target=opts.target_speedup, original=original,
                               progress=progress)
    except SearchMiss as e:
        raise CompressError(f"--prune auto: {e}") from None
    record = chosen_record(found, encoder_params(loaded.model))
    record["recovery"] = {**record.get("recovery", {}), "data": opts.recover_data or f"{len(texts)} in-domain texts"}
    return with_note(loaded, found), record
