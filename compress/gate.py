"""The accuracy gate: a candidate graph against the original, head by head, and the search that keeps
the layers a failing head is most sensitive to in higher precision until every head passes.

A single-task artifact has one head (its task's own outputs); a multi-head artifact one per head,
each compared on the validation set of its task.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from compress import CompressError
from compress.validate import PRIMARY, ValidationSet, closeness, collect, compare, primary

if TYPE_CHECKING:
    import numpy as np

    from compress.catalog import Task
    from compress.runtime import Runner
    from compress.task_heads import HeadTask

Outputs = dict[str, list[dict[str, "np.ndarray"]]]  # task -> one output dict per validation batch
Figures = dict[str, dict[str, float]]  # head name -> its figures
SENSITIVITY_BATCHES = 3  # batches of 32 used to rank layers by sensitivity


@dataclass(frozen=True)
class Head:
    """What the gate judges: a task's outputs, or (multi-head graphs) one classifier's logits output."""

    name: str
    task: Task | HeadTask
    output: str | None = None  # a multi-head graph's output of this head; None: the task's own outputs

    def outputs(self, outs: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """This head's outputs under the names its task's single-task graph gives them."""
        if self.output is None:
            return outs
        name = {"embedding": "sentence_embedding", "sparse-embedding": "sparse"}.get(self.task, "logits")
        return [{name: o[self.output]} for o in outs]


@dataclass
class Judge:
    """The heads, their validation sets (one per task), the original's outputs and each head's threshold."""

    heads: list[Head]
    sets: dict[str, ValidationSet]
    thresholds: dict[str, float]
    reference: Outputs = field(default_factory=dict)

    def collect(self, runner: Runner, label: str, subset: int | None = None) -> Outputs:
        return {task: collect(runner, vs.head(subset) if subset else vs, desc=label)
                for task, vs in self.sets.items()}

    def figures(self, outputs: Outputs) -> Figures:
        """Each head's figures on as many batches as ``outputs`` holds."""
        figures = {}
        for h in self.heads:
            n = len(outputs[h.task])
            vs = self.sets[h.task].head(n)
            figures[h.name] = compare(vs, h.outputs(self.reference[h.task][:n]), h.outputs(outputs[h.task]))
        return figures

    def failing(self, figures: Figures) -> list[Head]:
        return [h for h in self.heads if primary(h.task, figures[h.name]) < self.thresholds[h.name]]

    def record(self, figures: Figures, sensitivity: dict[str, float], data: str, gate: bool) -> dict[str, Any]:
        """The manifest's ``validation``: the first head's figures at the top, every head's under ``heads``."""
        per_head = {h.name: {**figures[h.name], "threshold": {PRIMARY[h.task]: self.thresholds[h.name]},
                             "passed": primary(h.task, figures[h.name]) >= self.thresholds[h.name]}
                    for h in self.heads}
        first = self.sets[self.heads[0].task]
        record = {"texts": first.n_texts, "items": first.n_items, "data": data, **per_head[self.heads[0].name],
                  "passed": all(v["passed"] for v in per_head.values()), "gate": gate, "sensitivity": sensitivity}
        return {**record, "heads": per_head} if len(self.heads) > 1 else record


@dataclass
class Attempt:
    """One quantized candidate: what the method reported, its figures and outputs, the nodes kept."""

    details: dict[str, Any]
    figures: Figures
    outputs: Outputs
    excluded: list[str] = field(default_factory=list)
    sensitivity: dict[str, float] = field(default_factory=dict)


def gated_search(judge: Judge, attempt: Callable[[list[str], str, int | None], Attempt], nodes: list[str],
                 groups: dict[str, list[str]], gate: bool, method: str) -> Attempt:
    """Quantize (``attempt(exclude, label, batches)``); while a head fails, rank the layer groups by how
    much quantizing each alone costs that head, and keep the worst in higher precision, one more each try.

    Raises:
        CompressError: some head fails even with a single group quantized.
    """
    first = attempt([], "validating", None)
    failing = judge.failing(first.figures)
    if not failing or not gate:
        return first
    worst = failing[0]
    print(f"  accuracy gate: {worst.name} {PRIMARY[worst.task]} {primary(worst.task, first.figures[worst.name]):.4f}"
          f" < {judge.thresholds[worst.name]}; measuring which layers are sensitive", file=sys.stderr, flush=True)
    sensitivity = {}
    for name, members in groups.items():  # each group quantized alone, on a few batches
        alone = [n for n in nodes if n not in set(members)]
        figures = attempt(alone, f"sensitivity {name}", SENSITIVITY_BATCHES).figures
        sensitivity[name] = closeness(worst.task, figures[worst.name])
    order = sorted(groups, key=lambda g: sensitivity[g])
    best = first
    for k in range(1, len(order)):
        print(f"  keeping {', '.join(order[:k])} in higher precision", file=sys.stderr, flush=True)
        best = attempt([n for g in order[:k] for n in groups[g]], f"validating (-{k} groups)", None)
        best.sensitivity = sensitivity
        if not judge.failing(best.figures):
            return best
    still = ", ".join(f"{h.name} {primary(h.task, best.figures[h.name]):.4f} < {judge.thresholds[h.name]}"
                      for h in judge.failing(best.figures))
    raise CompressError(f"{method} cannot pass the accuracy gate even with only one layer group quantized "
                        f"({still}); lower the threshold, pick another method, or pass --no-gate to write it "
                        "anyway (marked as failing)")
