"""The serving install (`pip install .`) in a clean virtual environment: no torch, no transformers, and
the same answers as the full install's server on the same artifacts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.common.process import start_server, write_models
from tests.conftest import SENTENCES, build_tiny

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
MAX_VENV_BYTES = 400e6


def _bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.fixture(scope="module")
def lean_python(tmp_path_factory) -> str:
    """A fresh venv with the serving install from this checkout (not editable); its interpreter."""
    venv = tmp_path_factory.mktemp("lean") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(ROOT)], check=True)
    return python


@pytest.fixture(scope="module")
def tiny_artifacts(tmp_path_factory) -> list[dict]:
    """A tiny fill-mask and a tiny embedding artifact, made with this (full) install's `compress`."""
    from compress.pipeline import compress_model
    from compress.recipe import Recipe
    from compress.sources import load_model

    tmp = tmp_path_factory.mktemp("lean-artifacts")
    entries = []
    for task, method in (("fill-mask", "int8"), ("embedding", "fp32")):
        build_tiny(tmp / task, "bert", task)
        out = tmp / f"art-{task}"
        compress_model(load_model(str(tmp / task), task=task), out, name=task, bench=False,
                       recipe=Recipe.model_validate({"method": method, "validation": {"gate": False, "n": 16}}))
        entries.append({"name": f"tiny-{task}", "source": str(tmp / task), "artifact": str(out),
                        "serve": {"threads": 1, "max_items": 8, "max_length": 16}})
    return entries


def test_torch_and_transformers_are_not_installed(lean_python, tmp_path):
    for module in ("torch", "transformers"):
        found = subprocess.run([lean_python, "-c", f"import {module}"], capture_output=True, cwd=tmp_path)
        assert found.returncode != 0, f"{module} is importable in the serving install"
    venv = Path(lean_python).parents[1]
    size = _bytes(venv)
    print(f"\nserving install: {size / 1e6:.0f} MB in {venv}")
    assert size <= MAX_VENV_BYTES


def test_compress_says_what_to_install(lean_python, tmp_path):
    cli = Path(lean_python).parent / "compress"
    out = subprocess.run([str(cli), "run", "some/model"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2 and 'pip install "mlm-compress[compress]"' in out.stderr, out.stderr


def test_serving_install_answers_as_the_full_one(lean_python, tiny_artifacts, tmp_path):
    texts = [s.replace(s.split()[2], "[MASK]", 1) for s in SENTENCES[:6]]
    bodies = {"/v1/fill-mask": [{"model": "tiny-fill-mask", "inputs": texts, "top_k": 3}],
              "/v1/embed": [{"model": "tiny-embedding", "inputs": SENTENCES[:8]}]}
    bad = [("/v1/embed", {"model": "tiny-embedding", "inputs": ["the film " * 40]}),  # too long, no truncation
           ("/v1/embed", {"model": "tiny-embedding", "inputs": SENTENCES[:9]}),  # too many inputs
           ("/v1/fill-mask", {"model": "tiny-fill-mask", "inputs": ["no mask here"]}),
           ("/v1/embed", {"model": "tiny-embedding", "inputs": ["\ud800"]})]  # a lone surrogate
    answers = []
    for name, python in (("full", None), ("lean", lean_python)):
        (tmp_path / name).mkdir()
        config = write_models(tmp_path / name / "models.yaml", tiny_artifacts)
        server = start_server(config, tmp_path / name / "serve.log", python=python, extra=("--no-compress",))
        try:
            client = server.client()
            good = {path: [client.post(path, b) for b in bs] for path, bs in bodies.items()}
            refused = [client.post(path, body)[0] for path, body in bad]
            answers.append((good, refused))
        finally:
            server.stop()
    (full, full_bad), (lean, lean_bad) = answers
    assert lean_bad == full_bad and all(s >= 400 for s in lean_bad), (lean_bad, full_bad)
    for (fs, f), (ls, lean_answer) in zip(full["/v1/fill-mask"], lean["/v1/fill-mask"], strict=True):
        assert fs == ls == 200
        for a, b in zip(f["results"], lean_answer["results"], strict=True):
            assert a["sequence"] == b["sequence"]
            for ma, mb in zip(a["masks"], b["masks"], strict=True):
                assert (ma["tokens"], ma["ids"]) == (mb["tokens"], mb["ids"])
                np.testing.assert_allclose(ma["scores"], mb["scores"], rtol=1e-5, atol=1e-6)
    for (fs, f), (ls, lean_answer) in zip(full["/v1/embed"], lean["/v1/embed"], strict=True):
        assert fs == ls == 200
        a, b = np.asarray(f["embeddings"]), np.asarray(lean_answer["embeddings"])
        assert a.shape == b.shape == (8, 64)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
