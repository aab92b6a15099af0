"""The packaged real models through the whole pipeline, checked on real data the validation never saw.

AntiBERTy (a real antibody masked-LM with trained species head) on anarci's germline sequences, and
all-MiniLM-L6-v2 on BBC News sentences. The figures asserted here are the pipeline's promises.
"""

from __future__ import annotations

import numpy as np
import pytest

from compress.artifact import load_artifact
from compress.data import antibody_germlines, bbc_sentences, encode, mask_tokens, space_residues
from compress.export import TaskGraph
from compress.runtime import TorchRunner

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _held_out_antibodies(n: int = 300, species_only: bool = False) -> list:
    seqs = [a for a in antibody_germlines() if a.species or not species_only]
    rng = np.random.default_rng(1234)  # a different draw from the pipeline's validation set
    return [seqs[i] for i in sorted(rng.choice(len(seqs), size=n, replace=False))]


def _run_both(artifact_dir, loaded, texts, task, batch=32, **mask_kw):
    art = load_artifact(artifact_dir)
    tok = art.tokenizer()
    onnx_run = art.runner(threads=2)
    graph = TaskGraph(loaded.model, task, mask_token_id=tok.mask_token_id, pooling=loaded.pooling)
    torch_run = TorchRunner(graph, art.manifest.graph.inputs)
    ref, got, truth = [], [], []
    for i in range(0, len(texts), batch):
        enc = encode(tok, texts[i:i + batch], art.manifest.tokenizer.max_length)
        if task == "fill-mask":
            enc, t = mask_tokens(enc, tok, seed=i, **mask_kw)
            truth.append(t)
        ref.append(torch_run(enc))
        got.append(onnx_run(enc))
    return art, ref, got, truth


def _fill_mask_figures(artifact_dir, loaded):
    texts = [space_residues(a.sequence) for a in _held_out_antibodies()]
    art, ref, got, truth = _run_both(artifact_dir, loaded, texts, "fill-mask", rate=0.15)
    r = np.concatenate([o["mask_logits"] for o in ref]).argmax(-1)
    g = np.concatenate([o["mask_logits"] for o in got]).argmax(-1)
    t = np.concatenate(truth)
    assert len(r) > 3000  # ~15 % of ~300 sequences x ~98 residues
    return art, float(np.mean(r == g)), float(np.mean(r == t)), float(np.mean(g == t))


def test_antiberty_int8(packaged_artifact, packaged_model):
    art, agreement, acc_fp32, acc_int8 = _fill_mask_figures(packaged_artifact("antiberty", "int8"),
                                                            packaged_model("antiberty"))
    sizes = art.manifest.sizes
    assert sizes["fp32_onnx_bytes"] / sizes["model_bytes"] >= 3.5
    assert agreement >= 0.99
    assert acc_fp32 > 0.8  # the real pretrained model recovers most masked residues
    assert abs(acc_fp32 - acc_int8) < 0.01
    assert art.manifest.validation["passed"]
    assert art.manifest.tokenizer.split_chars
    assert set(art.manifest.source["extra_heads"]) == {"cls.species", "cls.chain", "cls.graft"}


def test_antiberty_int4(packaged_artifact, packaged_model):
    art, agreement, acc_fp32, acc_int4 = _fill_mask_figures(packaged_artifact("antiberty", "int4"),
                                                            packaged_model("antiberty"))
    sizes = art.manifest.sizes
    assert sizes["fp32_onnx_bytes"] / sizes["model_bytes"] >= 5
    assert agreement >= 0.97
    assert abs(acc_fp32 - acc_int4) < 0.02
    assert art.manifest.op_counts.get("MatMulNBits", 0) >= 8 * 6


def test_antiberty_species_int8(packaged_artifact, packaged_model):
    abs_ = _held_out_antibodies(species_only=True)
    texts = [space_residues(a.sequence) for a in abs_]
    art, ref, got, _ = _run_both(packaged_artifact("antiberty-species", "int8"), packaged_model("antiberty-species"),
                                 texts, "classification")
    r = np.concatenate([o["logits"] for o in ref]).argmax(-1)
    g = np.concatenate([o["logits"] for o in got]).argmax(-1)
    assert float(np.mean(r == g)) >= 0.99
    labels = art.manifest.labels
    assert labels == ["Camel", "Human", "Mouse", "Rabbit", "Rat", "Rhesus"]
    truth = np.array([labels.index(a.species) for a in abs_])
    # V-gene germlines alone (no CDR3) are hard; chance is 1/6. The trained head is far above it.
    assert float(np.mean(r == truth)) > 0.4
    assert abs(float(np.mean(r == truth)) - float(np.mean(g == truth))) <= 0.01


def test_minilm_int8(packaged_artifact, packaged_model):
    texts = bbc_sentences(300, seed=99)
    art, ref, got, _ = _run_both(packaged_artifact("minilm", "int8"), packaged_model("minilm"), texts, "embedding")
    r = np.concatenate([o["sentence_embedding"] for o in ref])
    g = np.concatenate([o["sentence_embedding"] for o in got])
    cos = (r * g).sum(-1) / np.linalg.norm(r, axis=-1) / np.linalg.norm(g, axis=-1)
    print(f"minilm int8 on 300 held-out BBC sentences: cosine mean {cos.mean():.4f}, min {cos.min():.4f}")
    assert cos.mean() >= 0.995 and cos.min() >= 0.98  # before smoothing: 0.993, 0.976 (2,000 paragraphs)
    assert art.manifest.pooling == "mean" and art.manifest.normalize
    assert art.manifest.sizes["fp32_onnx_bytes"] / art.manifest.sizes["model_bytes"] >= 3.5
