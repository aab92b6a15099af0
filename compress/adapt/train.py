"""The training loop of an adaptation: masked-LM loss on mixed batches, warm-up then decay, progress
with ETA, held-out scores every ``eval_every`` steps, and a checkpoint an interrupted run resumes from."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compress import CompressError
from compress.adapt.data import MixedBatches, collate
from compress.adapt.options import AdaptOptions
from compress.prune.distill import format_eta, load_checkpoint, save_checkpoint

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Progress = Callable[[str], None]
Evaluate = Callable[[], dict[str, Any]]  # held-out scores of the model as it is now


@dataclass
class TrainLog:
    """What training did: losses at each progress line, held-out scores at each evaluation."""

    steps: int
    resumed_from: int = 0
    seconds: float = 0.0
    losses: list[dict[str, float]] = field(default_factory=list)  # {"step", "loss", "lr"}
    evals: list[dict[str, Any]] = field(default_factory=list)  # {"step", "new": {...}, "original": {...}}


def make_collator(tokenizer: PreTrainedTokenizerBase, opts: AdaptOptions, per_residue: bool) -> Any:
    """transformers' masked-LM collator: ``mask_rate`` of the tokens, 80/10/10; whole words where the
    tokenizer has words (WordPiece ``##`` pieces: DataCollatorForWholeWordMask)."""
    from transformers import DataCollatorForLanguageModeling, DataCollatorForWholeWordMask

    pieces = not per_residue and any(t.startswith("##") for t in tokenizer.get_vocab())
    words = pieces if opts.whole_word is None else opts.whole_word
    if words and not pieces:
        raise CompressError("whole-word masking needs a WordPiece tokenizer (## pieces); leave whole_word unset")
    kind = DataCollatorForWholeWordMask if words else DataCollatorForLanguageModeling
    return kind(tokenizer, mlm_probability=opts.mask_rate)


def _resume(path: Path | None, opts: AdaptOptions, identity: dict[str, Any], model: Any, opt: Any, sched: Any,
            log: TrainLog, progress: Progress | None) -> int:
    """Load the checkpoint at ``path`` into the model, optimizer, scheduler and log; the step to go on from."""
    state = load_checkpoint(path) if path else None
    if state is None:
        return 0
    if state["identity"] != identity or state["options"] != opts.resume_key():
        raise CompressError(f"checkpoint {path} was made for another model, data or settings; use the same "
                            "ones to resume, or delete it")
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    log.losses, log.evals = state["losses"], state["evals"]
    log.resumed_from = int(state["step"])
    if progress:
        progress(f"resuming adaptation from step {log.resumed_from}/{opts.steps} ({path})")
    return log.resumed_from


def train(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batches: MixedBatches, opts: AdaptOptions,
          *, collator: Any, evaluate: Evaluate, checkpoint: Path | None = None,
          identity: dict[str, Any] | None = None, progress: Progress | None = None) -> TrainLog:
    """Continue masked-LM training of ``model`` in place for ``opts.steps`` steps.

    Args:
        model: a masked-LM model.
        tokenizer: its tokenizer.
        batches: the texts of each step.
        opts: schedule, checkpointing, logging.
        collator: from :func:`make_collator`.
        evaluate: held-out scores, called at step 0, every ``opts.eval_every`` steps and at the end.
        checkpoint: file to resume from and save to.
        identity: what the checkpoint must have been made for (model and data hashes).
        progress: called with a line per ``opts.log_every`` steps: loss, seconds per step, ETA.

    Raises:
        CompressError: the checkpoint belongs to another run.
    """
    import torch
    from transformers import get_scheduler

    log = TrainLog(steps=opts.steps)
    opt = torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    sched = get_scheduler(opts.scheduler, opt, num_warmup_steps=round(opts.warmup * opts.steps),
                          num_training_steps=opts.steps)
    identity = identity or {}
    start = _resume(checkpoint, opts, identity, model, opt, sched, log, progress)
    if not log.evals:
        log.evals.append({"step": 0, **evaluate()})
    t0, window = time.perf_counter(), []
    for step in range(start, opts.steps):
        torch.manual_seed(opts.seed * 1_000_003 + step)  # the masks and dropout of a step, also after a resume
        random.seed(opts.seed * 1_000_003 + step)  # DataCollatorForWholeWordMask draws its words with random
        new, replay = batches.texts(step)
        batch = collate(new + replay, tokenizer, collator, opts.max_length)
        model.train()
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        window.append(float(loss.detach()))
        done = step + 1
        if done % opts.log_every == 0 or done == opts.steps:
            log.losses.append({"step": done, "loss": sum(window) / len(window), "lr": sched.get_last_lr()[0]})
            window = []
            if progress:
                per = (time.perf_counter() - t0) / (done - start)
                progress(f"adapt step {done}/{opts.steps} loss {log.losses[-1]['loss']:.4f} "
                         f"{per:.2f}s/step ETA {format_eta(per * (opts.steps - done))}")
        if done % opts.eval_every == 0 or done == opts.steps:
            log.evals.append({"step": done, **evaluate()})
            if progress:
                progress(f"held-out top-1 at step {done}: " + ", ".join(
                    f"{k} {100 * v['top1']:.2f} %" for k, v in log.evals[-1].items() if k != "step"))
        if checkpoint and (done % opts.checkpoint_every == 0 or done == opts.steps):
            save_checkpoint(checkpoint, {"step": done, "model": model.state_dict(), "optimizer": opt.state_dict(),
                                         "scheduler": sched.state_dict(), "losses": log.losses,
                                         "evals": log.evals, "identity": identity, "options": opts.resume_key()})
    log.seconds = time.perf_counter() - t0
    return log
