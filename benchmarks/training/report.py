"""The `benchmarks train` report: one table of every case's held-out figures (as shipped, trained fp32,
trained int8) against the targets, and a plot of the same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from compress.plotting import pyplot

# figure -> (target, how the target reads): "min" the figure itself, "drop" at most this below today's
TARGETS: dict[str, tuple[float, str]] = {
    "region_antibody": (0.97, "min"), "region_tcr": (0.97, "min"), "fill_mask_top1": (0.01, "drop"),
    "species_agreement": (0.98, "min"), "chain_agreement": (0.98, "min"), "topic_accuracy": (0.98, "min"),
    "embedding_cosine": (0.98, "min"), "mrr@10": (0.92, "min"), "lee50_spearman": (0.01, "drop"),
    "rerank_mrr@10": (0.93, "min"),
}


def _met(figure: str, value: float | None, today: float | None) -> str:
    if value is None or figure not in TARGETS:
        return ""
    target, how = TARGETS[figure]
    ok = value >= target if how == "min" else today is None or value >= today - target
    return "✔" if ok else "✗"


def _target(figure: str) -> str:
    target, how = TARGETS.get(figure, (None, ""))
    return "" if target is None else f"≥ {target:g}" if how == "min" else f"drop ≤ {target:g}"


def markdown(report: dict[str, Any]) -> str:
    """The table, a row per case and figure."""
    lines = ["# compress train: held-out figures", "",
             "| case | figure | today | trained fp32 | trained int8 | target | fp32 | int8 | train time |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, c in report["cases"].items():
        for i, figure in enumerate(c["fp32"]):
            today = c["today"].get(figure)
            fp32, int8 = c["fp32"][figure], c["int8"].get(figure)
            cells = [name if i == 0 else "", figure, "—" if today is None else f"{today:.4f}", f"{fp32:.4f}",
                     "—" if int8 is None else f"{int8:.4f}", _target(figure), _met(figure, fp32, today),
                     _met(figure, int8, today), f"{c['train_seconds'] / 60:.1f} min" if i == 0 else ""]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", "![held-out figures](train_report.png)", "", *_agreement(report)])


# int8's agreement with fp32 (benchmarks/training/agreement.py), by the ending of its name: the serving budgets
AGREEMENT: dict[str, float] = {"_tokens": 0.99, "_labels": 0.99, "_top1": 0.99, "_tau": 0.95, "_cosine": 0.99,
                               "fill_mask": 0.99}


def _agreement(report: dict[str, Any]) -> list[str]:
    """The int8 artifact against the trained fp32 model on the same held-out inputs."""
    rows = [(name, figure, value) for name, c in report["cases"].items()
            for figure, value in c.get("int8_vs_fp32", {}).items()]
    if not rows:
        return []
    lines = ["## int8 against fp32, on the same held-out inputs", "",
             "| case | figure | int8 vs fp32 | budget | met |", "|---|---|---|---|---|"]
    for name, figure, value in rows:
        budget = next((b for end, b in AGREEMENT.items() if figure.endswith(end)), None)
        lines.append(f"| {name} | {figure} | {value:.4f} | {'' if budget is None else f'≥ {budget:g}'} | "
                     f"{'' if budget is None else '✔' if value >= budget else '✗'} |")
    return [*lines, ""]


def plot(path: Path, report: dict[str, Any]) -> bool:
    """Grouped bars: each figure as shipped, trained fp32 and trained int8; False without matplotlib."""
    plt = pyplot()
    if plt is None:
        return False
    rows = [(f"{n}\n{f}", c["today"].get(f), c["fp32"][f], c["int8"].get(f))
            for n, c in report["cases"].items() for f in c["fp32"]]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(rows)), 4.5))
    for k, (label, color) in enumerate((("today", "#bbbbbb"), ("trained fp32", "#1f77b4"),
                                        ("trained int8", "#ff7f0e"))):
        xs = [i + (k - 1) * 0.27 for i in range(len(rows))]
        ax.bar(xs, [r[k + 1] or 0 for r in rows], width=0.27, color=color, label=label)
    ax.set_xticks(range(len(rows)), [r[0] for r in rows], fontsize=7)
    ax.set_ylim(min(0.4, min(v for r in rows for v in r[1:] if v is not None) - 0.05), 1.0)
    ax.legend(loc="lower left")
    ax.set_title("compress train: held-out figures")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(out: Path, report: dict[str, Any]) -> None:
    """train_report.json, .md and .png into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "train_report.md").write_text(markdown(report))
    plot(out / "train_report.png", report)
