"""The user's own texts: one example per line of a text file."""

from __future__ import annotations

from pathlib import Path

from compress import CompressError


def read_texts(path: str | Path) -> list[str]:
    """Non-empty lines of a text file."""
    p = Path(path)
    if not p.is_file():
        raise CompressError(f"{p} not found: give a text file with one example per line")
    lines = [line.strip() for line in p.read_text(errors="replace").splitlines() if line.strip()]
    if not lines:
        raise CompressError(f"{p} has no text lines")
    return lines
