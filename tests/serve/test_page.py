"""The server's pages (serve/page.py) are served from the server itself: nothing comes from another host."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from serve.app import build_app
from serve.config import Settings
from serve.models import ENDPOINTS
from serve.page import ASSETS, index_html
from tests.serve.test_dispatch import StubEngine


def _get(app: Any, path: str, headers: tuple[tuple[bytes, bytes], ...] = ()) -> tuple[int, dict[str, str], bytes]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
             "headers": [(b"host", b"127.0.0.1"), *headers], "server": ("127.0.0.1", 8000),
             "client": ("127.0.0.1", 5555)}
    sent: list[dict[str, Any]] = []
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        while not (sent and sent[-1]["type"] == "http.response.body" and not sent[-1].get("more_body")):
            await asyncio.sleep(0.01)  # the client goes away once the response is complete
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    headers_out = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    return sent[0]["status"], headers_out, b"".join(m.get("body", b"") for m in sent[1:])


def _linked(html: str) -> list[str]:
    """Every URL the page loads or links to (src, href, and the URLs in Swagger UI's and ReDoc's scripts)."""
    return re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html)


@pytest.fixture(scope="module")
def app():
    return build_app(StubEngine(), Settings())


def test_index_is_self_contained(app):
    status, headers, body = _get(app, "/")
    html = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert html == index_html() and "v1/models" in html and "v1/embeddings" in html
    assert not [u for u in _linked(html) if "//" in u], "the page must load nothing from another host"
    assert "<script src" not in html and "<link" not in html  # JS and CSS inline


@pytest.mark.parametrize("task", sorted(ENDPOINTS))
def test_index_has_a_form_for_every_served_task(task):
    """Each task a model can be served as has its form (a template of that id) and its code (TASKS[task])."""
    html = index_html()
    template = re.search(rf'<template id="{task}">(.*?)</template>', html, re.S)
    assert template and "<button" in template.group(1), f"no form for {task}"
    tasks = html[html.index("const TASKS = {"):html.index("function modelCard")]
    assert re.search(rf'^  "?{task}"?: {{$', tasks, re.M), f"no TASKS entry for {task}"
    assert f"No form for task {task}" not in html


@pytest.mark.parametrize(("page", "assets"), [
    ("/docs", ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")),
    ("/redoc", ("redoc.standalone.js", "favicon.png")),
])
def test_docs_load_their_assets_from_this_server(app, page, assets):
    status, _, body = _get(app, page)
    html = body.decode()
    assert status == 200 and "cdn" not in html.lower() and "fonts.googleapis" not in html
    urls = [u for u in _linked(html) if u != "/openapi.json"]
    assert sorted(urls) == sorted(f"{ASSETS}/{a}" for a in assets)
    for url in urls:
        status, _, content = _get(app, url)
        assert status == 200 and len(content) > 1000, url
    assert _get(app, "/openapi.json")[0] == 200


def test_pages_and_assets_are_open_with_an_api_key():
    app = build_app(StubEngine(), Settings(api_key="k"))
    for path in ("/", "/docs", "/redoc", f"{ASSETS}/swagger-ui-bundle.js"):
        assert _get(app, path)[0] == 200, path
    assert _get(app, "/v1/models")[0] == 401  # what the page shows still needs the key
    assert _get(app, "/v1/models", ((b"authorization", b"Bearer k"),))[0] == 200
