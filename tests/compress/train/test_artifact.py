"""A trained directory becomes one multi-head artifact: every head exported, gated on its own measure,
answering as the trained model does, with the training record in the manifest; the engine serves it."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import torch

from compress.cli import main
from compress.train.store import load_trained
from tests.compress.train.conftest import FAST
from tests.conftest import SENTENCES


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny BERT masked-LM trained with a head of every kind, and its fp32 artifact."""
    from tests.compress.train.conftest import build_trained

    return build_trained(tmp_path_factory.mktemp("trained"), {
        "topic": "classification", "verbs": "token-classification", "sim": "embedding", "rr": "rerank", "mlm": "mlm"})


def test_every_head_is_in_the_manifest_and_passes_its_own_gate(trained):
    model_dir, art = trained
    m = json.loads((art / "manifest.json").read_text())
    assert [(h["name"], h["task"], h["output"]) for h in m["heads"]] == [
        ("mlm", "fill-mask", "mask_logits"), ("topic", "classification", "topic_logits"),
        ("verbs", "token-classification", "verbs_logits"), ("sim", "embedding", "sim_embedding"),
        ("rr", "rerank", "rr_logits")]
    gate = m["validation"]["heads"]
    assert {name: next(iter(v["threshold"])) for name, v in gate.items()} == {
        "mlm": "top1_agreement", "topic": "label_agreement", "verbs": "token_agreement", "sim": "mean_cosine",
        "rr": "order_agreement"}
    assert all(v["passed"] for v in gate.values())
    # read at the length it was trained at (the tiny model has 66 positions; training took 32 tokens)
    assert m["tokenizer"]["max_length"] == FAST["max_length"] < 66
    assert m["source"]["training"]["tasks"][0]["name"] == "topic"
    assert m["source"]["training"] == json.loads((model_dir / "training.json").read_text())


def test_the_artifact_answers_as_the_trained_model(trained):
    import onnxruntime as ort

    model_dir, art = trained
    model, tok, _ = load_trained(model_dir)
    model.eval()
    texts = SENTENCES[:6]
    enc = tok(texts, texts[::-1], padding=True, return_tensors="np")
    feeds = {k: v.astype(np.int64) for k, v in enc.items()}
    session = ort.InferenceSession(str(art / "model.onnx"))
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()}), strict=True))
    batch = {k: torch.from_numpy(v) for k, v in feeds.items()}
    with torch.no_grad():
        hidden = model.encode(batch)[0]
        for name, output in (("topic", "topic_logits"), ("verbs", "verbs_logits"), ("sim", "sim_embedding"),
                             ("rr", "rr_logits")):
            want = model.head(name, hidden, batch["attention_mask"]).numpy()
            np.testing.assert_allclose(got[output], want, rtol=1e-5, atol=1e-4, err_msg=name)


def test_heads_picks_a_subset(trained, tmp_path):
    model_dir, _ = trained
    assert main(["run", str(model_dir), "--heads", "sim,topic", "--fp32", "--out", str(tmp_path / "art"),
                 "--no-bench", "--n-validate", "32"]) == 0
    m = json.loads((tmp_path / "art" / "manifest.json").read_text())
    assert [h["name"] for h in m["heads"]] == ["sim", "topic"]


def test_task_gates_judge_several_heads_of_one_artifact(trained, tmp_path, capsys):
    """A gate of every kind, each on its own head of the multi-head artifact: fp32 keeps every task; a gate
    that asks for a gain fails the run, naming its head and figures, and writes nothing."""
    model_dir, _ = trained
    data = model_dir.parent  # build_trained wrote the training files here
    gates = [f"token-classification:{data / 'verbs.jsonl'}", f"classification:{data / 'topic.jsonl'}:head=topic",
             f"retrieval:{data / 'pairs.jsonl'}@0.5", "fill-mask"]
    out = tmp_path / "art"
    assert main(["run", str(model_dir), "--fp32", "--out", str(out), "--no-bench", "--n-validate", "32",
                 *[a for g in gates for a in ("--gate", g)]]) == 0
    v = json.loads((out / "manifest.json").read_text())["validation"]
    assert [(g["kind"], g["head"], g["passed"]) for g in v["task_gates"]] == [
        ("token-classification", "verbs", True), ("classification", "topic", True), ("retrieval", "sim", True),
        ("fill-mask", "mlm", True)]
    assert v["task_gates"][0]["items"] > 300  # words: every word of the 96 texts
    assert {n for n, h in v["heads"].items() if h.get("judged_by") == "task gates"} == {"verbs", "topic", "sim", "mlm"}
    assert "judged_by" not in v["heads"]["rr"] and v["heads"]["rr"]["passed"]  # no gate: agreement decides
    for g in v["task_gates"]:
        for figures in g["metrics"].values():
            assert figures["change_points"] == pytest.approx(0, abs=1e-4)
    capsys.readouterr()

    failed = tmp_path / "failed"
    assert main(["run", str(model_dir), "--fp32", "--out", str(failed), "--no-bench", "--n-validate", "32",
                 "--gate", f"token-classification:{data / 'verbs.jsonl'}@-1", "--gate", "fill-mask"]) == 2
    err = capsys.readouterr().err
    assert "task gate token-classification:" in err and "on head verbs: accuracy" in err and "fill-mask@1" not in err
    assert not failed.exists()


