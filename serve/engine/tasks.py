"""What each task does around the forward pass, with no web framework: checks before, results after.

Per task (as infinity splits it): ``check`` runs on the tokenized request before it is admitted,
``rows`` splits a forward pass's outputs into one entry per sequence and does the numeric work
(softmax, top-k, normalisation, sparse terms; in the inference thread), ``result`` turns one sequence's entry into
the answer's plain data (labels, tokens, filled text; on the event loop).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from serve.errors import ServeError

if TYPE_CHECKING:
    from serve.models import ServedModel


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis (shifted by each row's maximum, so large logits do not overflow)."""
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)  # type: ignore[no-any-return]


def top_k(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, probabilities) of the ``k`` most likely tokens of each row, most likely first."""
    k = min(k, logits.shape[-1])
    probs = softmax(logits)
    idx = np.argpartition(-probs, k - 1, axis=-1)[:, :k]
    part = np.take_along_axis(probs, idx, axis=-1)
    order = np.argsort(-part, axis=-1, kind="stable")
    return np.take_along_axis(idx, order, axis=-1), np.take_along_axis(part, order, axis=-1)


def sparse_terms(vector: np.ndarray, threshold: float = 0.0, top_k: int | None = None) -> tuple[list[int], list[float]]:
    """(ids, weights) of one sparse vector's terms above ``threshold``, the ``top_k`` largest (None: all), largest
    first; ties keep the lower id first."""
    vec = vector.astype(np.float32)
    kept = np.flatnonzero(vec > threshold)
    order = kept[np.argsort(-vec[kept], kind="stable")][:top_k]
    return order.tolist(), vec[order].tolist()


class Task:
    """One task's handling; subclasses below, looked up by name in :data:`TASKS`."""

    name: ClassVar[str]

    def check(self, model: ServedModel, ids: list[list[int]], params: dict[str, Any]) -> None:
        """Refuse a tokenized request that cannot be answered (a ServeError with the fix)."""

    def rows(self, out: dict[str, np.ndarray], seqs: list[list[int]], model: ServedModel,
             params: list[dict[str, Any]]) -> list[Any]:
        """One entry per sequence from a forward pass's outputs; ``params[i]`` is sequence i's request's."""
        raise NotImplementedError

    def result(self, model: ServedModel, text: Any, seq: list[int], row: Any, params: dict[str, Any]) -> Any:
        """The answer for one input (``text``: a string, or a text pair for rerank)."""
        return row


class FillMask(Task):
    name = "fill-mask"

    def check(self, model: ServedModel, ids: list[list[int]], params: dict[str, Any]) -> None:
        for i, seq in enumerate(ids):
            if model.spec.mask_id not in seq:
                raise ServeError("invalid_request", f"inputs[{i}] has no {model.mask_token} token; put "
                                 f"{model.mask_token} where a token should be predicted", "inputs")

    def rows(self, out: dict[str, np.ndarray], seqs: list[list[int]], model: ServedModel,
             params: list[dict[str, Any]]) -> list[Any]:
        logits, positions, mask_id = out["mask_logits"], out["mask_positions"], int(model.spec.mask_id or 0)
        rows = []
        for r, seq in enumerate(seqs):
            row = logits[positions[:, 0] == r]
            if len(row) != seq.count(mask_id):
                raise RuntimeError(f"row {r}: the graph returned {len(row)} mask predictions for "
                                   f"{seq.count(mask_id)} masks")
            ids, scores = top_k(row, params[r]["top_k"])
            rows.append((ids.tolist(), scores.tolist()))
        return rows

    def result(self, model: ServedModel, text: str, seq: list[int], row: Any, params: dict[str, Any]) -> Any:
        ids, scores = row
        mask = model.mask_token or ""
        fills = [model.token_text(cands[0]) for cands in ids]
        parts = text.split(mask)
        if len(parts) - 1 == len(fills):
            def filled(only: int | None) -> str:
                chosen = [f if only is None or j == only else mask for j, f in enumerate(fills)]
                return "".join(p + f for p, f in zip(parts, [*chosen, ""], strict=True))
        else:  # the mask token's text and its tokens disagree (e.g. normalisation): rebuild from ids
            positions = [p for p, t in enumerate(seq) if t == model.spec.mask_id]

            def filled(only: int | None) -> str:
                new = list(seq)
                for j, p in enumerate(positions):
                    if only is None or j == only:
                        new[p] = ids[j][0]
                return model.tokenizer.decode(new, skip_special_tokens=True)
        masks = [{"tokens": [model.token_text(t) for t in cands], "ids": cands, "scores": s, "sequence": filled(j)}
                 for j, (cands, s) in enumerate(zip(ids, scores, strict=True))]
        return {"sequence": filled(None), "masks": masks}


class Classify(Task):
    name = "classification"

    def rows(self, out: dict[str, np.ndarray], seqs: list[list[int]], model: ServedModel,
             params: list[dict[str, Any]]) -> list[Any]:
        return list(softmax(out["logits"].astype(np.float64)))

    def result(self, model: ServedModel, text: str, seq: list[int], row: Any, params: dict[str, Any]) -> Any:
        labels = model.labels or [f"LABEL_{i}" for i in range(len(row))]
        order = np.argsort(-row, kind="stable")[: params.get("top_k")]
        return {"labels": [labels[i] for i in order], "scores": row[order].tolist()}


