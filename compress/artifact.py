"""The artifact directory: the one contract between `compress` and `serve`.

Layout (format version 2)::

    manifest.json      what this is: task (or heads), inputs/outputs, recipe, source and sha256, figures
    report.md          the same for people (search.png beside it after --prune auto)
    model.onnx         the task graph (backend "onnxruntime")
    config.json        the transformers config (labels in id2label)
    tokenizer.json …   the tokenizer, loadable with AutoTokenizer.from_pretrained(artifact_dir); serve reads
                       tokenizer.json alone, with the tokenizers library (serve/tokenizer.py)

Artifacts are written into a temporary sibling directory and renamed into place (compress/staging.py),
so an interrupted run leaves nothing half-written, and an existing artifact is replaced only with
``force``.
"""

from __future__ import annotations

import contextlib
import json
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from compress import CompressError
from compress.catalog import Task
from compress.task_heads import HeadTask

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from compress.runtime import Runner
    from compress.session import Device

FORMAT_VERSION = 2  # 2: the recipe is stored in its canonical form, the resolved method config apart
MANIFEST = "manifest.json"
# Format 1 stored the run options flat, with the method's resolved config and details inside.
_V1_VALIDATION = {"validate": "data", "n_validate": "n", "min_agreement": "min_agreement",
                  "min_cosine": "min_cosine", "gate": "gate"}


class GraphInfo(BaseModel):
    file: str
    opset: int  # of the ONNX export (also recorded for the torch backend, whose file is safetensors)
    inputs: list[str]
    outputs: list[str]


class TokenizerInfo(BaseModel):
    max_length: int = Field(ge=1)
    mask_token: str | None = None
    # Per-residue vocabularies (proteins) want "E V Q"; clients may send "EVQ" and have it spaced.
    split_chars: bool = False


class HeadInfo(BaseModel):
    """One head of a multi-head artifact: the graph output it reads (fill-mask: also ``mask_positions``)."""

    name: str
    task: HeadTask
    output: str
    labels: list[str] | None = None
    pooling: str | None = None  # embedding, classification and rerank heads of a trained model
    normalize: bool = False  # embedding


class Manifest(BaseModel):
    """manifest.json. Unknown keys are kept so newer minor additions do not break older readers."""

    model_config = ConfigDict(extra="allow")
    format_version: int
    name: str
    task: Task | HeadTask  # a multi-head artifact: its first head's
    family: str
    backend: Literal["onnxruntime", "torch"] = "onnxruntime"
    graph: GraphInfo
    tokenizer: TokenizerInfo
    labels: list[str] | None = None
    pooling: str | None = None
    normalize: bool = False
    source: dict[str, Any]
    recipe: dict[str, Any]  # compress.recipe.Recipe.stored(): quantize, optimize, prune, validation, …
    # The method's config as it ran (CPU presets filled in) and what the method reported.
    quantization: dict[str, Any] = {}
    excluded_nodes: list[str] = []
    sizes: dict[str, int]
    validation: dict[str, Any]
    speed: dict[str, Any] = {}
    tools: dict[str, str]
    cpu: dict[str, str]
    created: str
    notes: list[str] = []
    # Set when the model was pruned before export: method, config, per-layer heads and neurons kept,
    # the plan in original indices, recovery losses, and validation figures against the unpruned model.
    pruning: dict[str, Any] | None = None
    # Set for a multi-head artifact (compress/task_heads.py): one encoder, these heads as separate outputs;
    # ``task`` and ``labels`` above then describe the first head, and validation has per-head figures.
    heads: list[HeadInfo] | None = None

    @property
    def method(self) -> str:
        return str(self.recipe["quantize"]["method"])

    def describe_recipe(self) -> str:
        """``int8, O1``: the method and graph optimization, for people."""
        return self.method + (f", {self.recipe['optimize']}" if self.recipe.get("optimize") else "")


