"""A multi-head model in the engine: one lane, one forward pass for requests to every head."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

from serve.errors import STATUS, ServeError
from tests.conftest import SENTENCES, add_linear_heads, build_tiny
from tests.serve.engine.test_engine import _masked, _started

SPECIES = ["a", "b", "c", "d", "e", "f"]


@pytest.fixture(scope="module")
def heads_model(tmp_path_factory):
    """A tiny BERT with mlm, species and chain heads, compressed on first start as `serve` does it."""
    from compress.catalog import ModelEntry
    from serve.models import prepare_model

    tmp = tmp_path_factory.mktemp("heads")
    build_tiny(tmp / "src", "bert", "fill-mask", save="bin")
    add_linear_heads(tmp / "src" / "weights.bin")
    entry = ModelEntry(name="tiny-heads", source=str(tmp / "src" / "weights.bin"), recipe={"method": "fp32"},
                       heads=[{"name": "mlm"}, {"name": "species", "labels": SPECIES}, {"name": "chain"}],
                       artifact=str(tmp / "art"), serve={"max_batch_size": 16, "batch_timeout": 0.2, "threads": 1})
    return prepare_model(entry, tmp), tmp / "src" / "weights.bin"


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def test_every_head_is_answered_from_one_forward_pass(heads_model):
    from compress.sources import load_model

    model, weights = heads_model
    assert set(model.addresses()) == {"tiny-heads", "tiny-heads:species", "tiny-heads:chain"}
    texts = _masked(3)

    async def main():
        engine, rec = await _started(model)
        try:
            answers = await asyncio.gather(
                engine.infer("fill-mask", "tiny-heads", texts, {"top_k": 2}),
                engine.infer("classification", "tiny-heads:species", texts, {"top_k": None}),
                engine.infer("classification", "tiny-heads:chain", texts, {"top_k": None}))
            return answers, rec["tiny-heads"].shapes
        finally:
            await engine.stop()

    (fill, species, chain), shapes = asyncio.run(main())
    assert len(shapes) == 1 and shapes[0][0] == 9  # one forward pass for the three requests' nine sequences
    assert (fill.model, species.model, chain.model) == ("tiny-heads", "tiny-heads:species", "tiny-heads:chain")
    assert all(len(r["masks"]) == 1 for r in fill.results)
    for name, answer, labels in (("species", species, SPECIES), ("chain", chain, ["LABEL_0", "LABEL_1"])):
        single = load_model(str(weights), head=name).model
        for ids, result in zip(answer.ids, answer.results, strict=True):
            with torch.no_grad():
                logits = single(input_ids=torch.tensor([ids])).logits.numpy()[0]
            want = _softmax(logits.astype(np.float64))
            assert sorted(result["labels"]) == sorted(labels)
            got = np.array([result["scores"][result["labels"].index(lab)] for lab in labels])
            np.testing.assert_allclose(got, want, atol=1e-4)
    mlm = load_model(str(weights), task="fill-mask").model
    for ids, result in zip(fill.ids, fill.results, strict=True):
        with torch.no_grad():
            logits = mlm(input_ids=torch.tensor([ids])).logits.numpy()[0]
        at = ids.index(model.spec.mask_id)
        assert result["masks"][0]["ids"] == list(np.argsort(-logits[at])[:2])


def test_unknown_head_or_wrong_endpoint_is_a_404(heads_model):
    model, _ = heads_model

    async def main() -> list[ServeError]:
        engine, _ = await _started(model)
        errors = []
        try:
            for task, name in (("classification", "tiny-heads:nope"), ("classification", "tiny-heads"),
                               ("fill-mask", "tiny-heads:species")):
                with pytest.raises(ServeError) as e:
                    await engine.infer(task, name, [SENTENCES[0]], {"top_k": None})
                errors.append(e.value)
        finally:
            await engine.stop()
        return errors

    for error in asyncio.run(main()):
        assert STATUS[error.kind] == 404
        assert "tiny-heads:species, tiny-heads:chain" in str(error) or "tiny-heads" in str(error)


def test_an_artifact_without_the_entrys_heads_is_refused(heads_model, tmp_path):
    """An artifact made before the entry listed heads (e.g. the old single-task antiberty) says to rebuild."""
    from compress.catalog import ModelEntry
    from compress.pipeline import compress_model
    from compress.recipe import Recipe
    from compress.sources import load_model
    from serve.config import ConfigError
    from serve.models import prepare_model

    _, weights = heads_model
    compress_model(load_model(str(weights)), tmp_path / "old", name="old",
                   recipe=Recipe.model_validate({"method": "fp32", "validation": {"n": 16}}), bench=False)
    entry = ModelEntry(name="old", source=str(weights), heads=[{"name": "mlm"}, {"name": "species"}],
                       artifact=str(tmp_path / "old"))
    with pytest.raises(ConfigError, match="rebuild it with `compress run old --force`"):
        prepare_model(entry, tmp_path, compress_missing=False)
