"""Real texts to send a served artifact: BBC News paragraphs for English models, anarci germline V genes
for antibody models, (headline, paragraph of its article) pairs for rerankers (the serving report's and
the sentence-transformers comparison's inputs)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from benchmarks.common.endpoints import Item

MAX_TOKENS = 256
SEED = 14


def serving_texts(artifact: Path, n: int, task: str | None = None) -> tuple[list[Item], dict[str, Any]]:
    """``n`` real inputs for ``task`` (default: the artifact's), shuffled, and their token statistics.

    English: BBC News body paragraphs of 8+ words and at most 256 tokens; rerank: pairs of an article's
    headline and one such paragraph of its body (at most 256 tokens together). Antibodies: anarci germline
    V genes; for fill-mask one residue of each is masked at random.
    """
    from compress.artifact import load_artifact

    art = load_artifact(artifact)
    m, tok = art.manifest, art.tokenizer()
    task = task or m.task
    pool = _pool(m, task)
    limit = min(MAX_TOKENS, m.tokenizer.max_length)
    items = [t for t, ids in zip(pool, _ids(tok, pool), strict=True) if len(ids) <= limit]
    items = [items[i % len(items)] for i in range(n)]
    lengths = sorted(len(ids) for ids in _ids(tok, items))
    return items, {"count": len(items), "mean_tokens": float(np.mean(lengths)),
                   "p95_tokens": lengths[int(0.95 * (len(lengths) - 1))]}


def item_length(item: Item) -> int:
    """Characters of one input (a pair's both texts): the in-process runs sort by it."""
    return len(item) if isinstance(item, str) else len(item[0]) + len(item[1])


def encode_items(tok: Any, items: Sequence[Item], max_length: int) -> dict[str, np.ndarray]:
    """Padded int64 inputs of texts, or of (query, passage) pairs with their segment ids (the passage cut
    first), as a reranker reads them and the server sends them."""
    from compress.data import encode

    pairs = _pairs(items)
    if not pairs:
        return encode(tok, [i for i in items if isinstance(i, str)], max_length)
    enc = tok([q for q, _ in pairs], [p for _, p in pairs], padding=True, truncation="only_second",
              max_length=max_length, return_tensors="np")
    out = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()
           if k in ("input_ids", "attention_mask", "token_type_ids")}
    out.setdefault("token_type_ids", np.zeros_like(out["input_ids"]))
    return out


def _pairs(items: Sequence[Item]) -> list[tuple[str, str]]:
    """The (query, passage) pairs of ``items`` (none when they are texts)."""
    return [i for i in items if isinstance(i, tuple)]


def _ids(tok: Any, items: Sequence[Item]) -> list[list[int]]:
    pairs = _pairs(items)
    if pairs:
        return tok([q for q, _ in pairs], [p for _, p in pairs])["input_ids"]  # type: ignore[no-any-return]
    return tok(list(items))["input_ids"]  # type: ignore[no-any-return]


def _pool(m: Any, task: str) -> list[Item]:
    """Every candidate input of ``task``, shuffled (fixed seed), before the length limit."""
    from compress.data import antibody_germlines, bbc_articles

    rng = np.random.default_rng(SEED)
    if task == "rerank":
        pairs: list[Item] = []
        for _, text in bbc_articles():
            headline, *paragraphs = [p.strip() for p in text.split("\n") if p.strip()]
            pairs += [(headline, p) for p in paragraphs if len(p.split()) >= 8]
        return [pairs[i] for i in rng.permutation(len(pairs))]
    if m.tokenizer.split_chars:
        pool = [g.sequence for g in antibody_germlines()]
    else:
        pool = [p.strip() for _, text in bbc_articles() for p in text.split("\n")[1:] if len(p.split()) >= 8]
    pool = [pool[i] for i in rng.permutation(len(pool))]
    if m.tokenizer.split_chars and task == "fill-mask":
        mask = m.tokenizer.mask_token or "[MASK]"
        return [" ".join(mask if i == k else c for i, c in enumerate(s)) for s, k in
                ((s, int(rng.integers(len(s)))) for s in pool)]
    if m.tokenizer.split_chars:
        return [" ".join(s) for s in pool]
    if task == "fill-mask":
        mask = m.tokenizer.mask_token or "[MASK]"
        return [" ".join(mask if i == len(w) // 2 else x for i, x in enumerate(w)) for w in (p.split() for p in pool)]
    return list(pool)
