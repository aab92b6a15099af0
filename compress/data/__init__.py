"""Data for validation, calibration and pruning: packaged corpora, text files, residue vocabularies,
tokenizing and MLM masking. Nothing here touches the network.
"""

from __future__ import annotations

from compress.data.corpora import (
    CHAIN_LABELS,
    SPECIES_LABELS,
    Antibody,
    GappedGene,
    antibody_germlines,
    bbc_articles,
    bbc_sentences,
    default_texts,
    gapped_v_genes,
    tcr_germlines,
)
from compress.data.encoding import encode
from compress.data.masking import mask_tokens
from compress.data.residues import AMINO_ACIDS, is_residue_vocab, space_residues
from compress.data.texts import read_texts

__all__ = [
    "AMINO_ACIDS",
    "CHAIN_LABELS",
    "SPECIES_LABELS",
    "Antibody",
    "GappedGene",
    "antibody_germlines",
    "bbc_articles",
    "bbc_sentences",
    "default_texts",
    "encode",
    "gapped_v_genes",
    "is_residue_vocab",
    "mask_tokens",
    "read_texts",
    "space_residues",
    "tcr_germlines",
]
