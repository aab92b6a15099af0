"""A corpus cut into fixed shards: JSON lines, Parquet or plain text, one record per line, with an id.

A shard is ``shard_size`` consecutive records; where each starts is found in one pass over the file
(byte offsets for text and JSON lines, row numbers for Parquet), so a worker reads its shard alone
and memory stays bounded by the shard, whatever the corpus size.

========  ==============================================================================
format    records
========  ==============================================================================
jsonl     one JSON object per line; the id and text fields are named by the caller
parquet   one row each; the id and text columns are named by the caller
text      one text per non-blank line; the id is the line number (1-based)
========  ==============================================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Format = Literal["jsonl", "parquet", "text"]
SUFFIXES: dict[str, Format] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet",
                               ".txt": "text", ".text": "text"}


class CorpusError(ValueError):
    """The corpus cannot be read as asked; the message says how to fix it."""


@dataclass(frozen=True)
class Corpus:
    path: str
    format: Format
    id_field: str = "id"
    text_field: str = "text"

    def signature(self) -> dict[str, object]:
        """What identifies this corpus for resuming: path, size, modification time, format and fields."""
        st = Path(self.path).stat()
        return {"path": str(Path(self.path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                "format": self.format, "id_field": self.id_field, "text_field": self.text_field}


@dataclass(frozen=True)
class Shard:
    """Records ``start .. start + count`` of the corpus; ``offset``/``line`` say where they begin."""

    index: int
    start: int
    count: int
    offset: int = 0
    line: int = 0


def open_corpus(path: str | Path, fmt: Format | None = None, id_field: str = "id",
                text_field: str = "text") -> Corpus:
    """A corpus, its format from ``fmt`` or the file's suffix.

    Raises:
        CorpusError: the file is missing or its format cannot be told.
    """
    p = Path(path)
    if not p.is_file():
        raise CorpusError(f"corpus {p} does not exist; give a .jsonl, .parquet or .txt file")
    fmt = fmt or SUFFIXES.get(p.suffix.lower())
    if fmt is None:
        raise CorpusError(f"cannot tell the format of {p} from its suffix; pass --format jsonl, parquet or text")
    if fmt == "parquet":
        import pyarrow.parquet as pq

        names = pq.read_schema(p).names
        for field in (id_field, text_field):
            if field not in names:
                raise CorpusError(f"{p} has no column {field!r} (columns: {', '.join(names)}); pass --id-field "
                                  "and --text-field")
    return Corpus(str(p), fmt, id_field, text_field)


def plan_shards(corpus: Corpus, shard_size: int) -> list[Shard]:
    """The corpus cut into shards of ``shard_size`` records (the last may be shorter), in one pass."""
    if corpus.format == "parquet":
        import pyarrow.parquet as pq

        rows = pq.ParquetFile(corpus.path).metadata.num_rows
        return [Shard(k, s, min(shard_size, rows - s)) for k, s in enumerate(range(0, rows, shard_size))]
    shards: list[Shard] = []
    records, offset, first = 0, 0, (0, 0)
    with open(corpus.path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            if raw.strip():
                if records % shard_size == 0 and records:
                    shards.append(Shard(len(shards), records - shard_size, shard_size, *first))
                if records % shard_size == 0:
                    first = (offset, line_no)
                records += 1
            offset += len(raw)
    if records:
        start = (records - 1) // shard_size * shard_size
        shards.append(Shard(len(shards), start, records - start, *first))
    return shards


def read_shard(corpus: Corpus, shard: Shard) -> tuple[list[str], list[str]]:
    """(ids, texts) of one shard; ids as text.

    Raises:
        CorpusError: a record lacks its id or text, or is not valid JSON (the message says which line).
    """
    if corpus.format == "parquet":
        return _read_parquet(corpus, shard)
    ids: list[str] = []
    texts: list[str] = []
    with open(corpus.path, "rb") as f:
        f.seek(shard.offset)
        line_no = shard.line - 1
        while len(texts) < shard.count:
            raw = f.readline()
            line_no += 1
            if not raw:
                raise CorpusError(f"{corpus.path} ended before its shard {shard.index}: it changed during the run")
            if not raw.strip():
                continue
            if corpus.format == "text":
                ids.append(str(line_no))
                texts.append(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
                continue
            record_id, text = _json_record(raw, corpus, line_no)
            ids.append(record_id)
            texts.append(text)
    return ids, texts


def _json_record(raw: bytes, corpus: Corpus, line_no: int) -> tuple[str, str]:
    try:
        record = json.loads(raw)
    except ValueError as e:
        raise CorpusError(f"{corpus.path}:{line_no}: not valid JSON ({e}); one JSON object per line") from None
    if not isinstance(record, dict) or corpus.id_field not in record or corpus.text_field not in record:
        raise CorpusError(f"{corpus.path}:{line_no}: needs fields {corpus.id_field!r} and {corpus.text_field!r}; "
                          "pass --id-field and --text-field to name others")
    return str(record[corpus.id_field]), str(record[corpus.text_field])


def _read_parquet(corpus: Corpus, shard: Shard) -> tuple[list[str], list[str]]:
    """Only the row groups that hold the shard are read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(corpus.path)
    groups, first, row = [], None, 0
    for g in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        if row + n > shard.start and row < shard.start + shard.count:
            groups.append(g)
            first = row if first is None else first
        row += n
    table = pf.read_row_groups(groups, columns=[corpus.id_field, corpus.text_field])
    table = table.slice(shard.start - (first or 0), shard.count)
    ids = table.column(corpus.id_field).cast(pa.string()).to_pylist()
    texts = table.column(corpus.text_field).cast(pa.string()).to_pylist()
    return [str(i) for i in ids], ["" if t is None else t for t in texts]
