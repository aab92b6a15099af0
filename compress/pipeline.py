"""`compress run`: the staged pipeline from a loaded model and a :class:`~compress.recipe.Recipe` to an artifact.

load (the caller) → adapt → prune → export (+ graph optimization) → reference outputs → quantize with the
accuracy gate → measure → write. Each stage is one function; they share a :class:`_Run`.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from compress import CompressError
from compress.artifact import (
    FORMAT_VERSION,
    GraphInfo,
    HeadInfo,
    Manifest,
    TokenizerInfo,
    save_tokenizer,
    tool_versions,
    write_manifest,
)
from compress.catalog import Task
from compress.cpu import cpu_model, detect_isa
from compress.data import default_texts, is_residue_vocab, read_texts
from compress.export import TaskGraph, export_onnx, optimize_graph
from compress.gate import Attempt, Head, Judge, gated_search
from compress.head_graph import MultiHeadGraph, MultiHeadModel
from compress.prune.magnitude import store_sparse
from compress.prune.options import checkpoint_path, prune_for_run, search_for_run
from compress.quantize import Method, MethodConfig, QuantContext, get_method, quantize
from compress.quantize.graph import file_bytes, group_nodes, op_counts, weight_nodes
from compress.recipe import PruneStep, Recipe
from compress.report import summary_table, write_report
from compress.runtime import OnnxRunner, Runner, TorchRunner
from compress.session import session_settings
from compress.sources import LoadedModel
from compress.staging import check_writable, staged_directory
from compress.task_heads import HeadTask
from compress.task_judge import TaskJudge
from compress.timing import throughput
from compress.validate import ValidationSet, build_validation_set, collect, compare

log = logging.getLogger(__name__)
# 4-bit weights move a few percent of near-tied top-1 predictions; every other method must agree on 99 %.
DEFAULT_MIN_AGREEMENT = {"int4": 0.97}
SPARSE_MIN_OVERLAP = 0.95  # a sparse-embedding head's gate: its top-32 terms against the original's
CALIBRATION_TEXTS = 128  # default calibration set: enough for per-channel activation peaks


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class _Steps:
    """Numbered progress lines with timings, on stderr."""

    def __init__(self, total: int) -> None:
        self.total, self.n, self.t0 = total, 0, time.perf_counter()

    def __call__(self, msg: str) -> None:
        self.n += 1
        _progress(f"[{self.n}/{self.total}] {msg} (t={time.perf_counter() - self.t0:.1f}s)")


def _max_length(loaded: LoadedModel, recipe: Recipe) -> int:
    cfg = loaded.model.config
    limit = int(getattr(cfg, "max_position_embeddings", 512))
    if cfg.model_type in ("roberta", "xlm-roberta", "camembert"):
        limit -= 2  # positions start after the padding index
    limit = min(limit, int(min(loaded.tokenizer.model_max_length, 1_000_000)))
    return min(limit, recipe.max_length) if recipe.max_length else limit


def _heads(model: LoadedModel | MultiHeadModel) -> list[Head]:
    if isinstance(model, MultiHeadModel):
        return [Head(h.name, h.task, None if h.task == "fill-mask" else h.output) for h in model.heads]
    return [Head(model.task, cast(Task, model.task))]


@dataclass
class _Run:
    """What the stages share: the model (pruned once that stage ran), the recipe, validation texts."""

    loaded: LoadedModel  # a multi-head model's first head: tokenizer, source, family, notes
    multi: MultiHeadModel | None  # set for a multi-head artifact
    recipe: Recipe
    method: Method
    threads: int | None
    texts: list[str]
    max_length: int
    steps: _Steps
    isa: str = field(default_factory=detect_isa)
    original: LoadedModel | None = None  # the unpruned model, when pruned
    pruning: dict[str, Any] | None = None
    tasks: TaskJudge | None = None  # the recipe's task gates, their data read

    @property
    def task(self) -> Task:
        return cast(Task, self.multi.task if self.multi else self.loaded.task)

    def threshold(self, task: Task | HeadTask) -> float:
        v = self.recipe.validation
        if task == "embedding":
            return v.min_cosine
        if task == "sparse-embedding":
            return SPARSE_MIN_OVERLAP
        return v.min_agreement if v.min_agreement is not None else DEFAULT_MIN_AGREEMENT.get(self.method.name, 0.99)

    def graph(self, loaded: LoadedModel | None = None) -> TaskGraph | MultiHeadGraph:
        if self.multi is not None:
            return self.multi.graph
        loaded = loaded or self.loaded
        return TaskGraph(loaded.model, self.task, mask_token_id=loaded.tokenizer.mask_token_id,  # type: ignore[arg-type]
                         pooling=loaded.pooling)


@dataclass
class _Exported:
    info: dict[str, Any]  # export_onnx's record: opset, input and output names
    fp32: Path
    base: Path  # what quantization starts from: fp32, or the optimized graph
    judge: Judge  # validation sets, the (pruned) model's outputs on them, thresholds
    torch_runner: TorchRunner


@dataclass
class _Quantized(Attempt):
    file: Path = Path()
    config: MethodConfig | None = None
    runner: Runner | None = None
    sizes: dict[str, int] = field(default_factory=dict)


def _start(model: LoadedModel | MultiHeadModel, recipe: Recipe, threads: int | None) -> _Run:
    method = get_method(recipe.method)
    multi = model if isinstance(model, MultiHeadModel) else None
    loaded = model.loaded if isinstance(model, MultiHeadModel) else model
    if method.backend == "torch" and (recipe.prune or multi):
        raise CompressError(f"{method.name} makes a torch artifact that reloads through transformers, whose config "
                            "cannot describe per-layer head and neuron counts nor several heads; drop --prune/--heads "
                            "or pick an ONNX method")
    if multi and (recipe.prune or recipe.adapt):
        raise CompressError("prune: and adapt: are single-head steps: drop --heads, or those steps")
    if recipe.adapt and loaded.task != "fill-mask":
        raise CompressError(f"adapt: in a recipe trains the masked-LM that is then compressed, and this model loads "
                            f"as {loaded.task}; run `compress adapt MODEL --add-mlm-head --out DIR` and compress DIR")
    v = recipe.validation
    texts = read_texts(v.data) if v.data else default_texts(loaded.tokenizer, v.n)
    steps = _Steps(5 + bool(recipe.prune) + bool(recipe.adapt))
    run = _Run(loaded, multi, recipe, method, threads, texts, _max_length(loaded, recipe), steps)
    if v.gates:
        labels: dict[str, list[str] | None] = ({h.name: h.labels for h in multi.heads} if multi
                                                else {loaded.task: loaded.labels})
        run.tasks = TaskJudge.load(v.gates, _heads(model), labels, loaded.tokenizer, run.max_length, recipe.adapt)
    return run


def _adapt(run: _Run, out: Path) -> None:
    """Teach the model the recipe's new domain (compress adapt), then go on with the adapted model."""
    from compress.adapt.workflow import adapt_for_recipe

    assert run.recipe.adapt is not None
    run.loaded = adapt_for_recipe(run.loaded, run.recipe.adapt, out, announce=run.steps, progress=_progress)


