"""Benchmark data and held-out scorers of `compress train`'s cases (the runner is `python -m benchmarks train`).

- ``data``: ``write_case_files(out_dir)`` writes the JSONL/text files of the four cases.
- ``scores``: scorers over plain callables (torch model, ONNX artifact or HTTP server alike).
- ``reference``: today's models as such callables, for the baselines.
"""
