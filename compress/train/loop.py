"""The multi-task training loop: a task per step as the schedule says, its weighted loss plus the kept
heads' losses, warm-up then decay, progress with loss and ETA, every task scored on its held-out part
every ``eval_every`` steps, and a checkpoint an interrupted run resumes from."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from compress import CompressError
from compress.prune.distill import format_eta, load_checkpoint, save_checkpoint
from compress.train.data import TaskData
from compress.train.keep import Keeper
from compress.train.model import MultiTaskModel
from compress.train.objectives import Objective
from compress.train.options import TrainOptions
from compress.train.sampling import draw, schedule

Progress = Callable[[str], None]
Evaluate = Callable[[], dict[str, Any]]


@dataclass
class TrainLog:
    """What training did: each task's loss at each progress line, the held-out figures at each evaluation."""

    steps: int
    resumed_from: int = 0
    seconds: float = 0.0
    losses: list[dict[str, Any]] = field(default_factory=list)  # {"step", "lr", "loss": {task: mean}}
    evals: list[dict[str, Any]] = field(default_factory=list)  # {"step", "tasks": {...}, "kept": {...}}
    counts: dict[str, int] = field(default_factory=dict)  # steps each task was drawn


def param_groups(model: MultiTaskModel, new_heads: set[str], opts: TrainOptions) -> list[dict[str, Any]]:
    """AdamW groups: the encoder (and kept heads) at ``lr``, new heads at ``head_lr``; frozen parts left out."""
    for name in opts.freeze_heads:
        if name not in model.linears:
            raise CompressError(f"--freeze-heads {name}: the model has no head {name!r} with weights; its "
                                f"heads: {', '.join(model.linears) or 'none'}")
        model.linears[name].requires_grad_(False)
    if opts.freeze_encoder:
        model.model.requires_grad_(False)
        if model.pooler is not None:
            model.pooler.requires_grad_(False)
    new = [p for n in new_heads if n in model.linears for p in model.linears[n].parameters() if p.requires_grad]
    ids = {id(p) for p in new}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    return [g for g in ({"params": rest, "lr": opts.lr}, {"params": new, "lr": opts.head_lr}) if g["params"]]


def _resume(path: Path | None, identity: dict[str, Any], opts: TrainOptions, parts: dict[str, Any], log: TrainLog,
            progress: Progress | None) -> int:
    state = load_checkpoint(path) if path else None
    if state is None:
        return 0
    if state["identity"] != identity or state["options"] != opts.resume_key():
        raise CompressError(f"checkpoint {path} was made for another model, data or settings; use the same "
                            "ones to resume, or delete it")
    for key, part in parts.items():
        part.load_state_dict(state[key])
    log.losses, log.evals, log.counts = state["losses"], state["evals"], state["counts"]
    log.resumed_from = int(state["step"])
    if progress:
        progress(f"resuming training from step {log.resumed_from}/{log.steps} ({path})")
    return log.resumed_from


def train(model: MultiTaskModel, tasks: list[TaskData], objectives: list[Objective], keeper: Keeper,
          opts: TrainOptions, steps: int, *, new_heads: set[str], evaluate: Evaluate, checkpoint: Path | None,
          identity: dict[str, Any], progress: Progress | None = None) -> TrainLog:
    """Train ``model`` in place for ``steps`` steps; ``evaluate`` scores the held-out parts.

    Raises:
        CompressError: the checkpoint belongs to another run, or a frozen head is unknown.
    """
    from transformers import get_scheduler

    log = TrainLog(steps=steps, counts={t.name: 0 for t in tasks})
    opt = torch.optim.AdamW(param_groups(model, new_heads, opts), weight_decay=opts.weight_decay)
    sched = get_scheduler(opts.scheduler, opt, num_warmup_steps=round(opts.warmup * steps), num_training_steps=steps)
    plan = schedule([len(t.train) for t in tasks], steps, opts)
    parts = {"model": model, "optimizer": opt, "scheduler": sched}
    start = _resume(checkpoint, identity, opts, parts, log, progress)
    if not log.evals:
        log.evals.append({"step": 0, **evaluate()})
    t0 = time.perf_counter()
    window: dict[str, list[float]] = {t.name: [] for t in tasks}
    for step in range(start, steps):
        torch.manual_seed(opts.seed * 1_000_003 + step)  # masks and dropout of a step, also after a resume
        i = int(plan[step])
        task, k = tasks[i], int((plan[:step] == i).sum())
        examples = [task.train[j] for j in draw(len(task.train), opts.batch_size, k, [opts.seed, i])]
        model.train()
        out = objectives[i].step(model, examples, np.random.default_rng([opts.seed, step]))
        loss = task.spec.weight * out.loss + opts.keep_weight * keeper.step_loss(model, out.batch, out.hidden, step)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        window[task.name].append(float(out.loss.detach()))
        log.counts[task.name] += 1
        done = step + 1
        if done % opts.log_every == 0 or done == steps:
            _log_losses(log, window, done, sched.get_last_lr()[0], t0, start, progress)
        if done == steps or (done % opts.eval_every == 0 and steps - done >= opts.eval_every // 2):
            log.evals.append({"step": done, **evaluate()})
            if progress:
                progress(f"held out at step {done}: {figures(log.evals[-1], objectives)}")
        if checkpoint and (done % opts.checkpoint_every == 0 or done == steps):
            save_checkpoint(checkpoint, {"step": done, **{k: p.state_dict() for k, p in parts.items()},
                                         "losses": log.losses, "evals": log.evals, "counts": log.counts,
                                         "identity": identity, "options": opts.resume_key()})
    log.seconds = time.perf_counter() - t0
    return log


def _log_losses(log: TrainLog, window: dict[str, list[float]], done: int, lr: float, t0: float, start: int,
                progress: Progress | None) -> None:
    means = {name: sum(v) / len(v) for name, v in window.items() if v}
    log.losses.append({"step": done, "lr": lr, "loss": means})
    for v in window.values():
        v.clear()
    if progress:
        per = (time.perf_counter() - t0) / (done - start)
        shown = " ".join(f"{k} {v:.4f}" for k, v in means.items())
        eta = format_eta(per * (log.steps - done))
        progress(f"train step {done}/{log.steps} loss {shown} {per:.2f}s/step ETA {eta}")


def figures(scores: dict[str, Any], objectives: list[Objective]) -> str:
    parts = [f"{o.name} {o.primary} {scores['tasks'][o.name][o.primary]:.4f}" for o in objectives]
    parts += [f"{name} kept {v:.4f}" for name, v in scores.get("kept", {}).items()]
    return ", ".join(parts)
