"""PyTorch backend: a ``backend: torch`` artifact (bitsandbytes recipe applied at load), or the entry's
source weights in fp32 or with bitsandbytes int8 / NF4 linear layers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from compress.runtime import Runner
    from serve.spec import ModelSpec


class TorchBackend:
    def __init__(self, spec: ModelSpec) -> None:
        import torch

        opts = spec.options
        threads = max(1, spec.threads() // spec.streams())  # per forward pass
        self.runner: Runner
        torch.set_num_threads(threads)
        if spec.from_source:
            from compress.export import TaskGraph
            from compress.quantize.bnb import BnbConfig, quantize_bnb
            from compress.runtime import TorchRunner
            from compress.sources import load_entry

            loaded = load_entry(spec.entry)
            model = loaded.model.eval()
            if opts.precision == "fp32":
                model = model.to(opts.device)
            else:
                model = quantize_bnb(model, BnbConfig(method=opts.precision),
                                     opts.device)
            graph = TaskGraph(model, spec.task, mask_token_id=spec.mask_id,  # type: ignore[arg-type]
                              pooling=spec.pooling or "mean")
            self.runner = TorchRunner(graph, spec.input_names, threads=threads, device=opts.device)
            what = f"source weights in {opts.precision} ({loaded.source.path})"
        else:
            from compress.artifact import load_artifact

            art = load_artifact(spec.artifact)
            self.runner = art.runner(opts.device, threads)
            what = f"artifact {spec.artifact} ({art.manifest.method})"
        self.input_names = list(spec.input_names)
        self.description = f"torch on {opts.device}, {threads} threads, {what}"

    def __call__(self, encoding: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.runner(encoding)
