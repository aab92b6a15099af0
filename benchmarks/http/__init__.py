"""`python -m benchmarks http`: the serving report, a real `serve` on 127.0.0.1 under bounded load.

- ``measure``: one server per model, in-process and HTTP rounds (:func:`~benchmarks.http.measure.run_http`).
- ``phases``: the 429 probe, the soak, the live swap and the drain.
- ``report``: the tables, the targets and the plot.
"""
