"""The HTTP API over the engine: request and response models and the route of each task.

==============  ==========================  =================
task            routes                      module
==============  ==========================  =================
fill-mask       /v1/fill-mask               fill_mask
classification  /v1/classify                classify
embedding       /v1/embed, /v1/embeddings   embed
token-class.    /v1/token-classify          token_classify
rerank          /v1/rerank, /v1/score       rerank
sparse-embed.   /v1/embed-sparse            embed_sparse
tokenizer       /v1/(de)tokenize            tokenize
==============  ==========================  =================

Each module's ``routes(engine)`` gives a :class:`Route` (serve/apis/route.py) per path; the app
(serve/app.py) mounts them. An endpoint takes its request model, validated, and the request; it calls
:meth:`serve.engine.AppEngine.infer` and answers JSON made by pydantic's serializer, with the artifact
version in ``X-Model-Version``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from serve.apis.route import Route

if TYPE_CHECKING:
    from serve.engine import AppEngine

__all__ = ["Route", "task_routes"]


def task_routes(engine: AppEngine) -> list[Route]:
    """Every task's routes (a task with no model answers 404 listing the served ones)."""
    from serve.apis import classify, embed, embed_sparse, fill_mask, rerank, token_classify, tokenize

    return [*fill_mask.routes(engine), *classify.routes(engine), *embed.routes(engine),
            *embed_sparse.routes(engine), *token_classify.routes(engine), *rerank.routes(engine),
            *tokenize.routes(engine)]
