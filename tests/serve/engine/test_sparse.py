"""Sparse embeddings (SPLADE) in the engine: a tiny BERT with mlm, splade and species heads, one lane."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

from serve.errors import STATUS, ServeError
from tests.conftest import SENTENCES, add_linear_heads, build_tiny, splade_reference
from tests.serve.engine.test_engine import _masked, _started


@pytest.fixture(scope="module")
def sparse_model(tmp_path_factory):
    """A tiny BERT with mlm, splade and species heads, compressed on first start as `serve` does it (fp32),
    and a tiny classifier (no LM head)."""
    from compress.catalog import ModelEntry
    from serve.models import prepare_model

    tmp = tmp_path_factory.mktemp("sparse")
    build_tiny(tmp / "src", "bert", "fill-mask", save="bin")
    add_linear_heads(tmp / "src" / "weights.bin")
    entry = ModelEntry(name="tiny-sparse", source=str(tmp / "src" / "weights.bin"), recipe={"method": "fp32"},
                       heads=[{"name": "mlm"}, {"name": "splade"}, {"name": "species"}],
                       artifact=str(tmp / "art"), serve={"max_batch_size": 16, "batch_timeout": 0.2, "threads": 1})
    build_tiny(tmp / "clf", "bert", "classification")
    clf = ModelEntry(name="tiny-clf", source=str(tmp / "clf"), task="classification", recipe={"method": "fp32"},
                     artifact=str(tmp / "art-clf"), serve={"threads": 1})
    return prepare_model(entry, tmp), prepare_model(clf, tmp), tmp / "src" / "weights.bin"


def _answers(models, *requests):
    async def main():
        engine, rec = await _started(*models)
        try:
            return await asyncio.gather(*(engine.infer(*r) for r in requests)), rec
        finally:
            await engine.stop()

    return asyncio.run(main())


def test_served_sparse_vectors_are_the_pytorch_originals(sparse_model):
    from compress.sources import load_model
    from compress.validate import top_overlap

    model, _, weights = sparse_model
    assert set(model.addresses()) == {"tiny-sparse", "tiny-sparse:splade", "tiny-sparse:species"}
    assert model.view("splade").describe()["endpoint"] == "/v1/embed-sparse"
    texts = SENTENCES[:6]
    (answer,), _ = _answers([model], ("sparse-embedding", "tiny-sparse:splade", texts, {}))
    mlm = load_model(str(weights), task="fill-mask").model
    vocab = mlm.config.vocab_size
    for ids, result in zip(answer.ids, answer.results, strict=True):
        want = splade_reference(mlm, {"input_ids": np.array([ids]), "attention_mask": np.ones((1, len(ids)),
                                                                                                  dtype=np.int64)})[0]
        got = np.zeros(vocab, dtype=np.float32)
        got[result["indices"]] = result["values"]
        assert top_overlap(want[None], got[None]).min() >= 0.95
        np.testing.assert_allclose(got, want, atol=1e-4)
        assert result["indices"] == list(np.flatnonzero(got)[np.argsort(-got[got > 0], kind="stable")])
        assert "tokens" not in result


def test_top_k_threshold_and_tokens(sparse_model):
    model, _, _ = sparse_model
    text = [SENTENCES[3]]
    (full, top, above, named), _ = _answers(
        [model], ("sparse-embedding", "tiny-sparse:splade", text, {}),
        ("sparse-embedding", "tiny-sparse:splade", text, {"top_k": 5}),
        ("sparse-embedding", "tiny-sparse:splade", text, {"threshold": 0.3}),
        ("sparse-embedding", "tiny-sparse:splade", text, {"top_k": 4, "return_tokens": True}))
    full_r = full.results[0]
    assert full_r["values"] == sorted(full_r["values"], reverse=True) and min(full_r["values"]) > 0
    assert top.results[0] == {"indices": full_r["indices"][:5], "values": full_r["values"][:5]}
    kept = [v for v in full_r["values"] if v > 0.3]
    assert above.results[0]["values"] == kept and 0 < len(kept) < len(full_r["values"])
    tokens = named.results[0]["tokens"]
    assert tokens == [model.tokenizer.id_to_token(i) for i in full_r["indices"][:4]]
    assert all(isinstance(t, str) and t for t in tokens)


def test_fill_mask_and_species_answers_are_unchanged_in_a_shared_pass(sparse_model):
    from compress.sources import load_model

    model, _, weights = sparse_model
    texts = _masked(3)
    (fill, sparse, species), rec = _answers(
        [model], ("fill-mask", "tiny-sparse", texts, {"top_k": 2}),
        ("sparse-embedding", "tiny-sparse:splade", texts, {"top_k": 3}),
        ("classification", "tiny-sparse:species", texts, {"top_k": None}))
    assert len(rec["tiny-sparse"].shapes) == 1  # one forward pass answers the three requests
    assert [len(r["indices"]) for r in sparse.results] == [3, 3, 3]
    mlm = load_model(str(weights), task="fill-mask").model
    single = load_model(str(weights), head="species").model
    for ids, f, s in zip(fill.ids, fill.results, species.results, strict=True):
        with torch.no_grad():
            logits = mlm(input_ids=torch.tensor([ids])).logits.numpy()[0]
            label = int(single(input_ids=torch.tensor([ids])).logits.argmax())
        assert f["masks"][0]["ids"] == list(np.argsort(-logits[ids.index(model.spec.mask_id)])[:2])
        assert s["labels"][0] == f"LABEL_{label}"


def test_a_model_without_a_sparse_head_is_a_400_that_says_why(sparse_model):
    model, clf, _ = sparse_model

    async def main() -> list[ServeError]:
        engine, _ = await _started(model, clf)
        errors = []
        try:
            for name in ("tiny-sparse", "tiny-sparse:species", "tiny-clf", "nope"):
                with pytest.raises(ServeError) as e:
                    await engine.infer("sparse-embedding", name, ["a text"], {})
                errors.append(e.value)
        finally:
            await engine.stop()
        return errors

    fill, species, clf_error, unknown = asyncio.run(main())
    assert [STATUS[e.kind] for e in (fill, species, clf_error, unknown)] == [400, 400, 400, 404]
    assert "ask model 'tiny-sparse:splade'" in str(fill) and "ask model 'tiny-sparse:splade'" in str(species)
    assert "has no sparse-embedding head" in str(clf_error) and "masked-LM head" in str(clf_error)
    assert fill.param == "model"
