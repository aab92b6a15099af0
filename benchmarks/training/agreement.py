"""How closely the int8 artifact answers as the trained fp32 model does, on the same held-out inputs.

A case is scored twice through one code path (cases.score_case), once per subject; :class:`Recording`
keeps every answer each subject's callables return, in order, so the two runs' answers line up one for
one and no input is run a third time. :func:`compare` then reads them as the serving issue's budgets
do: token labels and class labels agree, a reranker keeps each query's best candidate (top-1) and the
order of its candidates (Kendall tau), embeddings keep their direction (cosine).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.training import scores
from benchmarks.training.scores import RERANK_TOP
from benchmarks.training.subjects import Subject


class Recording:
    """``subject``'s callables (tag, classify, embed, score, fill), each answer kept under (method, head)."""

    def __init__(self, subject: Subject) -> None:
        self.subject = subject
        self.answers: dict[tuple[str, ...], list[Any]] = {}

    def _recorded(self, method: str, *head: str) -> Callable[[Any], Any]:
        fn = getattr(self.subject, method)(*head)
        kept = self.answers.setdefault((method, *head), [])

        def call(items: Any) -> Any:
            out = fn(items)
            kept.extend(list(out))
            return out
        return call

    def tag(self, name: str) -> scores.Tag:
        return self._recorded("tag", name)

    def classify(self, name: str) -> scores.Classify:
        return self._recorded("classify", name)

    def embed(self, name: str) -> scores.Embed:
        return self._recorded("embed", name)

    def score(self, name: str) -> scores.PairScore:
        return self._recorded("score", name)

    def fill(self) -> scores.Fill:
        return self._recorded("fill")


def compare(fp32: Recording, int8: Recording) -> dict[str, float]:
    """Per head, int8's agreement with fp32 on the answers both gave (``HEAD_tokens``, ``HEAD_labels``,
    ``HEAD_top1`` and ``HEAD_tau``, ``HEAD_cosine``, ``fill_mask``)."""
    out: dict[str, float] = {}
    for key, theirs in fp32.answers.items():
        mine = int8.answers.get(key)
        if not mine or len(mine) != len(theirs):
            continue
        method, head = key[0], key[1] if len(key) > 1 else "fill_mask"
        if method == "tag":
            out[f"{head}_tokens"] = scores.agreement(mine, theirs)
        elif method == "classify":
            out[f"{head}_labels"] = scores.agreement(mine, theirs)
        elif method == "fill":
            out[head] = scores.agreement([list(m) for m in mine], [list(t) for t in theirs])
        elif method == "embed":
            out[f"{head}_cosine"] = scores.mean_cosine(np.asarray(mine), np.asarray(theirs))
        elif method == "score":
            out.update(_ranking(head, np.asarray(mine, dtype=np.float64), np.asarray(theirs, dtype=np.float64)))
    return out


def _ranking(head: str, mine: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    """Top-1 agreement and mean Kendall tau over each query's ``RERANK_TOP`` candidates."""
    from benchmarks.run.accuracy import kendall_tau

    if len(mine) % RERANK_TOP:
        return {}
    a, b = mine.reshape(-1, RERANK_TOP), theirs.reshape(-1, RERANK_TOP)
    return {f"{head}_top1": float(np.mean(a.argmax(1) == b.argmax(1))), f"{head}_tau": kendall_tau(a, b)}
