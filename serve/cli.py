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
    p.add_argument("--api-servers", default=1, type=int, help="HTTP server processes (default 1)")
    p.add_argument("--no-compress", dest="compress_missing", action="store_false",
                   help="fail instead of compressing a model whose artifact is missing")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.add_argument("--metrics-dir", help="directory for Prometheus multiprocess files (default: a fresh temp dir)")
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
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the HTTP servers are forked after tokenizers load
    metrics_dir, created = _prepare_metrics_dir(args.metrics_dir)
    _stop_on_sigterm()
    try:
        settings = Settings(config=args.config, host=args.host, port=args.port,
                            api_key=read_api_key(args.api_key_file), max_body_bytes=parse_size(args.max_body_size),
                            timeout=args.timeout, api_servers=args.api_servers, compress_missing=args.compress_missing,
                            log_level=args.log_level)
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
        if created:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
