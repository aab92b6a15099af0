"""`compress run --heads`: one multi-head artifact, validated and gated head by head.

The stages are those of :func:`compress.pipeline.compress_model` (export, optimize, reference run,
quantize with the accuracy gate, speed, write), with one difference: every head is compared with
the original on the validation set of its task (masked texts for the fill-mask head, whole texts for
the classifiers), and the artifact passes only when every head does.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from compress import CompressError
from compress.artifact import FORMAT_VERSION, GraphInfo, HeadInfo, Manifest, TokenizerInfo, write_manifest
from compress.cpu import cpu_model, detect_isa
from compress.data import default_texts, is_residue_vocab, read_texts
from compress.export import export_onnx, optimize_graph
from compress.head_graph import MultiHeadModel
from compress.heads import HeadSpec

# The single-task pipeline's helpers, shared so both paths read a recipe the same way.
from compress.pipeline import (
    BNB_METHODS,
    SENSITIVITY_BATCHES,
    RunOptions,
    _max_length,
    _method_config,
    _progress,
    _Steps,
    _threshold,
    _tool_versions,
)
from compress.quantize import QuantContext, get_method, quantize
from compress.quantize.graph import file_bytes, group_nodes, op_counts, weight_nodes
from compress.report import summary_table, write_report
from compress.runtime import OnnxRunner, TorchRunner
from compress.staging import staged_directory
from compress.timing import throughput
from compress.validate import PRIMARY, ValidationSet, build_validation_set, closeness, collect, compare, primary

Outputs = dict[str, list[dict[str, np.ndarray]]]  # task -> one output dict per validation batch
Figures = dict[str, dict[str, float]]  # head name -> agreement figures


def head_outputs(outs: list[dict[str, np.ndarray]], head: HeadSpec) -> list[dict[str, np.ndarray]]:
    """A multi-head graph's outputs as the single-task graph of ``head`` names them."""
    if head.task == "fill-mask":
        return outs
    return [{"logits": o[head.output]} for o in outs]


def compare_heads(sets: dict[str, ValidationSet], ref: Outputs, cand: Outputs, heads: list[HeadSpec]) -> Figures:
    """Each head's figures against the original, on the validation set of its task."""
    return {h.name: compare(sets[h.task], head_outputs(ref[h.task], h), head_outputs(cand[h.task], h))
            for h in heads}


def failing_heads(figures: Figures, heads: list[HeadSpec], thresholds: dict[str, float]) -> list[HeadSpec]:
    return [h for h in heads if primary(h.task, figures[h.name]) < thresholds[h.name]]


def _collect_all(runner: Any, sets: dict[str, ValidationSet], label: str) -> Outputs:
    return {task: collect(runner, vs, desc=f"{label} ({task})") for task, vs in sets.items()}


def gated_quantize_heads(base: Path, dst: Path, opts: RunOptions, config: Any, ctx: QuantContext,
                         sets: dict[str, ValidationSet], ref: Outputs, heads: list[HeadSpec],
                         thresholds: dict[str, float]) -> tuple[dict[str, Any], Figures, list[str], dict[str, float]]:
    """Quantize; while a head fails the gate, keep the layers that head is most sensitive to in fp32.

    Returns the details, the per-head figures, the nodes kept in fp32 and the sensitivities.
    """
    def attempt(exclude: list[str], label: str, subset: int | None = None) -> tuple[dict[str, Any], Figures]:
        details = quantize(opts.method, base, dst, config, ctx, exclude)
        parts = {t: vs.head(subset) if subset else vs for t, vs in sets.items()}
        cand = _collect_all(OnnxRunner(dst, threads=opts.threads), parts, label)
        return details, compare_heads(parts, {t: ref[t][: len(parts[t].batches)] for t in parts}, cand, heads)

    details, figures = attempt([], "validating")
    failing = failing_heads(figures, heads, thresholds)
    if not failing or not opts.gate:
        return details, figures, [], {}
    worst = failing[0]
    _progress(f"  accuracy gate: head {worst.name} {PRIMARY[worst.task]} {primary(worst.task, figures[worst.name]):.4f}"
              f" < {thresholds[worst.name]}; measuring which layers it is sensitive to")
    nodes = weight_nodes(base, get_method(opts.method).op_types)
    groups = group_nodes(nodes)
    sensitivity = {}
    for name, members in groups.items():
        alone = [n for n in nodes if n not in set(members)]
        figs = attempt(alone, f"sensitivity {name}", subset=SENSITIVITY_BATCHES)[1]
        sensitivity[name] = closeness(worst.task, figs[worst.name])
    order = sorted(groups, key=lambda g: sensitivity[g])
    for k in range(1, len(order)):
        exclude = [n for g in order[:k] for n in groups[g]]
        _progress(f"  keeping {', '.join(order[:k])} in higher precision")
        details, figures = attempt(exclude, f"validating (-{k} groups)")
        if not failing_heads(figures, heads, thresholds):
            return details, figures, exclude, sensitivity
    raise CompressError(f"{opts.method} cannot bring every head to its gate even with one layer group quantized "
                        f"({', '.join(h.name for h in failing_heads(figures, heads, thresholds))} fail); lower the "
                        "threshold, pick another method, or pass --no-gate")


