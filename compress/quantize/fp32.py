"""fp32: the exported graph as it is (with the recipe's graph optimization), validated like any method."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from compress.quantize.registry import MethodConfig, QuantContext, register


class Fp32Config(MethodConfig):
    method: Literal["fp32"] = "fp32"


@register(Fp32Config, op_types=())
def copy_fp32(src: Path, dst: Path, cfg: Fp32Config, ctx: QuantContext, exclude: Sequence[str]) -> dict[str, Any]:
    """Plain ONNX export (fp32)."""
    shutil.copyfile(src, dst)
    return {}
