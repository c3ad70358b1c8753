"""Looking inside the model: tokenize, next-token logits, per-token features (inspect), contrast,
logit attribution. Ember routes for the goodfire SDK, native ones for the web UI.

Every route that runs the model counts the tokens it will run before it starts: over the per-request
budget (``max_analysis_tokens``, ``max_attribution_tokens``) is a 413 naming the field; otherwise the
tokens are reserved from the key's tokens/min (429 + Retry-After when they do not fit) and stay
charged. The model is held one piece at a time (``lab.run_shared``: ``analysis_chunk_tokens`` per
forward), so chats keep decoding while a long analysis runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from steerlab.server.auth import Caller, require_caller
from steerlab.server.deps import check_limit, check_model, get_lab
from steerlab.server.protocol import Message, Text
from steerlab.server.rate_limits import admitted_tokens
from steerlab.server.wire import attribution_response
from steerlab.steering.conversation import conversation_ids

router = APIRouter()
EMBER = "/api/inference/v1"


class ConversationBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    messages: list[Message] = Field(min_length=1)
    model: Text | None = None
    controller: dict | None = None


def _conversation(request: Request, body: ConversationBody):
    lab = get_lab(request)
    check_model(lab, body.model)
    settings = request.app.state.settings
    check_limit(len(body.messages), settings.max_messages, "messages", "messages")
    messages = [m.model_dump() for m in body.messages]
    check_limit(len(lab.prompt_ids(messages)), settings.max_prompt_tokens, "messages", "prompt tokens")
    return lab, messages


@contextmanager
def _admitted(request: Request, caller: Caller, counts: dict[str, int], setting: str) -> Iterator[None]:
    """Admit an analysis of ``counts`` tokens within the per-request budget ``setting``, reserved from the key's
    tokens/min (``rate_limits.admitted_tokens``)."""
    state = request.app.state
    advice = "send a shorter conversation or split the request"
    with admitted_tokens(state.rate_limiter, state.settings, caller.key_id, counts, setting, "this analysis", advice):
        yield


def _conversation_tokens(lab, messages: list[dict], field: str = "messages") -> int:
    return len(conversation_ids(lab.lm.tokenizer, messages, field))


class TokenizeBody(ConversationBody):
    pass


@router.post(f"{EMBER}/chat/tokenize", tags=["ember"])
def ember_tokenize(body: TokenizeBody, request: Request, _caller: Caller = Depends(require_caller)) -> dict:
    lab, messages = _conversation(request, body)
    return {"tokens": [{"value": t} for t in lab.tokenize(messages)]}


class LogitsBody(ConversationBody):
    top_k: int | None = Field(10, ge=1, le=1000)
    filter_vocabulary: list[Text] | None = Field(None, max_length=1000)


@router.post(f"{EMBER}/chat-attribution/compute-logits", tags=["ember"])
def ember_logits(body: LogitsBody, request: Request, caller: Caller = Depends(require_caller)) -> dict:
    lab, messages = _conversation(request, body)
    with _admitted(request, caller, {"messages": len(lab.prompt_ids(messages))}, "max_analysis_tokens"):
        logits = lab.logits(messages, body.controller, top_k=body.top_k, filter_vocabulary=body.filter_vocabulary)
    return {"logits": logits}


INSPECT_RANK_BY = "^(relevance|specificity|frequency)$"


SDK_TOP = 10
"""compute-features' ``top_features`` (under relevance, the features its tokens list) unless ``top_k`` says otherwise:
/v1/inspect's default, so the SDK's ``top(10)`` holds inspect's top 10."""


class FeaturesBody(ConversationBody):
    aggregate_by: str = Field("count", pattern="^(count|frequency|mean|max|sum)$")
    include_feature_indexes: list[int] | None = Field(None, max_length=1000)
    rank_by: str | None = Field(
        None,
        pattern=INSPECT_RANK_BY,
        description="relevance (default with a feature database and topic vectors): each token lists its notable "
        "firings of the conversation's top_k features by relevance, so the SDK's top(k) picks among those; "
        "specificity (default with a database alone): each token lists only its specific firings; frequency: "
        "every activation, as before",
    )
    top_k: int = Field(
        SDK_TOP,
        ge=1,
        le=100,
        description="how many of the conversation's top features top_features holds; under relevance, the only "
        "features the tokens list",
    )
    include_template: bool = Field(False, description="score the chat template's tokens too")


