"""Feed-forward neurons ranked globally by activation x gradient (Taylor) importance, removed by slicing
the rows of the intermediate projection and the columns of the output projection."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from compress.prune.importance import ScoreConfig
from compress.prune.model_parts import all_parts, neuron_cost
from compress.prune.plan import PrunePlan
from compress.prune.reconstruct import ReconstructConfig
from compress.prune.registry import PruneContext, register
from compress.prune.structured import StructuredConfig, prune_ranked

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass(frozen=True)
class NeuronsConfig:
    """Remove ``fraction`` of all feed-forward neurons, the least important first, wherever they are.

    Args:
        fraction: of the neurons of all layers together.
        min_neurons: neurons every layer keeps.
        neuron_multiple: remove in chunks of this many per layer (counts that suit matrix kernels).
        rounds: prune in this many steps, scoring again before each.
        refit: least-squares repair after each round (None: off).
        scoring: the sample data and score.
    """

    fraction: float = 0.3
    min_neurons: int = 64
    neuron_multiple: int = 16
    rounds: int = 1
    refit: ReconstructConfig | None = field(default_factory=ReconstructConfig)
    scoring: ScoreConfig = field(default_factory=ScoreConfig)


@register("neurons", NeuronsConfig)
def prune_neurons_by_importance(model: PreTrainedModel, cfg: NeuronsConfig, ctx: PruneContext) -> PrunePlan:
    """Remove about ``fraction`` of the neurons (whole chunks) ranked by importance; returns the plan."""
    parts = all_parts(model)
    n = round(cfg.fraction * sum(p.num_neurons for p in parts))
    n -= n % cfg.neuron_multiple
    spare = sum(p.num_neurons - cfg.min_neurons for p in parts)
    if not 0 < n <= spare:
        raise ValueError(f"fraction {cfg.fraction} removes {n} neurons; between {cfg.neuron_multiple} and "
                         f"{spare} can go (keeping {cfg.min_neurons} per layer)")
    inner = StructuredConfig(fraction=0.5, min_neurons=cfg.min_neurons, neuron_multiple=cfg.neuron_multiple,
                             rounds=cfg.rounds, heads=False, refit=cfg.refit, scoring=cfg.scoring)
    return prune_ranked(model, inner, ctx, n * neuron_cost(parts[0]))
