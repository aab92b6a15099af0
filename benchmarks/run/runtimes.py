"""CPU runtimes side by side on one model: which engine runs its artifact fastest at the same accuracy.

``benchmarks run --runtimes ...`` times each runtime on the same texts and batch sizes as the
variants (speed.py's alternating rounds, each runtime in its own process), and scores each on the
model's agreement-gated tasks against the PyTorch original (cosine to fp32's embeddings for
embedders, top-1 agreement for fill-mask and classifiers):

- ``ort-int8-dynamic``: ONNX Runtime on the ``int8`` artifact (the default recipe today);
- ``ort-int8-static``: ONNX Runtime on the ``int8-static`` artifact (QDQ, calibrated on the same
  in-domain texts as every static method here);
- ``openvino-fp32``: OpenVINO reading the ``onnx-fp32`` artifact's model.onnx;
- ``openvino-int8-nncf``: OpenVINO on that graph quantized by NNCF (static int8, transformer preset,
  calibrated on the same texts as ``ort-int8-static``), kept under ``--cache``.

A runtime whose package is missing, or whose graph cannot be made, is skipped with the reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from benchmarks.run import accuracy
from benchmarks.run.speed import Runner, SpeedJob, SpeedSettings, measure_side_by_side
from compress import CompressError

if TYPE_CHECKING:
    from compress.runtime import Runner as GraphRunner


@dataclass(frozen=True)
class Runtime:
    variant: str  # the benchmark variant whose artifact it runs
    engine: Literal["onnxruntime", "openvino"]
    nncf: bool = False  # OpenVINO: quantize the graph with NNCF first


RUNTIMES: dict[str, Runtime] = {
    "ort-int8-dynamic": Runtime("int8", "onnxruntime"),
    "ort-int8-static": Runtime("int8-static", "onnxruntime"),
    "openvino-fp32": Runtime("onnx-fp32", "openvino"),
    "openvino-int8-nncf": Runtime("onnx-fp32", "openvino", nncf=True),
}
REFERENCE = "ort-int8-dynamic"  # the ratios' denominator: what serves today
CALIBRATION_BATCH = 8  # as compress's static int8 calibrates


def check_names(names: list[str]) -> None:
    unknown = [n for n in names if n not in RUNTIMES]
    if unknown:
        raise ValueError(f"unknown runtimes {unknown}; known: {', '.join(RUNTIMES)}")


def nncf_graph(cache: str | Path, model: str) -> Path:
    """Where the NNCF int8 IR of ``model`` is kept."""
    return Path(cache) / f"{model}-openvino-int8-nncf" / "model.xml"


def graph_of(name: str, artifact: str | Path, model: str, cache: str | Path) -> Path:
    """The graph file runtime ``name`` runs for ``model``, given its variant's artifact directory."""
    from compress.artifact import load_artifact

    return nncf_graph(cache, model) if RUNTIMES[name].nncf else load_artifact(artifact).graph_path


def make_runner(name: str, graph: Path, threads: int) -> GraphRunner:
    if RUNTIMES[name].engine == "openvino":
        from compress.openvino_runner import OpenVinoRunner

        return OpenVinoRunner(graph, threads=threads)
    from compress.runtime import OnnxRunner

    return OnnxRunner(graph, threads=threads)


def load_runtime(job: SpeedJob, settings: SpeedSettings) -> tuple[Runner, Any, str, int]:
    """speed.py's setup for a runtime job (``job.variant`` is the runtime's name), inside its worker."""
    from compress.artifact import load_artifact

    art = load_artifact(job.artifact or "")
    graph = graph_of(job.variant, art.directory, job.model, settings.cache)
    return (make_runner(job.variant, graph, settings.threads), art.tokenizer(), art.manifest.task,
            art.manifest.tokenizer.max_length)


def _build_nncf(model: str, artifact: Path, cache: Path, catalog: str, rebuild: bool) -> dict[str, Any]:
    """Quantize ``artifact``'s fp32 graph with NNCF on the int8-static calibration texts (kept in the cache)."""
    from benchmarks.common.variants import load_bench_model, variant_recipe
    from compress.artifact import load_artifact
    from compress.data import read_texts
    from compress.openvino_runner import quantize_nncf, require_openvino
    from compress.validate import build_validation_set

    require_openvino("openvino-int8-nncf", nncf=True)
    dst = nncf_graph(cache, model)
    src = load_artifact(artifact).graph_path
    if dst.is_file() and not rebuild and dst.stat().st_mtime >= src.stat().st_mtime:
        return {"graph": str(dst), "cached": True}
    loaded = load_bench_model(model, cache, catalog)
    texts = read_texts(variant_recipe(model, "int8-static", loaded, cache).quantize.calibration_file() or "")
    art = load_artifact(artifact)  # the fp32 graph's tokenizer and task
    batches = build_validation_set(art.manifest.task, art.tokenizer(), texts, max_length=art.manifest.tokenizer
                                   .max_length, batch_size=CALIBRATION_BATCH).batches
    return {"graph": str(dst), **quantize_nncf(src, dst, batches)}


