"""Heads and feed-forward neurons together, ranked globally: remove a fraction of encoder parameters
(``--prune 0.4``) or of estimated time (``--prune 1.6x``) where the loss depends on them least, so
layers lose different amounts.

Each unit's score (see :mod:`compress.prune.importance`) is divided by what it costs (parameters, or
estimated int8 CPU time: :mod:`compress.prune.cost`), and units are removed cheapest-per-cost first
until the target is met (the greedy answer to the knapsack problem). Neurons are ranked in chunks of
``neuron_multiple`` so every layer keeps a count that suits matrix kernels. After each round the
output projections are refitted to the original model (:mod:`compress.prune.reconstruct`); with
``rounds`` > 1 the scores are then measured again.

With a parameter target a head's parameters count ``head_cost_factor`` times in the ranking: a head
also carries the attention-score work (QK^T, softmax, x V: activations x activations, left in fp32 by
int8 quantization), which its parameter count does not show. On CPU with int8 a head's parameter
costs about twice the time of a feed-forward parameter, so the default (2) favours removing heads a
little, for speed at the same parameter count. With a speed target the estimated time already counts
that work, and the factor defaults to 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from compress.prune.cost import ParamCost, TimeCost, UnitCost, removable
from compress.prune.importance import Importance, ScoreConfig, unit_importance
from compress.prune.model_parts import LayerParts, all_parts, encoder_params
from compress.prune.plan import PrunePlan, apply_plan, compose, plan_shape
from compress.prune.reconstruct import ReconstructConfig, reconstruct
from compress.prune.registry import MethodOutput, PruneContext, register

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass(frozen=True)
class StructuredConfig:
    """Remove ``fraction`` of the encoder's parameters, or enough for a ``speedup``, as whole heads and neurons.

    Args:
        fraction: of the encoder layers' parameters, 0 < fraction < 1 (the default target, 0.4).
        speedup: instead of a fraction: the estimated int8 CPU speed-up of the encoder, > 1.
        min_heads: heads every layer keeps.
        min_neurons: feed-forward neurons every layer keeps.
        neuron_multiple: neurons are removed in chunks of this many.
        rounds: prune in this many steps, scoring again before each.
        head_cost_factor: weight of a head's cost in the ranking, not in the target (default 2 with a
            fraction, 1 with a speed-up).
        seq_len: tokens per sequence the time estimate is for (default: the sample batches' mean padded length).
        refit: least-squares repair after each round (None: off).
        heads: rank heads (off: neurons only).
        neurons: rank neurons (off: heads only).
        scoring: the sample data and score.
    """

    fraction: float | None = None
    speedup: float | None = None
    min_heads: int = 1
    min_neurons: int = 64
    neuron_multiple: int = 16
    rounds: int = 2
    head_cost_factor: float | None = None
    seq_len: int | None = None
    refit: ReconstructConfig | None = field(default_factory=ReconstructConfig)
    heads: bool = True
    neurons: bool = True
    scoring: ScoreConfig = field(default_factory=ScoreConfig)

    def __post_init__(self) -> None:
        if self.fraction is not None and self.speedup is not None:
            raise ValueError("give a fraction of parameters or a speed-up, not both")
        if self.fraction is None and self.speedup is None:
            object.__setattr__(self, "fraction", 0.4)
        if self.fraction is not None and not 0 < self.fraction < 1:
            raise ValueError(f"fraction must be between 0 and 1 (exclusive), got {self.fraction}")
        if self.speedup is not None and not self.speedup > 1:
            raise ValueError(f"speedup must be above 1 (e.g. 1.6 for 1.6x), got {self.speedup}")
        if self.head_cost_factor is None:
            object.__setattr__(self, "head_cost_factor", 2.0 if self.speedup is None else 1.0)
        if self.min_heads < 1 or self.min_neurons < 1 or self.neuron_multiple < 1 or self.rounds < 1:
            raise ValueError("min_heads, min_neurons, neuron_multiple and rounds must be at least 1")
        if self.head_cost_factor is not None and self.head_cost_factor <= 0:  # set above; for the type checker
            raise ValueError(f"head_cost_factor must be positive, got {self.head_cost_factor}")
        if not (self.heads or self.neurons):
            raise ValueError("rank heads, neurons or both")


@dataclass(frozen=True)
class _Unit:
    ratio: float  # score per unit of cost
    layer: int
    kind: str  # "head" | "neurons"
    index: list[int]
    cost: float


def _units(parts: list[LayerParts], imp: Importance, cfg: StructuredConfig, budget: UnitCost) -> list[_Unit]:
    units = []
    factor = cfg.head_cost_factor or 1.0
    for i, p in enumerate(parts):
        if cfg.heads:
            for h in torch.argsort(imp.heads[i]).tolist()[: p.num_heads - cfg.min_heads]:
                ratio = float(imp.heads[i][h]) / (budget.head(p) * factor)
                units.append(_Unit(ratio, i, "head", [h], budget.head(p)))
        if cfg.neurons:
            order = torch.argsort(imp.neurons[i]).tolist()
            removable = max(0, p.num_neurons - max(cfg.min_neurons, 1))
            step = cfg.neuron_multiple
            for start in range(0, removable - removable % step, step):
                chunk = order[start:start + step]
                cost = budget.neuron(p) * len(chunk)
                units.append(_Unit(float(imp.neurons[i][chunk].sum()) / cost, i, "neurons", chunk, cost))
    # Within a layer a later chunk never scores lower per parameter than an earlier one, so the global
    # order removes each layer's units lowest first.
    return sorted(units, key=lambda u: u.ratio)


def select(parts: list[LayerParts], imp: Importance, cfg: StructuredConfig, remove: float,
           budget: UnitCost | None = None) -> PrunePlan:
    """Choose units cheapest-per-cost first until ``remove`` (parameters by default) is saved (current indices)."""
    heads: dict[int, list[int]] = {}
    gone: dict[int, set[int]] = {}
    removed = 0.0
    for u in _units(parts, imp, cfg, budget or ParamCost()):
        if removed >= remove:
            break
        if u.kind == "head":
            heads.setdefault(u.layer, []).extend(u.index)
        else:
            gone.setdefault(u.layer, set()).update(u.index)
        removed += u.cost
    neurons = {i: [n for n in range(parts[i].num_neurons) if n not in g] for i, g in gone.items()}
    return PrunePlan(heads=heads, neurons=neurons)


def prune_ranked(model: PreTrainedModel, cfg: StructuredConfig, ctx: PruneContext, remove: float,
                 budget: UnitCost | None = None) -> PrunePlan:
    """Save ``remove`` of ``budget`` (parameters by default), or the least more that whole units allow, in
    ``cfg.rounds`` rounds.

    Returns:
        The plan applied, in original indices.
    """
    budget = budget or ParamCost()
    shape = plan_shape(model)
    total, params = budget.encoder(model), encoder_params(model)
    plan = PrunePlan()
    for r in range(cfg.rounds):
        target = remove * (r + 1) / cfg.rounds
        batches = ctx.stream.batches(cfg.scoring.batches, start=r * cfg.scoring.batches)
        imp = unit_importance(model, ctx.task, batches, cfg.scoring.score, ctx.pooling, ctx.progress)
        step = select(all_parts(model), imp, cfg, target - (total - budget.encoder(model)), budget)
        apply_plan(model, step)
        plan = compose(plan, step, shape)
        if cfg.refit is not None:
            refit_batches = ctx.stream.batches(cfg.refit.batches, start=10_000 + r * cfg.refit.batches)
            reconstruct(model, ctx.teacher, ctx.task, refit_batches, cfg.refit, pooling=ctx.pooling)
        ctx.say(f"round {r + 1}/{cfg.rounds}: {1 - encoder_params(model) / params:.1%} of encoder parameters "
                f"removed")
    return plan


@register("structured", StructuredConfig)
def prune_structured(model: PreTrainedModel, cfg: StructuredConfig, ctx: PruneContext) -> MethodOutput:
    """Remove ``cfg.fraction`` of the encoder parameters, or enough estimated time for ``cfg.speedup``, as heads
    and neurons ranked globally by importance; the details give the estimated speed-up either way.

    Raises:
        ValueError: the speed-up cannot be reached while every layer keeps ``min_heads`` and ``min_neurons``.
    """
    clock = TimeCost(seq_len=cfg.seq_len or ctx.stream.padded_length())
    before = clock.encoder(model)
    if cfg.speedup is None:
        plan = prune_ranked(model, cfg, ctx, round(encoder_params(model) * (cfg.fraction or 0)))
    else:
        need = before * (1 - 1 / cfg.speedup)
        most = removable(all_parts(model), clock, cfg.min_heads, cfg.min_neurons, cfg.neuron_multiple)
        if need > most:
            raise ValueError(f"an estimated {cfg.speedup:g}x is out of reach by heads and neurons alone: at most "
                             f"{before / (before - most):.2f}x while each layer keeps {cfg.min_heads} head(s) and "
                             f"{cfg.min_neurons} neurons; ask for less, or remove layers (--prune-method layers)")
        plan = prune_ranked(model, cfg, ctx, need, clock)
    estimate = before / clock.encoder(model)
    ctx.say(f"estimated int8 CPU speed-up of the encoder at {clock.seq_len} tokens: {estimate:.2f}x")
    return MethodOutput(plan=plan, details={"estimated_speedup": {"value": round(estimate, 3),
                                                                  "seq_len": clock.seq_len}})
