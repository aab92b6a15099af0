"""What more than one subcommand uses: data, variants, the server process and its load client.

- ``datasets``: the held-out data the accuracy suites score (fixed draws).
- ``texts``: real texts to send a served artifact (BBC paragraphs, antibody germlines).
- ``variants``: the PyTorch baseline and the compressed artifacts a benchmark compares; ``topic``, the
  English topic classifier the benchmarks train.
- ``process``: a real `serve` process on 127.0.0.1; ``load``: a bounded load client for it;
  ``endpoints``: its route and request body per task.
- ``embedder``: an embedding artifact run as bulk embedding runs it.
- ``optional``: import an optional dependency, or say what to install.
"""
