"""``--prune auto``: the fastest pruned model whose task-gate figures stay within their tolerance.

    found = search_pruning(loaded, score, passes, texts, DistillConfig(steps=300), target=None)

Each candidate is pruned and recovered as ``--prune`` does it (:func:`compress.prune.workflow.prune_and_recover`:
importance-ranked removal, least-squares repair, distillation from the original), then scored on the task
gates by ``score`` (the fp32 PyTorch model) and judged by ``passes``. Speed is the int8 CPU cost model's
estimate (:class:`compress.prune.cost.TimeCost`, per token at 128 tokens), not a measurement: it needs no
export per candidate, and the artifact's own speed row measures the chosen one.

The search, bounded:

1. depth: a bisection over the number of layers removed (0 .. n-1, by measured importance, the ``layers``
   method), assuming that removing more layers never helps the task: about log2(n) candidates (4 for 12
   layers). With a target speed-up it probes first the fewest layers removed that reach the target by the
   cost model and stops at the first candidate that passes there.
2. width: one more candidate, heads and neurons (the ``structured`` method) removed from the best depth
   found: ``WIDTH_FRACTION`` of its parameters, or with a target just enough to reach it. Its recovery
   distils from that depth candidate (itself distilled from the original).

Each candidate costs one pruning (seconds) plus the recovery's distillation steps plus one pass over each
gate's data. A target the search space cannot reach by the cost model fails before any training.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from compress.prune.cost import TimeCost, removable
from compress.prune.layers import LayersConfig
from compress.prune.model_parts import all_parts, encoder_params
from compress.prune.structured import StructuredConfig

if TYPE_CHECKING:
    from compress.prune.distill import DistillConfig
    from compress.sources import LoadedModel

Progress = Callable[[str], None]
Figures = dict[str, dict[str, float]]  # gate label -> metric -> value
WIDTH_FRACTION = 0.25  # of the depth candidate's encoder parameters, without a target
MIN_HEADS, MIN_NEURONS = 1, 64  # what the width step keeps per layer at least (StructuredConfig's defaults)


class SearchMiss(ValueError):
    """No candidate inside the gates reaches the target (or none passes at all); holds what was tried."""

    def __init__(self, message: str, search: PruneSearch) -> None:
        super().__init__(message)
        self.search = search


@dataclass
class Candidate:
    """One pruned and recovered model, its estimated speed-up and its gate figures."""

    name: str
    layers_kept: list[int]  # original indices
    width_kept: float  # of the kept layers' parameters
    speedup: float  # cost model, against the unpruned model
    figures: Figures
    passed: bool
    loaded: LoadedModel | None = field(default=None, repr=False)
    record: dict[str, Any] = field(default_factory=dict, repr=False)

    def row(self) -> dict[str, Any]:
        """The manifest's row for this candidate."""
        return {"candidate": self.name, "layers_kept": self.layers_kept, "width_kept": round(self.width_kept, 4),
                "estimated_speedup": round(self.speedup, 4), "figures": self.figures, "passed": self.passed}


@dataclass
class PruneSearch:
    """The candidates tried, in order, the original's figures and the chosen one."""

    layers: int
    original: Figures
    target: float | None
    candidates: list[Candidate] = field(default_factory=list)
    chosen: Candidate | None = None
    max_speedup: float = 0.0  # the search space's fastest point, by the cost model

    def record(self) -> dict[str, Any]:
        """The manifest's ``pruning.search``."""
        return {"speed": "int8 CPU cost model (compress.prune.cost.TimeCost, 128 tokens), not measured",
                "layers": self.layers, "target_speedup": self.target, "max_speedup": round(self.max_speedup, 4),
                "original": self.original, "candidates": [c.row() for c in self.candidates],
                "chosen": self.chosen.name if self.chosen else None}


def max_speedup(model: Any) -> float:
    """The cost model's speed-up of the search's fastest point: one layer kept, at its narrowest."""
    cost = TimeCost()
    parts = all_parts(model)
    one = min(cost.layer(p) - removable([p], cost, MIN_HEADS, MIN_NEURONS, 16) for p in parts)
    return cost.encoder(model) / one


def _speedup(original: Any, model: Any) -> float:
    return TimeCost().encoder(original) / TimeCost().encoder(model)


