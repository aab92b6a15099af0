"""Fine-tuning task heads on one shared encoder (`compress train`).

The public verb is :func:`train_model` with a :class:`TrainOptions` of :class:`TaskSpec`; the model
directory it writes loads with ``AutoModel*.from_pretrained`` (the encoder) and ``compress run``
(every head, as one multi-head artifact), and carries ``training.json``, the record of how it was made.
"""

from __future__ import annotations

from typing import Any

from compress.train.options import TaskSpec, TrainOptions

__all__ = ["TaskSpec", "TrainOptions", "train_model"]


def __getattr__(name: str) -> Any:
    # train_model pulls in torch and the training loop; the recipe needs only the options.
    if name == "train_model":
        from compress.train.workflow import train_model

        return train_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
