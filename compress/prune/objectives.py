"""Task outputs and losses: what importance is measured against and what distillation minimises.

Importance needs a loss with a gradient at the unpruned model, without labels:
fill-mask: cross-entropy against the masked tokens; classification: cross-entropy against labels
sampled from the model's own predictions; embedding: a random projection of the embeddings.

Distillation (teacher -> student): fill-mask: KL on the MLM logits at masked positions; classification:
KL on the logits; embedding: 1 - cosine of the pooled embeddings; for every task optionally MSE between
hidden states of corresponding layers.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from compress.catalog import Task
from compress.export import masked_lm_head, pool

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
    kw = {k: v for k, v in batch.items() if k not in EXTRA_KEYS and (k != "token_type_ids" or _takes_types(model))}
    if task == "classification":
        out = model(**kw, output_hidden_states=hidden)
        return Outputs(out.logits, out.hidden_states)
    base = model.base_model(**kw, output_hidden_states=hidden)
    states = base.hidden_states if hidden else None
    if task == "embedding":
        return Outputs(pool(base[0], kw["attention_mask"], pooling), states)
    pos = batch["mask_positions"]
    gathered = base[0][pos[:, 0], pos[:, 1]]
    head = masked_lm_head(model)
    if head is None:
        raise ValueError(f"no masked-LM head found on {type(model).__name__}")
    return Outputs(head(gathered.unsqueeze(0)).squeeze(0), states)


def _takes_types(model: PreTrainedModel) -> bool:
    """Whether the family has token type ids (BERT, ELECTRA) or not (DistilBERT; RoBERTa ignores zeros)."""
    return "token_type_ids" in inspect.signature(model.base_model.forward).parameters


def importance_loss(task: Task, out: Outputs, batch: dict[str, torch.Tensor], seed: int = 0) -> torch.Tensor:
    """A label-free loss whose squared per-example gradients estimate the Fisher information of the output.

    fill-mask: cross-entropy against the masked tokens (they are the labels). classification:
    cross-entropy against labels drawn from the model's own predictions (the true Fisher; the argmax
    would give vanishing gradients on confident predictions). embedding: a random projection of each
    normalised embedding, whose squared gradient is in expectation the Gauss-Newton curvature of the
    squared distance to the unpruned embedding (Hutchinson's trick).
    """
    gen = torch.Generator().manual_seed(seed)
    if task == "fill-mask":
        return F.cross_entropy(out.main, batch["mask_labels"], reduction="sum")
    if task == "classification":
        labels = torch.multinomial(out.main.detach().softmax(-1), 1, generator=gen).squeeze(1)
        return F.cross_entropy(out.main, labels, reduction="sum")
    probe = torch.randn(out.main.shape, generator=gen)
    return (F.normalize(out.main, dim=-1) * probe).sum()


@dataclass(frozen=True)
class LossWeights:
    """Weights of the distillation terms."""

    output: float = 1.0  # KL on logits (fill-mask, classification) or 1 - cosine (embedding)
    hidden: float = 1.0  # MSE between hidden states of corresponding layers
    mlm: float = 1.0  # fill-mask only: cross-entropy against the masked tokens themselves (DistilBERT's L_mlm)
    temperature: float = 2.0


def distill_loss(task: Task, student: Outputs, teacher: Outputs, batch: dict[str, torch.Tensor],
                 weights: LossWeights, layer_map: list[int] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of ``student`` against ``teacher`` on one batch; returns (loss, its terms as floats).

    Args:
        batch: the batch both ran on (its attention mask; for fill-mask its masked tokens).
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
    if task == "fill-mask" and weights.mlm:
        terms["mlm"] = F.cross_entropy(student.main, batch["mask_labels"])
        total = total + weights.mlm * terms["mlm"]
    if weights.hidden and student.hidden is not None and teacher.hidden is not None:
        n = len(student.hidden) - 1
        lm = layer_map if layer_map is not None else list(range(n))
        keep = batch["attention_mask"].bool()
        mse = sum(F.mse_loss(student.hidden[i + 1][keep], teacher.hidden[lm[i] + 1][keep]) for i in range(n)) / n
        terms["hidden"] = mse  # type: ignore[assignment]
        total = total + weights.hidden * mse
    return total, {k: float(v.detach()) for k, v in terms.items()}
