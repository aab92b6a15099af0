"""AntiBERTy through `compress run --prune 0.25 --int8`: a reduced configuration of the benchmark's
pruned-int8 variant (40 %, 500 distillation steps) that fits in CI: a quarter of the encoder, fewer
scoring batches, 60 distillation steps. Accuracy is the
benchmark's masked-residue suite: held-out germlines that neither scoring, distillation nor the gate saw.
"""

from __future__ import annotations

import pytest

from benchmarks.common.datasets import recovery_texts
from benchmarks.run.accuracy import Subject, masked_residue
from compress.artifact import load_artifact
from compress.export import TaskGraph
from compress.pipeline import compress_model
from compress.recipe import Recipe
from compress.runtime import TorchRunner

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_antiberty_pruned_a_quarter_keeps_masked_residue_accuracy(packaged_model, tmp_path):
    loaded = packaged_model("antiberty")
    tok = loaded.tokenizer
    data = tmp_path / "recovery.txt"
    data.write_text("\n".join(recovery_texts(tok, "masked_residue")) + "\n")
    prune = {"fraction": 0.25, "recover_steps": 60, "recover_data": str(data), "head_cost_factor": 8.0,
             "rounds": 2, "score_batches": 4}
    recipe = Recipe.model_validate({"method": "int8", "optimize": "O1", "validation": {"n": 64}, "prune": prune})
    m = compress_model(loaded, tmp_path / "pruned", name="antiberty", recipe=recipe, bench=False)
    p = m.pruning
    assert 0.25 <= p["removed_fraction"] < 0.26
    kept = [r for r in p["layers"] if not r["removed"]]
    assert len(kept) == 8 and all(1 <= len(r["heads_kept"]) <= 8 and 64 <= r["neurons_kept"] <= 2048 for r in kept)
    assert sum(8 - len(r["heads_kept"]) for r in kept) >= 6  # heads go too, where they matter least
    assert len({r["neurons_kept"] for r in kept}) > 1  # spread by score, not uniformly
    assert p["recovery"]["steps"] == 60 and p["recovery"]["last_loss"] < p["recovery"]["first_loss"]
    assert p["recovery"]["grouped_by_length"] is False  # germlines are of about one length: random batches
    before, after = p["validation"]["pruned"], p["validation"]["recovered"]
    assert after["top1_accuracy"] > before["top1_accuracy"]  # distillation gives back what pruning took
    assert m.validation["passed"]  # int8 agrees with the pruned fp32 model (the gate)
    unpruned_fp32_bytes = 4 * sum(t.numel() for t in loaded.model.parameters())
    assert unpruned_fp32_bytes / m.sizes["model_bytes"] >= 5.0  # 4x from int8, 1.3x from pruning

    art = load_artifact(tmp_path / "pruned")
    graph = TaskGraph(loaded.model, loaded.task, mask_token_id=tok.mask_token_id, pooling=loaded.pooling)
    fp32 = masked_residue(Subject(TorchRunner(graph, m.graph.inputs, threads=2), tok))
    pruned = masked_residue(Subject(art.runner(threads=2), art.tokenizer()))
    assert fp32.n == pruned.n > 5000
    assert fp32.score > 0.9
    assert pruned.score >= fp32.score - 0.025  # the full benchmark configuration's budget is 1 point
