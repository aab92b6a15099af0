"""The `compress` command end to end on tiny models: the artifact, and every error path."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from compress.artifact import load_artifact
from compress.cli import main
from compress.data import encode, mask_tokens
from tests.conftest import SENTENCES


def _run(*args: str) -> int:
    return main(["run", *args, "--no-bench", "--threads", "1"])


def test_run_writes_a_self_describing_artifact(tiny, texts_file, tmp_path):
    out = tmp_path / "art"
    src = tiny("bert", "fill-mask")
    assert _run(str(src), "--int8", "--out", str(out), "--validate", str(texts_file), "--no-gate") == 0
    names = {p.name for p in out.iterdir()}
    assert {"manifest.json", "report.md", "model.onnx", "config.json", "tokenizer.json"} <= names
    art = load_artifact(out)
    m = art.manifest
    assert (m.task, m.family, m.method) == ("fill-mask", "bert", "int8")
    assert m.graph.outputs == ["mask_logits", "mask_positions"]
    assert m.sizes["model_bytes"] < m.sizes["fp32_onnx_bytes"]
    assert m.validation["texts"] == len(SENTENCES)
    assert 0 <= m.validation["top1_agreement"] <= 1
    assert m.tools["onnxruntime"] and m.cpu["isa"]
    assert "## " in (out / "report.md").read_text() or "| size |" in (out / "report.md").read_text()
    # The artifact is usable on its own: tokenizer + graph.
    tok = art.tokenizer()
    enc, _ = mask_tokens(encode(tok, SENTENCES[:3], m.tokenizer.max_length), tok)
    res = art.runner(threads=1)(enc)
    assert res["mask_logits"].shape == (int((enc["input_ids"] == tok.mask_token_id).sum()), len(tok))
    assert not list(tmp_path.glob(".art.partial-*"))


def test_existing_output_is_not_overwritten(tiny, tmp_path, capsys):
    out = tmp_path / "art"
    out.mkdir()
    (out / "precious").write_text("x")
    assert _run(str(tiny("bert", "embedding")), "--out", str(out)) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "precious").exists()


def test_gate_that_cannot_be_met_writes_nothing(tiny, texts_file, tmp_path, capsys):
    out = tmp_path / "art"
    code = _run(str(tiny("bert", "embedding")), "--int4", "--out", str(out), "--validate", str(texts_file),
                "--min-cosine", "1.01")
    assert code == 2
    err = capsys.readouterr().err
    assert "sensitive" in err and "--no-gate" in err
    assert not out.exists() and list(tmp_path.glob(".art*")) == []


def test_no_gate_writes_a_failing_artifact_loudly(tiny, texts_file, tmp_path, capsys):
    out = tmp_path / "art"
    assert _run(str(tiny("bert", "embedding")), "--int4", "--out", str(out), "--validate", str(texts_file),
                "--min-cosine", "1.01", "--no-gate") == 0
    assert "FAILS the accuracy gate" in capsys.readouterr().err
    assert json.loads((out / "manifest.json").read_text())["validation"]["passed"] is False


def test_gate_keeps_sensitive_layers_in_fp32(tiny, texts_file, tmp_path):
    """With a threshold between 'all int4' and fp32, the gate must exclude layers and then pass."""
    out = tmp_path / "probe"
    src = str(tiny("bert", "embedding"))
    assert _run(src, "--int4", "--out", str(out), "--validate", str(texts_file), "--no-gate") == 0
    all_int4 = load_artifact(out).manifest.validation["mean_cosine"]
    assert all_int4 < 0.99999
    target = 1 - (1 - all_int4) / 3  # needs at least one group back in fp32
    out2 = tmp_path / "gated"
    assert _run(src, "--int4", "--out", str(out2), "--validate", str(texts_file),
                "--min-cosine", str(target)) == 0
    m = load_artifact(out2).manifest
    assert m.excluded_nodes and m.validation["passed"] and m.validation["mean_cosine"] >= target
    assert m.validation["sensitivity"]


def test_unknown_model_name_lists_known_ones(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models.yaml").write_text("models:\n  - {name: foo, source: ./foo}\n")
    assert _run("bar") == 2
    assert "models.yaml lists: foo" in capsys.readouterr().err


def test_invalid_models_yaml_is_reported(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models.yaml").write_text("models:\n  - {name: foo, source: ./foo, recipe: {method: int3}}\n")
    assert _run("foo") == 2
    assert "does not fit the models.yaml schema" in capsys.readouterr().err


def test_interrupted_run_leaves_no_directory(tiny, tmp_path, monkeypatch, capsys):
    import compress.pipeline as pipeline

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "build_validation_set", interrupt)
    out = tmp_path / "art"
    assert _run(str(tiny("bert", "embedding")), "--out", str(out)) == 130
    assert "no artifact was written" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.glob(".art*")) == []


def test_pickle_error_is_one_line_without_traceback(tiny, tmp_path):
    """Through the real console entry point: exit code 2, the fix named, no traceback."""
    src = tiny("bert", "fill-mask", save="pickle") / "whole.pt"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "compress", "run", str(src), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    assert "--trust-pickle" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("family", ["distilbert", "roberta"])
def test_families_without_token_type_ids(tiny, texts_file, tmp_path, family):
    out = tmp_path / "art"
    assert _run(str(tiny(family, "classification")), "--int8", "--out", str(out), "--validate", str(texts_file),
                "--no-gate") == 0
    art = load_artifact(out)
    assert art.manifest.graph.inputs == ["input_ids", "attention_mask"]
    assert art.manifest.labels == ["LABEL_0", "LABEL_1", "LABEL_2"]
    tok = art.tokenizer()
    logits = art.runner(threads=1)(encode(tok, SENTENCES[:4], 64))["logits"]
    assert logits.shape == (4, 3) and np.isfinite(logits).all()


@pytest.mark.parametrize("method", ["bnb-int8", "bnb-nf4"])
def test_bitsandbytes_artifact_uses_the_torch_backend(tiny, texts_file, tmp_path, method):
    out = tmp_path / "art"
    assert _run(str(tiny("bert", "embedding")), f"--{method}", "--out", str(out), "--validate", str(texts_file),
                "--no-gate") == 0
    art = load_artifact(out)
    m = art.manifest
    assert m.backend == "torch" and m.graph.file == "model.safetensors"
    assert m.sizes["fp32_memory_bytes"] / m.sizes["memory_bytes"] > (2.5 if method == "bnb-int8" else 3.5)
    tok = art.tokenizer()
    enc = encode(tok, SENTENCES[:4], 64)
    emb = art.runner(threads=1)(enc)["sentence_embedding"]
    from compress.export import TaskGraph
    from compress.runtime import TorchRunner
    from compress.sources import load_model

    loaded = load_model(str(tiny("bert", "embedding")))
    ref = TorchRunner(TaskGraph(loaded.model, "embedding"), m.graph.inputs)(enc)["sentence_embedding"]
    cos = (emb * ref).sum(-1) / np.linalg.norm(emb, axis=-1) / np.linalg.norm(ref, axis=-1)
    assert cos.min() > 0.9
    assert abs(cos.mean() - m.validation["mean_cosine"]) < 0.1
