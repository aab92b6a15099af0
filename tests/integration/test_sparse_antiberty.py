"""Sparse embeddings of the real AntiBERTy: its models.yaml entry with a sparse-embedding head beside the
fill-mask, species and chain heads, compressed as the entry's recipe says (int8, O1, gated) and served by
the engine, against the PyTorch original on antibodies the validation never saw."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from compress.data import space_residues
from compress.validate import top_overlap
from tests.conftest import ROOT, splade_reference
from tests.integration.test_packaged_models import _held_out_antibodies

pytestmark = [pytest.mark.integration, pytest.mark.slow]
HEADS = [{"name": "mlm"}, {"name": "splade"}, {"name": "species"}, {"name": "chain"}]


@pytest.fixture(scope="module")
def antiberty_sparse(tmp_path_factory):
    from compress.catalog import ModelEntry, load_catalog
    from serve.models import prepare_model

    tmp = tmp_path_factory.mktemp("antiberty-sparse")
    entry = load_catalog(ROOT / "models.yaml").get("antiberty")
    labels = {h.name: h.labels for h in entry.heads or []}
    data = entry.model_dump(exclude_none=True, exclude={"heads", "artifact", "serve"})
    sparse = ModelEntry.model_validate({**data, "name": "antiberty-sparse", "artifact": str(tmp / "art"),
                                        "heads": [{**h, "labels": labels.get(h["name"])} for h in HEADS],
                                        "serve": {"threads": 2, "max_batch_size": 32}})
    return prepare_model(sparse, tmp)


def test_the_gate_records_the_sparse_head(antiberty_sparse):
    m = antiberty_sparse.manifest
    assert [h.name for h in m.heads or []] == ["mlm", "splade", "species", "chain"]
    splade = m.validation["heads"]["splade"]
    assert splade["passed"] and splade["top32_overlap"] >= 0.95 and splade["mean_cosine"] >= 0.99
    assert m.validation["heads"]["mlm"]["top1_agreement"] >= 0.99  # fill-mask as without the sparse head


def test_served_sparse_vectors_are_the_pytorch_originals(antiberty_sparse, packaged_model):
    from tests.serve.engine.test_engine import _started

    texts = [space_residues(a.sequence) for a in _held_out_antibodies(64)]

    async def main():
        engine, _ = await _started(antiberty_sparse)
        try:
            return await engine.infer("sparse-embedding", "antiberty-sparse:splade", texts, {})
        finally:
            await engine.stop()

    answer = asyncio.run(main())
    mlm = packaged_model("antiberty-mlm").model
    vocab = mlm.config.vocab_size
    overlaps, cosines = [], []
    for ids, result in zip(answer.ids, answer.results, strict=True):
        want = splade_reference(mlm, {"input_ids": np.array([ids]), "attention_mask": np.ones((1, len(ids)))})
        got = np.zeros((1, vocab), dtype=np.float32)
        got[0, result["indices"]] = result["values"]
        overlaps.append(top_overlap(want, got)[0])
        cosines.append(float((want * got).sum() / (np.linalg.norm(want) * np.linalg.norm(got))))
    print(f"AntiBERTy int8 O1 served vs PyTorch: top-32 overlap mean {np.mean(overlaps):.4f} min {min(overlaps):.4f}, "
          f"cosine mean {np.mean(cosines):.4f} min {min(cosines):.4f}")
    assert np.mean(overlaps) >= 0.95 and min(cosines) >= 0.98
