"""`python -m benchmarks train`: the four cases of `compress train`, trained from scratch with the
defaults, compressed to int8, and scored on held-out data beside the models as they ship.

- antiberty-multitask: mlm + region (token classification), species and chain kept, one epoch, averaged
  with the original after training (``--blend 0.5``: the species head's agreement with the original rises
  from 0.94 to 0.98 while region accuracy stays); scored on region accuracy (other species' antibodies,
  T-cell receptors), fill-mask top-1, and the species and chain heads' agreement with the original heads.
  The kept heads' loss at its default weight: at 5 they agree no better on other species' genes, which
  training never sees, and T-cell receptors lose half a point.
- minilm-topic: topic (classification, its head starting as a linear probe), the embedding kept
  (``--keep-weight 2``: at 20 the encoder stays where it was and the head at the probe's accuracy), one
  epoch; topic accuracy, the embedding's cosine to the original's on held-out paragraphs.
- minilm-contrastive: the embedding on headline -> article pairs, kept near the original on BBC sentences
  (``--keep-on auto``) and averaged with it after training (``--blend 0.35``); MRR@10, Lee-50 Spearman.
- minilm-rerank: a cross-encoder (BM25-mined negatives), one epoch at 128 tokens, its new head learning at
  ``--head-lr 1e-2`` and the encoder at ``--lr 1e-4`` (at 1e-3 and 5e-5 the listwise loss stays at chance
  for the first 40 of 100 steps); MRR@10 re-ranking BM25's top 20, read at 128 tokens as trained: 0.941
  (0.908 read at 256).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.training import scores
from benchmarks.training.agreement import Recording, compare
from benchmarks.training.data import read_jsonl, write_case_files
from benchmarks.training.subjects import Subject, artifact_subject, trained_subject

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Case:
    """One `compress train` run: the model, its tasks (``NAME:KIND:FILE`` over the case files), held-out files,
    heads kept, and the figures that judge it (each ``(label, target, higher_is_better)``)."""

    model: str
    tasks: tuple[str, ...]
    held_out: dict[str, str] = field(default_factory=dict)
    keep: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)


CASES: dict[str, Case] = {
    "antiberty-multitask": Case("antiberty", ("region:token-classification:region-train.jsonl",
                                              "mlm:mlm:mlm-train.txt"),
                                {"region": "region-antibody-test.jsonl"}, ("species", "chain"),
                                {"epochs": 1, "blend": 0.5}),
    "minilm-topic": Case("minilm", ("topic:classification:topic-train.jsonl",), {"topic": "topic-test.jsonl"},
                         ("embedding",), {"epochs": 1, "keep_weight": 2.0}),
    "minilm-contrastive": Case("minilm", ("embedding:embedding:pairs-train.jsonl",), {"embedding": "pairs-test.jsonl"},
                               ("embedding",), {"keep_on": "auto", "blend": 0.35}),
    "minilm-rerank": Case("minilm", ("rr:rerank:rerank-train.jsonl",),
                          options={"max_length": 128, "head_lr": 1e-2, "lr": 1e-4}),
}
def train_case(name: str, data: dict[str, Path], out: Path, progress: Progress | None) -> dict[str, Any]:
    """Train ``name`` into ``out``/model and compress it to ``out``/int8; returns seconds and the record."""
    from compress.cli import main
    from compress.train import TaskSpec, TrainOptions, train_model

    case = CASES[name]

    def path(file: str) -> str:
        return str(data[file.rsplit(".", 1)[0]])

    specs = []
    for text in case.tasks:
        task, kind, file = text.split(":", 2)
        held = case.held_out.get(task)
        specs.append(TaskSpec(name=task, kind=kind, data=path(file), held_out=path(held) if held else None))
    opts = TrainOptions(tasks=specs, keep_heads=list(case.keep), **case.options)
    t0 = time.perf_counter()
    record = train_model(case.model, out / "model", opts, force=True, progress=progress,
                         command=f"python -m benchmarks train --cases {name}")
    trained = time.perf_counter() - t0
    t0 = time.perf_counter()
    if main(["run", str(out / "model"), "--int8", "--out", str(out / "int8"), "--force", "--no-bench"]) != 0:
        raise RuntimeError(f"{name}: compress run failed")
    return {"train_seconds": trained, "compress_seconds": time.perf_counter() - t0, "record": record}


def score_case(name: str, subject: Subject | Recording | None, data: dict[str, Path]) -> dict[str, float]:
    """The case's held-out figures for ``subject`` (None: the original models as shipped)."""
    from benchmarks.training import reference

    if name == "antiberty-multitask":
        antibody, tcr = read_jsonl(data["region-antibody-test"]), read_jsonl(data["region-tcr-test"])
        sequences = [r["tokens"] for r in antibody]
        texts = ["".join(s) for s in sequences]
        fill = subject.fill() if subject else reference.antiberty_fill()
        out = {"fill_mask_top1": scores.fill_mask_top1(fill, sequences)}
        if subject is None:
            probe = reference.region_probe(reference.antiberty_states(), read_jsonl(data["region-train"]))
            return {**out, "region_antibody": scores.region_accuracy(probe, antibody),
                    "region_tcr": scores.region_accuracy(probe, tcr)}
        for head in ("species", "chain"):
            theirs = scores.in_batches(reference.antiberty_classifier(head), texts)  # type: ignore[arg-type]
            mine = scores.in_batches(subject.classify(head), [" ".join(s) for s in sequences])
            out[f"{head}_agreement"] = scores.agreement(mine, theirs)
        return {**out, "region_antibody": scores.region_accuracy(subject.tag("region"), antibody),
                "region_tcr": scores.region_accuracy(subject.tag("region"), tcr)}
    pairs = read_jsonl(data["pairs-test"])
    queries, docs = [r["anchor"] for r in pairs], [r["positive"] for r in pairs]
    original = reference.minilm_embedder()
    if name == "minilm-topic":
        if subject is None:
            return {}
        paragraphs = data["paragraphs-test"].read_text().splitlines()
        cosine = scores.mean_cosine(scores.embed_all(subject.embed("embedding"), paragraphs),
                                    scores.embed_all(original, paragraphs))
        return {"topic_accuracy": scores.topic_accuracy(subject.classify("topic"), read_jsonl(data["topic-test"])),
                "embedding_cosine": cosine}
    if name == "minilm-contrastive":
        embed = subject.embed("embedding") if subject else original
        return {"mrr@10": scores.mrr_at_10(embed, queries, docs), "lee50_spearman": scores.lee50_spearman(embed)}
    if subject is None:
        return {"rerank_mrr@10": scores.bm25_mrr_at_10(queries, docs)}  # BM25's own order
    return {"rerank_mrr@10": scores.rerank_mrr_at_10(subject.score("rr"), queries, docs)}


def run_cases(names: list[str], out: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Train, compress and score each case; write ``out``/train_report.{json,md,png}."""
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise ValueError(f"unknown case {unknown[0]!r}; cases: {', '.join(CASES)}")
    data = write_case_files(out / "data")
    report: dict[str, Any] = {"cases": {}}
    for name in names:
        if progress:
            progress(f"== {name}")
        made = train_case(name, data, out / name, progress)
        fp32, int8 = Recording(trained_subject(out / name / "model")), Recording(artifact_subject(out / name / "int8"))
        report["cases"][name] = {
            "train_seconds": round(made["train_seconds"], 1), "compress_seconds": round(made["compress_seconds"], 1),
            "today": score_case(name, None, data), "fp32": score_case(name, fp32, data),
            "int8": score_case(name, int8, data), "int8_vs_fp32": compare(fp32, int8)}
        (out / "train_report.json").write_text(json.dumps(report, indent=2) + "\n")
    from benchmarks.training.report import write_report

    write_report(out, report)
    return report
