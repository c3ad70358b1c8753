"""Feature lookup and search: Ember's routes (goodfire SDK ``client.features.*``) and native ones
(the web UI's feature pages). All read the SAE's feature database through ``lab.search``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from steerlab.errors import BusyError
from steerlab.features.search import MAX_EXAMPLE_CHARS
from steerlab.server.auth import Caller, require_caller
from steerlab.server.deps import check_model, get_lab
from steerlab.server.errors import APIError
from steerlab.server.protocol import Text

router = APIRouter()
EMBER = "/api/inference/v1"
MAX_IDS = 1000
BY_PATTERN = "^(label|contexts|hybrid)$"


def _search(lab):
    if lab.search is None:
        raise APIError(
            404,
            "no feature database is loaded for this SAE; build one with 'steerlab features build' "
            "and start the server with it",
            code="no_feature_database",
        )
    return lab.search


def _index(lab, index: int, field: str = "index") -> int:
    if not 0 <= index < lab.d_sae:
        raise APIError(
            404, f"{field}: feature {index} does not exist; indices run 0..{lab.d_sae - 1}", field, "feature_not_found"
        )
    return index


# ----------------------------------------------------------------------------------- Ember
@router.get(f"{EMBER}/features/search", tags=["ember"])
def ember_search(
    request: Request,
    query: str = Query(..., max_length=512),
    page: int = Query(1, ge=1, le=100),
    perPage: int = Query(10, ge=1, le=100),
    model: Text | None = None,  # noqa: N803 (wire name)
    by: str | None = Query(None, pattern=BY_PATTERN),
    _caller: Caller = Depends(require_caller),
) -> dict:
    """Ember's search; ``by`` (an extension) picks the evidence: label, contexts or hybrid. Each feature carries
    ``reason`` (and ``snippet`` for context evidence) besides Ember's fields."""
    lab = get_lab(request)
    check_model(lab, model)
    _contexts_ready(_search(lab), by)
    hits = _search(lab).search(query, top_k=page * perPage, by=by)[(page - 1) * perPage :]
    return {"features": [{**lab.wire_feature(h.index), "relevance": h.score, **_why(h)} for h in hits]}


def _contexts_ready(search, by: str | None) -> None:
    """Context evidence asked for by name needs each feature's context vectors: loaded on the spot when they are at
    hand (stored or cached), else computed once a machine (minutes on a CPU) in the background while such requests
    get a 503 to retry. Unsaid (None), a search rests on the contexts only when they are at hand
    (``FeatureSearch.default_by``)."""
    if by not in (None, "label") and not search.contexts_at_hand() and not search.contexts_ready():
        done, total = search.contexts_progress
        progress = f" ({done} of {total} windows embedded)" if total else ""
        raise BusyError(
            "the features' context vectors are being computed, once for this database"
            f"{progress}; retry in a minute, or search with by=label meanwhile",
            retry_after=30,
            field="by",
        )


def _why(hit) -> dict:
    return {"reason": hit.reason, "snippet": hit.snippet}


class RerankBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    query: Text = Field(min_length=1, max_length=512)
    top_k: int = Field(10, ge=1, le=MAX_IDS)
    model: Text | None = None
    feature_ids: list[Text] = Field(min_length=1, max_length=MAX_IDS)


@router.post(f"{EMBER}/features/rerank", tags=["ember"])
def ember_rerank(body: RerankBody, request: Request, _caller: Caller = Depends(require_caller)) -> dict:
    lab = get_lab(request)
    check_model(lab, body.model)
    hits = _search(lab).rerank([lab.index_of(f) for f in body.feature_ids], body.query)[: body.top_k]
    return {"features": [{**lab.wire_feature(h.index), "relevance": h.score} for h in hits]}


class LookupBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    indices: list[int] = Field(min_length=1, max_length=MAX_IDS)
    model: Text | None = None


@router.post(f"{EMBER}/features/lookup", tags=["ember"])
def ember_lookup(body: LookupBody, request: Request, _caller: Caller = Depends(require_caller)) -> dict:
    lab = get_lab(request)
    check_model(lab, body.model)
    out = []
    for i, index in enumerate(body.indices):
        feature = lab.wire_feature(_index(lab, index, f"indices[{i}]"))
        out.append({"uuid": feature["id"], "label": feature["label"], "index_in_sae": index})
    return {"features": out}


@router.get(f"{EMBER}/features/", tags=["ember"])
def ember_list(
    request: Request, feature_id: list[str] = Query(..., max_length=MAX_IDS), _caller: Caller = Depends(require_caller)
) -> dict:
    lab = get_lab(request)
    return {"features": [lab.wire_feature(lab.index_of(f)) for f in feature_id]}


class NeighborsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    feature_indices: list[int] = Field(min_length=1, max_length=MAX_IDS)
    model: Text | None = None
    top_k: int = Field(10, ge=1, le=MAX_IDS)


