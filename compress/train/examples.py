"""The examples of each task kind, read from data rows, with their labels checked.

- classification: ``text`` (and ``text_pair`` for a pair), ``label``
- token-classification: ``tokens`` (words or residues) and ``labels``, one per token
- embedding: ``anchor``, ``positive`` (and ``negative``); or a plain ``text`` (dropout positives)
- rerank: ``query``, ``positive`` (and ``negatives``); or ``query``, ``passage``, ``label`` (0/1 or a score)
- mlm: ``text``
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from compress import CompressError
from compress.train.rows import Row, optional_text, text_field

Kind = Literal["classification", "token-classification", "embedding", "rerank", "mlm"]
KINDS: tuple[Kind, ...] = ("classification", "token-classification", "embedding", "rerank", "mlm")


@dataclass(frozen=True)
class Labelled:
    """classification: a text (or pair) and its class index."""

    text: str
    text_pair: str | None
    label: int


@dataclass(frozen=True)
class Tagged:
    """token-classification: words (or residues) and the index of each one's label."""

    tokens: tuple[str, ...]
    labels: tuple[int, ...]


@dataclass(frozen=True)
class Pair:
    """embedding: an anchor, its positive (None: the anchor again, under other dropout) and a hard negative."""

    anchor: str
    positive: str | None
    negative: str | None = None


@dataclass(frozen=True)
class Judged:
    """rerank: a query, one relevant passage, and irrelevant ones (empty: mined at training time)."""

    query: str
    positive: str
    negatives: tuple[str, ...] = ()


Example = Labelled | Tagged | Pair | Judged | str


def _label(row: Row, key: str = "label") -> str:
    if key not in row.fields or row.fields[key] in (None, ""):
        raise CompressError(f"{row.where}: no {key!r}; expected the example's class in {key!r}")
    value = row.fields[key]
    if isinstance(value, (list, dict)):
        raise CompressError(f"{row.where}: {key!r} must be one class name, got a {type(value).__name__}")
    return str(value)


def _index(row: Row, name: str, labels: dict[str, int] | None) -> int:
    """The class index of ``name``; with ``labels`` fixed (held-out data), an unknown name is an error."""
    if labels is None:
        raise AssertionError("labels are collected before indexing")
    if name not in labels:
        raise CompressError(f"{row.where}: unknown label {name!r}; the training data's labels are "
                            f"{', '.join(labels)}")
    return labels[name]


def _tokens(row: Row) -> tuple[list[str], list[str]]:
    tokens, tags = row.fields.get("tokens"), row.fields.get("labels")
    if isinstance(tokens, str) and isinstance(tags, str):  # CSV/TSV: space-separated
        tokens, tags = tokens.split(), tags.split()
    if not isinstance(tokens, list) or not isinstance(tags, list):
        raise CompressError(f"{row.where}: expected \"tokens\" and \"labels\" as lists of the same length "
                            "(one label per word or residue)")
    if not tokens or len(tokens) != len(tags):
        raise CompressError(f"{row.where}: {len(tokens)} tokens but {len(tags)} labels; give one label per token")
    if not all(isinstance(t, str) and t.strip() for t in tokens):
        raise CompressError(f"{row.where}: every token must be a non-empty text")
    return tokens, [str(t) for t in tags]


def collect_labels(kind: Kind, rows: list[Row], given: list[str] | None = None, minimum: int = 2) -> list[str]:
    """The classes of a classification or token-classification task: ``given``, else sorted as found (at
    least ``minimum`` of them)."""
    if kind not in ("classification", "token-classification"):
        return []
    found = ([_label(r) for r in rows] if kind == "classification"
             else [t for r in rows for t in _tokens(r)[1]])
    if given:
        return given
    names = sorted(set(found))
    if len(names) < minimum:
        raise CompressError(f"{rows[0].where.rsplit(':', 1)[0]}: a {kind} task needs two or more labels; "
                            f"found {names}")
    return names


def parse(kind: Kind, row: Row, labels: dict[str, int] | None = None) -> Example:
    """One example of ``kind`` from ``row`` (rerank rows with a ``passage`` go through :func:`parse_rerank`).

    Raises:
        CompressError: a missing or malformed field, or an unknown label (file:line, what was expected).
    """
    if kind == "classification":
        text = text_field(row, "text")
        return Labelled(text, optional_text(row, "text_pair"), _index(row, _label(row), labels))
    if kind == "token-classification":
        tokens, tags = _tokens(row)
        return Tagged(tuple(tokens), tuple(_index(row, t, labels) for t in tags))
    if kind == "embedding":
        if "anchor" in row.fields:
            return Pair(text_field(row, "anchor"), text_field(row, "positive", "the anchor's positive text"),
                        optional_text(row, "negative"))
        return Pair(text_field(row, "text", "a text (or anchor and positive)"), None)
    if kind == "rerank":
        return _judged(row)
    return text_field(row, "text")


def parse_rerank(rows: list[Row]) -> list[Judged]:
    """Rerank examples: rows with ``positive`` as they are; rows with ``passage`` and ``label`` grouped by
    query, each relevant passage an example with the query's irrelevant passages as its negatives."""
    listed = [_judged(r) for r in rows if "passage" not in r.fields]
    graded: dict[str, tuple[list[str], list[str]]] = {}
    for r in rows:
        if "passage" in r.fields:
            query, passage = text_field(r, "query"), text_field(r, "passage")
            good, bad = graded.setdefault(query, ([], []))
            (good if _relevance(r) > 0 else bad).append(passage)
    return listed + [Judged(q, p, tuple(bad)) for q, (good, bad) in graded.items() for p in good]


def _relevance(row: Row) -> float:
    try:
        return float(row.fields.get("label", ""))
    except (TypeError, ValueError):
        raise CompressError(f"{row.where}: \"label\" must be a relevance score (1 relevant, 0 not), "
                            f"got {row.fields.get('label')!r}") from None


def _judged(row: Row) -> Judged:
    query = text_field(row, "query")
    negatives = row.fields.get("negatives") or []
    if isinstance(negatives, str):  # CSV/TSV: a JSON list, or one negative
        try:
            negatives = json.loads(negatives) if negatives.lstrip().startswith("[") else [negatives]
        except json.JSONDecodeError:
            raise CompressError(f"{row.where}: \"negatives\" must be a JSON list of texts") from None
    if not isinstance(negatives, list) or not all(isinstance(n, str) and n.strip() for n in negatives):
        raise CompressError(f"{row.where}: \"negatives\" must be a list of texts")
    return Judged(query, text_field(row, "positive", "a relevant passage (or passage and label)"),
                  tuple(n.strip() for n in negatives))
