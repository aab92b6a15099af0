"""`python -m benchmarks headline`: README's headline figures, one table rewritten from the reports.

Each row is read off the reports under ``--reports`` (default ``reports/``) that the benchmark commands
write (see docs/benchmarks.md#the-headline-figures for the command behind each):

| row | report |
|---|---|
| MiniLM int8 against sentence-transformers | ``st.json`` (``st``) |
| AntiBERTy's multi-head artifact | ``task-heads.json`` (``task-heads``) |
| AntiBERTy pruned, int8 | ``benchmark.json`` (``run`` with ``pruned-int8``) |
| HTTP at 16 and at 256 clients | ``http.json`` (``http``) |
| ``serve --ray`` against the native server | ``ray/http.json`` and ``ray-native/http.json`` (``http``) |
| AntiBERTy adapted to T-cell receptors | ``adapt.json`` (``adapt``) |
| ``compress train``'s cases | ``train/train_report.json`` (``train``) |

A row whose report is missing, or lacks what the row needs, keeps README's current text for it (so a
partial rerun updates only its own rows); a row with neither is left out. The table goes between
:data:`START` and :data:`END` in README.md and, with the report behind each row, into
docs/results/headline.md. ``--check`` writes nothing and exits 1 when README's table differs.
"""

from __future__ import annotations

import difflib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

START, END = "<!-- headline:start -->", "<!-- headline:end -->"
HEADER = ["| what | figure | details |", "|---|---|---|"]
NAMES = {"minilm": "MiniLM", "antiberty": "AntiBERTy"}
KEPT = "README, kept (no report)"
Report = dict[str, Any]


@dataclass(frozen=True)
class Row:
    what: str
    details: str  # a Markdown link relative to the repository root
    reports: tuple[str, ...]  # paths under --reports, in the order ``figure`` takes them
    figure: Callable[..., str | None]  # the figure cell, or None when the reports lack it


def _span(values: list[float], fmt: str) -> str:
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    return lo if lo == hi else f"{lo}-{hi}"


def _level(model: Report, clients: int) -> Report:
    return next(lv for lv in model["levels"] if lv["clients"] == clients)


def _label(model: Report) -> str:
    name, _, head = model["model"].partition(":")
    label = NAMES.get(name, name) + (f":{head}" if head else "")
    return label if model["task"] == "embedding" else f"{label} {model['task']}"


def st_figure(st: Report) -> str | None:
    """The first artifact against sentence-transformers: texts/s ratio per round, cosine mean and min."""
    base, art = st["rows"][0], st["rows"][1]
    ratios = [a / b for a, b in zip(art["rounds"], base["rounds"], strict=True)]
    return (f"{_span(ratios, '.1f')}x the texts/s at cosine {art['cosine_mean']:.4f} mean, "
            f"{art['cosine_min']:.4f} min")


def task_heads_figure(r: Report) -> str | None:
    kept = r.get("multi_fp32_nodes")
    fp32 = "" if kept is None else ", nothing kept in fp32" if kept == 0 else f", {kept} nodes kept in fp32"
    heads = ", ".join(f"{'top-1' if h['head'] == 'mlm' else h['head']} {h['multi']:.4f}" for h in r["heads"])
    return f"{r['multi_bytes'] / 1e6:.1f} MB{fp32}; agreement with fp32: {heads}"


def pruned_figure(bench: Report) -> str | None:
    from benchmarks.run.criteria import PRUNED_VARIANT, pruning_summary

    s = pruning_summary(bench["results"], "antiberty")
    if s is None or s["speedup_over_int8"] is None or s["smaller_than_fp32_onnx"] is None:
        return None
    pruned = next(r for r in bench["results"] if r["model"] == "antiberty" and r["variant"] == PRUNED_VARIANT)
    return (f"{s['speedup_over_int8']:.2f}x int8's throughput; {pruned['size_bytes'] / 1e6:.1f} MB, "
            f"{s['smaller_than_fp32_onnx']:.1f}x smaller than the fp32 export")


def http16_figure(http: Report) -> str | None:
    cells = [f"{_label(m)} {_level(m, 16)['throughput']:.0f}/s ({_level(m, 16)['vs_plain']:.2f}x)"
             for m in http["models"]]
    return ", ".join(cells) or None


def http256_figure(http: Report) -> str | None:
    pairs = [(_level(m, 16), _level(m, 256)) for m in http["models"]]
    if not pairs:
        return None
    goodput = _span([hi["throughput"] / lo["throughput"] for lo, hi in pairs], ".2f")
    refused = max(hi["probe_rejected_p99_ms"] for _, hi in pairs)
    errors = sum(hi["server_errors"] for _, hi in pairs)
    return (f"goodput {goodput}x of 16 clients', 429s within {refused:.0f} ms (p99), "
            + ("no 5xx" if errors == 0 else f"{errors} 5xx"))


def ray_figure(ray: Report, native: Report) -> str | None:
    """Ray's answers/s at 16 clients over the native server's, round by round (the same settings)."""
    if ray["host_kind"] != "ray" or native["host_kind"] != "native":
        return None
    ray16, native16 = _level(ray["models"][0], 16), _level(native["models"][0], 16)
    ratios = [r["throughput"] / n["throughput"] for r, n in zip(ray16["rounds"], native16["rounds"], strict=True)]
    return f"{_span(ratios, '.2f')}x the native server on the same cores"


