"""``encoder_server``: a real `serve` process on 127.0.0.1 over tiny random models built here (no download).

Two embedding models on one artifact (so ``model`` must be named at the embedding endpoints), trained as
if for Matryoshka truncation to 32 and 16 of their 64 values, with ``query``/``passage`` prompts; the
second cuts long inputs on the left. One fill-mask and one classification model; a fill-mask model with a
sparse-embedding head (``sparse``, ``sparse:splade``); a tagger (token-classification) and a reranker, each
an artifact of one random head of a tiny model directory as `compress train` writes it. Every model
truncates, so no input is too long.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.common.process import start_server, write_models

MATRYOSHKA = [32, 16]
PROMPTS = {"query": "query: ", "passage": "passage: "}
MAX_LENGTH = 12


def tiny_artifact(tmp: Path, task: str) -> Path:
    """A tiny random BERT for ``task``, compressed (fp32, no gate, no speed run)."""
    from compress.pipeline import compress_model
    from compress.recipe import Recipe
    from compress.sources import load_model
    from tests.conftest import build_tiny

    build_tiny(tmp / f"src-{task}", "bert", task)
    out = tmp / f"art-{task}"
    recipe = Recipe.model_validate({"method": "fp32", "validation": {"gate": False, "n": 16}})
    compress_model(load_model(str(tmp / f"src-{task}"), task=task), out, name=f"tiny-{task}", recipe=recipe,
                   bench=False, threads=1)
    return out


def tiny_sparse_artifact(tmp: Path) -> Path:
    """A tiny random BERT with a fill-mask and a sparse-embedding (SPLADE) head, compressed (fp32, no gate)."""
    from compress.head_graph import load_heads
    from compress.pipeline import compress_model
    from compress.recipe import Recipe
    from compress.task_heads import parse_heads
    from tests.conftest import build_tiny

    build_tiny(tmp / "src-sparse", "bert", "fill-mask")
    out = tmp / "art-sparse"
    recipe = Recipe.model_validate({"method": "fp32", "validation": {"gate": False, "n": 16}})
    compress_model(load_heads(parse_heads("mlm,splade"), spec=str(tmp / "src-sparse")), out, name="tiny-sparse",
                   recipe=recipe, bench=False, threads=1)
    return out


def head_artifacts(tmp: Path) -> dict[str, Path]:
    """Artifacts (fp32) of the ``tags`` and ``rr`` heads of a tiny random BERT, one head each."""
    from compress.head_graph import trained_heads
    from compress.pipeline import compress_model
    from compress.recipe import Recipe
    from tests.conftest import build_tiny_heads

    model = build_tiny_heads(tmp / "heads", "bert")
    recipe = Recipe.model_validate({"method": "fp32", "validation": {"gate": False, "n": 16}})
    out = {}
    for head in ("tags", "rr"):
        out[head] = tmp / f"art-{head}"
        compress_model(trained_heads(model, [head]), out[head], name=f"tiny-{head}", recipe=recipe, bench=False,
                       threads=1)
    return out


def _entry(name: str, artifact: Path, task: str | None, **serve: object) -> dict:
    return {"name": name, "source": str(artifact), **({"task": task} if task else {}), "artifact": str(artifact),
            "serve": {"threads": 1, "max_items": 8, "truncate": True, "max_length": MAX_LENGTH, **serve}}


@pytest.fixture(scope="session")
def encoder_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("encoders")
    embed = tiny_artifact(tmp, "embedding")
    config = write_models(tmp / "models.yaml", [
        _entry("embed", embed, "embedding", matryoshka_dimensions=MATRYOSHKA, prompts=PROMPTS),
        _entry("embed-left", embed, "embedding", matryoshka_dimensions=MATRYOSHKA, prompts=PROMPTS,
               truncation_side="left"),
        _entry("fill", tiny_artifact(tmp, "fill-mask"), "fill-mask", prompts=PROMPTS),
        _entry("classify", tiny_artifact(tmp, "classification"), "classification", prompts=PROMPTS),
        {**_entry("sparse", tiny_sparse_artifact(tmp), None),
         "heads": [{"name": "mlm"}, {"name": "splade"}]},
        *(_entry(name, path, None, prompts=PROMPTS)
          for name, path in zip(("tagger", "reranker"), head_artifacts(tmp).values(), strict=True)),
    ])
    proc = start_server(config, tmp / "serve.log", extra=("--no-compress",))
    yield proc
    proc.stop()