def _inspection(request: Request, caller: Caller, lab, messages, controller, include_template: bool = False):
    """``Lab.inspect`` within the caller's token budget, the model held a chunk at a time (chats decode between)."""
    with _admitted(request, caller, {"messages": _conversation_tokens(lab, messages)}, "max_analysis_tokens"):
        return lab.inspect(messages, controller, include_template=include_template)


@router.post(f"{EMBER}/chat-attribution/compute-features", tags=["ember"])
def ember_features(body: FeaturesBody, request: Request, caller: Caller = Depends(require_caller)) -> dict:
    """Every token with its features (``include_feature_indexes`` restricts), ranked as ``/v1/inspect`` ranks
    (``ranked_by``). The SDK computes ``top(k)`` itself by counting the tokens each feature is listed on, so the
    lists carry the ranking: under ``relevance`` (the default with a feature database and topic vectors) each
    content token lists its notable firings of the conversation's ``top_k`` features by relevance, in that order,
    so the SDK's ``top(k)`` picks among them (``k >= top_k``: exactly them); under ``specificity`` each content
    token lists only its specific firings, most specific first; template tokens list none. ``frequency``: every
    activation, strongest first. Features named in ``include_feature_indexes`` are listed wherever they fire
    (every token, as before; ``template`` marks the chat template's tokens). ``top_features``: the conversation's
    top features under ``ranked_by`` (``aggregate_by``; among ``include_feature_indexes`` when given), which the
    SDK ignores and steerlab's HTTP client ranks by."""
    lab, messages = _conversation(request, body)
    found = _inspection(request, caller, lab, messages, body.controller, body.include_template)
    rank_by = found.ranking(body.rank_by)
    include = body.include_feature_indexes
    top = found.top(body.top_k if include is None else len(include), body.aggregate_by, include, rank_by)
    if include is None and rank_by == "relevance":
        tokens = found.per_token_ranked(top)
    else:
        specific = rank_by == "specificity" and include is None
        tokens = found.per_token(features=include, specific_only=specific, scored_only=specific)

    def scores(a) -> dict:
        return {
            **({} if a.specificity is None else {"specificity": a.specificity}),
            **({} if a.relevance is None else {"relevance": a.relevance}),
        }

    return {
        "tokens": [
            {
                "token": t.token,
                "attributions": [
                    {
                        "id": lab.feature_id(a.index),
                        "index_in_sae": a.index,
                        "activation_strength": a.act_units,
                        **scores(a),
                    }
                    for a in t.features
                ],
                "template": t.template,
            }
            for t in tokens
        ],
        "ranked_by": rank_by,
        "top_features": [
            {"id": lab.feature_id(a.index), "index_in_sae": a.index, "activation": a.act_units, **scores(a)}
            for a in top
        ],
    }


class InspectBody(ConversationBody):
    top_k: int = Field(10, ge=1, le=100)
    aggregate_by: str = Field("count", pattern="^(count|frequency|mean|max|sum)$")
    rank_by: str | None = Field(
        None,
        pattern=INSPECT_RANK_BY,
        description="relevance (default with a database and topic vectors: what the text is about), specificity "
        "(how unusual each activation is for its feature) or frequency",
    )
    include_template: bool = Field(False, description="score the chat template's tokens too")


@router.post("/v1/inspect", tags=["native"])
def native_inspect(body: InspectBody, request: Request, caller: Caller = Depends(require_caller)) -> dict:
    """Token heatmap data: each token's top features and the conversation's top features (units: 1.0 = strong)."""
    from steerlab.analysis.inspect import RELEVANCE_DEFINITION
    from steerlab.features.specificity import DEFINITION

    lab, messages = _conversation(request, body)
    found = _inspection(request, caller, lab, messages, body.controller, body.include_template)
    top = found.top(body.top_k, by=body.aggregate_by, rank_by=body.rank_by)
    ranked_by = top[0].ranked_by if top else found.ranking(body.rank_by)
    statistic = {"relevance": RELEVANCE_DEFINITION, "specificity": DEFINITION}.get(
        ranked_by, "aggregate activation (aggregate_by)"
    )

    def feature(a) -> dict:
        return {
            "index": a.index,
            "label": a.label,
            "activation": a.act_units,
            "count": a.count,
            "specificity": a.specificity,
            "relevance": a.relevance,
        }

    return {
        "tokens": [
            {"token": t.token, "template": t.template, "top": [feature(a) for a in t.features]}
            for t in found.per_token(k=body.top_k)
        ],
        "top_features": [feature(a) for a in top],
        "ranked_by": ranked_by,
        "statistic": statistic,
        "note": found.note if body.rank_by is None else None,
        "events": found.event_names,
    }


class ContrastBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    dataset_1: list[list[Message]] = Field(min_length=1)
    dataset_2: list[list[Message]] = Field(min_length=1)
    k_to_add: int = Field(5, ge=0, le=100)
    k_to_remove: int = Field(5, ge=0, le=100)
    top_k: int | None = Field(None, ge=0, le=100)
    model: Text | None = None
    rank_by: str | None = Field(
        None,
        pattern=INSPECT_RANK_BY,
        description="relevance (default with a database and topic vectors), specificity or frequency",
    )
    include_template: bool = Field(False, description="score the chat template's tokens too")


def _contrast(request: Request, body: ContrastBody, caller: Caller):
    lab = get_lab(request)
    check_model(lab, body.model)
    limit = request.app.state.settings.max_dataset_conversations
    check_limit(len(body.dataset_1), limit, "dataset_1", "conversations")
    check_limit(len(body.dataset_2), limit, "dataset_2", "conversations")
    d1 = [[m.model_dump() for m in conv] for conv in body.dataset_1]
    d2 = [[m.model_dump() for m in conv] for conv in body.dataset_2]
    k1 = body.top_k if body.top_k is not None else body.k_to_add
    k2 = body.top_k if body.top_k is not None else body.k_to_remove
    counts = {"dataset_1": 0, "dataset_2": 0}
    for side, dataset in (("dataset_1", d1), ("dataset_2", d2)):
        counts[side] = sum(_conversation_tokens(lab, conv, f"{side}[{i}]") for i, conv in enumerate(dataset))
    with _admitted(request, caller, counts, "max_analysis_tokens"):
        result = lab.contrast(
            d1, d2, k_to_add=k1, k_to_remove=k2, rank_by=body.rank_by, include_template=body.include_template
        )
    return lab, result


@router.post(f"{EMBER}/chat-attribution/contrast", tags=["ember"])
def ember_contrast(body: ContrastBody, request: Request, caller: Caller = Depends(require_caller)) -> dict:
    lab, result = _contrast(request, body, caller)
    return {
        "dataset_1_features": [lab.wire_feature(f.index) for f in result.dataset_1_features],
        "dataset_2_features": [lab.wire_feature(f.index) for f in result.dataset_2_features],
    }


@router.post("/v1/contrast", tags=["native"])
def native_contrast(body: ContrastBody, request: Request, caller: Caller = Depends(require_caller)) -> dict:
    """Features that separate the two datasets; ``score`` is the effect (positive favours 1): the difference
    in mean pooled specificity with its 90% interval (``score_low``/``score_high``) when ``ranked_by`` is
    specificity or relevance, the rank-biserial correlation when it is frequency; ``support``: the share of the
    favoured side's conversations the feature fires in; ``relevance``: the favoured side's topical relevance to
    the feature (relevance ranking); ``note`` says when the data is thin."""
    _, result = _contrast(request, body, caller)
    out: dict = {
        side: [
            {
                "index": f.index,
                "label": f.label,
                "score": f.effect,
                "score_low": f.effect_low,
                "score_high": f.effect_high,
                "rank_biserial": f.rank_biserial,
                "support": f.support,
                "relevance": f.relevance,
                "mean_1": f.mean_units_1,
                "mean_2": f.mean_units_2,
            }
            for f in features
        ]
        for side, features in (
            ("dataset_1_features", result.dataset_1_features),
            ("dataset_2_features", result.dataset_2_features),
        )
    }
    return {**out, "ranked_by": result.ranked_by, "note": result.note}


class AttributionBody(ConversationBody):
    startIndex: int  # noqa: N815 (wire name)
    endIndex: int | None = None  # noqa: N815
    top_k: int = Field(10, ge=1, le=100)


@router.post(f"{EMBER}/attributions/compute-logit-attribution", tags=["ember"])
def ember_attribution(body: AttributionBody, request: Request, caller: Caller = Depends(require_caller)) -> dict:
    """Which features drive the logit of the token at ``startIndex`` (gradient x activation, error kept)."""
    from steerlab.analysis.attribution import attribute

    lab, messages = _conversation(request, body)
    with _admitted(request, caller, {"messages": _conversation_tokens(lab, messages)}, "max_attribution_tokens"):
        result = lab.run_shared(attribute, lab.lm, lab.sae, messages, body.startIndex, labels=lab.labels)
    return attribution_response(result, lab.sae_id, k=body.top_k)
