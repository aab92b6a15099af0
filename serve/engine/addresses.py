"""Which served name a request means: a model, one head of a multi-head model (``MODEL:HEAD``), or the
only one of the endpoint's task. The engine and the Ray host's ingress both choose with these."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from serve.errors import ServeError

if TYPE_CHECKING:
    from serve.models import ServedModel


SPARSE = "sparse-embedding"


def no_sparse_head(served: dict[str, ServedModel], name: str) -> ServeError:
    """The 400 for a request of sparse embeddings to a served model that has no sparse-embedding head."""
    view = served[name]
    head = next((a for a, v in served.items() if v.spec.name == view.spec.name and v.task == SPARSE), None)
    if head is not None:
        fix = f"ask model {head!r}, its sparse-embedding head"
    elif any(v.spec.name == view.spec.name and v.task == "fill-mask" for v in served.values()):
        fix = ("its artifact was made without one: add a head {name: splade} beside its fill-mask head (models.yaml "
               "heads:, or compress run --heads mlm,splade) and rebuild it")
    else:
        fix = "sparse embeddings come from a masked-LM head (SPLADE), which it does not have"
    return ServeError("unsupported", f"model {name!r} ({view.task}) has no sparse-embedding head: {fix}", "model")


def served_addresses(models: Iterable[ServedModel]) -> dict[str, ServedModel]:
    """Every addressable name of ``models`` (a model, or each head of a multi-head model) and the view
    that answers it."""
    return {a: v for m in models for a, v in m.addresses().items()}


def choose_address(served: dict[str, ServedModel], task: str, name: str | None, path: str = "") -> str:
    """The address a request of ``task`` names among ``served``, or the only one of its task.

    Raises:
        ServeError: 404 for a model not served for this task (400 for sparse embeddings of a served model
            without a sparse-embedding head), 422 when several are and none is named.

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
    if task == SPARSE and name in served:
        raise no_sparse_head(served, name)
    what = f"model {name!r} is not served at {path or 'this endpoint'}" if name else f"no {task} model is served"
    raise ServeError("model_not_found", f"{what}; models for this endpoint: {here}; all served models: "
                     f"{', '.join(served)} (GET /v1/models)", "model")
