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
        self._truncating: dict[int, Tokenizer] = {}
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

    def vocab_size(self) -> int:
        return self._plain.get_vocab_size(with_added_tokens=True)

    def encode(self, texts: Sequence[Text], max_length: int | None = None) -> list[list[int]]:
        """Token ids of each text (or text pair), special tokens added; truncated to ``max_length`` tokens in
        all if given (a pair: the longer text first).

        Raises:
            Exception: whatever the Rust tokenizer raises for text it cannot take (e.g. lone surrogates).
        """
        tok = self._plain if max_length is None else self._truncated(max_length)
        return [e.ids for e in tok.encode_batch(list(texts), add_special_tokens=True)]

    def spans(self, text: str, max_length: int | None = None) -> Spans:
        """The offsets in ``text`` of each of its tokens (as :meth:`encode` makes them), which are special,
        and the vocabulary entries."""
        tok = self._plain if max_length is None else self._truncated(max_length)
        e = tok.encode(text, add_special_tokens=True)
        return Spans([tuple(o) for o in e.offsets], [bool(m) for m in e.special_tokens_mask], list(e.tokens))

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

    def _truncated(self, max_length: int) -> Any:
        tok = self._truncating.get(max_length)
        if tok is None:  # a copy per length: the library's truncation is a setting of the tokenizer
            from tokenizers import Tokenizer

            tok = Tokenizer.from_str(self._json)
            tok.no_padding()
            tok.enable_truncation(max_length, stride=0, strategy="longest_first", direction="right")
            self._truncating[max_length] = tok
        return tok

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        """Text of ``ids``, as transformers' ``decode`` gives it."""
        text = self._plain.decode(ids, skip_special_tokens=skip_special_tokens)
        if self.cleanup:
            for old, new in _CLEANUP:
                text = text.replace(old, new)
        return text
