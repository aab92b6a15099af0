"""The registry of pruning methods: what a method gets and returns, its record, and :func:`register`.

A method module (``compress/prune/structured.py`` ...) imports :func:`register` from here and
decorates its function; ``compress/prune/__init__.py`` imports every method module, so the registry
is complete once ``compress.prune`` is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from compress.catalog import Task

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from compress.prune.batches import BatchStream
    from compress.prune.plan import PrunePlan


Progress = Callable[[str], None]


@dataclass
class PruneContext:
    """What a method may need besides its config: the task, sample batches, the original model."""

    task: Task
    stream: BatchStream
    teacher: PreTrainedModel  # the original, unmodified
    pooling: str = "mean"
    progress: Progress | None = None

    def say(self, msg: str) -> None:
        if self.progress:
            self.progress(msg)


@dataclass
class MethodOutput:
    """What a method returns: the structural plan it applied (None for unstructured methods), details
    for the manifest, and a hook the recovery calls after each optimizer step (gradual pruning)."""

    plan: PrunePlan | None = None
    details: dict[str, Any] = field(default_factory=dict)
    on_step: Callable[[int, int], None] | None = None  # (step, total steps)


PruneFn = Callable[[Any, Any, PruneContext], "PrunePlan | MethodOutput"]


@dataclass(frozen=True)
class Method:
    name: str
    config_cls: type
    fn: PruneFn


_METHODS: dict[str, Method] = {}


def register(name: str, config_cls: type) -> Callable[[PruneFn], PruneFn]:
    """Register ``fn`` as pruning method ``name`` configured by ``config_cls``."""
    def deco(fn: PruneFn) -> PruneFn:
        _METHODS[name] = Method(name, config_cls, fn)
        return fn
    return deco


def get_method(name: str) -> Method:
    """The registered method ``name``.

    Raises:
        ValueError: no such method; the message lists the registered ones.
    """
    try:
        return _METHODS[name]
    except KeyError:
        raise ValueError(f"unknown pruning method {name!r}; registered: {', '.join(sorted(_METHODS))}") from None


def methods() -> list[str]:
    return sorted(_METHODS)


def method_for(config: Any) -> Method:
    """The registered method configured by ``config``'s class."""
    for m in _METHODS.values():
        if isinstance(config, m.config_cls):
            return m
    raise ValueError(f"{type(config).__name__} configures no registered pruning method; "
                     f"registered: {', '.join(f'{m.name} ({m.config_cls.__name__})' for m in _METHODS.values())}")
