"""Bulk embedding of a corpus on Ray Data: ``python -m serve.bulk CORPUS --model NAME --out DIR``.

==========  =================================================================
module      what
==========  =================================================================
corpus      JSON lines, Parquet or plain text, cut into fixed shards
embedder    one shard embedded as the engine does, written as Parquet atomically
job         the Ray Data job: actor pool, resume, progress (imports Ray)
==========  =================================================================
"""

from serve.bulk.corpus import Corpus, CorpusError, open_corpus
from serve.bulk.job import BulkJob, BulkSummary, run_bulk

__all__ = ["BulkJob", "BulkSummary", "Corpus", "CorpusError", "open_corpus", "run_bulk"]
