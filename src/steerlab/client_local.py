"""The in-process backend of ``steerlab.Client``: the model, SAE and feature database, loaded on first use.

Every call that needs the model goes through one ``engine.lab.Lab`` (the runtime the server uses:
same decoding, same steering, same feature UUIDs). Nothing heavy happens at construction: the lab
loads on the first call that needs the model (chat, inspect, contrast, AutoSteer), the feature
database on the first search or lookup, so ``steerlab.Client()`` is instant and a notebook that only
searches never loads the model.
"""

from __future__ import annotations

import threading
import time
import uuid as uuid_lib
from functools import cached_property

from steerlab.client_types import (
    AttributionFeature,
    AttributionResponse,
    ChatCompletion,
    ContextInspector,
    Feature,
    FoundFeature,
    StreamingChatCompletionChunk,
)
from steerlab.models.registry import canonical_name
from steerlab.steering.errors import SteeringError

FINISH = {"stop": "stop", "length": "length", "abort": "stop", "cancelled": "stop"}
"""Engine finish reasons as the SDK knows them (an abort is the variant's own, raised by its handler)."""


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
    def lab(self):
        """The runtime (model, SAE, engine), built on the first call that needs the model. Loaded
        here, it refuses a feature database built for other SAE weights (``Lab.with_database``);
        parts the caller passed in are taken as given."""
        from steerlab.engine.lab import Lab

        given = self._given
        with self._lock:
            lm = given["lm"]
            if lm is None:
                from steerlab.models.loader import load_model
                from steerlab.settings import get_settings

                settings = get_settings()
                lm = load_model(
                    self.model_name, dtype=self._dtype or settings.dtype, device=self._device or settings.device
                )
            sae = given["sae"]
            if sae is None:
                from steerlab.sae.bundled import load_sae_for

                sae = load_sae_for(lm, self._sae_path)
            if given["store"] is not None or given["sae_id"] is not None:
                return Lab(lm, sae, self.store, self.sae_id)
            return Lab.with_database(lm, sae, self.store)

    @property
    def lm(self):
        return self.lab.lm

    @property
    def sae(self):
        return self.lab.sae

    @cached_property
    def store(self):
        """The feature database, or None when there is none for this SAE (opened without the model)."""
        if self._given["store"] is not None:
            return self._given["store"]
        from steerlab.features.identity import open_feature_database

        return open_feature_database(self.model_name, self._sae_path, self._db_path)

    @cached_property
    def sae_id(self) -> str:
        """The SAE's identity (every feature UUID derives from it): the one the database names, read
        without loading the model, else the weights' (``features.identity.sae_identity``)."""
        if self._given["sae_id"] is not None:
            return self._given["sae_id"]
        if self.store is not None:
            from steerlab.features.identity import database_sae_id

            return database_sae_id(self.store)
        return self.lab.sae_id

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
    def search(self, query: str, top_k: int, model="default", by: str | None = None) -> list[Feature]:
        self.check_model(model)
        return [FoundFeature.of_hit(h, self.sae_id) for h in self.search_index.search(query, top_k=top_k, by=by)]

    def search_by_example(
        self, text: str, top_k: int, model="default", query: str | None = None, by: str | None = None
    ) -> list[Feature]:
        """Runs the model (``Lab.find_features``): loads it on first use."""
        self.check_model(model)
        from steerlab.features.search import check_example_text

        check_example_text(text)
        if self.store is None:
            self.search_index  # noqa: B018 (raises NoFeatureDatabase)
        hits = self.lab.find_features(query, text, by=by, top_k=top_k)
        return [FoundFeature.of_hit(h, self.sae_id) for h in hits]

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

    def inspect(
        self,
        messages,
        model,
        features: list[int] | None,
        aggregate_by: str,
        rank_by: str | None = None,
        include_template: bool = False,
    ) -> ContextInspector:
        variant = self.check_model(model)
        inspection = self.lab.inspect(messages, variant, include_template=include_template, exclusive=True)
        inspection.ranking(rank_by)  # a bad rank_by fails here, not at .top()
        return ContextInspector(inspection, self.feature, aggregate_by, features, rank_by)

    def contrast(
        self,
        dataset_1,
        dataset_2,
        top_k: int,
        model="default",
        rank_by: str | None = None,
        include_template: bool = False,
    ) -> tuple[list[Feature], list[Feature]]:
        self.check_model(model)
        result = self.lab.contrast(
            dataset_1, dataset_2, top_k=top_k, rank_by=rank_by, include_template=include_template, exclusive=True
        )
        return (
            [self.feature(f.index) for f in result.dataset_1_features],
            [self.feature(f.index) for f in result.dataset_2_features],
        )

    def attribute(self, messages, index: int, model="default") -> AttributionResponse:
        from steerlab.analysis.attribution import attribute
        from steerlab.server.wire import attribution_response

        self.check_model(model)
        lab = self.lab
        result = lab.run_exclusive(attribute, lab.lm, lab.sae, messages, index, labels=self.labels)
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

        return self._goal_search(auto_steer, specification, model, config)

    def auto_conditional(self, specification: str, model="default", config=None):
        from steerlab.analysis.autosteer_conditional import auto_conditional

        return self._goal_search(auto_conditional, specification, model, config)

    def _goal_search(self, search_fn, specification: str, model, config):
        """AutoSteer or AutoConditional on the lab's model, with label search when there is a database."""
        self.check_model(model)
        search = self.search_index if self.store is not None else None
        lab = self.lab
        return lab.run_exclusive(
            search_fn,
            lab.lm,
            lab.sae,
            specification,
            config=config,
            search=search,
            labels=self.labels,
            sae_id=lab.sae_id,
        )

    def contrastive_stimulus(self, specification: str):
        from steerlab.analysis.stimulus import generate_contrastive_stimulus

        lab = self.lab
        stimulus = lab.run_exclusive(generate_contrastive_stimulus, lab.lm, specification, sae=lab.sae)
        return stimulus.dataset_1, stimulus.dataset_2

    # ------------------------------------------------------------------ chat
    def stream(self, messages, model, **sampling):
        """SDK-shaped chunks as the engine samples tokens (the variant's handlers run as events fire)."""
        from steerlab.engine.lab import sampling_params

        variant = self.check_model(model)
        params = sampling_params(**sampling)
        completion_id, created = f"chatcmpl-{uuid_lib.uuid4().hex}", int(time.time())
        for event in self.lab.generate(messages, params, variant):
            yield StreamingChatCompletionChunk.model_validate(
                {
                    "id": completion_id,
                    "created": created,
                    "model": self.model_name,
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
        return self.lab.logits(messages, self.check_model(model), top_k=top_k, filter_vocabulary=filter_vocabulary)

    # ------------------------------------------------------------------ classifiers
    def classifier_list(self) -> list[dict]:
        return [{k: v for k, v in c.items() if k != "path"} for c in self.lab.classifier_names()]

    def classifier_get(self, name: str, top: int) -> dict:
        return self.lab.classifier_info(name, top)

    def classifier_score(self, name: str, texts: list, top: int, tokens: bool) -> list[dict]:
        return self.lab.score_texts(name, texts, top, tokens=tokens)

    def classifier_train(self, body: dict, wait: bool, poll_s: float = 1.0, timeout: float | None = None) -> dict:
        """Trains in this call (``wait`` has no effect in-process) and returns the result, as the server's job does."""
        body = dict(body)
        clf = self.lab.train_classifier(body.pop("name"), body.pop("pos"), body.pop("neg"), **body)
        return {"name": clf.name, "kind": clf.kind, "pool": clf.pool, "report": clf.report}
