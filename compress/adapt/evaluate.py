"""Held-out scores: masked-token top-1 and loss with one fixed masking, the same before, during and after."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from compress.data import encode, mask_tokens

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# numpy encoding with masks -> logits at the mask positions [N, vocab], row-major (a fill-mask artifact's
# ``mask_logits``)
Predict = Callable[[dict[str, np.ndarray]], np.ndarray]
BATCH = 32


def torch_predict(model: PreTrainedModel, mask_token_id: int) -> Predict:
    """``model``'s logits at the mask positions, without gradients, in eval mode."""
    import torch

    def predict(enc: dict[str, np.ndarray]) -> np.ndarray:
        ids = torch.from_numpy(enc["input_ids"])
        model.eval()
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=torch.from_numpy(enc["attention_mask"])).logits
        return logits[ids == mask_token_id].numpy()
    return predict


def masked_scores(predict: Predict, tokenizer: PreTrainedTokenizerBase, texts: list[str], *, rate: float = 0.15,
                  seed: int = 0, max_length: int = 256) -> dict[str, float]:
    """Top-1 accuracy and mean cross-entropy at ``rate`` masked tokens of ``texts``.

    Example:
        >>> masked_scores(torch_predict(model, tok.mask_token_id), tok, ["E V Q L V"])  # doctest: +SKIP
        {'top1': 0.8, 'loss': 0.61, 'n': 5}
    """
    texts = sorted(texts, key=len)  # less padding; the order is fixed, so is the masking
    hits, losses = [], []
    for b in range(0, len(texts), BATCH):
        enc = encode(tokenizer, texts[b:b + BATCH], max_length)
        masked, truth = mask_tokens(enc, tokenizer, rate, seed=seed * 1_000_003 + b)
        logits = predict(masked).astype(np.float64)
        logz = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
        losses.append(logz - logits[np.arange(len(truth)), truth])
        hits.append(logits.argmax(-1) == truth)
    h, lo = np.concatenate(hits), np.concatenate(losses)
    return {"top1": float(h.mean()), "loss": float(lo.mean()), "n": len(h)}
