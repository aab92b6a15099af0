"""`python -m benchmarks headline`: README's table rewritten from small fake reports, and --check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.cli import main
from benchmarks.headline import END, START, current_rows

README = f"""# project

Some text.

{START}
| what | figure | details |
|---|---|---|
| MiniLM int8 against sentence-transformers fp32, in-process | 9.9x, by hand | [quantization](docs/quantization.md) |
| AntiBERTy adapted to T-cell receptors | kept as it was | [adaptation](docs/adaptation.md) |
{END}

More text.
"""


def _level(clients: int, throughput: float, **extra: float) -> dict:
    return {"clients": clients, "throughput": throughput, "vs_plain": extra.get("vs_plain", 1.0),
            "probe_rejected_p99_ms": extra.get("p99", 0.0), "server_errors": 0,
            "rounds": [{"throughput": throughput}]}


def _write_reports(reports: Path) -> None:
    def put(name: str, report: dict) -> None:
        (reports / name).parent.mkdir(parents=True, exist_ok=True)
        (reports / name).write_text(json.dumps(report))

    put("st.json", {"rows": [{"side": "sentence-transformers fp32", "rounds": [10.0, 10.0, 10.0]},
                             {"side": "minilm-int8", "rounds": [29.0, 31.0, 33.0], "cosine_mean": 0.99741,
                              "cosine_min": 0.99236}]})
    put("http.json", {"host_kind": "native", "models": [
        {"model": "minilm", "task": "embedding", "levels": [_level(16, 260.2, vs_plain=1.234), _level(256, 250.0,
                                                                                                       p99=5.6)]},
        {"model": "antiberty", "task": "fill-mask", "levels": [_level(16, 172.9, vs_plain=0.957),
                                                               _level(256, 165.0, p99=1.2)]}]})
    put("benchmark.json", {"results": [{"model": "antiberty", "variant": "int8"}]})  # no pruned-int8: row kept


def test_rewrites_the_rows_it_has_reports_for_and_keeps_the_others(tmp_path):
    readme, reports, out = tmp_path / "README.md", tmp_path / "reports", tmp_path / "docs/results/headline.md"
    readme.write_text(README)
    _write_reports(reports)

    assert main(["headline", "--reports", str(reports), "--readme", str(readme), "--out", str(out)]) == 0

    text = readme.read_text()
    assert text.startswith("# project\n\nSome text.\n") and text.endswith(f"{END}\n\nMore text.\n")
    assert list(current_rows(text).values()) == [
        "| MiniLM int8 against sentence-transformers fp32, in-process | 2.9-3.3x the texts/s at cosine 0.9974 mean, "
        "0.9924 min | [quantization](docs/quantization.md) |",
        "| HTTP at 16 clients against a plain onnxruntime session | MiniLM 260/s (1.23x), AntiBERTy fill-mask 173/s "
        "(0.96x) | [engine](docs/engine.md) |",
        "| HTTP at 256 clients | goodput 0.95-0.96x of 16 clients', 429s within 6 ms (p99), no 5xx | "
        "[engine](docs/engine.md) |",
        "| AntiBERTy adapted to T-cell receptors | kept as it was | [adaptation](docs/adaptation.md) |",
    ]
    page = out.read_text()
    assert "[engine](../engine.md)" in page and "| HTTP at 256 clients | http.json |" in page
    assert "| AntiBERTy adapted to T-cell receptors | README, kept (no report) |" in page
    assert main(["headline", "--check", "--reports", str(reports), "--readme", str(readme)]) == 0


def test_check_fails_when_readme_differs_from_the_reports_and_writes_nothing(tmp_path, capsys):
    readme, reports, out = tmp_path / "README.md", tmp_path / "reports", tmp_path / "headline.md"
    readme.write_text(README)
    _write_reports(reports)

    assert main(["headline", "--check", "--reports", str(reports), "--readme", str(readme), "--out", str(out)]) == 1
    assert readme.read_text() == README and not out.exists()
    assert "+| HTTP at 256 clients | goodput" in capsys.readouterr().out


def test_a_report_without_what_the_row_needs_keeps_the_row(tmp_path, capsys):
    readme, reports = tmp_path / "README.md", tmp_path / "reports"
    readme.write_text(README)
    reports.mkdir()
    (reports / "st.json").write_text(json.dumps({"rows": []}))  # nothing measured

    assert main(["headline", "--check", "--reports", str(reports), "--readme", str(readme)]) == 0
    assert "st.json lacks what the row needs" in capsys.readouterr().err
    main(["headline", "--reports", str(reports), "--readme", str(readme), "--out", str(tmp_path / "h.md")])
    assert readme.read_text() == README


@pytest.mark.parametrize("text", ["# no markers\n", f"{END}\n{START}\n"])
def test_without_markers_it_says_what_to_add(tmp_path, capsys, text):
    readme = tmp_path / "README.md"
    readme.write_text(text)
    assert main(["headline", "--reports", str(tmp_path), "--readme", str(readme)]) == 2
    assert "add the two lines" in capsys.readouterr().err


def test_the_repository_readme_has_the_markers():
    rows = current_rows((Path(__file__).parents[2] / "README.md").read_text())
    assert "HTTP at 256 clients" in rows


def _other_reports(reports: Path) -> None:
    def put(name: str, report: dict) -> None:
        (reports / name).parent.mkdir(parents=True, exist_ok=True)
        (reports / name).write_text(json.dumps(report))

    put("task-heads.json", {"multi_bytes": 26.8e6, "multi_fp32_nodes": 0, "heads": [
        {"head": "mlm", "multi": 0.99551}, {"head": "species", "multi": 0.9961}, {"head": "chain", "multi": 1.0}]})

    def speed(tp: float) -> list[dict]:
        return [{"bucket": "medium", "batch_size": 32, "seq_per_s": tp}]

    put("benchmark.json", {"results": [
        {"model": "antiberty", "variant": "int8", "size_bytes": 27e6, "fp32_onnx_bytes": 103.4e6,
         "throughput": speed(100.0)},
        {"model": "antiberty", "variant": "pruned-int8", "size_bytes": 16.2e6, "throughput": speed(166.0),
         "pruning": {"removed_fraction": 0.4}}]})
    native = [{"clients": 16, "throughput": 145.0, "rounds": [{"throughput": 148.7}, {"throughput": 142.8}]}]
    ray = [{"clients": 16, "throughput": 195.0, "rounds": [{"throughput": 188.9}, {"throughput": 201.5}]}]
    put("ray-native/http.json", {"host_kind": "native", "models": [{"model": "minilm", "levels": native}]})
    put("ray/http.json", {"host_kind": "ray", "models": [{"model": "minilm", "levels": ray}]})
    put("adapt.json", {"rows": [{"variant": "original", "mouse_tcr_top1": 0.2220, "antibody_top1": 0.9146},
                                {"variant": "adapted, replay", "mouse_tcr_top1": 0.5334, "antibody_top1": 0.9149}]})
    put("train/train_report.json", {"cases": {
        "minilm-topic": {"today": {"topic_accuracy": None, "lee50_spearman": 0.80},
                         "int8": {"topic_accuracy": 0.985, "lee50_spearman": 0.75}}}})  # 0.98 met; drop 0.05 not


def test_every_other_row_from_its_report(tmp_path):
    readme, reports = tmp_path / "README.md", tmp_path / "reports"
    readme.write_text(f"{START}\n{END}\n")
    _other_reports(reports)

    assert main(["headline", "--reports", str(reports), "--readme", str(readme), "--out", str(tmp_path / "h.md")]) == 0

    rows = current_rows(readme.read_text())
    figures = {what: line.strip("|").split("|")[1].strip() for what, line in rows.items()}
    assert figures == {
        "AntiBERTy int8, one artifact with three heads":
            "26.8 MB, nothing kept in fp32; agreement with fp32: top-1 0.9955, species 0.9961, chain 1.0000",
        "AntiBERTy pruned by 40 %, int8": "1.66x int8's throughput; 16.2 MB, 6.4x smaller than the fp32 export",
        "`serve --ray`, 2 replicas × 1 CPU": "1.27-1.41x the native server on the same cores",
        "AntiBERTy adapted to T-cell receptors": "mouse TCR top-1 22.2 % → 53.3 %, antibodies 91.5 % → 91.5 %",
        "`compress train`, four cases, int8 on held-out data": "int8: 1 of 2 held-out figures on target",
    }
