"""Chat completions, one handler for both dialects: Ember (``/api/inference/v1/chat/completions``,
what the goodfire SDK calls) and OpenAI (``/v1/chat/completions``, steering via ``extra_body``).

Both get OpenAI's body and response; Ember's extra fields (``gf_token_index`` on stream chunks,
``gf_event_names``) are always present — the openai client ignores them.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from steerlab.server.auth import Caller, require_caller
from steerlab.server.deps import check_limit, check_model, get_lab
from steerlab.server.errors import APIError
from steerlab.server.protocol import ChatRequest

router = APIRouter()
FINISH = {"stop": "stop", "length": "length", "abort": "stop", "cancelled": "stop", "error": "error"}


def _start(request: Request, body: ChatRequest, caller: Caller, loop: asyncio.AbstractEventLoop):
    """Check, tokenize, compile the controller and submit: CPU work (a 2 MB body tokenizes for over a
    second), so ``_complete`` runs it in the worker pool, never on the event loop."""
    settings, lab = request.app.state.settings, get_lab(request)
    organism = request.app.state.organism  # a planted controller (agents/organism.py), or None
    if organism is None:
        check_model(lab, body.model)
    elif not organism.serves(body.model):
        raise APIError(
            404,
            f"model: model {body.model!r} is not served here; available: {organism.model_id}",
            param="model",
            code="model_not_found",
        )
    check_limit(len(body.messages), settings.max_messages, "messages", "messages")
    params = body.sampling(min(256, settings.max_completion_tokens))
    check_limit(params.max_new_tokens, settings.max_completion_tokens, "max_completion_tokens", "tokens")
    messages = [m.model_dump() for m in body.messages]
    ids = lab.prompt_ids(messages)
    check_limit(len(ids), settings.max_prompt_tokens, "messages", "prompt tokens")
    editor = request.app.state.variants.editor_for(lab, body.controller, body.variant_id, caller)
    if organism is not None:
        editor = organism.editor(editor)
    lab.read_prompt(editor, messages, ids)  # guards read the latest user turn, complete (STEERLAB_GUARD_READS)
    # The most this request can use is held from the key's tokens/min now (429 when it does not fit), so
    # concurrent requests cannot overspend the quota; _charge refunds what it did not use.
    limiter = request.app.state.rate_limiter
    reservation = limiter.reserve_tokens(caller.key_id, len(ids) + params.max_new_tokens, "this chat")
    try:
        stream = lab.engine.submit(ids, params, editor, loop=loop)  # full: EngineBusy, a 503
    except BaseException:
        limiter.settle(reservation, 0)
        raise
    request.state.token_reservation = reservation
    return lab, stream


def _charge(request: Request, caller: Caller, stream) -> None:
    used = stream.prompt_tokens + stream.completion_tokens
    reservation = getattr(request.state, "token_reservation", None)
    if reservation is not None:
        request.app.state.rate_limiter.settle(reservation, used)
    else:
        request.app.state.rate_limiter.charge_tokens(caller.key_id, used)
    request.app.state.metrics.tokens.inc(stream.completion_tokens)


async def _complete(request: Request, body: ChatRequest, caller: Caller):
    lab, stream = await run_in_threadpool(_start, request, body, caller, asyncio.get_running_loop())
    model = served_model(request, lab)
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if body.stream:
        return StreamingResponse(
            _sse(request, caller, model, stream, completion_id, created),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    parts, events, reason, error = [], [], None, None
    watcher = asyncio.create_task(_cancel_on_disconnect(request, stream))
    try:
        async for event in stream:
            parts.append(event.text)
            events += event.events
            reason, error = event.finish_reason, event.error or error
    finally:
        watcher.cancel()
        _charge(request, caller, stream)
    if error:  # the engine logged the failed step's traceback; this is a 500 with a request id
        raise getattr(stream, "failure", None) or RuntimeError(error)  # a lost replica: 503 (cluster/replicas.py)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": "steerlab",
        "gf_event_names": events or None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(parts)},
                "finish_reason": FINISH.get(reason, reason),
            }
        ],
        "usage": {
            "prompt_tokens": stream.prompt_tokens,
            "completion_tokens": stream.completion_tokens,
            "total_tokens": stream.prompt_tokens + stream.completion_tokens,
        },
    }


async def _cancel_on_disconnect(request: Request, stream, every_s: float = 0.25) -> None:
    """Cancel ``stream`` once the client hangs up (a dropped non-streaming request would otherwise decode
    to its end for nobody; a dropped stream is cancelled by ``_sse``'s ``finally``). The engine frees
    the row at its next step and ends the stream with ``cancelled``."""
    while not await request.is_disconnected():
        await asyncio.sleep(every_s)
    stream.cancel()


async def _sse(request: Request, caller: Caller, model: str, stream, completion_id: str, created: int):
    try:
        async for event in stream:
            if event.error:
                yield f"data: {json.dumps({'error': {'message': event.error, 'type': 'server_error'}})}\n\n"
                break
            chunk = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "steerlab",
                "gf_event_names": event.events or None,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": event.text},
                        "gf_token_index": event.index,
                        "finish_reason": FINISH.get(event.finish_reason, event.finish_reason),
                    }
                ],
            }
            yield f"data: {json.dumps(chunk)}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        stream.cancel()  # no-op when finished; frees the row when the client went away
        _charge(request, caller, stream)


@router.post("/api/inference/v1/chat/completions", tags=["ember"])
async def ember_chat(body: ChatRequest, request: Request, caller: Caller = Depends(require_caller)):
    """Ember chat completion (the goodfire SDK's ``client.chat.completions.create``)."""
    return await _complete(request, body, caller)


@router.post("/v1/chat/completions", tags=["openai"])
async def openai_chat(body: ChatRequest, request: Request, caller: Caller = Depends(require_caller)):
    """OpenAI chat completion; steer with ``extra_body={"controller": {...}}`` or ``{"variant_id": ...}``."""
    return await _complete(request, body, caller)


@router.get("/v1/models", tags=["openai"])
async def list_models(request: Request, _caller: Caller = Depends(require_caller)):
    model = served_model(request, get_lab(request))
    return {"object": "list", "data": [{"id": model, "object": "model", "created": 0, "owned_by": "steerlab"}]}


def served_model(request: Request, lab) -> str:
    """The model id chat answers as: ``organism`` when the server plants a controller, else the lab's model."""
    organism = request.app.state.organism
    return organism.model_id if organism is not None else lab.model_name
