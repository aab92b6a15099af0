"""Held-out scorers of `compress train`'s cases. Each takes plain callables, so the same scorer measures
a torch model, an ONNX artifact or a server over HTTP; items are the rows of the case files (data.py).

Retrieval ranks with ties counted against the relevant document (a query that matches nothing ranks
last, not first), and copies of the relevant document's text count as that document: the BBC corpus
repeats a few articles, and the held-out 445 hold 6 such pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Tag = Callable[[list[list[str]]], list[list[str]]]  # token lists -> a label per token
Classify = Callable[[list[str]], list[str]]  # texts -> a label each
Embed = Callable[[list[str]], np.ndarray]  # texts -> (n, dim) embeddings
PairScore = Callable[[list[tuple[str, str]]], np.ndarray]  # (query, passage) pairs -> (n,) relevance
Fill = Callable[[list[list[str]]], list[list[str]]]  # token lists with masks -> a token per mask
BATCH = 64
RERANK_TOP = 20  # BM25 candidates a reranker re-orders per query


def in_batches(fn: Callable[[list[Any]], Any], items: Sequence[Any], batch: int = BATCH) -> list[Any]:
    """``fn`` over ``items`` in chunks of ``batch``, results concatenated in order."""
    out: list[Any] = []
    for i in range(0, len(items), batch):
        part = list(fn(list(items[i:i + batch])))
        if len(part) != len(items[i:i + batch]):
            raise ValueError(f"the callable returned {len(part)} results for {len(items[i:i + batch])} inputs")
        out.extend(part)
    return out


def agreement(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Share of equal labels; lists of lists (per-token labels) are compared element by element."""
    flat_a, flat_b = _flatten(a), _flatten(b)
    if len(flat_a) != len(flat_b) or not flat_a:
        raise ValueError(f"agreement needs two non-empty label lists of one length: {len(flat_a)} and {len(flat_b)}")
    return float(np.mean([x == y for x, y in zip(flat_a, flat_b, strict=True)]))


def _flatten(labels: Sequence[Any]) -> list[Any]:
    return [x for row in labels for x in row] if labels and isinstance(labels[0], list) else list(labels)


def region_accuracy(tag: Tag, items: Sequence[dict[str, Any]], batch: int = BATCH) -> float:
    """Per-residue accuracy of ``tag`` on ``{"tokens", "labels"}`` rows (region-*-test.jsonl)."""
    pred = in_batches(tag, [r["tokens"] for r in items], batch)
    for p, r in zip(pred, items, strict=True):
        if len(p) != len(r["tokens"]):
            raise ValueError(f"the tagger returned {len(p)} labels for {len(r['tokens'])} tokens")
    return agreement(pred, [r["labels"] for r in items])


def topic_accuracy(classify: Classify, items: Sequence[dict[str, Any]], batch: int = BATCH) -> float:
    """Accuracy of ``classify`` on ``{"text", "label"}`` rows (topic-test.jsonl)."""
    return agreement(in_batches(classify, [r["text"] for r in items], batch), [r["label"] for r in items])


def fill_mask_top1(fill: Fill, sequences: Sequence[Sequence[str]], rate: float = 0.15, seed: int = 0,
                   mask: str = "[MASK]", batch: int = BATCH) -> float:
    """Top-1 accuracy of ``fill`` at ``rate`` of each sequence's tokens (at least one), masked with a fixed seed.

    ``fill`` gets the token lists with ``mask`` in place of the chosen tokens and returns, per list,
    its predicted token at each mask in order.
    """
    rng = np.random.default_rng(seed)
    masked, truth = [], []
    for seq in sequences:
        chosen = sorted(rng.choice(len(seq), size=max(1, round(rate * len(seq))), replace=False).tolist())
        masked.append([mask if i in chosen else t for i, t in enumerate(seq)])
        truth.append([seq[i] for i in chosen])
    pred = in_batches(fill, masked, batch)
    return agreement([list(p) for p in pred], truth)


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean cosine of the rows of ``a`` with the rows of ``b``."""
    return float(np.mean(np.sum(_unit(a) * _unit(b), axis=-1)))


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def embed_all(embed: Embed, texts: Sequence[str], batch: int = BATCH) -> np.ndarray:
    """Unit-length embeddings of ``texts``, ``batch`` at a time."""
    return _unit(np.asarray(in_batches(embed, texts, batch)))


def _reciprocal_rank(scores: np.ndarray, same: np.ndarray, k: int) -> float:
    """1/rank of the best-scored relevant entry (``same``), ties counted against it; 0 past ``k`` or if none."""
    if not same.any():
        return 0.0
    rank = 1 + int(np.sum(scores[~same] >= scores[same].max()))
    return 1.0 / rank if rank <= k else 0.0


def mrr_from_scores(scores: np.ndarray, docs: Sequence[str], k: int = 10) -> float:
    """MRR@k of a (queries, docs) score matrix where query i's relevant document is doc i (or a copy of it)."""
    ids = _text_ids(docs)
    return float(np.mean([_reciprocal_rank(row, ids == ids[i], k) for i, row in enumerate(scores)]))


