"""Who is calling: ``Authorization: Bearer <key>`` (what the goodfire and openai clients send)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from steerlab.server.errors import APIError


@dataclass(frozen=True)
class Caller:
    key_id: str
    """Identity for rate limits and ownership; ``open:<client ip>`` in open mode."""
    name: str


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


async def require_caller(request: Request) -> Caller:
    """FastAPI dependency: the verified caller, after counting the request against its rate limit."""
    state = request.app.state
    if state.settings.open_mode:
        caller = Caller(f"open:{request.client.host if request.client else 'local'}", "open mode")
    else:
        key = _bearer(request)
        if key is None:
            raise APIError(
                401,
                "missing API key: send 'Authorization: Bearer <key>' (create one with 'steerlab keys create NAME')",
                code="missing_api_key",
            )
        info = state.keys.verify(key)
        if info is None:
            raise APIError(401, "invalid or revoked API key", code="invalid_api_key")
        caller = Caller(info.key_id, info.name)
    state.rate_limiter.check_request(caller.key_id)
    request.state.caller = caller
    return caller