def _check(opts: RunOptions) -> None:
    if opts.method in BNB_METHODS or opts.prune:
        raise CompressError("--heads makes one ONNX graph; bitsandbytes methods and --prune are single-head only: "
                            "drop --heads, or pick fp32/int8/int8-static/int4/fp16 without --prune")
    if opts.method != "fp32":
        get_method(opts.method)
    if opts.method == "int8-static" and not opts.calibration:
        raise CompressError("--int8-static needs --calibration FILE (texts, one per line)")


def _validation_sets(mh: MultiHeadModel, opts: RunOptions, max_length: int) -> dict[str, ValidationSet]:
    tok = mh.loaded.tokenizer
    texts = read_texts(opts.validate) if opts.validate else default_texts(tok, opts.n_validate)
    return {task: build_validation_set(task, tok, texts, max_length=max_length)  # type: ignore[arg-type]
            for task in dict.fromkeys(h.task for h in mh.heads)}


def _quantized(mh: MultiHeadModel, base: Path, dst: Path, opts: RunOptions, sets: dict[str, ValidationSet],
               ref: Outputs, thresholds: dict[str, float], max_length: int) -> tuple[Any, dict[str, Any], Figures,
                                                                                     list[str], dict[str, float]]:
    """(method config, details, figures, excluded nodes, sensitivity) of the quantized graph at ``dst``."""
    if opts.method == "fp32":
        shutil.copyfile(base, dst)
        cand = _collect_all(OnnxRunner(dst, threads=opts.threads), sets, "validating")
        return None, {}, compare_heads(sets, ref, cand, mh.heads), [], {}
    isa = detect_isa()
    config = _method_config(opts, isa)
    calib = []
    if opts.method == "int8-static":
        calib = build_validation_set("classification", mh.loaded.tokenizer, read_texts(opts.calibration or ""),
                                     max_length=max_length, batch_size=8).batches
    details, figures, excluded, sensitivity = gated_quantize_heads(
        base, dst, opts, config, QuantContext(isa=isa, calibration=calib), sets, ref, mh.heads, thresholds)
    return config, details, figures, excluded, sensitivity


def _validation(sets: dict[str, ValidationSet], opts: RunOptions, heads: list[HeadSpec], figures: Figures,
                thresholds: dict[str, float], sensitivity: dict[str, float]) -> dict[str, Any]:
    """The manifest's validation: the first head's figures at the top (as a single-head artifact's), all per head."""
    per_head = {h.name: {**figures[h.name], "threshold": {PRIMARY[h.task]: thresholds[h.name]},
                         "passed": primary(h.task, figures[h.name]) >= thresholds[h.name]} for h in heads}
    first = sets[heads[0].task]
    return {"texts": first.n_texts, "items": first.n_items, "data": opts.validate or "default",
            **per_head[heads[0].name], "passed": all(v["passed"] for v in per_head.values()), "gate": opts.gate,
            "sensitivity": sensitivity, "heads": per_head}


def _speed(runner: TorchRunner, dst: Path, vs: ValidationSet, opts: RunOptions) -> dict[str, Any]:
    batch = max(vs.batches, key=lambda b: b["input_ids"].shape[0])
    speed = {"batch_size": int(batch["input_ids"].shape[0]), "seq_len": int(batch["input_ids"].shape[1]),
             "torch_fp32_seq_per_s": throughput(runner, batch),
             "artifact_seq_per_s": throughput(OnnxRunner(dst, threads=opts.threads), batch)}
    speed["speedup"] = speed["artifact_seq_per_s"] / speed["torch_fp32_seq_per_s"]
    return speed


