"""Native routes for watching fine-tuning runs: their dials (watched features, losses, the SAE's fit) as
``steerlab finetune`` writes them to ``metrics.jsonl``. Read-only, and only inside the server's
fine-tuning folder (``STEERLAB_FINETUNE_DIR``, default ``STEERLAB_HOME/finetune``): see ``training/runs.py``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from steerlab.server.auth import Caller, require_caller
from steerlab.training.runs import list_runs, read_run

router = APIRouter(prefix="/v1/finetune", tags=["native"])


@router.get("/runs")
def finetune_runs(request: Request, _caller: Caller = Depends(require_caller)) -> dict:
    """The runs under the server's fine-tuning folder, newest first: last step, planned steps, knobs,
    whether finished."""
    return {"runs": list_runs(request.app.state.settings.resolved_finetune_dir())}


@router.get("/runs/{name}")
def finetune_run(name: str, request: Request, _caller: Caller = Depends(require_caller)) -> dict:
    """One run's curves: train loss / learning rate / tokens/s per step, and per eval the eval loss, the
    watched features' mean activation on the probe set and the original SAE's FVU and CE-loss score."""
    return read_run(request.app.state.settings.resolved_finetune_dir(), name)
