"""How `serve` runs one model: the ``serve:`` block of a models.yaml entry (threads, batching budgets,
admission limits, Ray replicas, first-start compression), validated with pydantic.

`compress` validates it with the rest of models.yaml (:mod:`compress.catalog`) and otherwise ignores it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Autoscaling(BaseModel):
    """Ray Serve autoscaling of one model's replicas (``serve --ray``)."""

    model_config = ConfigDict(extra="forbid")
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(ge=1)
    target_ongoing_requests: float = Field(32, gt=0, description="requests per replica the scaler aims at")

    @model_validator(mode="after")
    def _ordered(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"autoscaling.min_replicas ({self.min_replicas}) exceeds max_replicas "
                             f"({self.max_replicas})")
        return self


# Padded tokens per forward pass, by default. On CPU, small passes keep a pass's activations in the
# core's cache: int8 MiniLM on 2 AVX-512 VNNI cores (4 MB L2 each) embeds BBC paragraphs at 229 texts/s
# in passes of up to 8,192 tokens, 270/s at 1,024, 291-301/s at 512 and 307-310/s at 256-384. Served
# at 16 clients, 256 answered as many requests as 512 at a lower p99; 128 against 256, alternating,
# server by server: AntiBERTy (hidden 512) 147.7-159.0/s against 142.7-145.1/s, p99 113-124 ms against
# 167-170; MiniLM (hidden 384) 229.4/s against 232.8/s on average of six each, within noise, p99 98-111
# against 106-115 ms. The wider the model, the sooner a pass spills out of the cache. On an AVX2
# machine the cost per token was flat, so small passes cost only their fixed overhead there. A GPU
# wants large passes.
CPU_PASS_TOKENS = 128
CUDA_PASS_TOKENS = 8192
# Requests admitted and not yet answered, by default. An admitted request waits behind at most this
# many, so the bound sets the latency of a full queue: MiniLM int8 on 2 VNNI cores, 16 clients against
# 256, admitted p99 2.10x at 32, 1.67x at 24, 1.33x at 20, goodput 0.95x, 0.93x, 0.91x (one run each).
# A GPU pass takes a whole batch, so there the queue holds the running batch and the next one.
CPU_QUEUE_REQUESTS = 24


class ServeOptions(BaseModel):
    """How `serve` runs a model: the optional ``serve:`` block of a models.yaml entry."""

    model_config = ConfigDict(extra="forbid")
    # Default: as the artifact says (manifest backend). torch on an ONNX artifact runs the source weights.
    backend: Literal["onnxruntime", "torch"] | None = None
    device: Literal["cpu", "cuda"] = "cpu"
    # For the source weights on torch: fp32, or bitsandbytes 8-bit / 4-bit NF4 linears.
    precision: Literal["fp32", "bnb-int8", "bnb-nf4"] = "fp32"
    threads: int | None = Field(None, ge=1, description="intra-op threads (default: all cores)")
    streams: int | None = Field(None, ge=1, le=64, description="forward passes that run at once, each on "
                                "threads/streams intra-op threads (default: 2 for onnxruntime on 2+ CPU threads, "
                                "else 1)")
    passes_ahead: int = Field(1, ge=0, le=8, description="pass tickets queued beyond the streams: a stream "
                              "that frees takes one up and forms its pass from the queue at once instead of "
                              "waiting for the event loop (0: a ticket is handed over only when a stream frees)")
    max_batch_size: int = Field(32, ge=1, le=1024, description="sequences per formed batch")
    max_batch_tokens: int = Field(CPU_PASS_TOKENS, ge=16, description="padded tokens per forward pass (default "
                                  f"{CPU_PASS_TOKENS} on cpu, {CUDA_PASS_TOKENS} on cuda)")
    batch_timeout: float = Field(0.005, ge=0, le=1, description="seconds a request waits for company when idle")
    max_queue_requests: int = Field(CPU_QUEUE_REQUESTS, ge=1, description="requests admitted and not yet answered; "
                                    f"beyond: 429 (default {CPU_QUEUE_REQUESTS} on cpu, 2 x max_batch_size on cuda)")
    max_queue_tokens: int = Field(65536, ge=16, description="their tokens; beyond: 429")
    max_items: int = Field(64, ge=1, le=4096, description="inputs per request")
    max_length: int | None = Field(None, ge=4, description="tokens per input (default: the artifact's)")
    truncate: bool = False
    split_chars: bool | None = Field(None, description="space out residues (default: the artifact's)")
    # serve --ray: replicas (fixed, or autoscaled) and CPUs per replica (its threads follow unless set)
    replicas: int | None = Field(None, ge=1, description="Ray Serve replicas (default 1)")
    autoscaling: Autoscaling | None = None
    cpus: float | None = Field(None, gt=0, description="CPUs per Ray replica (default 1)")
    # A missing artifact, on first start: the plain recipe (no adapt or prune step), or the whole one.
    first_start: Literal["plain", "full"] = Field("plain", description="recipe a missing artifact is compressed "
                                                  "with on first start: plain (quantize, optimize) or full (adapt "
                                                  "and prune steps too, as `compress run`); serve --compress: full")

    # What a request may ask of the model beyond its inputs (serve/apis/): see docs/models-yaml.md.
    matryoshka_dimensions: list[int] | None = Field(None, min_length=1, description="embedding sizes the model "
                                                     "was trained to be truncated to (Matryoshka): a request's "
                                                     "`dimensions` may be one of these or the full size")
    prompts: dict[str, str] = Field(default_factory=dict, description="named prefixes a request picks with "
                                    "`prompt_name` (e.g. query: 'query: ')")
    truncation_side: Literal["right", "left"] = Field("right", description="which end of a too-long input is cut "
                                                      "when truncate is on (left keeps the prompt and the end)")

    @model_validator(mode="after")
    def _budgets_for_the_device(self) -> ServeOptions:
        if self.device == "cuda":
            if "max_batch_tokens" not in self.model_fields_set:
                self.max_batch_tokens = CUDA_PASS_TOKENS
            if "max_queue_requests" not in self.model_fields_set:
                self.max_queue_requests = 2 * self.max_batch_size
        return self

    @model_validator(mode="after")
    def _distinct_dimensions(self) -> ServeOptions:
        dims = self.matryoshka_dimensions or []
        if any(d < 1 for d in dims) or len(set(dims)) != len(dims):
            raise ValueError(f"matryoshka_dimensions must be distinct positive sizes (got {dims})")
        return self

    @model_validator(mode="after")
    def _replicas_or_autoscaling(self) -> ServeOptions:
        if self.replicas is not None and self.autoscaling is not None:
            raise ValueError("give replicas or autoscaling, not both")
        return self

    @model_validator(mode="after")
    def _precision_needs_torch(self) -> ServeOptions:
        if self.precision != "fp32" and self.backend != "torch":
            raise ValueError(f"precision {self.precision} needs backend: torch (otherwise the artifact runs as it "
                             "was compressed; a bnb-int8/bnb-nf4 recipe makes a torch artifact)")
        return self
