"""Server settings (flags and environment) and the models to serve (models.yaml entries).

Per-model serving options live in each entry's ``serve:`` block (:class:`serve.options.ServeOptions`);
server-wide settings come from the command line and the environment.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from compress.catalog import ModelEntry

ENV_API_KEY = "SERVE_API_KEY"


class ConfigError(Exception):
    """A problem with the server's configuration; the message says how to fix it."""


@dataclass(frozen=True)
class Settings:
    config: Path = Path("models.yaml")
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    max_body_bytes: int = 1 << 20
    timeout: float = 30.0
    api_servers: int = 1
    compress_missing: bool = True
    full_recipe: bool = False  # serve --compress: a missing artifact gets the whole recipe (adapt, prune too)
    log_level: str = "info"
    host_kind: Literal["native", "litserve", "ray"] = "native"
    ray_address: str | None = None  # serve --ray: join this cluster (default: a local Ray on 127.0.0.1)
    ray_ingress: Literal["haproxy", "proxy"] = "haproxy"  # a local Ray's HTTP front (serve/hosts/ray_haproxy.py)
    drain_grace: float = 5.0
    drain_timeout: float = 30.0
    retry_after_hold: float = 2.0  # the longest a 429 to a client that came back early is held (serve/backoff.py)
    watch_interval: float = 2.0
    # per-model limits from the command line, over models.yaml's serve: blocks (None: as there)
    limits: dict[str, int | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.host not in ("127.0.0.1", "0.0.0.0", "::"):
            raise ConfigError(f"--host must be 127.0.0.1, 0.0.0.0 or :: (got {self.host!r})")
        if not 1024 <= self.port <= 65535:
            raise ConfigError(f"--port must be in 1024..65535 (got {self.port})")
        if self.max_body_bytes < 1024:
            raise ConfigError("--max-body-size must be at least 1024 bytes")
        if self.timeout <= 0:
            raise ConfigError("--timeout must be positive")
        if self.api_servers < 1:
            raise ConfigError("--api-servers must be at least 1")
        if self.api_servers > 1 and self.host_kind != "litserve":
            raise ConfigError("--api-servers applies to --host-kind litserve; the native host is one process "
                              "(run more replicas behind a load balancer, or on Ray, to scale out)")
        if self.ray_address and self.host_kind != "ray":
            raise ConfigError("--ray-address applies to serve --ray; add --ray")
        if self.ray_ingress != "haproxy" and self.host_kind != "ray":
            raise ConfigError("--ray-ingress applies to serve --ray; add --ray")
        if self.drain_grace < 0 or self.drain_timeout <= 0:
            raise ConfigError("--drain-grace must be >= 0 and --drain-timeout positive")
        if self.retry_after_hold < 0:
            raise ConfigError("--retry-after-hold must be >= 0 seconds (0 turns holding off)")
        if self.watch_interval < 0:
            raise ConfigError("--watch must be >= 0 seconds (0 turns watching off)")
        for name, value in self.limits.items():
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1 (got {value})")


def read_api_key(key_file: str | Path | None) -> str | None:
    """The API key from ``key_file`` (first line) or else ``$SERVE_API_KEY``; None turns auth off."""
    if key_file is not None:
        path = Path(key_file)
        try:
            lines = path.read_text().split()
        except OSError as e:
            raise ConfigError(f"cannot read the API key file {path}: {e.strerror}") from None
        key = lines[0] if lines else ""
        if not key:
            raise ConfigError(f"the API key file {path} is empty")
        return key
    return os.environ.get(ENV_API_KEY) or None


def parse_size(text: str) -> int:
    """``"1MB"``, ``"512KiB"``, ``"65536"`` -> bytes (binary units)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if m is None:
        raise ConfigError(f"cannot read size {text!r}; write e.g. 1MB, 512KB or 65536")
    return int(float(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()])


def load_entries(path: Path) -> list[ModelEntry]:
    """The models of a models.yaml file.

    Raises:
        ConfigError: the file is missing, invalid, or lists no model.
    """
    from compress import CompressError
    from compress.catalog import load_catalog

    try:
        catalog = load_catalog(path)
    except CompressError as e:
        raise ConfigError(str(e).replace("--models FILE", "--config FILE")) from None
    if not catalog.models:
        raise ConfigError(f"{path} lists no models; add one under `models:`")
    return catalog.models


def artifact_dir(entry: ModelEntry, base: Path) -> Path:
    """Where an entry's artifact lives; a relative path is read from models.yaml's directory."""
    path = entry.default_artifact()
    return path if path.is_absolute() else base / path


def apply_overrides(entries: list[ModelEntry], settings: Settings) -> list[ModelEntry]:
    """The entries with the command line's limits (``--max-batch-tokens`` ...) over models.yaml's."""
    update = {k: v for k, v in settings.limits.items() if v is not None}
    if not update:
        return entries
    return [e.model_copy(update={"serve": e.serve.model_validate({**e.serve.model_dump(), **update})})
            for e in entries]


def entries_to_serve(settings: Settings) -> list[ModelEntry]:
    """The models of ``settings.config`` with the command line's limits over their ``serve:`` blocks.

    Raises:
        ConfigError: as :func:`load_entries`.
    """
    return apply_overrides(load_entries(settings.config), settings)
