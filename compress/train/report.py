"""The training report: JSON with the history, Markdown for people, and a plot of each task's held-out
figure and training loss over the steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compress.plotting import pyplot

if TYPE_CHECKING:
    from compress.train.loop import TrainLog


TRAINING = "training.json"  # the record of how the model was made, carried into the artifact's manifest
REPORT_FILES = ("train_report.json", "train_report.md", "train_report.png")


def _primary(figures: dict[str, float]) -> tuple[str, float]:
    name = next(iter(figures))
    return name, figures[name]


def markdown(record: dict[str, Any]) -> str:
    """Before and after on every task's held-out part and every kept head, the data and the schedule."""
    before, after = record["before"], record["after"]
    lines = ["# Training report", "",
             f"Base model `{record['base_model']['spec']}`, {record['steps']} steps "
             f"({record['train_seconds']:.0f} s" + (f", resumed from step {record['resumed_from']}"
                                                    if record["resumed_from"] else "") + ").", "",
             "| head | kind | train / held out | steps | held-out figure | before | after | change |",
             "|---|---|---|---|---|---|---|---|"]
    for t in record["tasks"]:
        metric, b = _primary(before["tasks"][t["name"]])
        a = after["tasks"][t["name"]][metric]
        lines.append(f"| {t['name']} | {t['kind']} | {t['train_examples']} / {t['held_out_examples']} | {t['steps']} "
                     f"| {metric} | {b:.4f} | {a:.4f} | {a - b:+.4f} |")
    for name, a in after.get("kept", {}).items():
        lines.append(f"| {name} | kept | | | agreement with the original | 1.0000 | {a:.4f} | {a - 1:+.4f} |")
    lines += [""] + [f"- {t['name']}: " + ", ".join(f"`{d['path']}` (sha256 `{d['sha256']}`)" for d in t["data"])
                     + f"; held out: {t['held_out']}" for t in record["tasks"]]
    o = record["options"]
    lines += [f"- sampling {o['sampling']}" + (f" (T = {o['temperature']:g})" if o["sampling"] == "temperature" else "")
              + f", batch {o['batch_size']}, lr {o['lr']:g} (new heads {o['head_lr']:g}), {o['scheduler']} decay "
              f"after {o['warmup']:.0%} warm-up",
              f"- command: `{record['command']}`", "", "![held-out figures and loss](train_report.png)", ""]
    return "\n".join(lines)


def plot(path: Path, train_log: TrainLog) -> bool:
    """One panel per task: its held-out figure (left axis) and training loss (right axis) over the steps."""
    plt = pyplot()
    if plt is None:
        return False
    names = list(train_log.evals[0]["tasks"])
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        metric = next(iter(train_log.evals[0]["tasks"][name]))
        ax.plot([e["step"] for e in train_log.evals], [e["tasks"][name][metric] for e in train_log.evals],
                marker="o", color="#1f77b4", label=f"held-out {metric}")
        for kept in train_log.evals[0].get("kept", {}):
            ax.plot([e["step"] for e in train_log.evals], [e["kept"][kept] for e in train_log.evals],
                    linestyle="--", label=f"{kept} (kept) agreement")
        ax.set(title=name, xlabel="step", ylabel=metric)
        ax.legend(loc="lower left", fontsize=8)
        points = [(x["step"], x["loss"][name]) for x in train_log.losses if name in x["loss"]]
        if points:
            twin = ax.twinx()
            twin.plot(*zip(*points, strict=True), color="#888888", alpha=0.6)
            twin.set_ylabel("training loss", color="#888888")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(directory: Path, record: dict[str, Any], train_log: TrainLog) -> None:
    """train_report.json (the record and the whole history), .md and .png into ``directory``."""
    history = {"losses": train_log.losses, "evals": train_log.evals, "counts": train_log.counts}
    (directory / REPORT_FILES[0]).write_text(json.dumps({**record, "history": history}, indent=2) + "\n")
    (directory / REPORT_FILES[1]).write_text(markdown(record))
    plot(directory / REPORT_FILES[2], train_log)