def _prune(run: _Run, checkpoint: Path | None) -> None:
    prune = run.recipe.prune
    assert prune is not None
    run.original = run.loaded
    if prune.method == "auto":
        run.steps(f"searching for the fastest pruned model inside the task gates ({prune.target})")
        run.loaded, run.pruning = _search(run, prune)
        return
    run.steps(f"pruning ({prune.method}, {prune.target}) and recovering by distillation")
    run.loaded, run.pruning = prune_for_run(run.loaded, prune, run.texts, checkpoint, progress=_progress)


def _search(run: _Run, prune: PruneStep) -> tuple[LoadedModel, dict[str, Any]]:
    """``--prune auto``: candidates scored on the task gates as fp32 PyTorch models, against the original."""
    judge = run.tasks
    assert judge is not None  # the recipe refuses auto without gates
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if "token_type_ids" in
                                               run.loaded.tokenizer.model_input_names else [])

    def score(loaded: LoadedModel) -> dict[str, dict[str, float]]:
        return judge.measure(TorchRunner(run.graph(loaded), names, threads=run.threads))

    def passes(figures: dict[str, dict[str, float]]) -> bool:
        return all(judge.head_passes(s.head, figures) for s in judge.sets)

    judge.measure_original(TorchRunner(run.graph(run.loaded), names, threads=run.threads))
    return search_for_run(run.loaded, prune, run.texts, score, passes, original=judge.original, progress=_progress)


