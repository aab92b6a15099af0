"""What the CPU can do, for choosing quantization presets and for reports."""

from __future__ import annotations

import functools
import platform
from typing import Literal

Isa = Literal["avx512_vnni", "avx512", "avx2", "arm64", "generic"]


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The feature flags of the first CPU listed in /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.cache
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def detect_isa() -> Isa:
    """The best integer-GEMM instruction set available: it decides what int8 is safe and fast."""
    machine = platform.machine().lower()
    if machine in ("arm64", "aarch64"):
        return "arm64"
    flags = cpu_flags()
    if "avx512_vnni" in flags or "avx512vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    if "avx2" in flags:
        return "avx2"
    return "generic"
