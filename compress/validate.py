"""Compare a compressed artifact with the original model on a validation set.

fill-mask: top-1 agreement and top-5 overlap at masked positions (and top-1 accuracy against the
tokens that were masked); classification: label agreement; token-classification: label agreement at
every real token; rerank: per query, as a reranker is used (a text's opening words against that text
and the texts that share most words with it), the share of candidate pairs ordered the same by both
(Kendall's concordance), the queries whose best candidate is the same, and their mean Kendall tau;
embedding: cosine to the original; sparse-embedding: the overlap of the top-32 terms.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from compress.catalog import Task
from compress.data import encode, mask_tokens
from compress.task_heads import HeadTask

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
PRIMARY: dict[str, str] = {"fill-mask": "top1_agreement", "classification": "label_agreement",
                           "embedding": "mean_cosine", "token-classification": "token_agreement",
                           "rerank": "order_agreement", "sparse-embedding": "top32_overlap"}
SPARSE_TOP = 32  # terms compared per sparse vector (a SPLADE document keeps ~100-200 non-zero terms)
RERANK_GROUP = 8  # candidates per query of a rerank validation set
GROUP_QUERIES = 4  # queries per group of candidates
QUERY_WORDS = 12  # a rerank validation query: this many opening words of one of its candidates


@dataclass
class ValidationSet:
    task: Task | HeadTask
    batches: list[dict[str, np.ndarray]]
    truth: list[np.ndarray] = field(default_factory=list)  # fill-mask: original ids at the masks
    n_texts: int = 0
    groups: list[np.ndarray] = field(default_factory=list)  # rerank: each row's query group, per batch

    def head(self, n_batches: int) -> ValidationSet:
        """The first ``n_batches`` batches, for cheaper repeated measurements."""
        return ValidationSet(self.task, self.batches[:n_batches], self.truth[:n_batches],
                             sum(len(b["input_ids"]) for b in self.batches[:n_batches]), self.groups[:n_batches])

    @property
    def n_items(self) -> int:
        return int(sum(len(t) for t in self.truth)) if self.truth else self.n_texts


def build_validation_set(task: Task | HeadTask, tokenizer: PreTrainedTokenizerBase, texts: list[str], *,
                         max_length: int, batch_size: int = 32, mask_rate: float = 0.15,
                         seed: int = 0) -> ValidationSet:
    """Tokenize ``texts`` into length-sorted batches; for fill-mask, mask texts that have no mask; for
    rerank, (query, candidate) pairs of :func:`rerank_groups`."""
    if task == "rerank":
        return _rerank_set(tokenizer, texts, max_length, batch_size)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    vs = ValidationSet(task=task, batches=[], n_texts=len(texts))
    mask = tokenizer.mask_token
    for start in range(0, len(order), batch_size):
        chunk = [texts[i] for i in order[start:start + batch_size]]
        enc = encode(tokenizer, chunk, max_length)
        if task == "fill-mask":
            if mask and all(mask in t for t in chunk):
                truth = np.full(int((enc["input_ids"] == tokenizer.mask_token_id).sum()), -1)
            else:
                enc, truth = mask_tokens(enc, tokenizer, mask_rate, seed + start)
            vs.truth.append(truth)
        vs.batches.append(enc)
    return vs


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def rerank_groups(texts: list[str]) -> list[list[int]]:
    """``texts`` split into groups of ``RERANK_GROUP``, as a retriever's candidate lists: each group is a
    text and the texts not yet grouped that share most words with it (per word of theirs), so a query's
    candidates are on its topic and score close together, where int8 errors swap them."""
    words = [_words(t) for t in texts]
    left = dict.fromkeys(range(len(texts)))
    groups = []
    while left:
        seed = next(iter(left))
        del left[seed]
        near = sorted(left, key=lambda j: -len(words[seed] & words[j]) / np.sqrt(1 + len(words[j])))
        groups.append([seed, *near[:RERANK_GROUP - 1]])
        for j in near[:RERANK_GROUP - 1]:
            del left[j]
    return groups


def _rerank_set(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int,
                batch_size: int) -> ValidationSet:
    """(query, candidate) pairs: the opening ``QUERY_WORDS`` words of each of a group's first
    ``GROUP_QUERIES`` texts, against every text of the group (its own among them); one query, one group."""
    queries, passages, ids = [], [], []
    for n, (q, members) in enumerate((q, m) for m in rerank_groups(texts) for q in m[:GROUP_QUERIES]):
        queries += [" ".join(texts[q].split()[:QUERY_WORDS])] * len(members)
        passages += [texts[j] for j in members]
        ids += [n] * len(members)
    vs = ValidationSet(task="rerank", batches=[], n_texts=len(texts))
    for b in range(0, len(queries), batch_size):
        vs.batches.append(encode(tokenizer, queries[b:b + batch_size], max_length, passages[b:b + batch_size]))
        vs.groups.append(np.asarray(ids[b:b + batch_size]))
    return vs


def _pair_signs(r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The signs of r_i - r_j and of c_i - c_j for each pair (i, j) that ``r`` does not tie."""
    i, j = np.triu_indices(len(r), k=1)
    keep = r[i] != r[j]
    return np.sign(r[i] - r[j])[keep], np.sign(c[i] - c[j])[keep]


