"""What the HTTP app asks of an engine: the calls serve/app.py and the task routes (serve/apis/) make.

:class:`serve.engine.Engine` has them (the native and LitServe hosts, and each Ray replica). The Ray
host's ingress has its own object with them, which sends each request to its model's deployment
(serve/hosts/ray.py), and wraps a replica's engine to describe it as a deployment; neither subclasses
the engine.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from serve.engine.engine import Answer
    from serve.errors import ServeError
    from serve.models import ServedModel
    from serve.tokenizer import Text


class AppEngine(Protocol):
    """The engine as the HTTP app sees it; see :class:`serve.engine.Engine` for what each call does."""

    def served(self) -> dict[str, ServedModel]:
        """Every addressable name (a model, or ``MODEL:HEAD``) and the view that answers it."""
        ...

    async def infer(self, task: str, name: str | None, texts: Sequence[Text], params: dict[str, Any], *,
                    param: str = "inputs", path: str = "", client: Hashable | None = None) -> Answer:
        """Answer one request of ``task`` on model ``name``; raises :class:`ServeError`."""
        ...

    def refusal(self, task: str, client: Hashable | None = None) -> ServeError | None:
        """A 429 for ``client``'s request to ``task`` before its body is read, or None."""
        ...

    def describe(self, name: str) -> dict[str, Any]:
        """What ``/v1/models`` says of model ``name`` beyond the model's own description."""
        ...

    async def reload_requested(self, name: str) -> str:
        """``POST /v1/models/{id}/reload``: the version now served; raises :class:`ServeError` to refuse."""
        ...

    def live(self) -> tuple[bool, str]:
        """(alive, why not), for ``/live``."""
        ...

    def ready(self) -> tuple[bool, str]:
        """(ready, why not), for ``/ready`` and ``/health``."""
        ...
