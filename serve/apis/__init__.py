"""The HTTP API over the engine: request and response models and the route of each task.

==============  ==========================  =================
task            routes                      module
==============  ==========================  =================
fill-mask       /v1/fill-mask               fill_mask
classification  /v1/classify                classify
embedding       /v1/embed, /v1/embeddings   embed
==============  ==========================  =================

Each module's ``routes(engine)`` gives ``(path, endpoint, response model, summary, task)``; a host
(serve/hosts/) mounts them on its app. The endpoints validate with pydantic, call
:meth:`serve.engine.Engine.infer`, and answer JSON made by pydantic's serializer, with the artifact
version in ``X-Model-Version``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serve.engine import Engine

Route = tuple[str, Any, type, str, str]


def task_routes(engine: Engine) -> list[Route]:
    """Every task's routes (a task with no model answers 404 listing the served ones)."""
    from serve.apis import classify, embed, fill_mask

    return [*fill_mask.routes(engine), *classify.routes(engine), *embed.routes(engine)]
