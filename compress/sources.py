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

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.pt", "pytorch_model.pt")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json")
# Key prefixes of the masked-LM heads of the families we know (BERT, RoBERTa, DistilBERT, ELECTRA…).
LM_HEAD_PREFIXES = ("cls.predictions.", "lm_head.", "vocab_projector.", "vocab_transform.",
                    "generator_lm_head.", "generator_predictions.", "predictions.")


@dataclass
class SourceInfo:
    """Where the weights came from, as recorded in the manifest."""

    spec: str
    kind: str  # "hf-dir" | "state-dict" | "hub" | "pickle"
    path: str
    sha256: str | None
    bytes: int


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


def _infer_task(keys: list[str], config: PretrainedConfig, head: str | None) -> Task:
    if head is not None:
        return "classification"
    archs = " ".join(getattr(config, "architectures", None) or [])
    if "SequenceClassification" in archs:
        return "classification"
    if any(k.startswith(LM_HEAD_PREFIXES) for k in keys):
        return "fill-mask"
    if any(k.startswith("classifier.") for k in keys):
        return "classification"
    return "embedding"


def _linear_heads(sd: Mapping[str, torch.Tensor], hidden: int) -> dict[str, int]:
    """Modules that look like linear heads on the hidden state: name -> number of outputs."""
    heads = {}
    for k, v in sd.items():
        if k.endswith(".weight") and v.ndim == 2 and v.shape[1] == hidden and v.shape[0] < hidden:
            heads[k[: -len(".weight")]] = int(v.shape[0])
    return heads


def _select_head(sd: dict[str, torch.Tensor], head: str, hidden: int) -> tuple[dict[str, torch.Tensor], int]:
    """Rename the chosen head's weights to the classifier the task model expects."""
    heads = _linear_heads(sd, hidden)
    matches = [h for h in heads if h == head or h.endswith("." + head)]
    if len(matches) != 1:
        listing = ", ".join(f"{h} ({n} outputs)" for h, n in heads.items()) or "none"
        raise CompressError(f"no single head named {head!r} in the checkpoint; linear heads found: {listing}")
    name = matches[0]
    out = {k: v for k, v in sd.items() if not k.startswith("classifier.")}
    out["classifier.weight"] = out.pop(name + ".weight")
    if name + ".bias" in out:
        out["classifier.bias"] = out.pop(name + ".bias")
    return out, heads[name]


def model_class(task: Task, config: PretrainedConfig) -> type[PreTrainedModel]:
    from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification

    auto = {"fill-mask": AutoModelForMaskedLM, "classification": AutoModelForSequenceClassification,
            "embedding": AutoModel}[task]
    mapping: Any = auto._model_mapping  # type: ignore[attr-defined]
    try:
        return mapping[type(config)]  # type: ignore[no-any-return]
    except KeyError:
        raise CompressError(
            f"transformers has no {task} model for model_type {config.model_type!r}"
        ) from None


def build_task_model(
    sd: dict[str, torch.Tensor], config: PretrainedConfig, task: Task, head: str | None,
    labels: list[str] | None,
) -> tuple[PreTrainedModel, dict[str, int], list[str]]:
    """Instantiate the task model and load the weights; returns (model, extra heads, notes)."""
    hidden = int(config.hidden_size if hasattr(config, "hidden_size") else config.dim)
    notes: list[str] = []
    if task == "classification":
        if head is not None:
            sd, n = _select_head(sd, head, hidden)
        elif "classifier.weight" in sd:
            n = int(sd["classifier.weight"].shape[0])
        elif any(k.startswith("classifier.out_proj.") for k in sd):
            n = int(sd["classifier.out_proj.weight"].shape[0])
        else:
            listing = ", ".join(_linear_heads(sd, hidden)) or "none"
            raise CompressError(f"no classifier in the checkpoint; pick a head with --head (found: {listing})")
        if labels is not None and len(labels) != n:
            raise CompressError(f"the head has {n} outputs but {len(labels)} labels were given")
        config.num_labels = n
        known = config.id2label or {}
        names = labels or [known.get(i, f"LABEL_{i}") for i in range(n)]
        config.id2label = dict(enumerate(names))
        config.label2id = {v: k for k, v in config.id2label.items()}
    cls = model_class(task, config)
    import transformers

    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        model, info = cls.from_pretrained(None, config=config, state_dict=sd, output_loading_info=True)
    except (RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0][:300]
        raise CompressError(f"the config does not fit the weights ({first}); pass the right --config") from None
    finally:
        transformers.logging.set_verbosity(verbosity)
    missing = [k for k in info["missing_keys"] if not k.endswith("position_ids")]
    if info["mismatched_keys"]:
        raise CompressError(f"the config does not fit the weights: shapes differ for {info['mismatched_keys'][:3]}")
    if missing:
        raise CompressError(
            f"the weights lack {len(missing)} tensors the {cls.__name__} needs (e.g. {missing[:3]}): "
            f"the config does not fit the weights, or pass --task to pick another task"
        )
    unused = sorted({k.rsplit(".", 1)[0] for k in info["unexpected_keys"]})
    heads = {h: n for h, n in _linear_heads(sd, hidden).items() if h in unused}
    rest = [m for m in unused if m not in heads and not m.endswith("pooler.dense")]
    if rest:
        notes.append(f"unused weights not exported: {', '.join(rest[:8])}")
    return model.eval(), heads, notes


