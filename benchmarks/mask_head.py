"""What computing the LM head only at mask positions saves, at an English-size vocabulary.

MiniLM's encoder (vocab 30,522, hidden 384) with a BERT MLM head tied to its word embeddings is
exported twice: with the head at every position (what a plain export does) and with the head only
on the gathered mask positions (what `compress` exports). Both are timed in fp32 and int8 on BBC
sentences at batch 32, with one mask per sentence (a typical fill-mask request) and with 15 %.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from compress.data import bbc_sentences, encode, mask_tokens


def _mlm_from_minilm(catalog: str) -> Any:
    from transformers import BertForMaskedLM

    from compress.catalog import load_catalog
    from compress.sources import load_entry

    loaded = load_entry(load_catalog(catalog).get("minilm"))
    mlm = BertForMaskedLM(loaded.model.config)
    mlm.bert.load_state_dict(loaded.model.state_dict(), strict=False)
    mlm.tie_weights()
    return mlm.eval(), loaded.tokenizer


def run(threads: int, catalog: str = "models.yaml") -> list[dict[str, Any]]:
    """Throughput of full-head vs mask-only-head graphs, fp32 and int8."""
    from compress.export import TaskGraph, export_onnx
    from compress.quantize import QuantContext, quantize
    from compress.quantize.int8_dynamic import Int8DynamicConfig
    from compress.runtime import OnnxRunner
    from compress.timing import throughput

    model, tok = _mlm_from_minilm(catalog)
    texts = bbc_sentences(32, seed=3)
    base = encode(tok, texts, 128)
    one_mask, _ = mask_tokens(base, tok, rate=0.0, seed=0)  # rate 0 still masks one token per row
    many, _ = mask_tokens(base, tok, rate=0.15, seed=0)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for head in ("every position", "mask positions only"):
            graph = TaskGraph(model, "fill-mask", mask_token_id=tok.mask_token_id)
            if head == "every position":
                graph.head = None  # the fallback path: full logits, then gather
            fp32 = Path(tmp) / f"{len(rows)}.onnx"
            export_onnx(graph, fp32)
            int8 = fp32.with_suffix(".int8.onnx")
            quantize("int8", fp32, int8, Int8DynamicConfig(), QuantContext())
            for precision, path in (("fp32", fp32), ("int8", int8)):
                runner = OnnxRunner(path, threads=threads)
                for masks, enc in (("1 per sentence", one_mask), ("15 %", many)):
                    rows.append({"head": head, "precision": precision, "masks": masks,
                                 "seq_per_s": throughput(runner, enc, repeats=5, warmup=2),
                                 "bytes": path.stat().st_size})
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| LM head computed at | precision | masks | seq/s | gain |", "|---|---|---|---|---|"]
    for r in rows:
        full = next(x for x in rows if x["head"] == "every position" and x["precision"] == r["precision"]
                    and x["masks"] == r["masks"])
        lines.append(f"| {r['head']} | {r['precision']} | {r['masks']} | {r['seq_per_s']:.1f} | "
                     f"{r['seq_per_s'] / full['seq_per_s']:.2f}x |")
    return "\n".join(lines)
