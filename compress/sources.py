"""Load a user's model from whatever they have: a model directory, a bare state dict, a hub id.

Everything funnels into one path: a state dict plus a config, from which the task model is built
with transformers (which handles key prefixes and tied weights). The task is read off the weights
(LM head, classifier, bare encoder) unless the user names it; heads that the chosen task model does
not use are reported, never dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compress import CompressError
from compress.catalog import ModelEntry, Task
from compress.tasks import build_task_model, infer_task

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.pt", "pytorch_model.pt")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json")


@dataclass
class SourceInfo:
    """Where the weights came from, as recorded in the manifest."""

    spec: str
    kind: str  # "hf-dir" | "state-dict" | "hub" | "pickle"
    path: str
    sha256: str | None
    bytes: int
    adaptation: dict[str, Any] | None = None  # adaptation.json of a `compress adapt` output directory
    training: dict[str, Any] | None = None  # training.json of a `compress train` output directory


@dataclass
class LoadedModel:
    """A task model ready for export, with what is needed to tokenize and describe it."""

    model: PreTrainedModel
    task: Task
    tokenizer: PreTrainedTokenizerBase
    source: SourceInfo
    head: str | None = None
    labels: list[str] | None = None
    pooling: str = "mean"
    normalize: bool = False
    extra_heads: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def family(self) -> str:
        return str(self.model.config.model_type)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _weights_in_dir(directory: Path) -> Path:
    for name in WEIGHT_FILES:
        if (directory / name).is_file():
            return directory / name
    if (directory / "model.safetensors.index.json").is_file():
        return directory / "model.safetensors.index.json"
    raise CompressError(
        f"{directory} holds no weights: expected one of {', '.join(WEIGHT_FILES)}"
    )


def read_state_dict(path: Path, *, trust_pickle: bool = False) -> tuple[dict[str, torch.Tensor], Any]:
    """Read tensors from a .safetensors, .bin/.pt/.pth or sharded-index file.

    Returns the state dict and, when ``trust_pickle`` loaded a whole module, that module.

    Raises:
        CompressError: the file holds pickled objects and ``trust_pickle`` is off, or is unreadable.
    """
    import torch

    if path.name.endswith(".index.json"):
        index = json.loads(path.read_text())
        sd: dict[str, torch.Tensor] = {}
        for shard in sorted(set(index["weight_map"].values())):
            sd.update(read_state_dict(path.parent / shard)[0])
        return sd, None
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path)), None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as e:
        raise CompressError(
            f"{path} holds pickled Python objects, not only tensors (loading it would run code from the "
            f"file). If you trust it, add --trust-pickle; better, save a state dict: "
            f"torch.save(model.state_dict(), ...). Detail: {str(e).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, OSError) as e:
        raise CompressError(f"cannot read {path} as PyTorch weights: {e}") from None
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict(), obj
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors, None
    raise CompressError(f"{path} holds no tensors (found {type(obj).__name__})")


def _find_tokenizer_dir(candidates: list[Path]) -> Path | None:
    for d in candidates:
        if any((d / n).is_file() for n in TOKENIZER_FILES):
            return d
    return None


def load_tokenizer(location: Path, config: PretrainedConfig) -> PreTrainedTokenizerBase:
    """Load a tokenizer from a directory, or build a WordPiece one from a bare ``vocab.txt``."""
    from transformers import AutoTokenizer, BertTokenizerFast

    vocab = location if location.is_file() else location / "vocab.txt"
    has_config = location.is_dir() and any(
        (location / n).is_file() for n in ("tokenizer.json", "tokenizer_config.json")
    )
    if has_config:
        return AutoTokenizer.from_pretrained(str(location))
    if vocab.is_file() and vocab.suffix == ".txt":
        words = [w for w in vocab.read_text().split("\n") if w and not w.startswith("[")]
        lower = not any(w != w.lower() for w in words)
        return BertTokenizerFast(vocab_file=str(vocab), do_lower_case=lower,
                                 model_max_length=getattr(config, "max_position_embeddings", 512))
    if location.is_dir():
        return AutoTokenizer.from_pretrained(str(location))
    raise CompressError(f"cannot make a tokenizer from {location}: give a directory or a vocab.txt")


def _sentence_transformers_pooling(directory: Path) -> tuple[str, bool]:
    """The pooling and normalization a sentence-transformers directory declares (mean, off if none)."""
    modules = directory / "modules.json"
    if not modules.is_file():
        return "mean", False
    entries = json.loads(modules.read_text())
    normalize = any(m.get("type", "").endswith("Normalize") for m in entries)
    pooling = "mean"
    for m in entries:
        if m.get("type", "").endswith("Pooling"):
            pooling = _pooling_mode(directory / m.get("path", "") / "config.json", pooling)
    return pooling, normalize


def _pooling_mode(config: Path, default: str) -> str:
    """The mode a sentence-transformers Pooling config names, or ``default``."""
    if not config.is_file():
        return default
    p = json.loads(config.read_text())
    if p.get("pooling_mode_cls_token"):
        return "cls"
    if p.get("pooling_mode_max_tokens"):
        return "max"
    return default


def load_model(
    spec: str,
    *,
    config: str | None = None,
    tokenizer: str | None = None,
    task: Task | None = None,
    head: str | None = None,
    labels: list[str] | None = None,
    trust_pickle: bool = False,
) -> LoadedModel:
    """Load a model from a directory, a weights file, or a hub id.

    Args:
        spec: model directory, ``.safetensors``/``.bin``/``.pt`` file, or hub id.
        config: ``config.json`` (or its directory) when it is not beside the weights.
        tokenizer: tokenizer directory or ``vocab.txt``; default: beside the weights, then one level up.
        task: force a task instead of reading it off the weights.
        head: name of an extra linear head to export as the classifier (e.g. ``species``).
        labels: class names for the head, in output order.
        trust_pickle: allow ``torch.load(weights_only=False)``, which runs code from the file.

    Raises:
        CompressError: with the fix in the message.

    Example:
        >>> m = load_model("model_dir", task="fill-mask")  # doctest: +SKIP
    """
    weights, kind = _locate_weights(spec)
    sd, module = read_state_dict(weights, trust_pickle=trust_pickle)
    if module is not None:
        kind = "pickle"
    cfg = _read_config(config, weights, module)
    chosen_task: Task = task or infer_task(list(sd), cfg, head)
    model, extra, notes = build_task_model(sd, cfg, chosen_task, head, labels)
    tok, tok_dir = _checked_tokenizer(tokenizer, weights, cfg, int(model.config.vocab_size))
    pooling, normalize = _sentence_transformers_pooling(weights.parent)
    if not tokenizer:
        notes.append(f"tokenizer found at {tok_dir}")
    if extra:
        notes.insert(0, _unexported_heads_note(extra, chosen_task))
    return LoadedModel(model=model, task=chosen_task, tokenizer=tok, source=_source_info(spec, kind, weights),
                       head=head, labels=_class_labels(model) if chosen_task == "classification" else None,
                       pooling=pooling, normalize=normalize, extra_heads=extra, notes=notes)


def _locate_weights(spec: str) -> tuple[Path, str]:
    """The weights file ``spec`` names (a directory, a file, a hub id) and the kind of source."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return _weights_in_dir(path), "hf-dir"
    if path.is_file():
        return path, "state-dict"
    if spec.endswith((".pt", ".bin", ".pth", ".safetensors")) or spec.startswith((".", "/", "~")):
        raise CompressError(f"{spec} not found")
    weights = _download(spec)
    return (_weights_in_dir(weights) if weights.is_dir() else weights), "hub"


