"""bitsandbytes int8 / nf4 for the PyTorch backend: a memory saving, not a CPU speed-up.

bitsandbytes quantizes a ``Linear`` when its weight moves to the device, so an artifact of this kind
stores the fp32 weights (``model.safetensors``) plus the recipe, and quantization happens at load.
On CPU the bitsandbytes kernels run slower than fp32 matmuls; on CUDA int8/nf4 save GPU memory.

transformers' own path (``quantization_config=BitsAndBytesConfig(...)``) needs accelerate and a
device map; swapping the encoder's ``Linear`` layers here is ten lines and works on CPU and CUDA.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from compress import CompressError
from compress.quantize.registry import MethodConfig, register

if TYPE_CHECKING:
    from torch import nn

BnbKind = Literal["int8", "nf4"]


class BnbConfig(MethodConfig):
    method: Literal["bnb-int8", "bnb-nf4"] = "bnb-int8"
    outlier_threshold: float = Field(6.0, gt=0, description="activations above it take the "
                                     "fp16/fp32 path of LLM.int8()")
    # The task head's output layer stays in full precision (it is small and sets the answer).
    skip: tuple[str, ...] = ("classifier", "decoder", "vocab_projector", "generator_lm_head", "out_proj")

    @property
    def kind(self) -> BnbKind:
        return "int8" if self.method == "bnb-int8" else "nf4"


def _require_bnb():  # type: ignore[no-untyped-def]
    try:
        import bitsandbytes as bnb
    except ImportError:
        raise CompressError("bitsandbytes is not installed: pip install 'mlm-compress[bnb]'") from None
    return bnb


@register(BnbConfig, op_types=("Linear",), backend="torch", name="bnb-int8",
          about="PyTorch backend, bitsandbytes int8 linears (memory saving; slow on CPU)")
@register(BnbConfig, op_types=("Linear",), backend="torch", name="bnb-nf4",
          about="PyTorch backend, bitsandbytes 4-bit NF4 linears (memory saving; slow on CPU)")
def quantize_bnb(model: nn.Module, cfg: BnbConfig, device: str = "cpu") -> nn.Module:
    """Replace the model's Linear layers by bitsandbytes int8 or nf4 layers on ``device``.

    Returns the same model object, quantized in place.
    """
    import torch

    bnb = _require_bnb()
    if device == "cuda" and not torch.cuda.is_available():
        raise CompressError("CUDA was requested for bitsandbytes but torch sees no GPU; use device cpu")
    targets = [(name, mod) for name, mod in model.named_modules() if isinstance(mod, torch.nn.Linear)
               and not any(part in cfg.skip for part in name.split("."))]
    for name, lin in targets:
        if cfg.kind == "int8":
            new = bnb.nn.Linear8bitLt(lin.in_features, lin.out_features, bias=lin.bias is not None,
                                      has_fp16_weights=False, threshold=cfg.outlier_threshold)
            new.weight = bnb.nn.Int8Params(lin.weight.data.clone(), requires_grad=False, has_fp16_weights=False)
        else:
            new = bnb.nn.Linear4bit(lin.in_features, lin.out_features, bias=lin.bias is not None,
                                    compute_dtype=torch.float32, quant_type="nf4")
            new.weight = bnb.nn.Params4bit(lin.weight.data.clone(), requires_grad=False, quant_type="nf4")
        if lin.bias is not None:
            new.bias = torch.nn.Parameter(lin.bias.data.clone(), requires_grad=False)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, new.to(device))
    return model.to(device)


def weight_bytes(model: nn.Module) -> int:
    """Bytes held by parameters and buffers (quantized weights count at their stored size)."""
    tensors = list(model.parameters()) + list(model.buffers())
    return int(sum(t.numel() * t.element_size() for t in tensors))
