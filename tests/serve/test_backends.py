"""Backends and the worker's batching on a tiny random BERT, in process (no server)."""

from __future__ import annotations

import numpy as np
import pytest

from compress.catalog import ModelEntry
from serve.apis import build_apis
from serve.apis.base import pad_batch
from serve.models import prepare_model
from tests.conftest import SENTENCES, build_tiny


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A tiny fill-mask BERT and a tiny classifier, compressed (fp32) the way `serve` does on first start."""
    tmp = tmp_path_factory.mktemp("tiny")
    out = {}
    for task in ("fill-mask", "classification"):
        build_tiny(tmp / task, "bert", task)
        entry = ModelEntry(name=f"tiny-{task}", source=str(tmp / task), task=task, recipe={"method": "fp32"},
                           artifact=str(tmp / f"art-{task}"), serve={"max_batch_size": 3, "threads": 1})
        out[task] = prepare_model(entry, tmp)
    # A bitsandbytes recipe makes a `backend: torch` artifact; serve follows the manifest.
    from compress.pipeline import RunOptions, compress_model
    from compress.sources import load_model

    compress_model(load_model(str(tmp / "fill-mask")), tmp / "art-bnb", name="tiny-bnb",
                   opts=RunOptions(method="bnb-int8", gate=False, bench=False, n_validate=32))
    entry = ModelEntry(name="tiny-bnb", source=str(tmp / "fill-mask"), task="fill-mask",
                       artifact=str(tmp / "art-bnb"), serve={"threads": 1})
    out["bnb"] = prepare_model(entry, tmp)
    return out


def _encodings(model, n: int = 5):
    texts = [s.replace(s.split()[1], "[MASK]", 1) for s in SENTENCES[:n]]
    ids = model.tokenize(texts)
    return texts, ids


@pytest.mark.parametrize(("precision", "min_corr"), [("fp32", 0.9999), ("bnb-int8", 0.95), ("bnb-nf4", 0.8)])
def test_torch_backend_matches_onnx(tiny_models, precision, min_corr):
    if precision != "fp32":
        pytest.importorskip("bitsandbytes")
    from serve.backends.onnx import OnnxBackend
    from serve.backends.torch import TorchBackend

    model = tiny_models["fill-mask"]
    _, ids = _encodings(model)
    spec = model.spec
    onnx = OnnxBackend(spec)
    torch_spec = type(spec)(**{**spec.__dict__, "backend": "torch", "from_source": True, "options":
                               spec.options.model_copy(update={"backend": "torch", "precision": precision})})
    torch_backend = TorchBackend(torch_spec)
    assert precision in torch_backend.description
    enc, _ = pad_batch(ids, spec.pad_id, onnx.input_names)
    a, b = onnx(enc), torch_backend(enc)
    assert np.array_equal(a["mask_positions"], b["mask_positions"])
    corr = np.corrcoef(a["mask_logits"].ravel(), b["mask_logits"].ravel())[0, 1]
    assert corr >= min_corr


def test_torch_artifact_follows_its_manifest(tiny_models):
    from serve.backends import load_backend
    from serve.backends.onnx import OnnxBackend

    bnb, ref = tiny_models["bnb"], tiny_models["fill-mask"]
    assert (bnb.spec.backend, bnb.spec.from_source) == ("torch", False)
    backend = load_backend(bnb.spec)
    assert "bnb-int8" in backend.description
    _, ids = _encodings(ref)
    enc, _ = pad_batch(ids, ref.spec.pad_id, backend.input_names)
    a, b = OnnxBackend(ref.spec)(enc), backend(enc)
    assert np.corrcoef(a["mask_logits"].ravel(), b["mask_logits"].ravel())[0, 1] >= 0.95


def test_worker_batches_sorts_and_restores_order(tiny_models):
    """Requests of mixed lengths and models, run in sorted chunks of 3, come back in request order."""
    models = [tiny_models["fill-mask"], tiny_models["classification"]]
    _, apis = build_apis(models)
    fill_api = next(a for a in apis if a.task == "fill-mask")
    cls_api = next(a for a in apis if a.task == "classification")
    fill_api.setup("cpu")
    cls_api.setup("cpu")
    fm = tiny_models["fill-mask"]
    texts, ids = _encodings(fm, 7)
    payloads = [{"model": fm.name, "ids": ids[:2][::-1], "top_k": 3, "rid": "a", "t": 0.0},
                {"model": fm.name, "ids": ids[2:], "top_k": 1, "rid": "b", "t": 0.0}]
    batched = fill_api.predict(payloads)
    alone = [fill_api.predict([{**p, "ids": [seq]}])[0]["items"][0] for p in payloads for seq in p["ids"]]
    flat = [item for out in batched for item in out["items"]]
    assert [len(o["items"]) for o in batched] == [2, 5]
    assert [len(i["ids"][0]) for i in flat] == [3, 3] + [1] * 5
    for got, want in zip(flat, alone, strict=True):
        assert got["ids"] == want["ids"]
        assert np.allclose(got["scores"], want["scores"], atol=1e-5)
    probs = cls_api.predict([{"model": "tiny-classification", "ids": tiny_models["classification"].tokenize(texts),
                              "rid": "c", "t": 0.0}])[0]["items"]
    assert len(probs) == 7 and np.allclose([p.sum() for p in probs], 1)


def test_too_long_input_is_refused_or_truncated(tiny_models):
    from serve.errors import ServeError

    model = tiny_models["classification"]
    long_text = " ".join(["the"] * 200)
    with pytest.raises(ServeError) as exc:
        model.tokenize([long_text])
    assert exc.value.status_code == 413 and f"at most {model.max_length}" in exc.value.detail["message"]
    model.spec.options = model.spec.options.model_copy(update={"truncate": True})
    try:
        assert len(model.tokenize([long_text])[0]) == model.max_length
    finally:
        model.spec.options = model.spec.options.model_copy(update={"truncate": False})
