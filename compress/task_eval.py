"""The task gates' data and measurements: each gate's file read with `compress train`'s readers, encoded
once, and scored on any runner (the original PyTorch model, each quantized candidate) from its outputs.

See :mod:`compress.task_gates` for what each kind measures and how a gate is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from compress import CompressError
from compress.data import encode
from compress.metrics import macro_f1, mrr_at_10, ndcg_at_10
from compress.task_gates import HEAD_TASK, TaskGate
from compress.train.examples import Labelled, Pair, Tagged, collect_labels, parse
from compress.train.rows import Row, read_rows

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from compress.adapt.options import AdaptOptions
    from compress.gate import Head
    from compress.runtime import Runner

BATCH = 32
FILL_MASK_TEXTS = 512  # packaged in-domain texts a fill-mask gate without a file scores on
MASK_RATE, MASK_SEED = 0.15, 0
# a single-task graph's output for each head task (a multi-head graph names each head's own)
SINGLE_OUTPUT = {"embedding": "sentence_embedding", "classification": "logits", "token-classification": "logits",
                 "fill-mask": "mask_logits"}
Figures = dict[str, float]


@dataclass
class GateSet:
    """One gate's encoded examples and the head output it reads; :meth:`measure` gives the gate's metrics."""

    gate: TaskGate
    head: str
    output: str
    source: str  # the file, or the default texts' name
    items: int  # queries, examples, words or masked tokens

    def measure(self, runner: Runner) -> Figures:
        raise NotImplementedError


@dataclass
class RetrievalSet(GateSet):
    queries: list[dict[str, np.ndarray]]
    documents: list[dict[str, np.ndarray]]
    relevant: np.ndarray  # [queries, documents] bool

    def _embed(self, runner: Runner, batches: list[dict[str, np.ndarray]]) -> np.ndarray:
        v = np.concatenate([runner(b)[self.output] for b in batches]).astype(np.float64)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    def measure(self, runner: Runner) -> Figures:
        scores = self._embed(runner, self.queries) @ self._embed(runner, self.documents).T
        return {"mrr@10": mrr_at_10(scores, self.relevant), "ndcg@10": ndcg_at_10(scores, self.relevant)}


@dataclass
class ClassificationSet(GateSet):
    batches: list[dict[str, np.ndarray]]
    truth: np.ndarray

    def measure(self, runner: Runner) -> Figures:
        predicted = np.concatenate([runner(b)[self.output].argmax(-1) for b in self.batches])
        return {"accuracy": float(np.mean(predicted == self.truth)), "macro_f1": macro_f1(self.truth, predicted)}


@dataclass
class TaggingSet(GateSet):
    batches: list[dict[str, np.ndarray]]
    positions: list[tuple[np.ndarray, np.ndarray]]  # each batch's (row, column) of every word's first sub-token
    truth: np.ndarray

    def measure(self, runner: Runner) -> Figures:
        predicted = np.concatenate([runner(b)[self.output][rows, cols].argmax(-1)
                                    for b, (rows, cols) in zip(self.batches, self.positions, strict=True)])
        return {"accuracy": float(np.mean(predicted == self.truth))}


@dataclass
class MaskedSet(GateSet):
    texts: list[str]
    tokenizer: PreTrainedTokenizerBase
    max_length: int

    def measure(self, runner: Runner) -> Figures:
        from compress.adapt.evaluate import masked_scores

        scores = masked_scores(lambda enc: runner(enc)[self.output], self.tokenizer, self.texts, rate=MASK_RATE,
                               seed=MASK_SEED, max_length=self.max_length)
        self.items = int(scores["n"])
        return {"top1_accuracy": scores["top1"]}


def pick_head(gate: TaskGate, heads: list[Head]) -> Head:
    """The head ``gate`` judges: the one it names, else the only head of its task.

    Raises:
        CompressError: no such head, a head of another task, or several candidates and none named.
    """
    task, listing = HEAD_TASK[gate.kind], ", ".join(f"{h.name} ({h.task})" for h in heads)
    if gate.head is not None:
        named = [h for h in heads if h.name == gate.head]
        if not named:
            raise CompressError(f"--gate {gate.label}: no head {gate.head!r}; the artifact's heads: {listing}")
        if named[0].task != task:
            raise CompressError(f"--gate {gate.label}: head {gate.head!r} is a {named[0].task} head; "
                                f"{gate.kind} gates judge {task} heads ({listing})")
        return named[0]
    fitting = [h for h in heads if h.task == task]
    if len(fitting) != 1:
        what = "no" if not fitting else "several"
        raise CompressError(f"--gate {gate.label}: {what} {task} heads in the artifact ({listing})"
                            + ("; name one with :head=NAME" if fitting else ""))
    return fitting[0]


def _batches(n: int) -> list[slice]:
    return [slice(b, b + BATCH) for b in range(0, n, BATCH)]


def _retrieval(gate: TaskGate, rows: list[Row], tok: PreTrainedTokenizerBase, max_length: int
               ) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]], np.ndarray]:
    """Queries (grouped by text), every positive and negative as a document, and which documents are relevant."""
    pairs: list[Pair] = []
    for r in rows:
        row = Row({**r.fields, "anchor": r.fields["query"]}, r.where) if "query" in r.fields else r
        pair = parse("embedding", row)
        if not isinstance(pair, Pair) or pair.positive is None:
            raise CompressError(f"{r.where}: a retrieval gate needs a query (or anchor) and its relevant document "
                                "in positive")
        pairs.append(pair)
    queries = list(dict.fromkeys(p.anchor for p in pairs))
    docs = list(dict.fromkeys([str(p.positive) for p in pairs] + [p.negative for p in pairs if p.negative]))
    qi, di = {q: i for i, q in enumerate(queries)}, {d: i for i, d in enumerate(docs)}
    relevant = np.zeros((len(queries), len(docs)), dtype=bool)
    for p in pairs:
        relevant[qi[p.anchor], di[str(p.positive)]] = True
    return ([encode(tok, queries[s], max_length) for s in _batches(len(queries))],
            [encode(tok, docs[s], max_length) for s in _batches(len(docs))], relevant)


def _label_index(gate: TaskGate, rows: list[Row], names: list[str] | None) -> dict[str, int]:
    """The head's class of each label the file uses: by name, or by index (0, 1, …) where it has no names."""
    index = {n: i for i, n in enumerate(names or [])}
    found = collect_labels(gate.kind, rows, minimum=1)  # type: ignore[arg-type]
    for label in found:
        if label not in index and label.isdigit() and (names is None or int(label) < len(names)):
            index[label] = int(label)
    unknown = [x for x in found if x not in index]
    if unknown:
        known = ", ".join(names) if names else "none recorded: use class indices 0, 1, …"
        raise CompressError(f"{gate.data}: labels {', '.join(unknown[:5])} are not the head's labels ({known})")
    return index


