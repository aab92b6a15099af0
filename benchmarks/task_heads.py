"""`python -m benchmarks task-heads`: one multi-head artifact against one artifact per task head.

Task heads, not attention heads: AntiBERTy's three heads (fill-mask, species, chain) are compressed as
one multi-head artifact (the models.yaml entry) and as three single-head artifacts (the benchmark's int8
variant of ``antiberty``, ``antiberty-species`` and ``antiberty-chain``; the same recipe). Reported:

- size: the multi-head graph against the sum of the three graphs, and the nodes its gate kept in fp32;
- agreement with fp32 PyTorch per head, as each artifact's accuracy gate measured it (same validation texts);
- time to answer all three heads for a batch of sequences: one pass of the multi-head graph against
  one pass of each single-head graph (three encoder passes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MODEL = "antiberty"
SINGLES = {"mlm": "antiberty", "species": "antiberty-species", "chain": "antiberty-chain"}


def build_multihead(cache: Path, catalog: str, rebuild: bool = False) -> Path:
    """The models.yaml entry's multi-head int8 artifact, made once in ``cache``."""
    from compress.catalog import load_catalog
    from compress.head_graph import load_heads
    from compress.pipeline import compress_model

    entry = load_catalog(catalog).get(MODEL)
    if not entry.heads:
        raise ValueError(f"{catalog}: {MODEL} has no heads: list; the benchmark compares its heads")
    out = cache / f"{MODEL}-heads-int8"
    if rebuild or not (out / "manifest.json").is_file():
        compress_model(load_heads(entry.heads, entry=entry), out, name=MODEL, recipe=entry.recipe, bench=False,
                       force=True, command="python -m benchmarks task-heads")
    return out


def _batch(directory: Path, n: int) -> dict[str, Any]:
    """``n`` default validation texts of the artifact's tokenizer, one mask in each."""
    from compress.artifact import load_artifact
    from compress.data import default_texts, encode, mask_tokens

    art = load_artifact(directory)
    tok = art.tokenizer()
    enc = encode(tok, default_texts(tok, n, seed=7), art.manifest.tokenizer.max_length)
    return mask_tokens(enc, tok, rate=0.0, seed=0)[0]  # rate 0 still masks one token per row


def _seconds(sides: list[list[Any]], batch: dict[str, Any], repeats: int) -> list[float]:
    """Median seconds per side to answer ``batch`` with every runner of that side in turn, the sides
    timed in alternating rounds so that a shared CPU's drift meets both alike."""
    import statistics
    import time

    for side in sides:
        for run in side:
            run(batch)
    times: list[list[float]] = [[] for _ in sides]
    for _ in range(repeats):
        for side, record in zip(sides, times, strict=True):
            t0 = time.perf_counter()
            for run in side:
                run(batch)
            record.append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def run(cache: Path, catalog: str = "models.yaml", threads: int = 2, batch_size: int = 32, repeats: int = 5,
        rebuild: bool = False) -> dict[str, Any]:
    """Measure the multi-head artifact against the three single-head ones (built in ``cache`` if missing)."""
    from benchmarks.common.variants import build_artifact
    from compress.artifact import read_manifest
    from compress.runtime import OnnxRunner
    from compress.validate import PRIMARY

    multi = build_multihead(cache, catalog, rebuild)
    singles = {h: build_artifact(name, "int8", cache, catalog, rebuild) for h, name in SINGLES.items()}
    m = read_manifest(multi)
    heads = []
    for h in m.heads or []:
        single = read_manifest(singles[h.name])
        key = PRIMARY[h.task]
        heads.append({"head": h.name, "metric": key, "multi": m.validation["heads"][h.name][key],
                      "single": single.validation[key], "single_bytes": single.sizes["model_bytes"]})
    batch = _batch(multi, batch_size)
    one, three = _seconds([[OnnxRunner(multi / "model.onnx", threads=threads)],
                           [OnnxRunner(d / "model.onnx", threads=threads) for d in singles.values()]], batch, repeats)
    single_bytes = sum(r["single_bytes"] for r in heads)
    return {"multi_bytes": m.sizes["model_bytes"], "multi_fp32_nodes": len(m.excluded_nodes),
            "single_bytes": single_bytes,
            "size_ratio": single_bytes / m.sizes["model_bytes"], "heads": heads,
            "batch": {"size": batch_size, "seq_len": int(batch["input_ids"].shape[1]), "threads": threads},
            "multi_seconds": one, "single_seconds": three, "time_ratio": three / one,
            "encoder_passes": {"multi": 1, "single": len(singles)}}


def markdown(r: dict[str, Any]) -> str:
    b = r["batch"]
    lines = [f"Multi-head artifact {r['multi_bytes'] / 1e6:.1f} MB against {len(r['heads'])} single-head artifacts "
             f"{r['single_bytes'] / 1e6:.1f} MB: {r['size_ratio']:.2f}x smaller.", "",
             "| head | agreement with fp32 PyTorch | multi-head | single-head |", "|---|---|---|---|"]
    lines += [f"| {h['head']} | {h['metric']} | {h['multi']:.4f} | {h['single']:.4f} |" for h in r["heads"]]
    lines += ["", f"All heads for a batch of {b['size']} sequences ({b['seq_len']} tokens, {b['threads']} threads): "
              f"{1e3 * r['multi_seconds']:.0f} ms in 1 encoder pass against {1e3 * r['single_seconds']:.0f} ms in "
              f"{r['encoder_passes']['single']} ({r['time_ratio']:.2f}x faster)."]
    return "\n".join(lines)


def plot(r: dict[str, Any], path: Path) -> None:
    """Size and time side by side, multi-head against one artifact per head."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (size, time) = plt.subplots(1, 2, figsize=(8, 3.2))
    labels = ["multi-head", f"{len(r['heads'])} single-head"]
    size.bar(labels, [r["multi_bytes"] / 1e6, r["single_bytes"] / 1e6], color=["tab:green", "tab:gray"])
    size.set_ylabel("graph size (MB)")
    size.set_title(f"size: {r['size_ratio']:.2f}x smaller")
    time.bar(labels, [1e3 * r["multi_seconds"], 1e3 * r["single_seconds"]], color=["tab:green", "tab:gray"])
    time.set_ylabel(f"ms for all heads, batch {r['batch']['size']}")
    time.set_title(f"time: {r['time_ratio']:.2f}x faster")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_reports(r: dict[str, Any], out: Path) -> None:
    """task-heads.json, .md and .png into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "task-heads.json").write_text(json.dumps(r, indent=2) + "\n")
    (out / "task-heads.md").write_text(markdown(r) + "\n")
    plot(r, out / "task-heads.png")
