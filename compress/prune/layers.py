"""Whole layers: keep the best ``keep`` of n, dropping one at a time the layer whose absence changes
the output least (measured again after each drop)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from compress.prune.importance import ScoreConfig, layer_importance
from compress.prune.model_parts import layer_list
from compress.prune.plan import PrunePlan, apply_plan
from compress.prune.reconstruct import ReconstructConfig, reconstruct
from compress.prune.registry import PruneContext, register

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass(frozen=True)
class LayersConfig:
    """Keep ``keep`` layers (or drop ``fraction`` of them when ``keep`` is None).

    Args:
        keep: layers to keep.
        fraction: of the layers to drop, when ``keep`` is None.
        refit: least-squares repair of the kept layers towards the teacher layers they stand for (None: off).
        scoring: the sample data (``batches`` of it are run once per remaining layer per drop).
    """

    keep: int | None = None
    fraction: float = 0.25
    refit: ReconstructConfig | None = field(default_factory=ReconstructConfig)
    scoring: ScoreConfig = field(default_factory=lambda: ScoreConfig(batches=4))


@register("layers", LayersConfig)
def prune_layers(model: PreTrainedModel, cfg: LayersConfig, ctx: PruneContext) -> PrunePlan:
    """Drop the least important layers one by one until ``keep`` remain; returns the plan."""
    n = len(layer_list(model))
    keep = cfg.keep if cfg.keep is not None else n - round(cfg.fraction * n)
    if not 1 <= keep <= n:
        raise ValueError(f"keep {keep} layers of {n}: give a number between 1 and {n}")
    alive = list(range(n))
    batches = ctx.stream.batches(cfg.scoring.batches)
    while len(alive) > keep:
        scores = layer_importance(model, ctx.task, batches, ctx.pooling)
        drop = min(range(len(alive)), key=lambda i: scores[i])
        ctx.say(f"dropping layer {alive[drop]} (loss without it {scores[drop]:.4f})")
        apply_plan(model, PrunePlan(layers=[i for i in range(len(alive)) if i != drop]))
        del alive[drop]
    if cfg.refit is not None:
        refit_batches = ctx.stream.batches(cfg.refit.batches, start=10_000)
        reconstruct(model, ctx.teacher, ctx.task, refit_batches, cfg.refit, layer_map=alive, pooling=ctx.pooling)
    return PrunePlan(layers=alive)
