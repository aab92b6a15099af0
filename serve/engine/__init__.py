"""The serving engine, with no web framework inside: admission, batching, backends, pre/post-processing.

==================  ===========================================================
module              what
==================  ===========================================================
engine              :class:`Engine`: the lanes, the threads, start/stop, live swap
lane                one model: admission, queue, continuous batching, versions
admission           bounded queues in requests and tokens: 429 at once beyond them
plan                cutting a batch into passes of similar length under budgets
tokenize            batched tokenization off the event loop
tasks               per task: checks before, numeric and text results after
task_heads          a multi-head model's pass split into each task head's rows
batch               token ids to padded graph inputs
==================  ===========================================================
"""

from serve.engine.engine import Answer, Engine, artifact_version

__all__ = ["Answer", "Engine", "artifact_version"]
