"""The recipe: how a model is compressed, one typed object from models.yaml or from `compress run` flags.

    Recipe.model_validate({"method": "int4", "block_size": 64, "optimize": "O1"})
    Recipe.model_validate({"quantize": {"method": "int4", "block_size": 64}, "optimize": "O1"})

Both lines give the same recipe: the short form puts the method's options beside ``method``; the
canonical form (what the manifest stores) nests them under ``quantize``. ``quantize`` is validated
as the config of the method it names, looked up in the registry (:mod:`compress.quantize`), so a
newly registered method is a valid recipe with no change here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator, model_validator

from compress.adapt.options import AdaptOptions
from compress.quantize import MethodConfig, get_method, method_config
from compress.task_gates import TaskGate
from compress.train.options import TrainOptions

PruneMethod = Literal["structured", "heads", "neurons", "layers", "magnitude", "auto"]


class PruneStep(BaseModel):
    """The optional ``prune:`` step: remove structure before export, then recover by distillation.

    ``fraction`` is of the encoder layers' parameters (``structured``) or of the method's own units;
    ``speedup`` instead asks for an estimated int8 CPU speed-up. ``method: auto`` takes neither: it searches
    for the fastest model inside the task gates (:mod:`compress.prune.search`), stopping at
    ``target_speedup`` when given. Recovery distils from the original on
    ``recover_data`` (default: in-domain data fitting the vocabulary, minus the validation texts).
    """

    model_config = ConfigDict(extra="forbid")
    fraction: float | None = Field(None, gt=0, lt=1, description="of the encoder's parameters")
    speedup: float | None = Field(None, gt=1, description="instead of a fraction: estimated int8 CPU speed-up")
    method: PruneMethod = "structured"
    recover_steps: int = Field(300, ge=0, description="distillation steps (0: none)")
    recover_data: str | None = None
    recover_hidden_weight: float | None = Field(None, ge=0, description="hidden-state MSE weight in distillation")
    recover_group_by_length: bool | None = Field(None, description="distil on batches of similar-length texts")
    checkpoint: str | None = Field(None, description="recovery checkpoint (default: beside the artifact)")
    head_cost_factor: float | None = Field(None, gt=0, description="structured: how much dearer a head counts")
    rounds: int | None = Field(None, ge=1, description="prune in this many steps (default: the method's)")
    score_batches: int | None = Field(None, ge=1, description="batches importance is measured on")
    target_speedup: float | None = Field(None, gt=1, description="auto: stop at the first candidate inside the "
                                         "task gates this fast (estimated), or fail saying by how much it missed")

    @model_validator(mode="after")
    def _one_target(self) -> PruneStep:
        if self.method == "auto":
            if self.fraction is not None or self.speedup is not None:
                raise ValueError("prune: method auto searches the amount itself: drop fraction/speedup "
                                 "(or give target_speedup)")
            return self
        if self.target_speedup is not None:
            raise ValueError("prune: target_speedup belongs to method auto (--prune auto --target-speedup X)")
        if (self.fraction is None) == (self.speedup is None):
            raise ValueError("prune: give fraction (e.g. 0.4) or speedup (e.g. 1.6), exactly one")
        return self

    @property
    def target(self) -> str:
        """``0.4``, ``1.6x`` or ``auto``, as the flag is written."""
        if self.method == "auto":
            return "auto" + (f", target {self.target_speedup:g}x" if self.target_speedup else "")
        return f"{self.speedup:g}x" if self.speedup else f"{self.fraction:g}"


class ValidationStep(BaseModel):
    """How the artifact is checked against the original, and the accuracy gate."""

    model_config = ConfigDict(extra="forbid")
    data: str | None = Field(None, description="text file of validation examples (default: data fitting "
                             "the vocabulary)")
    n: int = Field(256, ge=1, description="size of the default validation set")
    min_agreement: float | None = Field(None, gt=0, description="gate for fill-mask and classification "
                                       "(default 0.99; 0.97 for int4)")
    min_cosine: float = Field(0.99, gt=-1, description="gate for embeddings")
    gate: bool = Field(True, description="refuse an artifact that misses the gate (off: written, marked failing)")
    gates: list[TaskGate] = Field(default_factory=list, description="task gates (compress.task_gates), each "
                                  "`KIND[:FILE][:head=NAME][@TOL]` or a mapping; they decide for the heads they "
                                  "cover instead of the agreement threshold")


class Recipe(BaseModel):
    """How to compress a model: optional adaptation to a new domain and pruning, then the quantization
    method and its options, graph optimization, validation. The manifest stores it as :meth:`stored`."""

    model_config = ConfigDict(extra="forbid")
    quantize: SerializeAsAny[MethodConfig] = Field(default_factory=lambda: method_config({"method": "int8"}))
    optimize: Literal["O1", "O2", "O3"] | None = None
    opset: int | None = Field(None, ge=11, description="ONNX opset (default: optimum's for the family)")
    max_length: int | None = Field(None, ge=4, description="tokens per input (default: the model's)")
    adapt: AdaptOptions | None = Field(None, description="continued masked-LM training on new-domain text first "
                                       "(compress adapt), for fill-mask models")
    train: TrainOptions | None = Field(None, description="fine-tune task heads on the encoder first (compress "
                                       "train); the artifact gets every head")
    prune: PruneStep | None = None
    validation: ValidationStep = ValidationStep()

    @model_validator(mode="after")
    def _train_alone(self) -> Recipe:
        if self.train is not None and (self.adapt is not None or self.prune is not None):
            raise ValueError("train: makes a multi-head model, which adapt: and prune: do not take; for new-domain "
                             "text give train: an mlm task (it replays as adapt: does)")
        if self.prune is not None and self.prune.method == "auto" and not self.validation.gates:
            raise ValueError("prune: auto keeps the fastest model inside the task gates: give at least one "
                             "(--gate KIND[:FILE][@TOL], or validation.gates)")
        return self

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        """``{method: int4, block_size: 64}`` → ``{quantize: {method: int4, block_size: 64}}``."""
        if not isinstance(data, dict) or "method" not in data:
            return data
        if "quantize" in data:
            raise ValueError("give the method as `method:` or inside `quantize:`, not both")
        own = {k: v for k, v in data.items() if k in cls.model_fields}
        return {**own, "quantize": {k: v for k, v in data.items() if k not in cls.model_fields}}

    @field_validator("quantize", mode="before")
    @classmethod
    def _registered_method(cls, v: Any) -> MethodConfig:
        return method_config(v)

    @model_validator(mode="after")
    def _torch_methods_have_no_graph(self) -> Recipe:
        if get_method(self.method).backend == "torch":
            self.optimize = None  # the artifact is torch weights: no ONNX graph to optimize
        return self

    @property
    def method(self) -> str:
        return self.quantize.method

    def plain(self) -> Recipe:
        """This recipe without its training steps (``adapt``, ``prune``): quantize, optimize, validate, in
        seconds to a minute rather than the minutes of distillation (what ``serve`` runs on a first start
        unless asked for the whole recipe)."""
        return self.model_copy(update={"adapt": None, "prune": None})

    def stored(self) -> dict[str, Any]:
        """The recipe as the manifest records it (canonical form, JSON types)."""
        return self.model_dump(mode="json")
