"""Accuracy suites: what one variant of a model gets right on real held-out data (see benchmarks/common/datasets.py).

Each task runs on one model's variant (a runner from numpy encodings to the artifact outputs, its
tokenizer and its labels) and returns a :class:`TaskResult`: the score as a plain float and the
per-item predictions, so that :func:`compare` can measure agreement with the torch-fp32 baseline.

| task | model | score |
|---|---|---|
| masked_residue | antiberty | top-1 accuracy at 15 % masked residues of 400 germlines (fixed seed) |
| species | antiberty-species | accuracy on 600 germlines with an AntiBERTy species label |
| chain | antiberty-chain | Heavy/Light accuracy on 600 germlines |
| lee50 | minilm | Spearman of embedding cosines against the human similarities (1,225 pairs) |
| bbc_probe | minilm | logistic regression on embeddings: 300 train, 1,000 test articles (5 topics) |
| topic | minilm-topic | accuracy of the project's topic classifier on the 1,000 test articles |
| region | antiberty-region | IMGT region accuracy per residue of other species' antibody V genes (anarci) |
| rerank | minilm-rerank | MRR@10 re-ranking BM25's top 10 held-out BBC bodies for 40 held-out headlines |
| sparse | antiberty-sparse | top-32 term overlap of SPLADE vectors with torch-fp32's, masked_residue's 400 germlines |

Agreement with fp32: label agreement for label tasks (masked tokens, classes, probe predictions),
mean cosine of the (unit-length) embeddings for embedding tasks; for rerank the top-1 document of
each query (its Kendall tau with fp32 over each query's candidates is in the figures too). Sparse
vectors have no truth to be scored by: their score is the agreement itself, as compress's gate measures
it (the share of each vector's top-32 terms among torch-fp32's, compress.validate.top_overlap; 1 for
torch-fp32), with the worst vector's and the mean cosine beside it. The probe
is fitted anew on each variant's embeddings, so its agreement is reported but not held to a budget
(its score is).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.common import datasets
from benchmarks.common.optional import require
from benchmarks.common.texts import encode_items
from compress.data import encode, mask_tokens, space_residues

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
BATCH = 32
MASK_RATE = 0.15


@dataclass
class Subject:
    """What a task runs on: one variant of one model."""

    runner: Runner
    tokenizer: Any
    labels: list[str] | None = None  # classifiers: class names in logit order


@dataclass
class TaskResult:
    task: str
    metric: str
    score: float
    n: int  # items scored (masked residues, sequences, pairs, articles)
    labels: np.ndarray | None = None  # per item: predicted token / class ids
    vectors: np.ndarray | None = None  # per item: embeddings
    scores: np.ndarray | None = None  # rerank: [queries, candidates] relevance
    sparse: np.ndarray | None = None  # sparse embeddings: [items, vocab] SPLADE vectors
    seconds: float = 0.0


@dataclass(frozen=True)
class Task:
    name: str
    model: str  # the models.yaml (or benchmark) model whose variants it runs on
    metric: str
    run: Callable[[Subject], TaskResult]
    # False where the per-item predictions come from a classifier fitted per variant (the probe): their
    # agreement with fp32 is reported, but only the score counts against a budget.
    agreement_gated: bool = True


TASKS: dict[str, Task] = {}
# A benchmark row model -> its tasks (the companions run on sibling models built from the same weights).
TASKS_OF = {"antiberty": ("masked_residue", "species", "chain"), "minilm": ("lee50", "bbc_probe", "topic")}
QUICK_TASKS = ("masked_residue", "species", "lee50", "bbc_probe", "topic", "region", "rerank", "sparse")  # --quick
RERANK_QUERIES, RERANK_CANDIDATES = 40, 10
SPARSE_OUTPUT = "splade_sparse"  # antiberty-sparse's sparse-embedding head ``splade`` (compress/task_heads.py)


def _task(name: str, model: str, metric: str, agreement_gated: bool = True,
          ) -> Callable[[Callable[[Subject], TaskResult]], Any]:
    def register(fn: Callable[[Subject], TaskResult]) -> Callable[[Subject], TaskResult]:
        TASKS[name] = Task(name, model, metric, fn, agreement_gated)
        return fn
    return register


def tasks_for(model: str) -> list[str]:
    """The tasks a benchmark model reports: its own and its companions'."""
    return list(TASKS_OF.get(model, ())) or [t.name for t in TASKS.values() if t.model == model]


def _batches(tok: Any, texts: list[str], max_length: int) -> list[dict[str, np.ndarray]]:
    return [encode(tok, texts[i:i + BATCH], max_length) for i in range(0, len(texts), BATCH)]


def _by_length(items: list, key: Callable[[Any], str]) -> list:
    """Sorted by text length (less padding); ties keep their order, so every variant sees the same batches."""
    return sorted(items, key=lambda x: len(key(x)))


