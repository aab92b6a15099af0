"""Repair (reconstruct) and distillation bring a pruned model back towards the original; distillation resumes."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from compress.prune.batches import BatchStream
from compress.prune.distill import DistillConfig, distill
from compress.prune.objectives import LossWeights, distill_loss, run
from compress.prune.plan import PrunePlan, apply_plan
from compress.prune.reconstruct import reconstruct
from tests.conftest import SENTENCES


def _kl(student, teacher, loaded, batches):
    with torch.no_grad():
        return float(np.mean([distill_loss(loaded.task, run(student, loaded.task, b), run(teacher, loaded.task, b), b,
                                           LossWeights(hidden=0, mlm=0, temperature=1))[0] for b in batches]))


@pytest.mark.slow  # trains
def test_refit_and_distillation_bring_the_pruned_model_back(bert):
    teacher = bert.model.eval()
    with torch.no_grad():  # a random model predicts nearly uniformly; sharpen it so the KL means something
        teacher.cls.predictions.decoder.weight.mul_(30)
    plan = PrunePlan(heads={0: [0, 1], 1: [3]}, neurons={0: list(range(40)), 1: list(range(64, 128))})
    held_out = BatchStream("fill-mask", bert.tokenizer, SENTENCES, batch_size=8, max_length=32, seed=99).batches(3)
    stream = BatchStream("fill-mask", bert.tokenizer, SENTENCES, batch_size=8, max_length=32, seed=1)
    refitted = apply_plan(copy.deepcopy(teacher), plan)
    pruned_kl = _kl(refitted, teacher, bert, held_out)
    rows = reconstruct(refitted, teacher, "fill-mask", stream.batches(6))
    assert all(r["ffn_after"] < 0.5 * r["ffn_before"] for r in rows)
    assert _kl(refitted, teacher, bert, held_out) < 0.1 * pruned_kl

    distilled = apply_plan(copy.deepcopy(teacher), plan)
    cfg = DistillConfig(steps=40, lr=1e-4, log_every=20, weights=LossWeights(mlm=0))  # the teacher is random
    report = distill(distilled, teacher, "fill-mask", stream, cfg)
    assert _kl(distilled, teacher, bert, held_out) < 0.2 * pruned_kl
    assert report.last_loss < 0.5 * report.first_loss and len(report.history) == 2


def test_distillation_resumes_from_its_checkpoint(bert, tmp_path):
    teacher = bert.model.eval()
    plan = PrunePlan(heads={1: [0]}, neurons={0: list(range(64))})
    stream = BatchStream("fill-mask", bert.tokenizer, SENTENCES, batch_size=8, max_length=32, seed=1)
    cfg = DistillConfig(steps=6, lr=1e-3, checkpoint=str(tmp_path / "ckpt.pt"), checkpoint_every=2)

    straight = apply_plan(copy.deepcopy(teacher), plan)
    distill(straight, teacher, "fill-mask", stream, DistillConfig(steps=6, lr=1e-3))

    def interrupt(step, total):
        if step == 5:
            raise KeyboardInterrupt

    interrupted = apply_plan(copy.deepcopy(teacher), plan)
    with pytest.raises(KeyboardInterrupt):
        distill(interrupted, teacher, "fill-mask", stream, cfg, on_step=interrupt)
    resumed = apply_plan(copy.deepcopy(teacher), plan)
    lines = []
    report = distill(resumed, teacher, "fill-mask", stream, cfg, progress=lines.append)
    assert report.resumed_from == 4 and "resuming recovery from step 4/6" in lines[0]
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="other recovery settings"):
        distill(resumed, teacher, "fill-mask", stream, DistillConfig(steps=6, lr=5e-4, checkpoint=cfg.checkpoint))
