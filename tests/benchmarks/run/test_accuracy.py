"""The accuracy suites on the real packaged models, and on broken runners (the metrics can fail)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.common import topic
from benchmarks.common.variants import artifact_runner, build_artifact, torch_baseline
from benchmarks.run.accuracy import Subject, compare, evaluate
from compress.artifact import load_artifact


def _artifact_subject(directory) -> Subject:
    art = load_artifact(directory)
    return Subject(artifact_runner(directory, threads=2), art.tokenizer(), art.manifest.labels)


def test_masked_residue_on_a_broken_runner_is_near_chance(antiberty_tokenizer):
    rng = np.random.default_rng(0)
    vocab = len(antiberty_tokenizer)

    def noise(enc):
        n = int((enc["input_ids"] == antiberty_tokenizer.mask_token_id).sum())
        return {"mask_logits": rng.normal(size=(n, vocab)).astype(np.float32)}

    res = evaluate("masked_residue", Subject(noise, antiberty_tokenizer))
    assert res.n > 5000  # ~15 % of 400 sequences x ~96 residues
    assert res.score < 0.1  # 25 tokens: chance is 4 %; the real model gets ~91 %


def test_species_on_a_runner_that_always_says_camel_is_low(antiberty_tokenizer):
    labels = ["Camel", "Human", "Mouse", "Rabbit", "Rat", "Rhesus"]
    const = Subject(lambda enc: {"logits": np.tile(np.eye(6, dtype=np.float32)[0], (len(enc["input_ids"]), 1))},
                    antiberty_tokenizer, labels)
    assert evaluate("species", const).score < 0.02  # 5 camel germlines in all


def test_region_on_a_runner_that_always_says_fr3_is_low_and_one_that_reads_the_truth_is_perfect(antiberty_tokenizer):
    from benchmarks.training.data import region_genes, region_item

    labels = ["CDR1", "CDR2", "CDR3", "FR1", "FR2", "FR3"]
    const = Subject(lambda enc: {"region_logits": np.tile(np.eye(6, dtype=np.float32)[5],
                                                          (*enc["input_ids"].shape, 1))}, antiberty_tokenizer, labels)
    res = evaluate("region", const)
    assert res.n > 25_000 and 0.3 < res.score < 0.5  # FR3 is 39 of ~100 positions
    truth = {"".join(r["tokens"]): r["labels"] for r in map(region_item, region_genes()["antibody_test"])}

    def oracle(enc):
        out = np.zeros((*enc["input_ids"].shape, 6), dtype=np.float32)
        for r, ids in enumerate(enc["input_ids"]):
            seq = "".join(antiberty_tokenizer.convert_ids_to_tokens(ids[ids > 4].tolist()))
            for i, lab in enumerate(truth[seq]):
                out[r, i + 1, labels.index(lab)] = 1
        return {"region_logits": out}

    assert evaluate("region", Subject(oracle, antiberty_tokenizer, labels)).score == 1.0


def test_sparse_scores_a_variant_by_the_top32_terms_it_shares_with_fp32(antiberty_tokenizer):
    """64-term vectors made from each sequence's ids (the same input, the same vector); a variant that loses each
    vector's 4 largest terms keeps 28 of the top 32."""
    def vectors(enc):
        rows = [np.random.default_rng(int(ids @ np.arange(len(ids)))).random(64) for ids in enc["input_ids"]]
        return {"splade_sparse": np.stack(rows).astype(np.float32)}

    def lossy(enc):
        v = vectors(enc)["splade_sparse"]
        np.put_along_axis(v, np.argsort(-v, axis=-1)[:, :4], 0.0, axis=-1)
        return {"splade_sparse": v}

    base = evaluate("sparse", Subject(vectors, antiberty_tokenizer))
    assert base.n == 400 and base.sparse.shape == (400, 64) and compare(base, None)["score"] == 1.0
    same = compare(evaluate("sparse", Subject(vectors, antiberty_tokenizer)), base)
    assert same["score"] == same["top32_overlap"] == same["min_top32_overlap"] == 1.0
    assert same["sparse_cosine"] == pytest.approx(1.0) and same["delta_points"] is None
    worse = compare(evaluate("sparse", Subject(lossy, antiberty_tokenizer)), base)
    assert worse["score"] == worse["top32_overlap"] == pytest.approx(28 / 32) and worse["sparse_cosine"] < 1.0


def test_embedding_suites_on_random_vectors_fail():
    from transformers import AutoTokenizer

    from compress.catalog import resolve_location

    tok = AutoTokenizer.from_pretrained(resolve_location(topic.SOURCE, topic.REQUIRES))
    rng = np.random.default_rng(0)
    rand = Subject(lambda enc: {"sentence_embedding": rng.normal(size=(len(enc["input_ids"]), 384))}, tok)
    assert abs(evaluate("lee50", rand).score) < 0.15
    assert evaluate("bbc_probe", rand).score < 0.4  # 5 topics: chance is 20 %


@pytest.mark.integration
@pytest.mark.slow
def test_lee50_minilm_fp32_and_int8(packaged_model, packaged_artifact):
    loaded = packaged_model("minilm")
    fp32 = evaluate("lee50", Subject(torch_baseline(loaded, threads=2), loaded.tokenizer))
    int8 = evaluate("lee50", _artifact_subject(packaged_artifact("minilm", "int8")))
    assert 0.4 < fp32.score < 0.7  # all-MiniLM-L6-v2 documents vs human judgements: rho ~0.51
    assert abs(int8.score - fp32.score) <= 0.03
    assert compare(int8, fp32)["cosine_to_fp32"] >= 0.99


@pytest.fixture(scope="session")
def topic_model(bench_cache):
    return topic.build_topic_model(bench_cache / f"{topic.NAME}-model")


@pytest.mark.integration
@pytest.mark.slow
def test_topic_classifier_trains_to_high_held_out_accuracy(topic_model, bench_cache):
    from compress.sources import load_model

    loaded = load_model(str(topic_model))
    assert loaded.task == "classification"
    assert loaded.labels == ["business", "entertainment", "politics", "sports", "tech"]
    info = json.loads((topic_model / "training.json").read_text())
    assert info["train_articles"] == 1107
    fp32 = evaluate("topic", Subject(torch_baseline(loaded, threads=2), loaded.tokenizer, loaded.labels))
    assert fp32.n == 1000 and fp32.score >= 0.90  # frozen encoder, [CLS] logistic regression: 0.92-0.94

    int8 = evaluate("topic", _artifact_subject(build_artifact(topic.NAME, "int8", bench_cache)))
    figures = compare(int8, fp32)
    assert figures["delta_points"] >= -0.5
    assert figures["agreement"] >= 0.98
