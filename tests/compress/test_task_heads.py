"""Multi-head artifacts on a tiny random BERT with an LM head and two extra linear heads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from compress import CompressError
from compress.artifact import load_artifact
from compress.catalog import ModelEntry
from compress.cli import main
from compress.data import encode, mask_tokens
from compress.export import TaskGraph, export_onnx
from compress.head_graph import load_heads
from compress.runtime import OnnxRunner
from compress.sources import load_model
from compress.task_heads import HeadSpec, parse_heads
from tests.conftest import SENTENCES, add_linear_heads

SPECIES = ["a", "b", "c", "d", "e", "f"]


@pytest.fixture
def checkpoint(tiny) -> Path:
    d = tiny("bert", "fill-mask", save="bin")
    add_linear_heads(d / "weights.bin")
    return d / "weights.bin"


def test_heads_are_parsed_and_checked():
    heads = parse_heads("mlm,species,chain", {"species": SPECIES})
    assert [(h.name, h.task, h.output) for h in heads] == [
        ("mlm", "fill-mask", "mask_logits"), ("species", "classification", "species_logits"),
        ("chain", "classification", "chain_logits")]
    assert heads[1].labels == SPECIES
    for bad, why in [("mlm", "two or more"), ("species,species", "unique"), ("mlm,a b", "species")]:
        with pytest.raises(CompressError, match="--heads"):
            parse_heads(bad)
        del why
    entry = ModelEntry(name="ab", source="x", heads=[{"name": "mlm"}, {"name": "chain", "labels": ["H", "L"]}])
    assert entry.heads is not None and entry.heads[0].task == "fill-mask"
    with pytest.raises(ValueError, match="labels belong to classification heads"):
        ModelEntry(name="ab", source="x", heads=[{"name": "mlm", "labels": ["x"]}, {"name": "chain"}])
    with pytest.raises(ValueError, match="at most one fill-mask"):
        ModelEntry(name="ab", source="x", heads=[{"name": "mlm"}, {"name": "lm", "task": "fill-mask"}])


def test_multihead_onnx_equals_each_single_head_model(checkpoint, tmp_path):
    heads = [HeadSpec(name="mlm"), HeadSpec(name="species", labels=SPECIES), HeadSpec(name="chain")]
    mh = load_heads(heads, spec=str(checkpoint))
    assert mh.heads[1].labels == SPECIES and mh.heads[2].labels == ["LABEL_0", "LABEL_1"]
    info = export_onnx(mh.graph, tmp_path / "m.onnx")
    assert info["outputs"] == ["mask_logits", "mask_positions", "species_logits", "chain_logits"]
    run = OnnxRunner(tmp_path / "m.onnx", threads=1)
    mlm = load_model(str(checkpoint), task="fill-mask")
    tok = mlm.tokenizer
    enc, _ = mask_tokens(encode(tok, SENTENCES[:7], 64), tok, rate=0.3)
    got = run(enc)
    tensors = {k: torch.from_numpy(v) for k, v in enc.items()}
    with torch.no_grad():
        want = TaskGraph(mlm.model, "fill-mask", mask_token_id=tok.mask_token_id)(**tensors)
        for name in ("species", "chain"):
            single = load_model(str(checkpoint), head=name).model
            np.testing.assert_allclose(got[f"{name}_logits"], single(**tensors).logits.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_array_equal(got["mask_positions"], want["mask_positions"].numpy())
    np.testing.assert_allclose(got["mask_logits"], want["mask_logits"].numpy(), atol=1e-4, rtol=1e-4)


def _run(*args: str) -> int:
    return main(["run", *args, "--no-bench", "--threads", "1"])


def test_cli_writes_one_artifact_with_every_head(checkpoint, texts_file, tmp_path):
    out = tmp_path / "art"
    assert _run(str(checkpoint), "--heads", "mlm,species,chain", "--int8", "--out", str(out),
                "--validate", str(texts_file), "--no-gate") == 0
    m = load_artifact(out).manifest
    assert m.heads is not None
    assert [(h.name, h.task, h.output) for h in m.heads] == [
        ("mlm", "fill-mask", "mask_logits"), ("species", "classification", "species_logits"),
        ("chain", "classification", "chain_logits")]
    assert m.task == "fill-mask" and m.graph.outputs[-2:] == ["species_logits", "chain_logits"]
    figures = m.validation["heads"]
    assert set(figures) == {"mlm", "species", "chain"}
    assert figures["mlm"]["top1_agreement"] == m.validation["top1_agreement"]
    for name, key in (("mlm", "top1_agreement"), ("species", "label_agreement"), ("chain", "label_agreement")):
        assert 0.5 <= figures[name][key] <= 1
        assert figures[name]["passed"] == (figures[name][key] >= 0.99)
    assert m.validation["passed"] == all(f["passed"] for f in figures.values())
    assert m.sizes["model_bytes"] < m.sizes["fp32_onnx_bytes"]
    assert "head species" in (out / "report.md").read_text()


def test_a_head_that_fails_its_gate_fails_the_run(checkpoint, texts_file, tmp_path, capsys):
    out = tmp_path / "art"
    assert _run(str(checkpoint), "--heads", "mlm,species", "--int4", "--min-agreement", "1.01", "--out", str(out),
                "--validate", str(texts_file)) == 2
    err = capsys.readouterr().err
    assert "cannot pass the accuracy gate" in err and "mlm 1.0000 < 1.01" in err and "species" in err
    assert not out.exists()


def test_heads_conflict_with_single_head_flags(checkpoint, tmp_path, capsys):
    assert _run(str(checkpoint), "--heads", "mlm,species", "--head", "species", "--out", str(tmp_path / "a")) == 2
    assert "drop --head" in capsys.readouterr().err
    assert _run(str(checkpoint), "--heads", "mlm,nope", "--out", str(tmp_path / "a")) == 2
    assert "no single head named 'nope'" in capsys.readouterr().err


def test_one_head_of_a_multihead_entry_is_a_single_head_entry():
    from compress.catalog import Catalog, entry_or_head, requested_heads

    catalog = Catalog(models=[ModelEntry(name="ab", source="x", heads=[
        {"name": "mlm"}, {"name": "species", "labels": SPECIES}])])
    species = entry_or_head(catalog, "ab-species")
    assert (species.name, species.task, species.head, species.labels, species.heads) == (
        "ab-species", "classification", "species", SPECIES, None)
    assert entry_or_head(catalog, "ab-mlm").task == "fill-mask" and entry_or_head(catalog, "ab-mlm").head is None
    assert entry_or_head(catalog, "ab").heads is not None
    with pytest.raises(CompressError, match="ab has no head 'chain'"):
        entry_or_head(catalog, "ab-chain")
    with pytest.raises(CompressError, match="unknown model name 'cd'"):
        entry_or_head(catalog, "cd")
    # --heads takes the entry's labels for the heads it names
    assert [h.labels for h in requested_heads("mlm,species", catalog.get("ab"))] == [None, SPECIES]
    with pytest.raises(CompressError, match="drop its task/head/labels"):
        requested_heads(None, catalog.get("ab").model_copy(update={"task": "fill-mask"}))
