"""Benchmarks: throughput, latency and accuracy of every variant beside the PyTorch baseline, and serving.

``python -m benchmarks SUBCOMMAND`` (:mod:`benchmarks.cli`). Each subcommand is one module or package
of the same name: ``run/``, ``http/``, ``training/`` (``train``), ``adapt``, ``bulk``, ``e2e``, ``st``,
``mask_head``, ``task_heads``, ``loadtest``, ``headline``; what several of them use is in ``common/``.
"""
