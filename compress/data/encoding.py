"""Texts to the padded int64 arrays the exported graphs take."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def encode(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int,
           pairs: list[str] | None = None) -> dict[str, np.ndarray]:
    """Pad and truncate texts (or text pairs) into numpy int64 arrays, ``token_type_ids`` always among them."""
    enc = tokenizer(texts, pairs, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    out = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}
    if "token_type_ids" not in out:
        out["token_type_ids"] = np.zeros_like(out["input_ids"])
    return out