def _text_ids(docs: Sequence[str]) -> np.ndarray:
    """One id per distinct text, so copies of a document share it."""
    first: dict[str, int] = {}
    return np.array([first.setdefault(d, len(first)) for d in docs])


def mrr_at_10(embed: Embed, queries: Sequence[str], docs: Sequence[str], batch: int = BATCH) -> float:
    """MRR@10 of cosine ranking over all ``docs``; query i's relevant document is doc i.

    Example:
        >>> rows = read_jsonl("pairs-test.jsonl")                                        # doctest: +SKIP
        >>> mrr_at_10(embedder, [r["anchor"] for r in rows], [r["positive"] for r in rows])  # doctest: +SKIP
        0.88
    """
    if len(queries) != len(docs):
        raise ValueError(f"one document per query: got {len(queries)} queries and {len(docs)} documents")
    return mrr_from_scores(embed_all(embed, queries, batch) @ embed_all(embed, docs, batch).T, docs)


def bm25_scores(queries: Sequence[str], docs: Sequence[str]) -> np.ndarray:
    """(queries, docs) BM25 scores (bm25s defaults: Lucene BM25, English stopwords, no stemming)."""
    from benchmarks.common.optional import require

    bm25s = require("bm25s", "bm25s>=0.2")
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(list(docs), stopwords="en", return_ids=False, show_progress=False),
                    show_progress=False)
    tokens = bm25s.tokenize(list(queries), stopwords="en", return_ids=False, show_progress=False)
    return np.stack([retriever.get_scores(q) if q else np.zeros(len(docs)) for q in tokens])


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row, the indices of the ``k`` best scores, best first; ties in index order."""
    return np.argsort(-scores, axis=-1, kind="stable")[:, :k]


def bm25_mrr_at_10(queries: Sequence[str], docs: Sequence[str]) -> float:
    """The lexical baseline: MRR@10 of BM25 over all ``docs``; query i's relevant document is doc i."""
    return mrr_from_scores(bm25_scores(queries, docs), docs)


def rerank_mrr_at_10(score: PairScore, queries: Sequence[str], docs: Sequence[str], top: int = RERANK_TOP,
                     batch: int = BATCH) -> float:
    """MRR@10 of ``score`` re-ranking BM25's ``top`` documents for each query.

    A query whose document (or a copy of it) is not among BM25's ``top`` scores 0.
    """
    ids = _text_ids(docs)
    cand = top_k(bm25_scores(queries, docs), top)
    pairs = [(q, docs[j]) for q, row in zip(queries, cand, strict=True) for j in row]
    relevance = np.asarray(in_batches(score, pairs, batch), dtype=np.float64).reshape(cand.shape)
    return float(np.mean([_reciprocal_rank(relevance[i], ids[cand[i]] == ids[i], 10) for i in range(len(queries))]))


def lee50_spearman(embed: Embed) -> float:
    """Spearman of embedding cosines against gensim's Lee-50 human similarities (1,225 pairs)."""
    from benchmarks.common import datasets
    from benchmarks.common.optional import require

    spearmanr = require("scipy.stats", "scipy>=1.10").spearmanr
    docs, human = datasets.lee50()
    emb = embed_all(embed, list(docs))
    return float(spearmanr((emb @ emb.T)[np.triu_indices(len(docs), 1)], human).statistic)
