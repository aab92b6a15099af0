"""What each task kind trains and scores: its batch, its loss, its held-out metrics.

The losses are the usual ones: cross-entropy for classifiers and taggers (labels on a word's first
sub-token, as transformers' token-classification examples align them, or on all of them),
sentence-transformers' MultipleNegativesRankingLoss for embeddings (in-batch negatives; the anchor
twice under dropout when there is no positive, as SimCSE), a listwise cross-entropy over one relevant
and ``negatives`` irrelevant passages for a reranker, and the model's own masked-LM loss.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np
import torch
from torch import nn

from compress import CompressError
from compress.metrics import mrr_at_10
from compress.train.examples import Judged, Labelled, Pair, Tagged
from compress.train.model import MultiTaskModel

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from compress.train.data import TaskData
    from compress.train.options import TrainOptions

EVAL_BATCH = 32


@dataclass
class Pass:
    """A training step's loss, and the hidden states of its main pass (for the kept heads' targets)."""

    loss: torch.Tensor
    batch: dict[str, torch.Tensor]
    hidden: torch.Tensor


class Objective:
    """One task's loss and held-out metrics; ``primary`` names the metric the report leads with."""

    primary: ClassVar[str] = "loss"

    def __init__(self, task: TaskData, tokenizer: PreTrainedTokenizerBase, opts: TrainOptions) -> None:
        self.task, self.tok, self.opts = task, tokenizer, opts
        self.name = task.name

    def encode(self, texts: list[str], pairs: list[str] | None = None, **kw: Any) -> dict[str, torch.Tensor]:
        enc = self.tok(texts, pairs, truncation=True, max_length=self.opts.max_length, padding=True,
                       return_tensors="pt", **kw)
        return {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}

    def step(self, model: MultiTaskModel, examples: list[Any], rng: np.random.Generator) -> Pass:
        raise NotImplementedError

    def evaluate(self, model: MultiTaskModel, examples: list[Any]) -> dict[str, float]:
        raise NotImplementedError


class Classification(Objective):
    primary = "accuracy"

    def _batch(self, examples: list[Labelled]) -> dict[str, torch.Tensor]:
        pairs = [e.text_pair or "" for e in examples] if any(e.text_pair for e in examples) else None
        return self.encode([e.text for e in examples], pairs)

    def step(self, model: MultiTaskModel, examples: list[Labelled], rng: np.random.Generator) -> Pass:
        batch = self._batch(examples)
        hidden = model.encode(batch)[0]
        logits = model.head(self.name, hidden, batch["attention_mask"])
        loss = nn.functional.cross_entropy(logits, torch.tensor([e.label for e in examples]))
        return Pass(loss, batch, hidden)

    def features(self, model: MultiTaskModel, examples: list[Labelled]) -> tuple[torch.Tensor, torch.Tensor]:
        """What the head reads from each example (its pooled output), and the labels: a linear probe's data."""
        parts = []
        for b in range(0, len(examples), EVAL_BATCH):
            batch = self._batch(examples[b:b + EVAL_BATCH])
            parts.append(model.features(self.name, model.encode(batch)[0], batch["attention_mask"]))
        return torch.cat(parts), torch.tensor([e.label for e in examples])

    def evaluate(self, model: MultiTaskModel, examples: list[Labelled]) -> dict[str, float]:
        hits, losses = [], []
        for b in range(0, len(examples), EVAL_BATCH):
            part = examples[b:b + EVAL_BATCH]
            batch = self._batch(part)
            logits = model.head(self.name, model.encode(batch)[0], batch["attention_mask"])
            truth = torch.tensor([e.label for e in part])
            losses.append(nn.functional.cross_entropy(logits, truth, reduction="none"))
            hits.append(logits.argmax(-1) == truth)
        return {"accuracy": float(torch.cat(hits).float().mean()), "loss": float(torch.cat(losses).mean())}


