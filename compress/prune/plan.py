"""What structured pruning removes, as data: a plan that can be recorded, composed and applied.

Indices in a plan are always those of the *original* model, so a plan read back from a manifest or a
checkpoint rebuilds the same pruned model from the original weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from compress.prune.model_parts import all_parts, layer_list, set_layers

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass
class PrunePlan:
    """Heads to remove, neurons to keep and layers to keep, in original indices.

    A layer missing from ``heads`` loses no heads; missing from ``neurons`` keeps them all;
    ``layers`` None keeps every layer.
    """

    heads: dict[int, list[int]] = field(default_factory=dict)
    neurons: dict[int, list[int]] = field(default_factory=dict)
    layers: list[int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"heads": {str(k): sorted(v) for k, v in sorted(self.heads.items()) if v},
                "neurons": {str(k): sorted(v) for k, v in sorted(self.neurons.items())},
                "layers": self.layers}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PrunePlan:
        return cls(heads={int(k): list(v) for k, v in d.get("heads", {}).items()},
                   neurons={int(k): list(v) for k, v in d.get("neurons", {}).items()},
                   layers=d.get("layers"))


def plan_shape(model: PreTrainedModel) -> list[tuple[int, int]]:
    """(heads, neurons) of each layer of an unpruned model."""
    return [(p.num_heads, p.num_neurons) for p in all_parts(model)]


def compose(first: PrunePlan, second: PrunePlan, shape: list[tuple[int, int]]) -> PrunePlan:
    """The plan equal to applying ``first`` and then ``second`` (whose indices refer to the model after ``first``).

    Args:
        first: plan in original indices.
        second: plan in the indices of the model ``first`` produced.
        shape: (heads, neurons) per layer of the original model, from :func:`plan_shape`.

    Returns:
        One plan in original indices.
    """
    layers = first.layers if first.layers is not None else list(range(len(shape)))
    out = PrunePlan(heads={k: list(v) for k, v in first.heads.items()},
                    neurons={k: list(v) for k, v in first.neurons.items()})
    for cur, orig in enumerate(layers):
        alive_heads = [h for h in range(shape[orig][0]) if h not in set(first.heads.get(orig, []))]
        removed = [alive_heads[h] for h in second.heads.get(cur, [])]
        if removed:
            out.heads[orig] = sorted(set(out.heads.get(orig, [])) | set(removed))
        if cur in second.neurons:
            alive = first.neurons.get(orig, list(range(shape[orig][1])))
            out.neurons[orig] = [alive[i] for i in second.neurons[cur]]
    out.layers = [layers[i] for i in second.layers] if second.layers is not None else first.layers
    return out


def prune_neurons(model: PreTrainedModel, keep: dict[int, list[int]]) -> None:
    """Keep only the listed feed-forward neurons of each layer (current indices): slices rows of the
    input projection and columns of the output projection, in place."""
    import torch
    from transformers.pytorch_utils import prune_linear_layer

    layers = layer_list(model)
    for i, idx in keep.items():
        if not idx:
            raise ValueError(f"layer {i}: keep at least one feed-forward neuron")
        layer: Any = layers[i]
        index: Any = torch.tensor(sorted(idx), dtype=torch.long)
        if hasattr(layer, "intermediate"):
            layer.intermediate.dense = prune_linear_layer(layer.intermediate.dense, index, dim=0)
            layer.output.dense = prune_linear_layer(layer.output.dense, index, dim=1)
        else:
            layer.ffn.lin1 = prune_linear_layer(layer.ffn.lin1, index, dim=0)
            layer.ffn.lin2 = prune_linear_layer(layer.ffn.lin2, index, dim=1)


def keep_layers(model: PreTrainedModel, keep: list[int]) -> None:
    """Keep only the listed encoder layers (current indices, in order), in place; updates the config."""
    layers = layer_list(model)
    if not keep or len(set(keep)) != len(keep) or not all(0 <= i < len(layers) for i in keep):
        raise ValueError(f"layers to keep must be distinct indices in 0..{len(layers) - 1}; got {keep}")
    set_layers(model, [layers[i] for i in sorted(keep)])
    cfg = model.config
    for attr in ("num_hidden_layers", "n_layers"):
        if hasattr(cfg, attr):
            setattr(cfg, attr, len(keep))
    old = {int(k): v for k, v in (cfg.pruned_heads or {}).items()}
    cfg.pruned_heads = {new_i: old[i] for new_i, i in enumerate(sorted(keep)) if i in old}


def apply_plan(model: PreTrainedModel, plan: PrunePlan) -> PreTrainedModel:
    """Prune ``model`` in place as ``plan`` says, in the indices of ``model`` as it is now; returns it.

    Heads go through transformers' ``prune_heads`` (Q, K, V rows and output-projection columns),
    neurons through :func:`prune_neurons`, then layers through :func:`keep_layers`. A plan with
    original indices applies to the original model; to a pruned one, a plan from its own scores.

    Raises:
        ValueError: the plan removes every head or every neuron of a layer, or names a layer that does not exist.
    """
    parts = all_parts(model)
    heads: dict[int, list[int]] = {}
    for i, chosen in plan.heads.items():
        if not chosen:
            continue
        if i >= len(parts) or len(set(chosen)) >= parts[i].num_heads or max(chosen) >= parts[i].num_heads:
            raise ValueError(f"layer {i}: the plan must name heads below {parts[i].num_heads} and leave at least one")
        # transformers' prune_heads counts heads as they were before any pruning of this layer.
        done = set(getattr(parts[i].attention, "pruned_heads", set()))
        alive = [h for h in range(parts[i].num_heads + len(done)) if h not in done]
        heads[i] = sorted(alive[h] for h in chosen)
    if heads:
        model.prune_heads(heads)
    if plan.neurons:
        prune_neurons(model, plan.neurons)
    if plan.layers is not None:
        keep_layers(model, plan.layers)
    return model


def describe(plan: PrunePlan, shape: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """Per original layer: kept or removed, heads kept (original indices), neurons kept (count), for the manifest."""
    kept_layers = set(plan.layers if plan.layers is not None else range(len(shape)))
    rows = []
    for i, (n_heads, n_neurons) in enumerate(shape):
        if i not in kept_layers:
            rows.append({"layer": i, "removed": True, "heads_kept": [], "neurons_kept": 0})
            continue
        gone = set(plan.heads.get(i, []))
        rows.append({"layer": i, "removed": False, "heads_kept": [h for h in range(n_heads) if h not in gone],
                     "neurons_kept": len(plan.neurons.get(i, range(n_neurons)))})
    return rows
