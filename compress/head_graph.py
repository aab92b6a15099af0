"""The multi-head graph: the encoder once, then the fill-mask head at mask positions, each linear head on
the pooled output (or on every token), each embedding, and a SPLADE sparse vector, every head its own
output (names in compress/task_heads.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from compress import CompressError
from compress.task_heads import HeadSpec, HeadTask

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

    from compress.catalog import ModelEntry
    from compress.sources import LoadedModel


@dataclass
class MultiHeadModel:
    """The multi-head graph with what `compress` needs besides: tokenizer, source, heads (labels filled in)."""

    graph: MultiHeadGraph
    heads: list[HeadSpec]
    loaded: LoadedModel  # the first head's load: tokenizer, source, family, notes

    @property
    def task(self) -> HeadTask:
        return self.heads[0].task


def _pooler(base: nn.Module) -> nn.Module:
    """The encoder's pooler (BERT: dense + tanh on [CLS]; ALBERT: the same, in two modules)."""
    pooler = getattr(base, "pooler", None)
    if not isinstance(pooler, nn.Module):
        raise CompressError(f"{type(base).__name__} has no pooler: multi-head artifacts take linear heads on "
                            "the pooled output (BERT, ALBERT)")
    return _Pool(base) if hasattr(base, "pooler_activation") else pooler


class MultiHeadGraph(nn.Module):
    """The encoder once, then every head; outputs named as :class:`HeadSpec.output` says."""

    model: PreTrainedModel
    config: PretrainedConfig
    pooler: nn.Module | None

    def __init__(self, model: PreTrainedModel, pooler: nn.Module | None, heads: list[HeadSpec],
                 classifiers: dict[str, nn.Module], mask_token_id: int | None) -> None:
        from compress.export import OUTPUTS, masked_lm_head

        super().__init__()
        self.model, self.config, self.pooler = model, model.config, pooler
        self.classifiers = nn.ModuleDict(classifiers)
        self.heads = [h for h in heads if h.task not in ("fill-mask", "sparse-embedding")]
        self.sparse = next((h.output for h in heads if h.task == "sparse-embedding"), None)
        self.mask_token_id = mask_token_id
        self.task = heads[0].task
        self.lm_head = masked_lm_head(model) if any(h.task == "fill-mask" for h in heads) else None
        if any(h.task == "fill-mask" for h in heads) and (self.lm_head is None or mask_token_id is None):
            raise CompressError(f"{type(model).__name__}: no mask-only LM head or no mask token; a multi-head "
                                "artifact needs both for its fill-mask head")
        if self.sparse is not None and self.lm_head is None:
            raise CompressError("the sparse-embedding head reads the LM head: list the fill-mask head (mlm) too")
        if pooler is None and any((h.pooling or "pooler") == "pooler" for h in self.heads if h.task != "embedding"
                                  and h.task != "token-classification"):
            raise CompressError(f"{type(model).__name__} has no pooler: give its heads cls or mean pooling")
        # In the order forward() returns them (the exporter names the outputs by position): the LM head's, then
        # every other head's in the order given.
        self.outputs: dict[str, dict[int, str]] = dict(OUTPUTS["fill-mask"]) if self.lm_head is not None else {}
        if self.sparse is not None:
            self.outputs[self.sparse] = {0: "batch_size"}
        for h in self.heads:
            axes = {0: "batch_size", 1: "sequence_length"} if h.task == "token-classification" else {0: "batch_size"}
            self.outputs[h.output] = axes

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        kw = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kw["token_type_ids"] = token_type_ids
        hidden = self.model.base_model(**kw)[0]
        out: dict[str, torch.Tensor] = {}
        if self.lm_head is not None:
            positions = torch.nonzero(torch.eq(input_ids, int(self.mask_token_id or 0)))
            gathered = hidden[positions[:, 0], positions[:, 1]].unsqueeze(0)  # 3-D: the head's Linears stay MatMul
            out["mask_logits"] = self.lm_head(gathered).squeeze(0)
            out["mask_positions"] = positions
            if self.sparse is not None:
                out[self.sparse] = sparse_vector(self.lm_head(hidden), attention_mask)
        pooled_by: dict[str, torch.Tensor] = {}  # each pooling computed once, whatever the heads on it
        for h in self.heads:
            if h.task == "token-classification":
                out[h.output] = self.classifiers[h.name](hidden)
                continue
            how = h.pooling or "pooler"
            if how not in pooled_by:
                pooled_by[how] = self._pool(hidden, attention_mask, how)
            pooled = pooled_by[how]
            if h.task == "embedding":
                out[h.output] = nn.functional.normalize(pooled, dim=-1) if h.normalize else pooled
            else:
                out[h.output] = self.classifiers[h.name](pooled)
        return out

    def _pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
        from compress.export import pool

        if how == "pooler":
            assert self.pooler is not None  # checked in __init__
            return self.pooler(hidden)  # type: ignore[no-any-return]
        return pool(hidden, attention_mask, how)