def test_the_engine_serves_the_embedding_and_the_classifier_of_one_artifact(trained, tmp_path):
    from compress.catalog import ModelEntry
    from serve.models import prepare_model
    from tests.serve.engine.test_engine import _started

    model_dir, art = trained
    entry = ModelEntry(name="tt", source=str(model_dir), artifact=str(art),
                       heads=[{"name": "mlm"}, {"name": "topic"}, {"name": "verbs"}, {"name": "sim"}, {"name": "rr"}],
                       serve={"threads": 1})
    served = prepare_model(entry, tmp_path, compress_missing=False)
    model, tok, _ = load_trained(model_dir)
    model.eval()
    texts = SENTENCES[:4]

    async def run():
        engine, _ = await _started(served)
        try:
            return await asyncio.gather(engine.infer("embedding", "tt:sim", texts, {}),
                                        engine.infer("classification", "tt:topic", texts, {"top_k": None}))
        finally:
            await engine.stop()

    vectors, labels = asyncio.run(run())
    for text, vec, result in zip(texts, vectors.results, labels.results, strict=True):
        batch = {k: v for k, v in tok([text], return_tensors="pt").items()}
        with torch.no_grad():
            hidden = model.encode(batch)[0]
            want = model.head("sim", hidden, batch["attention_mask"])[0].numpy()
            probs = model.head("topic", hidden, batch["attention_mask"]).softmax(-1)[0].numpy()
        np.testing.assert_allclose(vec, want, atol=1e-4)
        got = [result["scores"][result["labels"].index(lab)] for lab in ("money", "other")]
        np.testing.assert_allclose(got, probs, atol=1e-4)


def test_a_recipe_with_train_trains_then_compresses_and_reuses_the_trained_model(tiny, data, tmp_path, capsys):
    import yaml

    from compress.catalog import load_catalog
    from serve.config import ConfigError
    from serve.models import compress_entry

    models = tmp_path / "models.yaml"
    recipe = {"method": "fp32", "validation": {"n": 32},
              "train": {"tasks": [{"name": "topic", "kind": "classification", "data": str(data["classification"])}],
                        **{**FAST, "steps": 6}}}
    models.write_text(yaml.safe_dump({"models": [{"name": "tt", "source": str(tiny("bert", "fill-mask")),
                                                  "recipe": recipe}]}))
    art = tmp_path / "art"
    for _ in range(2):
        assert main(["run", "tt", "--models", str(models), "--out", str(art), "--force", "--no-bench"]) == 0
    err = capsys.readouterr().err
    assert err.count("training 1 task(s) for 6 steps") == 1 and "reusing the trained model" in err
    m = json.loads((art / "manifest.json").read_text())
    assert [h["name"] for h in m["heads"]] == ["mlm", "topic"]
    assert m["recipe"]["train"]["tasks"][0]["name"] == "topic"
    with pytest.raises(ConfigError, match="make it with `compress run tt`"):
        compress_entry(load_catalog(models).get("tt"), tmp_path / "missing")


def test_train_does_not_combine_with_prune():
    from pydantic import ValidationError

    from compress.recipe import Recipe

    with pytest.raises(ValidationError, match="adapt: and prune: do not take"):
        Recipe.model_validate({"method": "int8", "prune": {"fraction": 0.3},
                               "train": {"tasks": [{"name": "a", "kind": "mlm", "data": "auto"}]}})


def test_a_sparse_head_joins_a_trained_directorys_heads(trained, tmp_path):
    """--heads mlm,splade,topic on a `compress train` directory: the recorded heads plus SPLADE from the LM head."""
    import onnxruntime as ort

    from compress.data import encode
    from compress.validate import top_overlap
    from tests.conftest import splade_reference

    model_dir, _ = trained
    out = tmp_path / "art"
    assert main(["run", str(model_dir), "--heads", "mlm,splade,topic", "--fp32", "--out", str(out), "--no-bench",
                 "--n-validate", "32", "--threads", "1"]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert [(h["name"], h["task"]) for h in m["heads"]] == [
        ("mlm", "fill-mask"), ("topic", "classification"), ("splade", "sparse-embedding")]
    assert m["validation"]["heads"]["splade"]["passed"]
    model, tok, _ = load_trained(model_dir)
    enc = encode(tok, SENTENCES[:5], 32)
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["splade_sparse"], {i.name: enc[i.name] for i in session.get_inputs()})[0]
    want = splade_reference(model.model.eval(), enc)
    assert top_overlap(want, got).min() >= 0.95
