"""Serving a model imports neither torch nor transformers (nor what they pull in), at start or at run time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "optimum", "onnx", "scipy", "sklearn", "pandas", "pyarrow", "PIL", "tqdm")
SERVE_ONE = """
import asyncio, sys
import serve.cli, serve.server, serve.app, serve.hosts.native
from serve.engine.engine import Engine
from serve.models import prepare_model
from compress.catalog import ModelEntry

entry = ModelEntry(name="tiny", source="unused", artifact=sys.argv[1], serve={"threads": 1})
model = prepare_model(entry, Path("."), compress_missing=False)

async def main():
    engine = Engine([model])
    await engine.start()
    try:
        print(await engine.infer("fill-mask", "tiny", ["the film [MASK] good"], {"top_k": 2}), file=sys.stderr)
    finally:
        await engine.stop()

asyncio.run(main())
print(" ".join(sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2:]))))
"""


def test_serving_imports_neither_torch_nor_transformers(tiny_models):
    artifact = tiny_models["fill-mask"].spec.artifact
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", "from pathlib import Path\n" + SERVE_ONE, artifact, *HEAVY],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "", f"serving imported {out.stdout.strip()}"
