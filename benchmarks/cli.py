"""`python -m benchmarks run …`: every variant beside the PyTorch baseline, as JSON, Markdown and PNG."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from compress import CompressError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="in-process speed and accuracy of each model x variant")
    run.add_argument("--models", default="antiberty,minilm", help="comma-separated models.yaml names")
    run.add_argument("--variants", default="torch-fp32,onnx-fp32,int8,int4", help="comma-separated variants")
    run.add_argument("--threads", type=int, default=None, help="threads on every side (default: all cores)")
    run.add_argument("--quick", action="store_true", help="fewer repeats, batch 32 and the medium bucket only")
    run.add_argument("--out", type=Path, default=Path("reports"), help="where the report files go")
    run.add_argument("--cache", type=Path, default=Path("artifacts/bench"), help="where variant artifacts are kept")
    run.add_argument("--rebuild", action="store_true", help="re-make cached artifacts")
    run.add_argument("--catalog", default="models.yaml")
    mh = sub.add_parser("mask-head", help="gain of computing the LM head only at mask positions (vocab 30k)")
    mh.add_argument("--threads", type=int, default=None)
    mh.add_argument("--catalog", default="models.yaml")
    return p


def run(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.report import write_reports
    from benchmarks.speed import SpeedJob, measure
    from benchmarks.variants import BASELINE, build_artifact
    from compress.cpu import cpu_model, detect_isa
    from compress.runtime import default_threads

    threads = args.threads or default_threads()
    models = [m for m in args.models.split(",") if m]
    variants = [v for v in args.variants.split(",") if v]
    results: list[dict[str, Any]] = []
    for model in models:
        for variant in variants:
            artifact = None if variant == BASELINE else str(build_artifact(model, variant, args.cache,
                                                                            args.catalog, args.rebuild))
            print(f"measuring {model} / {variant} ({threads} threads)", file=sys.stderr, flush=True)
            job = SpeedJob(model, variant, artifact, threads, catalog=args.catalog,
                           **({"batch_sizes": (32,), "buckets": ("medium",), "repeats": 3,
                               "latency_runs": 10} if args.quick else {}))
            res = measure(job)
            res["artifact"] = artifact
            if artifact:
                from compress.artifact import read_manifest

                m = read_manifest(artifact)
                res["size_bytes"] = m.sizes["model_bytes"]
                res["fp32_onnx_bytes"] = m.sizes["fp32_onnx_bytes"]
                res["validation"] = m.validation
            results.append(res)
    report = {"cpu": {"model": cpu_model(), "isa": detect_isa()}, "threads": threads, "results": results}
    write_reports(report, args.out)
    return report


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    warnings.filterwarnings("ignore")
    try:
        if args.command == "run":
            report = run(args)
            print((args.out / "benchmark.md").read_text())
            print(f"JSON: {args.out / 'benchmark.json'}; plot: {args.out / 'benchmark.png'}", file=sys.stderr)
            json.dumps(report)
        elif args.command == "mask-head":
            from benchmarks import mask_head
            from compress.runtime import default_threads

            print(mask_head.markdown(mask_head.run(args.threads or default_threads(), args.catalog)))
        return 0
    except (CompressError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
