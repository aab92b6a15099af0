"""`compress train`'s benchmark data: fixed files, nothing held out in training, and scorers right by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.training import data, scores
from compress.data import GappedGene, gapped_v_genes


@pytest.fixture(scope="module")
def case_files(tmp_path_factory) -> dict[str, Path]:
    return data.write_case_files(tmp_path_factory.mktemp("cases"))


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


@pytest.mark.slow
def test_case_files_are_the_same_bytes_every_time(case_files, tmp_path):
    again = data.write_case_files(tmp_path)
    assert again.keys() == case_files.keys()
    for name, path in case_files.items():
        assert path.read_bytes() == again[name].read_bytes(), name


def test_case_files_sizes(case_files):
    rows = {name: len(_lines(path)) for name, path in case_files.items()}
    assert rows["topic-test"] == rows["pairs-test"] == 445  # every fifth of the 2,225 articles
    assert rows["topic-train"] == rows["pairs-train"] == rows["rerank-train"] == 2225 - 445 - 50  # 50 repeats
    assert rows["mlm-train"] == rows["region-train"] > 700
    # 283 antibodies: anarci's rhesus H and K and rat H germlines are not IMGT-aligned, so they are left out
    assert rows["region-antibody-test"] > 250 and rows["region-tcr-test"] > 300


def test_no_held_out_item_is_in_a_training_file(case_files):
    read = {name: data.read_jsonl(p) for name, p in case_files.items() if p.suffix == ".jsonl"}
    train_seqs = {"".join(r["tokens"]) for r in read["region-train"]}
    assert {line.replace(" ", "") for line in _lines(case_files["mlm-train"])} == train_seqs
    antibody = {"".join(r["tokens"]) for r in read["region-antibody-test"]}
    tcr = {"".join(r["tokens"]) for r in read["region-tcr-test"]}
    assert not train_seqs & antibody and not train_seqs & tcr and not antibody & tcr

    held = {r["text"] for r in read["topic-test"]} | {v for r in read["pairs-test"] for v in r.values()}
    trained = {r["text"] for r in read["topic-train"]} | {v for r in read["pairs-train"] for v in r.values()}
    trained |= {t for r in read["rerank-train"] for t in (r["query"], r["positive"], *r["negatives"])}
    assert not held & trained
    # no held-out paragraph inside a training text (only those opening with six words a training text has
    # can be: follow-up stories repeat sentences)
    windows = {" ".join(w[i:i + 6]) for t in trained for w in [t.split()] for i in range(len(w) - 5)}
    suspects = [p for p in _lines(case_files["paragraphs-test"]) if " ".join(p.split()[:6]) in windows]
    assert not [p for p in suspects if p in "\n".join(trained)]


def test_rerank_negatives_are_other_training_bodies(case_files):
    rows = data.read_jsonl(case_files["rerank-train"])
    bodies = {r["positive"] for r in rows}
    assert all(len(r["negatives"]) == data.HARD_NEGATIVES for r in rows)
    assert all(r["positive"] not in r["negatives"] and set(r["negatives"]) <= bodies for r in rows)


def test_imgt_regions_at_their_boundaries():
    expected = {1: "FR1", 26: "FR1", 27: "CDR1", 38: "CDR1", 39: "FR2", 55: "FR2", 56: "CDR2", 65: "CDR2",
                66: "FR3", 104: "FR3", 105: "CDR3", 117: "CDR3"}
    assert {p: data.imgt_region(p) for p in expected} == expected
    with pytest.raises(ValueError, match="start at 1"):
        data.imgt_region(0)


def test_region_labels_of_a_hand_checked_gene():
    gene = next(g for g in gapped_v_genes("H") if g.gene == "IGHV1-18*01" and g.species == "human")
    item = data.region_item(gene)
    runs: dict[str, str] = {}
    for residue, region in zip(item["tokens"], item["labels"], strict=True):
        runs[region] = runs.get(region, "") + residue
    # IMGT's CDRs of IGHV1-18*01; C23, W41 and C104 are the conserved anchors
    assert (runs["CDR1"], runs["CDR2"], runs["CDR3"]) == ("GYTFTSYG", "ISAYNGNT", "AR")
    assert runs["FR1"].endswith("SCKAS") and runs["FR3"].endswith("AVYYC")
    toy = GappedGene("toy", "human", "H", "A" * 26 + "C" + "-" * 76 + "DE")  # positions 1-26, 27, 104, 105
    assert data.region_item(toy) == {"tokens": ["A"] * 26 + ["C", "D", "E"],
                                     "labels": ["FR1"] * 26 + ["CDR1", "FR3", "CDR3"]}


def test_region_species_split():
    genes = data.region_genes()
    assert {g.species for g in genes["train"]} == {"human", "mouse"}
    assert not {"human", "mouse"} & {g.species for g in genes["antibody_test"]}
    assert {g.chain for g in genes["tcr_test"]} == set("ABGD")
    for part in genes.values():  # labels come from IMGT positions: the anchors must sit where IMGT puts them
        assert all(g.gapped.upper()[22] == "C" and g.gapped.upper()[103] == "C" for g in part)


def test_residue_tokens_fit_antiberty_vocabulary(case_files, antiberty_tokenizer):
    tok = antiberty_tokenizer
    rows = data.read_jsonl(case_files["region-tcr-test"])[:20]
    enc = tok([r["tokens"] for r in rows], is_split_into_words=True)
    for ids, r in zip(enc["input_ids"], rows, strict=True):
        assert len(ids) == len(r["tokens"]) + 2 and tok.unk_token_id not in ids
    line = _lines(case_files["mlm-train"])[0]
    assert tok.convert_ids_to_tokens(tok(line)["input_ids"])[1:-1] == line.split()


def test_region_and_topic_accuracy():
    items = [{"tokens": ["A", "C", "D"], "labels": ["FR1", "FR1", "CDR1"]},
             {"tokens": ["E"], "labels": ["FR3"]}]
    assert scores.region_accuracy(lambda toks: [["FR1"] * len(t) for t in toks], items) == 0.5
    assert scores.region_accuracy(lambda toks: [r["labels"] for r in items][:len(toks)], items, batch=2) == 1.0
    with pytest.raises(ValueError, match="labels for"):
        scores.region_accuracy(lambda toks: [["FR1"]] * len(toks), items)
    topics = [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}, {"text": "c", "label": "y"}]
    assert scores.topic_accuracy(lambda texts: ["y"] * len(texts), topics, batch=2) == pytest.approx(2 / 3)


def test_agreement():
    assert scores.agreement(["a", "b"], ["a", "c"]) == 0.5
    assert scores.agreement([["a", "b"], ["c"]], [["a", "b"], ["d"]]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="one length"):
        scores.agreement(["a"], ["a", "b"])


def test_fill_mask_top1_masks_a_fixed_share():
    seqs = [list("A" * 40), list("A" * 3)]
    seen: list[list[str]] = []

    def fill(masked: list[list[str]]) -> list[list[str]]:
        seen.extend(masked)
        return [["A"] * m.count("[MASK]") for m in masked]

    assert scores.fill_mask_top1(fill, seqs) == 1.0
    assert [m.count("[MASK]") for m in seen] == [6, 1]  # 15 % of 40; at least one
    assert scores.fill_mask_top1(lambda m: [["C"] * x.count("[MASK]") for x in m], seqs) == 0.0


def test_mean_cosine():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert scores.mean_cosine(a, a * 3) == pytest.approx(1.0)
    assert scores.mean_cosine(a, a[::-1]) == pytest.approx(0.0)


def _angle_embedder(angles: dict[str, float]):
    return lambda texts: np.array([[np.cos(angles[t]), np.sin(angles[t])] for t in texts])


def test_mrr_at_10_perfect_and_constant_rankings():
    n = 12
    docs, queries = [f"d{i}" for i in range(n)], [f"q{i}" for i in range(n)]
    step = (np.pi / 2) / n
    perfect = {**{f"d{i}": i * step for i in range(n)}, **{f"q{i}": i * step for i in range(n)}}
    assert scores.mrr_at_10(_angle_embedder(perfect), queries, docs, batch=5) == 1.0
    at_doc0 = {**perfect, **{q: 0.0 for q in queries}}  # every query nearest doc 0: doc i ranks i + 1
    expected = sum(1 / (i + 1) for i in range(10)) / n
    assert scores.mrr_at_10(_angle_embedder(at_doc0), queries, docs) == pytest.approx(expected)


def test_rank_ties_count_against_and_copies_count_as_the_document():
    assert scores.mrr_from_scores(np.zeros((3, 3)), ["a", "b", "c"]) == pytest.approx(1 / 3)
    # query 0's document "a" has a copy (doc 2) that scores best: rank 1
    s = np.array([[0.5, 0.7, 0.9], [0.0, 1.0, 0.0], [0.9, 0.1, 0.2]])
    assert scores.mrr_from_scores(s, ["a", "b", "a"]) == 1.0
    assert scores.mrr_from_scores(s, ["a", "b", "c"]) == pytest.approx((1 / 3 + 1 + 1 / 2) / 3)


CORPUS = ["cats purr softly on warm mats", "dogs bark loudly at strangers", "parrots repeat words they hear",
          "goldfish swim slowly in glass bowls"]


def test_bm25_ranks_lexical_matches_and_top_k_is_stable():
    queries = ["purring cats", "barking dogs strangers", "parrots words", "zebras"]
    assert scores.bm25_mrr_at_10(queries, CORPUS) == pytest.approx((1 + 1 + 1 + 1 / 4) / 4)  # no match: ranks last
    assert scores.bm25_mrr_at_10(["the of and"], CORPUS[:1]) == 1.0  # stopwords only: no words, one document
    assert scores.top_k(np.array([[0.0, 1.0, 0.0, 1.0]]), 3).tolist() == [[1, 3, 0]]


def test_rerank_scores_only_bm25s_top_candidates():
    queries = ["cats mats", "dogs strangers", "parrots words", "cats purr warm mats dogs"]  # the last is goldfish's
    truth = dict(zip(queries, CORPUS, strict=True))
    oracle = lambda pairs: np.array([float(truth[q] == d) for q, d in pairs])  # noqa: E731
    assert scores.rerank_mrr_at_10(oracle, queries, CORPUS, top=2) == 0.75  # BM25's top 2 miss goldfish
    assert scores.rerank_mrr_at_10(oracle, queries, CORPUS, top=4) == 1.0
    worst = lambda pairs: np.array([-float(truth[q] == d) for q, d in pairs])  # noqa: E731
    assert scores.rerank_mrr_at_10(worst, queries[:3], CORPUS, top=2) == 0.5


def test_lee50_spearman_of_unrelated_embeddings_is_near_zero():
    rng = np.random.default_rng(0)
    table: dict[str, np.ndarray] = {}
    rho = scores.lee50_spearman(lambda texts: np.array([table.setdefault(t, rng.normal(size=16)) for t in texts]))
    assert abs(rho) < 0.1


@pytest.mark.slow
@pytest.mark.integration
def test_original_minilm_lee50_baseline():
    from benchmarks.training.reference import minilm_embedder

    assert scores.lee50_spearman(minilm_embedder()) == pytest.approx(0.508, abs=0.002)


@pytest.mark.slow
@pytest.mark.integration
def test_original_antiberty_adapters_on_held_out_genes():
    from benchmarks.training import reference

    genes = data.region_genes()["antibody_test"][::20]  # 15 genes of several species and all three chains
    seqs = [list(g.sequence) for g in genes]
    assert scores.fill_mask_top1(reference.antiberty_fill(), seqs) > 0.6  # cow, pig, rabbit: harder than rhesus
    chain = reference.antiberty_classifier("chain")([g.sequence for g in genes])
    assert scores.agreement(chain, ["Heavy" if g.chain == "H" else "Light" for g in genes]) > 0.9
    states = reference.antiberty_states()(seqs[:2])
    assert [s.shape for s in states] == [(len(q), 512) for q in seqs[:2]]
