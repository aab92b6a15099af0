"""Data files for `compress train` on tiny random models: learnable patterns over the tiny vocabulary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SENTENCES

VERBS = {"is", "was", "be", "are", "has", "have", "said", "win"}
# Small steps on a tiny model: enough for every kind to lower its held-out loss in seconds.
FAST = dict(batch_size=8, lr=2e-3, head_lr=5e-3, warmup=0.0, eval_every=20, n_eval=12, max_length=32,
            checkpoint_every=5, log_every=5)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _texts() -> list[str]:
    """96 distinct sentences: the shared ones and their reversals."""
    return list(dict.fromkeys(SENTENCES + [" ".join(reversed(s.split())) for s in SENTENCES]))


def write_data(directory: Path) -> dict[str, Path]:
    """One training file per kind in ``directory``."""
    texts = _texts()
    (directory / "texts.txt").write_text("\n".join(texts) + "\n")
    return {
        "classification": write_jsonl(directory / "topic.jsonl", [
            {"text": t, "label": "money" if {"market", "bank", "sales", "profit"} & set(t.split()) else "other"}
            for t in texts]),
        "token-classification": write_jsonl(directory / "verbs.jsonl", [
            {"tokens": t.split(), "labels": ["V" if w in VERBS else "O" for w in t.split()]} for t in texts]),
        "embedding": write_jsonl(directory / "pairs.jsonl", [
            {"anchor": t, "positive": " ".join(w for w in t.split() if w not in ("the", "a"))} for t in texts]),
        "rerank": write_jsonl(directory / "rerank.jsonl", [
            {"query": " ".join(w for w in t.split() if len(w) > 4)[:40] or t, "positive": t} for t in texts]),
        "mlm": directory / "texts.txt",
    }


def build_trained(tmp: Path, heads: dict[str, str], steps: int = 15) -> tuple[Path, Path]:
    """A tiny BERT masked-LM trained with ``heads`` (name -> kind; ``mlm`` for the LM head) and its fp32
    artifact: (model directory, artifact directory)."""
    import torch

    from compress.cli import main
    from compress.train import TaskSpec, TrainOptions, train_model
    from tests.conftest import build_tiny

    build_tiny(tmp / "src", "bert", "fill-mask")
    data = write_data(tmp)
    tasks = [TaskSpec.parse(f"{name}:{kind}:{data['mlm' if kind == 'mlm' else kind]}") for name, kind in heads.items()]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_model(str(tmp / "src"), tmp / "model", TrainOptions(tasks=tasks, **{**FAST, "steps": steps}))
        assert main(["run", str(tmp / "model"), "--fp32", "--out", str(tmp / "art"), "--no-bench",
                     "--n-validate", "64"]) == 0
    finally:
        torch.set_num_threads(threads)
    return tmp / "model", tmp / "art"


@pytest.fixture
def data(tmp_path) -> dict[str, Path]:
    return write_data(tmp_path)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models train fastest on one intra-op thread (and far faster than two on busy cores)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
