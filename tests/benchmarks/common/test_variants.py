"""The pruned-int8 recipes: what each benchmark model is pruned to and distilled on."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmarks.common import datasets, variants
from compress.recipe import Recipe


def test_pruned_recipes_distil_classifiers_shorter_on_texts_their_suite_never_scores(antiberty_tokenizer, tmp_path):
    loaded = SimpleNamespace(tokenizer=antiberty_tokenizer)
    fill_mask = variants._prune_step("antiberty", loaded, tmp_path)
    species = variants._prune_step("antiberty-species", loaded, tmp_path)
    for step in (fill_mask, species):
        assert (step["fraction"], step["head_cost_factor"]) == (0.4, 8.0)
    assert fill_mask["recover_steps"] == 1000 and species["recover_steps"] == 500
    assert fill_mask["recover_hidden_weight"] is None and species["recover_hidden_weight"] is None
    assert fill_mask["recover_group_by_length"] is False and species["recover_group_by_length"] is False
    texts = {t.replace(" ", "") for t in Path(species["recover_data"]).read_text().split("\n") if t}
    scored = {a.sequence for a in datasets.labelled_germlines(antiberty_tokenizer, "species")}
    assert len(texts) == len(datasets.held_out_germlines(antiberty_tokenizer)) - len(scored)
    assert not texts & scored and species["recover_data"] != fill_mask["recover_data"]


@pytest.mark.slow  # loads the real MiniLM
def test_minilm_distils_on_passages_batched_by_length(packaged_model, tmp_path):
    tokenizer = packaged_model("minilm").tokenizer
    step = variants._prune_step("minilm", SimpleNamespace(tokenizer=tokenizer), tmp_path)
    recipe = (step["fraction"], step["head_cost_factor"], step["recover_steps"], step["recover_hidden_weight"])
    assert recipe == (0.3, 0.5, 8000, 10)
    assert step["recover_group_by_length"] is True
    lines = Path(step["recover_data"]).read_text().split("\n")[:-1]
    assert lines == datasets.recovery_texts(tokenizer)


def test_static_int8_calibrates_on_texts_no_suite_scores(antiberty_tokenizer, tmp_path):
    loaded = SimpleNamespace(tokenizer=antiberty_tokenizer)
    calib = variants._recovery_file("antiberty-species", loaded, tmp_path, limit=variants.CALIBRATION_TEXTS)
    texts = [t for t in calib.read_text().split("\n") if t]
    assert len(texts) == variants.CALIBRATION_TEXTS
    recovery = set(datasets.recovery_texts(antiberty_tokenizer, "species"))
    assert set(texts) <= recovery  # drawn from the recovery texts, which the suite never scores


def test_a_cached_artifact_of_another_recipe_is_stale(monkeypatch, tmp_path):
    made_with = {"method": "int8", "optimize": "O1"}
    stored = Recipe.model_validate(made_with).stored()
    manifest = SimpleNamespace(method="int8", recipe=stored, source={})
    monkeypatch.setattr(variants, "read_manifest", lambda _: manifest)
    assert variants.RECIPES["int8"] == made_with  # the default recipe
    assert not variants._stale(tmp_path, "minilm", "int8", tmp_path)
    manifest.recipe = {**stored, "quantize": {**stored["quantize"], "smooth_alpha": None}}  # an option changed
    assert variants._stale(tmp_path, "minilm", "int8", tmp_path)
    older = {k: v for k, v in stored["quantize"].items() if k != "embedding_scales"}  # made before an option existed
    manifest.recipe = {**stored, "quantize": older}
    assert variants._stale(tmp_path, "minilm", "int8", tmp_path)
    manifest.recipe = stored
    assert variants._stale(tmp_path, "minilm", "int8-O2", tmp_path)
    assert variants._stale(tmp_path, "minilm", "int4", tmp_path)
