"""One LitAPI (inference worker) and one LitSpec (HTTP side) per task.

==============  ==========================  ===============
task            routes                      worker
==============  ==========================  ===============
fill-mask       /v1/fill-mask               FillMaskAPI
classification  /v1/classify                ClassifyAPI
embedding       /v1/embed, /v1/embeddings   EmbedAPI
==============  ==========================  ===============
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from serve.apis.base import TaskAPI, TaskSpec
    from serve.models import ServedModel


def build_apis(models: list[ServedModel], log_level: str = "info") -> tuple[list[TaskSpec], list[TaskAPI]]:
    """Specs for every task (a task with no model answers 404 listing the served ones) and a worker
    API for each task that has models."""
    from serve.apis.classify import ClassifyAPI, ClassifySpec
    from serve.apis.embed import EmbedAPI, EmbedSpec
    from serve.apis.fill_mask import FillMaskAPI, FillMaskSpec

    specs, apis = [], []
    for spec_cls, api_cls in ((FillMaskSpec, FillMaskAPI), (ClassifySpec, ClassifyAPI), (EmbedSpec, EmbedAPI)):
        mine = [m for m in models if m.task == spec_cls.task]
        spec = spec_cls(mine, models)
        specs.append(spec)
        if mine:
            apis.append(api_cls([m.spec for m in mine], spec, log_level))
    return specs, apis
