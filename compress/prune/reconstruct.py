"""Layer-wise least-squares repair of a pruned model: no training, seconds to a few minutes on a CPU.

After heads or neurons are removed, each layer's output projection is re-fitted so the layer's
pre-LayerNorm sum matches the original (teacher) model's on sample data, given the pruned model's
own inputs (so errors from earlier layers are corrected too). Layer by layer, first the attention
output projection on the kept heads' context vectors, then the feed-forward output projection on the
kept neurons' activations: a ridge regression each. This is the mask-rescaling idea of Kwon et al.
(2022) with a full linear refit instead of one scale per unit; it recovers much of what pruning lost
before any distillation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from compress.catalog import Task
from compress.prune.model_parts import LayerParts, all_parts, layer_list, layer_parts
from compress.prune.objectives import run

if TYPE_CHECKING:
    from transformers import PreTrainedModel

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ReconstructConfig:
    """Sample data and regularisation of the refit.

    Args:
        batches: sample batches (their non-padding tokens are the regression rows).
        ridge: added to the diagonal of X^T X, relative to its mean.
    """

    batches: int = 8
    ridge: float = 1e-2


class _Stop(Exception):
    """Raised by a hook once the inputs of the layer being refitted are captured."""


def _first_arg(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    if args:
        return args[0]  # type: ignore[no-any-return]
    return next(v for k, v in kwargs.items() if k in ("hidden_states", "query"))  # type: ignore[no-any-return]


@contextlib.contextmanager
def _hooks(handles: list[Any]) -> Iterator[None]:
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _teacher_targets(teacher: PreTrainedModel, task: Task, batches: list[dict[str, torch.Tensor]],
                     pooling: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per teacher layer: the pre-LayerNorm sums after attention and after the feed-forward block, real tokens only."""
    parts = all_parts(teacher)
    store: list[dict[str, list[torch.Tensor]]] = [{"x": [], "attn": [], "a": [], "ffn": []} for _ in parts]
    keep: list[torch.Tensor] = []

    def save(i: int, key: str, t: torch.Tensor) -> None:
        store[i][key].append(t.detach().reshape(-1, t.shape[-1])[keep[-1]])

    handles = []
    for i, p in enumerate(parts):
        handles += [
            p.attention.register_forward_pre_hook(lambda _m, a, kw, i=i: save(i, "x", _first_arg(a, kw)),
                                                  with_kwargs=True),
            p.attn_out.register_forward_hook(lambda _m, _a, out, i=i: save(i, "attn", out)),
            p.ffn_in.register_forward_pre_hook(lambda _m, a, i=i: save(i, "a", a[0])),
            p.ffn_out.register_forward_hook(lambda _m, _a, out, i=i: save(i, "ffn", out)),
        ]
    with _hooks(handles), torch.no_grad():
        for b in batches:
            keep.append(b["attention_mask"].reshape(-1).bool())
            run(teacher, task, b, pooling=pooling)
    return [(torch.cat(s["x"]) + torch.cat(s["attn"]), torch.cat(s["a"]) + torch.cat(s["ffn"])) for s in store]


