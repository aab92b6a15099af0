"""The held-out data: fixed, disjoint from what compress validates on and from what the classifier learns."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.common import datasets
from compress.data import default_texts


def test_germlines_are_held_out_from_compress_validation(antiberty_tokenizer):
    gate = {t.replace(" ", "") for t in default_texts(antiberty_tokenizer, 256)}
    held = datasets.held_out_germlines(antiberty_tokenizer)
    assert len(held) == 1454 - 256
    assert not gate & {a.sequence for a in held}
    picks = datasets.fill_mask_germlines(antiberty_tokenizer)
    assert len(picks) == 400 and picks == datasets.fill_mask_germlines(antiberty_tokenizer)
    species = datasets.labelled_germlines(antiberty_tokenizer, "species")
    assert len(species) == 600 and all(a.species for a in species)
    assert len({a.species for a in species}) >= 5


def test_bbc_split_is_fixed_and_disjoint():
    train, test = datasets.bbc_split()
    assert (len(train), len(test)) == (1107, 1000)  # 118 duplicate articles dropped
    topics, counts = np.unique([t for t, _ in test], return_counts=True)
    assert list(counts) == [200] * 5 and len(topics) == 5
    assert not {t for _, t in train} & {t for _, t in test}
    probe = datasets.bbc_probe_train()
    assert len(probe) == 300 and set(probe) <= set(train)
    assert all(len(t.split()) <= datasets.BBC_WORDS for _, t in test)


def test_lee50_has_50_documents_and_1225_pairs():
    docs, human = datasets.lee50()
    assert len(docs) == 50 and human.shape == (1225,)
    assert human.min() >= 0 and human.max() <= 1


@pytest.mark.slow  # loads the real MiniLM
def test_english_recovery_texts_are_passages_of_consecutive_sentences_no_suite_scores(packaged_model):
    texts = datasets.recovery_texts(packaged_model("minilm").tokenizer)
    assert len(texts) == len(set(texts)) > 50_000
    sentences = {s for t in texts for s in datasets._sentences(t)}
    single = [t for t in texts if datasets._sentences(t) == [t]]
    assert set(single) == sentences  # every sentence alone too, and passages of up to RECOVERY_WINDOW of them
    assert max(len(datasets._sentences(t)) for t in texts) == datasets.RECOVERY_WINDOW
    for doc in datasets.lee_background()[:20]:  # the Lee background corpus, in its own order
        parts = datasets._sentences(doc)
        assert " ".join(parts[:2]) in texts and parts[-1] in texts
    lee_openings = {doc[:60] for doc in datasets.lee50()[0]}
    assert not {t[:60] for t in texts} & lee_openings  # no Lee-50 document, whole or by its opening
    scored = " ".join(text for _, text in datasets.bbc_split()[1])
    assert not [s for s in sentences if s in scored]  # no sentence of what the BBC suites score
