"""One benchmark run: every model x variant, speed in fresh processes, accuracy on held-out data.

For each model the torch-fp32 baseline is scored first on each of the model's tasks (accuracy.py);
then every variant's artifact is made (or taken from the cache), all of them are timed side by side in
alternating rounds (speed.py, on the model's own artifact), and each gets its accuracy figures with
the deltas against that baseline. Tasks that run on a sibling model (AntiBERTy's species and chain
heads, the MiniLM topic classifier) use that sibling's artifact of the same variant.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common.variants import (
    BASELINE,
    RECIPES,
    artifact_runner,
    build_artifact,
    torch_original,
)
from benchmarks.run import accuracy
from benchmarks.run.accuracy import QUICK_TASKS
from benchmarks.run.criteria import criteria, misses
from compress import CompressError

if TYPE_CHECKING:
    from benchmarks.run.speed import SpeedSettings

QUICK_SPEED = {"batch_sizes": (32,), "buckets": ("medium",), "rounds": 5, "latency_runs": 10}


@dataclass
class BenchOptions:
    models: list[str]
    variants: list[str]
    threads: int
    quick: bool = False
    tasks: list[str] | None = None  # None: each model's tasks (QUICK_TASKS of them with quick)
    speed: bool = True
    cache: Path = Path("artifacts/bench")
    rebuild: bool = False
    catalog: str = "models.yaml"
    runtimes: list[str] = field(default_factory=list)  # CPU runtimes to compare side by side (runtimes.py)
    built: set[tuple[str, str]] = field(default_factory=set)  # artifacts (re)made in this run
    failed: dict[tuple[str, str], str] = field(default_factory=dict)  # artifacts that could not be made
    runtime_rows: list[dict[str, Any]] = field(default_factory=list)  # the runtimes' rows, every model's

    def tasks_of(self, model: str) -> list[str]:
        wanted = self.tasks or (QUICK_TASKS if self.quick else None)
        return [t for t in accuracy.tasks_for(model) if wanted is None or t in wanted]


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _artifact(opts: BenchOptions, model: str, variant: str) -> Path:
    """The cached artifact (made once per run); a failure is remembered, not retried."""
    key = (model, variant)
    if key in opts.failed:
        raise CompressError(opts.failed[key])
    rebuild = opts.rebuild and key not in opts.built
    opts.built.add(key)
    try:
        return build_artifact(model, variant, opts.cache, opts.catalog, rebuild)
    except CompressError as e:
        opts.failed[key] = f"{model} {variant} could not be made: {e}"
        raise CompressError(opts.failed[key]) from None


def _subject(opts: BenchOptions, model: str, variant: str) -> tuple[accuracy.Subject, str | None]:
    """A runner for (model, variant) with its tokenizer and labels, and the artifact it runs."""
    if variant == BASELINE:
        original = torch_original(model, opts.cache, opts.catalog, opts.threads)
        return accuracy.Subject(original.runner, original.tokenizer, original.labels), None
    from compress.artifact import load_artifact

    directory = _artifact(opts, model, variant)
    art = load_artifact(directory)
    return (accuracy.Subject(artifact_runner(directory, opts.threads), art.tokenizer(), art.manifest.labels),
            str(directory))


def _score(opts: BenchOptions, task: str, variant: str) -> tuple[accuracy.TaskResult | None, dict[str, Any]]:
    """Run one task on one variant; a failure (no artifact, bad outputs) is recorded, not raised."""
    model = accuracy.TASKS[task].model
    _log(f"  accuracy {task} on {model} / {variant}")
    try:
        subject, artifact = _subject(opts, model, variant)
        result = accuracy.evaluate(task, subject)
    except (CompressError, ValueError) as e:
        return None, {"metric": accuracy.TASKS[task].metric, "model": model, "error": str(e)}
    return result, {"model": model, "artifact": artifact}


def _variant_row(opts: BenchOptions, model: str, variant: str) -> dict[str, Any]:
    """The row of (model, variant) with its artifact's size and pruning, or the error that kept it from being made."""
    from compress.artifact import read_manifest

    res: dict[str, Any] = {"model": model, "variant": variant, "threads": opts.threads, "artifact": None}
    try:
        artifact = None if variant == BASELINE else str(_artifact(opts, model, variant))
    except CompressError as e:  # e.g. the accuracy gate refuses the method: the row says so, the run goes on
        return {**res, "error": str(e)}
    res["artifact"] = artifact
    if artifact:
        m = read_manifest(artifact)
        res.update(size_bytes=m.sizes["model_bytes"], fp32_onnx_bytes=m.sizes["fp32_onnx_bytes"],
                   validation=m.validation)
        if m.pruning:
            res["pruning"] = {k: m.pruning[k] for k in ("method", "removed_fraction", "encoder_params_before",
                                                         "encoder_params_after", "layers")}
    return res


