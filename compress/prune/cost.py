"""What removing a unit saves: parameters (``--prune 0.4``) or estimated CPU time (``--prune 1.6x``).

Parameters are exact. Time is an estimate for the int8 ONNX Runtime graph that ``compress`` makes,
counted per token in *int8 multiply-accumulates* (MACs) of a projection and calibrated from an ONNX
Runtime profile of AntiBERTy (8 layers, hidden 512, 102 tokens, batch 32, 2 threads, AVX-512 VNNI):

- an int8 projection MAC costs about 2.9 ps, the unit of the estimate;
- the attention-score work (Q K^T, softmax, x V and their transposes) stays fp32 under int8 and costs
  about ``attention_weight`` = 8.5 units per MAC; a head holds 2 x seq_len x head_size of those MACs
  per token besides its 4 x hidden x head_size projection MACs;
- a feed-forward neuron costs its 2 x hidden MACs and ``activation_weight`` = 16 for its GELU;
- every layer costs ``layer_weight`` x hidden for what no head or neuron removal touches (two
  SkipLayerNormalizations, bias adds, activation quantization): about 13 % of the unpruned int8 time,
  and the reason a 40 % parameter cut gives about 1.7x, not 1/0.6.

At 102 tokens the estimate gives 1.65x for the 40 % AntiBERTy plan with head_cost_factor 8, measured
at 1.6-2.0x (1.73x in that profile), and 1.46x for the plan with factor 2, measured at 1.40-1.47x.
Other CPUs, runtimes, batch sizes and lengths differ: the artifact's report and the benchmark
measure the real figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from compress.prune.model_parts import LayerParts, all_parts, encoder_params, head_cost, neuron_cost

if TYPE_CHECKING:
    from transformers import PreTrainedModel


class UnitCost(Protocol):
    """The budget pruning spends: what one head, one neuron and a whole encoder cost."""

    def head(self, parts: LayerParts) -> float: ...

    def neuron(self, parts: LayerParts) -> float: ...

    def encoder(self, model: PreTrainedModel) -> float: ...


class ParamCost:
    """Parameters: the exact count a head or a neuron holds."""

    def head(self, parts: LayerParts) -> float:
        return float(head_cost(parts))

    def neuron(self, parts: LayerParts) -> float:
        return float(neuron_cost(parts))

    def encoder(self, model: PreTrainedModel) -> float:
        return float(encoder_params(model))


@dataclass(frozen=True)
class TimeCost:
    """Estimated int8 CPU time per token, in units of one int8 projection MAC (see the module docstring).

    Args:
        seq_len: tokens per sequence the estimate is for (attention work grows with it).
        attention_weight: cost of one fp32 attention-score MAC.
        activation_weight: cost of one neuron's activation function.
        layer_weight: fixed cost of a layer per hidden unit.
    """

    seq_len: int = 128
    attention_weight: float = 8.5
    activation_weight: float = 16.0
    layer_weight: float = 1200.0

    def __post_init__(self) -> None:
        if self.seq_len < 1:
            raise ValueError(f"seq_len must be at least 1, got {self.seq_len}")

    def head(self, parts: LayerParts) -> float:
        hidden, size = parts.attn_out.out_features, parts.head_size
        return 4 * hidden * size + self.attention_weight * 2 * self.seq_len * size

    def neuron(self, parts: LayerParts) -> float:
        return 2 * parts.ffn_in.in_features + self.activation_weight

    def layer(self, parts: LayerParts) -> float:
        return (self.layer_weight * parts.attn_out.out_features + parts.num_heads * self.head(parts)
                + parts.num_neurons * self.neuron(parts))

    def encoder(self, model: PreTrainedModel) -> float:
        return sum(self.layer(p) for p in all_parts(model))


def removable(parts: list[LayerParts], cost: UnitCost, min_heads: int, min_neurons: int, multiple: int = 1) -> float:
    """The most that removing heads and neurons (in chunks of ``multiple``) can save, keeping ``min_heads``
    and ``min_neurons`` per layer."""
    def neurons(p: LayerParts) -> int:
        spare = max(0, p.num_neurons - min_neurons)
        return spare - spare % multiple
    return sum(max(0, p.num_heads - min_heads) * cost.head(p) + neurons(p) * cost.neuron(p) for p in parts)
