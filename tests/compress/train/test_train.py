"""`compress train` on tiny random models: every kind learns, held-out data never reaches training,
several tasks share one encoder, kept heads stay where they were, and a run resumes after Ctrl-C."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from compress.train import TaskSpec, TrainOptions, train_model
from compress.train.data import key, load_task
from compress.train.objectives import Objective
from compress.train.sampling import schedule, task_probabilities
from compress.train.store import load_trained, read_heads
from tests.compress.train.conftest import FAST

KINDS = ("classification", "token-classification", "embedding", "rerank", "mlm")


def _opts(tasks: list[str], **kw) -> TrainOptions:
    return TrainOptions(tasks=[TaskSpec.parse(t) for t in tasks], **{**FAST, **kw})


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_lowers_its_held_out_loss(kind, tiny, data, tmp_path):
    source = tiny("bert", "fill-mask")
    opts = _opts([f"t:{kind}:{data[kind]}"], steps=40, probe=False)  # a probe's head starts near its best
    record = train_model(str(source), tmp_path / "out", opts)
    before, after = record["before"]["tasks"]["t"], record["after"]["tasks"]["t"]
    assert after["loss"] < before["loss"]


def test_held_out_examples_never_reach_training(tiny, data, tmp_path, monkeypatch):
    seen: list = []
    original = Objective.step

    def spy(self, model, examples, rng):
        seen.extend(examples)
        return type(self).__mro__[0].__dict__.get("step", original)(self, model, examples, rng)

    from compress.train import objectives

    for cls in objectives.OBJECTIVES.values():
        monkeypatch.setattr(cls, "step", _recording(cls.step, seen))
    opts = _opts([f"topic:classification:{data['classification']}", f"rr:rerank:{data['rerank']}"], steps=30)
    source = tiny("bert", "fill-mask")
    train_model(str(source), tmp_path / "out", opts)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(source))
    held = {key(x) for t in opts.tasks for x in load_task(t, opts, tok).held_out}
    assert seen and held
    assert not held & {key(x) for x in seen}


def _recording(step, seen):
    def record(self, model, examples, rng):
        seen.extend(examples)
        return step(self, model, examples, rng)
    return record


def test_a_held_out_file_removes_its_examples_from_training(tiny, data, tmp_path):
    from transformers import AutoTokenizer

    lines = data["classification"].read_text().splitlines()
    held = tmp_path / "held.jsonl"
    held.write_text("\n".join(lines[:10]) + "\n")
    spec = TaskSpec.parse(f"topic:classification:{data['classification']}").model_copy(update={"held_out": str(held)})
    opts = TrainOptions(tasks=[spec], **FAST)
    task = load_task(spec, opts, AutoTokenizer.from_pretrained(str(tiny("bert", "fill-mask"))))
    assert len(task.held_out) == 10
    assert len(task.train) == len(lines) - 10
    assert not {key(x) for x in task.train} & {key(x) for x in task.held_out}


@pytest.mark.parametrize("sampling", ["proportional", "uniform", "temperature"])
def test_task_sampling_follows_the_asked_shares(sampling):
    sizes = [400, 100, 25]
    opts = _opts(["a:mlm"], sampling=sampling, temperature=2.0)
    expected = {"proportional": np.array(sizes) / 525, "uniform": np.full(3, 1 / 3),
                "temperature": np.sqrt(sizes) / np.sqrt(sizes).sum()}[sampling]
    assert np.allclose(task_probabilities(sizes, opts), expected)
    drawn = np.bincount(schedule(sizes, 6000, opts), minlength=3) / 6000
    assert np.abs(drawn - expected).max() < 0.02


def test_several_tasks_share_one_encoder_in_one_directory(tiny, data, tmp_path):
    from transformers import AutoModelForMaskedLM

    tasks = [f"topic:classification:{data['classification']}", f"verbs:token-classification:"
             f"{data['token-classification']}", f"sim:embedding:{data['embedding']}", f"mlm:mlm:{data['mlm']}"]
    out = tmp_path / "models" / "out"  # a parent that does not exist yet
    record = train_model(str(tiny("bert", "fill-mask")), out, _opts(tasks, steps=20))
    heads = {h.name: h for h in read_heads(out)}
    assert {n: h.kind for n, h in heads.items()} == {"mlm": "fill-mask", "topic": "classification",
                                                     "verbs": "token-classification", "sim": "embedding"}
    assert heads["topic"].labels == ["money", "other"] and heads["verbs"].labels == ["O", "V"]
    assert sum(t["steps"] for t in record["tasks"]) == 20
    assert AutoModelForMaskedLM.from_pretrained(str(out)) is not None
    model, _, _ = load_trained(out)
    assert set(model.linears) == {"topic", "verbs"}
    for name in ("train_report.md", "train_report.json", "training.json", "modules.json"):
        assert (out / name).is_file()
    assert json.loads((out / "training.json").read_text())["tasks"][0]["data"][0]["sha256"]


def _embedder_cosine(source, out, texts) -> float:
    """Mean cosine of ``out``'s embedding head to the source embedder's mean-pooled output."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(source))
    enc = tok(texts, padding=True, return_tensors="pt")
    mask = enc["attention_mask"].unsqueeze(-1).float()
    with torch.no_grad():
        a = (AutoModel.from_pretrained(str(source))(**enc)[0] * mask).sum(1) / mask.sum(1)
        trained, _, _ = load_trained(out)
        trained.eval()
        b = trained.head("embedding", trained.encode(dict(enc))[0], enc["attention_mask"])
    return float(torch.nn.functional.cosine_similarity(a, b).mean())


