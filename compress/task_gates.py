"""Task gates: the artifact judged on the user's task (retrieval, classification, tagging, fill-mask) against
the original model on the same data, instead of by agreement with the original's outputs.

A gate is written ``KIND[:FILE][:head=NAME][@TOL]`` (``--gate``, or a string in a recipe's
``validation.gates``), or as a mapping ``{kind, data, head, tolerance}``:

- ``retrieval:FILE``: JSONL/CSV rows ``query`` (or ``anchor``) and ``positive`` (and ``negative``): each
  query against every document of the file; MRR@10 and nDCG@10. Gates an embedding head.
- ``classification:FILE``: ``text`` (and ``text_pair``), ``label``: accuracy and macro-F1.
- ``token-classification:FILE``: ``tokens`` and ``labels``: accuracy per word (its first sub-token).
- ``fill-mask[:FILE]``: top-1 accuracy against the true token at a fixed seeded 15 % masking of the
  texts (default: the held-out texts of the recipe's ``adapt:`` step, else the packaged in-domain texts).

``TOL`` is in points (1 point = 0.01 of a metric; default 1): each metric of the gate may fall at most
this far below the original's. ``head=NAME`` picks the head of a multi-head artifact (default: the only
head of the gate's task).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

GateKind = Literal["retrieval", "classification", "token-classification", "fill-mask"]
KINDS: tuple[GateKind, ...] = ("retrieval", "classification", "token-classification", "fill-mask")
# the head task each kind gates, and the metrics it compares
HEAD_TASK: dict[str, str] = {"retrieval": "embedding", "classification": "classification",
                             "token-classification": "token-classification", "fill-mask": "fill-mask"}
METRICS: dict[str, tuple[str, ...]] = {"retrieval": ("mrr@10", "ndcg@10"), "classification": ("accuracy", "macro_f1"),
                                       "token-classification": ("accuracy",), "fill-mask": ("top1_accuracy",)}
DEFAULT_TOLERANCE = 1.0
GRAMMAR = "KIND[:FILE][:head=NAME][@TOL]"


class TaskGate(BaseModel):
    """One task gate: what it measures, on which data and head, and how many points the artifact may lose."""

    model_config = ConfigDict(extra="forbid")
    kind: GateKind
    data: str | None = Field(None, description="the gate's examples (fill-mask: default in-domain texts)")
    head: str | None = Field(None, description="the head it gates (default: the only head of its task)")
    tolerance: float = Field(DEFAULT_TOLERANCE, description="points each metric may fall below the original's")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        return parse_gate(data) if isinstance(data, str) else data

    @model_validator(mode="after")
    def _needs_data(self) -> TaskGate:
        if self.data is None and self.kind != "fill-mask":
            raise ValueError(f"a {self.kind} gate needs its examples: write {self.kind}:FILE")
        return self

    @property
    def label(self) -> str:
        """The gate as it is written, e.g. ``retrieval:queries.jsonl@1``."""
        parts = [self.kind, *([self.data] if self.data else []), *([f"head={self.head}"] if self.head else [])]
        return ":".join(parts) + f"@{self.tolerance:g}"


def parse_gate(text: str) -> dict[str, Any]:
    """``retrieval:q.jsonl:head=sim@0.5`` -> ``{kind, data, head, tolerance}``.

    Raises:
        ValueError: an unknown kind, an empty part or a tolerance that is not a number.
    """
    body, at, tol = text.strip().rpartition("@")
    if not at:
        body, tol = tol, ""
    out: dict[str, Any] = {}
    if at:
        try:
            out["tolerance"] = float(tol)
        except ValueError:
            raise ValueError(f"{text!r}: the tolerance after @ is in points, a number such as 0.5") from None
    kind, _, rest = body.partition(":")
    if kind not in KINDS:
        raise ValueError(f"{text!r}: unknown gate kind {kind!r}; write {GRAMMAR} with KIND one of {', '.join(KINDS)}")
    parts = rest.split(":") if rest else []
    heads = [p for p in parts if p.startswith("head=")]
    files = [p for p in parts if not p.startswith("head=")]
    if len(heads) > 1 or any(not p for p in parts) or any(h == "head=" for h in heads):
        raise ValueError(f"{text!r}: write {GRAMMAR}, e.g. classification:topics.jsonl:head=topic@0.5")
    out.update(kind=kind, data=":".join(files) or None)
    if heads:
        out["head"] = heads[0].removeprefix("head=")
    return out
