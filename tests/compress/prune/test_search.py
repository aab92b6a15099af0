"""``--prune auto`` / ``--target-speedup``: the search on tiny 4-layer models, through the library with a stand-in
task figure (so the verdicts are known), and through ``compress run`` with a real retrieval gate."""

from __future__ import annotations

import copy
import json

import pytest
from transformers import AutoConfig, AutoModel

from compress.cli import main
from compress.prune.distill import DistillConfig
from compress.prune.model_parts import layer_list
from compress.prune.search import SearchMiss, search_pruning
from compress.sources import load_model
from tests.conftest import SENTENCES

RECOVER = DistillConfig(steps=1, batch_size=8, max_length=32)


@pytest.fixture
def deep(tiny):
    """Factory: a tiny random model of ``task`` with 4 layers instead of 2 (its tokenizer from build_tiny)."""
    def make(task: str = "embedding"):
        d = tiny("bert", task)
        cfg = AutoConfig.from_pretrained(d)
        cfg.num_hidden_layers = 4
        AutoModel.from_config(cfg).save_pretrained(d)
        return d
    return make


def _by_depth(loaded) -> dict[str, dict[str, float]]:
    """A stand-in task figure: the share of the 4 layers kept (so fewer layers always score lower)."""
    return {"gate": {"metric": len(layer_list(loaded.model)) / 4}}


def _inside(figures) -> bool:
    return figures["gate"]["metric"] >= 0.5 - 1e-9  # tolerance: half the layers' worth


def test_search_returns_the_fastest_candidate_inside_the_gate(deep):
    loaded = load_model(str(deep()))
    found = search_pruning(loaded, _by_depth, _inside, SENTENCES, RECOVER)
    # bisection over layers removed: 2 (passes), 3 (fails), then the width step on the 2 kept
    assert [c.name for c in found.candidates] == ["depth-2", "depth-1", "depth-2+width"]
    assert [c.passed for c in found.candidates] == [True, False, True]
    chosen = found.chosen
    assert chosen is not None and chosen.name == "depth-2+width" and _inside(chosen.figures)
    assert chosen.speedup >= max(c.speedup for c in found.candidates if c.passed) and chosen.speedup > 2
    assert chosen.width_kept < 1 and len(chosen.layers_kept) == 2
    assert len(layer_list(chosen.loaded.model)) == 2 and len(layer_list(loaded.model)) == 4  # the original untouched
    rows = chosen.record["layers"]
    assert [r["removed"] for r in rows].count(True) == 2 and len(rows) == 4
    # the recorded plan, in the original's indices, rebuilds the chosen structure from the original
    from compress.prune.model_parts import encoder_params
    from compress.prune.plan import PrunePlan, apply_plan

    rebuilt = apply_plan(copy.deepcopy(loaded.model), PrunePlan.from_dict(chosen.record["plan"]))
    assert encoder_params(rebuilt) == encoder_params(chosen.loaded.model)
    assert chosen.record["plan"]["layers"] == chosen.layers_kept == [r["layer"] for r in rows if not r["removed"]]


def test_a_target_stops_at_the_first_passing_candidate_that_reaches_it(deep):
    loaded = load_model(str(deep()))
    found = search_pruning(loaded, _by_depth, _inside, SENTENCES, RECOVER, target=1.3)
    assert [c.name for c in found.candidates] == ["depth-3"]  # 4/3 layers: 1.33x, the fewest removed that reach it
    assert found.chosen is found.candidates[0] and found.chosen.speedup >= 1.3


def test_a_target_inside_the_space_but_outside_the_gate_says_by_how_much(deep):
    loaded = load_model(str(deep()))
    with pytest.raises(SearchMiss, match=r"missed by \d+\.\d\dx") as e:
        search_pruning(loaded, _by_depth, lambda f: f["gate"]["metric"] >= 0.75 - 1e-9, SENTENCES, RECOVER,
                       target=3.5)
    assert e.value.search.candidates and e.value.search.candidates[0].name == "depth-1"


# --- through compress run --------------------------------------------------------------------------------------

@pytest.fixture
def _run(tmp_path):
    """``compress run ARGS`` on a tiny model: validated on texts short enough for its 66 positions."""
    val = tmp_path / "val.txt"
    val.write_text("\n".join(SENTENCES[:24]) + "\n")

    def run(*args: str) -> int:
        return main(["run", *args, "--validate", str(val), "--no-bench", "--threads", "1"])
    return run


