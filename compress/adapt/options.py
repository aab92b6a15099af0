"""What `compress adapt` does, typed and checked once: the data, the replay, the schedule."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from compress import CompressError


class AdaptOptions(BaseModel):
    """Continued masked-LM training on new-domain text, with replay of the original domain.

    The defaults are sized for the AntiBERTy -> TCR benchmark (150 distinct training sequences, README
    "Adapting to a new domain"): 400 steps of 16 texts (about 32 passes over the new data), a quarter
    of each batch replayed antibodies, a 10 % linear warm-up to 1e-4, then linear decay. The issue's
    first try (200 steps of 12 + 4 at 5e-5, no warm-up) reached 48.5 % on mouse TCRs from 24.4 %.

    Args:
        data: text file of the new domain, one text per line.
        held_out: text file of new-domain texts to score on (None: ``held_out_fraction`` of ``data``).
        held_out_fraction: part of ``data`` kept out of training when ``held_out`` is not given.
        replay: original-domain text file, "auto" (the packaged in-domain data that fits the vocabulary:
            antibody germlines or English news), or None (no replay).
        replay_ratio: fraction of every batch drawn from the replay texts.
        steps: optimizer steps.
        batch_size: texts per step.
        lr: peak learning rate (AdamW).
        warmup: fraction of the steps spent warming up.
        scheduler: decay after warm-up (transformers' ``get_scheduler`` names).
        weight_decay: AdamW weight decay.
        mask_rate: fraction of tokens masked (80 % [MASK], 10 % random, 10 % kept).
        whole_word: mask whole words (None: where the tokenizer has words: WordPiece, not per-residue).
        max_length: tokens per text.
        n_eval: held-out texts per domain, at most.
        eval_every: steps between held-out scores (for the plot).
        add_mlm_head: give a model without a masked-LM head one, tied to the input embeddings.
        checkpoint: file to resume from and save to (None: beside the output directory).
        checkpoint_every: steps between checkpoints.
        log_every: steps between progress lines.
        seed: of the split, the batch order and the masks.
    """

    model_config = ConfigDict(extra="forbid")

    data: str
    held_out: str | None = None
    held_out_fraction: float = Field(0.1, gt=0, lt=1)
    replay: str | None = "auto"
    replay_ratio: float = Field(0.25, ge=0, lt=1)
    steps: int = Field(400, ge=1)
    batch_size: int = Field(16, ge=2)
    lr: float = Field(1e-4, gt=0)
    warmup: float = Field(0.1, ge=0, lt=1)
    scheduler: Literal["linear", "cosine", "constant_with_warmup"] = "linear"
    weight_decay: float = Field(0.01, ge=0)
    mask_rate: float = Field(0.15, gt=0, lt=1)
    whole_word: bool | None = None
    max_length: int = Field(256, ge=8)
    n_eval: int = Field(250, ge=1)
    eval_every: int = Field(50, ge=1)
    add_mlm_head: bool = False
    checkpoint: str | None = None
    checkpoint_every: int = Field(25, ge=1)
    log_every: int = Field(10, ge=1)
    seed: int = 0

    def check_files(self) -> None:
        """Raise when a data file is missing (checked when adapting, not when a models.yaml is read, so
        that serving a catalog whose recipe adapts does not need the training data).

        Raises:
            CompressError: which file, and what to give instead.
        """
        for name in ("data", "held_out"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise CompressError(f"{name} file {path} not found: give a text file with one text per line")
        if self.replay not in (None, "auto") and not Path(self.replay).is_file():
            raise CompressError(f"replay file {self.replay} not found: give a text file, 'auto' or none")

    @property
    def replay_per_batch(self) -> int:
        """Replay texts in each batch (0 without replay)."""
        return 0 if self.replay is None else min(self.batch_size - 1, round(self.replay_ratio * self.batch_size))

    def resume_key(self) -> dict[str, object]:
        """The settings a resumed run must share with the interrupted one."""
        return self.model_dump(exclude={"checkpoint", "checkpoint_every", "log_every", "eval_every"})
