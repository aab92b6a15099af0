"""The registry of quantization methods: a method's config base, its record, and :func:`register`.

A method module (``compress/quantize/int8_dynamic.py`` ...) imports :func:`register` from here and
decorates its function; ``compress/quantize/__init__.py`` imports every method module, so the
registry is complete once ``compress.quantize`` is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict


@dataclass
class QuantContext:
    """What a method may need besides its config."""

    isa: str = "generic"
    calibration: list[dict[str, np.ndarray]] = field(default_factory=list)
    # per-channel activation peaks of the graph being quantized, measured once on ``calibration``
    activation_peaks: dict[str, np.ndarray] = field(default_factory=dict)


QuantFn = Callable[[Path, Path, Any, QuantContext, Sequence[str]], dict[str, Any]]
Backend = Literal["onnxruntime", "torch"]


class MethodConfig(BaseModel):
    """Base of every method's config. ``method`` names the registered method: it is the recipe's
    discriminator, so ``{"method": "int4", "block_size": 64}`` validates as the int4 config."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    method: str

    def for_cpu(self, isa: str) -> MethodConfig:
        """This config completed for a CPU with instruction set ``isa`` (presets fill unset fields)."""
        return self

    def calibration_file(self) -> str | None:
        """A text file to calibrate activation ranges on, for methods that need one."""
        return None

    def calibrates(self) -> bool:
        """Whether the method runs on calibration batches (from :meth:`calibration_file`, or defaults)."""
        return self.calibration_file() is not None


@dataclass(frozen=True)
class Method:
    name: str
    config_cls: type[MethodConfig]
    fn: Callable[..., Any]  # ONNX methods: QuantFn; torch methods: (module, config, device) -> module
    op_types: tuple[str, ...]  # node types the method may quantize, for the accuracy gate
    backend: Backend = "onnxruntime"  # the artifact it makes: an ONNX graph, or torch weights
    about: str = ""  # one line for --help (default: the first line of the function's docstring)

    @property
    def summary(self) -> str:
        return self.about or (self.fn.__doc__ or self.name).strip().splitlines()[0]


_METHODS: dict[str, Method] = {}


def register(config_cls: type[MethodConfig], op_types: tuple[str, ...] = ("MatMul",), *,
             backend: Backend = "onnxruntime", name: str | None = None,
             about: str = "") -> Callable[[Callable], Callable]:
    """Register the decorated function as a quantization method.

    The name is ``config_cls``'s default ``method`` unless ``name`` is given (one config class may
    serve several methods, e.g. bitsandbytes int8 and nf4).
    """
    name = name or config_cls.model_fields["method"].default
    if not isinstance(name, str):
        raise TypeError(f"{config_cls.__name__}.method needs a default: the method's name")

    def deco(fn: Callable) -> Callable:
        _METHODS[name] = Method(name, config_cls, fn, op_types, backend, about)
        return fn
    return deco


def get_method(name: str) -> Method:
    try:
        return _METHODS[name]
    except KeyError:
        raise ValueError(f"unknown quantization method {name!r}; registered: {', '.join(sorted(_METHODS))}") from None


def methods() -> list[str]:
    return sorted(_METHODS)


def method_config(data: dict[str, Any] | MethodConfig) -> MethodConfig:
    """Validate ``data`` as the config of the method it names (the registry's discriminated union)."""
    if isinstance(data, MethodConfig):
        return data
    return get_method(str(data.get("method", ""))).config_cls.model_validate(data)
