"""The heads of a multi-head artifact, as models.yaml (``heads:``) and ``--heads`` name them.

A checkpoint such as AntiBERTy's holds one encoder with a masked-LM head and extra linear heads
(species, chain) on the pooled output; a multi-head artifact (compress/head_graph.py) runs the
encoder once and returns each head as its own output:

- the fill-mask head (at most one, conventionally named ``mlm``): ``mask_logits`` and
  ``mask_positions``, the LM head computed only at mask tokens, as in the single-task graph;
- each classification head ``NAME``: ``NAME_logits`` [batch, labels], on the pooled output;
- each token-classification head: ``NAME_logits`` [batch, tokens, labels];
- each rerank head (a cross-encoder's relevance of a text pair): ``NAME_logits`` [batch, 1];
- each embedding head: ``NAME_embedding`` [batch, hidden], pooled (and normalized if it says so);
- a sparse-embedding head (SPLADE, conventionally named ``splade``; beside the fill-mask head, whose LM
  head it reads): ``NAME_sparse`` [batch, vocab], the max over real tokens of log(1 + relu(LM logits)).

Heads other than fill-mask, classification and sparse-embedding come from a model directory `compress train`
wrote. ONNX Runtime computes every output of a graph whatever a run asks for, and the sparse head runs the
LM head at every token, so it is exported only where a head list names it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from compress import CompressError

HeadTask = Literal["fill-mask", "classification", "token-classification", "embedding", "rerank", "sparse-embedding"]
Pooling = Literal["pooler", "cls", "mean"]
MLM = "mlm"  # the conventional name of the fill-mask head
SPLADE = "splade"  # the conventional name of the sparse-embedding head
CONVENTIONAL = {MLM: "fill-mask", SPLADE: "sparse-embedding"}


class HeadSpec(BaseModel):
    """One head of a multi-head model: its name in the checkpoint (``mlm`` for the LM head), task, labels."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    task: HeadTask = "classification"
    labels: list[str] | None = None
    pooling: Pooling | None = None  # classification, rerank, embedding (None: the pooler, as checkpoints have it)
    normalize: bool = False  # embedding

    @model_validator(mode="before")
    @classmethod
    def _conventional_task(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("name") in CONVENTIONAL and "task" not in data:
            return {**data, "task": CONVENTIONAL[data["name"]]}
        return data

    @property
    def output(self) -> str:
        """The graph output holding this head's logits."""
        if self.task == "fill-mask":
            return "mask_logits"
        if self.task == "sparse-embedding":
            return f"{self.name}_sparse"
        return f"{self.name}_embedding" if self.task == "embedding" else f"{self.name}_logits"


def check_heads(heads: list[HeadSpec]) -> list[HeadSpec]:
    """Two or more heads, unique names, at most one fill-mask head (and sparse-embedding head, only beside it),
    labels only on classifiers."""
    names = [h.name for h in heads]
    if len(heads) < 2:
        raise ValueError("heads: list two or more (e.g. mlm, species); for one head use task/head instead")
    if len(set(names)) != len(names):
        raise ValueError(f"heads: names must be unique; got {names}")
    if sum(h.task == "fill-mask" for h in heads) > 1:
        raise ValueError("heads: at most one fill-mask head (the checkpoint has one LM head)")
    sparse = [h.name for h in heads if h.task == "sparse-embedding"]
    if len(sparse) > 1:
        raise ValueError(f"heads: at most one sparse-embedding head; got {', '.join(sparse)}")
    if sparse and not any(h.task == "fill-mask" for h in heads):
        raise ValueError(f"heads: the sparse-embedding head {sparse[0]} reads the LM head; list the fill-mask head "
                         f"({MLM}) too")
    for h in heads:
        if h.task in ("fill-mask", "embedding", "rerank", "sparse-embedding") and h.labels:
            raise ValueError(f"heads: {h.name} is a {h.task} head; labels belong to classification heads")
    return heads


HeadList = Annotated[list[HeadSpec], AfterValidator(check_heads)]


def parse_heads(text: str, labels: dict[str, list[str]] | None = None) -> list[HeadSpec]:
    """``--heads mlm,species,chain``: ``mlm`` is the fill-mask head, ``splade`` a sparse-embedding head, any
    other name a classification head.

    Raises:
        CompressError: fewer than two heads, or a repeated or malformed name.
    """
    from pydantic import ValidationError

    try:
        heads = [HeadSpec(name=n.strip(), labels=(labels or {}).get(n.strip())) for n in text.split(",") if n.strip()]
        return check_heads(heads)
    except (ValidationError, ValueError) as e:
        first = str(e).strip().splitlines()[-1] if isinstance(e, ValidationError) else str(e)
        raise CompressError(f"--heads {text!r}: {first}") from None
