"""A trained model or its artifact as the plain callables the scorers take.

Both run the same multi-head graph (compress/head_graph.py), so one adapter serves both: the torch
graph of the trained directory (the fp32 figures) and the ONNX artifact (int8 or other), which
returns the same named outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.training.scores import Classify, Embed, Fill, PairScore, Tag

Run = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]  # feeds -> named outputs
MAX_LENGTH = 256


@dataclass
class Subject:
    """One model's forward pass, tokenizer and heads (name -> (kind, output, labels))."""

    run: Run
    tokenizer: Any
    heads: dict[str, tuple[str, str, list[str] | None]]
    max_length: int = MAX_LENGTH

    def _feeds(self, texts: list[Any], pairs: list[str] | None = None, words: bool = False) -> Any:
        return self.tokenizer(texts, pairs, is_split_into_words=words, truncation=True, max_length=self.max_length,
                              padding=True, return_tensors="np")

    def _out(self, enc: Any, name: str) -> np.ndarray:
        feeds = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()
                 if k in ("input_ids", "attention_mask", "token_type_ids")}
        feeds.setdefault("token_type_ids", np.zeros_like(feeds["input_ids"]))
        return self.run(feeds)[self.heads[name][1]]

    def tag(self, name: str) -> Tag:
        labels = self.heads[name][2] or []

        def tag(seqs: list[list[str]]) -> list[list[str]]:
            enc = self._feeds(seqs, words=True)
            best = self._out(enc, name).argmax(-1)
            out = []
            for r, seq in enumerate(seqs):
                first = {}
                for j, w in enumerate(enc.word_ids(r)):
                    if w is not None and w not in first:
                        first[w] = j
                out.append([labels[best[r, first[w]]] if w in first else labels[0] for w in range(len(seq))])
            return out
        return tag

    def classify(self, name: str) -> Classify:
        labels = self.heads[name][2] or []
        return lambda texts: [labels[i] for i in self._out(self._feeds(texts), name).argmax(-1)]

    def embed(self, name: str) -> Embed:
        return lambda texts: np.asarray(self._out(self._feeds(texts), name), dtype=np.float32)

    def score(self, name: str) -> PairScore:
        def score(pairs: list[tuple[str, str]]) -> np.ndarray:
            enc = self._feeds([q for q, _ in pairs], [p for _, p in pairs])
            return np.asarray(self._out(enc, name)[:, 0], dtype=np.float64)
        return score

    def fill(self) -> Fill:
        mask = self.tokenizer.mask_token

        def fill(seqs: list[list[str]]) -> list[list[str]]:
            enc = self._feeds([" ".join(s) for s in seqs])
            feeds = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}
            feeds.setdefault("token_type_ids", np.zeros_like(feeds["input_ids"]))
            out = self.run(feeds)
            ids = out["mask_logits"].argmax(-1)
            rows = out["mask_positions"][:, 0]
            return [self.tokenizer.convert_ids_to_tokens(ids[rows == r].tolist()) for r in range(len(seqs))]
        assert mask is not None
        return fill


def _max_length(tokenizer: Any) -> int:
    """The length a model reads at: its tokenizer's (a trained model's: the length it was trained at), at most
    ``MAX_LENGTH``."""
    return int(min(tokenizer.model_max_length, MAX_LENGTH))


def artifact_subject(directory: Path, threads: int = 2) -> Subject:
    """An artifact's ONNX graph in an ONNX Runtime session."""
    import json

    import onnxruntime as ort
    from transformers import AutoTokenizer

    m = json.loads((directory / "manifest.json").read_text())
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(directory / m["graph"]["file"]), options)
    inputs = [i.name for i in session.get_inputs()]
    names = [o.name for o in session.get_outputs()]

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(None, {k: feeds[k] for k in inputs}), strict=True))

    heads = {h["name"]: (h["task"], h["output"], h.get("labels")) for h in m.get("heads") or []}
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    return Subject(run, tokenizer, heads, _max_length(tokenizer))


def trained_subject(directory: Path, threads: int = 2) -> Subject:
    """A `compress train` directory's heads in fp32, through the graph `compress run` exports."""
    import torch

    from compress.head_graph import trained_heads

    torch.set_num_threads(threads)
    multi = trained_heads(directory)
    graph = multi.graph.eval()

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            out = graph(**{k: torch.from_numpy(v) for k, v in feeds.items()})
        return {k: v.numpy() for k, v in out.items()}

    heads: dict[str, tuple[str, str, list[str] | None]] = {h.name: (h.task, h.output, h.labels) for h in multi.heads}
    return Subject(run, multi.loaded.tokenizer, heads, _max_length(multi.loaded.tokenizer))
