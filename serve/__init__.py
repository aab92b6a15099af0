"""HTTP serving of compressed artifacts: fill-mask, classification, embeddings (native and OpenAI).

``serve`` (:mod:`serve.cli`) reads models.yaml (:mod:`serve.config`), makes each model ready
(:mod:`serve.models`, artifacts read through :mod:`compress.artifact`), and runs a LitServe server
(:mod:`serve.server`) with one inference worker per task (:mod:`serve.apis`) over a backend
(:mod:`serve.backends`). Errors: :mod:`serve.errors`; metrics: :mod:`serve.metrics`. Tokenizing with the
`tokenizers` library (:mod:`serve.tokenizer`) and sessions from :mod:`compress.session`: serving imports
neither torch nor transformers (they come with the ``compress`` extra, for the torch backend and first-start
compression). The load client and the server-process helpers of tests and benchmarks:
:mod:`benchmarks.common.load`, :mod:`benchmarks.common.process`.
"""
