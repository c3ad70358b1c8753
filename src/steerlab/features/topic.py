"""What a feature is about, next to what a text is about: the topical half of inspect's ``relevance`` ranking.

Specificity (``specificity.py``) says how unusual an activation is for its feature; it cannot tell a feature
about cooking from a feature about commas that happens to peak in a recipe. Each feature also carries two
descriptions of what it is about, both sentence embeddings (``embeddings.py``, all-MiniLM-L6-v2):

- its **context vector** (``context_vectors.py``): the embedding of its strongest corpus windows, contrasted
  against the mean over features (what sets its contexts apart);
- its **label vector**: the embedding of its label text (what feature search ranks by).

A text's *topical relevance* to a feature is the sum of the cosines of the text's embedding to the two
(a missing one contributes 0): ``relevance_f = cos(text, context_f) + cos(text, label_f)``. Inspect ranks by
``peak specificity x max(relevance, 0)`` (``analysis/inspect.py``). The sum, its equal weights and the
product were chosen on the development texts (``benchmarks/inspect_relevance_dev_data.py``), never on the
benchmark's: context vectors alone 20/42 texts with an on-topic feature in the top 5, labels alone 21/42,
both 22/42 (specificity alone 15/42). Contrast weights its effect by the favoured side's relevance the same
way (``analysis/contrast.py``; development pairs 6/12 -> 8/12).

Loading never computes context vectors (that takes ~1,000 s on a CPU): a database that stores them
(``<db>.vectors/.../context_embeddings.safetensors``) or the machine's cache of them is read; otherwise the
label vectors alone are used and :attr:`TopicVectors.note` says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger("steerlab.features")

CHUNK_WORDS = 150
"""A long text is embedded in pieces of this many words (the encoder reads 256 word pieces), then averaged."""
MAX_CHUNKS = 8
"""At most this many pieces of a long text are embedded (evenly spread over it): a few milliseconds each."""


@dataclass(frozen=True)
class TopicVectors:
    """Per-feature topic descriptions: unit rows ``[d_sae, 384]`` (zero rows: none for that feature)."""

    contexts: np.ndarray | None
    """Contrasted context vectors (``ContextVectors.contrasted``), or None when the database has none."""
    labels: np.ndarray | None
    """Label embeddings, or None without labels."""

    @property
    def sources(self) -> tuple[str, ...]:
        """Which evidence is present: ``contexts``, ``labels``."""
        return tuple(name for name, v in (("contexts", self.contexts), ("labels", self.labels)) if v is not None)

    @property
    def note(self) -> str | None:
        """A line saying what is missing, None when both are present."""
        if self.contexts is None and self.labels is None:
            return "no context or label vectors: topical relevance is unavailable"
        if self.contexts is None:
            return (
                "topical relevance from labels only: this feature database stores no context vectors "
                "(docs/inspect.md says how to add them)"
            )
        if self.labels is None:
            return "topical relevance from context vectors only: the features have no labels"
        return None

    def relevance(self, text_vector: np.ndarray) -> np.ndarray:
        """``[d_sae]`` cos(text, context) + cos(text, label) per feature (module doc)."""
        out = None
        for vectors in (self.contexts, self.labels):
            if vectors is not None:
                score = vectors @ text_vector
                out = score if out is None else out + score
        if out is None:
            raise ValueError("no topic vectors")
        return out.astype(np.float32, copy=False)


def embed_text(text: str) -> np.ndarray:
    """Unit embedding ``[384]`` of ``text``: one query-encoder call (``embeddings.embed_one``) for a short text,
    the mean of up to ``MAX_CHUNKS`` pieces of ``CHUNK_WORDS`` words for a long one."""
    from steerlab.features.embeddings import embed_one

    words = text.split()
    if len(words) <= CHUNK_WORDS:
        return embed_one(" ".join(words))
    starts = list(range(0, len(words), CHUNK_WORDS))
    if len(starts) > MAX_CHUNKS:
        starts = [starts[round(i * (len(starts) - 1) / (MAX_CHUNKS - 1))] for i in range(MAX_CHUNKS)]
    total = np.sum([embed_one(" ".join(words[s : s + CHUNK_WORDS])) for s in starts], axis=0)
    return (total / max(float(np.linalg.norm(total)), 1e-12)).astype(np.float32)


MAX_TEXTS = 32
"""A dataset's topic is read from at most this many of its texts (evenly spread over it)."""


def embed_texts(texts: list[str]) -> np.ndarray | None:
    """Unit mean of the texts' embeddings (``embed_text``; at most ``MAX_TEXTS`` of them, evenly spread): what a
    dataset of conversations is about. None when no text has any content."""
    texts = [t for t in texts if t.strip()]
    if not texts:
        return None
    if len(texts) > MAX_TEXTS:
        texts = [texts[round(i * (len(texts) - 1) / (MAX_TEXTS - 1))] for i in range(MAX_TEXTS)]
    total = np.sum([embed_text(t) for t in texts], axis=0)
    return (total / max(float(np.linalg.norm(total)), 1e-12)).astype(np.float32)


def load_topic_vectors(store, sae_id: str, label_vectors: np.ndarray | None) -> TopicVectors:
    """The database's context vectors (stored, else this machine's cache; never computed here) and the given
    label vectors (``FeatureSearch.vectors``; zero rows for unlabeled features)."""
    from steerlab.features.context_vectors import available

    found = available(store, sae_id)
    contexts = None if found is None else np.ascontiguousarray(found.contrasted(), dtype=np.float32)
    labels = None
    if label_vectors is not None and np.abs(label_vectors).sum() > 0:
        labels = np.ascontiguousarray(label_vectors, dtype=np.float32)
    return TopicVectors(contexts, labels)