class TokenClassification(Objective):
    primary = "accuracy"

    def __init__(self, task: TaskData, tokenizer: PreTrainedTokenizerBase, opts: TrainOptions) -> None:
        super().__init__(task, tokenizer, opts)
        if _byte_level(tokenizer) and not getattr(tokenizer, "add_prefix_space", False):  # RoBERTa's kin: a word
            self.tok = _with_prefix_space(tokenizer)  # given alone needs the space it had in the text

    def _batch(self, examples: list[Tagged]) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """Inputs, labels aligned to sub-tokens (-100: not trained), and the first sub-token of each word."""
        enc = self.tok([list(e.tokens) for e in examples], is_split_into_words=True, truncation=True,
                       max_length=self.opts.max_length, padding=True, return_tensors="pt")
        labels = torch.full(enc["input_ids"].shape, -100)
        first = torch.full(enc["input_ids"].shape, -100)
        for i, e in enumerate(examples):
            previous = None
            for j, word in enumerate(enc.word_ids(i)):
                if word is not None and word != previous:
                    labels[i, j] = first[i, j] = e.labels[word]
                elif word is not None and self.opts.label_all_tokens:
                    labels[i, j] = e.labels[word]
                previous = word
        batch = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        return batch, labels, first

    def _cropped(self, e: Tagged, rng: np.random.Generator) -> Tagged:
        """``e`` less up to ``opts.crop`` of its words at each end."""
        most = int(self.opts.crop * len(e.tokens))
        if most < 1:
            return e
        start, cut = (int(x) for x in rng.integers(0, most + 1, size=2))
        end = len(e.tokens) - cut
        return Tagged(e.tokens[start:end], e.labels[start:end])

    def step(self, model: MultiTaskModel, examples: list[Tagged], rng: np.random.Generator) -> Pass:
        batch, labels, _ = self._batch([self._cropped(e, rng) for e in examples])
        hidden = model.encode(batch)[0]
        logits = model.head(self.name, hidden, batch["attention_mask"])
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        return Pass(loss, batch, hidden)

    def features(self, model: MultiTaskModel, examples: list[Tagged]) -> tuple[torch.Tensor, torch.Tensor]:
        """The state of each word's first sub-token, and the word's label: a linear probe's data."""
        xs, ys = [], []
        for b in range(0, len(examples), EVAL_BATCH):
            batch, _, first = self._batch(examples[b:b + EVAL_BATCH])
            xs.append(model.encode(batch)[0][first >= 0])
            ys.append(first[first >= 0])
        return torch.cat(xs), torch.cat(ys)

    def evaluate(self, model: MultiTaskModel, examples: list[Tagged]) -> dict[str, float]:
        hits, losses = [], []
        for b in range(0, len(examples), EVAL_BATCH):
            batch, _, first = self._batch(examples[b:b + EVAL_BATCH])
            logits = model.head(self.name, model.encode(batch)[0], batch["attention_mask"])[first >= 0]
            truth = first[first >= 0]
            hits.append(logits.argmax(-1) == truth)
            losses.append(nn.functional.cross_entropy(logits, truth, reduction="none"))
        return {"accuracy": float(torch.cat(hits).float().mean()), "loss": float(torch.cat(losses).mean()),
                "words": float(sum(len(h) for h in hits))}


def _info_nce(similarity: np.ndarray, scale: float = 20.0) -> float:
    """MultipleNegativesRankingLoss's value on a held-out similarity matrix (row i's match: column i)."""
    z = scale * similarity
    logz = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
    return float((logz - np.diag(z)).mean())


def contrastive_loss(model: nn.Module) -> Any:
    """sentence-transformers' MultipleNegativesRankingLoss (in-batch negatives, scale 20, cosine)."""
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    return MultipleNegativesRankingLoss(model)  # type: ignore[arg-type]


