"""Export a task model to ONNX through optimum, with the graph shaped for serving.

Each task gets a small wrapper whose outputs are what a server needs, so no work is wasted:

- fill-mask: ``mask_logits`` [num_masks, vocab] and ``mask_positions`` [num_masks, 2] (batch, position).
  The vocabulary projection runs only on the hidden states at mask tokens, gathered inside the graph,
  instead of at every position (at vocab 30k it costs more than the whole encoder).
- classification: ``logits`` [batch, num_labels].
- embedding: ``sentence_embedding`` [batch, hidden], pooled as the model's pooling config says.

Batch and sequence axes are dynamic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from compress.catalog import Task

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from compress.head_graph import MultiHeadGraph

log = logging.getLogger(__name__)

OUTPUTS: dict[Task, dict[str, dict[int, str]]] = {
    "fill-mask": {"mask_logits": {0: "num_masks"}, "mask_positions": {0: "num_masks"}},
    "classification": {"logits": {0: "batch_size"}},
    "embedding": {"sentence_embedding": {0: "batch_size"}},
}


def masked_lm_head(model: Any) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The position-wise masked-LM head of known families, or None to fall back to full logits."""
    name = type(model).__name__
    if hasattr(model, "cls") and name.endswith("ForMaskedLM"):  # BERT and kin
        return model.cls  # type: ignore[no-any-return]
    if hasattr(model, "lm_head"):  # RoBERTa, XLM-R, CamemBERT
        return model.lm_head  # type: ignore[no-any-return]
    if hasattr(model, "vocab_projector"):  # DistilBERT
        def distil(h: torch.Tensor) -> torch.Tensor:
            h = model.vocab_layer_norm(model.activation(model.vocab_transform(h)))
            return model.vocab_projector(h)  # type: ignore[no-any-return]
        return distil
    if hasattr(model, "generator_lm_head"):  # ELECTRA generator
        return lambda h: model.generator_lm_head(model.generator_predictions(h))
    if name.startswith("Albert") and hasattr(model, "predictions"):
        return model.predictions  # type: ignore[no-any-return]
    if name.startswith("ModernBert") and hasattr(model, "decoder"):  # ModernBERT: head (dense, act, norm), decoder
        return lambda h: model.decoder(model.head(h))
    return None


class TaskGraph(nn.Module):
    """The model plus task post-processing, with the input/output names of the artifact contract."""

    def __init__(self, model: PreTrainedModel, task: Task, *, mask_token_id: int | None = None,
                 pooling: str = "mean") -> None:
        super().__init__()
        self.model = model
        self.config = model.config
        self.task = task
        self.mask_token_id = mask_token_id
        self.pooling = pooling
        self.head = masked_lm_head(model) if task == "fill-mask" else None
        if task == "fill-mask" and mask_token_id is None:
            raise ValueError("fill-mask export needs the tokenizer's mask token id")

    def _kwargs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None) -> dict[str, torch.Tensor]:
        kw = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kw["token_type_ids"] = token_type_ids
        return kw

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        kw = self._kwargs(input_ids, attention_mask, token_type_ids)
        if self.task == "classification":
            return {"logits": self.model(**kw).logits}
        if self.task == "embedding":
            hidden = self.model(**kw).last_hidden_state
            return {"sentence_embedding": pool(hidden, attention_mask, self.pooling)}
        positions = torch.nonzero(torch.eq(input_ids, int(self.mask_token_id or 0)))
        if self.head is None:
            logits = self.model(**kw).logits
            return {"mask_logits": logits[positions[:, 0], positions[:, 1]], "mask_positions": positions}
        hidden = self.model.base_model(**kw)[0]
        # Kept 3-D so the head's Linear layers export as MatMul (which int8/int4 quantize), not Gemm.
        gathered = hidden[positions[:, 0], positions[:, 1]].unsqueeze(0)
        return {"mask_logits": self.head(gathered).squeeze(0), "mask_positions": positions}


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool token states into one vector per sequence (mean over real tokens, CLS, or max)."""
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    if pooling == "max":
        return hidden.masked_fill(mask == 0, -1e9).max(dim=1).values
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def onnx_config_for(graph: TaskGraph | MultiHeadGraph):  # type: ignore[no-untyped-def]
    """optimum's ONNX config for the model's family, with our task outputs (a multi-head graph's own)."""
    from optimum.exporters.tasks import TasksManager

    ctor = TasksManager.get_exporter_config_constructor(
        exporter="onnx", model=graph.model, task="feature-extraction", library_name="transformers"
    )
    base = ctor(graph.config, task="feature-extraction")
    outputs = getattr(graph, "outputs", None) or OUTPUTS[graph.task]  # type: ignore[index]

    class _TaskOnnxConfig(type(base)):  # type: ignore[misc]
        @property
        def outputs(self) -> dict[str, dict[int, str]]:
            return outputs

    return _TaskOnnxConfig(graph.config, task="feature-extraction")


def export_onnx(graph: TaskGraph | MultiHeadGraph, out: Path, opset: int | None = None) -> dict[str, object]:
    """Export ``graph`` to ``out`` (an .onnx file) with optimum; returns what the manifest records.

    Raises:
        compress.CompressError: the family is not supported by optimum's exporter.
    """
    from optimum.exporters.onnx import export

    from compress import CompressError

    try:
        config = onnx_config_for(graph)
    except (KeyError, ValueError) as e:
        from compress.tasks import FAMILIES

        raise CompressError(f"optimum cannot export model_type {graph.config.model_type!r} ({e}); "
                            f"supported families: {', '.join(FAMILIES)}") from None
    opset = opset or int(config.DEFAULT_ONNX_OPSET)
    out.parent.mkdir(parents=True, exist_ok=True)
    inputs, outputs = export(graph.eval(), config, out, opset=opset)
    return {"file": out.name, "opset": opset, "inputs": list(inputs), "outputs": list(outputs)}


def optimize_graph(src: Path, dst: Path, level: str, config: Any) -> None:
    """ONNX Runtime's transformer optimizer: O1 folds and simplifies; O2 also fuses attention,
    embeddings + LayerNorm, skip + LayerNorm and bias + GELU into single kernels; O3 adds the
    GELU approximation. Quantizing after O2 turns the fused attention into QAttention."""
    from onnxruntime.transformers.optimizer import optimize_model

    model_type = "bert"  # BERT, RoBERTa, DistilBERT and ELECTRA share the fusions of "bert"
    heads = int(getattr(config, "num_attention_heads", getattr(config, "n_heads", 0)))
    hidden = int(getattr(config, "hidden_size", getattr(config, "dim", 0)))
    if level == "O1":
        opt = optimize_model(str(src), model_type=model_type, num_heads=heads, hidden_size=hidden,
                             opt_level=1, only_onnxruntime=True)
    else:
        from onnxruntime.transformers.fusion_options import FusionOptions

        fo = FusionOptions(model_type)
        fo.enable_gelu_approximation = level == "O3"
        opt = optimize_model(str(src), model_type=model_type, num_heads=heads, hidden_size=hidden,
                             opt_level=0, optimization_options=fo)
    opt.save_model_to_file(str(dst))
