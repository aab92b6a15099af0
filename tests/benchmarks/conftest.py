"""Benchmark fixtures: the AntiBERTy tokenizer alone, and a benchmark cache shared by the session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT, shared_cache


@pytest.fixture(scope="session")
def antiberty_tokenizer():
    """AntiBERTy's per-residue tokenizer, without loading the model."""
    from transformers import BertConfig

    from compress.catalog import load_catalog, resolve_location
    from compress.sources import load_tokenizer

    entry = load_catalog(ROOT / "models.yaml").get("antiberty")
    vocab = Path(resolve_location(entry.tokenizer, entry.requires))
    return load_tokenizer(vocab, BertConfig(max_position_embeddings=512))


@pytest.fixture(scope="session")
def bench_cache(tmp_path_factory) -> Path:
    """A benchmark cache directory (the trained topic classifier and its artifacts), once per session."""
    return shared_cache(tmp_path_factory, "bench-cache")
