"""`compress run --prune` end to end on tiny models: the recorded structure, the resumable recovery,
and the errors."""

from __future__ import annotations

import numpy as np
import pytest

from compress.artifact import load_artifact, read_manifest
from compress.cli import main
from compress.data import encode, mask_tokens
from compress.prune.model_parts import encoder_params
from compress.sources import load_model
from tests.conftest import SENTENCES


@pytest.fixture
def split(tmp_path):
    """(training texts file, validation texts file): disjoint halves of the test sentences."""
    train, val = tmp_path / "train.txt", tmp_path / "val.txt"
    train.write_text("\n".join(SENTENCES[::2]) + "\n")
    val.write_text("\n".join(SENTENCES[1::2]) + "\n")
    return train, val


def _run(*args: str) -> int:
    return main(["run", *args, "--no-bench", "--threads", "1"])


def test_pruned_artifact_records_what_was_removed(tiny, split, tmp_path):
    src, (train, val) = tiny("bert", "fill-mask"), split
    out, plain = tmp_path / "pruned", tmp_path / "plain"
    assert _run(str(src), "--fp32", "--out", str(plain), "--validate", str(val)) == 0
    assert _run(str(src), "--int8", "--prune", "0.3", "--recover-steps", "6", "--recover-data", str(train),
                "--recover-hidden-weight", "4", "--validate", str(val), "--out", str(out), "--no-gate") == 0
    m = read_manifest(out)
    p = m.pruning
    assert p is not None and p["method"] == "structured"
    original = encoder_params(load_model(str(src)).model)
    assert p["encoder_params_before"] == original
    # whole units only: at least the fraction, and less than one more neuron chunk or head beyond it
    assert 0.3 <= p["removed_fraction"] < 0.36
    assert len(p["layers"]) == 2 and all(1 <= len(r["heads_kept"]) <= 4 for r in p["layers"])
    assert all(64 <= r["neurons_kept"] <= 128 and r["neurons_kept"] % 16 == 0 for r in p["layers"])
    assert p["recovery"]["steps"] == 6 and p["recovery"]["data"] == str(train)
    assert p["recovery"]["config"]["weights"]["hidden"] == 4.0 and m.recipe["prune"]["recover_hidden_weight"] == 4.0
    assert p["recovery"]["config"]["group_by_length"] is None  # the default: grouped where that pads much less
    assert isinstance(p["recovery"]["grouped_by_length"], bool)
    assert set(p["validation"]) == {"pruned", "recovered"}
    assert "top1_agreement" in m.validation["against_unpruned"]
    # the removed parameters are gone from the graph, not zeroed
    removed_bytes = 4 * (p["encoder_params_before"] - p["encoder_params_after"])
    assert m.sizes["fp32_onnx_bytes"] <= read_manifest(plain).sizes["fp32_onnx_bytes"] - 0.9 * removed_bytes
    assert "## Pruning" in (out / "report.md").read_text()
    assert not list(tmp_path.glob(".pruned.prune-checkpoint*"))  # removed once the artifact is written
    # and the artifact answers like any other
    art = load_artifact(out)
    tok = art.tokenizer()
    enc, _ = mask_tokens(encode(tok, SENTENCES[:4], 32), tok)
    logits = art.runner(threads=1)(enc)["mask_logits"]
    assert logits.shape == (int((enc["input_ids"] == tok.mask_token_id).sum()), len(tok))
    assert np.isfinite(logits).all()


def test_interrupted_prune_resumes_from_its_checkpoint(tiny, split, tmp_path, monkeypatch, capsys):
    src, (train, val) = tiny("bert", "embedding"), split
    out = tmp_path / "art"
    ckpt = tmp_path / ".art.prune-checkpoint.pt"
    import compress.pipeline as pipeline

    real_export = pipeline.export_onnx

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "export_onnx", interrupt)  # after recovery, before anything is written
    args = [str(src), "--int8", "--prune", "0.25", "--recover-steps", "4", "--recover-data", str(train),
            "--validate", str(val), "--out", str(out), "--no-gate"]
    assert _run(*args) == 130
    assert not out.exists() and ckpt.is_file()
    capsys.readouterr()
    monkeypatch.setattr(pipeline, "export_onnx", real_export)
    assert _run(*args) == 0
    err = capsys.readouterr().err
    assert "rebuilding the pruned model from checkpoint" in err and "importance measured" not in err
    assert read_manifest(out).pruning["recovery"]["resumed_from"] == 4
    assert not ckpt.exists()


