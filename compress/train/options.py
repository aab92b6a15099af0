"""What `compress train` does, typed and checked once: the tasks, the heads kept, the schedule."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from compress import CompressError
from compress.train.examples import KINDS, Kind

NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
DEFAULT_EPOCHS: dict[str, float] = {"classification": 3, "token-classification": 3, "mlm": 3, "embedding": 1,
                                     "rerank": 1}
AUTO = "auto"  # mlm: the packaged in-domain texts that fit the vocabulary (as `compress adapt`'s replay)


class TaskSpec(BaseModel):
    """One task: a head named ``name`` of ``kind``, trained on ``data`` and scored on ``held_out``.

    Args:
        name: the head's name (in the artifact: ``NAME_logits``, served as ``MODEL:NAME``).
        kind: classification, token-classification, embedding, rerank or mlm.
        data: the training file (JSONL, CSV/TSV, text); for mlm also ``auto``.
        held_out: examples to score on, never trained on (None: a fixed ``held_out_fraction`` of ``data``).
        weight: the task's loss weight.
        labels: class names in output order (default: sorted as found in ``data``).
    """

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME)
    kind: Kind
    data: str
    held_out: str | None = None
    weight: float = Field(1.0, gt=0)
    labels: list[str] | None = None

    @classmethod
    def parse(cls, text: str) -> TaskSpec:
        """``NAME:KIND:FILE`` (mlm: ``NAME:mlm`` alone means ``auto``).

        Raises:
            CompressError: not three parts, an unknown kind, or a malformed name.
        """
        parts = text.split(":", 2)
        if len(parts) == 2 and parts[1] == "mlm":
            parts.append(AUTO)
        if len(parts) != 3 or not all(parts):
            raise CompressError(f"--task {text!r}: write NAME:KIND:FILE, e.g. region:token-classification:train.jsonl")
        name, kind, data = parts
        if kind not in KINDS:
            raise CompressError(f"--task {text!r}: unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
        if not re.match(NAME, name):
            raise CompressError(f"--task {text!r}: a head name is letters, digits, _ and - (e.g. region)")
        return cls(name=name, kind=kind, data=data)  # type: ignore[arg-type]

    def check_files(self) -> None:
        """Raise when a data file is missing.

        Raises:
            CompressError: which file, and what to give instead.
        """
        if not (self.kind == "mlm" and self.data == AUTO) and not Path(self.data).is_file():
            raise CompressError(f"task {self.name}: data file {self.data} not found")
        if self.held_out is not None and not Path(self.held_out).is_file():
            raise CompressError(f"task {self.name}: held-out file {self.held_out} not found")


class TrainOptions(BaseModel):
    """Multi-task fine-tuning of one encoder.

    Args:
        tasks: the heads to train, one task each.
        keep_heads: heads the model already has (or ``embedding``, its pooled output) whose outputs on
            the training texts stay near the original's: the original's outputs are soft targets.
        freeze_heads: heads whose weights are not trained (the encoder under them still is).
        freeze_encoder: train the new heads only.
        steps: optimizer steps (None: ``epochs`` passes over every task's training examples, at least 100).
        epochs: passes over the data when ``steps`` is not given (None: three for classification,
            token-classification and mlm, one for embedding and rerank, whose steps cost several texts
            each and which learn most in the first pass, as sentence-transformers' own training recipes).
        batch_size: examples per step (embedding: anchors per step, in-batch negatives).
        lr: peak learning rate of the encoder; new heads learn at ``head_lr``.
        sampling: which task each step trains: proportional to its examples, uniform, or
            ``temperature`` (size ** (1 / temperature)).
        keep_weight: loss weight of each kept head.
        keep_on: texts the kept heads are held on (a text file, or ``auto``: the packaged in-domain texts
            that fit the vocabulary), a batch a step, instead of each step's own inputs; with it a head that
            is trained can be kept too (a contrastive embedder kept near the original on general text).
        blend: the trained weights' share when the encoder is averaged with the original afterwards
            (WiSE-FT; 1: the trained weights alone). Below 1 it trades some of the tasks' gain for much
            less drift elsewhere (:mod:`compress.train.blend` shows the figures); new heads are not blended.
        probe: new classification and token-classification heads start as a linear probe fitted on the
            frozen encoder's outputs of the training texts (LP-FT; :mod:`compress.train.probe`), so the
            encoder moves less and the heads kept beside them drift less.
        label_all_tokens: token-classification labels every sub-token of a word, not only its first.
        crop: token-classification: each training example loses up to this fraction of its words at
            either end, drawn afresh each time, so the head learns a word's label from its context rather
            than from its position (0: off, the default; AntiBERTy's region head, trained on human and mouse
            antibody genes: 0.9997 on other species' antibodies and 0.972 on T-cell receptors without,
            0.9996 and 0.957 with 0.1).
        negatives: rerank: irrelevant passages per query in a step (mined with BM25 when the file has none).
        mask_rate: mlm: fraction of tokens masked (80/10/10).
        checkpoint: file to resume from and save to (None: beside the output directory).
    """

    model_config = ConfigDict(extra="forbid")
    tasks: list[TaskSpec] = Field(min_length=1)
    keep_heads: list[str] = []
    freeze_heads: list[str] = []
    freeze_encoder: bool = False
    steps: int | None = Field(None, ge=1)
    epochs: float | None = Field(None, gt=0)
    batch_size: int = Field(16, ge=2)
    lr: float = Field(5e-5, gt=0)
    head_lr: float = Field(1e-3, gt=0)
    warmup: float = Field(0.1, ge=0, lt=1)
    scheduler: Literal["linear", "cosine", "constant_with_warmup"] = "linear"
    weight_decay: float = Field(0.01, ge=0)
    max_length: int = Field(256, ge=8)
    sampling: Literal["proportional", "uniform", "temperature"] = "proportional"
    temperature: float = Field(2.0, gt=0)
    keep_weight: float = Field(1.0, gt=0)
    keep_on: str | None = None
    blend: float = Field(1.0, gt=0, le=1)
    probe: bool = True
    label_all_tokens: bool = False
    crop: float = Field(0.0, ge=0, lt=0.5)
    negatives: int = Field(3, ge=1)
    mask_rate: float = Field(0.15, gt=0, lt=1)
    held_out_fraction: float = Field(0.1, gt=0, lt=1)
    n_eval: int = Field(500, ge=1)
    eval_every: int = Field(50, ge=1)
    checkpoint: str | None = None
    checkpoint_every: int = Field(25, ge=1)
    log_every: int = Field(10, ge=1)
    seed: int = 0

    @field_validator("tasks")
    @classmethod
    def _unique(cls, tasks: list[TaskSpec]) -> list[TaskSpec]:
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique; got {names}")
        if sum(t.kind == "mlm" for t in tasks) > 1:
            raise ValueError("at most one mlm task (the model has one masked-LM head)")
        return tasks

    @model_validator(mode="after")
    def _heads_apart(self) -> TrainOptions:
        trained = {t.name for t in self.tasks}
        both = trained & set(self.keep_heads)
        if both and self.keep_on is None:
            raise ValueError(f"{sorted(both)} are trained as tasks; to keep them near the original on other "
                             "texts as well, give --keep-on FILE (or auto)")
        return self

    def task_epochs(self) -> list[float]:
        """Each task's passes over its data when ``steps`` is not given."""
        return [self.epochs or DEFAULT_EPOCHS[t.kind] for t in self.tasks]

    def resume_key(self) -> dict[str, object]:
        """The settings a resumed run must share with the interrupted one."""
        return self.model_dump(exclude={"checkpoint", "checkpoint_every", "log_every", "eval_every", "blend"})
