"""Classifiers on SAE features (issue 16): list, describe, score texts, train in the background.

``GET /v1/classifiers`` lists the classifiers that read the served SAE; ``GET /v1/classifiers/{name}``
gives one's configuration and largest weights (features with labels) and its training figures;
``POST /v1/classifiers/{name}/score`` scores a batch of texts (each: score, the features that moved it,
on request each token's share of the logit). ``POST /v1/classifiers`` starts a training job (202 + job
id; ``GET /v1/classifiers/jobs/{id}`` shows its state, progress and result; ``DELETE`` cancels it).

Model time is charged and shared like the analyses' (``routes/analysis.py``): scoring counts its tokens
up front (over ``max_analysis_tokens``: 413 naming ``texts``; reserved from the key's tokens/min, 429
when they do not fit), training counts its texts' tokens (over ``max_classifier_train_tokens``: 413) and
reserves each batch's tokens from the key's tokens/min as it goes, waiting for room. Forwards hold the
model ``analysis_chunk_tokens`` padded tokens at a time, so chats keep decoding. A job saves only at its
end, atomically: a job killed or cancelled midway leaves every stored classifier as it was.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from steerlab.errors import ConflictError, InvalidInputError, NotFoundError, SteerlabError
from steerlab.server.auth import Caller, require_caller
from steerlab.server.deps import check_limit, check_model, get_lab
from steerlab.server.protocol import Message, Text
from steerlab.server.rate_limits import OverBudget, RateLimited
from steerlab.server.routes.analysis import _admitted
from steerlab.settings import variable_name

log = logging.getLogger("steerlab.server")
router = APIRouter()
KEEP_JOBS = 100
"""Finished jobs kept for their owners to read (oldest forgotten first)."""
MAX_TOP = 100

TextOrConversation = Text | list[Message]


# ----------------------------------------------------------------------------------------- reading
@router.get("/v1/classifiers", tags=["native"])
def list_classifiers(request: Request, _caller: Caller = Depends(require_caller)) -> dict:
    """Classifiers that read the served SAE: your own (trained here), then those shipped with the SAE."""
    lab = get_lab(request)
    return {"classifiers": [{k: v for k, v in c.items() if k != "path"} for c in lab.classifier_names()]}


@router.get("/v1/classifiers/{name}", tags=["native"])
def get_classifier(name: str, request: Request, top: int = 20, _caller: Caller = Depends(require_caller)) -> dict:
    """Its configuration (kind, pooling, threshold, hookpoint, SAE), its ``top`` largest ``weights`` (index,
    label, weight: SAE features; for a raw probe, features through the SAE's decoder; for TF-IDF, n-grams)
    and the training report (every kind's figures on the held-out split)."""
    if not 0 <= top <= MAX_TOP:
        raise InvalidInputError(f"must be between 0 and {MAX_TOP}, got {top}", field="top")
    return get_lab(request).classifier_info(name, top)


class ScoreBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[TextOrConversation] = Field(
        min_length=1, description="Texts, or conversations (lists of messages: their user turns are read)."
    )
    top: int = Field(5, ge=0, le=MAX_TOP, description="Features reported per text.")
    tokens: bool = Field(False, description="Also each token's share of the logit (a heatmap), and the bias.")
    model: Text | None = None


def _items(texts: list) -> list:
    return [[m.model_dump() for m in t] if isinstance(t, list) else t for t in texts]


@router.post("/v1/classifiers/{name}/score", tags=["native"])
def score(name: str, body: ScoreBody, request: Request, caller: Caller = Depends(require_caller)) -> dict:
    """One result per text: ``score`` (probability of the positive class), ``flagged`` (at or over the
    classifier's threshold), ``features`` (index, label, contribution to the logit), ``truncated``; with
    ``tokens``, also ``tokens`` (token, contribution) and ``bias``."""
    lab = get_lab(request)
    check_model(lab, body.model)
    check_limit(len(body.texts), request.app.state.settings.max_dataset_conversations, "texts", "texts")
    items = _items(body.texts)
    clf = lab.classifier(name)
    n = 0 if clf.kind == "text" else lab.classifier_token_count(name, items)
    with _admitted(request, caller, {"texts": n * (2 if body.tokens else 1)}, "max_analysis_tokens"):
        results = lab.score_texts(name, items, body.top, tokens=body.tokens, batch_tokens=lab.chunk_tokens)
    return {"classifier": name, "kind": clf.kind, "threshold": clf.threshold, "results": results}


# ---------------------------------------------------------------------------------------- training
class TrainBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text = Field(description="Name to save it under: letters, digits, '_', '.', '-'.")
    pos: list[TextOrConversation] = Field(description="Positive texts (or conversations).")
    neg: list[TextOrConversation] = Field(description="Negative texts (or conversations).")
    kind: str = Field(
        "best",
        description="sae, raw, text, or best (highest mean AUROC with each training source left out in turn; "
        "validation AUROC when each class has one source).",
    )
    max_tokens: int = Field(256, ge=1, le=4096, description="Tokens read per text; longer texts are cut.")
    max_features: int = Field(32, ge=1, le=1024, description="Most SAE features a sparse classifier keeps.")
    overwrite: bool = Field(False, description="Replace a classifier of the same name.")
    model: Text | None = None


class JobsFull(SteerlabError):
    """As many training jobs as the server runs at once (429: a per-server quota, retry later)."""

    status = 429
    code = "classifier_jobs"
    retry_after = 30


class Cancelled(SteerlabError):
    status = 409
    code = "cancelled"


@dataclass
class Job:
    id: str
    owner: str
    name: str
    state: str = "queued"
    """queued, running, done, failed, cancelled."""
    message: str = ""
    done: int = 0
    total: int = 0
    tokens: int = 0
    """Tokens read through the model so far (charged to the owner's key)."""
    result: dict | None = None
    error: dict | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def view(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "message": self.message,
            "progress": {
                "texts_done": self.done,
                "texts_total": self.total,
                "fraction": round(self.done / self.total, 4) if self.total else 0.0,
                "tokens": self.tokens,
            },
            "result": self.result,
            "error": self.error,
            "created": self.created,
            "finished": self.finished,
        }


class Jobs:
    """The server's training jobs (in memory: a restart forgets them; what they saved stays)."""

    def __init__(self, slots: int):
        self.slots = slots
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()

    def running(self) -> list[Job]:
        return [j for j in self.jobs.values() if j.state in ("queued", "running")]

    def start(self, owner: str, name: str) -> Job:
        with self.lock:
            active = self.running()
            if any(j.name == name for j in active):
                raise ConflictError(f"classifier {name!r} is being trained by another job; wait for it", field="name")
            if len(active) >= self.slots:
                raise JobsFull(
                    f"{len(active)} classifier training job(s) running, the most this server runs at once "
                    f"({variable_name('classifier_jobs')}); retry when one is done"
                )
            job = Job(uuid.uuid4().hex, owner, name)
            self.jobs[job.id] = job
            finished = [j for j in self.jobs.values() if j.finished is not None]
            for old in sorted(finished, key=lambda j: j.finished or 0)[: max(0, len(self.jobs) - KEEP_JOBS)]:
                del self.jobs[old.id]
            return job

    def get(self, job_id: str, owner: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None or job.owner != owner:  # another key's job is not shown, nor said to exist
            raise NotFoundError(f"no training job {job_id!r} for this API key", field="job_id")
        return job


def _jobs(request: Request) -> Jobs:
    state = request.app.state
    with _JOBS_LOCK:
        if getattr(state, "classifier_jobs", None) is None:
            state.classifier_jobs = Jobs(state.settings.classifier_jobs)
        return state.classifier_jobs


_JOBS_LOCK = threading.Lock()


@router.post("/v1/classifiers", tags=["native"], status_code=202)
def train(body: TrainBody, request: Request, caller: Caller = Depends(require_caller)) -> JSONResponse:
    """Start training classifier ``name`` on ``pos`` and ``neg`` (202: ``{"job": {...}}``; follow it at
    ``GET /v1/classifiers/jobs/{id}``). Bad data is refused here, before anything runs: empty, one class,
    too few (< 4) or too many texts per class, a text too long, the same texts in both classes, a name
    that exists (409 unless ``overwrite``), more tokens than ``max_classifier_train_tokens`` (413)."""
    from steerlab.classifiers.data import labelled
    from steerlab.classifiers.pooling import token_count
    from steerlab.classifiers.storage import check_name
    from steerlab.classifiers.train import KINDS
    from steerlab.engine.lab import classifier_texts

    lab = get_lab(request)
    check_model(lab, body.model)
    lab.require_sae()
    check_name(body.name)
    if body.kind not in (*KINDS, "best"):
        raise InvalidInputError(f"unknown kind {body.kind!r}", field="kind", allowed=", ".join([*KINDS, "best"]))
    examples = labelled(classifier_texts(_items(body.pos), "pos"), classifier_texts(_items(body.neg), "neg"))
    if not body.overwrite:
        lab.check_classifier_name_free(body.name)
    settings = request.app.state.settings
    limit = settings.max_classifier_train_tokens
    counts = {
        side: token_count(lab, [e.text for e in examples if e.label == label], body.max_tokens)
        for side, label in (("pos", 1), ("neg", 0))
    }
    if counts["pos"] + counts["neg"] > limit:
        field_name = "pos" if counts["pos"] > limit else "neg"
        raise OverBudget(
            f"{counts['pos'] + counts['neg']} tokens to read through the model, over this server's budget of "
            f"{limit} per training job ({variable_name('max_classifier_train_tokens')}); send fewer or shorter "
            "texts",
            field=field_name,
            allowed=f"at most {limit} tokens",
        )
    job = _jobs(request).start(caller.key_id, body.name)
    job.total = len(examples)
    limiter = request.app.state.rate_limiter

    def admit(n: int) -> None:
        """Charge a batch's tokens to the owner's key before it runs, waiting while the minute is spent."""
        while True:
            if job.cancel.is_set():
                raise Cancelled("the job was cancelled; nothing was saved", field="job_id")
            if n >= limiter.tokens.limit:  # one text larger than the whole quota: record it, never wait forever
                limiter.charge_tokens(job.owner, n)
                break
            try:
                # one token more than the batch is held, then given back: the job never fills the key's
                # minute to the brim, so the owner can still read and cancel it (a spent key gets 429 on all)
                held = limiter.reserve_tokens(job.owner, n + 1, "this training batch")
                limiter.settle(held, n)
                break
            except RateLimited as err:
                job.message = f"waiting {err.retry_after} s for the API key's tokens/min"
                job.cancel.wait(min(float(err.retry_after), 5.0))
        job.tokens += n

    def progress(message: str) -> None:
        if job.cancel.is_set():  # between fits too, so a cancelled job never reaches its save
            raise Cancelled("the job was cancelled; nothing was saved", field="job_id")
        job.message = message

    def extracted(done: int, total: int) -> None:
        job.done, job.total = done, total

    def run() -> None:
        job.state = "running"
        try:
            clf = lab.train_classifier(
                body.name,
                examples=examples,
                kind=body.kind,
                max_tokens=body.max_tokens,
                max_features=body.max_features,
                overwrite=body.overwrite,
                progress=progress,
                extracted=extracted,
                batch_tokens=lab.chunk_tokens,
                admit=admit,
            )
            job.result = {"name": clf.name, "kind": clf.kind, "pool": clf.pool, "report": clf.report}
            job.state, job.message = "done", f"saved {clf.name} ({clf.kind}, {clf.pool} pooling)"
        except Cancelled as err:
            job.state, job.message = "cancelled", err.message
        except SteerlabError as err:
            job.state = "failed"
            job.error = {"message": str(err), "field": err.field, "code": err.code}
        except Exception as err:  # noqa: BLE001 (a job's failure is reported on the job, and logged)
            log.error("classifier training job %s failed", job.id, exc_info=err)
            job.state = "failed"
            job.error = {"message": f"internal error in training job {job.id}", "field": None, "code": "internal_error"}
        finally:
            job.finished = time.time()

    threading.Thread(target=run, name=f"classifier-job-{job.id[:8]}", daemon=True).start()
    return JSONResponse({"job": job.view()}, status_code=202, headers={"Location": f"/v1/classifiers/jobs/{job.id}"})


@router.get("/v1/classifiers/jobs/{job_id}", tags=["native"])
def get_job(job_id: str, request: Request, caller: Caller = Depends(require_caller)) -> dict:
    """A training job of your key: ``state`` (queued, running, done, failed, cancelled), ``progress`` (texts
    read through the model of the total, tokens charged), ``message``, and when done ``result`` (kind,
    pooling, report), when failed ``error`` (message and the field at fault)."""
    return {"job": _jobs(request).get(job_id, caller.key_id).view()}


@router.delete("/v1/classifiers/jobs/{job_id}", tags=["native"])
def cancel_job(job_id: str, request: Request, caller: Caller = Depends(require_caller)) -> dict:
    """Cancel a job of your key: it stops before its next batch or fit, and saves nothing (a job already
    saving finishes)."""
    job = _jobs(request).get(job_id, caller.key_id)
    job.cancel.set()
    return {"job": job.view()}
