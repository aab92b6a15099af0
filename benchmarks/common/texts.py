"""Real texts to send a served artifact: BBC News paragraphs for English models, anarci germline V genes
for antibody models (the serving report's and the sentence-transformers comparison's inputs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

MAX_TOKENS = 256
SEED = 14


def serving_texts(artifact: Path, n: int, task: str | None = None) -> tuple[list[str], dict[str, Any]]:
    """``n`` real texts for ``task`` (default: the artifact's), shuffled, and their token statistics.

    English: BBC News body paragraphs of 8+ words and at most 256 tokens. Antibodies: anarci germline
    V genes; for fill-mask one residue of each is masked at random.
    """
    from compress.artifact import load_artifact
    from compress.data import antibody_germlines, bbc_articles

    art = load_artifact(artifact)
    m, tok = art.manifest, art.tokenizer()
    task = task or m.task
    rng = np.random.default_rng(SEED)
    if m.tokenizer.split_chars:
        pool = [g.sequence for g in antibody_germlines()]
    else:
        pool = [p.strip() for _, text in bbc_articles() for p in text.split("\n")[1:] if len(p.split()) >= 8]
    pool = [pool[i] for i in rng.permutation(len(pool))]
    if m.tokenizer.split_chars and task == "fill-mask":
        mask = m.tokenizer.mask_token or "[MASK]"
        pool = [" ".join(mask if i == k else c for i, c in enumerate(s)) for s, k in
                ((s, int(rng.integers(len(s)))) for s in pool)]
    elif m.tokenizer.split_chars:
        pool = [" ".join(s) for s in pool]
    elif task == "fill-mask":
        mask = m.tokenizer.mask_token or "[MASK]"
        pool = [" ".join(mask if i == len(w) // 2 else x for i, x in enumerate(w)) for w in (p.split() for p in pool)]
    limit = min(MAX_TOKENS, m.tokenizer.max_length)
    texts = [t for t, ids in zip(pool, tok(pool)["input_ids"], strict=True) if len(ids) <= limit]
    texts = [texts[i % len(texts)] for i in range(n)]
    lengths = sorted(len(ids) for ids in tok(texts)["input_ids"])
    return texts, {"count": len(texts), "mean_tokens": float(np.mean(lengths)),
                   "p95_tokens": lengths[int(0.95 * (len(lengths) - 1))]}
