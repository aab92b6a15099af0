"""`compress adapt` on tiny random models: it learns the new domain, mixes replay at the asked ratio,
never trains on the held-out split, resumes from its checkpoint, and refuses bad input."""

from __future__ import annotations

import json

import pytest
import torch

from compress import CompressError
from compress.adapt import AdaptOptions, adapt_model
from compress.adapt.data import MixedBatches, load_texts, normalize
from compress.adapt.workflow import checkpoint_file, load_source
from compress.artifact import read_manifest
from compress.cli import main
from tests.conftest import SENTENCES, WORDS

# The new domain: word cycles the random model has never seen; held-out lines share the pattern.
CYCLE = WORDS[:12]
NEW = [" ".join(CYCLE[(i + j) % len(CYCLE)] for j in range(10 + i % 5)) for i in range(40)]
FAST = dict(steps=30, batch_size=8, lr=3e-3, warmup=0.1, eval_every=10, n_eval=16, max_length=32)


@pytest.fixture
def files(tmp_path):
    """(new-domain file, replay file)."""
    new, old = tmp_path / "new.txt", tmp_path / "old.txt"
    new.write_text("\n".join(NEW) + "\n")
    old.write_text("\n".join(SENTENCES) + "\n")
    return new, old


def _opts(new, old, **kw) -> AdaptOptions:
    return AdaptOptions(**{"data": str(new), "replay": str(old), "replay_ratio": 0.25, **FAST, **kw})


def test_adaptation_lowers_held_out_loss_and_writes_a_loadable_model(tiny, files, tmp_path):
    from transformers import AutoModelForMaskedLM

    new, old = files
    out = tmp_path / "adapted"
    record = adapt_model(str(tiny("bert", "fill-mask")), out, _opts(new, old))
    assert record["after"]["new"]["loss"] < 0.8 * record["before"]["new"]["loss"]
    assert record["data"]["sha256"] and record["replay"]["ratio"] == 0.25 and record["steps"] == 30
    report = json.loads((out / "adapt_report.json").read_text())
    assert [e["step"] for e in report["evals"]] == [0, 10, 20, 30]
    assert (out / "adapt_report.png").stat().st_size > 0 and "top-1" in (out / "adapt_report.md").read_text()
    assert AutoModelForMaskedLM.from_pretrained(str(out)).config.vocab_size > 0
    loaded = load_source(str(out))  # what `compress run DIR` loads, record included
    assert loaded.task == "fill-mask" and loaded.source.adaptation == json.loads((out / "adaptation.json").read_text())
    assert not checkpoint_file(out, _opts(new, old)).exists()
    assert main(["run", str(out), "--fp32", "--no-bench", "--threads", "1", "--validate", str(old),
                 "--out", str(tmp_path / "artifact")]) == 0
    assert read_manifest(tmp_path / "artifact").source["adaptation"]["data"]["sha256"] == record["data"]["sha256"]


def test_residue_lines_raw_or_spaced_are_the_same_text(tmp_path):
    from transformers import BertTokenizerFast

    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
                                                   *"ACDEFGHIKLMNPQRSTVWY"]) + "\n")
    tok = BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"), do_lower_case=False)
    assert normalize(["EVQLV", "E V Q L V", "EVQ[MASK]V"], tok) == ["E V Q L V", "E V Q [MASK] V"]
    assert tok("E V Q L V")["input_ids"] == tok.convert_tokens_to_ids(["[CLS]", *"EVQLV", "[SEP]"])


@pytest.mark.parametrize(("ratio", "per_batch"), [(0.25, 2), (0.5, 4), (0.0, 0)])
def test_replay_is_mixed_at_the_asked_ratio(files, ratio, per_batch):
    new, old = files
    opts = _opts(new, old, replay_ratio=ratio)
    texts = load_texts(opts, _tokenizer(files))
    batches = MixedBatches(texts.train, texts.replay, 8 - opts.replay_per_batch, opts.replay_per_batch)
    replayed = [len(batches.texts(s)[1]) for s in range(50)]
    assert replayed == [per_batch] * 50
    assert all(t in set(texts.replay) for s in range(50) for t in batches.texts(s)[1])
    assert all(t in set(texts.train) for s in range(50) for t in batches.texts(s)[0])


def _tokenizer(files):
    from tests.conftest import _wordpiece_tokenizer

    return _wordpiece_tokenizer(files[0].parent)


def test_held_out_texts_never_reach_training(files):
    new, old = files
    opts = _opts(new, old, held_out_fraction=0.25)
    texts = load_texts(opts, _tokenizer(files))
    batches = MixedBatches(texts.train, texts.replay, 6, 2)
    seen = {t for s in range(200) for part in batches.texts(s) for t in part}
    assert len(texts.held_out) == 10 and seen.isdisjoint(texts.held_out)
    assert seen.isdisjoint(texts.original_held_out)
    assert set(texts.train) <= seen  # every training text is used: the split, not the sampler, keeps them out


