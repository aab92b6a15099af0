"""The benchmark models of the served tasks that no packaged model has: a tagger, a reranker and a sparse embedder.

- ``antiberty-region``: AntiBERTy with a ``region`` token-classification head (IMGT regions of anarci's
  human and mouse antibody V genes, benchmarks/training/data.py);
- ``minilm-rerank``: all-MiniLM-L6-v2 with an ``rr`` rerank head on the [CLS] state of (query, passage)
  pairs (a BBC headline with its own body, relevant, and with the next article's, not);
- ``antiberty-sparse``: AntiBERTy's own heads ``mlm,splade`` (the masked-LM head, and the SPLADE vector
  made from it), as `compress run antiberty --heads mlm,splade` exports them: nothing is fitted, and the
  PyTorch original is that multi-head graph. It is served with both heads, so requests name
  ``antiberty-sparse:splade`` (:func:`address`).

For the first two the encoder stays as it ships; the head is a logistic regression fitted on its frozen outputs
for :data:`FIT_EXAMPLES` training examples (seconds, where `compress train` takes minutes on 2 cores), written
as `compress train` writes a model directory. The head is far from a well-trained one, but a forward pass
costs what a trained head's does, so the speed figures are honest, and the accuracy figures compare each
variant with the PyTorch model it was made from (the model directory, run as `compress run` exports it).
`python -m benchmarks train` trains these tasks in full. A probe on a frozen bi-encoder is a weak
cross-encoder: its scores of one query's candidates lie close together, and MiniLM int8 reorders some
(quick run: top-1 agreement 0.90, Kendall tau 0.93 on 40 queries, against the 0.98 and 0.95 budgets).
The directory is cached under the benchmark's ``--cache`` and made again when :data:`RECIPE_VERSION` changes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from compress.artifact import Manifest
    from compress.catalog import Catalog, ModelEntry
    from compress.head_graph import MultiHeadModel
    from compress.train.model import MultiTaskModel

FIT_EXAMPLES = 64  # sequences (tagger) or queries (reranker, a relevant and an irrelevant passage each)
VALIDATION_TEXTS = 64  # compress's accuracy gate on these models' variants (its default is 256)
RECIPE_VERSION = 2  # bump when the head's making changes, so cached models are made again


@dataclass(frozen=True)
class TaskModel:
    """One benchmark model: its encoder (a models.yaml name), its head and the head's task."""

    name: str
    encoder: str
    head: str
    kind: str  # token-classification, rerank or sparse-embedding
    min_agreement: float | None = None  # compress's gate on its variants (None: compress's default)
    own_heads: str | None = None  # the encoder's own heads (--heads), exported as they are: nothing fitted


# minilm-rerank: compress's rerank gate is the concordance of each query's candidate scores (candidates on one
# topic, whose scores lie close together): this probe on the frozen MiniLM orders 94.9 % of them as fp32 does
# quantized whole, so at compress's 0.99 no int8 variant is made; at 0.96 the gate keeps two layers in fp32. The
# benchmark's own held-out figures judge it instead: each query's top-1 and the Kendall tau of its candidates
# (benchmarks/run/criteria.py).
TASK_MODELS = {m.name: m for m in (
    TaskModel("antiberty-region", "antiberty", "region", "token-classification"),
    TaskModel("minilm-rerank", "minilm", "rr", "rerank", min_agreement=0.96),
    TaskModel("antiberty-sparse", "antiberty", "splade", "sparse-embedding", own_heads="mlm,splade"),
)}


def is_task_model(name: str) -> bool:
    return name in TASK_MODELS


def served_task(name: str) -> str:
    """The task a benchmark task model is measured on (its head's)."""
    return _spec(name).kind


def address(name: str) -> str:
    """The model name requests to ``name`` carry: ``NAME:HEAD`` where it is served with its own heads (the
    head past the first), else ``NAME``."""
    spec = _spec(name)
    return f"{name}:{spec.head}" if spec.own_heads else name


def _is_current(directory: Path) -> bool:
    info = directory / "benchmark.json"
    return info.is_file() and json.loads(info.read_text()).get("recipe_version") == RECIPE_VERSION


def build_task_model(name: str, cache: Path, catalog: str = "models.yaml", rebuild: bool = False) -> Path | None:
    """Fit (or reuse) benchmark model ``name``'s head on its frozen encoder; returns the model directory
    (as `compress train` writes one, under ``cache``), or None for a model of the encoder's own heads.

    Raises:
        ValueError: not a benchmark task model (the message lists them).

    Example:
        >>> d = build_task_model("minilm-rerank", Path("artifacts/bench"))  # doctest: +SKIP
    """
    import torch

    from compress.catalog import load_catalog
    from compress.train.model import HeadRecord
    from compress.train.store import load_source, save_trained

    spec = _spec(name)
    if spec.own_heads:
        return None
    directory = cache / f"{name}-model"
    if _is_current(directory) and not rebuild:
        return directory
    print(f"{name}: fitting a {spec.kind} head on the frozen {spec.encoder} encoder ({FIT_EXAMPLES} examples)",
          file=sys.stderr, flush=True)
    model, tok, _ = load_source(spec.encoder, entry=load_catalog(catalog).get(spec.encoder))
    model.eval()
    x, y, labels = _region_features(model, tok) if spec.kind == "token-classification" else _pair_features(model, tok)
    lr = _logistic(x, y)
    record = HeadRecord(spec.head, spec.kind, labels=labels, pooling=None if labels else "cls")  # type: ignore[arg-type]
    model.new_head(record, len(labels) if labels else 1)
    linear = model.linears[spec.head]
    assert isinstance(linear, torch.nn.Linear)  # new_head made it
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(lr.coef_).float())
        linear.bias.copy_(torch.from_numpy(lr.intercept_).float())
    tmp = directory.with_name(directory.name + ".tmp")
    save_trained(model, tok, tmp)
    (tmp / "benchmark.json").write_text(json.dumps({"recipe_version": RECIPE_VERSION, "fit_examples": FIT_EXAMPLES,
                                                    "train_accuracy": float(lr.score(x, y))}) + "\n")
    import shutil

    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)
    return directory