def _sentence_transformers_pooling(directory: Path) -> tuple[str, bool]:
    pooling, normalize = "mean", False
    modules = directory / "modules.json"
    if modules.is_file():
        for m in json.loads(modules.read_text()):
            if m.get("type", "").endswith("Normalize"):
                normalize = True
            if m.get("type", "").endswith("Pooling"):
                cfg = directory / m.get("path", "") / "config.json"
                if cfg.is_file():
                    p = json.loads(cfg.read_text())
                    if p.get("pooling_mode_cls_token"):
                        pooling = "cls"
                    elif p.get("pooling_mode_max_tokens"):
                        pooling = "max"
    return pooling, normalize


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
    from transformers import AutoConfig, PreTrainedModel

    path = Path(spec).expanduser()
    module = None
    if path.is_dir():
        weights, kind = _weights_in_dir(path), "hf-dir"
    elif path.is_file():
        weights, kind = path, "state-dict"
    elif spec.endswith((".pt", ".bin", ".pth", ".safetensors")) or spec.startswith((".", "/", "~")):
        raise CompressError(f"{spec} not found")
    else:
        weights, kind = _download(spec), "hub"
        if weights.is_dir():
            weights = _weights_in_dir(weights)
    sd, module = read_state_dict(weights, trust_pickle=trust_pickle)
    if module is not None:
        kind = "pickle"
    directory = weights.parent

    if isinstance(module, PreTrainedModel) and config is None:
        cfg = module.config
    else:
        cfg_path = Path(config) if config else directory / "config.json"
        if cfg_path.is_dir():
            cfg_path = cfg_path / "config.json"
        if not cfg_path.is_file():
            raise CompressError(
                f"no config.json beside {weights.name}; pass --config path/to/config.json "
                "(the transformers config the weights were trained with)"
            )
        try:
            cfg = AutoConfig.from_pretrained(str(cfg_path))
        except (ValueError, OSError, json.JSONDecodeError) as e:
            raise CompressError(f"{cfg_path} is not a transformers config: {e}") from None

    chosen_task: Task = task or _infer_task(list(sd), cfg, head)
    model, extra, notes = build_task_model(sd, cfg, chosen_task, head, labels)

    tok_dir = Path(tokenizer) if tokenizer else _find_tokenizer_dir([directory, directory.parent])
    if tok_dir is None:
        raise CompressError(f"no tokenizer found beside {weights}; pass --tokenizer DIR_OR_VOCAB_TXT")
    if not tok_dir.exists():
        raise CompressError(f"tokenizer {tok_dir} not found")
    tok = load_tokenizer(tok_dir, cfg)
    n_embeddings = int(model.config.vocab_size)
    if len(tok) > n_embeddings:
        raise CompressError(
            f"the tokenizer at {tok_dir} has {len(tok)} tokens but the model's embedding has "
            f"{n_embeddings}: pass the model's own --tokenizer"
        )
    pooling, normalize = _sentence_transformers_pooling(directory)
    size = sum(p.stat().st_size for p in ([weights] if weights.is_file() else []))
    info = SourceInfo(spec=spec, kind=kind, path=str(weights.resolve()),
                      sha256=sha256_file(weights) if weights.is_file() else None, bytes=size)
    if not tokenizer:
        notes.append(f"tokenizer found at {tok_dir}")
    if extra:
        listing = ", ".join(f"{h} ({n} outputs)" for h, n in extra.items())
        notes.insert(0, f"checkpoint has heads not exported for {chosen_task}: {listing}; "
                        "export one with --task classification --head NAME")
    return LoadedModel(model=model, task=chosen_task, tokenizer=tok, source=info, head=head,
                       labels=[(model.config.id2label or {})[i] for i in range(model.config.num_labels)]
                       if chosen_task == "classification" else None,
                       pooling=pooling, normalize=normalize, extra_heads=extra, notes=notes)


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