@router.post(f"{EMBER}/attributions/neighbors", tags=["ember"])
def ember_neighbors(body: NeighborsBody, request: Request, _caller: Caller = Depends(require_caller)) -> dict:
    """Nearest features by decoder cosine; for several inputs, each candidate keeps its best similarity."""
    lab = get_lab(request)
    check_model(lab, body.model)
    asked = [_index(lab, i, f"feature_indices[{n}]") for n, i in enumerate(body.feature_indices)]
    best: dict[int, float] = {}
    for index in asked:
        for hit in _search(lab).neighbors(index, top_k=body.top_k + len(asked)):
            if hit.index not in asked:
                best[hit.index] = max(best.get(hit.index, -1.0), hit.score)
    ranked = sorted(best, key=lambda i: -best[i])[: body.top_k]
    return {"neighbors": [lab.wire_feature(i) for i in ranked]}


# ---------------------------------------------------------------------------------- native
@router.get("/v1/saes", tags=["native"])
def list_saes(request: Request, _caller: Caller = Depends(require_caller)) -> dict:
    lab = get_lab(request)
    cfg = lab.sae.cfg
    return {
        "saes": [
            {
                "sae_id": lab.sae_id,
                "model": lab.model_name,
                "hookpoint": cfg.hookpoint,
                "architecture": cfg.architecture,
                "d_in": cfg.d_in,
                "d_sae": cfg.d_sae,
                "feature_database": lab.store is not None,
            }
        ]
    }


@router.get("/v1/features/search", tags=["native"])
def native_search(
    request: Request,
    q: str = Query(..., max_length=512),
    mode: str = Query("hybrid", pattern="^(hybrid|semantic|lexical)$"),
    top_k: int = Query(20, ge=1, le=200),
    by: str | None = Query(None, pattern=BY_PATTERN),
    _caller: Caller = Depends(require_caller),
) -> dict:
    lab = get_lab(request)
    _contexts_ready(_search(lab), by)
    return _native_hits(lab, _search(lab).search(q, top_k=top_k, mode=mode, by=by))


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    q: Text | None = Field(None, max_length=512)
    query: Text | None = Field(None, max_length=512)
    """Same as ``q`` (the Ember-style name)."""
    example_text: Text | None = Field(None, max_length=MAX_EXAMPLE_CHARS)
    """Search by example: features this text wakes more than usual (runs the model on it)."""
    mode: str = Field("hybrid", pattern="^(hybrid|semantic|lexical)$")
    by: str | None = Field(None, pattern=BY_PATTERN)
    top_k: int = Field(20, ge=1, le=200)
    model: Text | None = None


def _find(body: SearchBody, request: Request, caller: Caller) -> tuple:
    """Search by query, by example text, or both fused (``Lab.find_features``); the example's tokens are
    admitted like any analysis (per-request budget, the key's tokens/min)."""
    from steerlab.features.search import check_example_text
    from steerlab.server.routes.analysis import _admitted

    lab = get_lab(request)
    check_model(lab, body.model)
    search = _search(lab)
    query = body.q if body.q is not None else body.query
    if query is not None:
        _contexts_ready(search, body.by)
    if body.example_text is None:
        return lab, lab.find_features(query, by=body.by, mode=body.mode, top_k=body.top_k)
    text = check_example_text(body.example_text)
    tokens = len(lab.lm.tokenizer(text, add_special_tokens=False)["input_ids"])
    with _admitted(request, caller, {"example_text": tokens}, "max_analysis_tokens"):
        return lab, lab.find_features(query, text, by=body.by, mode=body.mode, top_k=body.top_k)


@router.post(f"{EMBER}/features/search", tags=["ember"])
def ember_search_post(body: SearchBody, request: Request, caller: Caller = Depends(require_caller)) -> dict:
    """An extension of Ember's search: a query and/or an example text; features in Ember's shape plus
    ``reason`` and ``snippet``."""
    lab, hits = _find(body, request, caller)
    return {"features": [{**lab.wire_feature(h.index), "relevance": h.score, **_why(h)} for h in hits]}


@router.post("/v1/features/search", tags=["native"])
def native_search_post(body: SearchBody, request: Request, caller: Caller = Depends(require_caller)) -> dict:
    """The web UI's search by query, by example text, or both; each hit says which evidence found it."""
    return _native_hits(*_find(body, request, caller))


def _native_hits(lab, hits) -> dict:
    density = (
        {
            f.index: (f.stats.density if f.stats else None)
            for f in lab.store.get_features(lab.sae_id, [h.index for h in hits])
        }
        if hits
        else {}
    )
    return {
        "features": [
            {
                "index": h.index,
                "uuid": h.uuid,
                "label": h.label,
                "score": h.label_score,
                "relevance": h.score,
                "density": density.get(h.index),
                **_why(h),
            }
            for h in hits
        ]
    }


@router.get("/v1/features/{index}", tags=["native"])
def native_feature(
    index: int, request: Request, neighbors: int = Query(10, ge=0, le=100), _caller: Caller = Depends(require_caller)
) -> dict:
    """Everything about one feature: stats, histogram, examples, logit effects, neighbors, co-firing."""
    lab = get_lab(request)
    search = _search(lab)
    feature = lab.store.get_feature(lab.sae_id, _index(lab, index), with_examples=True)
    out = feature.model_dump()
    out["neighbors"] = [
        {"index": h.index, "label": h.label, "similarity": h.score}
        for h in (search.neighbors(index, top_k=neighbors) if neighbors else [])
    ]
    out["cofiring_features"] = [
        {"index": i, "label": lab.labels.get(i, ""), "fraction": frac} for i, frac in feature.cofiring
    ]
    return out
