"""HTTP serving of compressed artifacts: fill-mask, classification, embeddings (native and OpenAI).

``serve`` (:mod:`serve.cli`) reads models.yaml (:mod:`serve.config`), makes each model ready
(:mod:`serve.models`, artifacts read through :mod:`compress.artifact`), and runs a LitServe server
(:mod:`serve.server`) with one inference worker per task (:mod:`serve.apis`) over a backend
(:mod:`serve.backends`). Errors: :mod:`serve.errors`; metrics: :mod:`serve.metrics`; a bounded load
client: :mod:`serve.loadtest`.
"""
