"""The data files of `compress train`'s four benchmark cases, built from packaged data (no network).

- Regions (AntiBERTy): anarci's IMGT-gapped V genes; a residue's IMGT position is its index in the
  gapped string plus one, so its region label is exact. Train: human and mouse antibody genes (H, K,
  L); test: every other species' antibody genes, and all T-cell receptor genes (A, B, G, D). A
  sequence is kept once (its first gene in chain, species, gene order) and never in two parts.
- BBC News: the 2,225 articles in topic and file order; every fifth (index 4, 9, ...) is held out,
  445 in all. A training article whose headline, body or topic text equals a held-out article's is
  dropped (the corpus repeats ~130 articles), so no held-out text is trained on.
  The headline is an article's first line; the body is the rest with its whitespace collapsed, cut at
  BODY_WORDS words; the topic text is the headline and the body. (The issue's 0.980 topic baseline is
  on such texts: a logistic regression on the original MiniLM's embeddings scores 0.982 on them and
  0.955 on the existing suites' cut, ``datasets.bbc_text``, of 48 words.)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compress.data import AMINO_ACIDS, GappedGene, bbc_articles, gapped_v_genes, space_residues

TRAIN_SPECIES = ("human", "mouse")
ANTIBODY_CHAINS = "HKL"
TCR_CHAINS = "ABGD"
MIN_RESIDUES = 60  # as compress.data.antibody_germlines: drops fragments
# IMGT regions by their first position; a V gene ends inside CDR3, before FR4 (118-128).
REGION_STARTS = ((1, "FR1"), (27, "CDR1"), (39, "FR2"), (56, "CDR2"), (66, "FR3"), (105, "CDR3"))
HELD_OUT_EVERY = 5  # 4:1
BODY_WORDS = 160  # every held-out body fits MiniLM's 256-token window (at most 256 word pieces)
HARD_NEGATIVES = 3  # BM25 negatives per rerank-train query, from other training articles


def imgt_region(position: int) -> str:
    """IMGT region of a 1-based IMGT position: FR1 1-26, CDR1 27-38, FR2 39-55, CDR2 56-65, FR3 66-104, CDR3 105+."""
    if position < 1:
        raise ValueError(f"IMGT positions start at 1, got {position}")
    return [name for start, name in REGION_STARTS if position >= start][-1]


def region_item(gene: GappedGene) -> dict[str, list[str]]:
    """``{"tokens": residues, "labels": regions}`` of one gapped gene."""
    pairs = [(c.upper(), imgt_region(i + 1)) for i, c in enumerate(gene.gapped) if c != "-"]
    return {"tokens": [c for c, _ in pairs], "labels": [r for _, r in pairs]}


def imgt_aligned(gene: GappedGene) -> bool:
    """The gapped string puts the conserved cysteines at IMGT 23 and 104. anarci's rhesus H and K and rat H
    germlines do not (their gaps are laid out otherwise), so their region labels would be off by a residue."""
    gapped = gene.gapped.upper()
    return len(gapped) >= 104 and gapped[22] == "C" and gapped[103] == "C"


def _unique(genes: Iterable[GappedGene], exclude: set[str]) -> list[GappedGene]:
    """IMGT-aligned genes of whole, standard sequences, each sequence once and none of ``exclude``."""
    out: dict[str, GappedGene] = {}
    for g in genes:
        seq = g.sequence
        if (len(seq) >= MIN_RESIDUES and set(seq) <= AMINO_ACIDS and imgt_aligned(g) and seq not in exclude
                and seq not in out):
            out[seq] = g
    return list(out.values())


def region_genes() -> dict[str, list[GappedGene]]:
    """The genes of the region case: ``train``, ``antibody_test`` (other species), ``tcr_test``."""
    antibodies = gapped_v_genes(ANTIBODY_CHAINS)
    train = _unique((g for g in antibodies if g.species in TRAIN_SPECIES), set())
    seen = {g.sequence for g in train}
    antibody_test = _unique((g for g in antibodies if g.species not in TRAIN_SPECIES), seen)
    tcr_test = _unique(gapped_v_genes(TCR_CHAINS), seen | {g.sequence for g in antibody_test})
    return {"train": train, "antibody_test": antibody_test, "tcr_test": tcr_test}


@dataclass(frozen=True)
class Article:
    topic: str
    headline: str
    body: str  # after the headline, whitespace collapsed, BODY_WORDS words at most
    text: str  # the topic case's text: headline and body
    paragraphs: tuple[str, ...]  # the body's paragraphs, whole


def _article(topic: str, raw: str) -> Article:
    headline, _, rest = raw.strip().partition("\n")
    paragraphs = tuple(" ".join(p.split()) for p in rest.split("\n") if p.strip())
    body = " ".join(" ".join(paragraphs).split()[:BODY_WORDS])
    headline = " ".join(headline.split())
    return Article(topic, headline, body, f"{headline} {body}", paragraphs)


def bbc_articles_split() -> tuple[list[Article], list[Article]]:
    """(train, held out): every HELD_OUT_EVERY-th article is held out; train drops their repeats."""
    articles = [_article(topic, raw) for topic, raw in bbc_articles()]
    held = [a for i, a in enumerate(articles) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    taken = {s for a in held for s in (a.headline, a.body, a.text)}
    train = [a for i, a in enumerate(articles) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1
             and not {a.headline, a.body, a.text} & taken]
    return train, held


def held_out_paragraphs(train: list[Article], held: list[Article], min_words: int = 6) -> list[str]:
    """Paragraphs of held-out bodies, each once, leaving out any that a training text holds."""
    trained = [s for a in train for s in (a.body, a.text)]
    grams = set().union(*map(_word_grams, trained))
    joined = "\n".join(trained)
    paragraphs = dict.fromkeys(p for a in held for p in a.paragraphs if len(p.split()) >= min_words)
    return [p for p in paragraphs if not (_word_grams(p) <= grams and p in joined)]  # cheap test first


def _word_grams(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = text.split()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The objects of a JSONL file, in order."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def rerank_rows(train: list[Article], negatives: int = HARD_NEGATIVES) -> list[dict[str, Any]]:
    """``{"query", "positive", "negatives"}`` per training article: BM25's best other training bodies."""
    from benchmarks.training.scores import bm25_scores, top_k

    bodies = [a.body for a in train]
    order = top_k(bm25_scores([a.headline for a in train], bodies), negatives + 4)
    rows = []
    for a, cand in zip(train, order, strict=True):
        negs = [bodies[j] for j in cand if bodies[j] != a.body and train[j].headline != a.headline]
        rows.append({"query": a.headline, "positive": a.body, "negatives": negs[:negatives]})
    return rows