def _prepare(name: str, model: str, artifact_of: Callable[[str, str], Path], cache: Path, catalog: str,
             rebuild: bool) -> dict[str, Any]:
    """The runtime's row before timing: its artifact and graph, or ``skipped`` with the reason."""
    rt = RUNTIMES[name]
    row: dict[str, Any] = {"model": model, "runtime": name, "engine": rt.engine, "variant": rt.variant}
    try:
        if rt.engine == "openvino":
            from compress.openvino_runner import require_openvino

            require_openvino(name, nncf=rt.nncf)
        artifact = artifact_of(model, rt.variant)
        if rt.nncf:
            row["nncf"] = _build_nncf(model, artifact, cache, catalog, rebuild)
    except CompressError as e:
        return {**row, "skipped": str(e)}
    return {**row, "artifact": str(artifact), "graph": str(graph_of(name, artifact, model, cache))}


def _agreement(rows: list[dict[str, Any]], model: str, baseline: Callable[[str], accuracy.TaskResult | None],
               threads: int) -> None:
    """Score each ready runtime on the model's agreement-gated tasks against the PyTorch original; in place."""
    from compress.artifact import load_artifact

    tasks = [t for t in accuracy.tasks_for(model) if accuracy.TASKS[t].model == model and accuracy.TASKS[t]
             .agreement_gated]
    for row in rows:
        if row.get("skipped"):
            continue
        row["accuracy"] = {}
        art = load_artifact(row["artifact"])
        try:
            runner = make_runner(row["runtime"], Path(row["graph"]), threads)
        except CompressError as e:
            row["skipped"] = str(e)
            continue
        subject = accuracy.Subject(runner, art.tokenizer(), art.manifest.labels)
        for task in tasks:
            ref = baseline(task)
            try:
                result = accuracy.evaluate(task, subject)
            except (CompressError, ValueError, RuntimeError) as e:  # recorded: the other runtimes go on
                row["accuracy"][task] = {"error": f"{type(e).__name__}: {e}"}
                continue
            row["accuracy"][task] = accuracy.compare(result, ref) if ref else {"error": "no torch-fp32 baseline"}


def compare_runtimes(model: str, names: list[str], settings: SpeedSettings,
                     artifact_of: Callable[[str, str], Path], baseline: Callable[[str], accuracy.TaskResult | None],
                     rebuild: bool = False, progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Rows of ``names`` for ``model``: throughput and latency side by side, agreement with torch-fp32.

    Args:
        artifact_of: (model, variant) -> the variant's artifact directory, made when missing.
        baseline: task -> the torch-fp32 result of the task (None when it failed).

    Returns:
        Per runtime: ``runtime``, ``engine``, ``variant``, ``artifact``, ``graph``, speed.py's figures
        (``throughput``, ``latency_ms``, ``peak_rss_bytes``), ``accuracy`` {task: accuracy.compare()},
        or ``skipped`` with the reason.
    """
    rows = [_prepare(n, model, artifact_of, Path(settings.cache), settings.catalog, rebuild) for n in names]
    ready = [r for r in rows if not r.get("skipped")]
    if progress:
        progress(f"runtimes of {model}: {', '.join(r['runtime'] for r in ready)} side by side"
                 + "".join(f"; {r['runtime']} skipped: {r['skipped']}" for r in rows if r.get("skipped")))
    timed = dataclasses.replace(settings, setup="benchmarks.run.runtimes:load_runtime")
    jobs = [SpeedJob(model, r["runtime"], r["artifact"]) for r in ready]
    for row, figures in zip(ready, measure_side_by_side(jobs, timed, progress), strict=True):
        if "error" in figures:
            row["skipped"] = f"could not be timed: {figures.pop('error')}"
        row.update({k: v for k, v in figures.items() if k not in ("model", "variant")})
    _agreement(rows, model, baseline, settings.threads)
    return rows
