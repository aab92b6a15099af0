"""Benchmarks: throughput, latency and accuracy of every variant beside the PyTorch baseline."""
