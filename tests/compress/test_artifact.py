from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from compress import CompressError
from compress.artifact import FORMAT_VERSION, read_manifest
from compress.staging import staged_directory


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


_STAGE = """
import os, signal, sys, time
from pathlib import Path
from compress.staging import staged_directory
with staged_directory(Path(sys.argv[1]), force=False) as tmp:
    (tmp / "model.onnx").write_bytes(b"x" * 1000)
    print(tmp.name, flush=True)
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)
"""


def _stage(out, how):
    proc = subprocess.Popen([sys.executable, "-c", _STAGE, str(out), how], stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def test_a_killed_runs_staging_is_swept_and_a_live_ones_kept(tmp_path):
    out = tmp_path / "art"
    killed, killed_dir = _stage(out, "kill")
    assert killed.wait(30) == -signal.SIGKILL and (tmp_path / killed_dir).is_dir()  # what kill -9 leaves
    live, live_dir = _stage(out, "sleep")
    unowned = tmp_path / ".art.partial-x1y2"  # an older release's, untouched for two hours
    unowned.mkdir()
    os.utime(unowned, (time.time() - 7200, time.time() - 7200))
    other_host = tmp_path / ".art.partial-elsewhere-1-abcd"
    other_host.mkdir()
    try:
        with staged_directory(out, force=False) as tmp:
            (tmp / "model.onnx").write_text("x")
        names = {p.name for p in tmp_path.iterdir()}
        assert killed_dir not in names and unowned.name not in names
        assert {"art", live_dir, other_host.name} <= names
    finally:
        live.kill()
        live.wait()


def test_manifest_checks(tmp_path):
    with pytest.raises(CompressError, match="not an artifact"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format_version": FORMAT_VERSION + 1}))
    with pytest.raises(CompressError, match="upgrade"):
        read_manifest(tmp_path)
