"""Task metrics on numpy arrays, shared by `compress train`'s held-out scores and `compress run`'s task gates.

Scores are higher-is-better, ties counted in the relevant document's favour (as a stable ranking that
lists relevant documents first would have it).
"""

from __future__ import annotations

import numpy as np

CUTOFF = 10


def _relevance(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """A boolean [queries, documents] mask from column indices (one relevant document each) or a mask."""
    if relevant.dtype == bool:
        return relevant
    mask = np.zeros(scores.shape, dtype=bool)
    mask[np.arange(len(scores)), relevant] = True
    return mask


def mrr_at_10(scores: np.ndarray, relevant: np.ndarray) -> float:
    """Mean reciprocal rank (cut at 10) of the first relevant document of each row of ``scores``.

    ``relevant``: the relevant column of each row, or a boolean mask of the same shape as ``scores``.

    Example:
        >>> mrr_at_10(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1]))
        0.75
    """
    mask = _relevance(scores, relevant)
    best = np.where(mask, scores, -np.inf).max(1)
    ranks = (scores > best[:, None]).sum(1) + 1
    return float(np.where(ranks <= CUTOFF, 1.0 / ranks, 0.0).mean())


def ndcg_at_10(scores: np.ndarray, relevant: np.ndarray) -> float:
    """Mean nDCG@10 with binary relevance (``relevant`` as for :func:`mrr_at_10`)."""
    mask = _relevance(scores, relevant)
    discount = 1.0 / np.log2(np.arange(CUTOFF) + 2)
    out = []
    for row, rel in zip(scores, mask, strict=True):
        order = np.lexsort((~rel, -row))[:CUTOFF]  # by score, relevant first among equals
        ideal = discount[:min(int(rel.sum()), CUTOFF)].sum()
        out.append(float((rel[order] * discount[:len(order)]).sum() / ideal) if ideal else 0.0)
    return float(np.mean(out))


def macro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    """F1 averaged over the classes found in ``truth`` or ``predicted`` (as scikit-learn's ``average="macro"``)."""
    scores = []
    for c in np.union1d(truth, predicted):
        tp = int(np.sum((predicted == c) & (truth == c)))
        wrong = int(np.sum((predicted == c) != (truth == c)))  # false positives and false negatives
        scores.append(2 * tp / (2 * tp + wrong))
    return float(np.mean(scores))