def _export(run: _Run, work: Path) -> _Exported:
    """Export the graph (and optimize it), then run the model it came from on the validation sets."""
    loaded, recipe = run.loaded, run.recipe
    graph = run.graph()
    heads = _heads(run.multi or loaded)
    what = f"graph with heads {', '.join(h.name for h in heads)}" if run.multi else f"{run.task} graph"
    run.steps(f"exporting {loaded.family} {what} to ONNX with optimum")
    fp32 = work / "model_fp32.onnx"
    info: dict[str, Any] = export_onnx(graph, fp32, recipe.opset)
    base = fp32
    if recipe.optimize:
        base = work / "model_opt.onnx"
        optimize_graph(fp32, base, recipe.optimize, loaded.model.config)
    run.steps("running the " + ("pruned" if run.pruning else "original") + " model on the validation set")
    sets: dict[str, ValidationSet] = {
        h.task: build_validation_set(h.task, loaded.tokenizer, run.texts, max_length=run.max_length) for h in heads}
    judge = Judge(heads, sets, {h.name: run.threshold(h.task) for h in heads}, tasks=run.tasks)
    torch_runner = TorchRunner(graph, info["inputs"], threads=run.threads)
    judge.reference = judge.collect(torch_runner, "original model")
    if run.tasks is not None:  # the model the user started from: before pruning, after adaptation
        original = TorchRunner(run.graph(run.original), info["inputs"], threads=run.threads) if run.original else None
        run.tasks.measure_original(original or torch_runner)
    return _Exported(info, fp32, base, judge, torch_runner)


def _quantize(run: _Run, ex: _Exported, tmp: Path) -> _Quantized:
    """Quantize with the recipe's method; ONNX methods go through the accuracy gate."""
    run.steps(f"{'copying fp32' if run.method.name == 'fp32' else 'quantizing: ' + run.method.name} and validating")
    config = run.recipe.quantize.for_cpu(run.isa)
    if run.method.backend == "torch":
        return _quantize_torch(run, ex, config, tmp)
    calibration = build_validation_set(run.task, run.loaded.tokenizer, _calibration_texts(run, config),
                                       max_length=run.max_length, batch_size=8).batches if config.calibrates() else []
    q = _gated_quantize(run, ex, config, QuantContext(isa=run.isa, calibration=calibration), tmp / "model.onnx")
    failing = ex.judge.failing(q)
    if failing and run.recipe.validation.gate:
        raise CompressError(f"{run.method.name} fails the accuracy gate on {', '.join(h.name for h in failing)} ("
                            + "; ".join(ex.judge.why(h, q) for h in failing) + "); pick another method, lower the "
                            "threshold or raise the task gate's tolerance, or pass --no-gate")
    if run.pruning is not None and run.pruning["method"] == "magnitude":
        q.sizes["dense_model_bytes"] = file_bytes(q.file)
        run.pruning["sparse_storage"] = store_sparse(q.file, q.file)
    return q


def _calibration_texts(run: _Run, config: MethodConfig) -> list[str]:
    """The recipe's calibration file, else in-domain texts held out from the validation set."""
    if config.calibration_file():
        return read_texts(config.calibration_file() or "")
    validation = set(run.texts)
    return [t for t in default_texts(run.loaded.tokenizer, CALIBRATION_TEXTS, seed=1) if t not in validation]