class Embed(Task):
    name = "embedding"

    def check(self, model: ServedModel, ids: list[list[int]], params: dict[str, Any]) -> None:
        dims, sizes = params.get("dimensions"), model.embedding_sizes()
        if dims is None or dims in sizes or not sizes:
            return
        more = (f"; trained for Matryoshka truncation, also {', '.join(map(str, sizes[1:]))}" if len(sizes) > 1
                else " (models.yaml serve.matryoshka_dimensions lists the sizes a model was trained to be cut to)")
        raise ServeError("unsupported", f"model {model.name!r} cannot return {dims} dimensions: leave dimensions out "
                         f"for its full size {sizes[0]}{more}", "dimensions")

    def rows(self, out: dict[str, np.ndarray], seqs: list[list[int]], model: ServedModel,
             params: list[dict[str, Any]]) -> list[Any]:
        vectors = out["sentence_embedding"].astype(np.float32)
        default = model.head.normalize if model.head is not None else model.manifest.normalize
        rows = []
        for vec, p in zip(vectors, params, strict=True):
            cut = vec[: p.get("dimensions") or len(vec)]  # Matryoshka: the first values, normalised again
            normalize = (default or len(cut) < len(vec)) if p.get("normalize") is None else p["normalize"]
            vec = cut
            rows.append(vec / max(float(np.linalg.norm(vec)), 1e-12) if normalize else vec)
        return rows


class TokenClassify(Task):
    name = "token-classification"

    def rows(self, out: dict[str, np.ndarray], seqs: list[list[int]], model: ServedModel,
             params: list[dict[str, Any]]) -> list[Any]:
        probs = softmax(out["logits"].astype(np.float64))
        return [probs[r, : len(seq)] for r, seq in enumerate(seqs)]

    def result(self, model: ServedModel, text: str, seq: list[int], row: Any, params: dict[str, Any]) -> Any:
        from serve.engine.token_groups import entities

        labels = model.labels or [f"LABEL_{i}" for i in range(row.shape[-1])]
        sentence, spans, offsets = model.spans(text)
        strategy = params.get("aggregation_strategy", "none")
        found = entities(row, sentence, spans, labels, strategy, subword_prefix=model.tokenizer.subword_prefix,
                         unk_token=model.tokenizer.unk_token)
        ignore = set(params.get("ignore_labels") or ())
        out = []
        for e in found:
            if e.label in ignore:
                continue
            start, end = offsets[e.first][0], offsets[e.last][1]
            item = {"label": e.label, "score": e.score, "start": start, "end": end, "text": text[start:end]}
            if strategy == "none":
                item.update(index=e.first, token=spans.tokens[e.first])
            out.append(item)
        return {"entities": out}


class Rerank(Task):
    """A cross-encoder's relevance of each (query, passage) pair: one logit, read through a sigmoid."""

    name = "rerank"

    def check(self, model: ServedModel, ids: list[list[int]], params: dict[str, Any]) -> None:
        boundary = model.pair_boundary
        if boundary is None:
            return
        want = model.tokenizer.encode([("a", "b")])[0].count(boundary)
        for i, seq in enumerate(ids):
            if seq.count(boundary) != want:
                raise ServeError("invalid_request", f"pair {i} holds the separator token "
                                 f"{model.token_text(boundary)!r} in its text; remove it", params.get("param"))

    def rows(self, out: dict[str, np.ndarray], seqs: list[list[int]], model: ServedModel,
             params: list[dict[str, Any]]) -> list[Any]:
        return [float(x) for x in out["logits"][:, 0]]

    def result(self, model: ServedModel, text: str, seq: list[int], row: Any, params: dict[str, Any]) -> Any:
        return {"score": float(1 / (1 + np.exp(-row))), "raw": row}


class SparseEmbed(Task):
    """A SPLADE vector per input (its head's ``sparse`` output, [vocab]): the terms above ``threshold``, the
    ``top_k`` largest, largest first."""

    name = "sparse-embedding"

    def rows(self, out: dict[str, np.ndarray], seqs: list[list[int]], model: ServedModel,
             params: list[dict[str, Any]]) -> list[Any]:
        return [sparse_terms(vec, p.get("threshold", 0.0), p.get("top_k")) for vec, p in
                zip(out["sparse"], params, strict=True)]

    def result(self, model: ServedModel, text: str, seq: list[int], row: Any, params: dict[str, Any]) -> Any:
        indices, values = row
        out = {"indices": indices, "values": values}
        if params.get("return_tokens"):
            out["tokens"] = [model.tokenizer.id_to_token(i) for i in indices]
        return out


TASKS: dict[str, Task] = {t.name: t for t in (FillMask(), Classify(), Embed(), TokenClassify(), Rerank(),
                                               SparseEmbed())}
