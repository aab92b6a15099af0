"""Token id lists to the graph's padded int64 inputs."""

from __future__ import annotations

import numpy as np


def second_segment(seq: list[int], boundary: int | None) -> int:
    """Where a pair's second segment starts in ``seq``: past the first ``boundary`` token (BERT's [SEP]);
    the end when there is none (a single text, or a template without segment types)."""
    if boundary is None or boundary not in seq:
        return len(seq)
    return seq.index(boundary) + 1


def pad_batch(seqs: list[list[int]], pad_id: int, input_names: list[str],
              segments: list[int] | None = None) -> dict[str, np.ndarray]:
    """Right-pad token id lists into ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the graph
    takes them: 1 from ``segments[i]`` on, a text pair's second segment; else 0)."""
    width = max(len(s) for s in seqs)
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = s
        mask[r, : len(s)] = 1
    enc = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in input_names:
        types = np.zeros_like(ids)
        for r, start in enumerate(segments or []):
            types[r, start: len(seqs[r])] = 1
        enc["token_type_ids"] = types
    return enc
