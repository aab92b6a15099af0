"""`python -m benchmarks http`: the serving report. A real `serve` on 127.0.0.1, under bounded load.

For each model (models.yaml names, or ``MODEL:HEAD`` for one head of a multi-head model, whose
requests then ask for that head's task; each artifact made with its recipe when missing) one server
is started and measured in this order:

1. **Rounds** (``--rounds``), each: the same artifact in-process on the same texts (sorted by length,
   tokenization included, and for sparse embeddings the server's pick of each vector's terms; at batch 1, 8
   and 32; with the server's session settings, one pass at a time and as many at once as its streams, and
   in a plain onnxruntime session: the best is the figure), then
   one load run per ``--concurrency`` level: closed-loop keep-alive clients, one input per request,
   that wait the ``Retry-After`` of a 429 before their next request (with ``--ignore-retry-after`` they
   ask again at once, as a naive client or load tool does; the server then holds their 429s). The first level
   sends ``--requests``; the others run for as long as it took, so their goodput compares like for
   like. In-process and HTTP alternate, so other load on the machine hits both alike; every figure is
   the median over the rounds.
2. **Soak** (``--soak-seconds``, off by default): 16 clients sending 1 to 4 texts per request, so
   shapes vary, and the server's memory at its start and end.
3. **Live swap** (``--swap``): the served artifact (a copy) is replaced as `compress --force` does
   while 16 clients send for 40 s: failed requests, and how soon the new version answered.
4. **Drain** (``--drain``): SIGTERM under 16-client load: how soon ``/ready`` says 503, how many
   requests were answered, refused at connect, or cut mid-flight, and how soon the server exited.

Texts: English models get BBC News body paragraphs (8+ words, at most 256 tokens); antibody models
get anarci germline V genes (fill-mask: one residue masked at random). Outputs: ``http.json``
(schema_version 2, keys in :data:`LEVEL_KEYS` and below), ``http.md`` (the table, also printed) and
``http.png`` (throughput and p99 against concurrency).

``http.json``: ``schema_version``, ``cpu``, ``threads``, ``host_kind``, ``ray_ingress`` (``haproxy`` or
``proxy`` with ``host_kind`` ray, else null), ``ignore_retry_after``, ``seconds``, ``timed_out``, and
``models``: one entry per model with ``model``, ``task``, ``endpoint``, ``artifact``, ``method``,
``texts`` (count, mean and p95 tokens), ``server_start_s``, ``in_process`` {``per_s``, ``batch_size``,
``streams``, ``plain``, ``plain_per_s`` (the best plain session), ``by_batch`` {``BATCH``,
``BATCHxSTREAMS`` or ``BATCH plain``: per_s}}, ``levels`` (one per concurrency, the median over rounds
of :data:`LEVEL_KEYS`, plus ``rounds``: the per-round values), ``soak``, ``swap`` and ``drain`` when run.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common.endpoints import ENDPOINTS, Item, request_body

if TYPE_CHECKING:
    from benchmarks.common.process import ServeProcess
    from compress.catalog import Catalog, ModelEntry

IN_PROCESS_BATCHES = (1, 8, 32)
TASK_MODEL_VARIANT = "int8"  # the variant served of a served task's benchmark model (benchmarks/common/task_models.py)
# vs_in_process: throughput / the best in-process run of all; vs_plain: / the best plain session's
# server_cpu_ms_per_request: server CPU time over the run / requests answered 200 (429s included in the cost)
# probe_*: one client in a process of its own during the levels after the first (its 429s' timing)
LEVEL_KEYS = ("requests", "throughput", "vs_in_process", "vs_plain", "ok_p50_ms", "ok_p99_ms", "p99_ms", "rejected",
              "rejected_p50_ms", "rejected_p99_ms", "probe_rejected", "probe_rejected_p99_ms", "server_errors",
              "errors", "formed_batch", "pass_size",
              "server_cpu_ms_per_request", "client_cpu_s", "rss_before_bytes", "rss_after_bytes", "seconds")


@dataclass
class HttpOptions:
    models: list[str]
    catalog: str = "models.yaml"
    artifact: Path | None = None  # only with one model: serve this artifact instead of the model's own
    concurrency: list[int] = field(default_factory=lambda: [16, 256])
    requests: int = 2000  # per concurrency level and round
    rounds: int = 1
    threads: int | None = None  # server and in-process; default all cores
    timeout: float = 1800.0  # for serving and measuring, all models together
    in_process_seconds: float = 10.0  # per batch size and round
    texts: int = 2000
    soak_seconds: float = 0.0
    drain: bool = False
    swap: bool = False
    ignore_retry_after: bool = False  # the load's clients ask again at once after a 429
    host_kind: str = "native"
    ray_ingress: str = "haproxy"  # host_kind ray: serve --ray-ingress
    serve_options: dict[str, Any] = field(default_factory=dict)  # over each entry's serve: block
    cache: Path = Path("artifacts/bench")  # the served tasks' benchmark models and artifacts

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("--model: name at least one models.yaml model")
        if self.artifact is not None and len(self.models) != 1:
            raise ValueError("--artifact serves one model: name exactly one with --model")
        for name in ("requests", "rounds", "texts"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1 (got {getattr(self, name)})")
        if not self.concurrency or min(self.concurrency) < 1:
            raise ValueError(f"--concurrency must be at least 1 (got {self.concurrency})")
        for name in ("timeout", "in_process_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive (got {getattr(self, name)})")
        if self.soak_seconds < 0:
            raise ValueError("--soak-seconds must be >= 0")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"--threads must be at least 1 (got {self.threads})")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def resolve_artifact(entry: ModelEntry, catalog: Path, override: Path | None = None) -> Path:
    """The artifact to serve: ``override``, else the entry's, compressed with its recipe when missing.

    Raises:
        ValueError: ``override`` is not an artifact directory.
    """
    from benchmarks.common import task_models
    from serve.config import artifact_dir
    from serve.models import compress_entry

    if override is not None:
        if not (override / "manifest.json").is_file():
            raise ValueError(f"{override} is not an artifact (no manifest.json); make one with `compress run`")
        return override.resolve()
    if task_models.is_task_model(entry.name):  # made (or reused) as `benchmarks run` makes its int8 variant
        from benchmarks.common.variants import build_artifact

        cache = Path(str(entry.artifact)).parent
        return build_artifact(entry.name, TASK_MODEL_VARIANT, cache, str(catalog)).resolve()
    path = artifact_dir(entry, catalog.parent).resolve()
    if not (path / "manifest.json").is_file():
        log(f"{entry.name}: no artifact at {path}; compressing it with its models.yaml recipe")
        compress_entry(entry, path, full_recipe=True)  # what `serve --compress` does on its first start
    return path


def model_target(catalog: Catalog, name: str, cache: Path = Path("artifacts/bench")) -> tuple[ModelEntry, str | None]:
    """The models.yaml entry that serves ``name`` (a model, or ``MODEL:HEAD`` for one head of a
    multi-head model, as requests name it; or a served task's benchmark model, whose int8 artifact is
    kept under ``cache``), and the head's task (None: the artifact's own). A benchmark model served with its
    encoder's own heads (``antiberty-sparse``) is asked as :func:`request_model` says.

    Raises:
        compress.CompressError: no such model or head; the message lists what there is.
    """
    from benchmarks.common import task_models
    from compress import CompressError

    base, _, head = name.partition(":")
    if task_models.is_task_model(name):
        entry = task_models.served_entry(name, cache / f"{name}-{TASK_MODEL_VARIANT}", cache, catalog)
        return entry, task_models.served_task(name) if entry.heads else None
    entry = catalog.get(base)
    if not head:
        return entry, None
    spec = next((h for h in entry.heads or [] if h.name == head), None)
    if spec is None:
        raise CompressError(f"{base} has no head {head!r}; its heads: "
                            f"{', '.join(h.name for h in entry.heads or []) or 'none'}")
    return entry, spec.task


def request_model(name: str) -> str:
    """The model name the requests to ``name`` carry (``antiberty-sparse:splade`` for ``antiberty-sparse``)."""
    from benchmarks.common import task_models

    return task_models.address(name) if task_models.is_task_model(name) else name


def _serve_entry(entry: ModelEntry, artifact: Path, threads: int, options: dict[str, Any]) -> dict[str, Any]:
    """The models.yaml entry the server gets: the catalog's, on ``artifact``, with the thread count set
    (``options`` over both, e.g. Ray's replicas and CPUs per replica)."""
    serve = {**entry.serve.model_dump(exclude_none=True), "threads": threads, **options}
    return {**entry.model_dump(exclude_none=True, exclude={"serve", "artifact"}), "artifact": str(artifact),
            "serve": serve}


def _level(server: ServeProcess, model: str, lane: str, task: str, texts: list[Item], clients: int,
           requests: int, deadline: float, probe: bool = False, patient: bool = True) -> dict[str, Any]:
    """One load run at ``clients`` concurrency (``requests`` or until ``deadline``), with the server's own
    figures around it (``lane``: the models.yaml model whose queue a request to ``model``, perhaps one of
    its heads, joins; ``patient``: the clients wait out a 429's Retry-After); with ``probe``, one more
    client in a process of its own times its answers and 429s (the load's own timings of a 429 include
    its many threads' wait for the GIL)."""
    from dataclasses import asdict

    from benchmarks.common.load import mean_batch_size, run_load, scrape
    from benchmarks.common.process import tree_cpu_seconds
    from benchmarks.http.phases import start_probe

    before, rss_before, cpu_before = scrape(server.url), server.memory()["rss"], tree_cpu_seconds(server.proc.pid)
    seconds = max(deadline - time.monotonic(), 1.0)
    probed = start_probe(server.url, ENDPOINTS[task], request_body(task, model, texts[0]), min(seconds, 20.0),
                         patient) if probe else None
    load = run_load(server.url, ENDPOINTS[task], lambda k: request_body(task, model, texts[k % len(texts)]),
                    concurrency=clients, requests=requests, max_seconds=seconds, honor_retry_after=patient)
    after, cpu = scrape(server.url), tree_cpu_seconds(server.proc.pid) - cpu_before
    times = probed.result(timeout=60) if probed is not None else {}
    refused = sorted(times.get("429", []))
    return {**asdict(load), "probe_rejected": len(refused),
            "probe_rejected_p99_ms": refused[int(0.99 * (len(refused) - 1))] if refused else 0.0,
            "formed_batch": mean_batch_size(before, after, lane),
            "pass_size": mean_batch_size(before, after, lane, "serve_pass_size"),
            "server_cpu_ms_per_request": 1000 * cpu / max(load.statuses.get(200, 0), 1),
            "rss_before_bytes": rss_before, "rss_after_bytes": server.memory()["rss"]}


def _in_process(artifact: Path, texts: list[Item], threads: int, seconds: float, streams: int | None,
                task: str | None = None) -> dict[str, Any]:
    """The artifact run directly on the texts sorted by length, at each batch size: one pass at a time and
    as many at once as the server runs (``streams``; default 2 on 2+ threads), with the server's session
    settings, and one pass at a time in a plain session (onnxruntime's defaults: ``B plain``); the best
    is the figure. For sparse embeddings (``task``) each vector's terms are picked as the server picks them."""
    from benchmarks.common.load import in_process_throughput
    from benchmarks.common.texts import item_length

    ordered = sorted(texts, key=item_length)
    runs: dict[str, dict[str, Any]] = {}
    configs = [(s, False) for s in sorted({1, streams or min(2, threads)})] + [(1, True)]  # (streams, plain)
    for s, plain in configs:
        for bs in IN_PROCESS_BATCHES:
            per_s = in_process_throughput(str(artifact), ordered, batch_size=bs, threads=threads, seconds=seconds,
                                          streams=s, plain=plain, task=task)
            key = f"{bs} plain" if plain else str(bs) if s == 1 else f"{bs}x{s}"
            runs[key] = {"per_s": per_s, "batch_size": bs, "streams": s, "plain": plain}
    best = max(runs.values(), key=lambda r: r["per_s"])
    plain_per_s = max(r["per_s"] for r in runs.values() if r["plain"])
    return {**best, "plain_per_s": plain_per_s, "by_batch": {k: r["per_s"] for k, r in runs.items()}}


def _median_levels(rounds: list[dict[int, dict[str, Any]]], inproc: list[dict[str, Any]]) -> list[dict[str, Any]]:
    levels = []
    for clients in rounds[0]:
        per_round = [r[clients] for r in rounds]
        for r, ip in zip(per_round, inproc, strict=True):
            r["vs_in_process"] = r["throughput"] / ip["per_s"] if ip["per_s"] else 0.0
            r["vs_plain"] = r["throughput"] / ip["plain_per_s"] if ip["plain_per_s"] else 0.0
        levels.append({"clients": clients, **{k: statistics.median(r[k] for r in per_round) for k in LEVEL_KEYS},
                       "statuses": per_round[-1]["statuses"], "rounds": per_round})
    return levels


def measure_model(name: str, opts: HttpOptions, threads: int, deadline: float) -> dict[str, Any]:
    """Serve one model and measure it (module docstring); the server is always stopped."""
    from benchmarks.common.load import run_load
    from benchmarks.common.process import start_server, write_models
    from benchmarks.common.task_models import artifact_task
    from benchmarks.common.texts import serving_texts
    from benchmarks.http.phases import drain_under_load, soak, swap_under_load
    from compress.artifact import read_manifest
    from compress.catalog import load_catalog

    catalog = Path(opts.catalog)
    entry, head_task = model_target(load_catalog(catalog), name, opts.cache)
    artifact = resolve_artifact(entry, catalog, opts.artifact)
    manifest = read_manifest(artifact)
    task = head_task or artifact_task(manifest)
    asked = request_model(name)
    texts, stats = serving_texts(artifact, opts.texts, task)
    out: dict[str, Any] = {"model": name, "task": task, "endpoint": ENDPOINTS[task], "artifact": str(artifact),
                           "method": manifest.method, "texts": stats}
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        if opts.swap:  # the swap replaces the served artifact: serve a copy
            artifact = Path(shutil.copytree(artifact, Path(tmp) / artifact.name))
        config = write_models(Path(tmp) / "models.yaml", [_serve_entry(entry, artifact, threads, opts.serve_options)])
        log(f"{name}: starting serve ({opts.host_kind} host) on {artifact}")
        started = time.monotonic()
        server = start_server(config, Path(tmp) / "serve.log", wait_s=max(deadline - time.monotonic(), 1.0),
                              extra=("--no-compress", "--host-kind", opts.host_kind, "--drain-grace", "1",
                                     *(("--ray-ingress", opts.ray_ingress) if opts.host_kind == "ray" else ())))
        try:
            out["server_start_s"] = round(time.monotonic() - started, 1)
            run_load(server.url, ENDPOINTS[task], lambda k: request_body(task, asked, texts[k % len(texts)]),
                     concurrency=16, requests=64, max_seconds=max(deadline - time.monotonic(), 1.0))  # warm-up
            rounds: list[dict[int, dict[str, Any]]] = []
            inproc: list[dict[str, Any]] = []
            for i in range(1, opts.rounds + 1):
                inproc.append(_in_process(artifact, texts, threads, opts.in_process_seconds,
                                           opts.serve_options.get("streams"), task))
                log(f"{name} round {i}: in-process {inproc[-1]['per_s']:.1f}/s at batch {inproc[-1]['batch_size']} "
                    f"x{inproc[-1]['streams']}")
                rounds.append({})
                for k, clients in enumerate(opts.concurrency):
                    # the first level sends --requests; the others run as long, so goodput compares like for like
                    first = next(iter(rounds[-1].values()), None)
                    until = deadline if first is None else min(deadline, time.monotonic() + first["seconds"])
                    rounds[-1][clients] = _level(server, asked, entry.name, task, texts, clients,
                                                 opts.requests if k == 0 else 10**9, until, probe=k > 0,
                                                 patient=not opts.ignore_retry_after)
                    log(f"  {clients} clients: {rounds[-1][clients]['throughput']:.1f} answered/s, "
                        f"{rounds[-1][clients]['rejected']} refused (429)")
            out["in_process"] = {"per_s": statistics.median(r["per_s"] for r in inproc),
                                 "batch_size": inproc[-1]["batch_size"], "streams": inproc[-1]["streams"],
                                 "plain": inproc[-1]["plain"],
                                 "plain_per_s": statistics.median(r["plain_per_s"] for r in inproc),
                                 "by_batch": inproc[-1]["by_batch"],
                                 "rounds": inproc}
            out["levels"] = _median_levels(rounds, inproc)
            if opts.soak_seconds:
                out["soak"] = soak(server, asked, task, texts, opts.soak_seconds)
            if opts.swap:
                out["swap"] = swap_under_load(server, artifact, asked, task, texts)
            if opts.drain:
                out["drain"] = drain_under_load(server, asked, task, texts)
        finally:
            server.stop()
    return out


def run_http(opts: HttpOptions) -> dict[str, Any]:
    """Measure every model of ``opts`` (module docstring); returns the report.

    Raises:
        compress.CompressError: unknown model name (the message lists the known ones), or the artifact
            could not be made.
        ValueError: bad options or ``--artifact``.
        benchmarks.common.process.ServeStartError: a server did not start; its log is in the message.

    Example:
        >>> report = run_http(HttpOptions(["minilm"], concurrency=[16, 256], requests=500))  # doctest: +SKIP
    """
    from compress.catalog import load_catalog
    from compress.cpu import cpu_model, detect_isa
    from compress.session import default_threads

    t0 = time.monotonic()
    catalog = load_catalog(opts.catalog)
    for name in opts.models:
        model_target(catalog, name, opts.cache)  # unknown names fail before anything starts
    threads = opts.threads or default_threads()
    deadline = time.monotonic() + opts.timeout
    report: dict[str, Any] = {"schema_version": 2, "cpu": {"model": cpu_model(), "isa": detect_isa()},
                              "threads": threads, "host_kind": opts.host_kind,
                              "ray_ingress": opts.ray_ingress if opts.host_kind == "ray" else None,
                              "ignore_retry_after": opts.ignore_retry_after,
                              "concurrency": opts.concurrency, "requests": opts.requests, "rounds": opts.rounds,
                              "models": []}
    for name in opts.models:
        if time.monotonic() >= deadline:
            break
        report["models"].append(measure_model(name, opts, threads, deadline))
    report["timed_out"] = len(report["models"]) < len(opts.models) or any(
        m["levels"][0]["requests"] < opts.requests for m in report["models"])
    report["seconds"] = round(time.monotonic() - t0, 1)
    return report
