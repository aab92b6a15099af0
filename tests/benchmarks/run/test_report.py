"""Deltas, budgets, the misses list, the Markdown and PNG reports and --check, on synthetic figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import cli
from benchmarks.run.accuracy import TaskResult, compare
from benchmarks.run.criteria import accuracy_misses, misses, speed_misses
from benchmarks.run.report import markdown, write_reports


def _speed(seq_per_s: float) -> dict:
    rows = [{"bucket": "medium", "batch_size": bs, "seq_per_s": tp, "tokens_per_s": 30 * tp, "mean_tokens": 30.0}
            for bs, tp in ((32, seq_per_s), (1, seq_per_s / 4))]
    return {"throughput": rows,
            "latency_ms": {"p50": 10.0, "p95": 11.0, "p99": 12.0, "mean": 10.5}, "peak_rss_bytes": 5e8}


def _acc(score: float, delta: float | None, agreement: float | None = None, cosine: float | None = None) -> dict:
    return {"metric": "accuracy", "score": score, "n": 1000, "delta_points": delta, "agreement": agreement,
            "cosine_to_fp32": cosine, "model": "m", "artifact": None, "seconds": 1.0}


def _report(int8_tp: float, topic_delta: float) -> dict:
    results = [
        {"model": "minilm", "variant": "torch-fp32", "artifact": None, **_speed(100.0),
         "accuracy": {"topic": _acc(0.94, None), "lee50": _acc(0.51, None)}},
        {"model": "minilm", "variant": "int8", "artifact": "a", "size_bytes": 2.3e7, **_speed(int8_tp),
         "accuracy": {"topic": _acc(0.94 + topic_delta / 100, topic_delta, agreement=0.99),
                      "lee50": _acc(0.505, -0.5, cosine=0.993)}},
    ]
    return {"cpu": {"model": "cpu", "isa": "avx2"}, "threads": 2, "quick": True,
            "tasks": {"topic": {}, "lee50": {}}, "results": results, "misses": misses(results), "seconds": 1.0}


def test_compare_gives_delta_in_points_agreement_and_cosine():
    base = TaskResult("t", "accuracy", 0.90, 4, labels=np.array([0, 1, 2, 3]), vectors=np.eye(4))
    cand = TaskResult("t", "accuracy", 0.894, 4, labels=np.array([0, 1, 2, 0]), vectors=np.eye(4))
    got = compare(cand, base)
    assert got["delta_points"] == pytest.approx(-0.6)
    assert got["agreement"] == 0.75
    assert got["cosine_to_fp32"] == pytest.approx(1.0)
    assert compare(base, None)["delta_points"] is None


def test_budgets_flag_drops_and_low_agreement_but_never_gains():
    res = {"model": "m", "variant": "int8", "accuracy": {
        "topic": _acc(0.9, -0.51, agreement=0.995),      # drop beyond 0.5 points
        "species": _acc(0.5, +3.0, agreement=0.97),      # a gain is fine, the agreement is not
        "bbc_probe": _acc(0.9, -0.2, agreement=0.90),    # the refitted probe's agreement is not gated
        "lee50": _acc(0.5, 0.0, cosine=0.985),           # cosine under 0.99
        "chain": {"metric": "accuracy", "error": "no artifact"}}}
    found = {(m["task"], m["kind"]) for m in accuracy_misses(res)}
    assert found == {("topic", "accuracy"), ("species", "agreement"), ("lee50", "agreement"), ("chain", "accuracy")}
    res["variant"] = "int4"  # 4-bit: 2 points, 95 % agreement, 0.98 cosine
    assert {(m["task"], m["kind"]) for m in accuracy_misses(res)} == {("chain", "accuracy")}


def test_speed_miss_is_listed_for_int8_only():
    report = _report(int8_tp=240.0, topic_delta=0.0)
    assert [m["kind"] for m in speed_misses(report["results"])] == ["speed"]
    assert "2.40x torch-fp32" in speed_misses(report["results"])[0]["message"]
    assert speed_misses(_report(int8_tp=260.0, topic_delta=0.0)["results"]) == []


def test_markdown_marks_misses_plainly():
    text = markdown(_report(int8_tp=240.0, topic_delta=-0.8))
    assert "| int8 | 23.0 | 240.0 | 2.40x |" in text
    assert "93.20 (-0.80; agree 99.0) **miss**" in text
    assert "50.50 (-0.50; cos 0.9930) |" in text  # exactly at the budget: not a miss
    assert "- minilm / int8: topic accuracy -0.80 points vs fp32 (budget -0.5)" in text
    assert "- minilm / int8: 2.40x torch-fp32 throughput at batch 32 (target 2.5x)" in text
    assert "None:" in markdown(_report(int8_tp=300.0, topic_delta=0.1))


def test_write_reports_json_md_png(tmp_path):
    write_reports(_report(int8_tp=300.0, topic_delta=0.0), tmp_path)
    data = json.loads((tmp_path / "benchmark.json").read_text())
    assert data["results"][1]["accuracy"]["topic"]["agreement"] == 0.99
    png = (tmp_path / "benchmark.png").read_bytes()
    assert png[:4] == b"\x89PNG" and len(png) > 20_000


@pytest.mark.parametrize(("int8_tp", "topic_delta", "code"), [(240.0, 0.0, 0), (300.0, -0.8, 1)])
def test_check_fails_on_accuracy_never_on_speed(monkeypatch, tmp_path, int8_tp, topic_delta, code):
    monkeypatch.setattr("benchmarks.run.bench.run_benchmark", lambda opts: _report(int8_tp, topic_delta))
    assert cli.main(["run", "--quick", "--check", "--out", str(tmp_path)]) == code
    assert cli.main(["run", "--quick", "--out", str(tmp_path)]) == 0


def test_a_variant_that_could_not_be_made_is_an_accuracy_miss():
    res = {"model": "m", "variant": "int4", "error": "m int4 could not be made: the gate", "accuracy": {}}
    assert [(m["kind"], m["message"]) for m in accuracy_misses(res)] == [
        ("accuracy", "not measured: m int4 could not be made: the gate")]


@pytest.mark.parametrize(("pruned_tp", "pruned_bytes", "expected"), [
    (170.0, 1.6e7, set()),  # 1.70x int8, 6.45x smaller: no miss
    (150.0, 1.6e7, {"speed"}),  # 1.50x int8
    (170.0, 2.0e7, {"size"}),  # 5.16x smaller
])
def test_pruned_variant_is_judged_against_int8_speed_and_fp32_size(pruned_tp, pruned_bytes, expected):
    report = _report(int8_tp=100.0, topic_delta=0.0)
    for r in report["results"]:
        r["model"] = "antiberty"  # the speed and size targets are AntiBERTy's
    report["results"][1]["fp32_onnx_bytes"] = 1.032e8
    report["results"].append(
        {"model": "antiberty", "variant": "pruned-int8", "artifact": "p", "size_bytes": pruned_bytes,
         "fp32_onnx_bytes": 6.3e7, "pruning": {"removed_fraction": 0.4}, **_speed(pruned_tp),
         "accuracy": {"topic": _acc(0.935, -0.5, agreement=0.95), "lee50": _acc(0.49, -2.0, cosine=0.975)}})
    got = [m for m in misses(report["results"]) if m["variant"] == "pruned-int8"]
    assert {m["kind"] for m in got} == expected  # and Lee-50's -2 points sit within its 3-point budget
    text = markdown({**report, "misses": got})
    assert f"pruned-int8: 40.0 % of encoder parameters removed, {pruned_tp / 100:.2f}x int8's throughput" in text
    assert f"{1.032e8 / pruned_bytes:.2f}x smaller than the fp32 ONNX export" in text

    for r in report["results"]:
        r["model"] = "minilm"  # MiniLM's pruning has accuracy targets only
    assert not [m for m in misses(report["results"]) if m["variant"] == "pruned-int8" and m["kind"] != "accuracy"]


def test_int8_has_a_point_on_lee50_and_half_a_point_elsewhere():
    def found(task: str, delta: float) -> bool:
        res = {"model": "m", "variant": "int8", "accuracy": {task: _acc(0.5, delta, cosine=0.995, agreement=0.995)}}
        return bool(accuracy_misses(res))

    assert not found("lee50", -0.9) and found("lee50", -1.1)
    assert found("topic", -0.6)


def test_rerank_is_held_to_its_top1_agreement_and_kendall_tau():
    base = TaskResult("rerank", "mrr@10", 0.5, 2, labels=np.array([0, 2]), scores=np.array([[3.0, 1, 2], [0, 1, 2]]))
    same = TaskResult("rerank", "mrr@10", 0.5, 2, labels=np.array([0, 2]), scores=np.array([[2.9, 1, 2], [0, 1, 2]]))
    flipped = TaskResult("rerank", "mrr@10", 0.5, 2, labels=np.array([0, 2]),
                         scores=np.array([[2.9, 2, 1], [0, 1, 2]]))
    assert compare(same, base)["kendall_tau"] == pytest.approx(1.0)
    got = compare(flipped, base)
    assert got["agreement"] == 1.0 and got["kendall_tau"] == pytest.approx((1 / 3 + 1) / 2)
    res = {"model": "minilm-rerank", "variant": "int8", "accuracy": {"rerank": {**_acc(0.5, 0.0, 1.0), **got}}}
    [miss] = accuracy_misses(res)
    assert miss["kind"] == "agreement" and "Kendall tau with fp32 0.667 (needs 0.95)" in miss["message"]
    assert "tau 0.667" in markdown({**_report(300.0, 0.0), "tasks": {"rerank": {}}, "results": [
        {"model": "minilm-rerank", "variant": "torch-fp32", "artifact": None, **_speed(10.0),
         "accuracy": {"rerank": _acc(0.5, None)}},
        {"model": "minilm-rerank", "variant": "int8", "artifact": "a", "size_bytes": 2e7, **_speed(20.0), **res}]})


def test_sparse_is_held_to_the_gates_top32_overlap_on_every_variant():
    def sparse(overlap: float) -> dict:
        return {**_acc(overlap, None), "metric": "top32_overlap", "top32_overlap": overlap,
                "min_top32_overlap": overlap - 0.1, "sparse_cosine": 0.995}

    for variant in ("onnx-fp32", "int8", "int4", "pruned-int8"):
        res = {"model": "antiberty-sparse", "variant": variant, "accuracy": {"sparse": sparse(0.96)}}
        assert not accuracy_misses(res)
        res["accuracy"]["sparse"] = sparse(0.94)
        [miss] = accuracy_misses(res)
        assert miss["kind"] == "agreement"
        assert "sparse top-32 term overlap with fp32 0.940 (needs 0.95)" in miss["message"]
    md = markdown({**_report(300.0, 0.0), "tasks": {"sparse": {}}, "results": [
        {"model": "antiberty-sparse", "variant": "torch-fp32", "artifact": None, **_speed(10.0),
         "accuracy": {"sparse": _acc(1.0, None)}},
        {"model": "antiberty-sparse", "variant": "int8", "artifact": "a", "size_bytes": 2e7, **_speed(20.0),
         "accuracy": {"sparse": sparse(0.94)}}]})
    assert "SPLADE top-32 overlap with fp32 %" in md and "| 100.00 |" in md
    assert "94.00 (worst 84.0; cos 0.9950) **miss**" in md
