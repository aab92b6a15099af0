from __future__ import annotations

import json

import pytest

from compress import CompressError
from compress.artifact import FORMAT_VERSION, read_manifest, staged_directory


def test_staged_directory_renames_into_place(tmp_path):
    out = tmp_path / "art"
    with staged_directory(out, force=False) as tmp:
        (tmp / "model.onnx").write_text("x")
        assert not out.exists()
    assert (out / "model.onnx").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["art"]


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_a_failed_run_leaves_nothing(tmp_path, exc):
    out = tmp_path / "art"
    with pytest.raises(exc), staged_directory(out, force=False) as tmp:
        (tmp / "half.onnx").write_text("x")
        raise exc()
    assert list(tmp_path.iterdir()) == []


def test_existing_artifact_needs_force_and_survives_a_failed_replace(tmp_path):
    out = tmp_path / "art"
    out.mkdir()
    (out / "keep").write_text("old")
    with pytest.raises(CompressError, match="--force"), staged_directory(out, force=False):
        pass
    with pytest.raises(RuntimeError), staged_directory(out, force=True):
        raise RuntimeError
    assert (out / "keep").read_text() == "old"
    with staged_directory(out, force=True) as tmp:
        (tmp / "new").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["art"]


def test_manifest_checks(tmp_path):
    with pytest.raises(CompressError, match="not an artifact"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format_version": FORMAT_VERSION + 1}))
    with pytest.raises(CompressError, match="upgrade"):
        read_manifest(tmp_path)
