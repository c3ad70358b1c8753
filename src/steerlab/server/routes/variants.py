"""Native routes for saved variants (share by id; load back into the web UI or any client)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from steerlab.server.auth import Caller, require_caller
from steerlab.server.deps import get_lab
from steerlab.server.protocol import Text

router = APIRouter(prefix="/v1/variants", tags=["native"])


class SaveVariant(BaseModel):
    name: Text = Field(min_length=1, max_length=100)
    controller: dict


@router.post("")
def save_variant(body: SaveVariant, request: Request, caller: Caller = Depends(require_caller)) -> dict:
    """Save a controller (Ember JSON); the id in the answer loads it back. What is stored is the
    controller as parsed (unknown fields dropped, as the goodfire SDK writes it), only once it compiles
    against this server's SAE, and within the key's quota (``max_variants_per_key`` and
    ``max_variant_bytes_per_key``)."""
    from steerlab.steering.controller_json import Controller

    lab = get_lab(request)
    controller = Controller.from_json(body.controller).json()  # depth, size and text checked before parsing
    lab.editor_for_controller(controller)  # refuse what could not run, before storing it
    return request.app.state.variants.save(body.name, lab.model_name, controller, caller.key_id)


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
