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
    from compress.recipe import PruneStep
    from compress.sources import LoadedModel

Progress = Callable[[str], None]


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