@pytest.fixture
def pairs(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"query": s, "positive": " ".join(reversed(s.split()))}) + "\n"
                            for s in SENTENCES[:24]))
    return path


@pytest.fixture
def train(tmp_path):
    """Training pairs, disjoint from the gate's: the task's own data to distil on (its queries and positives)."""
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"query": s, "positive": s.upper()}) + "\n" for s in SENTENCES[24:]))
    return path


def test_layer_pruning_removes_exactly_the_layers_it_reports(deep, train, tmp_path, _run):
    out = tmp_path / "art"
    assert _run(str(deep()), "--fp32", "--prune", "0.5", "--prune-method", "layers", "--recover-steps", "1",
                "--recover-data", str(train), "--out", str(out), "--no-gate") == 0
    m = json.loads((out / "manifest.json").read_text())
    kept = m["pruning"]["plan"]["layers"]
    removed = [r["layer"] for r in m["pruning"]["layers"] if r["removed"]]
    assert len(kept) == 2 and sorted(kept + removed) == [0, 1, 2, 3]
    assert m["op_counts"]["Softmax"] == 2  # one attention softmax per layer left in the exported graph
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 2


def test_prune_auto_writes_the_search_into_manifest_report_and_plot(deep, pairs, train, tmp_path, _run):
    out = tmp_path / "art"
    assert _run(str(deep()), "--fp32", "--prune", "auto", "--recover-steps", "1", "--recover-data", str(train),
                "--gate", f"retrieval:{pairs}@100", "--out", str(out)) == 0
    m = json.loads((out / "manifest.json").read_text())
    p = m["pruning"]
    search = p["search"]
    assert p["method"] == "auto" and search["chosen"] == p["candidate"] and "cost model" in search["speed"]
    chosen = next(c for c in search["candidates"] if c["candidate"] == search["chosen"])
    assert chosen["passed"] and chosen["estimated_speedup"] >= 1
    assert p["recovery"]["data"] == str(train) and p["recovery"]["texts"] == 48  # 24 queries, 24 positives
    assert m["op_counts"]["Softmax"] == len(chosen["layers_kept"]) == 4 - len(p["layers_removed"])
    assert all(g["passed"] for g in m["validation"]["task_gates"])  # the artifact, not only the candidate
    report = (out / "report.md").read_text()
    assert "### Search (--prune auto)" in report and "(chosen)" in report and "| original | 4 | 100% |" in report
    pytest.importorskip("matplotlib")
    assert (out / "search.png").stat().st_size > 1000


def test_an_impossible_target_fails_at_once_and_writes_nothing(deep, pairs, tmp_path, capsys, _run):
    out = tmp_path / "art"
    assert _run(str(deep()), "--fp32", "--target-speedup", "50", "--gate", f"retrieval:{pairs}",
                "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert "--target-speedup 50x is beyond" in err and "short; nothing was trained" in err
    assert not out.exists() and not list(tmp_path.glob(".art*"))


@pytest.mark.parametrize(("args", "says"), [
    (["--prune", "auto"], "give at least one"),
    (["--prune", "auto", "--prune-method", "layers", "--gate", "fill-mask"], "drop --prune-method"),
    (["--prune", "auto", "--recover-checkpoint", "c.pt", "--gate", "fill-mask"], "drop --recover-checkpoint"),
    (["--prune", "0.4", "--target-speedup", "2", "--gate", "fill-mask"], "target_speedup belongs to method auto"),
    (["--target-speedup", "1", "--gate", "fill-mask"], "greater than 1"),
])
def test_flag_errors(tiny, tmp_path, capsys, args, says, _run):
    assert _run(str(tiny("bert", "fill-mask")), *args, "--out", str(tmp_path / "x")) == 2
    assert says in capsys.readouterr().err


def test_no_candidate_inside_the_gate_is_an_error_listing_what_was_tried(deep):
    loaded = load_model(str(deep()))
    with pytest.raises(SearchMiss, match="no pruned candidate stays inside the task gates") as e:
        search_pruning(loaded, _by_depth, lambda _f: False, SENTENCES, RECOVER)  # a gate nothing pruned meets
    # 2 removed fails, then 1, then the width step on the original: nothing passes
    assert [c.name for c in e.value.search.candidates] == ["depth-2", "depth-3", "depth-4+width"]
