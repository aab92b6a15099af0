"""`python -m benchmarks SUBCOMMAND …`: each subcommand measures one thing and writes its report.

    python -m benchmarks run --models antiberty,minilm --variants torch-fp32,onnx-fp32,int8,int4
    python -m benchmarks run --quick --variants torch-fp32,int8 --check    # CI
    python -m benchmarks run --models minilm --variants torch-fp32 --runtimes all   # CPU runtimes side by side
    python -m benchmarks http --model minilm,antiberty --concurrency 16,256 --requests 2000
    python -m benchmarks http --model antiberty-region,minilm-rerank,antiberty-sparse --concurrency 16  # served tasks
    python -m benchmarks train                  # compress train's four cases, held out, fp32 and int8
    python -m benchmarks adapt                  # AntiBERTy -> TCR, with and without replay
    python -m benchmarks task-heads --cache artifacts/bench    # AntiBERTy: one multi-head artifact vs three
    python -m benchmarks bulk --artifact artifacts/minilm-int8 --layouts 1x2,2x1
    python -m benchmarks e2e --host-kind ray    # a served models.yaml against the fp32 originals, over HTTP
    python -m benchmarks st --artifacts artifacts/minilm-int8    # in-process against sentence-transformers
    python -m benchmarks loadtest --url http://127.0.0.1:8000 --model minilm    # a server you started
    python -m benchmarks headline               # README's headline figures from the reports
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from benchmarks.common.process import ServeStartError
from benchmarks.run.accuracy import QUICK_TASKS
from compress import CompressError


def _add_run(sub: Any) -> None:
    run = sub.add_parser("run", help="in-process speed and accuracy of each model x variant")
    run.add_argument("--models", default="antiberty,minilm", help="comma-separated benchmark models (models.yaml "
                     "names, minilm-topic, or the served tasks' antiberty-region, minilm-rerank and antiberty-sparse); "
                     "antiberty and minilm bring their sibling tasks")
    run.add_argument("--variants", default="torch-fp32,onnx-fp32,int8,int4", help="comma-separated variants")
    run.add_argument("--tasks", default=None, help="comma-separated accuracy tasks (default: every task of each "
                     "model; with --quick: " + ",".join(QUICK_TASKS) + ")")
    run.add_argument("--threads", type=int, default=None, help="threads on every side (default: all cores)")
    run.add_argument("--quick", action="store_true", help="fewer repeats, batch 32 and the medium bucket only, "
                     "the quick tasks")
    run.add_argument("--runtimes", default=None, help="comma-separated CPU runtimes to time side by side on each "
                     "model, with their agreement with torch-fp32 (ort-int8-dynamic, ort-int8-static, openvino-fp32, "
                     "openvino-int8-nncf; 'all' for every one); OpenVINO needs the openvino extra")
    run.add_argument("--no-speed", dest="speed", action="store_false", help="accuracy only")
    run.add_argument("--check", action="store_true", help="exit 1 when a variant misses its accuracy budget "
                     "(never for speed)")
    run.add_argument("--out", type=Path, default=Path("reports"), help="where the report files go")
    run.add_argument("--cache", type=Path, default=Path("artifacts/bench"), help="where variant artifacts are kept")
    run.add_argument("--rebuild", action="store_true", help="re-make cached artifacts")
    run.add_argument("--catalog", default="models.yaml")
    run.set_defaults(handler=_run)


def _add_http(sub: Any) -> None:
    http = sub.add_parser("http", help="the serving report: a real `serve` on 127.0.0.1 under bounded load at "
                          "several concurrencies, beside the in-process figure of the same artifact")
    http.add_argument("--model", required=True, help="comma-separated models.yaml names, or MODEL:HEAD for one head "
                      "of a multi-head model (antiberty:species), or a served task's benchmark model "
                      "(antiberty-region, minilm-rerank: a head trained briefly; antiberty-sparse: AntiBERTy's mlm "
                      "and splade heads; int8); each artifact is made when missing")
    http.add_argument("--artifact", type=Path, help="serve this artifact directory instead of the model's own")
    http.add_argument("--concurrency", default="16,256", help="comma-separated client counts (default 16,256)")
    http.add_argument("--requests", type=int, default=2000, help="requests per concurrency and round (default 2000)")
    http.add_argument("--rounds", type=int, default=1, help="in-process and HTTP runs, alternating (default 1)")
    http.add_argument("--texts", type=int, default=2000, help="distinct texts (default 2000)")
    http.add_argument("--threads", type=int, default=None, help="server and in-process threads (default: all cores)")
    http.add_argument("--soak-seconds", type=float, default=0.0, help="variable-shape soak with RSS at start and end "
                      "(default 0: none)")
    http.add_argument("--swap", action="store_true", help="replace the served artifact (a copy) under 16-client "
                      "load: failed requests, time until the new version answers")
    http.add_argument("--drain", action="store_true", help="end with SIGTERM under 16-client load")
    http.add_argument("--ignore-retry-after", action="store_true", help="the load's clients ask again at once after "
                      "a 429 instead of waiting its Retry-After")
    http.add_argument("--host-kind", default="native", choices=("native", "litserve", "ray"),
                      help="the server's web host (ray: serve --ray on a local Ray)")
    http.add_argument("--ray-replicas", type=int, help="--host-kind ray: replicas of the model (default 1)")
    http.add_argument("--streams", type=int, help="the server's forward passes at once per model (default: the "
                      "models.yaml entry's)")
    http.add_argument("--ray-ingress", default="haproxy", choices=("haproxy", "proxy"),
                      help="--host-kind ray: HTTP through HAProxy (default) or Ray Serve's proxy")
    http.add_argument("--ray-cpus", type=int, help="--host-kind ray: CPUs (and threads) per replica (default "
                      "--threads)")
    http.add_argument("--timeout", type=float, default=1800.0, help="seconds for serving and measuring, after "
                      "which it stops (default 1800)")
    http.add_argument("--in-process-seconds", type=float, default=10.0, help="each in-process run, per batch size "
                      "(default 10)")
    http.add_argument("--out", type=Path, default=Path("reports"), help="where http.json, http.md, http.png go")
    http.add_argument("--catalog", default="models.yaml")
    http.add_argument("--cache", type=Path, default=Path("artifacts/bench"), help="where the served tasks' "
                      "benchmark models (antiberty-region, minilm-rerank, antiberty-sparse) and their int8 artifacts "
                      "are kept")
    http.set_defaults(handler=_http)


def _add_bulk(sub: Any) -> None:
    bulk = sub.add_parser("bulk", help="bulk embedding on Ray Data (interrupted and resumed) beside in-process, "
                          "on BBC News paragraphs")
    bulk.add_argument("--artifact", type=Path, required=True, help="an embedding artifact directory")
    bulk.add_argument("--layouts", default="1x2,2x1", help="comma-separated ACTORSxCPUS per actor (default 1x2,2x1)")
    bulk.add_argument("--threads", type=int, default=None, help="in-process threads and Ray's CPUs (default: all)")
    bulk.add_argument("--limit", type=int, default=None, help="only the first N paragraphs")
    bulk.add_argument("--out", type=Path, default=Path("reports"), help="where bulk.json, bulk.md, bulk.png go")
    bulk.set_defaults(handler=_bulk)


def _add_adapt_train(sub: Any) -> None:
    ad = sub.add_parser("adapt", help="AntiBERTy adapted to T-cell receptors: original, without and with replay, "
                        "and the int8 artifact, on held-out mouse TCRs and antibodies")
    ad.add_argument("--cache", type=Path, default=Path("artifacts/adapt"), help="where adapted models are kept")
    ad.add_argument("--rebuild", action="store_true", help="adapt and compress anew")
    ad.add_argument("--out", type=Path, default=Path("reports"), help="where adapt.json, adapt.md, adapt.png go")
    ad.set_defaults(handler=_adapt)
    tr = sub.add_parser("train", help="compress train's cases from scratch (AntiBERTy regions with mlm and kept "
                        "heads; MiniLM topic, contrastive, rerank), int8 after, held out against today's figures")
    tr.add_argument("--cases", default="antiberty-multitask,minilm-topic,minilm-contrastive,minilm-rerank",
                    help="comma-separated cases (default: all four)")
    tr.add_argument("--out", type=Path, default=Path("reports/train"),
                    help="where the models, artifacts and train_report.{json,md,png} go")
    tr.set_defaults(handler=_train)


def _add_heads(sub: Any) -> None:
    mh = sub.add_parser("mask-head", help="gain of computing the LM head only at mask positions (vocab 30k)")
    mh.add_argument("--threads", type=int, default=None)
    mh.add_argument("--catalog", default="models.yaml")
    mh.set_defaults(handler=_mask_head)
    hd = sub.add_parser("task-heads", aliases=["heads"], help="AntiBERTy's multi-head artifact (task heads: "
                        "fill-mask, species, chain) against one artifact per head: size, agreement per head, time "
                        "to answer every head")
    hd.add_argument("--cache", type=Path, default=Path("artifacts/bench"), help="where the artifacts are kept")
    hd.add_argument("--catalog", default="models.yaml")
    hd.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: all cores)")
    hd.add_argument("--batch-size", type=int, default=32)
    hd.add_argument("--rebuild", action="store_true", help="re-make cached artifacts")
    hd.add_argument("--out", type=Path, default=Path("reports"), help="where task-heads.{json,md,png} go")
    hd.set_defaults(handler=_task_heads)


def _add_e2e_st(sub: Any) -> None:
    e2e = sub.add_parser("e2e", help="serve a models.yaml and check every model over HTTP against its fp32 "
                         "original (agreement, cosine), bad requests (4xx) and the API key (401)")
    e2e.add_argument("--catalog", type=Path, default=Path("models.yaml"))
    e2e.add_argument("--host-kind", default="native", choices=("native", "litserve", "ray"))
    e2e.add_argument("--n", type=int, default=300, help="texts per model (default 300)")
    e2e.add_argument("--out", type=Path, default=Path("reports"), help="where e2e-HOST.json and .md go")
    e2e.set_defaults(handler=_e2e)
    st = sub.add_parser("st", help="embedding artifacts in-process against sentence-transformers encode (fp32) "
                        "on BBC paragraphs: texts/s and cosine")
    st.add_argument("--artifacts", default="artifacts/minilm-int8", help="comma-separated embedding artifact dirs")
    st.add_argument("--model", default="minilm", help="models.yaml name whose source sentence-transformers loads")
    st.add_argument("--texts", type=int, default=1000)
    st.add_argument("--rounds", type=int, default=3)
    st.add_argument("--threads", type=int, default=None, help="threads on every side (default: all cores)")
    st.add_argument("--catalog", default="models.yaml")
    st.add_argument("--out", type=Path, default=Path("reports"), help="where st.json and st.md go")
    st.set_defaults(handler=_st)


def _add_loadtest(sub: Any) -> None:
    lt = sub.add_parser("loadtest", help="bounded closed-loop load against a server you started, beside the "
                        "same artifact in-process; prints JSON")
    lt.add_argument("--url", default="http://127.0.0.1:8000")
    lt.add_argument("--model", default="minilm")
    lt.add_argument("--path", default="/v1/embed")
    lt.add_argument("--concurrency", type=int, default=16)
    lt.add_argument("--requests", type=int, default=2000)
    lt.add_argument("--max-seconds", type=float, default=60.0)
    lt.add_argument("--api-key")
    lt.add_argument("--compare-artifact", help="also measure this artifact in-process on the same sentences")
    lt.add_argument("--batch-size", type=int, default=32, help="in-process batch size")
    lt.add_argument("--threads", type=int, help="in-process intra-op threads (default: all cores)")
    lt.add_argument("--rounds", type=int, default=1, help="alternate HTTP and in-process runs this many times")
    lt.set_defaults(handler=_loadtest)


def _add_headline(sub: Any) -> None:
    hl = sub.add_parser("headline", help="rewrite README's headline figures from the reports (and "
                        "docs/results/headline.md); --check: exit 1 when README's table differs")
    hl.add_argument("--reports", type=Path, default=Path("reports"), help="where the reports are (default reports)")
    hl.add_argument("--readme", type=Path, default=Path("README.md"))
    hl.add_argument("--out", type=Path, default=Path("docs/results/headline.md"), help="the generated page")
    hl.add_argument("--check", action="store_true", help="write nothing; exit 1 when README's table differs from "
                    "the reports'")
    hl.set_defaults(handler=_headline)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_add_run, _add_http, _add_bulk, _add_adapt_train, _add_heads, _add_e2e_st, _add_loadtest,
                _add_headline):
        add(sub)
    return p


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _threads(args: argparse.Namespace) -> int:
    from compress.session import default_threads

    return int(args.threads or default_threads())


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark the flags describe and write its reports under ``args.out``."""
    from benchmarks.run.bench import BenchOptions, run_benchmark
    from benchmarks.run.report import write_reports

    opts = BenchOptions(models=_split(args.models) or [], variants=_split(args.variants) or [],
                        threads=_threads(args), quick=args.quick, tasks=_split(args.tasks),
                        speed=args.speed, cache=args.cache, rebuild=args.rebuild, catalog=args.catalog,
                        runtimes=_runtimes(args.runtimes))
    report = run_benchmark(opts)
    write_reports(report, args.out)
    return report