@_task("masked_residue", "antiberty", "top1_accuracy")
def masked_residue(s: Subject) -> TaskResult:
    seqs = _by_length(datasets.fill_mask_germlines(s.tokenizer), lambda a: a.sequence)
    preds, truth = [], []
    for b, enc in enumerate(_batches(s.tokenizer, [space_residues(a.sequence) for a in seqs], 512)):
        masked, t = mask_tokens(enc, s.tokenizer, MASK_RATE, seed=datasets.SEED + b)
        logits = s.runner(masked)["mask_logits"]
        if len(logits) != len(t):
            raise ValueError(f"the runner returned {len(logits)} mask rows for {len(t)} masks")
        preds.append(logits.argmax(-1))
        truth.append(t)
    p, t = np.concatenate(preds), np.concatenate(truth)
    return TaskResult("masked_residue", "top1_accuracy", float(np.mean(p == t)), len(t), labels=p)


def _classify(s: Subject, texts: list[str], truth: list[str], max_length: int) -> tuple[np.ndarray, float]:
    if not s.labels:
        raise ValueError("a classification task needs the model's labels")
    missing = set(truth) - set(s.labels)
    if missing:
        raise ValueError(f"labels {sorted(missing)} are not among the model's labels {s.labels}")
    pred = np.concatenate([s.runner(enc)["logits"].argmax(-1) for enc in _batches(s.tokenizer, texts, max_length)])
    want = np.array([s.labels.index(t) for t in truth])
    return pred, float(np.mean(pred == want))


def _germline_classification(s: Subject, task: str, attribute: str) -> TaskResult:
    abs_ = _by_length(datasets.labelled_germlines(s.tokenizer, attribute), lambda a: a.sequence)
    pred, acc = _classify(s, [space_residues(a.sequence) for a in abs_], [getattr(a, attribute) for a in abs_], 512)
    return TaskResult(task, "accuracy", acc, len(abs_), labels=pred)


@_task("species", "antiberty-species", "accuracy")
def species(s: Subject) -> TaskResult:
    return _germline_classification(s, "species", "species")


@_task("chain", "antiberty-chain", "accuracy")
def chain(s: Subject) -> TaskResult:
    return _germline_classification(s, "chain", "chain")


def embed(s: Subject, texts: list[str], max_length: int) -> np.ndarray:
    """Unit-length sentence embeddings (cosine geometry, whatever the manifest's ``normalize``)."""
    emb = np.concatenate([s.runner(enc)["sentence_embedding"] for enc in _batches(s.tokenizer, texts, max_length)])
    return emb / np.maximum(np.linalg.norm(emb, axis=-1, keepdims=True), 1e-12)


@_task("lee50", "minilm", "spearman")
def lee50(s: Subject) -> TaskResult:
    spearmanr = require("scipy.stats", "scipy>=1.10").spearmanr
    docs, human = datasets.lee50()
    emb = embed(s, list(docs), datasets.LEE_MAX_LENGTH)
    sims = (emb @ emb.T)[np.triu_indices(len(docs), 1)]
    rho = float(spearmanr(sims, human).statistic)
    return TaskResult("lee50", "spearman", rho if np.isfinite(rho) else 0.0, len(human), vectors=emb)


@_task("bbc_probe", "minilm", "accuracy", agreement_gated=False)
def bbc_probe(s: Subject) -> TaskResult:
    logistic = require("sklearn.linear_model", "scikit-learn>=1.3").LogisticRegression
    train = _by_length(datasets.bbc_probe_train(), lambda x: x[1])
    test = _by_length(list(datasets.bbc_split()[1]), lambda x: x[1])
    x_train = embed(s, [t for _, t in train], datasets.BBC_MAX_LENGTH)
    x_test = embed(s, [t for _, t in test], datasets.BBC_MAX_LENGTH)
    probe = logistic(C=10.0, max_iter=2000).fit(x_train, [y for y, _ in train])
    pred = probe.predict(x_test)
    topics = sorted(set(probe.classes_))
    acc = float(np.mean(pred == np.array([y for y, _ in test])))
    return TaskResult("bbc_probe", "accuracy", acc, len(test), labels=np.array([topics.index(p) for p in pred]),
                      vectors=np.concatenate([x_train, x_test]))


@_task("topic", "minilm-topic", "accuracy")
def topic(s: Subject) -> TaskResult:
    test = _by_length(list(datasets.bbc_split()[1]), lambda x: x[1])
    pred, acc = _classify(s, [t for _, t in test], [y for y, _ in test], datasets.BBC_MAX_LENGTH)
    return TaskResult("topic", "accuracy", acc, len(test), labels=pred)


