"""The serving engine, with no web framework inside: admission, batching, backends, pre/post-processing.

==================  ===========================================================
module              what
==================  ===========================================================
engine              :class:`Engine`: the lanes, the threads, start/stop, live swap
interface           :class:`AppEngine`: what the HTTP app asks of an engine
addresses           which served name (model or ``MODEL:HEAD``) a request means
lane                one model: admission, queue, continuous batching, versions
admission           bounded queues in requests and tokens: 429 at once beyond them
plan                cutting a batch into passes of similar length under budgets
tokenize            batched tokenization off the event loop
tasks               per task: checks before, numeric and text results after
task_heads          a multi-head model's pass split into each task head's rows
batch               token ids to padded graph inputs
==================  ===========================================================
"""

from serve.engine.addresses import choose_address, served_addresses
from serve.engine.engine import Answer, Engine, artifact_version
from serve.engine.interface import AppEngine

__all__ = ["Answer", "AppEngine", "Engine", "artifact_version", "choose_address", "served_addresses"]