def read_manifest(directory: str | Path) -> Manifest:
    """Read and check an artifact's manifest.

    Raises:
        CompressError: not an artifact, or written by a newer format version.
    """
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise CompressError(f"{directory} is not an artifact (no {MANIFEST}); make one with `compress run`")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CompressError(f"{path} is not valid JSON: {e}") from None
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CompressError(f"{path} has format version {version!r}; this release reads up to "
                            f"{FORMAT_VERSION}: upgrade the package")
    if version == 1:
        data = _upgrade_v1(data)
    try:
        return Manifest.model_validate(data)
    except ValidationError as e:
        raise CompressError(f"{path} is not a valid manifest:\n{e}") from None


def _upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A format-1 manifest in format 2's shape (read-only: the file is not rewritten)."""
    old = dict(data.get("recipe") or {})
    config = {"method": old.get("method", "int8"), **(old.get("method_config") or {})}
    if config.pop("kind", None) is not None:  # bitsandbytes: the kind is in the method's name now
        config["outlier_threshold"] = config.pop("threshold", 6.0)
    recipe = {"quantize": config, "optimize": old.get("optimize"), "opset": old.get("opset"),
              "max_length": old.get("max_length"), "prune": old.get("prune"),
              "validation": {new: old[k] for k, new in _V1_VALIDATION.items() if k in old}}
    quantization = {"config": config, "details": old.get("details") or {}}
    return {**data, "format_version": FORMAT_VERSION, "recipe": recipe, "quantization": quantization}


class Artifact:
    """A loaded artifact: manifest, tokenizer, and a runner for its graph."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.manifest = read_manifest(self.directory)

    @property
    def graph_path(self) -> Path:
        return self.directory / self.manifest.graph.file

    def tokenizer(self) -> PreTrainedTokenizerBase:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(self.directory))

    def runner(self, device: Device = "cpu", threads: int | None = None) -> Runner:
        """A callable from numpy encodings to the graph's outputs, on ``device``."""
        if self.manifest.backend == "torch":
            from compress.runtime import torch_artifact_runner

            return torch_artifact_runner(self, device, threads)
        from compress.runtime import OnnxRunner

        return OnnxRunner(self.graph_path, device=device, threads=threads)


def load_artifact(directory: str | Path) -> Artifact:
    """Open an artifact directory written by ``compress run``.

    Example:
        >>> art = load_artifact("artifacts/minilm-int8")  # doctest: +SKIP
        >>> run = art.runner(threads=2)                    # doctest: +SKIP
    """
    return Artifact(directory)


def write_manifest(directory: Path, manifest: Manifest) -> None:
    (directory / MANIFEST).write_text(json.dumps(manifest.model_dump(), indent=2) + "\n")


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, directory: Path) -> None:
    """The tokenizer's files, ``tokenizer.json`` always among them: `serve` reads only that one (with the
    tokenizers library), so a slow (Python) tokenizer is converted to the fast one's format.

    Raises:
        CompressError: the tokenizer has no fast equivalent to convert it to.
    """
    tokenizer.save_pretrained(str(directory))
    if (directory / "tokenizer.json").is_file():
        return
    from transformers import AutoTokenizer

    try:  # what transformers itself loads a slow tokenizer's files as, special tokens included
        fast = AutoTokenizer.from_pretrained(str(directory), use_fast=True)
    except Exception as e:  # transformers raises ValueError, KeyError or ImportError, by tokenizer class
        raise CompressError(f"the tokenizer {type(tokenizer).__name__} has no fast (tokenizer.json) form, which "
                            f"serve needs: {e}") from None
    if not fast.is_fast:
        raise CompressError(f"the tokenizer {type(tokenizer).__name__} has no fast (tokenizer.json) form, which "
                            "serve needs")
    fast.backend_tokenizer.save(str(directory / "tokenizer.json"))


TOOLS = ("torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime", "mlm-compress")


def tool_versions() -> dict[str, str]:
    """The manifest's ``tools``: the installed version of each package that made the artifact."""
    out = {}
    for name in TOOLS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out
