"""`python -m benchmarks run`: every variant beside the PyTorch baseline, speed and held-out accuracy.

- ``bench``: one run, every model x variant (:func:`~benchmarks.run.bench.run_benchmark`).
- ``speed``: in-process throughput and latency, variants side by side; ``workloads``: its inputs.
- ``accuracy``: the suites; ``criteria``: the budgets and the misses.
- ``report``: JSON and Markdown; ``plot``: the PNG; ``results``: reading a report's rows.
"""
