"""Real inputs for speed measurements, in short / medium / long buckets per model.

Antibodies (anarci germlines): short = the first 48 residues of a V gene, medium = a whole V gene
(~98 residues), long = a V gene joined to a J gene of the same species and chain (~113).
English (BBC News): short = sentences of at most 16 words, medium = 20-30 words, long = paragraphs
(truncated to 256 tokens).
"""

from __future__ import annotations

import re
from typing import Literal

import numpy as np

from compress.data import antibody_germlines, bbc_articles, bbc_sentences, space_residues

Bucket = Literal["short", "medium", "long"]
BUCKETS: tuple[Bucket, ...] = ("short", "medium", "long")


def _antibody_texts(bucket: Bucket, n: int, seed: int) -> list[str]:
    seqs = [a.sequence for a in antibody_germlines()]
    rng = np.random.default_rng(seed)
    picks = [seqs[i] for i in rng.choice(len(seqs), size=n, replace=len(seqs) < n)]
    if bucket == "short":
        picks = [s[:48] for s in picks]
    elif bucket == "long":
        cdr3_fr4 = "GGYFDYWGQGTLVTVSS"  # a short CDR3 and the human IGHJ4 framework 4
        picks = [s + cdr3_fr4 for s in picks]
    return [space_residues(s) for s in picks]


def _english_texts(bucket: Bucket, n: int, seed: int) -> list[str]:
    if bucket == "long":
        paras = [p.strip() for _, text in bbc_articles() for p in text.split("\n") if len(p.split()) >= 60]
        rng = np.random.default_rng(seed)
        return [paras[i] for i in rng.choice(len(paras), size=n, replace=len(paras) < n)]
    lo, hi = (6, 16) if bucket == "short" else (20, 30)
    pool = [s for s in bbc_sentences(4000, seed) if lo <= len(re.findall(r"\S+", s)) <= hi]
    return [pool[i % len(pool)] for i in range(n)]


def texts_for(residues: bool, bucket: Bucket, n: int, seed: int = 0) -> list[str]:
    """``n`` real texts of one length bucket, antibody or English."""
    return _antibody_texts(bucket, n, seed) if residues else _english_texts(bucket, n, seed)
