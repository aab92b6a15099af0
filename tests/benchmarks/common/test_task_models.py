"""The served tasks' benchmark models as the benchmarks resolve them, without loading a model."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.common import task_models
from benchmarks.http.measure import model_target, request_model
from compress.catalog import load_catalog
from tests.conftest import ROOT


def test_antiberty_sparse_is_antiberty_served_with_its_mlm_and_splade_heads_and_asked_at_splade(tmp_path):
    catalog = load_catalog(ROOT / "models.yaml")
    entry, task = model_target(catalog, "antiberty-sparse", tmp_path)
    antiberty = catalog.get("antiberty")
    assert (entry.name, task) == ("antiberty-sparse", "sparse-embedding")
    assert (entry.source, entry.tokenizer, entry.requires) == (antiberty.source, antiberty.tokenizer,
                                                               antiberty.requires)
    assert [(h.name, h.task) for h in entry.heads or []] == [("mlm", "fill-mask"), ("splade", "sparse-embedding")]
    assert entry.artifact == str(tmp_path / "antiberty-sparse-int8")  # the int8 variant `benchmarks run` makes
    assert request_model("antiberty-sparse") == "antiberty-sparse:splade"  # the served model's first head is mlm
    assert task_models.build_task_model("antiberty-sparse", tmp_path) is None  # nothing to fit
    assert not list(tmp_path.iterdir())


def test_the_fitted_task_models_keep_their_own_names_and_one_head():
    catalog = load_catalog(ROOT / "models.yaml")
    for name, task in (("antiberty-region", "token-classification"), ("minilm-rerank", "rerank")):
        entry, head_task = model_target(catalog, name, Path("cache"))
        assert request_model(name) == name and head_task is None and entry.heads is None
        assert task_models.served_task(name) == task
    assert request_model("antiberty:species") == "antiberty:species"
    with pytest.raises(ValueError, match="antiberty-region, minilm-rerank, antiberty-sparse"):
        task_models.address("antiberty")
