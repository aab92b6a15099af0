"""Backends and the request side of a model on tiny random BERTs, in process (no server)."""

from __future__ import annotations

import numpy as np
import pytest

from serve.engine.batch import pad_batch
from tests.conftest import SENTENCES


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
    enc = pad_batch(ids, spec.pad_id, onnx.input_names)
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
    enc = pad_batch(ids, ref.spec.pad_id, backend.input_names)
    a, b = OnnxBackend(ref.spec)(enc), backend(enc)
    assert np.corrcoef(a["mask_logits"].ravel(), b["mask_logits"].ravel())[0, 1] >= 0.95


def test_too_long_input_is_refused_or_truncated(tiny_models):
    from serve.errors import ServeError

    model = tiny_models["classification"]
    long_text = " ".join(["the"] * 200)
    with pytest.raises(ServeError) as exc:
        model.tokenize([long_text])
    assert exc.value.status_code == 413 and f"at most {model.max_length}" in exc.value.message
    model.spec.options = model.spec.options.model_copy(update={"truncate": True})
    try:
        assert len(model.tokenize([long_text])[0]) == model.max_length
    finally:
        model.spec.options = model.spec.options.model_copy(update={"truncate": False})
