"""`compress run --gate`: task gates on tiny random models, the grammar, the recipe, and what a failing gate
leaves behind (nothing)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from compress import CompressError
from compress.cli import _parser, main
from compress.flags import recipe_from_flags
from compress.metrics import macro_f1, mrr_at_10, ndcg_at_10
from compress.recipe import Recipe
from compress.task_gates import TaskGate, parse_gate
from tests.conftest import SENTENCES


def _run(*args: str) -> int:
    return main(["run", *args, "--no-bench", "--threads", "1"])


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _gates(out) -> list[dict]:
    return json.loads((out / "manifest.json").read_text())["validation"]["task_gates"]


def _nothing_written(tmp_path, out) -> bool:
    return not out.exists() and not list(tmp_path.glob(f".{out.name}.partial-*"))


# --- grammar and recipe ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "want"), [
    ("fill-mask", {"kind": "fill-mask", "data": None}),
    ("retrieval:q.jsonl", {"kind": "retrieval", "data": "q.jsonl"}),
    ("classification:t.csv@0.5", {"kind": "classification", "data": "t.csv", "tolerance": 0.5}),
    ("token-classification:dir/v.jsonl:head=verbs@-1", {"kind": "token-classification", "data": "dir/v.jsonl",
                                                        "head": "verbs", "tolerance": -1.0}),
    ("fill-mask:head=mlm", {"kind": "fill-mask", "data": None, "head": "mlm"}),
])
def test_gate_grammar(text, want):
    assert parse_gate(text) == want
    gate = TaskGate.model_validate(text)
    assert TaskGate.model_validate(gate.label) == gate  # the label reads back as the same gate


@pytest.mark.parametrize(("text", "says"), [
    ("accuracy:t.jsonl", "unknown gate kind 'accuracy'"), ("retrieval:q.jsonl@one", "in points"),
    ("retrieval", "retrieval:FILE"), ("classification::head=x", "KIND[:FILE][:head=NAME][@TOL]")])
def test_bad_gates_say_how_to_write_one(text, says):
    with pytest.raises(CompressError, match="--gate") as e:
        recipe_from_flags(_parser().parse_args(["run", "m", "--gate", text]))
    assert says in str(e.value)


def test_gates_in_a_recipe_as_text_or_mapping_and_flags_replace_them():
    recipe = Recipe.model_validate({"method": "int8", "validation": {"gates": [
        "retrieval:q.jsonl@0.5", {"kind": "classification", "data": "t.jsonl", "head": "topic"}]}})
    assert [g.label for g in recipe.validation.gates] == ["retrieval:q.jsonl@0.5",
                                                          "classification:t.jsonl:head=topic@1"]
    assert recipe.stored()["validation"]["gates"][1] == {"kind": "classification", "data": "t.jsonl", "head": "topic",
                                                         "tolerance": 1.0}
    same = recipe_from_flags(_parser().parse_args(["run", "m"]), recipe)
    assert same.validation.gates == recipe.validation.gates
    flagged = recipe_from_flags(_parser().parse_args(["run", "m", "--gate", "fill-mask@2"]), recipe)
    assert [g.label for g in flagged.validation.gates] == ["fill-mask@2"]


def test_metrics():
    scores = np.array([[3.0, 2, 1, 0], [0, 1, 2, 3]])
    relevant = np.array([[False, True, False, True], [False, False, False, True]])
    assert mrr_at_10(scores, relevant) == pytest.approx((1 / 2 + 1) / 2)
    assert mrr_at_10(scores, np.array([1, 3])) == mrr_at_10(scores, relevant[[1, 1]] | np.eye(4, dtype=bool)[[1, 3]])
    first = (1 / np.log2(3) + 1 / np.log2(5)) / (1 + 1 / np.log2(3))
    assert ndcg_at_10(scores, relevant) == pytest.approx((first + 1) / 2)
    truth, predicted = np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 3])
    assert macro_f1(truth, predicted) == pytest.approx((2 / 3 + 4 / 5 + 0 + 0) / 4)  # as scikit-learn's macro F1


# --- each kind on a tiny model -------------------------------------------------------------------------------------

@pytest.fixture
def pairs(tmp_path):
    return _jsonl(tmp_path / "pairs.jsonl", [{"query": s, "positive": " ".join(reversed(s.split()))}
                                             for s in SENTENCES[:32]])


def test_retrieval_gate_passes_fp32_and_fails_a_negative_tolerance(tiny, texts_file, pairs, tmp_path, capsys):
    src = str(tiny("bert", "embedding"))
    out = tmp_path / "art"
    assert _run(src, "--fp32", "--out", str(out), "--validate", str(texts_file), "--gate", f"retrieval:{pairs}") == 0
    (gate,) = _gates(out)
    assert gate["passed"] and gate["items"] == 32 and gate["head"] == "embedding"
    for figures in gate["metrics"].values():
        assert figures["artifact"] == pytest.approx(figures["original"], abs=1e-6) and 0 < figures["original"] <= 1
    assert set(gate["metrics"]) == {"mrr@10", "ndcg@10"}
    report = (out / "report.md").read_text()
    assert "## Task gates" in report and "| mrr@10 |" in report
    capsys.readouterr()

    failed = tmp_path / "failed"
    assert _run(src, "--fp32", "--out", str(failed), "--validate", str(texts_file),
                "--gate", f"retrieval:{pairs}@-1") == 2
    err = capsys.readouterr().err
    assert "fails the accuracy gate" in err and "mrr@10" in err and "(original) ->" in err and "+0.00 points" in err
    assert "below the allowed +1" in err
    assert _nothing_written(tmp_path, failed)


def _own_predictions(model_dir, texts: list[str]) -> list[str]:
    """The original model's label for each text (its head made decisive first): a file it scores 100 % on, so
    any change to the model costs points."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    enc = AutoTokenizer.from_pretrained(model_dir)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():  # a random encoder pools every text alike: centre the head so that they differ
        pooled = model.bert(**enc).pooler_output
        model.classifier.bias.copy_(-model.classifier.weight @ pooled.mean(0))
        model.save_pretrained(model_dir)
        predicted = model(**enc).logits.argmax(-1).tolist()
    return [model.config.id2label[i] for i in predicted]


