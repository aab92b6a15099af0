"""The schema tells the truth: schemathesis (all its checks) against ``/openapi.json`` of a live server of
tiny models (tests/serve/apis/conftest.py: embedders, fill-mask, a classifier, a tagger and a reranker) finds
no request the schema allows and the server refuses,
none it forbids and the server takes, no undocumented status, header or body, and no server error.

Driven through schemathesis' Python API (its pytest plugin does not load under pytest 9), with a bounded
number of examples per route and generation mode, so the run takes about a minute.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402  (after the skip: hypothesis comes with it)
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402

pytestmark = pytest.mark.slow
EXAMPLES = 20


def _run(operation, mode: GenerationMode, failures: list[str]) -> int:
    """Up to EXAMPLES requests to ``operation`` in ``mode``; the first failure goes to ``failures``. Returns
    how many were sent."""
    sent = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case) -> None:
        sent.append(case)
        case.call_and_validate(timeout=30)

    try:
        check()
    except Unsatisfiable:  # nothing to negate: a route without a body or parameters of its own
        pass
    except Exception as e:  # schemathesis' failure (or hypothesis' own error): keep it, go on to the next
        failures.append(f"{operation.label} ({mode}): {e}"[:3000])
    return len(sent)


def test_every_route_does_what_its_schema_says(encoder_server):
    schema = schemathesis.openapi.from_url(f"{encoder_server.url}/openapi.json")
    failures: list[str] = []
    sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            sent += _run(operation, mode, failures)
    assert not failures, "\n\n".join(failures)
    assert sent > 100
    assert encoder_server.client().get("/health")[0] == 200
