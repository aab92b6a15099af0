"""Heads kept where they were: the original model's outputs on each step's inputs are soft targets for
the heads named in ``--keep-heads`` (KL divergence for classifiers and the LM head, 1 - cosine for an
embedding), so training other tasks on the shared encoder does not move what these heads answer."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from compress import CompressError
from compress.train.model import MultiTaskModel

EVAL_BATCH = 32


class Keeper:
    """A frozen copy of the model as it was, and the kept heads' distillation losses against it."""

    def __init__(self, model: MultiTaskModel, names: list[str], texts: list[str] | None = None,
                 encode: Callable[[list[str]], dict[str, torch.Tensor]] | None = None, batch_size: int = 16,
                 seed: int = 0) -> None:
        unknown = [n for n in names if n not in model.records]
        if unknown:
            raise CompressError(f"--keep-heads {','.join(unknown)}: the model has no such head; its heads: "
                                f"{', '.join(model.records)}")
        self.names = names
        self.texts, self.encode, self.batch_size, self.seed = texts or [], encode, batch_size, seed
        self.teacher = copy.deepcopy(model).eval() if names else None
        self._cache: dict[str, dict[str, torch.Tensor]] = {}  # agreement(): the original's answers by texts
        if self.teacher is not None:
            for p in self.teacher.parameters():
                p.requires_grad_(False)

    def _outputs(self, model: MultiTaskModel, hidden: torch.Tensor, batch: dict[str, torch.Tensor],
                 name: str) -> torch.Tensor:
        if model.records[name].kind == "fill-mask":
            from compress.export import masked_lm_head

            head = masked_lm_head(model.model)
            if head is None:
                raise CompressError(f"cannot keep head {name}: no masked-LM head found")
            return head(hidden)  # type: ignore[no-any-return]
        return model.head(name, hidden, batch["attention_mask"])

    def step_loss(self, model: MultiTaskModel, batch: dict[str, torch.Tensor], hidden: torch.Tensor,
                  step: int) -> torch.Tensor:
        """The kept heads' loss of training step ``step``: on its own inputs, or on a batch of the keep texts."""
        if not self.texts or self.teacher is None:
            return self.loss(model, batch, hidden)
        from compress.train.sampling import draw

        assert self.encode is not None
        keep = self.encode([self.texts[i] for i in draw(len(self.texts), self.batch_size, step, [self.seed, 99])])
        return self.loss(model, keep, model.encode(keep)[0])

    def loss(self, model: MultiTaskModel, batch: dict[str, torch.Tensor], hidden: torch.Tensor) -> torch.Tensor:
        """The kept heads' summed losses on ``batch``, whose hidden states under ``model`` are ``hidden``."""
        if self.teacher is None:
            return hidden.new_zeros(())
        with torch.no_grad():
            target_hidden = self.teacher.encode(batch)[0]
        mask = batch["attention_mask"].bool()
        total = hidden.new_zeros(())
        for name in self.names:
            student = self._outputs(model, hidden, batch, name)
            with torch.no_grad():
                target = self._outputs(self.teacher, target_hidden, batch, name)
            if model.records[name].kind == "embedding":
                total = total + (1 - nn.functional.cosine_similarity(student, target, dim=-1)).mean()
                continue
            if student.dim() == 3:  # per token: the LM head at real tokens
                student, target = student[mask], target[mask]
            total = total + nn.functional.kl_div(student.log_softmax(-1), target.log_softmax(-1),
                                                 log_target=True, reduction="batchmean")
        return total

    def agreement(self, model: MultiTaskModel, encode: object, texts: list[str]) -> dict[str, float]:
        """Each kept head against the original on ``texts``: top-1 agreement, or an embedding's mean cosine.
        The original's answers are computed once and reused by every later call on the same texts."""
        if self.teacher is None or not texts:
            return {}
        scores: dict[str, list[float]] = {n: [] for n in self.names}
        for b in range(0, len(texts), EVAL_BATCH):
            part = texts[b:b + EVAL_BATCH]
            batch = encode(part)  # type: ignore[operator]
            hidden, mask = model.encode(batch)[0], batch["attention_mask"].bool()
            targets = self._targets(batch, part)
            for name in self.names:
                a = self._outputs(model, hidden, batch, name)
                if model.records[name].kind == "embedding":
                    scores[name] += nn.functional.cosine_similarity(a, targets[name], dim=-1).tolist()
                    continue
                a = a[mask] if a.dim() == 3 else a
                scores[name] += (a.argmax(-1) == targets[name]).float().tolist()
        return {n: float(np.mean(v)) for n, v in scores.items()}

    def _targets(self, batch: dict[str, torch.Tensor], texts: list[str]) -> dict[str, torch.Tensor]:
        """The original's answers on ``batch`` (of ``texts``): an embedding, or the top-1 class of each
        text (of each real token, for the LM head); cached, as the original does not change."""
        key = "\x00".join(texts)
        if key not in self._cache:
            assert self.teacher is not None
            hidden, mask = self.teacher.encode(batch)[0], batch["attention_mask"].bool()
            answers = {}
            for name in self.names:
                t = self._outputs(self.teacher, hidden, batch, name)
                if self.teacher.records[name].kind != "embedding":
                    t = (t[mask] if t.dim() == 3 else t).argmax(-1)
                answers[name] = t
            self._cache[key] = answers
        return self._cache[key]
