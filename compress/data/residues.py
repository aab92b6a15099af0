"""Protein vocabularies, where every amino acid is a token of its own."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

AMINO_ACIDS = set("ACDEFGHIKLMNPQRSTVWY")


def is_residue_vocab(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True for a protein vocabulary: (nearly) every amino acid is a token of its own."""
    vocab = tokenizer.get_vocab()
    return len(vocab) < 64 and sum(a in vocab for a in AMINO_ACIDS) >= 18


def space_residues(sequence: str, mask_token: str = "[MASK]") -> str:
    """``EVQ[MASK]L`` -> ``E V Q [MASK] L``: what a per-residue WordPiece vocabulary needs."""
    parts = re.split(f"({re.escape(mask_token)})", sequence.replace(" ", ""))
    tokens: list[str] = []
    for p in parts:
        tokens.extend([p] if p == mask_token else list(p))
    return " ".join(tokens)
