"""Attention heads ranked globally by importance (Michel et al. 2019), removed physically."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from compress.prune.importance import ScoreConfig
from compress.prune.model_parts import all_parts, head_cost
from compress.prune.plan import PrunePlan
from compress.prune.reconstruct import ReconstructConfig
from compress.prune.registry import PruneContext, register
from compress.prune.structured import StructuredConfig, prune_ranked

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass(frozen=True)
class HeadsConfig:
    """Remove ``fraction`` of all attention heads, the least important first, wherever they are.

    Args:
        fraction: of the heads of all layers together.
        min_heads: heads every layer keeps.
        rounds: prune in this many steps, scoring again before each.
        refit: least-squares repair after each round (None: off).
        scoring: the sample data and score.
    """

    fraction: float = 0.3
    min_heads: int = 1
    rounds: int = 1
    refit: ReconstructConfig | None = field(default_factory=ReconstructConfig)
    scoring: ScoreConfig = field(default_factory=ScoreConfig)


@register("heads", HeadsConfig)
def prune_heads_by_importance(model: PreTrainedModel, cfg: HeadsConfig, ctx: PruneContext) -> PrunePlan:
    """Remove ``round(fraction * heads)`` heads ranked by gradient importance; returns the plan."""
    parts = all_parts(model)
    n = round(cfg.fraction * sum(p.num_heads for p in parts))
    spare = sum(p.num_heads - cfg.min_heads for p in parts)
    if not 0 < n <= spare:
        raise ValueError(f"fraction {cfg.fraction} removes {n} heads; between 1 and {spare} can go "
                         f"(keeping {cfg.min_heads} per layer)")
    inner = StructuredConfig(fraction=0.5, min_heads=cfg.min_heads, rounds=cfg.rounds, neurons=False,
                             refit=cfg.refit, scoring=cfg.scoring)
    return prune_ranked(model, inner, ctx, n * head_cost(parts[0]))
