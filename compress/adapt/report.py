"""The adaptation report: JSON with the history, Markdown for people, and a plot of the loss and
both held-out accuracies over the steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compress.plotting import pyplot

if TYPE_CHECKING:
    from compress.adapt.train import TrainLog


ADAPTATION = "adaptation.json"  # the record of how the model was made, read by `compress run`
REPORT_FILES = ("adapt_report.json", "adapt_report.md", "adapt_report.png")


def markdown(record: dict[str, Any]) -> str:
    """The report's Markdown: before/after on both held-out sets, the data and the schedule."""
    b, a = record["before"], record["after"]
    data, replay = record["data"], record["replay"]
    lines = [
        "# Adaptation report", "",
        f"Base model `{record['base_model']['spec']}`, {record['steps']} steps "
        f"({record['train_seconds']:.0f} s of training"
        + (f", resumed from step {record['resumed_from']}" if record["resumed_from"] else "") + ").", "",
        "| held-out set | texts | top-1 before | top-1 after | change (points) | loss before | loss after |",
        "|---|---|---|---|---|---|---|",
    ]
    for part, name, count in (("new", f"new domain ({data['held_out']})", data["held_out_texts"]),
                              ("original", f"original domain ({record['original_held_out']['source']})",
                               record["original_held_out"]["texts"])):
        lines.append(f"| {name} | {count} | {100 * b[part]['top1']:.2f} % | {100 * a[part]['top1']:.2f} % | "
                     f"{100 * (a[part]['top1'] - b[part]['top1']):+.2f} | {b[part]['loss']:.3f} | "
                     f"{a[part]['loss']:.3f} |")
    lines += ["", f"- data: `{data['path']}`, sha256 `{data['sha256']}`, {data['train_texts']} training texts",
              f"- replay: {replay['source']}, ratio {replay['ratio']:.3f} ({replay['per_batch']} of "
              f"{record['options']['batch_size']} texts a batch)",
              f"- lr {record['options']['lr']:g}, {record['options']['scheduler']} decay after "
              f"{record['options']['warmup']:.0%} warm-up, masking {record['options']['mask_rate']:.0%} (80/10/10)",
              f"- command: `{record['command']}`", "", "![loss and held-out accuracy](adapt_report.png)", ""]
    return "\n".join(lines)


def plot(path: Path, train_log: TrainLog) -> bool:
    """Loss (left axis) and both held-out top-1 accuracies (right axis) over the steps; False without matplotlib."""
    plt = pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot([x["step"] for x in train_log.losses], [x["loss"] for x in train_log.losses], color="#888888",
            label="training loss")
    ax.set_xlabel("step")
    ax.set_ylabel("masked-LM loss")
    acc = ax.twinx()
    steps = [e["step"] for e in train_log.evals]
    for part, color, name in (("new", "#4c72b0", "held-out new domain"), ("original", "#c44e52",
                                                                          "held-out original domain")):
        acc.plot(steps, [100 * e[part]["top1"] for e in train_log.evals], "o-", color=color, label=name)
    acc.set_ylabel("masked top-1 (%)")
    fig.legend(loc="lower center", ncol=3, fontsize=8)
    ax.set_title("Adaptation: training loss and held-out accuracy")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(directory: Path, record: dict[str, Any], train_log: TrainLog) -> None:
    """adapt_report.json (the record with the loss and held-out history), .md and .png in ``directory``."""
    full = {**record, "losses": train_log.losses, "evals": train_log.evals}
    (directory / REPORT_FILES[0]).write_text(json.dumps(full, indent=2) + "\n")
    (directory / REPORT_FILES[1]).write_text(markdown(record))
    plot(directory / REPORT_FILES[2], train_log)
