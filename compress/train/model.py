"""One encoder and its task heads, as `compress train` trains them and writes them.

The encoder is the source's transformers model (its masked-LM model when it has an LM head, so the
``mlm`` head is the checkpoint's own); every other head is a small module on its hidden states:

- classification and rerank: a linear layer on the pooled output (``pooler``: BERT's pooler on
  [CLS]; ``cls``: the [CLS] state; ``mean``: the mean of the token states);
- token-classification: a linear layer on every token's state;
- embedding: the pooled output itself (no weights), normalized or not.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from compress import CompressError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

HeadKind = Literal["fill-mask", "classification", "token-classification", "embedding", "rerank"]
Pooling = Literal["pooler", "cls", "mean"]
MLM, EMBEDDING = "mlm", "embedding"  # the names of a source's own fill-mask head and pooled output


@dataclass
class HeadRecord:
    """What heads.json says of one head."""

    name: str
    kind: HeadKind
    labels: list[str] | None = None
    pooling: Pooling | None = None  # classification, rerank, embedding
    normalize: bool = False  # embedding

    def as_json(self) -> dict[str, object]:
        return {k: v for k, v in vars(self).items() if v is not None}


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: Pooling, pooler: nn.Module | None) -> torch.Tensor:
    """The pooled output of ``hidden`` [batch, seq, dim] under the attention ``mask``."""
    if how == "mean":
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    if how == "pooler":
        if pooler is None:
            raise CompressError("this encoder has no pooler; use cls or mean pooling")
        return pooler(hidden)  # type: ignore[no-any-return]
    return hidden[:, 0]


class MultiTaskModel(nn.Module):
    """The shared encoder, its LM head when it has one, and the named heads."""

    def __init__(self, model: PreTrainedModel, records: list[HeadRecord], linears: dict[str, nn.Linear],
                 pooler: nn.Module | None) -> None:
        super().__init__()
        self.model = model  # a *ForMaskedLM when a head is fill-mask, else the bare encoder
        self.records = {r.name: r for r in records}
        self.linears = nn.ModuleDict(linears)
        self.pooler = pooler
        self.dropout = nn.Dropout(float(getattr(model.config, "hidden_dropout_prob", 0.1) or 0.1))
        # what the encoder takes (DistilBERT, ModernBERT: no token_type_ids, whatever the tokenizer returns)
        accepted = inspect.signature(model.base_model.forward).parameters
        self.inputs = tuple(k for k in ("input_ids", "attention_mask", "token_type_ids") if k in accepted)

    @property
    def config(self):  # type: ignore[no-untyped-def]
        return self.model.config

    @property
    def has_lm(self) -> bool:
        return any(r.kind == "fill-mask" for r in self.records.values())

    def encode(self, batch: dict[str, torch.Tensor], mlm_labels: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(last hidden states, LM loss or None, LM logits or None) of one pass over ``batch``."""
        inputs = {k: v for k, v in batch.items() if k in self.inputs}
        if mlm_labels is None:  # no LM logits over the vocabulary at every position unless mlm needs them
            return self.model.base_model(**inputs)[0], None, None
        out = self.model(**inputs, labels=mlm_labels, output_hidden_states=True)
        return out.hidden_states[-1], out.loss, out.logits

    def features(self, name: str, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """What head ``name`` reads: every token's state (token-classification) or the pooled output."""
        r = self.records[name]
        if r.kind == "token-classification":
            return hidden
        return pool(hidden, mask, r.pooling or "cls", self.pooler)

    def head(self, name: str, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Head ``name``'s output on the hidden states: logits, or the embedding."""
        r, features = self.records[name], self.features(name, hidden, mask)
        if r.kind == "embedding":
            return nn.functional.normalize(features, dim=-1) if r.normalize else features
        return self.linears[name](self.dropout(features))  # type: ignore[no-any-return]

    def new_head(self, record: HeadRecord, outputs: int) -> None:
        """Add a head with fresh weights (none for an embedding head)."""
        if record.kind == "fill-mask" and not self.has_lm:
            raise CompressError(f"head {record.name}: the model has no masked-LM head to train")
        if record.kind in ("classification", "token-classification", "rerank"):
            dim = int(getattr(self.config, "hidden_size", 0) or self.config.dim)
            linear = nn.Linear(dim, outputs)
            nn.init.normal_(linear.weight, std=float(getattr(self.config, "initializer_range", 0.02)))
            nn.init.zeros_(linear.bias)
            self.linears[record.name] = linear
        if record.pooling == "pooler" and self.pooler is None:
            raise CompressError(f"head {record.name}: the encoder has no pooler")
        self.records[record.name] = record