def test_magnitude_pruning_is_stored_sparsely_and_says_it_is_not_faster(tiny, split, tmp_path):
    src, (train, val) = tiny("bert", "classification"), split
    out = tmp_path / "art"
    assert _run(str(src), "--fp32", "--prune", "0.8", "--prune-method", "magnitude", "--recover-steps", "3",
                "--recover-data", str(train), "--validate", str(val), "--out", str(out), "--no-gate") == 0
    m = read_manifest(out)
    # 80 % of the linear weights; biases and LayerNorms stay
    assert m.pruning["method"] == "magnitude" and 0.75 <= m.pruning["removed_fraction"] < 0.8
    assert m.pruning["sparse_storage"]["sparse_initializers"] >= 8  # Q, K, V, O, FFN in and out of 2 layers
    assert m.sizes["model_bytes"] < 0.75 * m.sizes["dense_model_bytes"]
    assert any("not make dense ONNX Runtime inference faster" in n for n in m.notes)
    art = load_artifact(out)
    logits = art.runner(threads=1)(encode(art.tokenizer(), SENTENCES[:3], 32))["logits"]
    assert logits.shape == (3, 3) and np.isfinite(logits).all()


@pytest.mark.parametrize(("value", "message"), [
    ("1.5", "between 0 and 1"), ("0", "between 0 and 1"), ("0.9x", "above 1x"), ("fast", "a speed-up (1.6x) or auto"),
])
def test_prune_flag_takes_a_fraction_or_a_speedup(tiny, tmp_path, capsys, value, message):
    with pytest.raises(SystemExit) as e:
        _run(str(tiny("bert", "fill-mask")), "--out", str(tmp_path / "art"), "--prune", value)
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "art").exists()


@pytest.mark.parametrize(("extra", "message"), [
    (["--prune", "0.3", "--bnb-int8"], "per-layer head and neuron counts"),
    (["--recover-steps", "3"], "need --prune FRACTION"),
    (["--prune", "1.5x", "--prune-method", "heads"], "needs the structured method"),
    (["--prune", "20x", "--recover-steps", "0"], "out of reach by heads and neurons alone"),
    (["--prune", "0.3", "--recover-data", "missing.txt"], "no such file"),
    (["--prune", "0.3", "--recover-hidden-weight", "-1"], "--recover-hidden-weight: Input should be greater than"),
    (["--recover-hidden-weight", "2"], "need --prune FRACTION"),
    (["--no-recover-group-by-length"], "need --prune FRACTION"),
    (["--prune", "0.99", "--prune-method", "heads"], "can go (keeping 1 per layer)"),
])
def test_bad_prune_flags_are_clear_errors_and_write_nothing(tiny, tmp_path, capsys, extra, message):
    out = tmp_path / "art"
    assert _run(str(tiny("bert", "fill-mask")), "--out", str(out), *extra) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_speed_budget_run_records_its_estimate(tiny, split, tmp_path):
    src, (train, val) = tiny("bert", "embedding"), split
    out = tmp_path / "fast"
    assert _run(str(src), "--int8", "--prune", "1.3x", "--recover-steps", "2", "--recover-data", str(train),
                "--validate", str(val), "--out", str(out), "--no-gate") == 0
    p = read_manifest(out).pruning
    assert p["config"]["speedup"] == 1.3 and p["config"]["fraction"] is None
    assert p["estimated_speedup"]["value"] >= 1.3
    assert "estimated speed-up" in (out / "report.md").read_text()
