"""`python -m benchmarks adapt`: AntiBERTy taught T-cell receptors, with and without replay.

AntiBERTy (antibodies) is adapted on the human TCR V genes of anarci's germline table and scored on
two held-out sets it never trains on: the mouse TCR V genes (the new domain) and 250 antibody
germlines (the original domain). Rows: the original, adapted without replay, adapted with replay
(the defaults), and the int8 artifact `compress run DIR --int8` makes of the replay model.
Adapted models and the artifact are cached under ``--cache`` (``--rebuild`` makes them anew).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from compress.adapt import AdaptOptions, adapt_model
from compress.adapt.data import load_texts
from compress.adapt.evaluate import Predict, masked_scores, torch_predict
from compress.data import tcr_germlines


def _data(cache: Path) -> tuple[Path, Path]:
    """The human (training) and mouse (held-out) TCR V genes as text files under ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    files = cache / "tcr_human.txt", cache / "tcr_mouse.txt"
    for path, species in zip(files, ("human", "mouse"), strict=True):
        path.write_text("\n".join(tcr_germlines(species)) + "\n")
    return files


def _adapted(cache: Path, name: str, opts: AdaptOptions, rebuild: bool) -> tuple[Path, dict[str, Any]]:
    """The adapted model directory ``cache/name`` (made when missing) and its record."""
    out = cache / name
    if rebuild or not (out / "adaptation.json").is_file():
        t0 = time.perf_counter()
        adapt_model("antiberty", out, opts, force=True, progress=print)
        (out / "wall_seconds.txt").write_text(f"{time.perf_counter() - t0:.1f}\n")
    return out, json.loads((out / "adaptation.json").read_text())


def _int8(model_dir: Path, rebuild: bool) -> Path:
    from compress.cli import main

    out = model_dir.with_name(model_dir.name + "-int8")
    made = (out / "manifest.json").is_file() and not rebuild
    if not made and main(["run", str(model_dir), "--int8", "--out", str(out), "--force", "--no-bench"]) != 0:
        raise ValueError(f"compress run {model_dir} --int8 failed (see above)")
    return out


def _artifact_predict(directory: Path) -> Predict:
    from compress.artifact import load_artifact

    runner = load_artifact(directory).runner()
    return lambda enc: runner(enc)["mask_logits"]


def _score(predict: Predict, tok: Any, texts: Any, opts: AdaptOptions) -> dict[str, float]:
    """Top-1 on both held-out sets, masked as the adaptation's own evaluations are."""
    def top1(held: list[str]) -> float:
        scores = masked_scores(predict, tok, held, rate=opts.mask_rate, seed=opts.seed, max_length=opts.max_length)
        return scores["top1"]

    return {"mouse_tcr_top1": top1(texts.held_out), "antibody_top1": top1(texts.original_held_out)}


def run(cache: Path, rebuild: bool = False) -> dict[str, Any]:
    """Adapt (or reuse), compress, and score every row on both held-out sets."""
    from transformers import AutoModelForMaskedLM

    from compress.adapt.workflow import load_source

    human, mouse = _data(cache)
    opts = AdaptOptions(data=str(human), held_out=str(mouse))
    replay = _adapted(cache, "antiberty-tcr-replay", opts, rebuild)  # the defaults first: the row that matters
    no_replay = _adapted(cache, "antiberty-tcr-noreplay", opts.model_copy(update={"replay": None}), rebuild)
    made = {"adapted, no replay": no_replay, "adapted, replay": replay}
    artifact = _int8(made["adapted, replay"][0], rebuild)
    original = load_source("antiberty")
    tok = original.tokenizer
    texts = load_texts(opts, tok)
    predicts: dict[str, Predict] = {"original": torch_predict(original.model, tok.mask_token_id)}
    for name, (directory, _) in made.items():
        predicts[name] = torch_predict(AutoModelForMaskedLM.from_pretrained(str(directory)), tok.mask_token_id)
    predicts["adapted, replay, int8 artifact"] = _artifact_predict(artifact)
    rows: list[dict[str, Any]] = [{"variant": name, **_score(predict, tok, texts, opts)}
                                  for name, predict in predicts.items()]
    base = rows[0]
    for row in rows:
        row["mouse_change_points"] = 100 * (row["mouse_tcr_top1"] - base["mouse_tcr_top1"])
        row["antibody_change_points"] = 100 * (row["antibody_top1"] - base["antibody_top1"])
        if row["variant"] in made:
            directory, record = made[row["variant"]]
            row["train_seconds"] = record["train_seconds"]
            wall = directory / "wall_seconds.txt"  # the whole adaptation: loading, scoring, training, writing
            row["wall_seconds"] = float(wall.read_text()) if wall.is_file() else None
    return {"rows": rows, "held_out": {"mouse_tcr": len(texts.held_out), "antibody": len(texts.original_held_out)},
            "train_texts": len(texts.train), "options": opts.model_dump(),
            "histories": {name: json.loads((d / "adapt_report.json").read_text())["evals"]
                          for name, (d, _) in made.items()}}


def markdown(report: dict[str, Any]) -> str:
    n = report["held_out"]
    lines = ["# AntiBERTy -> T-cell receptors", "",
             f"Trained on {report['train_texts']} human TCR V genes; masked top-1 (15 %) on {n['mouse_tcr']} mouse "
             f"TCR V genes and {n['antibody']} antibody germlines, none trained on.", "",
             "| variant | mouse TCR top-1 | change | antibody top-1 | change | training (whole run) |",
             "|---|---|---|---|---|---|"]
    for r in report["rows"]:
        took = f"{r['train_seconds']:.0f} s" if "train_seconds" in r else ""
        if r.get("wall_seconds"):
            took += f" ({r['wall_seconds']:.0f} s)"
        lines.append(f"| {r['variant']} | {100 * r['mouse_tcr_top1']:.2f} % | {r['mouse_change_points']:+.2f} | "
                     f"{100 * r['antibody_top1']:.2f} % | {r['antibody_change_points']:+.2f} | {took} |")
    return "\n".join([*lines, "", "![held-out accuracy over the steps](adapt.png)", ""])


def plot(report: dict[str, Any], path: Path) -> None:
    """Both held-out accuracies over the steps, with and without replay."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for (name, evals), color in zip(report["histories"].items(), ("#c44e52", "#4c72b0"), strict=True):
        steps = [e["step"] for e in evals]
        ax.plot(steps, [100 * e["new"]["top1"] for e in evals], "o-", color=color, label=f"{name}: mouse TCR")
        ax.plot(steps, [100 * e["original"]["top1"] for e in evals], "s--", color=color, label=f"{name}: antibody")
    ax.set_xlabel("step")
    ax.set_ylabel("masked top-1 (%)")
    ax.set_title("AntiBERTy adapted to human TCRs: held-out accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_reports(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "adapt.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "adapt.md").write_text(markdown(report))
    plot(report, out / "adapt.png")