def _runtimes(value: str | None) -> list[str]:
    if value == "all":
        from benchmarks.run.runtimes import RUNTIMES

        return list(RUNTIMES)
    return _split(value) or []


def _run(args: argparse.Namespace) -> int:
    report = run(args)
    print((args.out / "benchmark.md").read_text())
    print(f"JSON: {args.out / 'benchmark.json'}; plot: {args.out / 'benchmark.png'} ({report['seconds']:.0f} s)",
          file=sys.stderr)
    failed = [m for m in report["misses"] if m["kind"] != "speed"]
    if args.check and failed:
        print(f"check failed: {len(failed)} accuracy miss(es)", file=sys.stderr)
        return 1
    return 0


def _ray_options(args: argparse.Namespace) -> dict[str, int]:
    """models.yaml serve: options for --host-kind ray (replicas; CPUs per replica, its threads following)."""
    if args.host_kind != "ray":
        return {}
    cpus = args.ray_cpus or args.threads or os.cpu_count() or 1
    return {"replicas": args.ray_replicas or 1, "cpus": cpus, "threads": cpus}


def _http(args: argparse.Namespace) -> int:
    from benchmarks.http import report as http_report
    from benchmarks.http.measure import HttpOptions, run_http

    opts = HttpOptions(_split(args.model) or [], catalog=args.catalog, artifact=args.artifact,
                       concurrency=[int(c) for c in _split(args.concurrency) or []],
                       requests=args.requests, rounds=args.rounds, texts=args.texts, threads=args.threads,
                       soak_seconds=args.soak_seconds, drain=args.drain, swap=args.swap,
                       ignore_retry_after=args.ignore_retry_after, host_kind=args.host_kind,
                       ray_ingress=args.ray_ingress, timeout=args.timeout, in_process_seconds=args.in_process_seconds,
                       cache=args.cache,
                       serve_options={**_ray_options(args), **({"streams": args.streams} if args.streams else {})})
    report = run_http(opts)
    http_report.write_reports(report, args.out)
    print(http_report.markdown(report))
    print(f"JSON: {args.out / 'http.json'}; plot: {args.out / 'http.png'} ({report['seconds']:.0f} s)",
          file=sys.stderr)
    return 0