def rerank_agreement(r: np.ndarray, c: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Concordance over the candidate pairs of each group, the share of groups with the same best
    candidate, the groups' mean Kendall tau, and the largest score difference."""
    same, top1, taus = [], [], []
    for g in np.unique(groups):
        rg, cg = r[groups == g], c[groups == g]
        a, b = _pair_signs(rg, cg)
        if len(a):
            same.append(a == b)
            taus.append(float(np.mean(np.where(a == b, 1.0, -1.0))))
        top1.append(rg.argmax() == cg.argmax())
    return {"order_agreement": float(np.concatenate(same).mean()) if same else 1.0,
            "top1_agreement": float(np.mean(top1)), "group_tau": float(np.mean(taus)) if taus else 1.0,
            "max_abs_score_diff": float(np.abs(r - c).max())}


def collect(runner: Runner, vs: ValidationSet, desc: str) -> list[dict[str, np.ndarray]]:
    """Run every batch through ``runner``, with a progress bar."""
    return [runner(b) for b in tqdm(vs.batches, desc=desc, unit="batch", leave=False)]


def _topk(logits: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-logits, axis=-1)[:, :k]


def compare(vs: ValidationSet, ref: list[dict[str, np.ndarray]],
            cand: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Agreement figures of ``cand`` against ``ref`` (both from :func:`collect`)."""
    if vs.task == "fill-mask":
        r = np.concatenate([o["mask_logits"] for o in ref])
        c = np.concatenate([o["mask_logits"] for o in cand])
        truth = np.concatenate(vs.truth)
        r5, c5 = _topk(r, 5), _topk(c, 5)
        overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(r5, c5, strict=True)])
        out = {"top1_agreement": float(np.mean(r5[:, 0] == c5[:, 0])), "top5_overlap": float(overlap)}
        known = truth >= 0
        if known.any():
            out["top1_accuracy_original"] = float(np.mean(r5[known, 0] == truth[known]))
            out["top1_accuracy"] = float(np.mean(c5[known, 0] == truth[known]))
        return out
    if vs.task == "token-classification":
        real = [b["attention_mask"].astype(bool) for b in vs.batches[:len(ref)]]
        r = np.concatenate([o["logits"][m] for o, m in zip(ref, real, strict=True)])
        c = np.concatenate([o["logits"][m] for o, m in zip(cand, real, strict=True)])
        return {"token_agreement": float(np.mean(r.argmax(-1) == c.argmax(-1))),
                "mean_abs_logit_diff": float(np.abs(r - c).mean())}
    if vs.task == "rerank":
        r = np.concatenate([o["logits"][:, 0] for o in ref])
        c = np.concatenate([o["logits"][:, 0] for o in cand])
        return rerank_agreement(r, c, np.concatenate(vs.groups[:len(ref)]))
    if vs.task == "sparse-embedding":
        return sparse_agreement(np.concatenate([o["sparse"] for o in ref]), np.concatenate([o["sparse"] for o in cand]))
    if vs.task == "classification":
        r = np.concatenate([o["logits"] for o in ref])
        c = np.concatenate([o["logits"] for o in cand])
        return {"label_agreement": float(np.mean(r.argmax(-1) == c.argmax(-1))),
                "mean_abs_logit_diff": float(np.abs(r - c).mean()), "max_abs_logit_diff": float(np.abs(r - c).max())}
    r = np.concatenate([o["sentence_embedding"] for o in ref])
    c = np.concatenate([o["sentence_embedding"] for o in cand])
    cos = (r * c).sum(-1) / (np.linalg.norm(r, axis=-1) * np.linalg.norm(c, axis=-1) + 1e-12)
    return {"mean_cosine": float(cos.mean()), "min_cosine": float(cos.min())}


def top_overlap(ref: np.ndarray, cand: np.ndarray, k: int = SPARSE_TOP) -> np.ndarray:
    """Per row, the share of ``ref``'s top-``k`` non-zero terms that are among ``cand``'s top terms as many
    (1 for a row with no non-zero term): zeros are no terms, so their ties do not count."""
    out = np.ones(len(ref))
    for i, (r, c) in enumerate(zip(ref, cand, strict=True)):
        n = min(k, int(np.count_nonzero(r > 0)))
        if n:
            want = set(np.argsort(-r, kind="stable")[:n].tolist())
            out[i] = len(want & set(np.argsort(-c, kind="stable")[:n].tolist())) / n
    return out


def sparse_agreement(ref: np.ndarray, cand: np.ndarray) -> dict[str, float]:
    """Top-32 term overlap (mean and worst), cosine and the largest weight difference of sparse vectors."""
    overlap = top_overlap(ref, cand)
    cos = (ref * cand).sum(-1) / (np.linalg.norm(ref, axis=-1) * np.linalg.norm(cand, axis=-1) + 1e-12)
    return {"top32_overlap": float(overlap.mean()), "min_top32_overlap": float(overlap.min()),
            "mean_cosine": float(cos.mean()), "max_abs_weight_diff": float(np.abs(ref - cand).max())}


def primary(task: Task | HeadTask, metrics: dict[str, float]) -> float:
    return metrics[PRIMARY[task]]


def closeness(task: Task | HeadTask, metrics: dict[str, float]) -> float:
    """A continuous higher-is-closer figure for ranking layers (agreement counts are too coarse)."""
    if task == "fill-mask":
        return metrics["top5_overlap"]
    if task in ("classification", "token-classification"):
        return -metrics["mean_abs_logit_diff"]
    if task == "rerank":
        return metrics["order_agreement"]
    return metrics["mean_cosine"]  # embedding, sparse-embedding
