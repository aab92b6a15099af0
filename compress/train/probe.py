"""A new classification head starts as a linear probe: fitted on the frozen encoder's pooled outputs of
the training texts before the encoder trains (LP-FT, Kumar et al., 2022, "Fine-Tuning can Distort
Pretrained Features and Underperform Out-of-Distribution"). A head that starts at random sends large,
random gradients into the encoder for its first hundreds of steps; one that starts near its best moves
the encoder only as far as the task needs, so the features other heads read (a kept embedding) drift
less, and training needs fewer steps to reach the probe's accuracy and pass it."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from compress.train.model import MultiTaskModel

Features = Callable[[MultiTaskModel, list[object]], tuple[torch.Tensor, torch.Tensor]]  # examples -> (X, y)


def fit_linear(linear: nn.Linear, x: torch.Tensor, y: torch.Tensor, l2: float = 1e-2, iterations: int = 200) -> float:
    """Fit ``linear`` (in place) to classify rows of ``x`` as ``y``: multinomial logistic regression,
    L-BFGS on the full batch; returns its training accuracy. The L2 penalty (on unit-scale features) keeps
    a probe of separable features from growing without bound: its logits stay moderate, as a trained
    head's are, and fine-tuning still has gradients to follow."""
    mean, scale = x.mean(0), x.std(0).mean().clamp(min=1e-6)  # fit on centred, unit-scale features:
    xs = ((x - mean) / scale).detach()  # pooled outputs can be tiny (a mean over tokens) or far from zero
    weight = torch.zeros_like(linear.weight, requires_grad=True)
    bias = torch.zeros_like(linear.bias, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(xs @ weight.T + bias, y) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)  # type: ignore[arg-type]
    with torch.no_grad():  # the same logits on the raw features
        linear.weight.copy_(weight / scale)
        linear.bias.copy_(bias - mean @ linear.weight.T)
        return float(((x @ linear.weight.T + linear.bias).argmax(-1) == y).float().mean())


def probe_heads(model: MultiTaskModel, heads: dict[str, tuple[Features, list[object]]]) -> dict[str, float]:
    """Fit each named head on the frozen encoder's features of its examples; returns training accuracies."""
    was_training = model.training
    model.eval()
    fitted = {}
    for name, (features, examples) in heads.items():
        with torch.no_grad():
            x, y = features(model, examples)
        linear = model.linears[name]
        assert isinstance(linear, nn.Linear)
        fitted[name] = fit_linear(linear, x, y)
    model.train(was_training)
    return fitted
