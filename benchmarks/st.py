"""`python -m benchmarks st`: embedding artifacts in-process against sentence-transformers ``encode``, fp32.

Every side embeds the same BBC News paragraphs (the serving report's texts: body paragraphs of 8+
words, at most 256 tokens), tokenization included, in alternating rounds; the figure is the median
round. sentence-transformers runs ``encode(batch_size=32)`` on the model's own directory in PyTorch
fp32 (it sorts by length itself); an artifact runs as the serving engine and bulk embedding do
(:class:`serve.bulk.embedder.Embedder`: the engine's tokenization, passes of similar length within
the token budget, pooling). Agreement: cosine of each artifact's vectors to sentence-transformers'.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

BATCH = 32


def _st_side(model_dir: str, threads: int) -> Any:
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    model = SentenceTransformer(model_dir, device="cpu")
    return lambda texts: model.encode(texts, batch_size=BATCH, convert_to_numpy=True, normalize_embeddings=True)


def _artifact_side(artifact: Path, threads: int) -> Any:
    from benchmarks.common.embedder import embedder_entry
    from serve.bulk.embedder import Embedder

    embedder = Embedder.load(embedder_entry(artifact, threads))
    return lambda texts: embedder.embed(texts)[0]


def _timed(embed: Any, texts: list[str]) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    vectors = np.asarray(embed(texts), dtype=np.float32)
    return len(texts) / (time.perf_counter() - t0), vectors


def run(model_dir: str, artifacts: list[Path], n: int, rounds: int, threads: int) -> dict[str, Any]:
    """The report: texts/s per side (median round), ratio to sentence-transformers, cosine to it."""
    from benchmarks.common.texts import serving_texts

    items, stats = serving_texts(artifacts[0], n)
    texts = [t for t in items if isinstance(t, str)]  # an embedding artifact's inputs are texts
    sides = {"sentence-transformers fp32": _st_side(model_dir, threads),
             **{a.name: _artifact_side(a, threads) for a in artifacts}}
    for embed in sides.values():
        embed(texts[:BATCH])  # warm-up
    speeds: dict[str, list[float]] = {name: [] for name in sides}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(rounds):
        for name, embed in sides.items():
            per_s, vectors[name] = _timed(embed, texts)
            speeds[name].append(per_s)
    ref = vectors["sentence-transformers fp32"]
    rows: list[dict[str, Any]] = []
    for name in sides:
        v = vectors[name]
        cos = (v * ref).sum(1) / np.linalg.norm(v, axis=1) / np.linalg.norm(ref, axis=1)
        per_s = statistics.median(speeds[name])
        rows.append({"side": name, "per_s": per_s, "rounds": speeds[name], "cosine_mean": float(cos.mean()),
                     "cosine_min": float(cos.min())})
    base = float(rows[0]["per_s"])
    for r in rows:
        r["vs_st"] = float(r["per_s"]) / base
    return {"model_dir": model_dir, "texts": len(texts), "tokens": stats, "threads": threads, "rounds": rounds,
            "rows": rows}


def markdown(r: dict[str, Any]) -> str:
    lines = [f"In-process embeddings, {r['texts']} BBC paragraphs, {r['threads']} threads, median of "
             f"{r['rounds']} rounds (tokenization included)", "",
             "| side | texts/s | ÷ sentence-transformers | cosine to it, mean | min |", "|---|---|---|---|---|"]
    lines += [f"| {x['side']} | {x['per_s']:.1f} | {x['vs_st']:.2f}x | {x['cosine_mean']:.4f} | {x['cosine_min']:.4f} |"
              for x in r["rows"]]
    return "\n".join(lines)


def write_reports(r: dict[str, Any], out: Path) -> None:
    """st.json and st.md into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "st.json").write_text(json.dumps(r, indent=2) + "\n")
    (out / "st.md").write_text(markdown(r) + "\n")
