"""Scale-out fixtures: a tiny random embedding artifact, and one local Ray on 127.0.0.1 per module.

Ray is an optional extra (``mlm-compress[scale]``, in ``[dev]``); these tests are skipped without it.
"""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("ray") is None:  # not imported here: serve.raycluster sets it up first
    pytest.skip("needs Ray: pip install 'mlm-compress[scale]'", allow_module_level=True)


@pytest.fixture(scope="session")
def tiny_embedder(tmp_path_factory):
    """(models.yaml entry, artifact dir) of a tiny random BERT embedder, compressed fp32 as `serve` would."""
    from compress.catalog import ModelEntry
    from compress.pipeline import compress_model
    from compress.recipe import Recipe
    from compress.sources import load_model
    from tests.conftest import build_tiny

    tmp = tmp_path_factory.mktemp("tiny-embed")
    build_tiny(tmp / "src", "bert", "embedding")
    art = tmp / "art"
    compress_model(load_model(str(tmp / "src")), art, name="tiny-embed",
                   recipe=Recipe.model_validate({"method": "fp32", "validation": {"gate": False, "n": 16}}),
                   bench=False)
    entry = ModelEntry(name="tiny-embed", source=str(tmp / "src"), task="embedding", artifact=str(art),
                       serve={"max_batch_size": 8, "threads": 1})
    return entry, art


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray (2 CPUs, no dashboard, 127.0.0.1) for the module's tests; shut down after them."""
    from serve.raycluster import connect, import_ray

    ray = import_ray(local=True)
    started = connect(num_cpus=2)
    try:
        assert ray.util.get_node_ip_address() == "127.0.0.1"
        yield ray
    finally:
        if started:
            ray.shutdown()
