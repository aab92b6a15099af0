"""Run the server: read models.yaml, make the models ready (compressing missing artifacts), hand them
to the chosen host (serve/hosts/)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from serve.config import ConfigError

if TYPE_CHECKING:
    from serve.config import Settings

log = logging.getLogger("serve")


def run(settings: Settings) -> None:
    """Prepare the models and serve them until stopped.

    Raises:
        ConfigError: bad configuration, or the server failed (the message says why).
    """
    from serve.config import entries_to_serve
    from serve.models import prepare_models

    if settings.host_kind == "litserve":
        import importlib.util

        if importlib.util.find_spec("litserve") is None:
            raise ConfigError("--host-kind litserve needs LitServe: pip install 'mlm-compress[litserve]'")
    if settings.host_kind == "ray":
        from serve.raycluster import import_ray

        import_ray(local=settings.ray_address is None)  # without Ray, say what to install before anything else
    entries = entries_to_serve(settings)
    models = prepare_models(entries, Path(settings.config).resolve().parent, settings.compress_missing,
                            settings.full_recipe)
    for m in models:
        log.info("serving %s (%s) at %s from %s", m.name, m.task, m.describe()["endpoint"], m.spec.artifact)
    if settings.api_key is None:
        log.warning("no API key set (SERVE_API_KEY or --api-key-file): every endpoint is open")
    if settings.host_kind == "litserve":
        from serve.hosts.litserve import serve
    elif settings.host_kind == "ray":
        from serve.hosts.ray import serve
    else:
        from serve.hosts.native import serve
    serve(models, settings)
