"""serve --ray without Ray installed, and the Ray settings of models.yaml (no Ray needed)."""

from __future__ import annotations

import sys

import pytest

from serve.cli import main
from serve.options import ServeOptions


def test_ray_missing_says_what_to_install(monkeypatch, tmp_path, capsys):
    from benchmarks.common.process import write_models

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    config = write_models(tmp_path / "models.yaml", [{"name": "m", "source": str(tmp_path), "artifact": "nowhere"}])
    assert main(["--config", str(config), "--ray", "--no-compress"]) == 2
    assert "pip install 'mlm-compress[scale]'" in capsys.readouterr().err


def test_ray_address_needs_ray(capsys):
    assert main(["--ray-address", "auto"]) == 2
    assert "add --ray" in capsys.readouterr().err


def test_replicas_and_autoscaling_are_exclusive():
    assert ServeOptions(replicas=2, cpus=0.5).cpus == 0.5
    auto = ServeOptions(autoscaling={"min_replicas": 1, "max_replicas": 4}).autoscaling
    assert auto is not None and auto.target_ongoing_requests == 32
    with pytest.raises(ValueError, match="not both"):
        ServeOptions(replicas=2, autoscaling={"max_replicas": 4})
    with pytest.raises(ValueError, match="exceeds max_replicas"):
        ServeOptions(autoscaling={"min_replicas": 5, "max_replicas": 4})


def test_serve_called_in_process_leaves_no_metrics_dir_behind(monkeypatch, tmp_path):
    """A server started later in the same process (or by it) must not inherit a removed metrics dir."""
    import os

    from benchmarks.common.process import write_models

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setitem(sys.modules, "ray", None)
    config = write_models(tmp_path / "models.yaml", [{"name": "m", "source": str(tmp_path), "artifact": "nowhere"}])
    assert main(["--config", str(config), "--ray", "--no-compress"]) == 2
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
