"""Pruning: one small config dataclass + one registered function per method.

    result = prune_model(loaded, StructuredConfig(fraction=0.4), texts)

A method scores the model on sample texts and prunes a copy of it. Structured methods (heads,
neurons, layers, and ``structured`` = heads and neurons ranked together) remove whole units, so the
exported graph is smaller and faster; they return the :class:`~compress.prune.plan.PrunePlan` they
applied. ``magnitude`` zeroes single weights: smaller once compressed, not faster on dense runtimes.
Recover accuracy afterwards with :func:`compress.prune.distill.distill` (or do both with
:func:`compress.prune.workflow.prune_and_recover`). A method module registers itself with
:func:`~compress.prune.registry.register` and is imported here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import TYPE_CHECKING, Any

# Importing the method modules registers them.
from compress.prune import attention_heads, layers, magnitude, neurons, structured  # noqa: F401
from compress.prune.registry import (
    Method,
    MethodOutput,
    Progress,
    PruneContext,
    PruneFn,
    get_method,
    method_for,
    methods,
    register,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from compress.prune.plan import PrunePlan
    from compress.sources import LoadedModel

__all__ = ["Method", "MethodOutput", "Progress", "PruneContext", "PruneFn", "PruneResult", "get_method", "make_config",
           "method_for", "methods", "prune_model", "register"]


def make_config(method: str, fraction: float | None = None, *, speedup: float | None = None, **overrides: Any) -> Any:
    """The config of ``method`` for a ``--prune`` flag: ``--prune FRACTION`` is the fraction of encoder
    parameters (``structured``), of heads (``heads``), of neurons (``neurons``), of layers (``layers``) or of
    linear weights zeroed (``magnitude``); ``--prune 1.6x`` is an estimated speed-up (``structured`` only).
    Other fields come from ``overrides``.

    Raises:
        ValueError: unknown method, or a target the method cannot take.

    Example:
        >>> make_config("structured", 0.4).fraction
        0.4
        >>> make_config("structured", speedup=1.6).speedup
        1.6
    """
    cls = get_method(method).config_cls
    names = {f.name for f in fields(cls)}
    if speedup is not None:
        if "speedup" not in names:
            raise ValueError(f"a speed-up target (--prune {speedup:g}x) needs the structured method; "
                             f"{method} takes a fraction, e.g. --prune 0.4")
        return cls(speedup=speedup, **overrides)
    if fraction is None:
        raise ValueError("give a fraction (--prune 0.4) or a speed-up (--prune 1.6x)")
    key = "sparsity" if "sparsity" in names else "fraction"
    return cls(**{key: fraction, **overrides})


@dataclass
class PruneResult:
    """A pruned copy of the model and what was removed."""

    model: PreTrainedModel
    method: str
    config: Any
    plan: PrunePlan | None
    params_before: int  # encoder layers, before
    params_after: int  # encoder layers, after (non-zero ones for unstructured methods)
    layers: list[dict[str, Any]]  # per original layer: heads kept, neurons kept, removed
    details: dict[str, Any] = field(default_factory=dict)
    on_step: Callable[[int, int], None] | None = None

    @property
    def removed_fraction(self) -> float:
        return 1 - self.params_after / self.params_before

    def record(self) -> dict[str, Any]:
        """What the manifest records under ``pruning``."""
        config = asdict(self.config) if is_dataclass(self.config) and not isinstance(self.config, type) else self.config
        return {"method": self.method, "config": config,
                "encoder_params_before": self.params_before, "encoder_params_after": self.params_after,
                "removed_fraction": round(self.removed_fraction, 4), "layers": self.layers,
                "plan": self.plan.to_dict() if self.plan is not None else None, **self.details}


def prune_model(loaded: LoadedModel, config: Any, texts: list[str], progress: Progress | None = None, *,
                seed: int = 0) -> PruneResult:
    """Prune ``loaded.model`` with the method ``config`` configures, scored on ``texts``.

    Args:
        loaded: from :func:`compress.sources.load_model`; its task decides the scoring loss.
        config: a registered method's config, e.g. ``StructuredConfig(fraction=0.4)``.
        texts: unlabelled in-domain sample texts (a few hundred suffice); hold your test data out.
        progress: called with short progress messages.
        seed: for the sample batches.

    Returns:
        The pruned model (a copy; ``loaded.model`` is not modified) with the plan and per-layer figures.

    Raises:
        ValueError: an unknown config or family, or a config that removes everything.

    Example:
        >>> r = prune_model(loaded, StructuredConfig(fraction=0.4), texts)  # doctest: +SKIP
        >>> r.removed_fraction, r.layers[0]["heads_kept"]  # doctest: +SKIP
    """
    from compress.prune.batches import BatchStream
    from compress.prune.model_parts import encoder_params
    from compress.prune.plan import PrunePlan, describe, plan_shape

    method = method_for(config)
    model = copy.deepcopy(loaded.model)
    scoring = getattr(config, "scoring", None)
    stream = BatchStream(loaded.task, loaded.tokenizer, texts, batch_size=getattr(scoring, "batch_size", 16),
                         max_length=getattr(scoring, "max_length", 128), seed=seed)
    ctx = PruneContext(loaded.task, stream, loaded.model.eval(), loaded.pooling, progress)
    shape = plan_shape(model)
    before = encoder_params(model)
    out = method.fn(model, config, ctx)
    if isinstance(out, PrunePlan):
        out = MethodOutput(plan=out)
    after = out.details.pop("nonzero_params", None) or encoder_params(model)
    rows = describe(out.plan, shape) if out.plan is not None else []
    return PruneResult(model.eval(), method.name, config, out.plan, before, int(after), rows, out.details,
                       out.on_step)

