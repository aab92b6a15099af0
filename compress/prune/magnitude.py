"""Unstructured magnitude pruning: zero the smallest weights of the encoder's linear layers, ranked
globally, optionally gradually during recovery (cubic schedule of Zhu & Gupta 2017).

Be clear about what this buys. Zeros inside dense matrices make no dense runtime faster: ONNX
Runtime multiplies them like any other number, so the speed of the artifact is unchanged. They only
make the model smaller when it is stored sparsely: :func:`store_sparse` rewrites an ONNX file's
mostly-zero initializers as ONNX sparse initializers (values + int32 positions), which ONNX Runtime
expands back to dense matrices when it loads the graph. With 4-byte positions that pays above 50 %
sparsity for fp32 weights and above 80 % for int8 ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from compress.prune.model_parts import layer_list, nonzero_encoder_params
from compress.prune.registry import MethodOutput, PruneContext, register

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass(frozen=True)
class MagnitudeConfig:
    """Zero ``sparsity`` of the encoder's linear weights, smallest magnitudes first, over all layers together.

    Args:
        sparsity: final fraction of zeros among the encoder's linear weights.
        gradual: reach ``sparsity`` along a cubic schedule during recovery (first at ``initial_sparsity``);
            without recovery the final sparsity applies at once.
        initial_sparsity: where the gradual schedule starts.
        ramp: fraction of the recovery steps over which sparsity rises; the rest fine-tunes at the final mask.
    """

    sparsity: float = 0.5
    gradual: bool = True
    initial_sparsity: float = 0.1
    ramp: float = 0.75

    def __post_init__(self) -> None:
        if not 0 < self.sparsity < 1 or not 0 <= self.initial_sparsity <= self.sparsity:
            raise ValueError("need 0 <= initial_sparsity <= sparsity < 1 and sparsity > 0")


def linear_weights(model: PreTrainedModel) -> list[torch.Tensor]:
    """The weight matrices of the encoder layers' linear projections."""
    return [m.weight for m in layer_list(model).modules() if isinstance(m, torch.nn.Linear)]


def apply_sparsity(weights: list[torch.Tensor], sparsity: float) -> float:
    """Zero the ``sparsity`` smallest-magnitude entries of ``weights`` (one global threshold); returns the threshold."""
    with torch.no_grad():
        mags = torch.cat([w.detach().abs().flatten() for w in weights])
        k = int(sparsity * mags.numel())
        if k == 0:
            return 0.0
        threshold = float(torch.kthvalue(mags, k).values)
        for w in weights:
            w.mul_((w.abs() > threshold).to(w.dtype))
    return threshold


def schedule(step: int, total: int, cfg: MagnitudeConfig) -> float:
    """Sparsity at ``step`` of ``total``: cubic rise from initial to final over the first ``ramp`` of the steps."""
    end = max(1, round(cfg.ramp * total))
    t = min(1.0, step / end)
    return cfg.sparsity + (cfg.initial_sparsity - cfg.sparsity) * (1 - t) ** 3


def zeros_fraction(model: PreTrainedModel) -> float:
    """Fraction of exact zeros among the encoder's linear weights."""
    ws = linear_weights(model)
    return float(sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws))


@register("magnitude", MagnitudeConfig)
def prune_magnitude(model: PreTrainedModel, cfg: MagnitudeConfig, ctx: PruneContext) -> MethodOutput:
    """Zero the smallest weights now (or the initial sparsity, ramping up during recovery)."""
    weights = linear_weights(model)
    start = cfg.initial_sparsity if cfg.gradual else cfg.sparsity
    apply_sparsity(weights, start)
    ctx.say(f"magnitude: {zeros_fraction(model):.1%} of encoder linear weights are zero")

    def on_step(step: int, total: int) -> None:
        # Re-applied after every optimizer step, so pruned weights stay zero while the rest train.
        apply_sparsity(weights, schedule(step, total, cfg) if cfg.gradual else cfg.sparsity)

    return MethodOutput(details={"nonzero_params": nonzero_encoder_params(model),
                                 "speed_note": "zeros in dense matrices: not faster on ONNX Runtime; smaller only "
                                               "when stored sparsely (store_sparse)"},
                        on_step=on_step)


def store_sparse(src: Path, dst: Path, min_saving: float = 0.1) -> dict[str, Any]:
    """Rewrite ``src``'s initializers as ONNX sparse initializers where that saves at least ``min_saving`` of
    their bytes; write ``dst``. Use it last (after quantization: the quantizers read only dense graphs).

    Returns:
        Counts and bytes before and after, for the manifest.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    keep, sparse = [], []
    before = after = 0
    for init in graph.initializer:
        arr = numpy_helper.to_array(init)
        dense = arr.nbytes
        flat = arr.reshape(-1)
        nz = np.flatnonzero(flat)
        packed = len(nz) * (arr.itemsize + 4)
        if arr.ndim >= 2 and packed <= (1 - min_saving) * dense:
            values = numpy_helper.from_array(flat[nz], init.name)
            indices = numpy_helper.from_array(nz.astype(np.int32), init.name + "_indices")
            sparse.append(helper.make_sparse_tensor(values, indices, list(arr.shape)))
            before, after = before + dense, after + packed
        else:
            keep.append(init)
    del graph.initializer[:]
    graph.initializer.extend(keep)
    graph.sparse_initializer.extend(sparse)
    onnx.save(model, str(dst))
    return {"sparse_initializers": len(sparse), "dense_bytes": before, "sparse_bytes": after}
