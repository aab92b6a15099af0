"""What the CPU can do, for choosing quantization presets and for reports (read by py-cpuinfo)."""

from __future__ import annotations

import functools
import platform
from typing import Any, Literal

import cpuinfo

Isa = Literal["avx512_vnni", "avx512", "avx2", "arm64", "generic"]


@functools.cache
def _cpu_info() -> dict[str, Any]:
    """py-cpuinfo's description of this machine's CPU (it takes about a second: asked once per process)."""
    return cpuinfo.get_cpu_info()


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags, lower case as Linux names them (empty where none are known)."""
    return frozenset(_cpu_info().get("flags", ()))


def cpu_model() -> str:
    """The CPU's brand string (e.g. ``Intel(R) Xeon(R) ...``), else the processor or machine type."""
    return _cpu_info().get("brand_raw") or platform.processor() or platform.machine()


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
