"""Which served name a request means: a model, one head of a multi-head model (``MODEL:HEAD``), or the
only one of the endpoint's task. The engine and the Ray host's ingress both choose with these."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from serve.errors import ServeError

if TYPE_CHECKING:
    from serve.models import ServedModel


def served_addresses(models: Iterable[ServedModel]) -> dict[str, ServedModel]:
    """Every addressable name of ``models`` (a model, or each head of a multi-head model) and the view
    that answers it."""
    return {a: v for m in models for a, v in m.addresses().items()}


def choose_address(served: dict[str, ServedModel], task: str, name: str | None, path: str = "") -> str:
    """The address a request of ``task`` names among ``served``, or the only one of its task.

    Raises:
        ServeError: 404 for a model not served for this task, 422 when several are and none is named.

    Example:
        >>> choose_address(served_addresses(models), "embedding", None)  # doctest: +SKIP
        'minilm'
    """
    mine = [a for a, v in served.items() if v.task == task]
    here = ", ".join(mine) or "none"
    if name is None and len(mine) == 1:
        return mine[0]
    if name is None and mine:
        raise ServeError("invalid_request", f"model is required: this endpoint serves {here}", "model")
    if name in mine:
        return name
    what = f"model {name!r} is not served at {path or 'this endpoint'}" if name else f"no {task} model is served"
    raise ServeError("model_not_found", f"{what}; models for this endpoint: {here}; all served models: "
                     f"{', '.join(served)} (GET /v1/models)", "model")
