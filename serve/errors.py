"""Error kinds, their HTTP statuses, and the one JSON shape every error is answered with.

    {"error": {"message": "what went wrong and how to fix the request", "type": "invalid_request", "param": "inputs"}}

A client mistake, an overload or a draining server is a :class:`ServeError`: a plain exception with a
kind from :data:`STATUS`, so the engine raises it without knowing any web framework and every host
answers it the same way. Anything else is a server error: logged with the request id, answered 500
without internals.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse

log = logging.getLogger("serve")

# Error kind -> HTTP status (text-embeddings-inference keeps one such table).
STATUS: dict[str, int] = {
    "invalid_json": 400,
    "unsupported": 400,
    "unauthorized": 401,
    "model_not_found": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    "input_too_long": 413,
    "payload_too_large": 413,
    "invalid_request": 422,
    "overloaded": 429,
    "server_error": 500,
    "not_ready": 503,
    "unavailable": 503,
    "timeout": 504,
}


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorInfo


class ServeError(Exception):
    """An error the client is told about: its kind (and so its status), a message with the fix, the field.

    ``headers`` go on the response (``Retry-After`` on a 429 or 503).
    """

    def __init__(self, kind: str, message: str, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.kind, self.message, self.param = kind, message, param
        self.status_code = STATUS[kind]
        self.headers = dict(headers or {})

    def __reduce__(self) -> tuple[Any, ...]:  # crosses process queues (the LitServe host) intact
        return (ServeError, (self.kind, self.message, self.param, self.headers))

    def body(self) -> dict[str, Any]:
        return error_body(self.kind, self.message, self.param)


def error_body(kind: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param}}


def responses_for(*kinds: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting the error shape for these kinds."""
    out: dict[int | str, dict[str, Any]] = {}
    for kind in kinds:
        status = STATUS[kind]
        entry = out.setdefault(status, {"model": ErrorResponse, "description": ""})
        entry["description"] = ", ".join(filter(None, [entry["description"], kind]))
    return out


_FIELD = re.compile(r"(?!(?:str|int|float|bool|list|dict)$)[A-Za-z_][A-Za-z0-9_]*")
_BY_STATUS = {400: ("invalid_json", "the request body could not be parsed; send a JSON object"),
              401: ("unauthorized", "missing or wrong API key; send the header Authorization: Bearer YOUR_KEY"),
              404: ("not_found", "no such endpoint; see /docs for the endpoints"),
              405: ("method_not_allowed", "method not allowed on this endpoint; see /docs"),
              413: ("payload_too_large", "the request body is too large; send fewer or shorter inputs"),
              429: ("overloaded", "the server is at capacity; retry after the Retry-After seconds"),
              503: ("unavailable", "the server is not able to answer now; retry shortly"),
              504: ("timeout", "the request waited too long in the queue; retry later or lower the load")}


def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    from starlette.responses import JSONResponse

    headers = getattr(exc, "headers", None)
    if isinstance(exc.detail, dict) and "message" in exc.detail:
        detail = dict(exc.detail)
        headers = detail.pop("headers", None) or headers  # headers that crossed a process queue in the detail
        body = {"error": detail}
    elif exc.status_code >= 500 and exc.status_code not in _BY_STATUS:
        return _server_error(request, exc)
    else:
        kind, message = _BY_STATUS.get(exc.status_code, ("invalid_request", str(exc.detail)))
        body = error_body(kind, message)
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


def _validation_message(err: dict[str, Any]) -> tuple[str, str, str | None]:
    """(kind, message, param) for the first pydantic error of a request body."""
    # Keep field names and list indices; drop "body" and pydantic's union-member tags ("constrained-str").
    loc = [str(p) for p in err.get("loc", ()) if isinstance(p, int) or (p != "body" and _FIELD.fullmatch(str(p)))]
    param = ".".join(loc) or None
    kind, etype = "invalid_request", err.get("type", "")
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    if etype == "json_invalid":
        detail = (err.get("ctx") or {}).get("error", "")
        return "invalid_json", f"the request body is not valid JSON ({detail}); send a JSON object", None
    if param is None:  # no body, or not an object
        return ("invalid_json", "the request body must be a JSON object sent with Content-Type: application/json",
                None)
    if etype == "missing":
        return kind, f"{param} is required", param
    if etype == "extra_forbidden":
        return kind, f"unknown field {param!r}; see /docs for this endpoint's fields", param
    return kind, f"{param}: {msg}", param


def validation_response(errors: Sequence[Any]) -> JSONResponse:
    """The answer to a request body that failed validation (pydantic's ``errors()``): its first error."""
    from starlette.responses import JSONResponse

    errors = sorted(errors, key=lambda e: e.get("type") != "extra_forbidden")  # a typo explains the rest
    kind, message, param = _validation_message(dict(errors[0]) if errors else {})
    return JSONResponse(error_body(kind, message, param), status_code=STATUS[kind])


def _request_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return validation_response(exc.errors())


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))


def _server_error(request: Request, exc: BaseException) -> JSONResponse:
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse

    rid = request_id(request)
    if not isinstance(exc, HTTPException):  # HTTPExceptions were logged where they were raised
        log.error("request %s %s %s failed", rid, request.method, request.url.path,
                  exc_info=(type(exc), exc, exc.__traceback__))
    return JSONResponse(error_body("server_error", f"internal server error (request id {rid}); it has been logged"),
                        status_code=500)


def _serve_error(request: Request, exc: ServeError) -> JSONResponse:
    from starlette.responses import JSONResponse

    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers or None)


def error_response(request: Request, exc: Exception) -> JSONResponse:
    """What the app's handlers answer to ``exc``: its own status for a :class:`ServeError` or an
    ``HTTPException``, else a logged 500."""
    from starlette.exceptions import HTTPException

    if isinstance(exc, ServeError):
        return _serve_error(request, exc)
    return _http_error(request, exc) if isinstance(exc, HTTPException) else _server_error(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error, including FastAPI's own 404/405/422, in the one error shape."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app.add_exception_handler(ServeError, _serve_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _request_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _server_error)