def test_resume_continues_from_the_checkpoint(tiny, files, tmp_path, monkeypatch):
    import compress.adapt.train as train_mod

    new, old = files
    src, ckpt = str(tiny("bert", "fill-mask")), tmp_path / "adapt.pt"
    opts = _opts(new, old, checkpoint=str(ckpt), checkpoint_every=10)
    whole = adapt_model(src, tmp_path / "whole", opts.model_copy(update={"checkpoint": str(tmp_path / "w.pt")}))

    calls = {"n": 0}
    real = train_mod.collate

    def interrupt_at_step_15(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 16:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(train_mod, "collate", interrupt_at_step_15)
    with pytest.raises(KeyboardInterrupt):
        adapt_model(src, tmp_path / "resumed", opts)
    assert torch.load(ckpt, weights_only=True)["step"] == 10 and not (tmp_path / "resumed").exists()
    monkeypatch.setattr(train_mod, "collate", real)
    resumed = adapt_model(src, tmp_path / "resumed", opts)
    assert resumed["resumed_from"] == 10
    assert resumed["after"]["new"]["loss"] == pytest.approx(whole["after"]["new"]["loss"], rel=1e-4)


def test_add_mlm_head_trains_an_encoder_without_one(tiny, files, tmp_path):
    new, old = files
    src = str(tiny("bert", "embedding"))
    with pytest.raises(CompressError, match="--add-mlm-head"):
        adapt_model(src, tmp_path / "a", _opts(new, old))
    lines: list[str] = []
    record = adapt_model(src, tmp_path / "b", _opts(new, old, add_mlm_head=True), progress=lines.append)
    assert record["after"]["new"]["loss"] < record["before"]["new"]["loss"]
    assert any("ETA" in line for line in lines) and any("held-out top-1 at step 30" in line for line in lines)
    loaded = load_source(str(tmp_path / "b"))
    model = loaded.model
    assert loaded.task == "fill-mask"
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def test_bad_input_errors(tiny, files, tmp_path, capsys):
    new, old = files
    src = str(tiny("bert", "fill-mask"))
    (tmp_path / "taken").mkdir()
    cases = [
        (["--data", str(tmp_path / "missing.txt")], "not found"),
        (["--data", str(new), "--replay-ratio", "1.5"], "replay_ratio"),
        (["--data", str(new), "--add-mlm-head"], "already has a masked-LM head"),
        (["--data", str(new), "--steps", "0"], "steps"),
    ]
    for args, message in cases:
        assert main(["adapt", src, *args, "--out", str(tmp_path / "x")]) == 2
        assert message in capsys.readouterr().err
    assert main(["adapt", src, "--data", str(new), "--out", str(tmp_path / "taken")]) == 2
    assert "--force" in capsys.readouterr().err
    one = tmp_path / "one.txt"
    one.write_text("the a of\n")
    with pytest.raises(CompressError, match="too few"):
        adapt_model(src, tmp_path / "y", _opts(one, old))


def test_a_recipe_adapts_first_and_reuses_the_adapted_model_while_it_fits(tiny, files, tmp_path):
    """models.yaml's `adapt:` step: compress run adapts, then compresses the adapted model; a rerun with
    the same step reuses it, a changed step trains again."""
    from compress.adapt.workflow import adapted_model_dir
    from compress.pipeline import compress_model
    from compress.recipe import Recipe
    from compress.sources import load_model

    new, old = files
    src, out = tiny("bert", "fill-mask"), tmp_path / "art"

    def run(**adapt) -> dict:
        recipe = Recipe.model_validate({"method": "fp32", "adapt": _opts(new, old, **adapt).model_dump(),
                                        "validation": {"data": str(old)}})
        return compress_model(load_model(str(src)), out, name="t", recipe=recipe, bench=False, threads=1,
                              force=True).model_dump()

    m = run()
    record = adapted_model_dir(out) / "adaptation.json"
    assert m["source"]["adaptation"] == json.loads(record.read_text()) and m["recipe"]["adapt"]["steps"] == 30
    assert m["source"]["path"].startswith(str(adapted_model_dir(out)))
    stamp = record.stat().st_mtime_ns
    run()
    assert record.stat().st_mtime_ns == stamp  # the same step: the adapted model is reused
    assert run(steps=20)["source"]["adaptation"]["steps"] == 20  # another step: adapted again


def test_a_recipe_adapts_masked_lms_only(tiny, files, tmp_path):
    from compress.pipeline import compress_model
    from compress.recipe import Recipe
    from compress.sources import load_model

    new, old = files
    recipe = Recipe.model_validate({"method": "fp32", "adapt": _opts(new, old).model_dump()})
    with pytest.raises(CompressError, match="add-mlm-head"):
        compress_model(load_model(str(tiny("bert", "embedding"))), tmp_path / "a", name="t", recipe=recipe)
    assert not (tmp_path / "a").exists()
