"""What ``steerlab.Client`` returns, shaped like the goodfire SDK's objects so notebooks carry over.

``Feature`` is a steering ``FeatureRef`` (so ``variant.set(feature, 0.5)`` and ``feature > 0.3``
work) that also answers to the SDK's ``index_in_sae``. Chat objects are pydantic models with the
SDK's fields: ``completion.choices[0].message["content"]``, ``chunk.choices[0].delta.content``.
``ContextInspector`` wraps an ``analysis.Inspection`` (in-process) or the server's per-token JSON.
"""

from __future__ import annotations

import uuid as uuid_lib

import numpy as np
from pydantic import BaseModel

from steerlab.steering.refs import FeatureGroup, FeatureRef


class Feature(FeatureRef):
    """One SAE latent: ``.uuid``, ``.label``, ``.index_in_sae`` (as in the SDK) and ``.index``."""

    __slots__ = ()

    @property
    def index_in_sae(self) -> int:
        return self.index

    @classmethod
    def from_wire(cls, data: dict) -> Feature:
        """From Ember JSON (``id`` or ``uuid``, ``label``, ``index_in_sae``)."""
        raw = data.get("uuid") or data.get("id") or ""
        return cls(int(data["index_in_sae"]), uuid_lib.UUID(str(raw)).hex if raw else "", data.get("label") or "")

    @classmethod
    def of_index(cls, index: int, sae_id: str, label: str = "") -> Feature:
        ref = FeatureRef.of(index, sae_id, label)
        return cls(ref.index, ref.uuid, label)

    def wire(self) -> dict:
        return {
            "id": str(uuid_lib.UUID(self.uuid)) if self.uuid else "",
            "label": self.label,
            "index_in_sae": self.index,
        }


class FoundFeature(Feature):
    """A search hit: a :class:`Feature` that also says why it was returned (``reason``: label, contexts,
    example, or several joined by ``+``), the evidence to read (``snippet``) and its ``relevance``."""

    __slots__ = ("reason", "snippet", "relevance")

    def __init__(
        self,
        index: int,
        uuid: str,
        label: str = "",
        reason: str | None = None,
        snippet: str | None = None,
        relevance: float | None = None,
    ):
        super().__init__(index, uuid, label)
        self.reason, self.snippet, self.relevance = reason, snippet, relevance

    @classmethod
    def from_wire(cls, data: dict) -> FoundFeature:
        base = Feature.from_wire(data)
        return cls(base.index, base.uuid, base.label, data.get("reason"), data.get("snippet"), data.get("relevance"))

    @classmethod
    def of_hit(cls, hit, sae_id: str) -> FoundFeature:
        """From a ``features.search.SearchHit`` (the in-process client)."""
        base = Feature.of_index(hit.index, sae_id, hit.label)
        return cls(base.index, base.uuid, base.label, hit.reason, hit.snippet, hit.score)

    def __repr__(self) -> str:
        return f'Feature("{self.label}", index_in_sae={self.index})'


class FeatureActivation:
    def __init__(self, feature: Feature, activation: float):
        self.feature, self.activation = feature, activation

    def __repr__(self) -> str:
        return f"FeatureActivation(feature={self.feature}, activation={self.activation:.3f})"


class FeatureActivations(list):
    """A list of ``FeatureActivation``, strongest first (the SDK's ``FeatureActivations``); ``ranked_by``
    names the statistic a ``top`` list was ranked by."""

    ranked_by: str = "activation"

    def lookup(self) -> dict[int, Feature]:
        return {a.feature.index: a.feature for a in self}


class Token:
    def __init__(self, inspector: ContextInspector, position: int, text: str):
        self._inspector, self.position, self._token = inspector, position, text

    def inspect(self, k: int = 5) -> FeatureActivations:
        """The features most active on this token (per-feature units)."""
        acts = self._inspector.inspection.token(self.position, k)
        return FeatureActivations(FeatureActivation(self._inspector.feature(a.index), a.act_units) for a in acts)

    def vector(self) -> np.ndarray:
        return self._inspector.inspection.codes_units[self.position].cpu().numpy()

    def __repr__(self) -> str:
        return f'Token("{self._token}")'