@_task("region", "antiberty-region", "token_accuracy")
def region(s: Subject) -> TaskResult:
    from benchmarks.training.data import region_genes, region_item

    items = _by_length([region_item(g) for g in region_genes()["antibody_test"]], lambda r: "".join(r["tokens"]))
    preds, truth = [], []
    for enc, rows in zip(_batches(s.tokenizer, [" ".join(r["tokens"]) for r in items], 512),
                         (items[i:i + BATCH] for i in range(0, len(items), BATCH)), strict=True):
        best = s.runner(enc)["region_logits"].argmax(-1)
        for r, row in enumerate(rows):  # one token per residue, after [CLS]
            preds.append(best[r, 1:1 + len(row["tokens"])])
            truth += row["labels"]
    p = np.concatenate(preds)
    want = np.array([(s.labels or []).index(t) for t in truth])
    return TaskResult("region", "token_accuracy", float(np.mean(p == want)), len(p), labels=p)


@_task("rerank", "minilm-rerank", "mrr@10")
def rerank(s: Subject) -> TaskResult:
    from benchmarks.training.data import bbc_articles_split
    from benchmarks.training.scores import bm25_scores, top_k

    held = bbc_articles_split()[1]
    docs = list(dict.fromkeys(a.body for a in held))
    queries = [(a.headline, docs.index(a.body)) for a in held[:RERANK_QUERIES]]
    cand = top_k(bm25_scores([q for q, _ in queries], docs), RERANK_CANDIDATES)
    pairs = [(q, docs[j]) for (q, _), row in zip(queries, cand, strict=True) for j in row]
    relevance = np.concatenate([s.runner(encode_items(s.tokenizer, pairs[i:i + BATCH], datasets.BBC_MAX_LENGTH))
                                ["rr_logits"][:, 0] for i in range(0, len(pairs), BATCH)]).reshape(cand.shape)
    ranks = [list(cand[i][np.argsort(-relevance[i], kind="stable")]).index(own) + 1 if own in cand[i] else 0
             for i, (_, own) in enumerate(queries)]
    mrr = float(np.mean([1 / r if 0 < r <= 10 else 0.0 for r in ranks]))
    return TaskResult("rerank", "mrr@10", mrr, len(queries), labels=relevance.argmax(-1), scores=relevance)


@_task("sparse", "antiberty-sparse", "top32_overlap")
def sparse(s: Subject) -> TaskResult:
    """The SPLADE vectors of masked_residue's held-out germlines, unmasked; scored against torch-fp32's in
    :func:`compare` (against themselves: 1)."""
    seqs = _by_length(datasets.fill_mask_germlines(s.tokenizer), lambda a: a.sequence)
    batches = _batches(s.tokenizer, [space_residues(a.sequence) for a in seqs], 512)
    vectors = np.concatenate([s.runner(enc)[SPARSE_OUTPUT] for enc in batches]).astype(np.float32)
    return TaskResult("sparse", "top32_overlap", 1.0, len(vectors), sparse=vectors)


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over rows of Kendall's tau between two [rows, candidates] score arrays."""
    kendalltau = require("scipy.stats", "scipy>=1.10").kendalltau
    taus = [kendalltau(x, y).statistic for x, y in zip(a, b, strict=True)]
    return float(np.mean([t if np.isfinite(t) else 0.0 for t in taus]))


def evaluate(task: str, subject: Subject) -> TaskResult:
    """Run one task on one variant.

    Example:
        >>> r = evaluate("lee50", Subject(runner, tokenizer))  # doctest: +SKIP
        >>> r.score, r.vectors.shape                            # doctest: +SKIP
        (0.71, (50, 384))
    """
    if task not in TASKS:
        raise ValueError(f"unknown accuracy task {task!r}; known: {', '.join(TASKS)}")
    t0 = time.perf_counter()
    result = TASKS[task].run(subject)
    result.seconds = time.perf_counter() - t0
    return result


def compare(result: TaskResult, baseline: TaskResult | None) -> dict[str, Any]:
    """JSON figures of one task: score, and against the baseline delta (points), agreement, cosine."""
    out: dict[str, Any] = {"metric": result.metric, "score": result.score, "n": result.n,
                           "seconds": round(result.seconds, 2), "delta_points": None, "agreement": None,
                           "cosine_to_fp32": None}
    if baseline is None:
        return out
    out["delta_points"] = 100.0 * (result.score - baseline.score)
    if result.labels is not None and baseline.labels is not None:
        out["agreement"] = float(np.mean(result.labels == baseline.labels))
    if result.vectors is not None and baseline.vectors is not None:
        out["cosine_to_fp32"] = float(np.mean(np.sum(result.vectors * baseline.vectors, axis=-1)))
    if result.scores is not None and baseline.scores is not None:
        out["kendall_tau"] = kendall_tau(result.scores, baseline.scores)
    if result.sparse is not None and baseline.sparse is not None:  # no truth: the overlap is the score
        from compress.validate import sparse_agreement

        figures = sparse_agreement(baseline.sparse, result.sparse)
        out.update(score=figures["top32_overlap"], delta_points=None, top32_overlap=figures["top32_overlap"],
                   min_top32_overlap=figures["min_top32_overlap"], sparse_cosine=figures["mean_cosine"])
    return out