def _layout(value: str) -> tuple[int, int]:
    """``"2x1"`` -> (2 actors, 1 CPU each)."""
    actors, _, cpus = value.partition("x")
    if not (actors.isdigit() and cpus.isdigit() and int(actors) >= 1 and int(cpus) >= 1):
        raise ValueError(f"--layouts: cannot read {value!r}; write ACTORSxCPUS, e.g. 1x2,2x1")
    return int(actors), int(cpus)


def _bulk(args: argparse.Namespace) -> int:
    from benchmarks import bulk

    layouts = [_layout(v) for v in _split(args.layouts) or []]
    report = bulk.run_bulk_bench(args.artifact, layouts, _threads(args), args.limit)
    bulk.write_reports(report, args.out)
    print(bulk.markdown(report))
    return 0


def _adapt(args: argparse.Namespace) -> int:
    from benchmarks import adapt

    report = adapt.run(args.cache, args.rebuild)
    adapt.write_reports(report, args.out)
    print(adapt.markdown(report))
    return 0


def _train(args: argparse.Namespace) -> int:
    from benchmarks.training import cases
    from benchmarks.training import report as train_report

    result = cases.run_cases(_split(args.cases) or [], args.out,
                             progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(train_report.markdown(result))
    return 0


def _mask_head(args: argparse.Namespace) -> int:
    from benchmarks import mask_head

    print(mask_head.markdown(mask_head.run(_threads(args), args.catalog)))
    return 0


def _task_heads(args: argparse.Namespace) -> int:
    from benchmarks import task_heads

    report = task_heads.run(args.cache, args.catalog, _threads(args), args.batch_size, rebuild=args.rebuild)
    task_heads.write_reports(report, args.out)
    print(task_heads.markdown(report))
    print(f"JSON: {args.out / 'task-heads.json'}; plot: {args.out / 'task-heads.png'}", file=sys.stderr)
    return 0


def _e2e(args: argparse.Namespace) -> int:
    from benchmarks import e2e

    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / f"e2e-{args.host_kind}-serve.log"
    report = e2e.run_e2e(args.catalog, args.host_kind, args.n, log)
    path = e2e.write(report, args.out)
    print(e2e.markdown(report))
    print(f"report: {path}; server log: {log}", file=sys.stderr)
    return 0 if report.passed else 1


def _st(args: argparse.Namespace) -> int:
    from benchmarks import st
    from compress.catalog import load_catalog, resolve_location

    entry = load_catalog(args.catalog).get(args.model)
    artifacts = [Path(a) for a in _split(args.artifacts) or []]
    report = st.run(str(resolve_location(entry.source, entry.requires)), artifacts, args.texts, args.rounds,
                    _threads(args))
    st.write_reports(report, args.out)
    print(st.markdown(report))
    return 0


def _loadtest(args: argparse.Namespace) -> int:
    from benchmarks import loadtest

    opts = loadtest.LoadtestOptions(url=args.url, model=args.model, path=args.path, concurrency=args.concurrency,
                                    requests=args.requests, max_seconds=args.max_seconds, api_key=args.api_key,
                                    compare_artifact=args.compare_artifact, batch_size=args.batch_size,
                                    threads=args.threads, rounds=args.rounds)
    print(json.dumps(loadtest.run(opts), indent=2))
    return 0


def _headline(args: argparse.Namespace) -> int:
    from benchmarks import headline

    return headline.update(args.reports, args.readme, args.out, check=args.check)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    warnings.filterwarnings("ignore")
    try:
        return int(args.handler(args))
    except (CompressError, ValueError, ServeStartError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
