"""The accuracy gate: a candidate graph against the original, head by head, and the search that keeps
the layers a failing head is most sensitive to in higher precision until every head passes.

A single-task artifact has one head (its task's own outputs); a multi-head artifact one per head,
each compared on the validation set of its task. A head that task gates cover (:mod:`compress.task_judge`)
passes or fails by them instead; its agreement figures are still measured and recorded.
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
    from compress.task_judge import TaskFigures, TaskJudge

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
    """The heads, their validation sets (one per task), the original's outputs, each head's threshold, and
    the task gates (which decide for the heads they cover)."""

    heads: list[Head]
    sets: dict[str, ValidationSet]
    thresholds: dict[str, float]
    reference: Outputs = field(default_factory=dict)
    tasks: TaskJudge | None = None

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

    def task_figures(self, runner: Runner) -> TaskFigures:
        """The task gates' figures of ``runner`` (none without task gates)."""
        return self.tasks.measure(runner) if self.tasks else {}

    def _agrees(self, h: Head, figures: Figures) -> bool:
        return primary(h.task, figures[h.name]) >= self.thresholds[h.name]

    def _passes(self, h: Head, attempt: Attempt) -> bool:
        if self.tasks is not None and self.tasks.covers(h.name):
            return self.tasks.head_passes(h.name, attempt.task)
        return self._agrees(h, attempt.figures)

    def failing(self, attempt: Attempt) -> list[Head]:
        return [h for h in self.heads if not self._passes(h, attempt)]

    def why(self, h: Head, attempt: Attempt) -> str:
        """What fails head ``h``: its task gates' failing figures, or its agreement against the threshold."""
        if self.tasks is not None and self.tasks.covers(h.name):
            return "; ".join(self.tasks.failures(attempt.task, h.name))
        return (f"{h.name} {primary(h.task, attempt.figures[h.name]):.4f} < {self.thresholds[h.name]} "
                f"({PRIMARY[h.task]})")

    def record(self, attempt: Attempt, data: str, gate: bool) -> dict[str, Any]:
        """The manifest's ``validation``: the first head's figures at the top, every head's under ``heads``,
        the task gates' under ``task_gates``; a head a task gate covers is ``judged_by`` it."""
        figures, tasks = attempt.figures, self.tasks
        per_head = {h.name: {**figures[h.name], "threshold": {PRIMARY[h.task]: self.thresholds[h.name]},
                             "passed": self._passes(h, attempt)} for h in self.heads}
        if tasks is not None:
            for h in self.heads:
                if tasks.covers(h.name):
                    per_head[h.name].update(judged_by="task gates", agreement_passed=self._agrees(h, figures))
        first = self.sets[self.heads[0].task]
        record = {"texts": first.n_texts, "items": first.n_items, "data": data, **per_head[self.heads[0].name],
                  "passed": all(v["passed"] for v in per_head.values()), "gate": gate,
                  "sensitivity": attempt.sensitivity}
        if tasks is not None:
            record["task_gates"] = tasks.record(attempt.task)
        return {**record, "heads": per_head} if len(self.heads) > 1 else record


@dataclass
class Attempt:
    """One quantized candidate: what the method reported, its figures and outputs, the nodes kept."""

    details: dict[str, Any]
    figures: Figures
    outputs: Outputs
    excluded: list[str] = field(default_factory=list)
    sensitivity: dict[str, float] = field(default_factory=dict)
    task: TaskFigures = field(default_factory=dict)  # the task gates' figures (full attempts only)


def gated_search(judge: Judge, attempt: Callable[[list[str], str, int | None], Attempt], nodes: list[str],
                 groups: dict[str, list[str]], gate: bool, method: str) -> Attempt:
    """Quantize (``attempt(exclude, label, batches)``); while a head fails, rank the layer groups by how
    much quantizing each alone costs that head, and keep the worst in higher precision, one more each try.

    Raises:
        CompressError: some head fails even with a single group quantized.
    """
    first = attempt([], "validating", None)
    failing = judge.failing(first)
    if not failing or not gate:
        return first
    if not groups:  # nothing to keep in higher precision (fp32, fp16 of a graph without weights)
        raise CompressError(f"{method} fails the accuracy gate ({'; '.join(judge.why(h, first) for h in failing)}); "
                            "lower the threshold or raise the task gate's tolerance, pick another method, or pass "
                            "--no-gate to write it anyway (marked as failing)")
    worst = failing[0]
    print(f"  accuracy gate: {judge.why(worst, first)}; measuring which layers are sensitive", file=sys.stderr,
          flush=True)
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
        if not judge.failing(best):
            return best
    still = "; ".join(judge.why(h, best) for h in judge.failing(best))
    raise CompressError(f"{method} cannot pass the accuracy gate even with only one layer group quantized "
                        f"({still}); lower the threshold or raise the task gate's tolerance, pick another method, "
                        "or pass --no-gate to write it anyway (marked as failing)")
