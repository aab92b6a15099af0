"""How much the task loss depends on each head, feed-forward neuron and layer, measured on sample data.

Heads and neurons get a multiplicative gate (1 = unchanged) on their output, applied by forward
pre-hooks so it works with any attention implementation. The gradient of the loss with respect to a
gate is the first-order (Taylor) change of the loss when the unit is removed: for a head it is the
head-mask gradient of Michel et al. (2019), for a neuron activation x gradient summed over tokens.
Gates are per example, and scores accumulate over examples either as |g| (``taylor``, Michel et al.)
or g^2 (``fisher``, the diagonal Fisher information of the mask of Kwon et al. 2022), so heads and
neurons of every layer are ranked on one scale.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch

from compress.catalog import Task
from compress.prune.model_parts import all_parts, layer_list, set_layers
from compress.prune.objectives import LossWeights, distill_loss, importance_loss, run

if TYPE_CHECKING:
    from transformers import PreTrainedModel

Score = Literal["fisher", "taylor"]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ScoreConfig:
    """The sample data importance is measured on."""

    batches: int = 16
    batch_size: int = 16
    max_length: int = 128
    score: Score = "fisher"


@dataclass
class Importance:
    """Scores per layer (current indices): ``heads[i]`` [num_heads], ``neurons[i]`` [num_neurons]."""

    heads: list[torch.Tensor]
    neurons: list[torch.Tensor]


@contextlib.contextmanager
def gates(model: PreTrainedModel, batch_size: int) -> Iterator[tuple[list[torch.Tensor], list[torch.Tensor]]]:
    """Attach per-example gates ([batch, units] ones, requiring grad) to every head and neuron; removed on exit.

    One gate per example gives per-example gradients from a single backward pass.
    """
    parts = all_parts(model)
    head_gates = [torch.ones(batch_size, p.num_heads, requires_grad=True) for p in parts]
    neuron_gates = [torch.ones(batch_size, p.num_neurons, requires_grad=True) for p in parts]
    handles = []
    for p, hg, ng in zip(parts, head_gates, neuron_gates, strict=True):
        size = p.head_size
        handles.append(p.attn_out.register_forward_pre_hook(
            lambda _m, args, g=hg, s=size: (args[0] * g.repeat_interleave(s, dim=1)[:, None, :],)))
        handles.append(p.ffn_out.register_forward_pre_hook(lambda _m, args, g=ng: (args[0] * g[:, None, :],)))
    try:
        yield head_gates, neuron_gates
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def _frozen(model: PreTrainedModel) -> Iterator[None]:
    """Eval mode and no weight gradients (only the gates need them), restored on exit."""
    flags = [p.requires_grad for p in model.parameters()]
    training = model.training
    model.eval().requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(f)
        model.train(training)


def unit_importance(model: PreTrainedModel, task: Task, batches: list[dict[str, torch.Tensor]],
                    score: Score = "fisher", pooling: str = "mean", progress: Progress | None = None) -> Importance:
    """Score every head and feed-forward neuron of ``model`` on ``batches``.

    Args:
        model: the task model (BERT-like or DistilBERT).
        task: decides the loss (see :mod:`compress.prune.objectives`).
        batches: from :class:`compress.prune.batches.BatchStream`.
        score: ``fisher`` (sum of squared per-example gate gradients) or ``taylor`` (of their absolute values).
        pooling: pooling of embedding models.
        progress: called with a short message when done.

    Returns:
        Per-layer scores; higher means the loss depends more on the unit.
    """
    parts = all_parts(model)
    heads = [torch.zeros(p.num_heads) for p in parts]
    neurons = [torch.zeros(p.num_neurons) for p in parts]
    with _frozen(model):
        for b, batch in enumerate(batches):
            with gates(model, len(batch["input_ids"])) as (hg, ng):
                loss = importance_loss(task, run(model, task, batch, pooling=pooling), batch, seed=b)
                grads = torch.autograd.grad(loss, [*hg, *ng])
            for acc, g in zip([*heads, *neurons], grads, strict=True):
                acc += (g.pow(2) if score == "fisher" else g.abs()).sum(0)
    if progress:
        progress(f"importance measured on {len(batches)} batches")
    return Importance(heads, neurons)


def layer_importance(model: PreTrainedModel, task: Task, batches: list[dict[str, torch.Tensor]],
                     pooling: str = "mean", progress: Progress | None = None) -> list[float]:
    """For each layer, the distillation loss (KL or 1 - cosine) of the model with that layer skipped.

    Returns:
        One figure per layer; higher means the output depends more on the layer.
    """
    original = list(layer_list(model))
    weights = LossWeights(hidden=0.0, mlm=0.0, temperature=1.0)
    with _frozen(model), torch.no_grad():
        reference = [run(model, task, b, pooling=pooling) for b in batches]
        out = []
        for i in range(len(original)):
            set_layers(model, [m for j, m in enumerate(original) if j != i])
            try:
                losses = [distill_loss(task, run(model, task, b, pooling=pooling), ref, b, weights)[0]
                          for b, ref in zip(batches, reference, strict=True)]
            finally:
                set_layers(model, original)
            out.append(float(torch.stack(losses).mean()))
            if progress:
                progress(f"layer {i}: loss without it {out[-1]:.4f}")
    return out
