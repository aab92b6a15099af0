"""The sparse-embedding (SPLADE) head: exported beside the fill-mask head, equal to the PyTorch computation
for every family with an MLM head, and judged by the accuracy gate on its top-32 terms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from compress import CompressError
from compress.artifact import load_artifact
from compress.data import encode, mask_tokens
from compress.export import TaskGraph, export_onnx
from compress.head_graph import load_heads, sparse_vector
from compress.runtime import OnnxRunner
from compress.task_heads import parse_heads
from compress.tasks import FAMILIES
from compress.validate import top_overlap
from tests.conftest import SENTENCES, splade_reference


def test_heads_parse_and_check():
    heads = parse_heads("mlm,splade")
    assert [(h.name, h.task, h.output) for h in heads] == [
        ("mlm", "fill-mask", "mask_logits"), ("splade", "sparse-embedding", "splade_sparse")]
    with pytest.raises(CompressError, match="reads the LM head; list the fill-mask head"):
        parse_heads("species,splade")
    from compress.task_heads import HeadSpec, check_heads

    with pytest.raises(ValueError, match="at most one sparse-embedding head"):
        check_heads([HeadSpec(name="mlm"), HeadSpec(name="splade"), HeadSpec(name="s2", task="sparse-embedding")])
    with pytest.raises(ValueError, match="labels belong to classification heads"):
        check_heads([HeadSpec(name="mlm"), HeadSpec(name="splade", labels=["x"])])


def test_sparse_vector_is_splades_formula_over_real_tokens():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 11, generator=gen) * 3
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    logits[1, 3:] = 50.0  # padding: never counted, however large
    want = torch.stack([torch.log1p(torch.relu(logits[i, : int(mask[i].sum())])).max(0).values for i in range(3)])
    torch.testing.assert_close(sparse_vector(logits, mask), want)


@pytest.mark.parametrize("family", FAMILIES)
def test_exported_sparse_vector_equals_pytorch(family, tiny, tmp_path):
    """Every family with an MLM head: top-32 terms as the PyTorch original's, and fill-mask unchanged."""
    src = tiny(family, "fill-mask")
    mh = load_heads(parse_heads("mlm,splade"), spec=str(src))
    info = export_onnx(mh.graph, tmp_path / "m.onnx")
    assert info["outputs"] == ["mask_logits", "mask_positions", "splade_sparse"]
    tok = mh.loaded.tokenizer
    enc, _ = mask_tokens(encode(tok, SENTENCES[:9], 32), tok, rate=0.3)
    got = OnnxRunner(tmp_path / "m.onnx", threads=1)(enc)
    want = splade_reference(mh.loaded.model, enc)
    assert got["splade_sparse"].shape == (9, mh.loaded.model.config.vocab_size)
    assert top_overlap(want, got["splade_sparse"]).min() >= 0.95
    np.testing.assert_allclose(got["splade_sparse"], want, atol=1e-4)
    fill = TaskGraph(mh.loaded.model, "fill-mask", mask_token_id=tok.mask_token_id)
    with torch.no_grad():
        single = fill(**{k: torch.from_numpy(v) for k, v in enc.items() if k in info["inputs"]})
    np.testing.assert_array_equal(got["mask_positions"], single["mask_positions"].numpy())
    np.testing.assert_allclose(got["mask_logits"], single["mask_logits"].numpy(), atol=1e-4, rtol=1e-4)


def test_top_overlap_counts_nonzero_terms_only():
    ref = np.array([[3.0, 2.0, 1.0, 0.0, 0.0], [0.0] * 5, [1.0, 2.0, 3.0, 4.0, 5.0]])
    cand = np.array([[3.0, 0.0, 1.0, 2.0, 0.0], [1.0] * 5, [5.0, 4.0, 3.0, 2.0, 1.0]])
    np.testing.assert_allclose(top_overlap(ref, cand, k=2), [0.5, 1.0, 0.0])
    np.testing.assert_allclose(top_overlap(ref, cand, k=32), [2 / 3, 1.0, 1.0])


def test_int8_artifact_gates_and_records_the_sparse_head(tiny, texts_file, tmp_path):
    from compress.cli import main

    src = tiny("bert", "fill-mask")
    out = tmp_path / "art"
    assert main(["run", str(src), "--heads", "mlm,splade", "--int8", "--out", str(out), "--validate",
                 str(texts_file), "--no-gate", "--no-bench", "--threads", "1"]) == 0
    m = load_artifact(out).manifest
    assert m.heads is not None and [(h.name, h.task, h.output) for h in m.heads] == [
        ("mlm", "fill-mask", "mask_logits"), ("splade", "sparse-embedding", "splade_sparse")]
    assert m.graph.outputs == ["mask_logits", "mask_positions", "splade_sparse"]
    figures = m.validation["heads"]["splade"]
    assert figures["threshold"] == {"top32_overlap": 0.95}
    assert 0.5 <= figures["min_top32_overlap"] <= figures["top32_overlap"] <= 1
    assert figures["passed"] == (figures["top32_overlap"] >= 0.95)
    assert "head splade" in (out / "report.md").read_text()


def test_a_splade_head_has_no_single_head_entry():
    from compress.catalog import Catalog, ModelEntry, entry_or_head

    catalog = Catalog(models=[ModelEntry(name="ab", source="x", heads=[{"name": "mlm"}, {"name": "splade"}])])
    with pytest.raises(CompressError, match="beside the fill-mask head"):
        entry_or_head(catalog, "ab-splade")


def test_outputs_are_named_as_computed_whatever_the_head_order(tiny, tmp_path):
    """The exporter names outputs by position: the LM head's outputs come first, whatever order the heads are in."""
    from tests.conftest import add_linear_heads

    src = tiny("bert", "fill-mask", save="bin")
    add_linear_heads(src / "weights.bin")
    mh = load_heads(parse_heads("chain,splade,mlm"), spec=str(src / "weights.bin"))
    info = export_onnx(mh.graph, tmp_path / "m.onnx")
    assert info["outputs"] == ["mask_logits", "mask_positions", "splade_sparse", "chain_logits"]
    tok = mh.loaded.tokenizer
    enc, _ = mask_tokens(encode(tok, SENTENCES[:4], 32), tok, rate=0.3)
    got = OnnxRunner(tmp_path / "m.onnx", threads=1)(enc)
    assert got["chain_logits"].shape == (4, 2) and got["splade_sparse"].shape == (4, len(tok))
    assert got["mask_positions"].shape[1] == 2
