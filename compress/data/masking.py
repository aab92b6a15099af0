"""MLM masking for evaluation: a fixed share of each row's real tokens, reproducible from a seed.

transformers' ``DataCollatorForLanguageModeling`` is not used: it masks each token independently
(Bernoulli), so a short row often gets no mask at all and the count varies, and it replaces some
chosen tokens by random ones or keeps them (80/10/10), which suits training, not a fill-mask score.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from compress import CompressError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def mask_tokens(enc: dict[str, np.ndarray], tokenizer: PreTrainedTokenizerBase, rate: float = 0.15,
                seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Replace ``rate`` of the real tokens of each row (at least one) by the mask token.

    Returns the masked encoding and the original ids at the masked positions, in row-major order
    (the order of the graph's ``mask_positions``).
    """
    if tokenizer.mask_token_id is None:
        raise CompressError("the tokenizer has no mask token; fill-mask needs one")
    ids = enc["input_ids"].copy()
    special = np.isin(ids, tokenizer.all_special_ids) | (enc["attention_mask"] == 0)
    rng = np.random.default_rng(seed)
    chosen = np.zeros_like(ids, dtype=bool)
    for r in range(ids.shape[0]):
        cand = np.flatnonzero(~special[r])
        if len(cand) == 0:
            continue
        k = max(1, round(rate * len(cand)))
        chosen[r, rng.choice(cand, size=k, replace=False)] = True
    truth = ids[chosen]
    ids[chosen] = tokenizer.mask_token_id
    return {**enc, "input_ids": ids}, truth
