"""One forward pass of a multi-head model, split per head: each sequence gets the rows of the head it asked.

The pass returns every head's outputs (compress/head_graph.py); the sequences that asked a head are cut
out of its outputs, renamed as that head's single-task graph names them, and handed to the head's task
(serve/engine/tasks.py). Outputs of heads nobody in the pass asked for are dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from serve.engine.tasks import TASKS

if TYPE_CHECKING:
    from serve.models import ServedModel


def head_outputs(out: dict[str, np.ndarray], task: str, output: str, rows: list[int]) -> dict[str, np.ndarray]:
    """The outputs of one head for the sequences ``rows`` of the pass, numbered 0.. in that order."""
    if task == "embedding":
        return {"sentence_embedding": out[output][rows]}
    if task == "sparse-embedding":
        return {"sparse": out[output][rows]}
    if task != "fill-mask":
        return {"logits": out[output][rows]}
    positions = out["mask_positions"]
    renumber = np.full(max(int(positions[:, 0].max(initial=-1)), max(rows, default=0)) + 1, -1)
    renumber[rows] = np.arange(len(rows))
    keep = renumber[positions[:, 0]] >= 0
    new_positions = np.stack([renumber[positions[keep, 0]], positions[keep, 1]], axis=1)
    return {"mask_logits": out["mask_logits"][keep], "mask_positions": new_positions}


def head_rows(out: dict[str, np.ndarray], seqs: list[list[int]], model: ServedModel, params: list[dict[str, Any]],
              heads: list[str | None]) -> list[Any]:
    """One entry per sequence, each made by the task of the head it asked (``heads[i]``)."""
    rows: list[Any] = [None] * len(seqs)
    for name in dict.fromkeys(heads):
        view = model.view(name)
        assert view.head is not None  # a multi-head model's jobs always name their head
        picked = [i for i, h in enumerate(heads) if h == name]
        part = head_outputs(out, view.head.task, view.head.output, picked)
        made = TASKS[view.task].rows(part, [seqs[i] for i in picked], view, [params[i] for i in picked])
        for i, row in zip(picked, made, strict=True):
            rows[i] = row
    return rows
