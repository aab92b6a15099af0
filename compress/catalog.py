"""`models.yaml`: the named models this installation knows, validated once with pydantic.

A source is a path, a hub id, or ``pkg:DIST/inner/path`` for weights that ship inside an installed
Python package (how the packaged default models are found offline). An entry's ``serve:`` block is
`serve`'s (:class:`serve.options.ServeOptions`), validated here with the rest of the file. An entry's
``heads:`` are task heads (compress/task_heads.py); :func:`requested_heads` and :func:`entry_or_head`
read them off an entry.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from compress import CompressError
from compress.recipe import Recipe
from compress.task_heads import HeadList, HeadSpec, parse_heads
from serve.options import ServeOptions

Task = Literal["fill-mask", "classification", "embedding"]
DEFAULT_CATALOG = Path("models.yaml")


class ModelEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    source: str
    task: Task | None = None
    head: str | None = None
    labels: list[str] | None = None
    heads: HeadList | None = None  # a multi-head artifact (compress/task_heads.py)
    tokenizer: str | None = None
    requires: str | None = Field(None, description="pip requirement that provides a pkg: source")
    recipe: Recipe = Recipe()
    artifact: str | None = None
    description: str = ""
    serve: ServeOptions = ServeOptions()

    @field_validator("labels")
    @classmethod
    def _labels_unique(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError("labels must be unique")
        return v

    def default_artifact(self) -> Path:
        return Path(self.artifact) if self.artifact else Path("artifacts") / f"{self.name}-{self.recipe.method}"


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: list[ModelEntry]

    @field_validator("models")
    @classmethod
    def _names_unique(cls, v: list[ModelEntry]) -> list[ModelEntry]:
        names = [m.name for m in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"model names must be unique; repeated: {sorted(dup)}")
        return v

    def get(self, name: str) -> ModelEntry:
        for m in self.models:
            if m.name == name:
                return m
        raise CompressError(f"unknown model name {name!r}; models.yaml lists: {', '.join(self.names())}")

    def names(self) -> list[str]:
        return [m.name for m in self.models]


def load_catalog(path: str | Path = DEFAULT_CATALOG) -> Catalog:
    """Read and validate a models.yaml file.

    Raises:
        CompressError: the file is missing, is not YAML, or does not fit the schema.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise CompressError(f"{path} not found; pass --models FILE or run from the project directory") from None
    except yaml.YAMLError as e:
        raise CompressError(f"{path} is not valid YAML: {e}") from None
    try:
        return Catalog.model_validate(raw)
    except ValidationError as e:
        raise CompressError(f"{path} does not fit the models.yaml schema:\n{e}") from None


def resolve_location(location: str, requires: str | None = None) -> str:
    """Turn ``pkg:DIST/inner/path`` into a filesystem path; return anything else unchanged."""
    if not location.startswith("pkg:"):
        return location
    package, _, inner = location[4:].partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        hint = requires or package
        raise CompressError(f"package {package!r} is not installed; install it with: pip install {hint!r}")
    return str(Path(next(iter(spec.submodule_search_locations))) / inner)


def requested_heads(cli_heads: str | None, entry: ModelEntry | None) -> list[HeadSpec] | None:
    """The heads to export: ``--heads`` (labels from the entry's heads of the same name), else the entry's.

    Raises:
        CompressError: a malformed ``--heads``, or an entry with ``heads:`` that also sets task, head or labels.
    """
    known = entry.heads if entry is not None and entry.heads else []
    if entry is not None and known and (entry.task or entry.head or entry.labels):
        raise CompressError(f"{entry.name}: an entry with heads: gives each head's task and labels there; "
                            "drop its task/head/labels fields")
    if cli_heads:
        return parse_heads(cli_heads, {h.name: h.labels for h in known if h.labels})
    return known or None


def single_head_entry(entry: ModelEntry, head: str) -> ModelEntry:
    """One head of a multi-head entry as a single-head entry named ``NAME-HEAD``, for the benchmarks and
    tests that compare a multi-head artifact with one artifact per head.

    Raises:
        CompressError: the entry has no head of that name.
    """
    spec = next((h for h in entry.heads or [] if h.name == head), None)
    if spec is None:
        raise CompressError(f"{entry.name} has no head {head!r}; its heads: "
                            f"{', '.join(h.name for h in entry.heads or []) or 'none'}")
    task = spec.task
    if task == "sparse-embedding":
        raise CompressError(f"{entry.name}: the sparse-embedding head {head!r} has no single-head artifact; it comes "
                            "beside the fill-mask head, in the multi-head one")
    return entry.model_copy(update={"name": f"{entry.name}-{head}", "heads": None, "task": task,
                                    "head": None if task == "fill-mask" else head, "labels": spec.labels})


def entry_or_head(catalog: Catalog, name: str) -> ModelEntry:
    """``name`` in models.yaml, or ``NAME-HEAD`` for one head of a multi-head entry (benchmarks, tests).

    Raises:
        CompressError: neither.
    """
    if name in catalog.names():
        return catalog.get(name)
    base, _, head = name.rpartition("-")
    if base in catalog.names() and catalog.get(base).heads:
        return single_head_entry(catalog.get(base), head)
    return catalog.get(name)  # raises, listing the known names
