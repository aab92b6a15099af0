"""The rerank validation set: query groups as a reranker sees them, and agreement measured within them."""

import numpy as np
from transformers import AutoTokenizer

from compress.validate import (
    GROUP_QUERIES,
    QUERY_WORDS,
    RERANK_GROUP,
    build_validation_set,
    compare,
    rerank_agreement,
    rerank_groups,
)
from tests.conftest import WORDS


def _texts(n: int) -> list[str]:
    """``n`` texts, each its own sequence of the vocabulary's words."""
    return [" ".join(WORDS[(i * 5 + k) % len(WORDS)] for k in range(QUERY_WORDS + 4)) for i in range(n)]


def test_each_query_ranks_its_own_text_among_the_texts_nearest_it(tiny):
    tok = AutoTokenizer.from_pretrained(tiny("bert", "fill-mask"))
    texts = _texts(2 * RERANK_GROUP + 3)
    groups = rerank_groups(texts)
    assert sorted(i for g in groups for i in g) == list(range(len(texts)))
    assert [len(g) for g in groups] == [RERANK_GROUP, RERANK_GROUP, 3]
    seed, *near = groups[0]
    shared = [len(set(texts[seed].split()) & set(t.split())) for t in texts]
    assert min(shared[j] for j in near) >= max(shared[j] for j in range(len(texts)) if j not in groups[0])
    vs = build_validation_set("rerank", tok, texts, max_length=64, batch_size=32)
    ids = np.concatenate(vs.groups)
    rows = [r for b in vs.batches for r in zip(b["input_ids"], b["token_type_ids"], strict=True)]
    assert len(rows) == sum(len(g) * min(GROUP_QUERIES, len(g)) for g in groups)
    for query_id, (members, q) in enumerate((g, q) for g in groups for q in g[:GROUP_QUERIES]):
        pairs = [rows[r] for r in np.flatnonzero(ids == query_id)]
        assert [tok.decode(i[t == 1], skip_special_tokens=True).split() for i, t in pairs] == \
            [texts[j].split() for j in members]
        assert {tuple(tok.decode(i[t == 0], skip_special_tokens=True).split()) for i, t in pairs} == \
            {tuple(texts[q].split()[:QUERY_WORDS])}


def test_agreement_counts_only_pairs_within_a_group():
    groups = np.array([0, 0, 0, 1, 1, 1])
    ref = np.array([3.0, 2.0, 1.0, 30.0, 20.0, 10.0])
    shifted = ref + np.array([0, 0, 0, -100, -100, -100])  # groups moved apart: no order within one changes
    same = rerank_agreement(ref, shifted, groups)
    assert same["order_agreement"] == same["top1_agreement"] == same["group_tau"] == 1.0
    swapped = ref[[1, 0, 2, 3, 4, 5]]  # group 0's best two change places
    out = rerank_agreement(ref, swapped, groups)
    assert out["top1_agreement"] == 0.5
    assert out["order_agreement"] == 5 / 6
    assert np.isclose(out["group_tau"], (1 / 3 + 1) / 2)


def test_compare_reads_the_groups_of_the_batches_it_was_given(tiny):
    tok = AutoTokenizer.from_pretrained(tiny("bert", "fill-mask"))
    vs = build_validation_set("rerank", tok, _texts(4 * RERANK_GROUP), max_length=64, batch_size=RERANK_GROUP)
    ref = [{"logits": np.arange(len(b["input_ids"]), dtype=np.float32)[:, None]} for b in vs.batches]
    cand = [{"logits": -r["logits"]} for r in ref]  # every order reversed
    half = vs.head(2)
    out = compare(half, ref[:2], cand[:2])
    assert out["order_agreement"] == 0.0 and out["top1_agreement"] == 0.0 and out["group_tau"] == -1.0
