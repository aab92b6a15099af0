"""The `benchmarks train` report judges each figure against its target, and the subject adapter
answers the same through the trained graph and through the artifact."""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.training.report import markdown
from benchmarks.training.subjects import artifact_subject, trained_subject
from compress.cli import main
from compress.train import TaskSpec, TrainOptions, train_model
from tests.compress.train.conftest import FAST, write_data
from tests.conftest import SENTENCES, build_tiny


def test_the_table_marks_each_figure_against_its_target():
    report = {"cases": {"c": {"train_seconds": 90.0, "today": {"mrr@10": 0.88, "lee50_spearman": 0.508},
                              "fp32": {"mrr@10": 0.925, "lee50_spearman": 0.49},
                              "int8": {"mrr@10": 0.915, "lee50_spearman": 0.50}}}}
    rows = [line for line in markdown(report).splitlines() if line.startswith(("| c |", "|  |"))]
    assert rows[0].split("|")[7:9] == [" ✔ ", " ✗ "]  # 0.925 >= 0.92; 0.915 < 0.92
    assert rows[1].split("|")[7:9] == [" ✗ ", " ✔ "]  # a drop of 0.018 > 0.01; 0.008 <= 0.01
    assert "1.5 min" in rows[0]


def test_the_trained_graph_and_its_artifact_answer_alike(tmp_path):
    build_tiny(tmp_path / "src", "bert", "fill-mask")
    data = write_data(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tasks = [f"topic:classification:{data['classification']}", f"verbs:token-classification:"
                 f"{data['token-classification']}", f"rr:rerank:{data['rerank']}"]
        train_model(str(tmp_path / "src"), tmp_path / "model",
                    TrainOptions(tasks=[TaskSpec.parse(t) for t in tasks], **{**FAST, "steps": 20}))
        assert main(["run", str(tmp_path / "model"), "--fp32", "--out", str(tmp_path / "art"), "--no-bench",
                     "--n-validate", "32"]) == 0
        torch_side, onnx_side = trained_subject(tmp_path / "model", 1), artifact_subject(tmp_path / "art", 1)
        texts, words = SENTENCES[:8], [s.split() for s in SENTENCES[:8]]
        assert torch_side.classify("topic")(texts) == onnx_side.classify("topic")(texts)
        tags = onnx_side.tag("verbs")(words)
        assert tags == torch_side.tag("verbs")(words)
        assert [len(t) for t in tags] == [len(w) for w in words]
        pairs = list(zip(texts, texts[::-1], strict=True))
        np.testing.assert_allclose(onnx_side.score("rr")(pairs), torch_side.score("rr")(pairs), atol=1e-4)
        fills = onnx_side.fill()([["the", "[MASK]", "market"], ["[MASK]", "a", "[MASK]"]])
        assert [len(f) for f in fills] == [1, 2]
    finally:
        torch.set_num_threads(threads)