def _quantize_torch(run: _Run, ex: _Exported, config: MethodConfig, tmp: Path) -> _Quantized:
    """A torch method (bitsandbytes): the artifact keeps fp32 weights; quantization happens at load."""
    import copy

    from compress.quantize.bnb import weight_bytes

    loaded = run.loaded
    loaded.model.save_pretrained(str(tmp), safe_serialization=True)
    quantized = run.method.fn(copy.deepcopy(loaded.model), config)
    graph = TaskGraph(quantized, run.task, mask_token_id=loaded.tokenizer.mask_token_id,  # type: ignore[arg-type]
                      pooling=loaded.pooling)
    runner = TorchRunner(graph, ex.info["inputs"], threads=run.threads)
    outputs = ex.judge.collect(runner, "validating")
    sizes = {"fp32_memory_bytes": weight_bytes(loaded.model), "memory_bytes": weight_bytes(quantized)}
    details = {"backend": "torch", "quantized_at": "load", "note": "bitsandbytes is slower than fp32 on CPU"}
    return _Quantized(details, ex.judge.figures(outputs), outputs, task=ex.judge.task_figures(runner),
                      file=tmp / "model.safetensors", config=config, runner=runner, sizes=sizes)


def _gated_quantize(run: _Run, ex: _Exported, config: MethodConfig, ctx: QuantContext, dst: Path) -> _Quantized:
    """Quantize; while a head fails the gate, keep the most sensitive layers in fp32 and try again."""
    def attempt(exclude: list[str], label: str, batches: int | None) -> _Quantized:
        details = quantize(run.method.name, ex.base, dst, config, ctx, exclude)
        runner = OnnxRunner(dst, threads=run.threads)
        outputs = ex.judge.collect(runner, label, batches)
        task = ex.judge.task_figures(runner) if batches is None else {}
        return _Quantized(details, ex.judge.figures(outputs), outputs, exclude, task=task, file=dst, config=config,
                          runner=runner)

    nodes = weight_nodes(ex.base, run.method.op_types)
    q = gated_search(ex.judge, attempt, nodes, group_nodes(nodes), run.recipe.validation.gate, run.method.name)
    return cast(_Quantized, q)


def _against_original(run: _Run, ex: _Exported, q: _Quantized) -> dict[str, float]:
    """The whole change, pruning included, against the model the user started from."""
    if run.original is None:
        return {}
    runner = TorchRunner(run.graph(run.original), ex.info["inputs"], threads=run.threads)
    vs = ex.judge.sets[run.task]
    return compare(vs, collect(runner, vs, desc="unpruned original"), q.outputs[run.task])


def _speed(run: _Run, ex: _Exported, q: _Quantized, bench: bool) -> dict[str, Any]:
    if not bench or q.runner is None:
        run.steps("skipping speed measurement")
        return {}
    run.steps("measuring speed (original PyTorch vs artifact, one batch)")
    batch = max(ex.judge.sets[run.task].batches, key=lambda b: b["input_ids"].shape[0])
    speed = {"batch_size": int(batch["input_ids"].shape[0]), "seq_len": int(batch["input_ids"].shape[1]),
             "torch_fp32_seq_per_s": throughput(ex.torch_runner, batch),
             "artifact_seq_per_s": throughput(q.runner, batch)}
    speed["speedup"] = speed["artifact_seq_per_s"] / speed["torch_fp32_seq_per_s"]
    return speed


def _described(run: _Run) -> dict[str, Any]:
    """The manifest fields that say what the model is: labels, pooling, source, and heads when several."""
    loaded, multi = run.loaded, run.multi
    source = {**loaded.source.__dict__, "head": loaded.head, "extra_heads": loaded.extra_heads}
    if multi is None:
        embedding = run.task == "embedding"
        return {"labels": loaded.labels, "pooling": loaded.pooling if embedding else None,
                "normalize": loaded.normalize if embedding else False, "source": source}
    heads = [HeadInfo(name=h.name, task=h.task, output=h.output, labels=h.labels, pooling=h.pooling,
                      normalize=h.normalize) for h in multi.heads]
    return {"labels": multi.heads[0].labels, "source": {**source, "head": None, "heads": [h.name for h in heads]},
            "heads": heads}