def _layer_inputs(student: PreTrainedModel, task: Task, batch: dict[str, torch.Tensor],
                  pooling: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments the encoder passes to its first layer for ``batch`` (the forward stops there)."""
    first = layer_list(student)[0]
    got: dict[str, Any] = {}

    def hook(_m: Any, args: Any, kwargs: Any) -> None:
        got["args"], got["kwargs"] = args, kwargs
        raise _Stop

    with _hooks([first.register_forward_pre_hook(hook, with_kwargs=True)]), torch.no_grad(), \
            contextlib.suppress(_Stop):
        run(student, task, batch, pooling=pooling)
    return got["args"], got["kwargs"]


def _capture(layer: torch.nn.Module, p: LayerParts, call: tuple[tuple[Any, ...], dict[str, Any]],
             keep: torch.Tensor, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, residual input) of ``stage`` of ``layer`` on real tokens; runs the layer only that far."""
    got: dict[str, torch.Tensor] = {}

    def residual(_m: Any, args: Any, kwargs: Any = None) -> None:
        t = _first_arg(args, kwargs or {})
        got["res"] = t.reshape(-1, t.shape[-1])[keep]

    def features(_m: Any, args: Any) -> None:
        got["x"] = args[0].reshape(-1, args[0].shape[-1])[keep]
        raise _Stop

    if stage == "attention":
        handles = [p.attention.register_forward_pre_hook(residual, with_kwargs=True),
                   p.attn_out.register_forward_pre_hook(features)]
    else:
        handles = [p.ffn_in.register_forward_pre_hook(residual), p.ffn_out.register_forward_pre_hook(features)]
    with _hooks(handles), torch.no_grad(), contextlib.suppress(_Stop):
        layer(*call[0], **call[1])
    return got["x"], got["res"]


def _refit(linear: torch.nn.Linear, xs: list[torch.Tensor], ys: list[torch.Tensor],
           ridge: float) -> tuple[float, float]:
    """Least-squares weights and bias of ``linear`` mapping xs to ys; returns relative error before and after."""
    n_in = linear.in_features
    xtx = torch.zeros(n_in + 1, n_in + 1, dtype=torch.float64)
    xty = torch.zeros(n_in + 1, linear.out_features, dtype=torch.float64)
    err_before = norm = 0.0
    for x, y in zip(xs, ys, strict=True):
        x1 = torch.cat([x, torch.ones(len(x), 1)], 1)
        xtx += (x1.T @ x1).double()  # products in float32 (fast), sums in float64
        xty += (x1.T @ y).double()
        with torch.no_grad():
            err_before += float((linear(x) - y).pow(2).sum())
        norm += float(y.pow(2).sum())
    reg = ridge * float(xtx.diagonal()[:-1].mean())
    xtx[range(n_in), range(n_in)] += reg  # no penalty on the bias
    w = torch.linalg.solve(xtx, xty)
    with torch.no_grad():
        linear.weight.copy_(w[:-1].T.to(linear.weight.dtype))
        linear.bias.copy_(w[-1].to(linear.bias.dtype))
        err_after = sum(float((linear(x) - y).pow(2).sum()) for x, y in zip(xs, ys, strict=True))
    return err_before / norm, err_after / norm


def reconstruct(student: PreTrainedModel, teacher: PreTrainedModel, task: Task,
                batches: list[dict[str, torch.Tensor]], cfg: ReconstructConfig | None = None, *,
                layer_map: list[int] | None = None, pooling: str = "mean",
                progress: Progress | None = None) -> list[dict[str, float]]:
    """Refit the attention and feed-forward output projections of ``student`` to match ``teacher``, in place.

    Args:
        student: the pruned model (heads and neurons removed; layers may be dropped).
        teacher: the original model.
        task: decides how batches run through the models.
        batches: sample batches from :class:`compress.prune.batches.BatchStream`.
        cfg: ridge strength; ``cfg.batches`` is informational here (pass that many batches).
        layer_map: for each student layer the teacher layer it stands for (None: the same index).
        pooling: pooling of embedding models.
        progress: called with one line per layer.

    Returns:
        Per student layer: relative squared error of each refitted sum before and after the refit.
    """
    cfg = cfg or ReconstructConfig()
    targets = _teacher_targets(teacher, task, batches, pooling)
    was_training = student.training
    student.eval()
    # Each layer runs on the inputs the refitted layers before it produce, replayed with the same
    # attention mask and other arguments the encoder gave its first layer.
    calls = [_layer_inputs(student, task, b, pooling) for b in batches]
    keeps = [b["attention_mask"].reshape(-1).bool() for b in batches]
    layers = layer_list(student)
    lm = layer_map if layer_map is not None else list(range(len(layers)))
    rows = []
    for i, layer in enumerate(layers):
        p = layer_parts(layer)
        row: dict[str, float] = {"layer": i}
        for stage, linear, target in (("attention", p.attn_out, targets[lm[i]][0]),
                                      ("ffn", p.ffn_out, targets[lm[i]][1])):
            xs, ys, start = [], [], 0
            for call, keep in zip(calls, keeps, strict=True):
                x, res = _capture(layer, p, call, keep, stage)
                ys.append(target[start:start + len(x)] - res)
                xs.append(x)
                start += len(x)
            row[f"{stage}_before"], row[f"{stage}_after"] = _refit(linear, xs, ys, cfg.ridge)
        with torch.no_grad():
            for k, (args, kwargs) in enumerate(calls):
                out = layer(*args, **kwargs)
                calls[k] = ((out[0] if isinstance(out, tuple) else out, *args[1:]), kwargs)
        rows.append(row)
        if progress:
            progress(f"refit layer {i}: attention error {row['attention_before']:.3f} -> {row['attention_after']:.3f}, "
                     f"feed-forward {row['ffn_before']:.3f} -> {row['ffn_after']:.3f}")
    student.train(was_training)
    return rows
