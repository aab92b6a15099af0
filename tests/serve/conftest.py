"""End-to-end fixtures: real `serve` processes on 127.0.0.1 over the packaged models, one per session.

- ``server``: AntiBERTy fill-mask, AntiBERTy species classifier, MiniLM embedder; API key on; small
  limits so each bad-input case is cheap to provoke.
- ``open_server``: MiniLM plus a tiny random BERT that has no artifact yet (compressed on first
  start); no API key.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from serve.loadtest import HttpClient

API_KEY = "test-key-123"
LIMITS = {"max_body_bytes": 64 * 1024, "minilm_max_items": 8, "minilm_max_length": 32, "max_items": 16}
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServeProcess:
    proc: subprocess.Popen
    url: str
    log: Path
    api_key: str | None
    config: Path

    def client(self, api_key: str | None = "default") -> HttpClient:
        return HttpClient(self.url, self.api_key if api_key == "default" else api_key)

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL whatever is left of the process group we started."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def start_server(config: Path, log: Path, *, api_key: str | None = None, extra: tuple[str, ...] = (),
                 wait_s: float = 300) -> ServeProcess:
    """Start `python -m serve` and wait until /health says every model is loaded and warmed up."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("SERVE_API_KEY", None)
    if api_key:
        env["SERVE_API_KEY"] = api_key
    cmd = [sys.executable, "-m", "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "info", *extra]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=config.parent,
                                start_new_session=True)
    server = ServeProcess(proc, f"http://127.0.0.1:{port}", log, api_key, config)
    deadline = time.monotonic() + wait_s
    client = HttpClient(server.url, timeout=5)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            if client.get("/health")[0] == 200:
                return server
        except OSError:
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"serve was not healthy after {wait_s}s:\n{server.log_tail()}")


def write_models(path: Path, entries: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"models": entries}, sort_keys=False))
    return path


def packaged_entry(name: str, artifact: Path, **serve_opts: object) -> dict:
    from compress.catalog import load_catalog

    entry = load_catalog(ROOT / "models.yaml").get(name).model_dump(exclude_none=True, exclude={"serve", "artifact"})
    return {**entry, "artifact": str(artifact), "serve": serve_opts}


@pytest.fixture(scope="session")
def server(packaged_artifact, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve-main")
    config = write_models(tmp / "models.yaml", [
        packaged_entry("antiberty", packaged_artifact("antiberty"), max_items=LIMITS["max_items"]),
        packaged_entry("antiberty-species", packaged_artifact("antiberty-species"), max_items=LIMITS["max_items"]),
        packaged_entry("minilm", packaged_artifact("minilm"), max_items=LIMITS["minilm_max_items"],
                       max_length=LIMITS["minilm_max_length"], truncate=True),
    ])
    proc = start_server(config, tmp / "serve.log", api_key=API_KEY,
                        extra=("--max-body-size", str(LIMITS["max_body_bytes"])))
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def open_server(packaged_artifact, tmp_path_factory):
    from tests.conftest import build_tiny

    tmp = tmp_path_factory.mktemp("serve-open")
    build_tiny(tmp / "tiny-src", "bert", "fill-mask")
    config = write_models(tmp / "models.yaml", [
        packaged_entry("minilm", packaged_artifact("minilm")),
        {"name": "tiny", "source": str(tmp / "tiny-src"), "task": "fill-mask", "recipe": {"method": "fp32"},
         "artifact": "artifacts/tiny-fp32", "serve": {"max_batch_size": 4, "threads": 1}},
    ])
    proc = start_server(config, tmp / "serve.log")
    yield proc
    proc.stop()


