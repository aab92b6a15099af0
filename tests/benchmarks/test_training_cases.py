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


class _Fake:
    """A subject whose answers are given: token labels, relevance scores (20 candidates a query), embeddings."""

    def __init__(self, tags, relevance, vectors):
        self.tags, self.relevance, self.vectors = tags, relevance, vectors

    def tag(self, name):
        return lambda seqs: self.tags[: len(seqs)]

    def score(self, name):
        return lambda pairs: self.relevance[: len(pairs)]

    def embed(self, name):
        return lambda texts: self.vectors[: len(texts)]


def test_int8_is_compared_with_fp32_answer_for_answer():
    from benchmarks.training.agreement import Recording, compare
    from benchmarks.training.report import markdown as table

    rng = np.random.default_rng(0)
    relevance = rng.normal(size=(4, 20))
    swapped = relevance.copy()
    best = swapped[0].argmax()
    swapped[0, best] = swapped[0].min() - 1  # the first query's best candidate falls to last
    vectors = rng.normal(size=(3, 8))
    fp32 = Recording(_Fake([["A", "B"], ["A", "A"]], relevance.ravel(), vectors))  # type: ignore[arg-type]
    int8 = Recording(_Fake([["A", "B"], ["A", "B"]], swapped.ravel(), -vectors))  # type: ignore[arg-type]
    for side in (fp32, int8):
        side.tag("region")([["x", "y"], ["x", "y"]])
        side.score("rr")([("q", "p")] * 80)
        side.embed("embedding")(["a", "b", "c"])
    got = compare(fp32, int8)
    assert got["region_tokens"] == 0.75
    assert got["rr_top1"] == 0.75
    assert 0.95 <= got["rr_tau"] < 1.0  # three queries' orders kept, one candidate of the fourth moved
    assert got["embedding_cosine"] == -1.0
    report = {"cases": {"c": {"train_seconds": 60.0, "today": {}, "fp32": {}, "int8": {}, "int8_vs_fp32": got}}}
    marks = {line.split("|")[2].strip(): line.split("|")[5].strip() for line in table(report).splitlines()
             if line.startswith("| c |")}
    assert marks == {"region_tokens": "✗", "rr_top1": "✗", "rr_tau": "✔", "embedding_cosine": "✗"}
