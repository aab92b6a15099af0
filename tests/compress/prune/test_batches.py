"""Training batches: each epoch holds its texts once; grouping by length pads less."""

from __future__ import annotations

import numpy as np
import torch

from compress.prune.batches import BatchStream
from tests.conftest import SENTENCES


def test_length_grouped_batches_hold_each_epochs_texts_once_and_pad_less(bert):
    texts = [" ".join(SENTENCES[i % len(SENTENCES)].split()[: 1 + i % 9] * (1 + i % 4)) for i in range(1003)]
    plain, grouped = (BatchStream("embedding", bert.tokenizer, texts, batch_size=8, max_length=32, seed=3,
                                  group_by_length=g) for g in (False, True))
    for epoch in range(2):  # the same texts each epoch, each once, in another order
        steps = range(epoch * plain.per_epoch, (epoch + 1) * plain.per_epoch)
        a, b = (np.concatenate([s._indices(k) for k in steps]) for s in (plain, grouped))
        assert sorted(a.tolist()) == sorted(b.tolist()) and len(set(b.tolist())) == len(b) == 1000  # 3 left over
        assert not np.array_equal(a, b)
    first = np.random.default_rng([3, 0]).permutation(len(texts))  # ungrouped: the epoch's order, as it always was
    assert all(np.array_equal(plain._indices(k), first[8 * k:8 * k + 8]) for k in range(plain.per_epoch))
    padded = [sum(s.batch(k)["input_ids"].numel() for k in range(plain.per_epoch)) for s in (plain, grouped)]
    assert padded[1] < 0.8 * padded[0]
    spread = [np.ptp(grouped.lengths[grouped._indices(k)]) for k in range(grouped.per_epoch)]
    assert np.median(spread) <= 1  # a window of 50 batches sorted by length: neighbours in length
    again = BatchStream("embedding", bert.tokenizer, texts, batch_size=8, max_length=32, seed=3, group_by_length=True)
    assert all(torch.equal(again.batch(k)["input_ids"], grouped.batch(k)["input_ids"]) for k in (0, 77, 130))
    # None groups only where that pads at least a quarter less: mixed lengths, not texts of about one length
    auto = BatchStream("embedding", bert.tokenizer, texts, batch_size=8, max_length=32, seed=3, group_by_length=None)
    assert auto.grouped and auto.padded_tokens(grouped=True) == padded[1] and auto.padded_tokens(False) == padded[0]
    even = [f"{SENTENCES[i % len(SENTENCES)].split()[0]} " + "word " * (20 + i % 3) for i in range(400)]
    flat = BatchStream("embedding", bert.tokenizer, even, batch_size=8, max_length=32, seed=3, group_by_length=None)
    assert not flat.grouped and flat.padded_tokens(grouped=True) > 0.75 * flat.padded_tokens(grouped=False)