def _read_config(config: str | None, weights: Path, module: Any) -> PretrainedConfig:
    """The model config: a pickled model's own, ``config``, or the ``config.json`` beside the weights."""
    from transformers import AutoConfig, PreTrainedModel

    if isinstance(module, PreTrainedModel) and config is None:
        return module.config
    cfg_path = Path(config) if config else weights.parent / "config.json"
    if cfg_path.is_dir():
        cfg_path = cfg_path / "config.json"
    if not cfg_path.is_file():
        raise CompressError(
            f"no config.json beside {weights.name}; pass --config path/to/config.json "
            "(the transformers config the weights were trained with)"
        )
    try:
        return AutoConfig.from_pretrained(str(cfg_path))
    except (ValueError, OSError, json.JSONDecodeError) as e:
        raise CompressError(f"{cfg_path} is not a transformers config: {e}") from None


def _checked_tokenizer(
    tokenizer: str | None, weights: Path, cfg: PretrainedConfig, n_embeddings: int
) -> tuple[PreTrainedTokenizerBase, Path]:
    """The tokenizer named, or found beside the weights (or one level up), checked against the embedding."""
    directory = weights.parent
    tok_dir = Path(tokenizer) if tokenizer else _find_tokenizer_dir([directory, directory.parent])
    if tok_dir is None:
        raise CompressError(f"no tokenizer found beside {weights}; pass --tokenizer DIR_OR_VOCAB_TXT")
    if not tok_dir.exists():
        raise CompressError(f"tokenizer {tok_dir} not found")
    tok = load_tokenizer(tok_dir, cfg)
    if len(tok) > n_embeddings:
        raise CompressError(
            f"the tokenizer at {tok_dir} has {len(tok)} tokens but the model's embedding has "
            f"{n_embeddings}: pass the model's own --tokenizer"
        )
    return tok, tok_dir