def test_keep_heads_keeps_an_embedders_output(tiny, data, tmp_path):
    source = tiny("bert", "embedding")
    texts = [x["text"] for x in map(json.loads, data["classification"].read_text().splitlines())][:24]
    task = [f"topic:classification:{data['classification']}"]
    train_model(str(source), tmp_path / "free", _opts(task, steps=30, lr=5e-3))
    record = train_model(str(source), tmp_path / "kept", _opts(task, steps=30, lr=5e-3, keep_heads=["embedding"],
                                                               keep_weight=5.0))
    free, kept = _embedder_cosine(source, tmp_path / "free", texts), _embedder_cosine(source, tmp_path / "kept", texts)
    assert kept > free
    assert kept > 0.95
    assert record["after"]["kept"]["embedding"] > 0.95


def test_keep_heads_keeps_a_checkpoints_linear_heads(tiny, data, tmp_path):
    from tests.conftest import add_linear_heads

    source = tiny("bert", "fill-mask", save="bin")
    add_linear_heads(source / "weights.bin")
    task = [f"verbs:token-classification:{data['token-classification']}"]
    kept = train_model(str(source / "weights.bin"), tmp_path / "kept",
                       _opts(task, steps=30, lr=5e-3, keep_heads=["species", "chain"], keep_weight=5.0))
    free = train_model(str(source / "weights.bin"), tmp_path / "free", _opts(task, steps=30, lr=5e-3))
    assert {h.name for h in read_heads(tmp_path / "kept")} == {"mlm", "species", "chain", "verbs"}
    assert min(kept["after"]["kept"].values()) >= 0.9
    assert not free["after"]["kept"]  # nothing kept, nothing scored


