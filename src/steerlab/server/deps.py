"""Shared route plumbing: the lab (503 until loaded), model-name checks, limit checks."""

from __future__ import annotations

from fastapi import Request

from steerlab.models.registry import canonical_name
from steerlab.server.errors import APIError


def get_lab(request: Request):
    lab = request.app.state.lab
    if lab is None:
        raise APIError(503, "no model is loaded on this server yet", headers={"Retry-After": "10"})
    return lab


def check_model(lab, name: str | None, field: str = "model") -> None:
    """Accept the lab's model by its canonical name or an alias; anything else is a 404 naming what exists."""
    if name is None:
        return
    if canonical_name(name) != lab.model_name:
        raise APIError(
            404,
            f"{field}: model {name!r} is not served here; available: {lab.model_name}",
            param=field,
            code="model_not_found",
        )


def check_limit(value: int, limit: int, field: str, what: str) -> None:
    if value > limit:
        raise APIError(
            400,
            f"{field}: {value} {what} is over this server's limit of {limit}",
            param=field,
            code=f"max_{what.replace(' ', '_')}",
        )