def _source_info(spec: str, kind: str, weights: Path) -> SourceInfo:
    """Where the weights came from; a sharded index has no single file to hash."""
    is_file = weights.is_file()
    record = weights.parent / "adaptation.json"  # written by `compress adapt` beside the weights
    return SourceInfo(spec=spec, kind=kind, path=str(weights.resolve()),
                      sha256=sha256_file(weights) if is_file else None,
                      bytes=weights.stat().st_size if is_file else 0,
                      adaptation=json.loads(record.read_text()) if record.is_file() else None)


def _class_labels(model: PreTrainedModel) -> list[str]:
    """The classifier's labels in output order."""
    return [(model.config.id2label or {})[i] for i in range(model.config.num_labels)]


def _unexported_heads_note(extra: dict[str, int], task: Task) -> str:
    listing = ", ".join(f"{h} ({n} outputs)" for h, n in extra.items())
    return (f"checkpoint has heads not exported for {task}: {listing}; "
            "export one with --task classification --head NAME")


def load_entry(entry: ModelEntry, **overrides: Any) -> LoadedModel:
    """Load a models.yaml entry; keyword arguments override the entry's fields (None = keep)."""
    from compress.catalog import resolve_location

    def pick(key: str) -> Any:
        value = overrides.get(key)
        return value if value is not None else getattr(entry, key, None)

    tokenizer = overrides.get("tokenizer") or (
        resolve_location(entry.tokenizer, entry.requires) if entry.tokenizer else None)
    return load_model(resolve_location(entry.source, entry.requires), config=overrides.get("config"),
                      tokenizer=tokenizer, task=pick("task"), head=pick("head"), labels=pick("labels"),
                      trust_pickle=bool(overrides.get("trust_pickle")))


def _download(repo_id: str) -> Path:
    """Fetch a hub repository (for users who are online); offline, a clear error."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.txt", "*.safetensors", "*.bin",
                                                               "*.model", "1_Pooling/*"]))
    except Exception as e:  # hub errors come in many types; all mean "cannot get it"
        raise CompressError(
            f"{repo_id!r} is not a file, a directory or a models.yaml name, and could not be fetched "
            f"from the model hub ({type(e).__name__}). Check the path or name."
        ) from None
