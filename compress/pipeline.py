"""`compress run`: export, optimize, quantize, validate (with the accuracy gate), write the artifact."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import logging
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from compress import CompressError
from compress.artifact import (
    FORMAT_VERSION,
    GraphInfo,
    Manifest,
    TokenizerInfo,
    write_manifest,
)
from compress.bnb import BnbConfig, BnbKind, quantize_bnb, weight_bytes
from compress.catalog import Recipe
from compress.cpu import cpu_model, detect_isa
from compress.data import default_texts, is_residue_vocab, read_texts
from compress.export import TaskGraph, export_onnx, optimize_graph
from compress.prune.magnitude import store_sparse
from compress.prune.options import PruneOptions, checkpoint_path, prune_for_run
from compress.quantize import QuantContext, get_method, quantize
from compress.quantize.graph import file_bytes, group_nodes, op_counts, weight_nodes
from compress.quantize.int4 import Int4Config
from compress.quantize.int8_dynamic import PRESETS as INT8_PRESETS
from compress.quantize.int8_static import Int8StaticConfig
from compress.report import summary_table, write_report
from compress.runtime import OnnxRunner, TorchRunner
from compress.sources import LoadedModel
from compress.staging import check_writable, staged_directory
from compress.timing import throughput
from compress.validate import PRIMARY, ValidationSet, build_validation_set, closeness, collect, compare, primary

log = logging.getLogger(__name__)
# 4-bit weights move a few percent of near-tied top-1 predictions; every other method must agree on 99 %.
DEFAULT_MIN_AGREEMENT = {"int4": 0.97}
SENSITIVITY_BATCHES = 3  # batches of 32 used to rank layers by sensitivity
BNB_METHODS: dict[str, BnbKind] = {"bnb-int8": "int8", "bnb-nf4": "nf4"}
TOOLS = ("torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime", "mlm-compress")


@dataclass
class RunOptions:
    """Everything `compress run` can be told; recorded in the manifest as the recipe."""

    method: str = "int8"  # fp32 | int8 | int8-static | int4 | fp16
    optimize: str | None = None  # O1 | O2 | O3
    opset: int | None = None
    block_size: int = 32
    quantize_embeddings: bool | None = None
    calibration: str | None = None
    validate: str | None = None
    n_validate: int = 256
    min_agreement: float | None = None  # default: DEFAULT_MIN_AGREEMENT
    min_cosine: float = 0.99
    gate: bool = True
    threads: int | None = None
    bench: bool = True
    max_length: int | None = None
    prune: PruneOptions | None = None

    @classmethod
    def from_recipe(cls, recipe: Recipe, **overrides: Any) -> RunOptions:
        """A models.yaml recipe as run options, its ``prune:`` block included; ``overrides`` win."""
        prune = PruneOptions(**recipe.prune.model_dump()) if recipe.prune is not None else None
        opts = replace(cls(method=recipe.method, optimize=recipe.optimize, block_size=recipe.block_size,
                           quantize_embeddings=recipe.quantize_embeddings, calibration=recipe.calibration,
                           prune=prune), **overrides)
        if opts.method in BNB_METHODS:  # a torch artifact: no ONNX graph to optimize
            opts.optimize = None
        return opts


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class _Steps:
    """Numbered progress lines with timings, on stderr."""

    def __init__(self, total: int) -> None:
        self.total, self.n, self.t0 = total, 0, time.perf_counter()

    def __call__(self, msg: str) -> None:
        self.n += 1
        _progress(f"[{self.n}/{self.total}] {msg} (t={time.perf_counter() - self.t0:.1f}s)")


def _tool_versions() -> dict[str, str]:
    out = {}
    for name in TOOLS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def _method_config(opts: RunOptions, isa: str) -> Any:
    if opts.method == "int8":
        cfg = INT8_PRESETS.get(isa, INT8_PRESETS["generic"])
        return cfg if opts.quantize_embeddings is None else replace(cfg, quantize_embeddings=opts.quantize_embeddings)
    if opts.method == "int4":
        return Int4Config(block_size=opts.block_size, quantize_embeddings=bool(opts.quantize_embeddings))
    if opts.method == "int8-static":
        return Int8StaticConfig(reduce_range=INT8_PRESETS.get(isa, INT8_PRESETS["generic"]).reduce_range)
    return get_method(opts.method).config_cls()


def _max_length(loaded: LoadedModel, opts: RunOptions) -> int:
    cfg = loaded.model.config
    limit = int(getattr(cfg, "max_position_embeddings", 512))
    if cfg.model_type in ("roberta", "xlm-roberta", "camembert"):
        limit -= 2  # positions start after the padding index
    tok_max = int(min(loaded.tokenizer.model_max_length, 1_000_000))
    limit = min(limit, tok_max)
    return min(limit, opts.max_length) if opts.max_length else limit


def _threshold(task: str, opts: RunOptions) -> float:
    if task == "embedding":
        return opts.min_cosine
    if opts.min_agreement is not None:
        return opts.min_agreement
    return DEFAULT_MIN_AGREEMENT.get(opts.method, 0.99)


def _gated_quantize(base: Path, dst: Path, opts: RunOptions, config: Any, ctx: QuantContext,
                    vs: ValidationSet, ref: list, threshold: float,
                    ) -> tuple[dict[str, Any], dict[str, float], list[str], dict[str, float], list]:
    """Quantize; while the gate fails, keep the most sensitive layers in fp32 and try again.

    Returns the details, the figures, the nodes kept in fp32, the sensitivities, and the kept
    candidate's outputs on the whole validation set.
    """
    task = vs.task
    outputs: list = []  # the last full validation's outputs, returned with the figures

    def attempt(exclude: list[str], label: str, subset: int | None = None) -> tuple[dict[str, Any], dict[str, float]]:
        details = quantize(opts.method, base, dst, config, ctx, exclude)
        part = vs.head(subset) if subset else vs
        cand = collect(OnnxRunner(dst, threads=opts.threads), part, desc=label)
        if not subset:
            outputs[:] = cand
        return details, compare(part, ref[: len(part.batches)], cand)

    details, metrics = attempt([], "validating")
    if primary(task, metrics) >= threshold or not opts.gate:
        return details, metrics, [], {}, outputs
    _progress(f"  accuracy gate: {PRIMARY[task]} {primary(task, metrics):.4f} < {threshold}; "
              "measuring which layers are sensitive")
    nodes = weight_nodes(base, get_method(opts.method).op_types)
    groups = group_nodes(nodes)
    sensitivity = {}
    for name, members in groups.items():  # each group quantized alone, on a few batches
        alone = [n for n in nodes if n not in set(members)]
        sensitivity[name] = closeness(task, attempt(alone, f"sensitivity {name}", subset=SENSITIVITY_BATCHES)[1])
    order = sorted(groups, key=lambda g: sensitivity[g])
    for k in range(1, len(order)):
        exclude = [n for g in order[:k] for n in groups[g]]
        _progress(f"  keeping {', '.join(order[:k])} in higher precision")
        details, metrics = attempt(exclude, f"validating (-{k} groups)")
        if primary(task, metrics) >= threshold:
            return details, metrics, exclude, sensitivity, outputs
    raise CompressError(
        f"{opts.method} cannot reach {PRIMARY[task]} >= {threshold} even with only one layer group "
        f"quantized (best {primary(task, metrics):.4f}); lower the threshold, pick another method, "
        "or pass --no-gate to write it anyway (marked as failing)"
    )


def compress_model(loaded: LoadedModel, out: Path, *, name: str, opts: RunOptions, force: bool = False,
                   command: str = "") -> Manifest:
    """Compress ``loaded`` into the artifact directory ``out``.

    Args:
        loaded: from :func:`compress.sources.load_model`.
        out: artifact directory to create.
        name: model name recorded in the manifest.
        opts: the recipe.
        force: replace an existing artifact.
        command: the command line, recorded in the report.

    Returns:
        The written manifest.

    Raises:
        CompressError: bad input, or the accuracy gate cannot be met.
    """
    method = opts.method
    if method != "fp32" and method not in BNB_METHODS:
        get_method(method)
    if method == "int8-static" and not opts.calibration:
        raise CompressError("--int8-static needs --calibration FILE (texts, one per line)")
    calibration = opts.calibration or ""
    isa = detect_isa()
    task = loaded.task
    tok = loaded.tokenizer
    max_length = _max_length(loaded, opts)
    texts = read_texts(opts.validate) if opts.validate else default_texts(tok, opts.n_validate)
    steps = _Steps(6 if opts.prune else 5)
    original: LoadedModel | None = None
    pruning: dict[str, Any] | None = None
    checkpoint = checkpoint_path(out, opts.prune)
    if opts.prune:
        if method in BNB_METHODS:
            raise CompressError("--prune makes ONNX artifacts; bitsandbytes artifacts reload through "
                                "transformers, whose config cannot describe per-layer head and neuron counts")
        check_writable(out, force)  # before the slow part
        target = f"{opts.prune.speedup:g}x" if opts.prune.speedup else f"{opts.prune.fraction:g}"
        steps(f"pruning ({opts.prune.method}, {target}) and recovering by distillation")
        original = loaded
        loaded, pruning = prune_for_run(loaded, opts.prune, texts, checkpoint, progress=_progress)
    with staged_directory(out, force) as tmp:
        work = tmp / "_work"
        graph = TaskGraph(loaded.model, task, mask_token_id=tok.mask_token_id, pooling=loaded.pooling)
        steps(f"exporting {loaded.family} {task} graph to ONNX with optimum")
        fp32 = work / "model_fp32.onnx"
        ginfo = export_onnx(graph, fp32, opts.opset)
        base = fp32
        if opts.optimize:
            base = work / "model_opt.onnx"
            optimize_graph(fp32, base, opts.optimize, loaded.model.config)

        steps("running the " + ("pruned" if pruning else "original") + " model on the validation set")
        vs = build_validation_set(task, tok, texts, max_length=max_length)
        torch_runner = TorchRunner(graph, ginfo["inputs"], threads=opts.threads)  # type: ignore[arg-type]
        ref = collect(torch_runner, vs, desc="original model")

        steps(f"{'copying fp32' if method == 'fp32' else 'quantizing: ' + method} and validating")
        dst = tmp / "model.onnx"
        threshold = _threshold(task, opts)
        details: dict[str, Any] = {}
        config: Any = None
        excluded: list[str] = []
        sensitivity: dict[str, float] = {}
        sizes: dict[str, int] = {}
        if method == "fp32":
            shutil.copyfile(base, dst)
            cand_out = collect(OnnxRunner(dst, threads=opts.threads), vs, "validating")
            metrics = compare(vs, ref, cand_out)
        elif method in BNB_METHODS:
            config = BnbConfig(kind=BNB_METHODS[method])
            loaded.model.save_pretrained(str(tmp), safe_serialization=True)
            dst = tmp / "model.safetensors"
            quantized = quantize_bnb(copy.deepcopy(loaded.model), config)
            qgraph = TaskGraph(quantized, task, mask_token_id=tok.mask_token_id,  # type: ignore[arg-type]
                               pooling=loaded.pooling)
            cand = TorchRunner(qgraph, ginfo["inputs"], threads=opts.threads)  # type: ignore[arg-type]
            cand_out = collect(cand, vs, "validating")
            metrics = compare(vs, ref, cand_out)
            sizes = {"fp32_memory_bytes": weight_bytes(loaded.model), "memory_bytes": weight_bytes(quantized)}
            details = {"backend": "torch", "quantized_at": "load", "note": "bitsandbytes is slower than fp32 on CPU"}
        else:
            config = _method_config(opts, isa)
            calib = []
            if method == "int8-static":
                calib = build_validation_set(task, tok, read_texts(calibration), max_length=max_length,
                                             batch_size=8).batches
            ctx = QuantContext(isa=isa, calibration=calib)
            details, metrics, excluded, sensitivity, cand_out = _gated_quantize(
                base, dst, opts, config, ctx, vs, ref, threshold)
        passed = primary(task, metrics) >= threshold
        if not passed and opts.gate:
            raise CompressError(f"{method} gives {PRIMARY[task]} {primary(task, metrics):.4f} < {threshold}; "
                                "pick another method, lower the threshold, or pass --no-gate")
        if pruning is not None and pruning["method"] == "magnitude":
            sizes["dense_model_bytes"] = file_bytes(dst)
            pruning["sparse_storage"] = store_sparse(dst, dst)
        against_original: dict[str, float] = {}
        if original is not None:
            # The gate above measures quantization against the pruned model; users also want the
            # whole change, pruning included, against the model they started from.
            og = TaskGraph(original.model, task, mask_token_id=tok.mask_token_id, pooling=original.pooling)
            ref0 = collect(TorchRunner(og, ginfo["inputs"], threads=opts.threads), vs,  # type: ignore[arg-type]
                           desc="unpruned original")
            against_original = compare(vs, ref0, cand_out)  # the candidate's outputs from validation

        speed: dict[str, Any] = {}
        if opts.bench:
            steps("measuring speed (original PyTorch vs artifact, one batch)")
            batch = max(vs.batches, key=lambda b: b["input_ids"].shape[0])
            cand_runner = cand if method in BNB_METHODS else OnnxRunner(dst, threads=opts.threads)
            speed = {"batch_size": int(batch["input_ids"].shape[0]),
                     "seq_len": int(batch["input_ids"].shape[1]),
                     "torch_fp32_seq_per_s": throughput(torch_runner, batch),
                     "artifact_seq_per_s": throughput(cand_runner, batch)}
            speed["speedup"] = speed["artifact_seq_per_s"] / speed["torch_fp32_seq_per_s"]
        else:
            steps("skipping speed measurement")

        steps("writing the artifact")
        tok.save_pretrained(str(tmp))
        loaded.model.config.save_pretrained(str(tmp))
        recipe = {**asdict(opts), "method_config": asdict(config) if config is not None else None,
                  "details": details}
        manifest = Manifest(
            format_version=FORMAT_VERSION, name=name, task=task, family=loaded.family,
            backend="torch" if method in BNB_METHODS else "onnxruntime",
            graph=GraphInfo(**{**ginfo, "file": dst.name}),  # type: ignore[arg-type]
            tokenizer=TokenizerInfo(max_length=max_length, mask_token=tok.mask_token,
                                    split_chars=is_residue_vocab(tok)),
            labels=loaded.labels, pooling=loaded.pooling if task == "embedding" else None,
            normalize=loaded.normalize if task == "embedding" else False,
            source={**asdict(loaded.source), "head": loaded.head, "extra_heads": loaded.extra_heads},
            recipe=recipe, excluded_nodes=excluded,
            sizes={"source_bytes": loaded.source.bytes, "fp32_onnx_bytes": file_bytes(fp32),
                   "model_bytes": file_bytes(dst), **sizes},
            validation={"texts": vs.n_texts, "items": vs.n_items, "data": opts.validate or "default", **metrics,
                        "threshold": {PRIMARY[task]: threshold}, "passed": passed,
                        "gate": opts.gate, "sensitivity": sensitivity,
                        **({"against_unpruned": against_original} if against_original else {})},
            speed=speed, tools=_tool_versions(), cpu={"model": cpu_model(), "isa": isa},
            created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            notes=list(loaded.notes), op_counts=op_counts(dst) if dst.suffix == ".onnx" else {},  # type: ignore[call-arg]
            pruning=pruning,
        )
        shutil.rmtree(work)
        write_manifest(tmp, manifest)
        write_report(tmp, manifest, command)
    if checkpoint is not None and checkpoint.exists() and not (opts.prune and opts.prune.checkpoint):
        checkpoint.unlink()  # the artifact is written: nothing left to resume
    _progress(summary_table(manifest, out))
    return manifest
