"""Which task a checkpoint is for, and the transformers task model that fits it.

The task is read off the weights: an LM head means fill-mask, a classifier means classification, a
bare encoder means embedding. Extra linear heads (AntiBERTy's species, chain, graft) are found by
shape, reported, and one can be exported as the classifier.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from compress import CompressError
from compress.catalog import Task

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig, PreTrainedModel

# Key prefixes of the masked-LM heads of the families we know (BERT, RoBERTa, DistilBERT, ELECTRA,
# ALBERT, DeBERTa-v2); ModernBERT's head is "head." + "decoder.", both generic names, so only the pair counts.
LM_HEAD_PREFIXES = ("cls.predictions.", "lm_head.", "vocab_projector.", "vocab_transform.",
                    "generator_lm_head.", "generator_predictions.", "predictions.", "lm_predictions.")
LM_HEAD_PAIRS = (("head.dense.", "decoder."),)
# Tested for fill-mask, classification and embedding (tests/compress/test_export.py); other encoders
# that transformers and optimum know may work, untested.
FAMILIES = ("bert", "distilbert", "roberta", "xlm-roberta", "electra", "albert", "deberta-v2", "modernbert")


def _has_lm_head(keys: list[str]) -> bool:
    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    return any(has(p) for p in LM_HEAD_PREFIXES) or any(all(has(p) for p in pair) for pair in LM_HEAD_PAIRS)


def infer_task(keys: list[str], config: PretrainedConfig, head: str | None) -> Task:
    if head is not None:
        return "classification"
    archs = " ".join(getattr(config, "architectures", None) or [])
    if "SequenceClassification" in archs:
        return "classification"
    if "ForMaskedLM" in archs or _has_lm_head(keys):
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
            f"transformers has no {task} model for model_type {config.model_type!r}; "
            f"supported families: {', '.join(FAMILIES)}"
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
