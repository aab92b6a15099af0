"""Task outputs and losses: what importance is measured against and what distillation minimises.

Importance needs a loss with a gradient at the unpruned model, without labels:
fill-mask: cross-entropy against the masked tokens; classification: cross-entropy against the model's
own predictions; embedding: in-batch contrastive loss against the model's own (detached) embeddings.

Distillation (teacher -> student): fill-mask: KL on the MLM logits at masked positions; classification:
KL on the logits; embedding: 1 - cosine of the pooled embeddings; for every task optionally MSE between
hidden states of corresponding layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from compress.catalog import Task
from compress.export import _lm_head, pool

if TYPE_CHECKING:
    from transformers import PreTrainedModel


EXTRA_KEYS = ("mask_labels", "mask_positions")  # batch entries that are not model inputs


@dataclass
class Outputs:
    main: torch.Tensor  # fill-mask: logits at masks [N, V]; classification: logits [B, C]; embedding: [B, H]
    hidden: tuple[torch.Tensor, ...] | None = None  # embeddings output, then each layer's output


def run(model: PreTrainedModel, task: Task, batch: dict[str, torch.Tensor], *, hidden: bool = False,
        pooling: str = "mean") -> Outputs:
    """Forward ``batch`` through ``model`` and return the task output (and hidden states when asked)."""
    kw = {k: v for k, v in batch.items() if k not in EXTRA_KEYS}
    if task == "classification":
        out = model(**kw, output_hidden_states=hidden)
        return Outputs(out.logits, out.hidden_states)
    base = model.base_model(**kw, output_hidden_states=hidden)
    states = base.hidden_states if hidden else None
    if task == "embedding":
        return Outputs(pool(base[0], kw["attention_mask"], pooling), states)
    pos = batch["mask_positions"]
    gathered = base[0][pos[:, 0], pos[:, 1]]
    head = _lm_head(model)
    if head is None:
        raise ValueError(f"no masked-LM head found on {type(model).__name__}")
    return Outputs(head(gathered.unsqueeze(0)).squeeze(0), states)


def importance_loss(task: Task, out: Outputs, batch: dict[str, torch.Tensor],
                    reference: torch.Tensor | None = None) -> torch.Tensor:
    """A label-free loss of the model on ``batch`` with a non-zero gradient at the unpruned model.

    Args:
        reference: embedding task only: the model's own embeddings of the batch, computed without gates.
    """
    if task == "fill-mask":
        return F.cross_entropy(out.main, batch["mask_labels"])
    if task == "classification":
        return F.cross_entropy(out.main, out.main.detach().argmax(-1))
    if reference is None:
        raise ValueError("the embedding importance loss needs the reference embeddings")
    sims = F.normalize(out.main, dim=-1) @ F.normalize(reference, dim=-1).T / 0.05
    return F.cross_entropy(sims, torch.arange(len(sims)))


@dataclass(frozen=True)
class LossWeights:
    """Weights of the distillation terms."""

    output: float = 1.0  # KL on logits (fill-mask, classification) or 1 - cosine (embedding)
    hidden: float = 1.0  # MSE between hidden states of corresponding layers
    temperature: float = 2.0


def distill_loss(task: Task, student: Outputs, teacher: Outputs, attention_mask: torch.Tensor,
                 weights: LossWeights, layer_map: list[int] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of ``student`` against ``teacher`` on one batch; returns (loss, its terms as floats).

    Args:
        layer_map: for each student layer, the teacher layer it replaces (None: the same index).
    """
    terms: dict[str, torch.Tensor] = {}
    if task == "embedding":
        terms["cos"] = (1 - F.cosine_similarity(student.main, teacher.main, dim=-1)).mean()
    else:
        t = weights.temperature
        terms["kl"] = F.kl_div(F.log_softmax(student.main / t, -1), F.log_softmax(teacher.main / t, -1),
                               log_target=True, reduction="batchmean") * t * t
    total = weights.output * next(iter(terms.values()))
    if weights.hidden and student.hidden is not None and teacher.hidden is not None:
        n = len(student.hidden) - 1
        lm = layer_map if layer_map is not None else list(range(n))
        keep = attention_mask.bool()
        mse = sum(F.mse_loss(student.hidden[i + 1][keep], teacher.hidden[lm[i] + 1][keep]) for i in range(n)) / n
        terms["hidden"] = mse  # type: ignore[assignment]
        total = total + weights.hidden * mse
    return total, {k: float(v) for k, v in terms.items()}
