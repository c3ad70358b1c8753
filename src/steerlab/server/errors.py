"""One error shape for every route: OpenAI's ``{"error": {"message", "type", "param", "code"}}``.

The goodfire SDK turns the status code into its exception and shows the body text, and the openai
client parses this exact shape, so both report the server's message as written. FastAPI's 422 for
invalid bodies becomes 400 (the code both clients know) with the offending field named.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from steerlab.server.rate_limits import RateLimited

log = logging.getLogger("steerlab.server")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


class APIError(Exception):
    """Raise from a route to answer ``status`` with a JSON error naming ``param``."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers


def error_response(
    status: int, message: str, param: str | None = None, code: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {
        "error": {
            "message": message,
            "type": _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
            "param": param,
            "code": code,
        }
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _field(loc: tuple) -> str:
    return ".".join(str(p) for p in loc if p not in ("body", "query", "path"))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_request: Request, err: APIError):
        return error_response(err.status, err.message, err.param, err.code, err.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, err: RequestValidationError):
        first = err.errors()[0] if err.errors() else {"loc": (), "msg": "invalid request"}
        field = _field(tuple(first.get("loc", ()))) or None
        message = f"{field}: {first.get('msg')}" if field else str(first.get("msg"))
        return error_response(400, message, field, "invalid_value")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, err: StarletteHTTPException):
        return error_response(err.status_code, str(err.detail), headers=getattr(err, "headers", None))

    @app.exception_handler(RateLimited)
    async def _limited(_request: Request, err: RateLimited):
        return error_response(
            429, str(err), code=f"{err.what}_per_minute", headers={"Retry-After": str(err.retry_after)}
        )

    @app.exception_handler(ValueError)
    async def _value(_request: Request, err: ValueError):
        # Our domain layer raises ValueError subclasses with messages that name the field.
        return error_response(400, str(err), getattr(err, "field", None), "invalid_value")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal server error (logged on the server)")
