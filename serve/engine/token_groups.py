"""Per-token label probabilities to entities, as transformers' ``TokenClassificationPipeline`` makes them.

Strategies (the pipeline's ``aggregation_strategy``):

- ``none``: every token but the special ones, with its most likely label;
- ``simple``: adjacent tokens of the same label joined (``B-X`` starts a new entity, ``I-X`` or ``X``
  continues one);
- ``first``, ``max``, ``average``: first the word pieces of each word are made to agree (the label of the
  word's first piece, of its most confident piece, or of the pieces' mean probabilities), then
  adjacent words joined as ``simple`` does.

A piece continues a word when its vocabulary entry is longer than its text (WordPiece's ``##``), or, for
vocabularies without such a mark, when no space precedes it (the pipeline's fallback heuristic).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from serve.tokenizer import Spans

Strategy = Literal["none", "simple", "first", "max", "average"]


@dataclass
class Entity:
    """One token, word or group: its label, score, and the tokens (first and last index) it spans."""

    label: str
    score: float
    first: int
    last: int


@dataclass
class _Piece:
    index: int
    probs: np.ndarray
    is_subword: bool


def _pieces(probs: np.ndarray, sentence: str, spans: Spans, subword_prefix: str | None,
            unk_token: str | None) -> list[_Piece]:
    """The non-special tokens, each marked whether it continues the previous one's word."""
    pieces = []
    for i, (start, end) in enumerate(spans.offsets[: len(probs)]):
        if spans.special[i]:
            continue
        if spans.tokens[i] == unk_token:
            is_subword = False
        elif subword_prefix:
            is_subword = len(spans.tokens[i]) != end - start
        else:
            is_subword = start > 0 and " " not in sentence[start - 1: start + 1]
        pieces.append(_Piece(i, probs[i], is_subword))
    return pieces


def _word(pieces: list[_Piece], labels: list[str], strategy: Strategy) -> Entity:
    if strategy == "first":
        probs = pieces[0].probs
    elif strategy == "max":
        probs = max(pieces, key=lambda p: p.probs.max()).probs
    else:
        probs = np.nanmean(np.stack([p.probs for p in pieces]), axis=0)
    best = int(probs.argmax())
    return Entity(labels[best], float(probs[best]), pieces[0].index, pieces[-1].index)


def _words(pieces: list[_Piece], labels: list[str], strategy: Strategy) -> list[Entity]:
    words: list[list[_Piece]] = []
    for p in pieces:
        if words and p.is_subword:
            words[-1].append(p)
        else:
            words.append([p])
    return [_word(w, labels, strategy) for w in words]


def _tag(label: str) -> tuple[str, str]:
    """("B" or "I", the entity type) of a label; a label without a B-/I- prefix continues."""
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label


def _group(entities: list[Entity]) -> list[Entity]:
    groups: list[list[Entity]] = []
    for e in entities:
        bi, tag = _tag(e.label)
        if groups and bi != "B" and tag == _tag(groups[-1][-1].label)[1]:
            groups[-1].append(e)
        else:
            groups.append([e])
    return [Entity(g[0].label.split("-", 1)[-1], float(np.nanmean([e.score for e in g])), g[0].first, g[-1].last)
            for g in groups]


def entities(probs: np.ndarray, sentence: str, spans: Spans, labels: list[str], strategy: Strategy, *,
             subword_prefix: str | None = None, unk_token: str | None = None) -> list[Entity]:
    """The entities of one text from its tokens' label probabilities ``probs`` [tokens, labels].

    Args:
        probs: softmax probabilities of each token (rows past ``spans`` ignored).
        sentence: the text as tokenized; ``spans``: its tokens' offsets in it.
        labels: the label of each column.
        strategy: how tokens are joined (see the module docstring).
        subword_prefix, unk_token: the vocabulary's continuation mark and unknown token.

    Example:
        >>> entities(probs, "New York", spans, ["O", "B-LOC", "I-LOC"], "simple")  # doctest: +SKIP
        [Entity(label='LOC', score=0.91, first=1, last=2)]
    """
    pieces = _pieces(probs, sentence, spans, subword_prefix, unk_token)
    if strategy in ("none", "simple"):
        found = [Entity(labels[int(p.probs.argmax())], float(p.probs.max()), p.index, p.index) for p in pieces]
    else:
        found = _words(pieces, labels, strategy)
    return found if strategy == "none" else _group(found)