def adapt_figure(adapt: Report) -> str | None:
    rows = {r["variant"]: r for r in adapt["rows"]}
    before, after = rows["original"], rows["adapted, replay"]
    return (f"mouse TCR top-1 {100 * before['mouse_tcr_top1']:.1f} % → {100 * after['mouse_tcr_top1']:.1f} %, "
            f"antibodies {100 * before['antibody_top1']:.1f} % → {100 * after['antibody_top1']:.1f} %")


def train_figure(train: Report) -> str | None:
    """How many int8 held-out figures meet their target (benchmarks/training/report.py's TARGETS)."""
    from benchmarks.training.report import TARGETS

    met = total = 0
    for case in train["cases"].values():
        for figure, value in case["int8"].items():
            if figure in TARGETS and value is not None:
                target, how = TARGETS[figure]
                today = case["today"].get(figure)
                met += value >= target if how == "min" else today is None or value >= today - target
                total += 1
    return f"int8: {met} of {total} held-out figures on target" if total else None


ROWS = (
    Row("MiniLM int8 against sentence-transformers fp32, in-process", "[quantization](docs/quantization.md)",
        ("st.json",), st_figure),
    Row("AntiBERTy int8, one artifact with three heads", "[quantization](docs/quantization.md)",
        ("task-heads.json",), task_heads_figure),
    Row("AntiBERTy pruned by 40 %, int8", "[pruning](docs/pruning.md)", ("benchmark.json",), pruned_figure),
    Row("HTTP at 16 clients against a plain onnxruntime session", "[engine](docs/engine.md)", ("http.json",),
        http16_figure),
    Row("HTTP at 256 clients", "[engine](docs/engine.md)", ("http.json",), http256_figure),
    Row("`serve --ray`, 2 replicas × 1 CPU", "[Ray](docs/ray.md)", ("ray/http.json", "ray-native/http.json"),
        ray_figure),
    Row("AntiBERTy adapted to T-cell receptors", "[adaptation](docs/adaptation.md)", ("adapt.json",),
        adapt_figure),
    Row("`compress train`, four cases, int8 on held-out data", "[training](docs/training.md)",
        ("train/train_report.json",), train_figure),
)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _between(text: str) -> tuple[int, int]:
    """The offsets of the text between the markers; a ValueError that says what to add without them."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no {START} ... {END} around the headline table; add the two lines around it")
    return start + len(START), end


def current_rows(text: str) -> dict[str, str]:
    """README's table rows between the markers, by their first cell."""
    a, b = _between(text)
    lines = [ln for ln in text[a:b].splitlines() if ln.startswith("|") and ln not in HEADER]
    return {_cells(ln)[0]: ln for ln in lines}


def _figure(row: Row, reports: Path) -> str | None:
    paths = [reports / p for p in row.reports]
    if not all(p.is_file() for p in paths):
        return None
    try:
        return row.figure(*(json.loads(p.read_text()) for p in paths))
    except (KeyError, IndexError, StopIteration, TypeError, ValueError, ZeroDivisionError) as e:
        print(f"headline: {row.what}: {', '.join(row.reports)} lacks what the row needs ({e!r}); "
              "README's row kept", file=sys.stderr)
        return None


def table(reports: Path, current: dict[str, str]) -> list[tuple[str, str]]:
    """(table line, where it came from) for every row that has a report or a current line."""
    out = []
    for row in ROWS:
        figure = _figure(row, reports)
        if figure is not None:
            out.append((f"| {row.what} | {figure} | {row.details} |", ", ".join(row.reports)))
        elif row.what in current:
            out.append((current[row.what], KEPT))
    return out


def rewrite(text: str, lines: list[str]) -> str:
    """``text`` with the table between the markers replaced by ``lines``."""
    a, b = _between(text)
    return text[:a] + "\n" + "\n".join([*HEADER, *lines]) + "\n" + text[b:]


def page(rows: list[tuple[str, str]], reports: Path) -> str:
    """docs/results/headline.md: the table (links relative to docs/results/) and each row's source."""
    lines = [line.replace("](docs/", "](../") for line, _ in rows]
    sources = [f"| {_cells(line)[0]} | {source} |" for line, source in rows]
    return "\n".join(["# Headline figures", "",
                      f"Written by `python -m benchmarks headline` from the reports under `{reports}/`;",
                      "README's table is the same. Do not edit by hand.", "", *HEADER, *lines, "",
                      "| row | from |", "|---|---|", *sources, ""])


def update(reports: Path, readme: Path, out: Path, check: bool = False) -> int:
    """Rewrite README's headline table from ``reports`` and write ``out``; with ``check``, write nothing
    and return 1 when README's table differs from the reports' (the difference printed), else 0.

    Example:
        >>> update(Path("reports"), Path("README.md"), Path("docs/results/headline.md"))  # doctest: +SKIP
    """
    text = readme.read_text()
    rows = table(reports, current_rows(text))
    new = rewrite(text, [line for line, _ in rows])
    if check:
        if new == text:
            return 0
        sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True), str(readme),
                                                   f"{readme} from {reports}/"))
        print(f"{readme}'s headline table differs from {reports}/: run python -m benchmarks headline",
              file=sys.stderr)
        return 1
    readme.write_text(new)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page(rows, reports))
    print(f"{readme}: {sum(s != KEPT for _, s in rows)} of {len(rows)} rows from {reports}/; "
          f"{out}", file=sys.stderr)
    return 0