def test_an_interrupted_run_resumes_from_its_checkpoint(tiny, data, tmp_path):
    source = tiny("bert", "fill-mask")
    opts = _opts([f"topic:classification:{data['classification']}", f"mlm:mlm:{data['mlm']}"], steps=20)
    lines: list[str] = []

    def stop_at_step_10(line: str) -> None:
        lines.append(line)
        if line.startswith("train step 10/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_model(str(source), tmp_path / "out", opts, progress=stop_at_step_10)
    assert not (tmp_path / "out").exists()
    assert (tmp_path / ".out.train-checkpoint.pt").is_file()
    resumed = train_model(str(source), tmp_path / "out", opts)
    train_model(str(source), tmp_path / "whole", opts)
    assert resumed["resumed_from"] == 5  # the last checkpoint before the interruption
    assert not (tmp_path / ".out.train-checkpoint.pt").exists()
    a, b = load_trained(tmp_path / "out")[0], load_trained(tmp_path / "whole")[0]
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.allclose(x, y, atol=1e-5), name


def test_keep_on_holds_a_trained_embedder_near_the_original_on_other_texts(tiny, data, tmp_path):
    source = tiny("bert", "embedding")
    general = tmp_path / "general.txt"
    general.write_text("\n".join(" ".join(reversed(s.split()[:4])) for s in _sentences()) + "\n")
    task = [f"embedding:embedding:{data['embedding']}"]
    train_model(str(source), tmp_path / "free", _opts(task, steps=30, lr=5e-3))
    record = train_model(str(source), tmp_path / "kept", _opts(task, steps=30, lr=5e-3, keep_heads=["embedding"],
                                                               keep_on=str(general), keep_weight=5.0))
    texts = general.read_text().splitlines()[:24]
    free, kept = _embedder_cosine(source, tmp_path / "free", texts), _embedder_cosine(source, tmp_path / "kept", texts)
    assert kept > free
    assert record["after"]["tasks"]["embedding"]["loss"] < record["before"]["tasks"]["embedding"]["loss"]


def test_keep_on_leaves_out_texts_of_held_out_examples(tiny, data, tmp_path):
    from transformers import AutoTokenizer

    from compress.train.workflow import _keep_texts

    opts = _opts([f"topic:classification:{data['classification']}"], keep_heads=["mlm"])
    tok = AutoTokenizer.from_pretrained(str(tiny("bert", "fill-mask")))
    task = load_task(opts.tasks[0], opts, tok)
    general = tmp_path / "general.txt"
    general.write_text("\n".join([task.held_out[0].text, task.train[0].text, "the bank said"]) + "\n")
    kept = _keep_texts(opts.model_copy(update={"keep_on": str(general)}), tok, [task])
    assert kept == [task.train[0].text, "the bank said"]


def _sentences() -> list[str]:
    from tests.conftest import SENTENCES

    return SENTENCES


def test_blend_averages_the_encoder_with_the_original_and_leaves_new_heads_as_trained(tiny, data, tmp_path):
    source = tiny("bert", "fill-mask")
    task = [f"topic:classification:{data['classification']}"]
    opts = _opts(task, steps=20, lr=5e-3)
    train_model(str(source), tmp_path / "full", opts)
    record = train_model(str(source), tmp_path / "half", opts.model_copy(update={"blend": 0.5}))
    from transformers import AutoModelForMaskedLM

    first = AutoModelForMaskedLM.from_pretrained(str(source)).state_dict()
    full, half = load_trained(tmp_path / "full")[0].state_dict(), load_trained(tmp_path / "half")[0].state_dict()
    moved = [k for k in half if k.startswith("model.") and k[len("model."):] in first
             and half[k].is_floating_point() and not torch.equal(full[k], first[k[len("model."):]])]
    assert moved
    for k in moved:
        assert torch.allclose(half[k], (full[k] + first[k[len("model."):]]) / 2, atol=1e-5), k
    heads = [k for k in half if k.startswith("linears.topic")]
    assert heads and all(torch.equal(half[k], full[k]) for k in heads)
    assert record["after"]["blend"] == 0.5  # the figures after blending are the ones reported


@pytest.mark.parametrize("kind", ["classification", "token-classification"])
def test_a_new_classifier_starts_as_a_linear_probe_on_the_frozen_encoder(kind, tiny, data, tmp_path):
    source = tiny("bert", "fill-mask")
    task = [f"t:{kind}:{data[kind]}"]
    probed = train_model(str(source), tmp_path / "probed", _opts(task, steps=1, lr=1e-9, head_lr=1e-9))
    random = train_model(str(source), tmp_path / "random", _opts(task, steps=1, lr=1e-9, head_lr=1e-9, probe=False))
    start, baseline = probed["before"]["tasks"]["t"], random["before"]["tasks"]["t"]
    assert start["loss"] < baseline["loss"] - 0.05
    assert start["accuracy"] >= baseline["accuracy"]


def test_fit_linear_separates_what_a_linear_layer_can():
    from compress.train.probe import fit_linear

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 16, generator=gen) * 0.01  # tiny features, as a mean over tokens can be
    y = (x[:, 0] + x[:, 1] > 0).long() + 2 * (x[:, 2] > 0).long()
    linear = torch.nn.Linear(16, 4)
    accuracy = fit_linear(linear, x, y)
    assert accuracy >= 0.95  # a regularised fit: a few points on the class boundaries may fall either side
    assert float((linear(x).argmax(-1) == y).float().mean()) == accuracy  # the raw features' logits


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_token_classification_takes_words_one_by_one_in_either_vocabulary(family, tiny, data, tmp_path):
    """A WordPiece tokenizer made from a bare vocab.txt (AntiBERTy's) is used as it is; a byte-level BPE one is
    loaded again with add_prefix_space, so each word of a tagged line is encoded as it is in running text."""
    from transformers import AutoTokenizer

    from compress.sources import load_tokenizer
    from compress.train.objectives import TokenClassification

    source = tiny(family, "fill-mask")
    tok = (AutoTokenizer.from_pretrained(str(source)) if family == "roberta"
           else load_tokenizer(source / "vocab.txt", None))  # type: ignore[arg-type]
    opts = _opts([f"t:token-classification:{data['token-classification']}"])
    objective = TokenClassification(load_task(opts.tasks[0], opts, tok), tok, opts)
    assert (objective.tok is tok) == (family == "bert")
    words = ["market", "bank", "profit"]
    ids = objective.tok(words, is_split_into_words=True)["input_ids"]
    assert ids == objective.tok(" ".join(words))["input_ids"]
