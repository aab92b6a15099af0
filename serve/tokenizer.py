"""An artifact's tokenizer as `serve` runs it: its ``tokenizer.json`` read with Hugging Face's Rust
``tokenizers`` library, so serving needs neither transformers nor torch.

It answers as the transformers fast tokenizer that ``compress`` saved does: the same special tokens
(the tokenizer.json's post-processor adds them), truncation to ``max_length`` special tokens included,
and single-token decoding with transformers' clean-up of spaces when the tokenizer's config asks for it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from serve.config import ConfigError

TOKENIZER_JSON = "tokenizer.json"
# transformers' PreTrainedTokenizerBase.clean_up_tokenization, in its order.
_CLEANUP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
            (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


def _token(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string, or an AddedToken dict."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


Text = str | tuple[str, str]  # one text, or a pair (query, passage) read as two segments


class Spans(NamedTuple):
    """Where each token of one text came from: character offsets, special-token flags, token strings."""

    offsets: list[tuple[int, int]]
    special: list[bool]
    tokens: list[str]


class TextTokenizer:
    """Text to token ids and back, from an artifact's tokenizer files.

    Example:
        >>> tok = TextTokenizer.from_directory("artifacts/minilm-int8")  # doctest: +SKIP
        >>> tok.encode(["hello world"])                                 # doctest: +SKIP
        [[101, 7592, 2088, 102]]
    """

    def __init__(self, directory: Path) -> None:
        from tokenizers import Tokenizer

        path = directory / TOKENIZER_JSON
        if not path.is_file():
            raise ConfigError(f"the artifact at {directory} has no {TOKENIZER_JSON} (an older or slow-tokenizer "
                              "artifact): rebuild it with `compress run NAME --force`")
        self._json = path.read_text()
        self._plain = Tokenizer.from_str(self._json)
        # tokenizer.json may carry the padding and truncation its last user set; a call sets its own.
        self._plain.no_padding()
        self._plain.no_truncation()
        self.front, self.back = self._special_ends()
        config = self._config(directory)
        self.pad_token = _token(config.get("pad_token"))
        self.cleanup = bool(config.get("clean_up_tokenization_spaces", False))

    @classmethod
    def from_directory(cls, directory: str | Path) -> TextTokenizer:
        """The tokenizer saved in an artifact directory.

        Raises:
            ConfigError: the directory has no tokenizer.json.
        """
        return cls(Path(directory))

    @staticmethod
    def _config(directory: Path) -> dict[str, Any]:
        config: dict[str, Any] = {}
        for name in ("special_tokens_map.json", "tokenizer_config.json"):  # the config has the last word
            path = directory / name
            if path.is_file():
                config.update(json.loads(path.read_text()))
        return config

    @property
    def pad_token_id(self) -> int | None:
        return self.token_to_id(self.pad_token) if self.pad_token else None

    def token_to_id(self, token: str) -> int | None:
        return self._plain.token_to_id(token)

    def id_to_token(self, token_id: int) -> str:
        """The vocabulary entry of ``token_id`` as the vocabulary spells it (``##ing``, ``Ġthe``)."""
        return self._plain.id_to_token(token_id) or ""

    def vocab_size(self) -> int:
        return self._plain.get_vocab_size(with_added_tokens=True)

    def _special_ends(self) -> tuple[int, int]:
        """(tokens before, tokens after) the text that the post-processor adds to a single sequence."""
        plain = self._plain.encode("a", add_special_tokens=False).ids
        full = self._plain.encode("a", add_special_tokens=True).ids
        front = next((i for i in range(len(full) - len(plain) + 1) if full[i: i + len(plain)] == plain), 0)
        return front, len(full) - front - len(plain)

    def encode(self, texts: Sequence[Text], max_length: int | None = None, side: str = "right",
               keep: int = 0) -> list[list[int]]:
        """Token ids of each text (or text pair), special tokens added; cut to ``max_length`` tokens in all if
        given. A pair loses the end of its second text (the document) first, then the end of its first.

        Args:
            side: the end cut off a too-long single text, ``right`` or ``left`` (special tokens always stay).
            keep: tokens at the start of a single text never cut when ``side`` is left (a prompt).

        Raises:
            Exception: whatever the Rust tokenizer raises for text it cannot take (e.g. lone surrogates).
        """
        encodings = self._plain.encode_batch(list(texts), add_special_tokens=True)
        if max_length is None:
            return [e.ids for e in encodings]
        return [_cut_pair(e, max_length) if isinstance(t, tuple) else self.cut(e.ids, max_length, side, keep)
                for t, e in zip(texts, encodings, strict=True)]

    def spans(self, text: str, max_length: int | None = None, side: str = "right") -> Spans:
        """The offsets in ``text`` of each of its tokens (as :meth:`encode` makes and cuts them), which are
        special, and the vocabulary entries."""
        e = self._plain.encode(text, add_special_tokens=True)
        kept = self._kept(len(e.ids), max_length, side) if max_length is not None else range(len(e.ids))
        return Spans([tuple(e.offsets[i]) for i in kept], [bool(e.special_tokens_mask[i]) for i in kept],
                     [e.tokens[i] for i in kept])

    @property
    def subword_prefix(self) -> str | None:
        """The mark of a word's continuing pieces (WordPiece's ``##``); None for vocabularies without one."""
        return getattr(self._plain.model, "continuing_subword_prefix", None) or None

    @property
    def unk_token(self) -> str | None:
        return getattr(self._plain.model, "unk_token", None)

    def pair_boundary(self) -> int | None:
        """The token that ends a pair's first segment when the second segment has its own type ids (BERT's
        [SEP]); None when the template gives every token type 0 (RoBERTa)."""
        e = self._plain.encode("a", "b", add_special_tokens=True)
        if 1 not in e.type_ids:
            return None
        return int(e.ids[e.type_ids.index(1) - 1])

    def encodings(self, texts: list[str], add_special_tokens: bool = True) -> list[Any]:
        """The library's encodings of ``texts`` (ids, tokens, character offsets), never cut."""
        return self._plain.encode_batch(texts, add_special_tokens=add_special_tokens)

    def cut(self, ids: list[int], max_length: int, side: str = "right", keep: int = 0) -> list[int]:
        """``ids`` (special tokens included) within ``max_length``: text tokens dropped from ``side``,
        as the library's own truncation drops them (the ``keep`` first text tokens stay on the left side)."""
        return ids if len(ids) <= max_length else [ids[i] for i in self._kept(len(ids), max_length, side, keep)]

    def _kept(self, n: int, max_length: int, side: str = "right", keep: int = 0) -> Sequence[int]:
        """The positions :meth:`cut` keeps of a single text's ``n`` tokens (special tokens included)."""
        if n <= max_length:
            return range(n)
        front, back = self.front, self.back
        end = n - back  # past the text's last token
        room = max(max_length - front - back, 0)
        if side == "left" and room > keep:
            text = [*range(front, front + keep), *range(end - (room - keep), end)]
        else:
            text = [*range(front, front + room)]
        return [*range(front), *text, *range(end, n)]

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        """Text of ``ids``, as transformers' ``decode`` gives it."""
        text = self._plain.decode(ids, skip_special_tokens=skip_special_tokens)
        if self.cleanup:
            for old, new in _CLEANUP:
                text = text.replace(old, new)
        return text


def _cut_pair(encoding: Any, max_length: int) -> list[int]:
    """A pair's ids within ``max_length``: tokens dropped from the end of its second text (the document),
    then from the end of its first; the special tokens of both segments stay."""
    ids, segments = encoding.ids, encoding.sequence_ids
    excess = len(ids) - max_length
    dropped: set[int] = set()
    for segment in (1, 0):
        for i in reversed(range(len(ids))):
            if len(dropped) >= excess:
                break
            if segments[i] == segment:
                dropped.add(i)
    return [t for i, t in enumerate(ids) if i not in dropped]