def test_classification_gate_passes_fp32_and_fails_a_heavily_pruned_model(tiny, texts_file, tmp_path, capsys):
    src = tiny("bert", "classification")
    labels = _own_predictions(src, SENTENCES)
    data = _jsonl(tmp_path / "topic.jsonl", [{"text": s, "label": y} for s, y in zip(SENTENCES, labels, strict=True)])
    out = tmp_path / "art"
    assert _run(str(src), "--fp32", "--out", str(out), "--validate", str(texts_file),
                "--gate", f"classification:{data}") == 0
    (gate,) = _gates(out)
    assert len(set(labels)) == 3
    assert gate["passed"] and gate["metrics"]["accuracy"]["original"] == 1.0
    assert gate["metrics"]["accuracy"]["artifact"] == 1.0 and gate["metrics"]["macro_f1"]["artifact"] == 1.0
    capsys.readouterr()

    worse, train, val = tmp_path / "pruned", tmp_path / "train.txt", tmp_path / "val.txt"
    train.write_text("\n".join(SENTENCES[::2]) + "\n")
    val.write_text("\n".join(SENTENCES[1::2]) + "\n")
    assert _run(str(src), "--int8", "--prune", "0.7", "--recover-steps", "0", "--recover-data", str(train),
                "--out", str(worse), "--validate", str(val), "--gate", f"classification:{data}@5") == 2
    err = capsys.readouterr().err
    assert "accuracy 1.0000 (original) ->" in err and "below the allowed -5" in err
    assert _nothing_written(tmp_path, worse)


