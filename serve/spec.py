"""What a backend (serve/backends/) needs to load and run one model: small and picklable, so it crosses
to an inference worker (a LitServe process, a Ray replica) as it is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from compress.catalog import ModelEntry, Task
    from compress.task_heads import HeadTask
    from serve.options import ServeOptions


@dataclass
class ModelSpec:
    """What an inference worker needs to load and run one model."""

    name: str
    task: Task | HeadTask
    artifact: str
    graph_file: str
    entry: ModelEntry
    options: ServeOptions
    input_names: list[str]
    pad_id: int
    backend: str = "onnxruntime"
    from_source: bool = False  # torch on the entry's source weights rather than on the artifact
    mask_id: int | None = None
    pooling: str | None = None
    warmup: list[list[int]] = field(default_factory=list)

    def threads(self) -> int:
        """Intra-op threads in all: as set, else every core."""
        from compress.session import default_threads

        return self.options.threads or default_threads()

    def streams(self) -> int:
        """Forward passes at once: as set; else 2 for ONNX Runtime on 2+ CPU threads (one pass runs while the
        next one forms, and each pass runs on half the threads with less synchronisation), else 1."""
        o = self.options
        if o.streams:
            return o.streams
        return 2 if self.backend == "onnxruntime" and o.device == "cpu" and self.threads() >= 2 else 1
