"""Reading a source into a :class:`MultiTaskModel` and writing a trained one as a model directory.

The directory (``HEADS_FILE`` marks it)::

    config.json, model.safetensors   the encoder: AutoModelForMaskedLM (with an mlm head) or AutoModel
    tokenizer files                   AutoTokenizer.from_pretrained(dir); model_max_length: the training length
    heads.json                        every head: name, kind, labels, pooling (format HEADS_FORMAT)
    heads.safetensors                 the heads' linear layers (NAME.weight, NAME.bias) and the pooler
    modules.json, 1_Pooling/, …       with an embedding head: sentence-transformers loads the directory
    training.json, train_report.*     how it was made, and the held-out figures
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from compress import CompressError
from compress.train.model import EMBEDDING, MLM, HeadRecord, MultiTaskModel

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from compress.catalog import ModelEntry
    from compress.sources import LoadedModel, SourceInfo

HEADS_FILE, HEADS_WEIGHTS, HEADS_FORMAT = "heads.json", "heads.safetensors", 1


def is_trained_dir(path: str | Path) -> bool:
    return (Path(path) / HEADS_FILE).is_file()


def _pooler_from(sd: dict[str, torch.Tensor], dim: int) -> nn.Module | None:
    """BERT's pooler (dense + tanh on [CLS]) from a state dict's ``*pooler.dense.*`` weights, if any."""
    weight = next((v for k, v in sd.items() if k.endswith("pooler.dense.weight")), None)
    bias = next((v for k, v in sd.items() if k.endswith("pooler.dense.bias")), None)
    if weight is None or bias is None or tuple(weight.shape) != (dim, dim):
        return None
    pooler = _Pooler(dim)
    pooler.dense.weight.data.copy_(weight)
    pooler.dense.bias.data.copy_(bias)
    return pooler


class _Pooler(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dense = nn.Linear(dim, dim)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))


def _linear_from(sd: dict[str, torch.Tensor], name: str) -> nn.Linear:
    weight, bias = sd[f"{name}.weight"], sd.get(f"{name}.bias")
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    linear.weight.data.copy_(weight)
    if bias is not None:
        linear.bias.data.copy_(bias)
    return linear


def load_source(spec: str, *, entry: ModelEntry | None = None, trust_pickle: bool = False
                ) -> tuple[MultiTaskModel, PreTrainedTokenizerBase, SourceInfo]:
    """The model to train: a trained directory as written, or any source ``compress run`` takes, with the
    heads it already has (its LM head as ``mlm``, a sentence embedder's output as ``embedding``, and the
    extra linear heads the models.yaml entry names or the checkpoint holds).

    Raises:
        CompressError: the source cannot be loaded.
    """
    from compress.sources import load_entry, load_model, read_state_dict

    if entry is None and is_trained_dir(spec):
        return load_trained(Path(spec))
    loaded: LoadedModel = (load_entry(entry, task=None if not entry.heads else "fill-mask", trust_pickle=trust_pickle)
                           if entry else load_model(spec, trust_pickle=trust_pickle))
    if loaded.task == "classification":
        raise CompressError("the source loads as a classifier; train from its encoder (a masked-LM or a bare "
                            "model directory), or from a directory `compress train` wrote")
    sd = read_state_dict(Path(loaded.source.path), trust_pickle=trust_pickle)[0] if loaded.source.sha256 else {}
    dim = int(getattr(loaded.model.config, "hidden_size", 0) or loaded.model.config.dim)
    records, linears = [], {}
    if loaded.task == "fill-mask":
        records.append(HeadRecord(MLM, "fill-mask"))
    else:
        records.append(HeadRecord(EMBEDDING, "embedding", pooling=loaded.pooling, normalize=loaded.normalize))  # type: ignore[arg-type]
    labels = {h.name: h.labels for h in (entry.heads or [])} if entry else {}
    for path, n in loaded.extra_heads.items():
        name = path.rsplit(".", 1)[-1]
        if entry and entry.heads and name not in labels:
            continue  # a head the entry leaves out (AntiBERTy's graft)
        given = labels.get(name) or [f"LABEL_{i}" for i in range(n)]
        records.append(HeadRecord(name, "classification", labels=given, pooling="pooler"))
        linears[name] = _linear_from(sd, path)
    model = MultiTaskModel(loaded.model, records, linears, _pooler_from(sd, dim))
    return model, loaded.tokenizer, loaded.source


def save_trained(model: MultiTaskModel, tokenizer: PreTrainedTokenizerBase, out: Path,
                 max_length: int | None = None) -> None:
    """Write ``model`` as the model directory described in this module's docstring; its tokenizer's
    ``model_max_length`` becomes ``max_length`` when given (the length it was trained at), which
    `compress run` and `serve` then read inputs at."""
    from safetensors.torch import save_file

    model.model.save_pretrained(str(out), safe_serialization=True)
    if max_length is not None:
        tokenizer.model_max_length = max_length
    tokenizer.save_pretrained(str(out))
    tensors = {f"{name}.{k}": v.detach().contiguous() for name, lin in model.linears.items()
               for k, v in lin.state_dict().items()}
    if model.pooler is not None:
        tensors.update({f"pooler.{k}": v.detach().contiguous() for k, v in model.pooler.state_dict().items()})
    save_file(tensors, str(out / HEADS_WEIGHTS), metadata={"format": "pt"})
    records = [r.as_json() for r in model.records.values()]
    (out / HEADS_FILE).write_text(json.dumps({"format": HEADS_FORMAT, "heads": records}, indent=2) + "\n")
    embedding = next((r for r in model.records.values() if r.kind == "embedding"), None)
    if embedding is not None:
        _sentence_transformers_files(out, embedding, int(model.config.hidden_size))


def _sentence_transformers_files(out: Path, head: HeadRecord, dim: int) -> None:
    """modules.json and the pooling config, so ``SentenceTransformer(out)`` loads the embedding head."""
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if head.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (out / "2_Normalize").mkdir(exist_ok=True)
    (out / "modules.json").write_text(json.dumps(modules, indent=2) + "\n")
    (out / "1_Pooling").mkdir(exist_ok=True)
    mode = {"mean": "pooling_mode_mean_tokens", "cls": "pooling_mode_cls_token"}.get(head.pooling or "mean",
                                                                                  "pooling_mode_mean_tokens")
    (out / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": dim, mode: True},
                                                              indent=2) + "\n")


def read_heads(directory: Path) -> list[HeadRecord]:
    """heads.json of a trained directory.

    Raises:
        CompressError: a format this version does not read.
    """
    data = json.loads((directory / HEADS_FILE).read_text())
    if data.get("format") != HEADS_FORMAT:
        raise CompressError(f"{directory / HEADS_FILE}: format {data.get('format')!r}; this version reads "
                            f"format {HEADS_FORMAT}")
    return [HeadRecord(**h) for h in data["heads"]]


def load_trained(directory: Path) -> tuple[MultiTaskModel, PreTrainedTokenizerBase, SourceInfo]:
    """A directory `compress train` wrote, with every head."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

    from compress.sources import SourceInfo, sha256_file

    records = read_heads(directory)
    auto: Any = AutoModelForMaskedLM if any(r.kind == "fill-mask" for r in records) else AutoModel
    encoder = auto.from_pretrained(str(directory))
    sd = load_file(str(directory / HEADS_WEIGHTS)) if (directory / HEADS_WEIGHTS).is_file() else {}
    linears = {r.name: _linear_from(sd, r.name) for r in records if f"{r.name}.weight" in sd}
    pooler = _pooler_from(sd, int(encoder.config.hidden_size))
    weights = directory / "model.safetensors"
    source = SourceInfo(spec=str(directory), kind="hf-dir", path=str(weights.resolve()),
                        sha256=sha256_file(weights), bytes=weights.stat().st_size,
                        training=_training_record(directory))
    return MultiTaskModel(encoder, records, linears, pooler), AutoTokenizer.from_pretrained(str(directory)), source


def _training_record(directory: Path) -> dict[str, Any] | None:
    record = directory / "training.json"
    return json.loads(record.read_text()) if record.is_file() else None