def test_classification_labels_by_index_and_unknown_labels(tiny, texts_file, tmp_path, capsys):
    src = str(tiny("bert", "classification"))
    by_index = _jsonl(tmp_path / "idx.jsonl", [{"text": s, "label": i % 3} for i, s in enumerate(SENTENCES)])
    out = tmp_path / "art"
    assert _run(src, "--fp32", "--out", str(out), "--validate", str(texts_file),
                "--gate", f"classification:{by_index}") == 0
    assert _gates(out)[0]["items"] == len(SENTENCES)
    wrong = _jsonl(tmp_path / "wrong.jsonl", [{"text": s, "label": ["sport", "arts"][i % 2]}
                                              for i, s in enumerate(SENTENCES)])
    assert _run(src, "--fp32", "--out", str(tmp_path / "x"), "--gate", f"classification:{wrong}") == 2
    assert "labels arts, sport are not the head's labels (LABEL_0, LABEL_1, LABEL_2)" in capsys.readouterr().err


def test_a_gate_without_a_fitting_head_fails_before_any_work(tiny, pairs, tmp_path, capsys):
    out = tmp_path / "art"
    assert _run(str(tiny("bert", "fill-mask")), "--out", str(out), "--gate", f"retrieval:{pairs}") == 2
    assert "no embedding heads in the artifact (fill-mask (fill-mask))" in capsys.readouterr().err
    assert _run(str(tiny("bert", "embedding")), "--out", str(out), "--gate", "fill-mask:head=embedding") == 2
    assert "head 'embedding' is a embedding head; fill-mask gates judge fill-mask heads" in capsys.readouterr().err
    assert _run(str(tiny("bert", "embedding")), "--out", str(out), "--gate", f"retrieval:{pairs}:head=sim") == 2
    assert "no head 'sim'; the artifact's heads: embedding (embedding)" in capsys.readouterr().err
    assert _nothing_written(tmp_path, out)


def test_fill_mask_gate_on_packaged_texts_and_on_a_file(tiny, texts_file, tmp_path, capsys):
    src = str(tiny("bert", "fill-mask"))
    out = tmp_path / "art"
    assert _run(src, "--int8", "--out", str(out), "--validate", str(texts_file), "--min-agreement", "1.01",
                "--gate", "fill-mask", "--gate", f"fill-mask:{texts_file}@0.5") == 0
    packaged, own = _gates(out)
    assert packaged["data"].startswith("BBC News") and packaged["items"] > 500 and own["data"] == str(texts_file)
    v = json.loads((out / "manifest.json").read_text())["validation"]
    # the agreement threshold 1.01 cannot be met; the task gates decide instead
    assert v["passed"] and v["judged_by"] == "task gates" and v["agreement_passed"] is False
    assert "top1_agreement" in v
    capsys.readouterr()

    failed = tmp_path / "failed"
    assert _run(src, "--fp32", "--out", str(failed), "--validate", str(texts_file),
                "--gate", f"fill-mask:{texts_file}@-1") == 2
    assert "top1_accuracy" in capsys.readouterr().err
    assert _nothing_written(tmp_path, failed)


def test_a_models_yaml_recipe_carries_its_gates(tiny, texts_file, pairs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    src = tiny("bert", "embedding")
    (tmp_path / "models.yaml").write_text(
        f"models:\n  - name: emb\n    source: {src}\n    task: embedding\n    recipe:\n      method: fp32\n"
        f"      validation: {{data: {texts_file}, gates: ['retrieval:{pairs.name}@0.5']}}\n")
    assert _run("emb", "--out", "art") == 0
    m = json.loads((tmp_path / "art" / "manifest.json").read_text())
    assert m["recipe"]["validation"]["gates"] == [{"kind": "retrieval", "data": "pairs.jsonl", "head": None,
                                                   "tolerance": 0.5}]
    assert m["validation"]["task_gates"][0]["passed"]
    assert _run("emb", "--out", "failed", "--gate", f"retrieval:{pairs.name}@-1") == 2  # the flag replaces it
    assert "retrieval:pairs.jsonl@-1" in capsys.readouterr().err and not (tmp_path / "failed").exists()
