"""CPU runtimes side by side: OpenVINO agrees with ONNX Runtime on one graph, NNCF quantizes it, a
missing runtime is skipped with the reason, and the report shows the comparison."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SENTENCES


@pytest.fixture(scope="module")
def tiny_fp32(tmp_path_factory) -> Path:
    """A tiny sentence embedder compressed in fp32 (the graph OpenVINO reads)."""
    from compress.pipeline import compress_model
    from compress.recipe import Recipe
    from compress.sources import load_model
    from tests.conftest import build_tiny

    tmp = tmp_path_factory.mktemp("runtimes")
    build_tiny(tmp / "model", "bert", "embedding")
    compress_model(load_model(str(tmp / "model")), tmp / "art", name="tiny", bench=False,
                   recipe=Recipe.model_validate({"method": "fp32", "validation": {"gate": False, "n": 32}}))
    return tmp / "art"


def _batches(artifact: Path, n: int = 2) -> list[dict[str, np.ndarray]]:
    from compress.artifact import load_artifact
    from compress.data import encode

    tok = load_artifact(artifact).tokenizer()
    return [encode(tok, SENTENCES[i::n], 32) for i in range(n)]


def test_openvino_runs_the_onnx_graph_as_onnxruntime_does(tiny_fp32):
    pytest.importorskip("openvino")
    from compress.artifact import load_artifact
    from compress.openvino_runner import OpenVinoRunner
    from compress.runtime import OnnxRunner

    graph = load_artifact(tiny_fp32).graph_path
    ov, ort = OpenVinoRunner(graph, threads=1), OnnxRunner(graph, threads=1)
    assert ov.output_names == ort.output_names
    for enc in _batches(tiny_fp32):
        a, b = ov(enc), ort(enc)
        for name in ort.output_names:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-3, atol=1e-4)


def test_nncf_static_int8_quantizes_matmuls_and_keeps_the_embeddings(tiny_fp32, tmp_path):
    pytest.importorskip("nncf")
    import openvino as ov

    from compress.artifact import load_artifact
    from compress.openvino_runner import OpenVinoRunner, quantize_nncf
    from compress.runtime import OnnxRunner

    graph = load_artifact(tiny_fp32).graph_path
    info = quantize_nncf(graph, tmp_path / "model.xml", _batches(tiny_fp32, 4))
    assert info["calibration_batches"] == 4
    ops = [op.get_type_name() for op in ov.Core().read_model(str(tmp_path / "model.xml")).get_ops()]
    assert ops.count("FakeQuantize") >= 4  # activations and weights of the encoder's MatMuls
    enc = _batches(tiny_fp32)[0]
    a = OpenVinoRunner(tmp_path / "model.xml", threads=1)(enc)["sentence_embedding"]
    b = OnnxRunner(graph, threads=1)(enc)["sentence_embedding"]
    cos = np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    assert cos.min() > 0.95


def test_a_runtime_without_its_package_is_skipped_with_the_install_line(tiny_fp32, monkeypatch):
    from benchmarks.run.runtimes import _prepare

    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    row = _prepare("openvino-fp32", "tiny", lambda m, v: tiny_fp32, tiny_fp32.parent, "models.yaml", False)
    assert "mlm-compress[openvino]" in row["skipped"]
    ok = _prepare("ort-int8-dynamic", "tiny", lambda m, v: tiny_fp32, tiny_fp32.parent, "models.yaml", False)
    assert "skipped" not in ok and ok["graph"].endswith(".onnx")


def test_unknown_runtime_lists_the_known_ones():
    from benchmarks.run.runtimes import check_names

    with pytest.raises(ValueError, match="openvino-int8-nncf"):
        check_names(["tensorrt"])


@pytest.mark.slow  # a process per runtime, timed for two rounds
def test_compare_runtimes_times_each_on_the_same_inputs(tiny_fp32):
    pytest.importorskip("openvino")
    from benchmarks.run.runtimes import compare_runtimes
    from benchmarks.run.speed import SpeedSettings
    from compress import CompressError

    def artifact_of(model: str, variant: str) -> Path:
        if variant == "int8-static":
            raise CompressError("int8-static fails the accuracy gate")
        return tiny_fp32

    settings = SpeedSettings(1, batch_sizes=(1, 4), buckets=("short",), rounds=2, seconds=0.05, latency_runs=2,
                             cache=str(tiny_fp32.parent))
    rows = compare_runtimes("tiny", ["ort-int8-dynamic", "ort-int8-static", "openvino-fp32"], settings,
                            artifact_of, lambda task: None)
    by = {r["runtime"]: r for r in rows}
    assert by["ort-int8-static"]["skipped"] == "int8-static fails the accuracy gate"
    for name in ("ort-int8-dynamic", "openvino-fp32"):
        assert {(x["bucket"], x["batch_size"]) for x in by[name]["throughput"]} == {("short", 1), ("short", 4)}
        assert all(x["seq_per_s"] > 0 for x in by[name]["throughput"])


def test_report_shows_each_runtime_with_its_ratio_agreement_and_skips(tmp_path):
    from benchmarks.run import runtimes_report

    def row(name: str, sps: float, cos: float) -> dict:
        return {"model": "minilm", "runtime": name, "throughput": [
            {"bucket": "medium", "batch_size": bs, "seq_per_s": sps * bs / 32} for bs in (1, 32)],
            "latency_ms": {"p50": 10.0}, "peak_rss_bytes": 2e8,
            "accuracy": {"lee50": {"score": 0.8, "cosine_to_fp32": cos, "agreement": None}}}

    report = {"runtimes": [row("ort-int8-dynamic", 100.0, 0.997), row("openvino-fp32", 120.0, 1.0),
                           {"model": "minilm", "runtime": "openvino-int8-nncf", "skipped": "needs nncf"}]}
    text = "\n".join(runtimes_report.markdown_lines(report))
    assert "| openvino-fp32 | 3.8 | 120.0 | 1.20x |" in text
    assert "cos 0.9970" in text
    assert "- openvino-int8-nncf skipped: needs nncf" in text
    pytest.importorskip("matplotlib")
    assert runtimes_report.plot(report, tmp_path / "runtimes.png")
    assert (tmp_path / "runtimes.png").stat().st_size > 0
