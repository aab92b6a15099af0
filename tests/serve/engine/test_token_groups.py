"""Token labels grouped as transformers' TokenClassificationPipeline groups them, for every strategy, on
a WordPiece vocabulary (pieces marked ##, unknown characters) and a byte-level BPE one (spaces mark words)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from serve.engine.token_groups import entities
from serve.tokenizer import TextTokenizer
from tests.conftest import build_tiny

LABELS = ["O", "B-MONEY", "I-MONEY", "B-TEAM", "I-TEAM"]
TEXTS = ["the marketing bank sells profits to clubs", "club 5 win the game, again and again",
         "Government said: people have more films than music"]


@pytest.fixture(scope="module", params=["bert", "roberta"])
def tagger(request, tmp_path_factory):
    """A tiny random token classifier (random labels make varied groups) and its saved tokenizer."""
    from transformers import AutoModelForTokenClassification

    directory = tmp_path_factory.mktemp(request.param)
    model, tok = build_tiny(directory, request.param, "fill-mask")
    config = model.config
    config.id2label, config.label2id = dict(enumerate(LABELS)), {v: i for i, v in enumerate(LABELS)}
    torch.manual_seed(1)
    return AutoModelForTokenClassification.from_config(config).eval(), tok, TextTokenizer.from_directory(directory)


@pytest.mark.parametrize("strategy", ["none", "simple", "first", "max", "average"])
def test_grouping_matches_the_pipeline(tagger, strategy):
    import warnings

    from transformers import pipeline

    model, tok, ours = tagger
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the BPE fallback heuristic warns
        pipe = pipeline("token-classification", model=model, tokenizer=tok, aggregation_strategy=strategy,
                        ignore_labels=[], device="cpu")
        for text in TEXTS:
            want = pipe(text)
            with torch.no_grad():
                probs = model(**tok(text, return_tensors="pt")).logits[0].softmax(-1).double().numpy()
            got = entities(probs, text, ours.spans(text), LABELS, strategy, subword_prefix=ours.subword_prefix,
                           unk_token=ours.unk_token)
            spans = ours.spans(text).offsets
            key = "entity" if strategy == "none" else "entity_group"
            assert [(e.label, spans[e.first][0], spans[e.last][1]) for e in got] == [
                (w[key], w["start"], w["end"]) for w in want], (strategy, text)
            np.testing.assert_allclose([e.score for e in got], [w["score"] for w in want], rtol=1e-5)
            if strategy == "none":
                assert [e.first for e in got] == [w["index"] for w in want]
    assert len(got) > 1