def _measure_speed(opts: BenchOptions, model: str, rows: list[dict[str, Any]]) -> None:
    """Time every variant of ``model`` that exists, side by side in alternating rounds (speed.py); in place."""
    from benchmarks.run.speed import SpeedJob, measure_side_by_side

    todo = [r for r in rows if not r.get("error")]
    if not opts.speed or not todo:
        return
    settings = _speed_settings(opts)
    _log(f"measuring {model}: {', '.join(r['variant'] for r in todo)} side by side, {settings.rounds} rounds "
         f"({opts.threads} threads)")
    jobs = [SpeedJob(model, r["variant"], r["artifact"]) for r in todo]
    for row, figures in zip(todo, measure_side_by_side(jobs, settings, _log), strict=True):
        if "error" in figures:  # loaded but not timed: the row keeps its accuracy, the report says why
            figures["speed_error"] = figures.pop("error")
        row.update({k: v for k, v in figures.items() if k not in ("model", "variant")})


def _speed_settings(opts: BenchOptions) -> SpeedSettings:
    from benchmarks.run.speed import SpeedSettings

    return SpeedSettings(opts.threads, catalog=opts.catalog, cache=str(opts.cache),
                         **(QUICK_SPEED if opts.quick else {}))  # type: ignore[arg-type]


def _compare_runtimes(opts: BenchOptions, model: str, base: dict[str, accuracy.TaskResult | None]
                      ) -> list[dict[str, Any]]:
    """The CPU runtimes of ``model`` side by side (runtimes.py), against the torch-fp32 results in ``base``."""
    from benchmarks.run.runtimes import compare_runtimes

    def baseline(task: str) -> accuracy.TaskResult | None:
        if task not in base:
            base[task] = _score(opts, task, BASELINE)[0]
        return base[task]

    return compare_runtimes(model, opts.runtimes, _speed_settings(opts), lambda m, v: _artifact(opts, m, v),
                            baseline, rebuild=opts.rebuild, progress=_log)


def _model_results(opts: BenchOptions, model: str) -> list[dict[str, Any]]:
    tasks = opts.tasks_of(model)
    base: dict[str, accuracy.TaskResult | None] = {}
    base_info: dict[str, dict[str, Any]] = {}
    for task in tasks:
        base[task], base_info[task] = _score(opts, task, BASELINE)
    if opts.runtimes:
        opts.runtime_rows += _compare_runtimes(opts, model, base)
    rows = [_variant_row(opts, model, variant) for variant in opts.variants]
    _measure_speed(opts, model, rows)
    for res in rows:
        variant = res["variant"]
        t0 = time.perf_counter()
        res["accuracy"] = {}
        for task in tasks:
            result, info = (base[task], base_info[task]) if variant == BASELINE else _score(opts, task, variant)
            reference = None if variant == BASELINE else base[task]
            if result is not None and reference is None and variant != BASELINE:
                info = {**info, "error": "the torch-fp32 baseline of this task failed"}
            res["accuracy"][task] = {**accuracy.compare(result, reference), **info} if result else info
        res["accuracy_seconds"] = round(time.perf_counter() - t0, 1)
    return rows


def run_benchmark(opts: BenchOptions) -> dict[str, Any]:
    """Measure every model x variant; returns the report (see report.py for its keys).

    Example:
        >>> report = run_benchmark(BenchOptions(["minilm"], ["torch-fp32", "int8"], threads=2, quick=True))
        ... # doctest: +SKIP
    """
    from compress.cpu import cpu_model, detect_isa

    t0 = time.perf_counter()
    unknown = sorted({t for t in opts.tasks or () if t not in accuracy.TASKS})
    if unknown:
        raise ValueError(f"unknown accuracy tasks {unknown}; known: {', '.join(accuracy.TASKS)}")
    if opts.runtimes:
        from benchmarks.run.runtimes import check_names

        check_names(opts.runtimes)
    bad = [v for v in opts.variants if v != BASELINE and v not in RECIPES]
    if bad:
        raise ValueError(f"unknown variants {bad}; known: {BASELINE}, {', '.join(RECIPES)}")
    results = [r for model in opts.models for r in _model_results(opts, model)]
    tasks = sorted({t for r in results for t in r["accuracy"]}, key=list(accuracy.TASKS).index)
    return {"schema_version": 2, "cpu": {"model": cpu_model(), "isa": detect_isa()}, "threads": opts.threads,
            "quick": opts.quick, "criteria": criteria(),
            "tasks": {t: {"model": accuracy.TASKS[t].model, "metric": accuracy.TASKS[t].metric} for t in tasks},
            "results": results, "runtimes": opts.runtime_rows, "misses": misses(results),
            "seconds": round(time.perf_counter() - t0, 1)}
