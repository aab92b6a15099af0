"""Embedding one shard the way the serving engine does, and writing it as one Parquet file, atomically.

The same steps as an ``/v1/embeddings`` request: the model's tokenizer and length limit
(:meth:`serve.models.ServedModel.tokenize`), passes of similar length under the model's budgets
(:func:`serve.engine.plan.plan_passes`), the engine's padding and backend, and the embedding task's
pooling output and normalisation (:data:`serve.engine.tasks.TASKS`); so a vector equals what the
endpoint returns for the same text. The texts of a shard are sorted by length before they are cut
into passes, and put back in corpus order after.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from serve.engine.batch import pad_batch
from serve.engine.plan import plan_passes
from serve.engine.tasks import TASKS

if TYPE_CHECKING:
    from compress.catalog import ModelEntry
    from serve.backends import Backend
    from serve.models import ServedModel


@dataclass
class Embedder:
    """One model's tokenizer and backend (one ONNX Runtime session), its artifact version."""

    model: ServedModel
    backend: Backend
    version: str

    @classmethod
    def load(cls, entry: ModelEntry, base: str | Path = ".") -> Embedder:
        """Load ``entry``'s artifact (never compressing it).

        Raises:
            ConfigError: no artifact, or it is not an embedding model.
        """
        from serve.backends import load_backend
        from serve.config import ConfigError
        from serve.engine import artifact_version
        from serve.models import prepare_model

        model = prepare_model(entry, Path(base), compress_missing=False)
        if model.task != "embedding":
            raise ConfigError(f"{entry.name} is a {model.task} model; bulk embedding needs an embedding model")
        return cls(model, load_backend(model.spec), artifact_version(model.spec.artifact))

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """(one float32 vector per text in order, tokens run); texts past the length limit are truncated.

        Passes of similar length within the token budget, as many at once as the model's streams.
        """
        from concurrent.futures import ThreadPoolExecutor

        ids = self.model.tokenize(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        seqs = [ids[i] for i in order]
        opts = self.model.spec.options
        passes = plan_passes([len(s) for s in seqs], opts.max_batch_size, opts.max_batch_tokens)
        with ThreadPoolExecutor(self.model.spec.streams()) as pool:
            rows = [r for chunk in pool.map(lambda ab: self._pass(seqs[ab[0]:ab[1]]), passes) for r in chunk]
        vectors: list[np.ndarray] = [np.empty(0, np.float32)] * len(seqs)
        for k, row in zip(order, rows, strict=True):
            vectors[k] = np.asarray(row, dtype=np.float32)
        return np.stack(vectors) if vectors else np.empty((0, 0), np.float32), sum(map(len, ids))

    def _pass(self, seqs: list[list[int]]) -> list[Any]:
        out = self.backend(pad_batch(seqs, self.model.spec.pad_id, self.backend.input_names))
        return TASKS["embedding"].rows(out, seqs, self.model, [{"normalize": None}] * len(seqs))


def write_shard(path: Path, ids: list[str], vectors: np.ndarray, version: str) -> None:
    """``path`` as Parquet (id, vector, model_version), written beside it and renamed into place."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dim = vectors.shape[1] if vectors.size else 0
    table = pa.table({
        "id": pa.array(ids, pa.string()),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim),
        "model_version": pa.array([version] * len(ids), pa.string()),
    })
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
