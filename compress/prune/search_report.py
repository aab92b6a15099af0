"""The ``--prune auto`` search in the artifact's report: a table of the candidates and a plot of speed against
the task figure (``search.png``), both from the manifest's ``pruning.search``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compress.plotting import pyplot

PLOT_FILE = "search.png"


def _metrics(search: dict[str, Any]) -> list[tuple[str, str]]:
    """(gate, metric) of every figure, in the manifest's order."""
    return [(gate, metric) for gate, figs in search["original"].items() for metric in figs]


def search_table(search: dict[str, Any]) -> list[str]:
    """Markdown lines: one row per candidate, the original first, each gate metric and the verdict."""
    metrics = _metrics(search)
    head = ["candidate", "layers kept", "width kept", "est. speed-up", *[f"{m} ({g})" for g, m in metrics], "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    original = [f"{search['original'][g][m]:.4f}" for g, m in metrics]
    lines.append(f"| original | {search['layers']} | 100% | 1.00x | " + " | ".join(original) + " | |")
    for c in search["candidates"]:
        mark = " (chosen)" if c["candidate"] == search["chosen"] else ""
        figs = [f"{c['figures'][g][m]:.4f}" for g, m in metrics]
        lines.append(f"| {c['candidate']}{mark} | {len(c['layers_kept'])} | {c['width_kept']:.0%} | "
                     f"{c['estimated_speedup']:.2f}x | " + " | ".join(figs)
                     + f" | {'PASS' if c['passed'] else 'FAIL'} |")
    return lines


def plot_search(path: Path, search: dict[str, Any]) -> bool:
    """Estimated speed-up against the first gate metric, pass/fail marked, the chosen candidate starred;
    False without matplotlib."""
    plt = pyplot()
    if plt is None or not search["candidates"]:
        return False
    gate, metric = _metrics(search)[0]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot([1.0], [search["original"][gate][metric]], "s", color="#555555", label="original")
    for passed, color, marker, name in ((True, "#55a868", "o", "inside the gates"),
                                        (False, "#c44e52", "x", "outside the gates")):
        group = [c for c in search["candidates"] if c["passed"] == passed]
        ax.plot([c["estimated_speedup"] for c in group], [c["figures"][gate][metric] for c in group], marker,
                color=color, linestyle="none", label=name)
    for c in search["candidates"]:
        ax.annotate(c["candidate"], (c["estimated_speedup"], c["figures"][gate][metric]), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
        if c["candidate"] == search["chosen"]:
            ax.plot([c["estimated_speedup"]], [c["figures"][gate][metric]], "*", markersize=16, color="#dd8452",
                    label="chosen", zorder=0)
    ax.set_xlabel("estimated int8 CPU speed-up (cost model)")
    ax.set_ylabel(f"{metric} ({gate})")
    ax.legend(fontsize=8)
    ax.set_title("--prune auto: speed against the task figure")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
