"""The in-process backend of ``steerlab.Client``: the model, SAE and feature database, loaded on first use.

Nothing heavy happens at construction: the model loads on the first call that needs it (chat,
inspect, contrast, AutoSteer), the feature database on the first search or lookup, so
``steerlab.Client()`` is instant and a notebook that only searches never loads the model.
"""

from __future__ import annotations

import threading
import time
import uuid as uuid_lib
from functools import cached_property
from pathlib import Path

from steerlab.client_types import (
    AttributionFeature,
    AttributionResponse,
    ChatCompletion,
    ContextInspector,
    Feature,
    StreamingChatCompletionChunk,
)
from steerlab.models.registry import canonical_name
from steerlab.steering.errors import SteeringError


class NoFeatureDatabase(SteeringError):
    """A call that needs feature labels, with no feature database to read them from."""


class LocalBackend:
    def __init__(
        self,
        model: str = "default",
        *,
        sae_path=None,
        db_path=None,
        device: str | None = None,
        dtype: str | None = None,
        lm=None,
        sae=None,
        store=None,
        sae_id: str | None = None,
    ):
        named = lm.name if lm is not None else model if isinstance(model, str) else model.name
        self.model_name = canonical_name(named)
        self._given = {"lm": lm, "sae": sae, "store": store, "sae_id": sae_id}
        self._sae_path, self._db_path, self._device, self._dtype = sae_path, db_path, device, dtype
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ lazy parts
    @cached_property
    def lm(self):
        if self._given["lm"] is not None:
            return self._given["lm"]
        from steerlab.models.loader import load_model
        from steerlab.settings import get_settings

        settings = get_settings()
        with self._lock:
            return load_model(
                self.model_name, dtype=self._dtype or settings.dtype, device=self._device or settings.device
            )

    @cached_property
    def sae(self):
        if self._given["sae"] is not None:
            return self._given["sae"]
        from steerlab.sae.bundled import load_sae_for

        return load_sae_for(self.lm, self._sae_path)

    @cached_property
    def store(self):
        """The feature database, or None when there is none for this SAE."""
        if self._given["store"] is not None:
            return self._given["store"]
        from steerlab.features.identity import default_db_path
        from steerlab.sae.bundled import bundled_sae_path

        path = self._db_path
        if path is None:
            folder = self._sae_path or bundled_sae_path(self.model_name)
            path = default_db_path(folder) if folder is not None else None
        if path is None or not Path(path).exists():
            return None
        from steerlab.features.store import FeatureStore

        return FeatureStore(path, readonly=True)

    @cached_property
    def sae_id(self) -> str:
        if self._given["sae_id"] is not None:
            return self._given["sae_id"]
        from steerlab.features.identity import pick_sae_id, sae_identity

        if self.store is None:
            return sae_identity(self.sae)
        saes = self.store.list_saes()  # one SAE: no need to load it (and the model) to name it
        return saes[0].sae_id if len(saes) == 1 else pick_sae_id(self.store, sae=self.sae)

    @cached_property
    def search_index(self):
        if self.store is None:
            raise NoFeatureDatabase(
                "this needs a feature database (labels); build one with 'steerlab features "
                "build' and 'steerlab features label', or pass db_path=",
                field="model",
            )
        from steerlab.features.search import FeatureSearch

        return FeatureSearch(self.store, self.sae_id)

    @cached_property
    def labels(self) -> dict[int, str]:
        if self.store is None:
            return {}
        return {i: label.text for i, label in self.store.labels(self.sae_id).items()}

    def feature(self, index: int) -> Feature:
        return Feature.of_index(int(index), self.sae_id, self.labels.get(int(index), ""))

    def check_model(self, model, field: str = "model"):
        """The steering a ``model`` argument carries (None for a name); refuses other models."""
        name = model if isinstance(model, str) else getattr(model, "base_model", None)
        if isinstance(name, str) and canonical_name(name) != self.model_name:
            raise SteeringError(f"model {name!r} is not loaded here; this client runs {self.model_name}", field=field)
        return None if isinstance(model, str) else model

    # ------------------------------------------------------------------ features
    def search(self, query: str, top_k: int, model="default") -> list[Feature]:
        self.check_model(model)
        return [self.feature(h.index) for h in self.search_index.search(query, top_k=top_k)]

    def rerank(self, features: list[Feature], query: str, top_k: int, model="default") -> list[Feature]:
        self.check_model(model)
        hits = self.search_index.rerank([f.index for f in features], query)
        return [self.feature(h.index) for h in hits[:top_k]]

    def lookup(self, indices: list[int], model="default") -> dict[int, Feature]:
        self.check_model(model)
        d_sae = self.sae.cfg.d_sae
        for i, index in enumerate(indices):
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < d_sae:
                raise SteeringError(f"must be a feature index in 0..{d_sae - 1}, got {index!r}", field=f"indices[{i}]")
        return {i: self.feature(i) for i in indices}

    def neighbors(self, indices: list[int], top_k: int, model="default") -> list[Feature]:
        """Features whose decoder directions are closest (cosine) to any of ``indices``."""
        import torch

        self.lookup(indices, model)
        w = torch.nn.functional.normalize(self.sae.W_dec.detach().float(), dim=-1)
        scores = (w @ w[indices].T).max(-1).values
        scores[indices] = -2.0
        return [self.feature(i) for i in scores.topk(top_k).indices.tolist()]

    def inspect(self, messages, model, features: list[int] | None, aggregate_by: str) -> ContextInspector:
        from steerlab.analysis.inspect import inspect

        inspection = inspect(self.lm, self.sae, messages, self.check_model(model), labels=self.labels)
        return ContextInspector(inspection, self.feature, aggregate_by, features)

    def contrast(self, dataset_1, dataset_2, top_k: int, model="default") -> tuple[list[Feature], list[Feature]]:
        from steerlab.analysis.contrast import contrast

        self.check_model(model)
        result = contrast(self.lm, self.sae, dataset_1, dataset_2, top_k=top_k)
        return (
            [self.feature(f.index) for f in result.dataset_1_features],
            [self.feature(f.index) for f in result.dataset_2_features],
        )

    def attribute(self, messages, index: int, model="default") -> AttributionResponse:
        from steerlab.analysis.attribution import attribute
        from steerlab.server.wire import attribution_response

        self.check_model(model)
        result = attribute(self.lm, self.sae, messages, index, labels=self.labels)
        ember = attribution_response(result, self.sae_id)
        features = [
            AttributionFeature(
                self.feature(i), value, [(t["index"], t["activation_strength"]) for t in entry["tokens"]]
            )
            for (i, _, value), entry in zip(result.by_feature(10), ember["to_ablate"])
        ]
        return AttributionResponse(features, ember["num_input_tokens"], result)

    def auto_steer(self, specification: str, model="default", config=None):
        from steerlab.analysis.autosteer import auto_steer

        self.check_model(model)
        search = self.search_index if self.store is not None else None
        return auto_steer(
            self.lm, self.sae, specification, config=config, search=search, labels=self.labels, sae_id=self.sae_id
        )

    def auto_conditional(self, specification: str, model="default", config=None):
        from steerlab.analysis.autosteer_conditional import auto_conditional

        self.check_model(model)
        search = self.search_index if self.store is not None else None
        return auto_conditional(
            self.lm, self.sae, specification, config=config, search=search, labels=self.labels, sae_id=self.sae_id
        )

    def contrastive_stimulus(self, specification: str):
        from steerlab.analysis.stimulus import generate_contrastive_stimulus

        stimulus = generate_contrastive_stimulus(self.lm, specification, sae=self.sae)
        return stimulus.dataset_1, stimulus.dataset_2

    # ------------------------------------------------------------------ chat
    def stream(self, messages, model, **sampling):
        """SDK-shaped chunks as tokens are sampled (the variant's handlers run as events fire)."""
        from steerlab.steering.generate import stream_chat_completion

        variant = self.check_model(model)
        completion_id, created = f"chatcmpl-{uuid_lib.uuid4().hex}", int(time.time())
        for chunk in stream_chat_completion(self.lm, messages, variant, sae=self.sae, **sampling):
            yield StreamingChatCompletionChunk.model_validate(
                {
                    "id": completion_id,
                    "created": created,
                    "model": self.model_name,
                    "gf_event_names": chunk.event_names or None,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": chunk.text},
                            "gf_token_index": chunk.token_index,
                            "finish_reason": chunk.finish_reason,
                        }
                    ],
                }
            )

    def complete(self, messages, model, **sampling) -> ChatCompletion:
        text, events, finish, completion_id, created = "", [], None, "", None
        for chunk in self.stream(messages, model, **sampling):
            text += chunk.choices[0].delta.content
            events += chunk.gf_event_names or []
            finish = chunk.choices[0].finish_reason or finish
            completion_id, created = chunk.id, chunk.created
        return ChatCompletion.model_validate(
            {
                "id": completion_id,
                "created": created,
                "model": self.model_name,
                "gf_event_names": events or None,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            }
        )

    def logits(self, messages, model, top_k, filter_vocabulary) -> dict[str, float]:
        from steerlab.steering.generate import next_token_logits

        return next_token_logits(
            self.lm, messages, self.check_model(model), sae=self.sae, top_k=top_k, filter_vocabulary=filter_vocabulary
        )