def case_rows() -> dict[str, list[Any]]:
    """Each case file's rows: dicts for the ``.jsonl`` files, lines for the ``.txt`` ones."""
    genes = region_genes()
    train, held = bbc_articles_split()
    return {
        "region-train": [region_item(g) for g in genes["train"]],
        "region-antibody-test": [region_item(g) for g in genes["antibody_test"]],
        "region-tcr-test": [region_item(g) for g in genes["tcr_test"]],
        "mlm-train": [space_residues(g.sequence) for g in genes["train"]],  # AntiBERTy's input: "E V Q L ..."
        "topic-train": [{"text": a.text, "label": a.topic} for a in train],
        "topic-test": [{"text": a.text, "label": a.topic} for a in held],
        "pairs-train": [{"anchor": a.headline, "positive": a.body} for a in train],
        "pairs-test": [{"anchor": a.headline, "positive": a.body} for a in held],
        "rerank-train": rerank_rows(train),
        "paragraphs-test": held_out_paragraphs(train, held),
    }


def write_case_files(out_dir: str | Path) -> dict[str, Path]:
    """Write the training and held-out files of the four cases; the same bytes on every run.

    Args:
        out_dir: created if missing; existing files of the same names are replaced.

    Returns:
        file name without extension (``region-train``, ``pairs-test``, ...) -> its path.

    Example:
        >>> files = write_case_files("artifacts/train-data")  # doctest: +SKIP
        >>> files["region-train"].name                        # doctest: +SKIP
        'region-train.jsonl'
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, rows in case_rows().items():
        text = isinstance(rows[0], str)
        path = out / f"{name}.{'txt' if text else 'jsonl'}"
        lines = rows if text else (json.dumps(r, ensure_ascii=False) for r in rows)
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        files[name] = path
    return files