def compress_heads(mh: MultiHeadModel, out: Path, *, name: str, opts: RunOptions, force: bool = False,
                   command: str = "") -> Manifest:
    """Compress a multi-head model (:func:`compress.heads.build_multihead`) into the artifact directory ``out``.

    Raises:
        CompressError: bad input, or a head cannot meet the accuracy gate.

    Example:
        >>> mh = build_multihead(partial(load_model, "ckpt"), parse_heads("mlm,species"))  # doctest: +SKIP
        >>> compress_heads(mh, Path("artifacts/ckpt-int8"), name="ckpt", opts=RunOptions())  # doctest: +SKIP
    """
    _check(opts)
    loaded, tok, steps = mh.loaded, mh.loaded.tokenizer, _Steps(5)
    max_length = _max_length(loaded, opts)
    thresholds = {h.name: _threshold(h.task, opts) for h in mh.heads}
    with staged_directory(out, force) as tmp:
        work, dst = tmp / "_work", tmp / "model.onnx"
        steps(f"exporting {loaded.family} graph with heads {', '.join(h.name for h in mh.heads)} to ONNX")
        fp32 = work / "model_fp32.onnx"
        ginfo = export_onnx(mh.graph, fp32, opts.opset)
        base = fp32
        if opts.optimize:
            base = work / "model_opt.onnx"
            optimize_graph(fp32, base, opts.optimize, mh.graph.config)
        steps("running the original model on the validation sets")
        sets = _validation_sets(mh, opts, max_length)
        torch_runner = TorchRunner(mh.graph, ginfo["inputs"], threads=opts.threads)  # type: ignore[arg-type]
        ref = _collect_all(torch_runner, sets, "original model")
        steps(f"{'copying fp32' if opts.method == 'fp32' else 'quantizing: ' + opts.method} and validating each head")
        config, details, figures, excluded, sensitivity = _quantized(mh, base, dst, opts, sets, ref, thresholds,
                                                                     max_length)
        validation = _validation(sets, opts, mh.heads, figures, thresholds, sensitivity)
        if not validation["passed"] and opts.gate:
            raise CompressError(f"{opts.method}: a head fails its gate ({validation['heads']}); pick another method, "
                                "lower the threshold, or pass --no-gate")
        steps("measuring speed (original PyTorch vs artifact, one batch)" if opts.bench else "skipping speed")
        speed = _speed(torch_runner, dst, sets[mh.task], opts) if opts.bench else {}
        steps("writing the artifact")
        tok.save_pretrained(str(tmp))
        mh.graph.config.save_pretrained(str(tmp))
        manifest = _manifest(mh, name, opts, ginfo, dst, fp32, max_length, validation, speed, excluded,
                             {"method_config": asdict(config) if config is not None else None, "details": details})
        shutil.rmtree(work)
        write_manifest(tmp, manifest)
        write_report(tmp, manifest, command)
    _progress(summary_table(manifest, out))
    return manifest


def _manifest(mh: MultiHeadModel, name: str, opts: RunOptions, ginfo: dict[str, Any], dst: Path, fp32: Path,
              max_length: int, validation: dict[str, Any], speed: dict[str, Any], excluded: list[str],
              method: dict[str, Any]) -> Manifest:
    loaded, tok = mh.loaded, mh.loaded.tokenizer
    heads = [HeadInfo(name=h.name, task=h.task, output=h.output, labels=h.labels) for h in mh.heads]
    return Manifest(
        format_version=FORMAT_VERSION, name=name, task=mh.task, family=loaded.family, backend="onnxruntime",
        graph=GraphInfo(**{**ginfo, "file": dst.name}),
        tokenizer=TokenizerInfo(max_length=max_length, mask_token=tok.mask_token, split_chars=is_residue_vocab(tok)),
        labels=mh.heads[0].labels, source={**asdict(loaded.source), "heads": [h.name for h in mh.heads]},
        recipe={**asdict(opts), **method, "heads": [h.model_dump() for h in mh.heads]}, excluded_nodes=excluded,
        sizes={"source_bytes": loaded.source.bytes, "fp32_onnx_bytes": file_bytes(fp32),
               "model_bytes": file_bytes(dst)},
        validation=validation, speed=speed, tools=_tool_versions(), cpu={"model": cpu_model(), "isa": detect_isa()},
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), notes=list(loaded.notes),
        op_counts=op_counts(dst), heads=heads,  # type: ignore[call-arg]
    )


def run_multihead(heads: list[HeadSpec], out: Path, *, name: str, opts: RunOptions, entry: Any = None,
                  spec: str | None = None, force: bool = False, command: str = "", **overrides: Any) -> Manifest:
    """Load the heads of a models.yaml ``entry`` or a path/hub ``spec`` and compress them into ``out``.

    Raises:
        CompressError: bad input, or a head cannot meet the accuracy gate.
    """
    from compress.head_graph import load_heads
    from compress.staging import check_writable

    _check(opts)
    check_writable(out, force)  # before the slow part
    mh = load_heads(heads, entry=entry, spec=spec, **overrides)
    for note in mh.loaded.notes:
        _progress(f"note: {note}")
    return compress_heads(mh, out, name=name, opts=opts, force=force, command=command)
