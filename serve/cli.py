"""`serve` command line: parse flags, set up the process, call :func:`serve.server.run`.

Heavy imports happen after parsing, so ``serve --help`` is instant.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from serve.config import ENV_API_KEY, ConfigError, Settings, parse_size, read_api_key


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="serve", description="Serve compressed MLM artifacts over HTTP: fill-mask, classification, embeddings "
        "(native and OpenAI-compatible). Models and their serving options come from models.yaml.")
    p.add_argument("--config", default="models.yaml", type=Path, help="models.yaml to serve (default ./models.yaml)")
    p.add_argument("--host", default="127.0.0.1", help="127.0.0.1 (default), 0.0.0.0 or ::")
    p.add_argument("--port", default=8000, type=int, help="default 8000")
    p.add_argument("--api-key-file", type=Path,
                   help=f"file whose first line is the API key clients must send (default: ${ENV_API_KEY}; "
                   "neither: no auth)")
    p.add_argument("--max-body-size", default="1MB", help="larger request bodies are answered 413 (default 1MB)")
    p.add_argument("--timeout", default=30.0, type=float, help="seconds a request may wait in the queue (default 30)")
    limits = p.add_argument_group("limits for every model (over models.yaml's serve: blocks)")
    for name, what in (("max-batch-size", "sequences per formed batch"),
                       ("max-batch-tokens", "padded tokens per forward pass"),
                       ("max-queue-requests", "requests admitted and not yet answered, per model; beyond: 429"),
                       ("max-queue-tokens", "their tokens, per model; beyond: 429")):
        limits.add_argument(f"--{name}", type=int, help=what)
    p.add_argument("--drain-grace", default=5.0, type=float,
                   help="on SIGTERM/SIGINT: seconds /ready answers 503 while requests are still served (default 5)")
    p.add_argument("--drain-timeout", default=30.0, type=float,
                   help="on SIGTERM/SIGINT: seconds until the server has exited, admitted requests answered "
                   "(default 30)")
    p.add_argument("--retry-after-hold", default=2.0, type=float,
                   help="seconds, at most, a 429 is held for a client that asks again before the Retry-After it "
                   "was given (default 2; 0: off)")
    p.add_argument("--watch", default=2.0, type=float, dest="watch_interval",
                   help="seconds between checks for a changed artifact, reloaded live (default 2; 0: off)")
    p.add_argument("--host-kind", default="native", choices=("native", "litserve", "ray"),
                   help="web host: native (default, one process, fastest), litserve (HTTP and inference "
                   "in separate processes) or ray (as --ray)")
    p.add_argument("--ray", dest="host_kind", action="store_const", const="ray",
                   help="deploy on Ray Serve: one deployment per model, replicas per models.yaml (needs "
                   "mlm-compress[scale])")
    p.add_argument("--ray-address", help="with --ray: join this Ray cluster (auto, ray://HOST:10001, HOST:6379; "
                   "default: start a local Ray on 127.0.0.1)")
    p.add_argument("--ray-ingress", default="haproxy", choices=("haproxy", "proxy"),
                   help="with --ray on a local Ray: HTTP reaches the replicas through HAProxy (default; each "
                   "replica answers HTTP itself) or through Ray Serve's Python proxy")
    p.add_argument("--api-servers", default=1, type=int, help="HTTP server processes (litserve host; default 1)")
    first = p.add_mutually_exclusive_group()
    first.add_argument("--compress", dest="full_recipe", action="store_true",
                       help="compress a missing artifact with the entry's whole recipe, adapt and prune steps "
                       "included (default: the plain recipe, quantize and optimize only; needs "
                       "mlm-compress[compress])")
    first.add_argument("--no-compress", dest="compress_missing", action="store_false",
                       help="fail instead of compressing a model whose artifact is missing")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.add_argument("--metrics-dir", help="litserve and local ray hosts: directory for Prometheus multiprocess files "
                   "(default: a fresh temp dir)")
    return p


def _prepare_metrics_dir(directory: str | None) -> tuple[Path, bool]:
    """An empty directory for prometheus_client's multiprocess mode, set before it is imported."""
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for f in path.glob("*.db"):  # an earlier run's values would be summed into this one's
            f.unlink()
        created = False
    else:
        path, created = Path(tempfile.mkdtemp(prefix="serve-metrics-")), True
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path, created


def _stop_on_sigterm() -> None:
    """SIGTERM stops the server like Ctrl-C does (workers and queues shut down), in the main process only."""
    main_pid = os.getpid()

    def handler(signum: int, frame: object) -> None:
        if os.getpid() != main_pid:  # a forked helper inherited this handler: behave as by default
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # LitServe forks after tokenizers load
    multiprocess = args.host_kind in ("litserve", "ray")  # the engine runs in other processes
    environ_before = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    metrics_dir, created = _prepare_metrics_dir(args.metrics_dir) if multiprocess else (None, False)
    _stop_on_sigterm()
    try:
        settings = Settings(config=args.config, host=args.host, port=args.port,
                            api_key=read_api_key(args.api_key_file), max_body_bytes=parse_size(args.max_body_size),
                            timeout=args.timeout, api_servers=args.api_servers, compress_missing=args.compress_missing,
                            full_recipe=args.full_recipe,
                            log_level=args.log_level, host_kind=args.host_kind, drain_grace=args.drain_grace,
                            drain_timeout=args.drain_timeout,
                            retry_after_hold=args.retry_after_hold, watch_interval=args.watch_interval,
                            ray_address=args.ray_address, ray_ingress=args.ray_ingress,
                            limits={k: getattr(args, k) for k in ("max_batch_size", "max_batch_tokens",
                                                                   "max_queue_requests", "max_queue_tokens")})
        from compress import CompressError
        from serve.server import run

        try:
            run(settings)
        except CompressError as e:
            raise ConfigError(str(e)) from None
    except ConfigError as e:
        print(f"serve: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        if created and metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        if metrics_dir is not None:  # called in-process (tests): later servers must not inherit a removed dir
            _restore_env("PROMETHEUS_MULTIPROC_DIR", environ_before)
    return 0


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


if __name__ == "__main__":
    sys.exit(main())