def search_pruning(loaded: LoadedModel, score: Callable[[LoadedModel], Figures], passes: Callable[[Figures], bool],
                   texts: list[str], recover: DistillConfig, *, target: float | None = None,
                   original: Figures | None = None, progress: Progress | None = None) -> PruneSearch:
    """Find the fastest pruned ``loaded`` inside the task gates (see the module docstring for the search).

    Args:
        loaded: the original model, not modified.
        score: a model's task-gate figures (gate label -> metric -> value).
        passes: whether figures are within every gate's tolerance against the original's.
        texts: in-domain training texts for scoring and distillation (never the gates' data).
        recover: the distillation each candidate gets.
        target: stop at the first passing candidate at or above this estimated speed-up.
        original: the original's figures, when already measured (None: ``score(loaded)``).
        progress: called with progress lines.

    Returns:
        The search with its chosen candidate (whose ``loaded`` and ``record`` are the pruned model and its
        ``pruning`` record).

    Raises:
        SearchMiss: a target beyond the search space (before any training), no passing candidate, or
            none reaching the target; the message says by how much.
    """
    say = progress or (lambda _m: None)
    n = len(all_parts(loaded.model))
    s = PruneSearch(n, original if original is not None else score(loaded), target,
                    max_speedup=max_speedup(loaded.model))
    if target is not None and target > s.max_speedup:
        raise SearchMiss(f"--target-speedup {target:g}x is beyond what pruning this model can reach: one layer of "
                         f"{n} at its narrowest is {s.max_speedup:.2f}x by the cost model, "
                         f"{target - s.max_speedup:.2f}x short; nothing was trained", s)
    best: Candidate | None = None
    lo, hi = 0, n  # removing lo layers passes (the original), removing hi cannot
    # layers of one encoder cost alike: removing r of n gives n / (n - r) by the cost model
    probe = None if target is None else next((r for r in range(1, n) if n / (n - r) >= target), None)
    while hi - lo > 1:
        r = probe if probe is not None and lo < probe < hi else (lo + hi) // 2
        probe = None
        c = _depth(s, loaded, n - r, texts, recover, score, passes, say)
        if c.passed:
            lo, best = r, c
            if target is not None and c.speedup >= target:
                s.chosen = c
                return s
        else:
            hi = r
    _width(s, loaded, best, texts, recover, score, passes, say)
    passing = [c for c in s.candidates if c.passed]
    s.chosen = max(passing, key=lambda c: c.speedup) if passing else None
    _check(s, target)
    return s


def _check(s: PruneSearch, target: float | None) -> None:
    if s.chosen is None:
        fewest = min((len(c.layers_kept) for c in s.candidates), default=s.layers)
        raise SearchMiss(f"no pruned candidate stays inside the task gates ({len(s.candidates)} tried, down to "
                         f"{fewest} of {s.layers} layers kept): raise the gates' tolerance, recover longer "
                         "(--recover-steps), or drop --prune", s)
    if target is not None and s.chosen.speedup < target:
        raise SearchMiss(f"--target-speedup {target:g}x missed by {target - s.chosen.speedup:.2f}x: the fastest "
                         f"candidate inside the task gates is {s.chosen.name} at {s.chosen.speedup:.2f}x (cost "
                         f"model; {len(s.candidates)} candidates tried); lower the target or raise the tolerance", s)


def _candidate(s: PruneSearch, name: str, original: LoadedModel, pruned: LoadedModel, record: dict[str, Any],
               kept: list[int], score: Callable[[LoadedModel], Figures], passes: Callable[[Figures], bool],
               say: Progress) -> Candidate:
    figures = score(pruned)
    params = encoder_params(pruned.model) / encoder_params(original.model)
    width = params * len(all_parts(original.model)) / len(kept)
    c = Candidate(name, kept, width, _speedup(original.model, pruned.model), figures, passes(figures), pruned, record)
    if not c.passed:
        c.loaded = None  # only a passing candidate can be chosen or narrowed: free the rest
    s.candidates.append(c)
    say(f"search: {name}: {len(kept)} layers, {width:.0%} width, {c.speedup:.2f}x (cost model): "
        f"{'PASS' if c.passed else 'FAIL'}")
    return c


