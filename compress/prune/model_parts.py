"""Where the prunable parts of an encoder live, for the families we know.

BERT, RoBERTa, ELECTRA, XLM-R and kin share one layout (``encoder.layer[i].attention.self``,
``intermediate.dense``, ``output.dense``); DistilBERT has its own (``transformer.layer[i].attention``,
``ffn.lin1``, ``ffn.lin2``). Everything else in the package goes through this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import nn

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass(frozen=True)
class LayerParts:
    """The modules of one encoder layer that pruning touches."""

    attention: nn.Module  # has prune_heads()
    attn_out: nn.Linear  # input = concatenated heads
    ffn_in: nn.Linear  # rows = neurons
    ffn_out: nn.Linear  # columns = neurons

    @property
    def num_heads(self) -> int:
        inner = getattr(self.attention, "self", self.attention)
        return int(getattr(inner, "num_attention_heads", getattr(inner, "n_heads", 0)))

    @property
    def head_size(self) -> int:
        inner = getattr(self.attention, "self", self.attention)
        return int(getattr(inner, "attention_head_size"))  # noqa: B009 (a module attribute, typed as Tensor | Module)

    @property
    def num_neurons(self) -> int:
        return int(self.ffn_in.out_features)


def layer_list(model: PreTrainedModel) -> nn.ModuleList:
    """The ModuleList of encoder layers of a task model or bare encoder.

    Raises:
        ValueError: the family's layout is not one we know.
    """
    base = model.base_model
    for path in ("encoder.layer", "transformer.layer"):
        obj: object = base
        for attr in path.split("."):
            obj = getattr(obj, attr, None)
        if isinstance(obj, nn.ModuleList):
            return obj
    raise ValueError(
        f"pruning supports BERT-like encoders (encoder.layer) and DistilBERT (transformer.layer); "
        f"{type(model).__name__} has neither"
    )


def layer_parts(layer: Any) -> LayerParts:
    """The attention, attention output and feed-forward projections of one layer."""
    if hasattr(layer, "intermediate"):  # BERT-like
        return LayerParts(layer.attention, layer.attention.output.dense, layer.intermediate.dense, layer.output.dense)
    if hasattr(layer, "ffn"):  # DistilBERT
        return LayerParts(layer.attention, layer.attention.out_lin, layer.ffn.lin1, layer.ffn.lin2)
    raise ValueError(f"unknown encoder layer type {type(layer).__name__}")


def all_parts(model: PreTrainedModel) -> list[LayerParts]:
    return [layer_parts(layer) for layer in layer_list(model)]


def head_cost(parts: LayerParts) -> int:
    """Parameters one head holds: its rows of Q, K, V (weights and biases) and its columns of the output."""
    hidden = parts.attn_out.out_features
    return parts.head_size * (4 * hidden + 3)


def neuron_cost(parts: LayerParts) -> int:
    """Parameters one feed-forward neuron holds: a row and bias of the input projection, a column of the output."""
    return 2 * parts.ffn_in.in_features + 1


def encoder_params(model: PreTrainedModel) -> int:
    """Parameters of the encoder layers (attention and feed-forward weights, biases and LayerNorms)."""
    return sum(p.numel() for p in layer_list(model).parameters())


def nonzero_encoder_params(model: PreTrainedModel) -> int:
    """Encoder parameters that are not exactly zero (what unstructured pruning leaves)."""
    return int(sum(int((p != 0).sum()) for p in layer_list(model).parameters()))


def set_layers(model: PreTrainedModel, layers: list[nn.Module]) -> None:
    """Replace the encoder's layer list (the config is left alone; see :func:`compress.prune.plan.keep_layers`)."""
    base: Any = model.base_model
    parent = base.encoder if hasattr(base, "encoder") else base.transformer
    parent.layer = nn.ModuleList(layers)
    if hasattr(parent, "n_layers"):
        parent.n_layers = len(layers)
