"""Token id lists to the graph's padded int64 inputs."""

from __future__ import annotations

import numpy as np


def pad_batch(seqs: list[list[int]], pad_id: int, input_names: list[str]) -> dict[str, np.ndarray]:
    """Right-pad token id lists into ``input_ids``, ``attention_mask`` (and zero ``token_type_ids``
    when the graph takes them)."""
    width = max(len(s) for s in seqs)
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = s
        mask[r, : len(s)] = 1
    enc = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in input_names:
        enc["token_type_ids"] = np.zeros_like(ids)
    return enc