def _depth(s: PruneSearch, loaded: LoadedModel, keep: int, texts: list[str], recover: DistillConfig,
           score: Callable[[LoadedModel], Figures], passes: Callable[[Figures], bool], say: Progress) -> Candidate:
    from compress.prune.workflow import prune_and_recover

    say(f"search: keeping {keep} of {s.layers} layers, recovering for {recover.steps} steps")
    pruned, record = prune_and_recover(loaded, LayersConfig(keep=keep), texts, recover, progress=say)
    kept = record["plan"]["layers"]
    return _candidate(s, f"depth-{keep}", loaded, pruned, record, kept, score, passes, say)


def _width(s: PruneSearch, loaded: LoadedModel, base: Candidate | None, texts: list[str], recover: DistillConfig,
           score: Callable[[LoadedModel], Figures], passes: Callable[[Figures], bool], say: Progress) -> None:
    """Heads and neurons off the best depth candidate (or the original): a fixed share, or enough for the target."""
    from compress.prune.workflow import prune_and_recover

    start = base.loaded if base is not None and base.loaded is not None else loaded
    kept = base.layers_kept if base is not None else list(range(s.layers))
    base_speed = base.speedup if base is not None else 1.0
    if s.target is not None:
        config = StructuredConfig(speedup=max(s.target / base_speed, 1.01), seq_len=TimeCost().seq_len)
    else:
        config = StructuredConfig(fraction=WIDTH_FRACTION, seq_len=TimeCost().seq_len)
    amount = f"{config.speedup:.2f}x" if config.speedup else f"{config.fraction:g} of parameters"
    say(f"search: narrowing {len(kept)} layers by {amount}, recovering for {recover.steps} steps")
    try:
        pruned, record = prune_and_recover(start, config, texts, recover, progress=say)
    except ValueError as e:  # the width step cannot reach it (every layer at its narrowest)
        say(f"search: width step skipped: {e}")
        return
    record = _compose(base, record, s.layers)
    _candidate(s, f"depth-{len(kept)}+width", loaded, pruned, record, kept, score, passes, say)


def _compose(base: Candidate | None, width: dict[str, Any], n: int) -> dict[str, Any]:
    """A width record on a depth candidate, as one record in the original's layer indices."""
    if base is None:
        return width
    rows = iter(width["layers"])
    kept = base.layers_kept
    layers = [next(rows) | {"layer": i} if i in kept else {"layer": i, "removed": True, "heads_kept": [],
                                                                "neurons_kept": 0} for i in range(n)]
    plan = width["plan"]  # in the depth candidate's indices: layer j there is layer kept[j] of the original
    whole = {"heads": {str(kept[int(j)]): v for j, v in plan["heads"].items()},
             "neurons": {str(kept[int(j)]): v for j, v in plan["neurons"].items()}, "layers": kept}
    return {**width, "layers": layers, "plan": whole, "depth": base.record}


def chosen_record(s: PruneSearch, params_before: int) -> dict[str, Any]:
    """The manifest's ``pruning`` for the chosen candidate: its record, against the original, plus the search."""
    c = s.chosen
    assert c is not None and c.loaded is not None
    after = encoder_params(c.loaded.model)
    return {**c.record, "method": "auto", "candidate": c.name, "encoder_params_before": params_before,
            "encoder_params_after": after, "removed_fraction": round(1 - after / params_before, 4),
            "layers_removed": [i for i in range(s.layers) if i not in c.layers_kept],
            "estimated_speedup": {"value": round(c.speedup, 4), "seq_len": TimeCost().seq_len},
            "search": s.record()}


def with_note(loaded: LoadedModel, s: PruneSearch) -> LoadedModel:
    """The chosen model, its note saying how it was found."""
    c = s.chosen
    assert c is not None and c.loaded is not None
    note = (f"pruned by search (--prune auto): {c.name}, {len(c.layers_kept)} of {s.layers} layers, "
            f"{c.width_kept:.0%} width, {c.speedup:.2f}x by the cost model; {len(s.candidates)} candidates tried")
    return dataclasses.replace(c.loaded, notes=[*loaded.notes, note])


def candidates_bound(layers: int) -> int:
    """The most candidates the search trains for ``layers`` layers: the bisection, then the width step."""
    return math.ceil(math.log2(max(layers, 2))) + 1
