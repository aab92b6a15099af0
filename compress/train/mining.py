"""Negatives for a reranker whose data has none: the passages BM25 ranks highest for the query (hard
negatives), other than the relevant one; random passages where BM25 finds too few."""

from __future__ import annotations

import numpy as np

from compress import CompressError

POOL = 30  # BM25's top passages a step draws its negatives from


class NegativeMiner:
    """BM25 (bm25s) over a fixed pool of passages."""

    def __init__(self, passages: list[str], seed: int = 0) -> None:
        try:
            import bm25s
        except ImportError:
            raise CompressError("mining rerank negatives needs bm25s: pip install bm25s (or give each query "
                                "its negatives in the data file)") from None
        self.bm25s = bm25s
        self.passages = list(dict.fromkeys(passages))
        self.seed = seed
        self.cache: dict[str, list[str]] = {}
        self.index = bm25s.BM25()
        self.index.index(bm25s.tokenize(self.passages, stopwords="en", show_progress=False), show_progress=False)

    def _top(self, query: str) -> list[str]:
        """BM25's top ``POOL`` passages for ``query``, retrieved once per query."""
        if query not in self.cache:
            k = min(len(self.passages), POOL + 1)
            found, _ = self.index.retrieve(self.bm25s.tokenize([query], stopwords="en", show_progress=False),
                                           k=k, show_progress=False)
            self.cache[query] = [self.passages[i] for i in found[0]]
        return self.cache[query]

    def mine(self, query: str, positive: str, n: int, rng: np.random.Generator | None) -> list[str]:
        """``n`` passages other than ``positive``: drawn from BM25's top ``POOL`` when ``rng`` is given
        (training), else BM25's top ``n`` (held-out scoring, the same every time); random ones where BM25
        finds too few."""
        ranked = [p for p in self._top(query) if p != positive]
        if rng is not None and len(ranked) > n:
            ranked = [ranked[i] for i in sorted(rng.choice(len(ranked), n, replace=False))]
        ranked = ranked[:n]
        if len(ranked) < n:
            taken = set(ranked)
            rest = [p for p in self.passages if p != positive and p not in taken]
            draw = np.random.default_rng([self.seed, len(query)]) if rng is None else rng
            ranked += [rest[i] for i in draw.choice(len(rest), min(n - len(ranked), len(rest)), replace=False)]
        return ranked
