"""A real `serve` process on 127.0.0.1 for tests and benchmarks: start it, wait until ready, stop it.

    server = start_server(write_models(tmp / "models.yaml", [entry]), tmp / "serve.log")
    try:
        HttpClient(server.url).post("/v1/embeddings", {"model": "minilm", "input": "hello"})
    finally:
        server.stop()

The server runs in its own process group, so Ctrl-C in the terminal does not reach it: whoever starts
it stops it (``stop`` terminates, then kills the whole group). Process trees, memory and CPU time
through psutil (``mlm-compress[bench]``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common.load import HttpClient
from serve.ports import free_ports


class ServeStartError(RuntimeError):
    """The server exited or did not become healthy; the message ends with its log."""


def free_port() -> int:
    """A port free on 127.0.0.1, from the range that outgoing connections do not take (serve.ports)."""
    return free_ports("127.0.0.1", 1)[0]


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, grandchildren, ...); empty when ``pid`` is gone."""
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _tree(pid: int) -> list[Any]:
    import psutil

    procs = []
    for p in [pid, *descendants(pid)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            procs.append(psutil.Process(p))
    return procs


def tree_memory(pid: int) -> dict[str, int]:
    """Memory of ``pid`` and all its descendants, in bytes, summed over the processes.

    Returns ``rss`` (sum of resident sets now), ``pss`` (sum of proportional set sizes now: pages
    shared between processes, e.g. after a fork, split among them; 0 where it cannot be read) and
    ``processes``. Summed RSS counts shared pages once per process, so it overstates.
    """
    import psutil

    total = {"rss": 0, "pss": 0, "processes": 0}
    for p in _tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):  # it exited while we looked
            total["rss"] += p.memory_info().rss
            total["processes"] += 1
            with contextlib.suppress(psutil.AccessDenied):
                total["pss"] += getattr(p.memory_full_info(), "pss", 0)
    return total


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by ``pid`` and all its live descendants, in seconds."""
    import psutil

    total = 0.0
    for p in _tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
    return total


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

    def memory(self) -> dict[str, int]:
        """The server's process tree memory (see :func:`tree_memory`)."""
        return tree_memory(self.proc.pid)

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
                 wait_s: float = 300, port: int | None = None, python: str | None = None) -> ServeProcess:
    """Start `python -m serve` on 127.0.0.1 and wait until /health says every model is loaded and warmed up.

    Args:
        config: the models.yaml to serve; the server runs in its directory.
        log: file for the server's stdout and stderr.
        api_key: the key clients must send (None: no auth, whatever the environment says).
        extra: more `serve` flags.
        wait_s: how long to wait for /health to answer 200.
        port: default: a free port.
        python: the interpreter to run `serve` with, e.g. another virtual environment's (default: this
            one's); another interpreter does not inherit ``PYTHONPATH``.

    Raises:
        ServeStartError: the server exited, or was not healthy in time (it is stopped first).
    """
    port = port or free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("SERVE_API_KEY", None)
    if python is not None:
        env.pop("PYTHONPATH", None)
    if api_key:
        env["SERVE_API_KEY"] = api_key
    cmd = [python or sys.executable, "-m", "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "info", *extra]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=config.parent,
                                start_new_session=True)
    server = ServeProcess(proc, f"http://127.0.0.1:{port}", log, api_key, config)
    try:
        _wait_healthy(server, wait_s)
    except BaseException:  # Ctrl-C while waiting too: the server is in its own group and would outlive us
        server.stop()
        raise
    return server


def _wait_healthy(server: ServeProcess, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    client = HttpClient(server.url, timeout=5)
    try:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise ServeStartError(f"serve exited with {server.proc.returncode}:\n{server.log_tail()}")
            try:
                if client.get("/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
    finally:
        client.close()
    raise ServeStartError(f"serve was not healthy after {wait_s:.0f}s:\n{server.log_tail()}")


def write_models(path: Path, entries: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"models": entries}, sort_keys=False))
    return path
