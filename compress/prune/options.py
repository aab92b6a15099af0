"""``compress run --prune``: the options, and pruning with recovery as a run does it (texts, checkpoint
beside the artifact, errors as :class:`~compress.CompressError`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compress import CompressError
from compress.data import read_texts

if TYPE_CHECKING:
    from compress.sources import LoadedModel

Progress = Callable[[str], None]


@dataclass
class PruneOptions:
    """``--prune``: remove structure before export, then recover by distillation from the original.

    Args:
        fraction: of the encoder layers' parameters (``structured``), or of the method's own units.
        speedup: instead of a fraction, an estimated int8 CPU speed-up of the encoder (``structured``).
        method: a registered pruning method (:func:`compress.prune.methods`).
        recover_steps: distillation steps (0: none).
        recover_data: text file, one example per line, to score and distil on (default: in-domain
            data fitting the vocabulary, minus the validation texts).
        recover_hidden_weight: weight of the hidden-state MSE against the task's distillation loss
            (default 1; see :class:`compress.prune.objectives.LossWeights`).
        recover_group_by_length: batch distillation texts of similar length together (True), or at
            random (False); default: grouped when that saves at least a quarter of the padded tokens
            (see :class:`compress.prune.distill.DistillConfig`).
        checkpoint: where recovery checkpoints go (default: beside the artifact, removed once it is written).
        head_cost_factor: ``structured`` only: how much dearer a head counts in the ranking.
        rounds: prune in this many steps, scoring again before each (default: the method's).
        score_batches: batches of 16 texts importance is measured on (default: the method's).
    """

    fraction: float | None = None
    speedup: float | None = None
    method: str = "structured"
    recover_steps: int = 300
    recover_data: str | None = None
    recover_hidden_weight: float | None = None
    recover_group_by_length: bool | None = None
    checkpoint: str | None = None
    head_cost_factor: float | None = None
    rounds: int | None = None
    score_batches: int | None = None



def checkpoint_path(out: Path, prune: PruneOptions | None) -> Path | None:
    """Where the recovery checkpoint of the artifact ``out`` goes (None: not pruned)."""
    if prune is None:
        return None
    return Path(prune.checkpoint) if prune.checkpoint else out.parent / f".{out.name}.prune-checkpoint.pt"


def prune_for_run(loaded: LoadedModel, opts: PruneOptions, validate_texts: list[str], checkpoint: Path | None,
                  progress: Progress | None = None) -> tuple[LoadedModel, dict[str, Any]]:
    """Prune and recover ``loaded`` as ``opts`` say, for ``compress run``.

    Args:
        loaded: the original model (not modified).
        opts: the ``--prune`` options.
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
    from compress.prune.distill import DistillConfig
    from compress.prune.importance import ScoreConfig
    from compress.prune.objectives import LossWeights
    from compress.prune.workflow import prune_and_recover, recovery_texts

    try:
        overrides: dict[str, Any] = {"head_cost_factor": opts.head_cost_factor} if opts.head_cost_factor else {}
        if opts.rounds:
            overrides["rounds"] = opts.rounds
        if opts.score_batches:
            overrides["scoring"] = ScoreConfig(batches=opts.score_batches)
        config = make_config(opts.method, opts.fraction, speedup=opts.speedup, **overrides)
        hidden = opts.recover_hidden_weight
        weights = LossWeights() if hidden is None else LossWeights(hidden=hidden)
        recover = DistillConfig(steps=opts.recover_steps, weights=weights, group_by_length=opts.recover_group_by_length,
                                checkpoint=str(checkpoint) if checkpoint else None)
    except (TypeError, ValueError) as e:
        raise CompressError(f"--prune: {e}") from None
    held_out = set(validate_texts)
    if opts.recover_data:
        texts = [t for t in read_texts(opts.recover_data) if t not in held_out]
        if not texts:
            raise CompressError(f"--recover-data {opts.recover_data} has no texts outside the validation set")
    else:
        texts = recovery_texts(loaded.tokenizer, exclude=validate_texts)
    try:
        return prune_and_recover(loaded, config, texts, recover, validate_texts=validate_texts[:128],
                                 data_name=opts.recover_data or "", progress=progress)
    except ValueError as e:
        raise CompressError(str(e)) from None
