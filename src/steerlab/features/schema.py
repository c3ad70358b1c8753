"""Records of the feature database: what a researcher sees about one SAE latent.

These pydantic models are the contract between the builder (which fills stats and examples),
the explainers/scorers (which read examples and write labels), the store (SQLite rows) and every
shell (CLI, server, web UI, agent tools). Shaped after circuit-tracer / Neuronpedia feature pages.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field

SCHEMA_VERSION = 2
"""Bump when a table or record changes shape; the store migrates or refuses older files clearly.
2: examples may point into a per-SAE ``sequences`` table instead of repeating their token ids."""

# UUIDs are derived, not random: the same (SAE identity, index) gets the same UUID on every rebuild.
_FEATURE_NAMESPACE = uuid.UUID("6f1c2d8e-5b7a-4c1e-9f3d-2a8b7c6d5e4f")


def feature_uuid(sae_id: str, index: int) -> str:
    """Stable UUID of latent ``index`` of the SAE whose identity string is ``sae_id``."""
    return str(uuid.uuid5(_FEATURE_NAMESPACE, f"{sae_id}/{index}"))


class SAEInfo(BaseModel):
    """One SAE registered in the store."""

    sae_id: str
    """Stable identity, e.g. ``smollm2-135m-instruct/model.layers.18/topk-9216``; drives feature UUIDs."""
    model: str
    hookpoint: str
    d_in: int
    d_sae: int
    architecture: str
    path: str | None = None
    """Folder the SAE was loaded from when the database was built (informational)."""


ExampleKind = Literal["top", "quantile", "random", "nonactivating"]


class Example(BaseModel):
    """A context window with the feature's activation on every token."""

    kind: ExampleKind
    rank: int = 0
    """Order within its kind (0 = strongest for ``top``); quantile examples use ``quantile`` too."""
    quantile: float | None = None
    """For ``kind='quantile'``: the activation quantile bucket (e.g. 0.5) it was sampled from."""
    tokens: list[str]
    """Decoded tokens, one string per position (so highlighting is per token)."""
    token_ids: list[int]
    acts: list[float]
    """Feature activation per token, same length as ``tokens``; 0.0 where it did not fire."""
    max_act: float
    max_position: int
    """Position of the strongest activation within ``tokens``."""
    sequence_id: int | None = None
    """Index of the source sequence in the build corpus (for provenance and dedup)."""
    start: int | None = None
    """Position of ``tokens[0]`` in that sequence (None when unknown)."""


class TokenEffect(BaseModel):
    token: str
    token_id: int
    value: float


class Histogram(BaseModel):
    """Activation histogram over the *firing* tokens (non-firing tokens are counted by density)."""

    edges: list[float]
    counts: list[int]


class FeatureStats(BaseModel):
    density: float
    """Fraction of scanned tokens on which the feature is non-zero."""
    max_act: float
    mean_act: float
    """Mean over firing tokens."""
    quantiles: dict[str, float] = Field(default_factory=dict)
    """Quantiles of the activation over firing tokens, keyed by the quantile as text ("0.5", "0.99")."""
    histogram: Histogram | None = None
    tokens_scanned: int = 0


class Label(BaseModel):
    text: str
    """Short noun phrase a person would search for, e.g. "French text"."""
    explainer: str
    """Which backend wrote it, e.g. ``offline:ngram+concepts`` or ``openai:gpt-4o-mini``."""
    score: float | None = None
    """Quality in [0, 1] from ``scorer`` (None = not scored yet)."""
    scorer: str | None = None
    score_details: dict = Field(default_factory=dict)


class Feature(BaseModel):
    """Everything known about one latent."""

    uuid: str
    sae_id: str
    index: int
    stats: FeatureStats | None = None
    examples: list[Example] = Field(default_factory=list)
    promoted: list[TokenEffect] = Field(default_factory=list)
    """Tokens whose logits the decoder direction raises most (through the unembedding)."""
    suppressed: list[TokenEffect] = Field(default_factory=list)
    cofiring: list[tuple[int, float]] = Field(default_factory=list)
    """(other index, fraction of this feature's firing tokens on which the other also fires)."""
    label: Label | None = None
    """None = unlabeled (e.g. the explainer failed; the build goes on)."""

    @property
    def label_text(self) -> str:
        return self.label.text if self.label else ""

    def examples_of(self, kind: ExampleKind) -> list[Example]:
        return sorted((e for e in self.examples if e.kind == kind), key=lambda e: e.rank)
