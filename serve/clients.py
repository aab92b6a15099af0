"""Who is asking: the connection a request came on, as its client.

On HTTP/1.1 a client sends its requests one after another on its own connection, so the connection's
address and port stand for the client: Retry-After is enforced per connection (:mod:`serve.backoff`),
and a client that comes back when told gets its share of a full queue (:mod:`serve.engine.admission`).
An address a proxy forwarded (``X-Forwarded-For``; uvicorn gives it port 0) may stand for many
clients, so it is no one's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def client_key(client: Iterable[Any] | None) -> tuple[str, int] | None:
    """The ASGI scope's ``client`` as a key: (host, port), or None when unknown or forwarded by a proxy."""
    key = tuple(client or ())
    if len(key) != 2 or not key[1]:
        return None
    return str(key[0]), int(key[1])
