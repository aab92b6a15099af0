"""Side-by-side speed measurement: every variant timed in every round, failures kept to their own row.

The runners here are fakes that sleep, so nothing depends on this machine's speed: a runner that
sleeps 5 ms a batch can never exceed batch / 5 ms, and that bound is what is checked.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import pytest

from benchmarks.run.speed import SpeedJob, SpeedSettings, measure_side_by_side, schedule
from tests.conftest import ROOT

SLEEP_S = 0.005


def fake_setup(job: SpeedJob, settings: SpeedSettings):
    """A sleeping runner with AntiBERTy's tokenizer; "broken" fails to load, "dies" exits when timed."""
    from transformers import BertConfig

    from compress.catalog import load_catalog, resolve_location
    from compress.sources import load_tokenizer

    if job.variant == "broken":
        raise ValueError("no such artifact")
    entry = load_catalog(ROOT / "models.yaml").get("antiberty")
    tok = load_tokenizer(Path(resolve_location(entry.tokenizer, entry.requires)), BertConfig())
    calls = {"n": 0}

    def run(enc):
        calls["n"] += 1
        if job.variant == "dies" and calls["n"] > 10:  # after the warm-up: dies in round 1
            os._exit(3)
        time.sleep(SLEEP_S)
        return {}
    return run, tok, "embedding", 128


def test_schedule_rotates_so_every_variant_goes_first_in_turn():
    order = schedule(3, 4)
    assert order == [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 1, 2]]
    assert all(sorted(r) == [0, 1, 2] for r in order)


def test_settings_refuse_empty_measurements():
    with pytest.raises(ValueError, match="rounds >= 1"):
        SpeedSettings(2, rounds=0)
    with pytest.raises(ValueError, match="batch size"):
        SpeedSettings(2, batch_sizes=())


@pytest.mark.slow  # a process per variant, timed for several rounds
def test_side_by_side_times_each_variant_every_round_and_keeps_failures_apart():
    settings = SpeedSettings(1, batch_sizes=(1, 4), buckets=("short",), rounds=3, seconds=0.03, latency_runs=4,
                             setup="tests.benchmarks.run.test_speed:fake_setup")
    jobs = [SpeedJob("antiberty", v, None) for v in ("a", "broken", "dies", "b")]
    said: list[str] = []
    got = measure_side_by_side(jobs, settings, said.append)
    assert [r["variant"] for r in got] == ["a", "broken", "dies", "b"]
    assert "ValueError: no such artifact" in got[1]["error"] and "throughput" not in got[1]
    assert "died" in got[2]["error"] and "throughput" not in got[2]
    for r in (got[0], got[3]):
        assert "error" not in r and r["rounds"] == 3
        assert {(x["bucket"], x["batch_size"]) for x in r["throughput"]} == {("short", 1), ("short", 4)}
        for x in r["throughput"]:
            assert len(x["seq_per_s_rounds"]) == 3
            assert x["seq_per_s"] == pytest.approx(statistics.median(x["seq_per_s_rounds"]), rel=1e-3)
            assert 0 < x["seq_per_s"] <= x["batch_size"] / SLEEP_S  # a 5 ms sleep bounds the rate
            assert x["tokens_per_s"] == pytest.approx(x["seq_per_s"] * x["mean_tokens"])
            assert 10 < x["mean_tokens"] < 60  # short antibody inputs: 48 residues and the special tokens
        assert r["latency_ms"]["p50"] >= 1000 * SLEEP_S
        assert r["peak_rss_bytes"] > 0
    assert len([m for m in said if m.startswith("  round")]) == 3
