"""serve's tokenizer (tokenizer.json through the `tokenizers` library) answers as the transformers fast
tokenizer that `compress` saved: ids, special tokens, truncation, decoding."""

from __future__ import annotations

import pytest

from serve.config import ConfigError
from serve.tokenizer import TextTokenizer
from tests.conftest import SENTENCES, build_tiny

TEXTS = [*SENTENCES[:6], "", "  The   FILM  was  [MASK] .", "unknownword xyz, isn't it?", "é ü 中文 🙂"]


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_encodes_and_decodes_as_transformers(tmp_path, family):
    _, hf = build_tiny(tmp_path, family, "fill-mask")
    tok = TextTokenizer.from_directory(tmp_path)
    assert tok.encode(TEXTS) == hf(TEXTS)["input_ids"]
    for n in (4, 7):  # truncation counts the special tokens, as transformers' does
        assert tok.encode(TEXTS, max_length=n) == hf(TEXTS, truncation=True, max_length=n)["input_ids"]
    assert tok.encode(TEXTS[:2]) == hf(TEXTS[:2])["input_ids"]  # a truncating call leaves the plain one alone
    assert tok.token_to_id(hf.mask_token) == hf.mask_token_id and tok.pad_token_id == hf.pad_token_id
    for i in range(tok.vocab_size()):
        assert tok.decode([i]) == hf.decode([i])
    ids = hf(TEXTS[7])["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == hf.decode(ids, skip_special_tokens=True)


def test_an_artifact_without_tokenizer_json_says_to_rebuild(tmp_path):
    with pytest.raises(ConfigError, match=r"no tokenizer\.json.*compress run NAME --force"):
        TextTokenizer.from_directory(tmp_path)


def test_compress_writes_tokenizer_json_for_a_slow_tokenizer(tmp_path):
    """serve reads only tokenizer.json: compress converts a slow (Python) tokenizer, special tokens included."""
    from transformers import BertTokenizer

    from compress.artifact import save_tokenizer

    build_tiny(tmp_path / "src", "bert", "fill-mask")
    slow = BertTokenizer(vocab_file=str(tmp_path / "src" / "vocab.txt"), do_lower_case=True)
    save_tokenizer(slow, tmp_path / "art")
    tok = TextTokenizer.from_directory(tmp_path / "art")
    assert tok.encode(TEXTS) == slow(TEXTS)["input_ids"]
    assert [tok.decode([i]) for i in range(tok.vocab_size())] == [slow.decode([i]) for i in range(len(slow))]


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_cuts_either_side_as_the_library_does_and_keeps_a_prompt(tmp_path, family):
    from tokenizers import Tokenizer

    build_tiny(tmp_path, family, "fill-mask")
    tok = TextTokenizer.from_directory(tmp_path)
    lib = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for side in ("right", "left"):
        for n in (4, 7):
            lib.enable_truncation(n, direction=side)
            assert tok.encode(TEXTS, max_length=n, side=side) == [e.ids for e in lib.encode_batch(TEXTS)]
    full = tok.encode([TEXTS[3]])[0]
    kept = tok.encode([TEXTS[3]], max_length=7, side="left", keep=2)[0]
    front, back = tok.front, tok.back
    assert kept == full[: front + 2] + full[len(full) - back - (7 - front - back - 2):]


def test_matryoshka_dimensions_are_distinct_and_positive():
    from pydantic import ValidationError

    from serve.options import ServeOptions

    assert ServeOptions(matryoshka_dimensions=[256, 64], truncation_side="left").truncation_side == "left"
    for bad in ([64, 64], [0], []):
        with pytest.raises(ValidationError):
            ServeOptions(matryoshka_dimensions=bad)
    with pytest.raises(ValidationError):
        ServeOptions(truncation_side="middle")


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_a_pair_is_cut_in_its_document_and_keeps_both_segments_special_tokens(tmp_path, family):
    from tokenizers import Tokenizer

    build_tiny(tmp_path, family, "fill-mask")
    tok = TextTokenizer.from_directory(tmp_path)
    lib = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    query, doc = "the film was new", SENTENCES[3]
    full = lib.encode(query, doc)
    assert tok.encode([query, (query, doc)]) == [tok.encode([query])[0], full.ids]  # singles and pairs batch
    specials = [t for t, m in zip(full.ids, full.special_tokens_mask, strict=True) if m]
    first = full.sequence_ids.count(0)
    for n in range(len(full.ids) - 1, len(specials) - 1, -1):
        cut = tok.encode([(query, doc)], max_length=n)[0]
        assert len(cut) == n and [t for t in cut if t in specials] == specials, n
        if n >= first + len(specials) + 1:  # room for the whole query: the library's only_second cut
            lib.enable_truncation(n, strategy="only_second", direction="right")
            assert cut == lib.encode(query, doc).ids, n
            lib.no_truncation()
