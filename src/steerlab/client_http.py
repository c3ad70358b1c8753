"""The HTTP backend of ``steerlab.Client``: the Ember routes of a steerlab server (or any server that
speaks them), called with httpx. Same methods and return types as ``client_local.LocalBackend``.

Errors come back as ``APIError`` (status code, the server's message); 429 and 503 are retried with
exponential backoff, honouring ``Retry-After``, as the goodfire SDK does.
"""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import httpx

from steerlab.client_types import (
    AttributionFeature,
    AttributionResponse,
    ChatCompletion,
    ContextInspector,
    Feature,
    FoundFeature,
    StreamingChatCompletionChunk,
)
from steerlab.steering.variant import InferenceContext

ROOT = "/api/inference/v1"
MAX_TOP = 100
"""Top features asked of compute-features (its most): ``top(k)`` follows the server's ranking up to this ``k``."""


class APIError(Exception):
    """A non-2xx answer from the server."""

    def __init__(self, status_code: int, message: str):
        self.status_code, self.message = status_code, message
        super().__init__(f"{status_code}: {message}")


class HTTPBackend:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        http_client: httpx.Client | None = None,
        timeout: float = 120.0,
        retries: int = 3,
    ):
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = http_client or httpx.Client(timeout=timeout)
        self.headers, self.retries = headers, retries

    # ------------------------------------------------------------------ plumbing
    def _call(self, method: str, route: str, *, root: str = ROOT, **kw) -> httpx.Response:
        for attempt in range(self.retries + 1):
            response = self.http.request(method, f"{self.base_url}{root}/{route}", headers=self.headers, **kw)
            if response.status_code not in (429, 503) or attempt == self.retries:
                break
            time.sleep(float(response.headers.get("Retry-After", 0.5 * 2**attempt)))
        if response.status_code >= 400:
            raise APIError(response.status_code, _message(response))
        return response

    def _post(self, route: str, payload: dict) -> dict:
        return self._call("POST", route, json=payload).json()

    @staticmethod
    def _model(model) -> dict:
        if isinstance(model, str):
            return {"model": model}
        return {"model": model.base_model, "controller": model.controller.json()}

    def check_model(self, model, field: str = "model"):
        return model

    def _features(self, rows) -> list[Feature]:
        return [Feature.from_wire(r) for r in rows]

    # ------------------------------------------------------------------ features
    def search(self, query: str, top_k: int, model="default", by: str | None = None) -> list[Feature]:
        params = {"query": query, "page": 1, "perPage": top_k, "model": _name(model)}
        if by is not None:  # an extension: plain Ember servers never see it
            params["by"] = by
        rows = self._call("GET", "features/search", params=params).json()["features"]
        return [FoundFeature.from_wire(r) for r in rows]

    def search_by_example(
        self, text: str, top_k: int, model="default", query: str | None = None, by: str | None = None
    ) -> list[Feature]:
        payload = {"example_text": text, "query": query, "by": by, "top_k": top_k, "model": _name(model)}
        return [FoundFeature.from_wire(r) for r in self._post("features/search", payload)["features"]]

    def rerank(self, features: list[Feature], query: str, top_k: int, model="default") -> list[Feature]:
        payload = {"query": query, "top_k": top_k, "model": _name(model), "feature_ids": [f.uuid for f in features]}
        return self._features(self._post("features/rerank", payload)["features"])

    def lookup(self, indices: list[int], model="default") -> dict[int, Feature]:
        rows = self._post("features/lookup", {"indices": list(indices), "model": _name(model)})["features"]
        return {f.index: f for f in self._features(rows)}

    def neighbors(self, indices: list[int], top_k: int, model="default") -> list[Feature]:
        payload = {"feature_indices": list(indices), "model": _name(model), "top_k": top_k}
        return self._features(self._post("attributions/neighbors", payload)["neighbors"])

    def inspect(
        self,
        messages,
        model,
        features: list[int] | None,
        aggregate_by: str,
        rank_by: str | None = None,
        include_template: bool = False,
    ) -> ContextInspector:
        """The server ranks (``ranked_by``, default ``relevance`` as in process): ``top(k)`` follows its
        ``top_features`` (asked for ``MAX_TOP`` of them), each with its ``aggregate_by`` activation over the firings
        each token came back with (the ones the ranking counts)."""
        import torch

        from steerlab.analysis.inspect import Inspection

        payload = {
            "messages": messages,
            "aggregate_by": "count" if aggregate_by == "frequency" else aggregate_by,
            "include_template": include_template,
            "top_k": MAX_TOP,
            **({} if rank_by is None else {"rank_by": rank_by}),
            **self._model(model),
        }
        if features is not None:
            payload["include_feature_indexes"] = list(features)
        body = self._post("chat-attribution/compute-features", payload)
        tokens = body["tokens"]
        ranked = [f["index_in_sae"] for f in body.get("top_features", [])]
        listed = [a["index_in_sae"] for t in tokens for a in t["attributions"]]
        width = 1 + max(listed + ranked + list(features or [0]))
        codes = torch.zeros(len(tokens), width)
        for position, token in enumerate(tokens):
            for act in token["attributions"]:
                codes[position, act["index_in_sae"]] = float(act["activation_strength"])
        named = set(codes.nonzero()[:, 1].tolist()) | set(ranked)
        known = self.lookup(sorted(named), _name(model)) if named else {}
        inspection = Inspection(
            [t["token"] for t in tokens],
            [-1] * len(tokens),
            codes,
            torch.ones(width),
            {i: f.label for i, f in known.items()},
            content=[not t.get("template", False) for t in tokens],
            include_template=include_template,
        )
        inspector = ContextInspector(
            inspection, lambda i: known.get(i) or Feature(i, "", ""), aggregate_by, features, "frequency"
        )
        inspector.ranked_by = body.get("ranked_by", "frequency")
        if "top_features" in body:
            inspector.ranked = ranked
        return inspector

    def contrast(
        self,
        dataset_1,
        dataset_2,
        top_k: int,
        model="default",
        rank_by: str | None = None,
        include_template: bool = False,
    ) -> tuple[list[Feature], list[Feature]]:
        body = self._post(
            "chat-attribution/contrast",
            {
                "dataset_1": dataset_1,
                "dataset_2": dataset_2,
                "k_to_add": top_k,
                "k_to_remove": top_k,
                "model": _name(model),
                "include_template": include_template,
                **({} if rank_by is None else {"rank_by": rank_by}),
            },
        )
        return self._features(body["dataset_1_features"]), self._features(body["dataset_2_features"])

    def attribute(self, messages, index: int, model="default") -> AttributionResponse:
        body = self._post(
            "attributions/compute-logit-attribution",
            {"messages": messages, "model": _name(model), "startIndex": index, "endIndex": index},
        )
        ids = [row["id"] for row in body.get("to_ablate", [])]
        listed = self._call("GET", "features/", params={"feature_id": ids}).json()["features"] if ids else []
        by_id = {f.uuid: f for f in self._features(listed)}
        features = [
            AttributionFeature(
                by_id.get(row["id"].replace("-", ""), Feature(0, row["id"], "")),
                row["value"],
                [(t["index"], t["activation_strength"]) for t in row["tokens"]],
            )
            for row in body.get("to_ablate", [])
        ]
        return AttributionResponse(features, body.get("num_input_tokens", 0))

    def auto_steer(self, specification: str, model="default", config=None):
        """``config`` is the server's business over HTTP (accepted for symmetry, not sent)."""
        edits = self._post("features/auto-edits", {"specification": specification, "model": _name(model)})["edits"]
        return [(Feature.from_wire(f), float(v)) for f, v in edits]

    def auto_conditional(self, specification: str, model="default", config=None):
        from steerlab.steering.controller_json import Controller

        body = self._post("features/auto-conditional", {"specification": specification, "model": _name(model)})
        scope = {"conditionals": body["conditional"], "controller": {"interventions": [], "scopes": []}}
        return Controller.from_json({"interventions": [], "scopes": [scope]}).scopes[0].condition

    def contrastive_stimulus(self, specification: str):
        dataset_1, dataset_2 = self._post("attributions/generate-contrastive-dataset", {"specification": specification})
        return dataset_1, dataset_2

    # ------------------------------------------------------------------ chat
    def complete(self, messages, model, **sampling) -> ChatCompletion:
        body = self._post("chat/completions", {"messages": messages, "stream": False, **sampling, **self._model(model)})
        completion = ChatCompletion.model_validate(body)
        _run_handlers(model, messages, completion.gf_event_names, completion.choices[0].message["content"])
        return completion

    def stream(self, messages, model, **sampling):
        payload = {"messages": messages, "stream": True, **sampling, **self._model(model)}
        so_far = ""
        with self.http.stream(
            "POST",
            f"{self.base_url}{ROOT}/chat/completions",
            json=payload,
            headers={**self.headers, "Accept": "text/event-stream"},
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise APIError(response.status_code, _message(response))
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[len("data: ") :].strip()
                if data == "[DONE]":
                    return
                chunk = StreamingChatCompletionChunk.model_validate_json(data)
                _run_handlers(model, messages, chunk.gf_event_names, so_far)
                so_far += chunk.choices[0].delta.content
                yield chunk

    def logits(self, messages, model, top_k, filter_vocabulary) -> dict[str, float]:
        payload = {"messages": messages, "top_k": top_k, **self._model(model)}
        if filter_vocabulary is not None:
            payload["filter_vocabulary"] = filter_vocabulary
        return self._post("chat-attribution/compute-logits", payload)["logits"]

    # ------------------------------------------------------------------ classifiers (native routes)
    def classifier_list(self) -> list[dict]:
        return self._call("GET", "classifiers", root="/v1").json()["classifiers"]

    def classifier_get(self, name: str, top: int) -> dict:
        return self._call("GET", f"classifiers/{quote(name, safe='')}", root="/v1", params={"top": top}).json()

    def classifier_score(self, name: str, texts: list, top: int, tokens: bool) -> list[dict]:
        payload = {"texts": texts, "top": top, "tokens": tokens}
        route = f"classifiers/{quote(name, safe='')}/score"
        return self._call("POST", route, root="/v1", json=payload).json()["results"]

    def classifier_train(self, body: dict, wait: bool, poll_s: float = 1.0, timeout: float | None = None) -> dict:
        """Start a training job; with ``wait``, follow it to its end and return its result (an ``APIError``
        with the job's error when it failed), else return the job as started."""
        job = self._call("POST", "classifiers", root="/v1", json=body).json()["job"]
        if not wait:
            return job
        deadline = None if timeout is None else time.monotonic() + timeout
        while job["state"] in ("queued", "running"):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"classifier training job {job['id']} still {job['state']} after {timeout} s")
            time.sleep(poll_s)
            job = self.classifier_job(job["id"])
        if job["state"] != "done":
            error = job.get("error") or {"message": job.get("message") or job["state"]}
            raise APIError(409 if job["state"] == "cancelled" else 400, str(error.get("message")))
        return job["result"]

    def classifier_job(self, job_id: str) -> dict:
        return self._call("GET", f"classifiers/jobs/{quote(job_id, safe='')}", root="/v1").json()["job"]


def _name(model) -> str:
    return model if isinstance(model, str) else model.base_model


def _run_handlers(model, messages, event_names, so_far: str) -> None:
    """Events the server reported: call the variant's handlers (``abort_when`` raises), as the SDK does."""
    handlers = getattr(model, "handlers", None) or {}
    for name in event_names or []:
        if name in handlers:
            handlers[name](InferenceContext(list(messages), so_far))


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (json.JSONDecodeError, ValueError):
        return response.text[:500]
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        return str(error.get("message") or error.get("detail") or error)
    return str(error)