def _logistic(x: np.ndarray, y: np.ndarray) -> Any:
    from benchmarks.common.optional import require

    return require("sklearn.linear_model", "scikit-learn>=1.3").LogisticRegression(C=1.0, max_iter=2000).fit(x, y)


def _hidden(model: MultiTaskModel, enc: Any) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return model.encode({k: torch.as_tensor(np.asarray(v)) for k, v in enc.items()})[0].numpy()


def _region_features(model: MultiTaskModel, tok: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Each residue's state (its word's first token) and its IMGT region, over FIT_EXAMPLES training genes."""
    from benchmarks.training.data import region_genes, region_item

    items = [region_item(g) for g in region_genes()["train"][:FIT_EXAMPLES]]
    labels = sorted({t for r in items for t in r["labels"]})
    xs, ys = [], []
    for i in range(0, len(items), 16):
        rows = items[i:i + 16]
        enc = tok([r["tokens"] for r in rows], is_split_into_words=True, padding=True, return_tensors="np")
        hidden = _hidden(model, enc)
        for r, row in enumerate(rows):
            first: dict[int, int] = {}
            for j, w in enumerate(enc.word_ids(r)):
                if w is not None and w not in first:
                    first[w] = j
            xs += [hidden[r, first[w]] for w in sorted(first)]
            ys += [labels.index(row["labels"][w]) for w in sorted(first)]
    return np.stack(xs), np.array(ys), labels


def _pair_features(model: MultiTaskModel, tok: Any) -> tuple[np.ndarray, np.ndarray, None]:
    """[CLS] states of (headline, its body) and (headline, another body), over FIT_EXAMPLES training articles."""
    from benchmarks.training.data import bbc_articles_split

    train = bbc_articles_split()[0][:FIT_EXAMPLES]
    pairs = [(a.headline, a.body) for a in train] + [(a.headline, train[(i + 1) % len(train)].body)
                                                     for i, a in enumerate(train)]
    xs = []
    for i in range(0, len(pairs), 16):
        chunk = pairs[i:i + 16]
        enc = tok([q for q, _ in chunk], [p for _, p in chunk], padding=True, truncation="only_second",
                  max_length=256, return_tensors="np")
        xs.append(_hidden(model, enc)[:, 0])
    return np.concatenate(xs), np.array([1] * len(train) + [0] * len(train)), None


def validation_step(name: str) -> dict[str, Any]:
    """The recipe's ``validation:`` step for ``name``'s variants: VALIDATION_TEXTS texts, and its own gate."""
    spec = _spec(name)
    return {"n": VALIDATION_TEXTS, **({"min_agreement": spec.min_agreement} if spec.min_agreement else {})}


def _spec(name: str) -> TaskModel:
    if name not in TASK_MODELS:
        raise ValueError(f"{name!r} is not a benchmark task model; they are: {', '.join(TASK_MODELS)}")
    return TASK_MODELS[name]


def head_model(name: str, cache: Path, catalog: str = "models.yaml") -> MultiHeadModel:
    """The trained model's head alone, or the encoder's own heads, as `compress run` exports them (the PyTorch
    original of its artifacts)."""
    from compress.catalog import load_catalog
    from compress.head_graph import load_heads, trained_heads
    from compress.task_heads import parse_heads

    spec = _spec(name)
    if spec.own_heads:
        return load_heads(parse_heads(spec.own_heads), entry=load_catalog(catalog).get(spec.encoder))
    directory = build_task_model(name, cache, catalog)
    assert directory is not None  # a fitted head's model
    return trained_heads(directory, [spec.head])


def served_entry(name: str, artifact: Path, cache: Path, catalog: Catalog) -> ModelEntry:
    """The models.yaml entry that serves ``artifact`` of ``name``: one head, which requests name by the model
    alone; or the encoder's entry with its own heads (requests name :func:`address`)."""
    from compress.catalog import ModelEntry

    spec = _spec(name)
    if spec.own_heads:
        data = catalog.get(spec.encoder).model_dump(exclude_none=True, exclude={"heads", "artifact"})
        return ModelEntry.model_validate({**data, "name": name, "artifact": str(artifact),
                                          "description": f"{spec.encoder} with its own heads {spec.own_heads}",
                                          "heads": [{"name": h} for h in spec.own_heads.split(",")]})
    return ModelEntry(name=name, source=str(cache / f"{name}-model"), artifact=str(artifact))


def artifact_task(manifest: Manifest) -> str:
    """What an artifact answers: its task, or its one head's (an artifact of a trained head alone)."""
    heads = manifest.heads or []
    return heads[0].task if len(heads) == 1 else manifest.task
