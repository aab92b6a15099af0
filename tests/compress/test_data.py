from __future__ import annotations

import numpy as np

from compress.data import antibody_germlines, encode, gapped_v_genes, mask_tokens, space_residues, tcr_germlines
from tests.conftest import SENTENCES


def test_space_residues_keeps_mask_tokens_whole():
    assert space_residues("EVQ[MASK]LV") == "E V Q [MASK] L V"
    assert space_residues("E V Q") == "E V Q"


def test_mask_tokens_masks_a_share_of_real_tokens_only(tiny):
    from compress.sources import load_model

    tok = load_model(str(tiny("bert", "fill-mask"))).tokenizer
    enc = encode(tok, SENTENCES[:8], 64)
    masked, truth = mask_tokens(enc, tok, rate=0.2, seed=1)
    is_mask = masked["input_ids"] == tok.mask_token_id
    assert is_mask.sum() == len(truth)
    assert (is_mask.sum(1) >= 1).all()
    assert not np.isin(truth, tok.all_special_ids).any()
    np.testing.assert_array_equal(enc["input_ids"][is_mask], truth)
    again, _truth2 = mask_tokens(enc, tok, rate=0.2, seed=1)
    np.testing.assert_array_equal(again["input_ids"], masked["input_ids"])


def test_gapped_v_genes_carry_species_chain_and_imgt_positions():
    genes = gapped_v_genes()
    assert {g.chain for g in genes} == set("HKLABGD") and len(genes) > 2000
    heavy = [g for g in genes if g.chain == "H" and g.species == "human"]
    assert all(len(g.gapped) == 128 and g.gapped[22] == "C" and g.gapped[40] == "W" for g in heavy)  # C23, W41
    assert {a.sequence for a in antibody_germlines()} <= {g.sequence for g in gapped_v_genes("HKL")}
    assert set(tcr_germlines("human")) <= {g.sequence for g in gapped_v_genes("ABGD") if g.species == "human"}