def _byte_level(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether a fast tokenizer splits text with a byte-level pre-tokenizer (GPT-2's BPE: RoBERTa, ModernBERT)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and '"ByteLevel"' in json.dumps(json.loads(backend.to_str()).get("pre_tokenizer"))


def _with_prefix_space(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """``tokenizer`` loaded again with ``add_prefix_space=True``, as transformers' token-classification
    examples load it for words given one by one.

    Raises:
        CompressError: it cannot be loaded again from where it came from.
    """
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(tokenizer.name_or_path, add_prefix_space=True)
    except (OSError, ValueError) as e:
        raise CompressError(f"token-classification needs the tokenizer of {tokenizer.name_or_path!r} with "
                            f"add_prefix_space=True, and it could not be loaded again: {e}") from None


class Embedding(Objective):
    """Anchors against positives (and hard negatives), every other positive in the batch a negative."""

    primary = "mrr@10"

    def __init__(self, task: TaskData, tokenizer: PreTrainedTokenizerBase, opts: TrainOptions) -> None:
        super().__init__(task, tokenizer, opts)
        self.loss: Any = None

    def _embed(self, model: MultiTaskModel, texts: list[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor],
                                                                        torch.Tensor]:
        batch = self.encode(texts)
        hidden = model.encode(batch)[0]
        return model.head(self.name, hidden, batch["attention_mask"]), batch, hidden

    def step(self, model: MultiTaskModel, examples: list[Pair], rng: np.random.Generator) -> Pass:
        if self.loss is None:
            self.loss = contrastive_loss(model)
        anchors, batch, hidden = self._embed(model, [e.anchor for e in examples])
        embeddings = [anchors, self._embed(model, [e.positive or e.anchor for e in examples])[0]]
        if all(e.negative for e in examples):
            embeddings.append(self._embed(model, [str(e.negative) for e in examples])[0])
        labels = torch.arange(len(examples))
        return Pass(self.loss.compute_loss_from_embeddings(embeddings, labels), batch, hidden)

    def _all(self, model: MultiTaskModel, texts: list[str]) -> np.ndarray:
        parts = [self._embed(model, texts[b:b + EVAL_BATCH])[0] for b in range(0, len(texts), EVAL_BATCH)]
        vectors = torch.cat(parts).numpy()
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def evaluate(self, model: MultiTaskModel, examples: list[Pair]) -> dict[str, float]:
        """Anchor -> its positive among every held-out positive (MRR@10); plain texts: the mean cosine of
        each text to its nearest other held-out text (how spread out the space is; lower is more spread)."""
        anchors = self._all(model, [e.anchor for e in examples])
        if all(e.positive for e in examples):
            docs = self._all(model, [str(e.positive) for e in examples])
            return {"mrr@10": mrr_at_10(anchors @ docs.T, np.arange(len(examples))),
                    "loss": _info_nce(anchors @ docs.T)}
        sims = anchors @ anchors.T
        np.fill_diagonal(sims, -1)
        return {"nearest_cosine": float(sims.max(1).mean())}


class Rerank(Objective):
    """A cross-encoder: (query, passage) -> relevance; one relevant against ``negatives`` irrelevant ones."""

    primary = "mrr@10"
    CANDIDATES = 10  # held-out: each query's passage among this many (its own negatives, else BM25's)
    QUERY_COST = 5  # held-out: n_eval // QUERY_COST queries, each scored against CANDIDATES passages

    def __init__(self, task: TaskData, tokenizer: PreTrainedTokenizerBase, opts: TrainOptions) -> None:
        from compress.train.mining import NegativeMiner

        super().__init__(task, tokenizer, opts)
        train, held = cast("list[Judged]", task.train), cast("list[Judged]", task.held_out)
        self.train_miner = NegativeMiner([e.positive for e in train], seed=opts.seed)
        self.held_miner = NegativeMiner([e.positive for e in held], seed=opts.seed)

    def _scores(self, model: MultiTaskModel, query: list[str], passages: list[str]
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        batch = self.encode(query, passages)
        hidden = model.encode(batch)[0]
        return model.head(self.name, hidden, batch["attention_mask"])[:, 0], batch, hidden

    def _candidates(self, e: Judged, n: int, miner: Any, rng: np.random.Generator | None) -> list[str]:
        negatives = list(e.negatives)
        if rng is not None and len(negatives) > n:
            negatives = [negatives[i] for i in rng.choice(len(negatives), n, replace=False)]
        if len(negatives) < n:
            negatives += miner.mine(e.query, e.positive, n - len(negatives), rng)
        return [e.positive, *negatives[:n]]

    def step(self, model: MultiTaskModel, examples: list[Judged], rng: np.random.Generator) -> Pass:
        k = self.opts.negatives
        groups = [self._candidates(e, k, self.train_miner, rng) for e in examples]
        size = min(len(g) for g in groups)
        queries = [e.query for e, g in zip(examples, groups, strict=True) for _ in g[:size]]
        scores, batch, hidden = self._scores(model, queries, [p for g in groups for p in g[:size]])
        target = torch.zeros(len(examples), dtype=torch.long)  # the relevant passage is each group's first
        loss = nn.functional.cross_entropy(scores.view(len(examples), size), target)
        return Pass(loss, batch, hidden)

    def evaluate(self, model: MultiTaskModel, examples: list[Judged]) -> dict[str, float]:
        """Each held-out query's passage among ``CANDIDATES`` (the first ``n_eval // QUERY_COST`` queries:
        a query costs ``CANDIDATES`` passes): MRR@10, and the listwise loss."""
        reciprocal, losses = [], []
        for e in examples[: max(1, self.opts.n_eval // self.QUERY_COST)]:
            candidates = self._candidates(e, self.CANDIDATES - 1, self.held_miner, None)
            scores = torch.cat([self._scores(model, [e.query] * len(candidates[b:b + EVAL_BATCH]),
                                             candidates[b:b + EVAL_BATCH])[0]
                                for b in range(0, len(candidates), EVAL_BATCH)]).numpy()
            reciprocal.append(mrr_at_10(scores[None], np.zeros(1, dtype=int)))
            losses.append(float(torch.logsumexp(torch.from_numpy(scores), 0)) - float(scores[0]))
        return {"mrr@10": float(np.mean(reciprocal)), "loss": float(np.mean(losses))}


class MaskedLM(Objective):
    """The model's own masked-LM loss; held out: top-1 against the true tokens at a fixed masking."""

    primary = "top1"

    def __init__(self, task: TaskData, tokenizer: PreTrainedTokenizerBase, opts: TrainOptions) -> None:
        from transformers import DataCollatorForLanguageModeling

        super().__init__(task, tokenizer, opts)
        self.collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=opts.mask_rate)

    def step(self, model: MultiTaskModel, examples: list[str], rng: np.random.Generator) -> Pass:
        enc = self.tok(examples, truncation=True, max_length=self.opts.max_length, return_special_tokens_mask=True)
        batch = self.collator([{k: enc[k][i] for k in enc} for i in range(len(examples))])
        labels = batch.pop("labels")
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        hidden, loss, _ = model.encode(inputs, mlm_labels=labels)
        assert loss is not None
        return Pass(loss, inputs, hidden)

    def evaluate(self, model: MultiTaskModel, examples: list[str]) -> dict[str, float]:
        from compress.adapt.evaluate import masked_scores, torch_predict

        predict = torch_predict(model.model, int(self.tok.mask_token_id))
        scores = masked_scores(predict, self.tok, examples, rate=self.opts.mask_rate, seed=self.opts.seed,
                               max_length=self.opts.max_length)
        return {"top1": scores["top1"], "loss": scores["loss"]}


OBJECTIVES: dict[str, type[Objective]] = {
    "classification": Classification, "token-classification": TokenClassification, "embedding": Embedding,
    "rerank": Rerank, "mlm": MaskedLM,
}
