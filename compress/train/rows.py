"""Reading a task's data file into rows: JSONL, CSV/TSV with a header, or plain text (one text a line).

Every problem is one line that names the file, the line number and what was expected, so a user can
fix the file without reading a traceback.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compress import CompressError

FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv", ".txt": "text"}


@dataclass(frozen=True)
class Row:
    """One example as read: its fields and where it came from (for error messages)."""

    fields: dict[str, Any]
    where: str  # "FILE:LINE"


def data_format(path: Path) -> str:
    """jsonl, csv, tsv or text, by the file's suffix.

    Raises:
        CompressError: an unknown suffix, listing the known ones.
    """
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise CompressError(f"{path}: unknown data format {path.suffix!r}; use one of "
                            f"{', '.join(sorted(FORMATS))} (JSON lines, CSV/TSV with a header, or text)") from None


def read_rows(path: str | Path) -> list[Row]:
    """The examples of a data file, in order.

    Raises:
        CompressError: missing or empty file, a malformed line (file:line and what was expected).
    """
    p = Path(path)
    if not p.is_file():
        raise CompressError(f"{p} not found: give a JSONL, CSV, TSV or text file")
    kind = data_format(p)
    text = p.read_text(encoding="utf-8", errors="replace")
    if kind == "jsonl":
        rows = _jsonl(p, text)
    elif kind == "text":
        rows = [Row({"text": line.strip()}, f"{p}:{i}") for i, line in enumerate(text.splitlines(), 1)
                if line.strip()]
    else:
        rows = _table(p, text, "," if kind == "csv" else "\t")
    if not rows:
        raise CompressError(f"{p} is empty: it holds no examples")
    return rows


def _jsonl(path: Path, text: str) -> list[Row]:
    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise CompressError(f"{path}:{i}: not valid JSON ({e.msg}); expected one JSON object per line") from None
        if not isinstance(value, dict):
            raise CompressError(f"{path}:{i}: expected a JSON object such as {{\"text\": ..., \"label\": ...}}, "
                                f"got {type(value).__name__}")
        rows.append(Row(value, f"{path}:{i}"))
    return rows


def _table(path: Path, text: str, delimiter: str) -> list[Row]:
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise CompressError(f"{path}:1: expected a header row naming the columns (e.g. text{delimiter}label)")
    names = [h.strip() for h in header]
    rows = []
    for i, values in enumerate(reader, 2):
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(names):
            raise CompressError(f"{path}:{i}: {len(values)} columns where the header has {len(names)} "
                                f"({', '.join(names)}); quote fields that contain the delimiter")
        rows.append(Row(dict(zip(names, values, strict=True)), f"{path}:{i}"))
    return rows


def text_field(row: Row, key: str, what: str = "a text") -> str:
    """``row[key]`` as a non-empty string.

    Raises:
        CompressError: missing, empty, or a list or pair where a text was expected.
    """
    if key not in row.fields:
        raise CompressError(f"{row.where}: no {key!r} field; expected {what} in {key!r} "
                            f"(fields found: {', '.join(map(str, row.fields)) or 'none'})")
    value = row.fields[key]
    if isinstance(value, (list, tuple, dict)):
        raise CompressError(f"{row.where}: {key!r} holds a {type(value).__name__} where {what} was expected"
                            + ("; a text pair goes in text and text_pair" if isinstance(value, (list, tuple))
                               else ""))
    if not isinstance(value, str) or not value.strip():
        raise CompressError(f"{row.where}: {key!r} must be a non-empty text, got {value!r}")
    return value.strip()


def optional_text(row: Row, key: str) -> str | None:
    """``row[key]`` as a text, or None when the field is absent or empty."""
    if row.fields.get(key) in (None, ""):
        return None
    return text_field(row, key)