def _manifest(run: _Run, ex: _Exported, q: _Quantized, name: str, speed: dict[str, Any]) -> Manifest:
    loaded, v = run.loaded, run.recipe.validation
    tok = loaded.tokenizer
    against = _against_original(run, ex, q)
    validation = ex.judge.record(q, v.data or "default", v.gate)
    return Manifest(
        format_version=FORMAT_VERSION, name=name, task=run.task, family=loaded.family,
        backend=run.method.backend, graph=GraphInfo(**{**ex.info, "file": q.file.name}),
        tokenizer=TokenizerInfo(max_length=run.max_length, mask_token=tok.mask_token,
                                split_chars=is_residue_vocab(tok)),
        recipe=run.recipe.stored(),
        quantization={"config": q.config.model_dump(mode="json") if q.config else {}, "details": q.details},
        excluded_nodes=q.excluded,
        sizes={"source_bytes": loaded.source.bytes, "fp32_onnx_bytes": file_bytes(ex.fp32),
               "model_bytes": file_bytes(q.file), **q.sizes},
        validation={**validation, **({"against_unpruned": against} if against else {}),
                    **({"session": session_settings("cpu", run.threads)} if run.method.backend == "onnxruntime"
                       else {})},
        speed=speed, tools=tool_versions(), cpu={"model": cpu_model(), "isa": run.isa},
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        notes=list(loaded.notes), op_counts=op_counts(q.file) if q.file.suffix == ".onnx" else {},  # type: ignore[call-arg]
        pruning=run.pruning, **_described(run),
    )


def compress_model(model: LoadedModel | MultiHeadModel, out: Path, *, name: str, recipe: Recipe,
                   force: bool = False, command: str = "", threads: int | None = None, bench: bool = True) -> Manifest:
    """Compress ``model`` into the artifact directory ``out`` with ``recipe``.

    Args:
        model: from :func:`compress.sources.load_model`, or several heads on one encoder from
            :func:`compress.head_graph.load_heads` (one graph, each head validated and gated).
        out: artifact directory to create.
        name: model name recorded in the manifest.
        recipe: how (stored in the manifest as it is).
        force: replace an existing artifact.
        command: the command line, recorded in the report.
        threads: CPU threads for validation and the speed measurement (default: all).
        bench: measure the speed of the original and the artifact.

    Returns:
        The written manifest.

    Raises:
        CompressError: bad input, or the accuracy gate cannot be met.

    Example:
        >>> compress_model(load_model("antiberty"), Path("artifacts/ab"), name="ab",  # doctest: +SKIP
        ...                recipe=Recipe.model_validate({"method": "int8", "optimize": "O1"}))
    """
    run = _start(model, recipe, threads)
    checkpoint = checkpoint_path(out, recipe.prune)
    if recipe.adapt or recipe.prune:
        check_writable(out, force)  # before the slow part
    if recipe.adapt:
        _adapt(run, out)
    if recipe.prune:
        _prune(run, checkpoint)
    with staged_directory(out, force) as tmp:
        exported = _export(run, tmp / "_work")
        quantized = _quantize(run, exported, tmp)
        manifest = _manifest(run, exported, quantized, name, _speed(run, exported, quantized, bench))
        run.steps("writing the artifact")
        save_tokenizer(run.loaded.tokenizer, tmp)
        run.loaded.model.config.save_pretrained(str(tmp))
        shutil.rmtree(tmp / "_work")
        write_manifest(tmp, manifest)
        write_report(tmp, manifest, command)
    if checkpoint is not None and checkpoint.exists() and not (recipe.prune and recipe.prune.checkpoint):
        checkpoint.unlink()  # the artifact is written: nothing left to resume
    _progress(summary_table(manifest, out))
    return manifest
