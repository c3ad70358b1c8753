"""Edits from a plain-language goal: AutoSteer, AutoConditional and the contrastive datasets they
start from. Ember routes for the goodfire SDK, ``POST /v1/autosteer`` for the web UI.

A search generates and scores dozens of short replies (tens of seconds on 2 CPU cores), so it runs
beside the engine rather than holding the model (hooks act only on their own thread's forwards),
and at most ``autosteer_concurrency`` run at once: one more gets 503 + Retry-After instead of
waiting past the SDK's 60 s timeout.

Like every route that runs the model, a job is charged to the key's tokens/min: its tokens are estimated
from the search's configuration (``AutoSteerConfig.token_estimate``: stimulus, then trials x prompts x
(prompt + reply tokens)), checked against the per-request budget ``max_autosteer_tokens`` (413), reserved
before it starts (429 + Retry-After when the key's quota cannot cover them) and settled with the trials
that actually ran.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from steerlab.errors import SteerlabError
from steerlab.server.auth import Caller, require_caller
from steerlab.server.deps import check_model, get_lab
from steerlab.server.errors import APIError
from steerlab.server.protocol import Text
from steerlab.server.rate_limits import OverBudget
from steerlab.server.wire import auto_conditional_response, auto_edits_response, contrastive_dataset_response

router = APIRouter()
EMBER = "/api/inference/v1"
MAX_SPECIFICATION_CHARS = 500
T = TypeVar("T")


class SpecificationBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    specification: Text = Field(
        min_length=1,
        max_length=MAX_SPECIFICATION_CHARS,
        description="What the model should do, in plain language, e.g. 'talk like a pirate'.",
    )
    model: Text | None = None


class GoalBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    goal: Text = Field(
        min_length=1,
        max_length=MAX_SPECIFICATION_CHARS,
        description="What the model should do, in plain language, e.g. 'talk like a pirate'.",
    )
    model: Text | None = None


def _search_job(
    request: Request,
    caller: Caller,
    text: str,
    field: str,
    run: Callable[..., T],
    tokens: int,
    used: Callable[[T], int] | None = None,
) -> T:
    """Run one AutoSteer-family job for ``text`` with the lab, charged ``tokens`` (settled to ``used(result)``
    when given); 413 over the per-request budget, 429 when the key's tokens/min cannot cover it, 503 while
    the slots are full."""
    if not text.strip():
        raise APIError(400, f"{field}: must say what the model should do, e.g. 'talk like a pirate'", param=field)
    lab = get_lab(request)
    limit = request.app.state.settings.max_autosteer_tokens
    if tokens > limit:
        raise OverBudget(
            f"this search runs about {tokens} tokens through the model, over this server's budget of {limit} "
            "per request (STEERLAB_MAX_AUTOSTEER_TOKENS); lower STEERLAB_AUTOSTEER_EFFORT or raise the budget",
            field=field,
            allowed=f"at most {limit} tokens",
        )
    limiter = request.app.state.rate_limiter
    reservation = limiter.reserve_tokens(caller.key_id, tokens, "this AutoSteer search")
    gate = request.app.state.autosteer_gate
    if not gate.acquire(blocking=False):
        limiter.settle(reservation, 0)
        raise APIError(
            503,
            "AutoSteer is busy with other requests (each takes tens of seconds here); retry soon",
            code="autosteer_busy",
            headers={"Retry-After": "30"},
        )
    try:
        result = run(lab, text.strip())
    except SteerlabError:  # refused for its input: nothing ran worth charging
        limiter.settle(reservation, 0)
        raise
    finally:
        gate.release()
    if used is not None:
        limiter.settle(reservation, used(result))
    return result


def _config(request: Request):
    from steerlab.analysis.autosteer import AutoSteerConfig

    return AutoSteerConfig.quick() if request.app.state.settings.autosteer_effort == "quick" else AutoSteerConfig()


def _auto_steer(request: Request, caller: Caller, text: str, field: str):
    """An AutoSteer search charged its estimate, settled with the trials it ran (plus the unsteered one)."""
    from steerlab.analysis.autosteer import auto_steer

    config = _config(request)

    def run(lab, goal: str):
        return auto_steer(lab.lm, lab.sae, goal, config=config, search=lab.search, labels=lab.labels, sae_id=lab.sae_id)

    def used(result) -> int:
        return config.token_estimate(trials=len(result.trials) + 1)

    return _search_job(request, caller, text, field, run, config.token_estimate(), used)


@router.post(f"{EMBER}/features/auto-edits", tags=["ember"])
def ember_auto_edits(body: SpecificationBody, request: Request, caller: Caller = Depends(require_caller)) -> dict:
    """``{"edits": [[feature, strength], ...]}``: nudges found for the specification (may be empty)."""
    check_model(get_lab(request), body.model)
    return auto_edits_response(_auto_steer(request, caller, body.specification, "specification"))


@router.post(f"{EMBER}/features/auto-conditional", tags=["ember"])
def ember_auto_conditional(body: SpecificationBody, request: Request, caller: Caller = Depends(require_caller)) -> dict:
    """``{"conditional": ConditionalGroup}``: a trigger feature and threshold for 'when X' specifications."""
    from steerlab.analysis.autosteer_conditional import auto_conditional

    check_model(get_lab(request), body.model)

    config = _config(request)

    def run(lab, spec):
        return auto_conditional(
            lab.lm, lab.sae, spec, config=config, search=lab.search, labels=lab.labels, sae_id=lab.sae_id
        )

    # an AutoSteer search plus the trigger's scan of the stimulus: charged the search's estimate, kept
    tokens = config.token_estimate()
    return auto_conditional_response(_search_job(request, caller, body.specification, "specification", run, tokens))


@router.post(f"{EMBER}/attributions/generate-contrastive-dataset", tags=["ember"])
def ember_contrastive_dataset(
    body: SpecificationBody, request: Request, caller: Caller = Depends(require_caller)
) -> list:
    """``[dataset_1, dataset_2]``: replies written with and without the specification as an instruction."""
    from steerlab.analysis.stimulus import generate_contrastive_stimulus, stimulus_token_estimate

    check_model(get_lab(request), body.model)

    def run(lab, spec):
        return generate_contrastive_stimulus(lab.lm, spec, sae=lab.sae)  # its defaults: 6 replies x 32 tokens

    tokens = stimulus_token_estimate()
    return contrastive_dataset_response(_search_job(request, caller, body.specification, "specification", run, tokens))


@router.post("/v1/autosteer", tags=["native"])
def native_autosteer(body: GoalBody, request: Request, caller: Caller = Depends(require_caller)) -> dict:
    """The chosen edits with labels and scores, and the controller that applies them."""
    check_model(get_lab(request), body.model)
    result = _auto_steer(request, caller, body.goal, "goal")
    best, base = result.best, result.unsteered
    return {
        "goal": result.goal,
        "edits": [
            {"index": f.index, "uuid": f.uuid, "label": f.label, "value": float(s), "mode": "nudge"}
            for f, s in result.edits
        ],
        "controller": result.controller.json(),
        "score": {
            "steered": best.score,
            "unsteered": base.score,
            "concept": best.concept,
            "relevance": best.relevance,
            "fluency": best.fluency,
        },
        "example_replies": best.replies[:3],
        "tried": len(result.trials),
    }
