from __future__ import annotations

import pytest
import torch

from compress import CompressError
from compress.sources import load_model


@pytest.mark.parametrize("family", ["bert", "distilbert", "roberta", "electra"])
@pytest.mark.parametrize("task", ["fill-mask", "classification", "embedding"])
def test_task_is_read_off_the_weights(tiny, family, task):
    loaded = load_model(str(tiny(family, task)))
    assert loaded.task == task
    assert loaded.family == family
    if task == "classification":
        assert loaded.labels is not None and len(loaded.labels) == 3


def test_state_dict_with_config_beside_it(tiny):
    d = tiny("bert", "fill-mask", save="bin")
    loaded = load_model(str(d / "weights.bin"))
    assert loaded.task == "fill-mask"
    assert loaded.source.kind == "state-dict"
    assert len(loaded.source.sha256) == 64


def test_extra_heads_are_reported_and_selectable(tiny):
    d = tiny("bert", "fill-mask", save="bin")
    sd = torch.load(d / "weights.bin", weights_only=True)
    sd["cls.species.weight"] = torch.randn(6, 64)
    sd["cls.species.bias"] = torch.randn(6)
    sd["cls.chain.weight"] = torch.randn(2, 64)
    sd["cls.chain.bias"] = torch.randn(2)
    sd["bert.pooler.dense.weight"] = torch.randn(64, 64)  # heads on the pooled output, as in AntiBERTy
    sd["bert.pooler.dense.bias"] = torch.randn(64)
    torch.save(sd, d / "weights.bin")

    mlm = load_model(str(d / "weights.bin"))
    assert mlm.task == "fill-mask"
    assert mlm.extra_heads == {"cls.species": 6, "cls.chain": 2}
    assert any("cls.species (6 outputs)" in n for n in mlm.notes)

    labels = ["a", "b", "c", "d", "e", "f"]
    clf = load_model(str(d / "weights.bin"), head="species", labels=labels)
    assert clf.task == "classification"
    assert clf.labels == labels
    assert torch.equal(clf.model.classifier.weight, sd["cls.species.weight"])

    with pytest.raises(CompressError, match="6 outputs but 2 labels"):
        load_model(str(d / "weights.bin"), head="species", labels=["x", "y"])
    with pytest.raises(CompressError, match="no single head named 'nope'"):
        load_model(str(d / "weights.bin"), head="nope")


def test_pickle_needs_the_flag(tiny):
    d = tiny("bert", "fill-mask", save="pickle")
    with pytest.raises(CompressError, match="--trust-pickle"):
        load_model(str(d / "whole.pt"))
    loaded = load_model(str(d / "whole.pt"), trust_pickle=True)
    assert loaded.source.kind == "pickle"
    assert loaded.task == "fill-mask"


def test_missing_config_says_which_flag(tiny):
    d = tiny("bert", "fill-mask", save="bin")
    (d / "config.json").unlink()
    with pytest.raises(CompressError, match="--config"):
        load_model(str(d / "weights.bin"))


def test_config_that_does_not_fit(tiny, tmp_path):
    d = tiny("bert", "fill-mask", save="bin")
    other = tiny("distilbert", "fill-mask")
    with pytest.raises(CompressError, match="config does not fit the weights"):
        load_model(str(d / "weights.bin"), config=str(other / "config.json"))


def test_wrong_task_for_the_weights(tiny):
    with pytest.raises(CompressError, match=r"pass --task|no classifier"):
        load_model(str(tiny("bert", "embedding")), task="fill-mask")


def test_missing_file_and_unknown_hub_id():
    with pytest.raises(CompressError, match="not found"):
        load_model("./nope/model.bin")
    with pytest.raises(CompressError, match="could not be fetched"):
        load_model("no-such-org/no-such-model")