def sparse_vector(logits: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """SPLADE's max pooling: per sequence, the max over its real tokens of log(1 + relu(logits)), [batch, vocab].

    Special tokens count, padding does not, as sentence-transformers' ``SpladePooling`` and naver's SPLADE
    do. log1p(relu(.)) rises monotonically, so the max is taken over the raw logits (padding set to 0, which
    relu floors at anyway), and the log runs on [batch, vocab] rather than [batch, tokens, vocab].
    """
    masked = logits * attention_mask.unsqueeze(-1).to(logits.dtype)
    return torch.log1p(torch.relu(masked.max(dim=1).values))


def build_multihead(load: Callable[..., LoadedModel], heads: list[HeadSpec]) -> MultiHeadModel:
    """Load each head with ``load(task=..., head=..., labels=...)`` and join them on one encoder.

    ``load`` is :func:`compress.sources.load_model` or :func:`compress.sources.load_entry` with the
    source bound. The encoder is the fill-mask model's when there is a fill-mask head (its LM head
    shares the embedding matrix), else the first classifier's.

    Raises:
        CompressError: a head is not in the checkpoint, or is not a linear head on the pooled output.
    """
    other = [h.name for h in heads if h.task not in ("fill-mask", "classification", "sparse-embedding")]
    if other:
        raise CompressError(f"heads {', '.join(other)}: only a model directory `compress train` wrote has "
                            "token-classification, embedding and rerank heads; train them with `compress train`")
    loads = {h.name: load(task="fill-mask") if h.task == "fill-mask" else
             load(task="classification", head=h.name, labels=h.labels) for h in heads if h.task != "sparse-embedding"}
    filled = [h.model_copy(update={"labels": loads[h.name].labels}) if h.name in loads else h for h in heads]
    classifiers: dict[str, nn.Module] = {}
    for h in filled:
        if h.task == "classification":
            classifier = getattr(loads[h.name].model, "classifier", None)
            if not isinstance(classifier, nn.Linear):
                raise CompressError(f"head {h.name!r} is not a linear head on the pooled output; multi-head artifacts "
                                    "support those (BERT, ALBERT checkpoints with extra linear heads)")
            classifiers[h.name] = classifier
    first_clf = next((loads[h.name] for h in filled if h.task == "classification"), None)
    main = next((loads[h.name] for h in filled if h.task == "fill-mask"), first_clf)
    assert main is not None  # check_heads: a sparse-embedding head comes with a fill-mask head
    pooler = _pooler(first_clf.model.base_model) if first_clf is not None else None  # fill-mask, SPLADE: none needed
    graph = MultiHeadGraph(main.model, pooler, filled, classifiers, main.tokenizer.mask_token_id)
    loaded = next(loads[h.name] for h in filled if h.name in loads)
    loaded.notes = [n for n in loaded.notes if not n.startswith("checkpoint has heads not exported")]
    return MultiHeadModel(graph=graph.eval(), heads=filled, loaded=loaded)


class _Pool(nn.Module):
    """ALBERT's pooler (a Linear and an activation) as one module, so its weights travel with the graph."""

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.dense, self.activation = base.pooler, base.pooler_activation

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden[:, 0]))  # type: ignore[no-any-return,operator]


def load_heads(heads: list[HeadSpec], *, entry: ModelEntry | None = None, spec: str | None = None,
               **overrides: Any) -> MultiHeadModel:
    """Load the multi-head model of a models.yaml ``entry`` or a path/hub ``spec`` (config, tokenizer,
    trust_pickle overrides as for :func:`compress.sources.load_model`).

    Raises:
        CompressError: --task/--head/--labels given too, or a head cannot be loaded.
    """
    from functools import partial

    from compress.catalog import resolve_location
    from compress.sources import load_entry, load_model
    from compress.train.store import is_trained_dir

    given = [k for k in ("task", "head", "labels") if overrides.pop(k, None) is not None]
    if given:
        raise CompressError(f"--heads names every head's task and labels; drop --{given[0]}")
    location = resolve_location(entry.source, entry.requires) if entry is not None else str(spec)
    if is_trained_dir(location):  # heads.json says what each head is
        sparse = [h for h in heads if h.task == "sparse-embedding"]  # made from the LM head, not recorded
        return trained_heads(Path(location), [h.name for h in heads if h not in sparse], sparse)
    load = partial(load_entry, entry, **overrides) if entry is not None else partial(load_model, str(spec), **overrides)
    return build_multihead(load, heads)


def trained_heads(directory: Path, names: list[str] | None = None, extra: list[HeadSpec] | None = None
                  ) -> MultiHeadModel:
    """The multi-head model of a directory `compress train` wrote: every head it records, or ``names``, then
    ``extra`` (a sparse-embedding head, which reads the recorded fill-mask head's LM head).

    Raises:
        CompressError: a name the directory has no head for.
    """
    from compress.sources import LoadedModel
    from compress.train.store import load_trained

    model, tok, source = load_trained(directory)
    records = list(model.records.values())
    if names:
        unknown = [n for n in names if n not in model.records]
        if unknown:
            raise CompressError(f"{directory} has no head {unknown[0]!r}; its heads: {', '.join(model.records)}")
        records = [model.records[n] for n in names]
    heads = [HeadSpec(name=r.name, task=r.kind, labels=r.labels, pooling=r.pooling, normalize=r.normalize)
             for r in records] + list(extra or [])
    graph = MultiHeadGraph(model.model, model.pooler, heads, {h.name: model.linears[h.name] for h in heads
                                                              if h.name in model.linears}, tok.mask_token_id)
    first = heads[0]
    embedding = next((h for h in heads if h.task == "embedding"), None)
    loaded = LoadedModel(model=model.model, task="fill-mask" if first.task == "fill-mask" else "classification",
                         tokenizer=tok, source=source, labels=first.labels,
                         pooling=(embedding.pooling or "mean") if embedding else "mean",
                         normalize=embedding.normalize if embedding else False)
    return MultiHeadModel(graph=graph.eval(), heads=heads, loaded=loaded)