def _tagging(rows: list[Row], index: dict[str, int], tok: PreTrainedTokenizerBase, max_length: int
             ) -> tuple[list[dict[str, np.ndarray]], list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Batches of pre-split words, each word's first sub-token (words cut off by truncation left out)."""
    examples = [parse("token-classification", r, index) for r in rows]
    batches, positions, truth = [], [], []
    for s in _batches(len(examples)):
        part = [e for e in examples[s] if isinstance(e, Tagged)]
        enc = tok([list(e.tokens) for e in part], is_split_into_words=True, truncation=True, max_length=max_length,
                  padding=True, return_tensors="np")
        rows_, cols = [], []
        for i, e in enumerate(part):
            previous = None
            for j, word in enumerate(enc.word_ids(i)):
                if word is not None and word != previous:
                    rows_.append(i)
                    cols.append(j)
                    truth.append(e.labels[word])
                previous = word
        out = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}
        out.setdefault("token_type_ids", np.zeros_like(out["input_ids"]))
        batches.append(out)
        positions.append((np.array(rows_, dtype=np.int64), np.array(cols, dtype=np.int64)))
    return batches, positions, np.array(truth)


def load_gate_set(gate: TaskGate, head: Head, labels: list[str] | None, tok: PreTrainedTokenizerBase,
                  max_length: int, default_texts: Callable[[], tuple[list[str], str]]) -> GateSet:
    """Read and encode ``gate``'s examples for ``head``.

    Raises:
        CompressError: a bad file (file:line and what was expected), or labels the head does not have.
    """
    output = head.output or SINGLE_OUTPUT[head.task]
    if gate.kind == "fill-mask":
        from compress.adapt.data import normalize

        if gate.data:
            texts, source = [str(parse("mlm", r)) for r in read_rows(gate.data)], gate.data
        else:
            texts, source = default_texts()
        texts = normalize(texts, tok)
        return MaskedSet(gate, head.name, output, source, 0, texts, tok, max_length)
    rows = read_rows(str(gate.data))
    source = str(gate.data)
    if gate.kind == "retrieval":
        queries, docs, relevant = _retrieval(gate, rows, tok, max_length)
        return RetrievalSet(gate, head.name, output, source, len(relevant), queries, docs, relevant)
    index = _label_index(gate, rows, labels)
    if gate.kind == "token-classification":
        batches, positions, truth = _tagging(rows, index, tok, max_length)
        return TaggingSet(gate, head.name, output, source, len(truth), batches, positions, truth)
    examples = [e for e in (parse("classification", r, index) for r in rows) if isinstance(e, Labelled)]
    batches = [encode(tok, [e.text for e in examples[s]], max_length,
                      [e.text_pair or "" for e in examples[s]] if any(e.text_pair for e in examples) else None)
               for s in _batches(len(examples))]
    return ClassificationSet(gate, head.name, output, source, len(examples), batches,
                             np.array([e.label for e in examples]))


def in_domain_texts(adapt: AdaptOptions | None, tok: PreTrainedTokenizerBase) -> tuple[list[str], str]:
    """A fill-mask gate's texts without a file: the held-out texts of the recipe's ``adapt:`` step (as
    `compress adapt` scores them), else packaged texts that fit the vocabulary (its replay domain)."""
    from compress.adapt.data import load_texts, original_domain

    if adapt is not None:
        return load_texts(adapt, tok).held_out, f"held-out texts of {adapt.data}"
    texts, name = original_domain(tok)
    return texts[:FILL_MASK_TEXTS], name