class ContextInspector:
    """Feature activations of one conversation (the SDK's ``ContextInspector``): ``top(k)``,
    ``tokens[i].inspect(k)``, ``matrix()``; plus ``inspection`` (steerlab's own, richer)."""

    def __init__(
        self,
        inspection,
        feature_of,
        aggregate_by: str = "frequency",
        include_features: list[int] | None = None,
        rank_by: str | None = None,
    ):
        self.inspection = inspection
        self.feature = feature_of  # index -> Feature
        self.aggregate_by = "count" if aggregate_by == "frequency" else aggregate_by
        self.include_features = include_features
        self.rank_by = rank_by
        self.ranked_by = inspection.ranking(rank_by)
        """The statistic ``top`` ranks by: ``relevance``, ``specificity`` (docs/inspect.md) or ``frequency``."""
        self.ranked: list[int] | None = None
        """Over HTTP: the server's ranking of the conversation's features (compute-features' ``top_features``),
        which ``top`` follows; the activations are aggregated here over the firings the server listed."""
        self.tokens = [Token(self, i, t) for i, t in enumerate(inspection.tokens)]

    def top(self, k: int = 5) -> FeatureActivations:
        """The ``k`` features ranked by ``ranked_by`` with ``aggregate_by`` over the conversation (each
        with its aggregate activation; ``.ranked_by`` on the list names the statistic)."""
        if self.ranked is not None:
            order = self.ranked[:k]
            found = self.inspection.top(len(order), by=self.aggregate_by, features=order, rank_by="frequency")
            units = {a.index: a.act_units for a in found} if order else {}
            out = FeatureActivations(FeatureActivation(self.feature(i), units[i]) for i in order)
            out.ranked_by = self.ranked_by
            return out
        acts = self.inspection.top(k, by=self.aggregate_by, features=self.include_features, rank_by=self.rank_by)
        out = FeatureActivations(FeatureActivation(self.feature(a.index), a.act_units) for a in acts)
        out.ranked_by = self.ranked_by
        return out

    def matrix(self) -> np.ndarray:
        """``[tokens, d_sae]`` activations in per-feature units (only the included features when the
        inspection was restricted to some, the others zero, as in the SDK)."""
        dense = self.inspection.matrix()
        if self.include_features is not None:
            keep = np.zeros(dense.shape[1], dtype=bool)
            keep[self.include_features] = True
            dense = dense * keep
        return dense

    def lookup(self) -> dict[int, Feature]:
        return {a.feature.index: a.feature for a in self.top(50)}

    def __repr__(self) -> str:
        return f"ContextInspector({''.join(t._token for t in self.tokens[:50])!r})"


class AttributionFeature:
    """One feature's attribution to the chosen token (the SDK's ``FeatureAttribution``)."""

    def __init__(self, feature: Feature, value: float, token_activations: list[tuple[int, float]]):
        self.feature, self.value, self.token_activations = feature, value, token_activations

    def __repr__(self) -> str:
        n = len(self.token_activations)
        return f"FeatureAttribution(feature={self.feature}, value={self.value:.3f}, tokens={n})"


class AttributionResponse:
    def __init__(self, features: list[AttributionFeature], num_input_tokens: int, result=None):
        self.features = sorted(features, key=lambda a: a.value, reverse=True)
        self.num_input_tokens = num_input_tokens
        self.result = result
        """In-process: steerlab's ``AttributionResult`` (per position, error term, ...)."""

    def __repr__(self) -> str:
        return f"AttributionResponse(features={self.features}, tokens={self.num_input_tokens})"


# ---------------------------------------------------------------------------------- chat (SDK shapes)
class ChatCompletionChoice(BaseModel):
    index: int
    message: dict
    finish_reason: str | None


class ChatCompletion(BaseModel):
    id: str
    object: str = "chat.completion"
    created: int | None
    model: str
    system_fingerprint: str = "steerlab"
    gf_event_names: list[str] | None = None
    choices: list[ChatCompletionChoice]


class StreamingDelta(BaseModel):
    role: str
    content: str


class StreamingChoice(BaseModel):
    index: int
    delta: StreamingDelta
    gf_token_index: int
    finish_reason: str | None


class StreamingChatCompletionChunk(BaseModel):
    object: str = "chat.completion.chunk"
    id: str
    created: int | None
    model: str
    system_fingerprint: str = "steerlab"
    gf_event_names: list[str] | None = None
    choices: list[StreamingChoice]


class LogitsResponse(BaseModel):
    logits: dict[str, float]


def group(features) -> FeatureGroup:
    return FeatureGroup(list(features))
