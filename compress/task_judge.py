"""Judging a candidate by the task gates: its figures against the original's, gate by gate, in points.

A head that some task gate covers passes when every such gate passes; the agreement figures of that head
are still measured and recorded, but no longer decide (see :class:`compress.gate.Judge`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from compress.task_eval import Figures, GateSet, in_domain_texts, load_gate_set, pick_head

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from compress.adapt.options import AdaptOptions
    from compress.gate import Head
    from compress.runtime import Runner
    from compress.task_gates import TaskGate

TaskFigures = dict[str, Figures]  # gate label -> its metrics
SLACK = 1e-9  # float noise: an identical figure passes a tolerance of 0


@dataclass
class TaskJudge:
    """The task gates' data, and the original model's figures on it once :meth:`measure_original` ran."""

    sets: list[GateSet]
    original: TaskFigures = field(default_factory=dict)

    @classmethod
    def load(cls, gates: list[TaskGate], heads: list[Head], labels: dict[str, list[str] | None],
             tokenizer: PreTrainedTokenizerBase, max_length: int, adapt: AdaptOptions | None = None) -> TaskJudge:
        """Each gate's head and encoded examples (read before any slow step, so a bad file fails at once).

        Raises:
            CompressError: a gate names no fitting head, or its file is malformed.
        """
        def default_texts() -> tuple[list[str], str]:
            return in_domain_texts(adapt, tokenizer)

        sets = []
        for gate in gates:
            head = pick_head(gate, heads)
            sets.append(load_gate_set(gate, head, labels.get(head.name), tokenizer, max_length, default_texts))
        return cls(sets)

    def covers(self, head: str) -> bool:
        return any(s.head == head for s in self.sets)

    def measure_original(self, runner: Runner) -> None:
        self.original = self.measure(runner)

    def measure(self, runner: Runner) -> TaskFigures:
        return {s.gate.label: s.measure(runner) for s in self.sets}

    def _change(self, s: GateSet, figures: TaskFigures) -> dict[str, tuple[float, float, float]]:
        """Each metric of gate ``s``: (original, artifact, change in points)."""
        orig, got = self.original[s.gate.label], figures[s.gate.label]
        return {m: (orig[m], got[m], 100 * (got[m] - orig[m])) for m in orig}

    def _passed(self, s: GateSet, figures: TaskFigures) -> bool:
        return all(c >= -s.gate.tolerance - SLACK for _, _, c in self._change(s, figures).values())

    def head_passes(self, head: str, figures: TaskFigures) -> bool:
        return all(self._passed(s, figures) for s in self.sets if s.head == head)

    def failures(self, figures: TaskFigures, head: str | None = None) -> list[str]:
        """One line per failing metric: the gate, original vs artifact, the change and the tolerance."""
        lines = []
        for s in self.sets:
            if head is not None and s.head != head:
                continue
            for metric, (o, a, c) in self._change(s, figures).items():
                if c < -s.gate.tolerance - SLACK:
                    lines.append(f"task gate {s.gate.label} on head {s.head}: {metric} {o:.4f} (original) -> "
                                 f"{a:.4f} (artifact), {c:+.2f} points, below the allowed {-s.gate.tolerance:+g}")
        return lines

    def record(self, figures: TaskFigures) -> list[dict[str, Any]]:
        """The manifest's ``validation.task_gates``: each gate's metrics, original and artifact, and verdict."""
        return [{"gate": s.gate.label, "kind": s.gate.kind, "head": s.head, "data": s.source, "items": s.items,
                 "tolerance_points": s.gate.tolerance,
                 "metrics": {m: {"original": o, "artifact": a, "change_points": c}
                             for m, (o, a, c) in self._change(s, figures).items()},
                 "passed": self._passed(s, figures)} for s in self.sets]

