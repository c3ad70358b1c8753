"""One error shape for every route: OpenAI's ``{"error": {"message", "type", "param", "code"}}``.

The goodfire SDK turns the status code into its exception and shows the body text, and the openai
client parses this exact shape, so both report the server's message as written. Only a
``SteerlabError`` (bad input, not found, busy...) answers 4xx/503, with its status and ``param`` =
its field; FastAPI's 422 for invalid bodies (and pydantic's errors from route code) becomes 400 (the
code both clients know) with the offending field named. Anything else is a bug: 500 with the
request id (``error.request_id`` and the ``X-Request-ID`` header) and the traceback logged under it.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from steerlab.errors import SteerlabError

log = logging.getLogger("steerlab.server")

REQUEST_ID_HEADER = "X-Request-ID"
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


class APIError(SteerlabError):
    """Raise from a route to answer ``status`` with a JSON error naming ``param``; ``message`` is sent as written."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message, param)
        self.status, self.code, self.headers = status, code, headers

    def __str__(self) -> str:  # route messages already name their field
        return self.message


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_of(request: Request) -> str:
    """The id the observability middleware gave this request (a fresh one for an app without it)."""
    return getattr(request.state, "request_id", None) or new_request_id()


def error_response(
    status: int,
    message: str,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    request_id: str | None = None,
) -> JSONResponse:
    error = {
        "message": message,
        "type": _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
        "param": param,
        "code": code,
    }
    if request_id is not None:
        error["request_id"] = request_id
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def _field(loc: tuple) -> str:
    return ".".join(str(p) for p in loc if p not in ("body", "query", "path"))


def _invalid(errors: list) -> JSONResponse:
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    field = _field(tuple(first.get("loc", ()))) or None
    message = f"{field}: {first.get('msg')}" if field else str(first.get("msg"))
    return error_response(400, message, field, "invalid_value")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SteerlabError)
    async def _ours(_request: Request, err: SteerlabError):
        headers = dict(getattr(err, "headers", None) or {})
        if err.retry_after is not None:
            headers.setdefault("Retry-After", str(err.retry_after))
        return error_response(err.status, str(err), err.field, err.code, headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, err: RequestValidationError):
        return _invalid(err.errors())

    @app.exception_handler(ValidationError)
    async def _pydantic(_request: Request, err: ValidationError):
        return _invalid(err.errors())

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, err: StarletteHTTPException):
        return error_response(err.status_code, str(err.detail), headers=getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception):
        request_id = request_id_of(request)
        log.error("request %s: unhandled error on %s %s", request_id, request.method, request.url.path, exc_info=err)
        return error_response(
            500,
            f"internal server error; quote request id {request_id} when reporting it",
            code="internal_error",
            headers={REQUEST_ID_HEADER: request_id},
            request_id=request_id,
        )
