"""Native routes for saved variants (share by id; load back into the web UI or any client)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from steerlab.server.auth import Caller, require_caller
from steerlab.server.deps import get_lab

router = APIRouter(prefix="/v1/variants", tags=["native"])


class SaveVariant(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    controller: dict


@router.post("")
def save_variant(body: SaveVariant, request: Request, caller: Caller = Depends(require_caller)) -> dict:
    """Save a controller (Ember JSON); the id in the answer loads it back."""
    lab = get_lab(request)
    lab.editor_for_controller(body.controller)  # refuse what could not run, before storing it
    return request.app.state.variants.save(body.name, lab.model_name, body.controller, caller.key_id)


@router.get("")
def list_variants(request: Request, caller: Caller = Depends(require_caller)) -> dict:
    return {"variants": request.app.state.variants.list(caller.key_id)}


@router.get("/{variant_id}")
def get_variant(variant_id: str, request: Request, _caller: Caller = Depends(require_caller)) -> dict:
    return request.app.state.variants.get(variant_id)


@router.delete("/{variant_id}")
def delete_variant(variant_id: str, request: Request, caller: Caller = Depends(require_caller)) -> dict:
    request.app.state.variants.delete(variant_id, caller.key_id)
    return {"deleted": variant_id}
