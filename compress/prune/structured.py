"""Heads and feed-forward neurons together, ranked globally: remove a fraction of encoder parameters
where the loss depends on them least, so layers lose different amounts (``--prune 0.4``).

Each unit's score (see :mod:`compress.prune.importance`) is divided by the parameters it holds, and
units are removed cheapest-per-parameter first until the target is met (the greedy answer to the
knapsack problem). Neurons are ranked in chunks of ``neuron_multiple`` so every layer keeps a count
that suits matrix kernels. After each round the output projections are refitted to the original
model (:mod:`compress.prune.reconstruct`); with ``rounds`` > 1 the scores are then measured again.

A head's parameters count ``head_cost_factor`` times in the ranking: a head also carries the
attention-score work (QK^T, softmax, x V: activations x activations, left in fp32 by int8
quantization), which its parameter count does not show. On CPU with int8 a head's parameter costs
about twice the time of a feed-forward parameter, so the default favours removing heads a little,
for speed at the same parameter count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from compress.prune import PruneContext, register
from compress.prune.importance import Importance, ScoreConfig, unit_importance
from compress.prune.model_parts import LayerParts, all_parts, encoder_params, head_cost, neuron_cost
from compress.prune.plan import PrunePlan, apply_plan, compose, plan_shape
from compress.prune.reconstruct import ReconstructConfig, reconstruct

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass(frozen=True)
class StructuredConfig:
    """Remove ``fraction`` of the encoder's parameters as whole heads and neurons.

    Args:
        fraction: of the encoder layers' parameters, 0 < fraction < 1.
        min_heads: heads every layer keeps.
        min_neurons: feed-forward neurons every layer keeps.
        neuron_multiple: neurons are removed in chunks of this many.
        rounds: prune in this many steps, scoring again before each.
        head_cost_factor: weight of a head's parameters in the ranking (not in the target).
        refit: least-squares repair after each round (None: off).
        heads: rank heads (off: neurons only).
        neurons: rank neurons (off: heads only).
        scoring: the sample data and score.
    """

    fraction: float = 0.4
    min_heads: int = 1
    min_neurons: int = 64
    neuron_multiple: int = 16
    rounds: int = 2
    head_cost_factor: float = 2.0
    refit: ReconstructConfig | None = field(default_factory=ReconstructConfig)
    heads: bool = True
    neurons: bool = True
    scoring: ScoreConfig = field(default_factory=ScoreConfig)

    def __post_init__(self) -> None:
        if not 0 < self.fraction < 1:
            raise ValueError(f"fraction must be between 0 and 1 (exclusive), got {self.fraction}")
        if self.min_heads < 1 or self.min_neurons < 1 or self.neuron_multiple < 1 or self.rounds < 1:
            raise ValueError("min_heads, min_neurons, neuron_multiple and rounds must be at least 1")
        if self.head_cost_factor <= 0:
            raise ValueError(f"head_cost_factor must be positive, got {self.head_cost_factor}")
        if not (self.heads or self.neurons):
            raise ValueError("rank heads, neurons or both")


@dataclass(frozen=True)
class _Unit:
    ratio: float  # score per parameter
    layer: int
    kind: str  # "head" | "neurons"
    index: list[int]
    cost: int


def _units(parts: list[LayerParts], imp: Importance, cfg: StructuredConfig) -> list[_Unit]:
    units = []
    for i, p in enumerate(parts):
        if cfg.heads:
            for h in torch.argsort(imp.heads[i]).tolist()[: p.num_heads - cfg.min_heads]:
                ratio = float(imp.heads[i][h]) / (head_cost(p) * cfg.head_cost_factor)
                units.append(_Unit(ratio, i, "head", [h], head_cost(p)))
        if cfg.neurons:
            order = torch.argsort(imp.neurons[i]).tolist()
            removable = max(0, p.num_neurons - max(cfg.min_neurons, 1))
            step = cfg.neuron_multiple
            for start in range(0, removable - removable % step, step):
                chunk = order[start:start + step]
                cost = neuron_cost(p) * len(chunk)
                units.append(_Unit(float(imp.neurons[i][chunk].sum()) / cost, i, "neurons", chunk, cost))
    # Within a layer a later chunk never scores lower per parameter than an earlier one, so the global
    # order removes each layer's units lowest first.
    return sorted(units, key=lambda u: u.ratio)


def select(parts: list[LayerParts], imp: Importance, cfg: StructuredConfig, remove: int) -> PrunePlan:
    """Choose units cheapest-per-parameter first until ``remove`` parameters are gone (current indices)."""
    heads: dict[int, list[int]] = {}
    gone: dict[int, set[int]] = {}
    removed = 0
    for u in _units(parts, imp, cfg):
        if removed >= remove:
            break
        if u.kind == "head":
            heads.setdefault(u.layer, []).extend(u.index)
        else:
            gone.setdefault(u.layer, set()).update(u.index)
        removed += u.cost
    neurons = {i: [n for n in range(parts[i].num_neurons) if n not in g] for i, g in gone.items()}
    return PrunePlan(heads=heads, neurons=neurons)


def prune_ranked(model: PreTrainedModel, cfg: StructuredConfig, ctx: PruneContext, remove: int) -> PrunePlan:
    """Remove ``remove`` encoder parameters (or the least more that whole units allow) in ``cfg.rounds`` rounds.

    Returns:
        The plan applied, in original indices.
    """
    shape = plan_shape(model)
    total = encoder_params(model)
    plan = PrunePlan()
    for r in range(cfg.rounds):
        target = remove * (r + 1) // cfg.rounds
        batches = ctx.stream.batches(cfg.scoring.batches, start=r * cfg.scoring.batches)
        imp = unit_importance(model, ctx.task, batches, cfg.scoring.score, ctx.pooling, ctx.progress)
        step = select(all_parts(model), imp, cfg, target - (total - encoder_params(model)))
        apply_plan(model, step)
        plan = compose(plan, step, shape)
        if cfg.refit is not None:
            refit_batches = ctx.stream.batches(cfg.refit.batches, start=10_000 + r * cfg.refit.batches)
            reconstruct(model, ctx.teacher, ctx.task, refit_batches, cfg.refit, pooling=ctx.pooling)
        ctx.say(f"round {r + 1}/{cfg.rounds}: {1 - encoder_params(model) / total:.1%} of encoder parameters removed")
    return plan


@register("structured", StructuredConfig)
def prune_structured(model: PreTrainedModel, cfg: StructuredConfig, ctx: PruneContext) -> PrunePlan:
    """Remove ``cfg.fraction`` of the encoder parameters as heads and neurons ranked globally by importance."""
    return prune_ranked(model, cfg, ctx, round(encoder_params(model) * cfg.fraction))
