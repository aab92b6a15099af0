"""The server's own pages, all served from this machine so they work with no network.

- ``/``: a page to try every served model (serve/static/index.html: HTML with inline JS and CSS);
- ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), their scripts and styles under :data:`ASSETS`
  from the fastapi-offline package (only its static files are used), in place of FastAPI's CDN links.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import Request  # resolved at runtime by FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

if TYPE_CHECKING:
    from fastapi import FastAPI

ASSETS = "/docs/assets"
DOCS, OAUTH2_REDIRECT, REDOC = "/docs", "/docs/oauth2-redirect", "/redoc"
PAGES = frozenset({"/", DOCS, OAUTH2_REDIRECT, REDOC})


def index_html() -> str:
    """The ``/`` page, shipped as package data."""
    return resources.files("serve").joinpath("static/index.html").read_text(encoding="utf-8")


def asset_dir() -> Path:
    """Swagger UI's and ReDoc's files (swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png)."""
    try:
        import fastapi_offline
    except ImportError:
        raise ImportError("serving /docs needs the fastapi-offline package: "
                          "pip install 'mlm-compress[serve]'") from None
    return Path(fastapi_offline.__file__).parent / "static"


def add_pages(app: FastAPI) -> None:
    """Serve ``/``, ``/docs``, ``/docs/oauth2-redirect``, ``/redoc`` and their assets; replaces routes already there.

    Example:
        >>> app = FastAPI(docs_url=None, redoc_url=None)
        >>> add_pages(app)
    """
    app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) not in PAGES]
    openapi_url = app.openapi_url or "/openapi.json"
    index = index_html()

    async def home() -> HTMLResponse:
        return HTMLResponse(index)

    async def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url, title=f"{app.title} - Swagger UI", oauth2_redirect_url=OAUTH2_REDIRECT,
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png", swagger_ui_parameters=app.swagger_ui_parameters)

    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=root + openapi_url, title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{ASSETS}/favicon.png", with_google_fonts=False)

    app.mount(ASSETS, StaticFiles(directory=asset_dir()), name="docs-assets")
    for path, endpoint in (("/", home), (DOCS, swagger), (OAUTH2_REDIRECT, oauth2_redirect), (REDOC, redoc)):
        app.add_api_route(path, endpoint, methods=["GET"], include_in_schema=False)
