"""Searching the corpus a feature database was built from (the ``sequences`` it stores examples from).

By words: an in-memory FTS5 index (``features.lexical_index``) over the stored sequences, decoded once on
first use (~4k sequences, ~1M tokens on the default database: about a second). By meaning: the label
search (embeddings and words, ``Lab.search``) finds the features about the query, and the sequences where
those features fire most (their stored top examples) come back, ranked by how many of the features fire
there and how high those features ranked. Passages are not embedded themselves: that would cost minutes
of CPU per database, and the features' labels already say what each passage is about.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from steerlab.errors import InvalidInputError

MAX_QUERY_CHARS = 512
SNIPPET_CHARS = 240


class CorpusSearch:
    """One per lab (shared by every caller's tools); builds its word index lazily."""

    def __init__(self, lab: Any) -> None:
        self.lab = lab
        self._lock = threading.Lock()
        self._ids: list[int] | None = None
        self._texts: list[str] = []
        self._index: Any = None

    def _ready(self) -> None:
        with self._lock:
            if self._ids is not None:
                return
            from steerlab.features.lexical_index import LexicalIndex

            store, sae_id = self.lab.store, self.lab.sae_id
            decode = self.lab.lm.tokenizer.decode
            ids = store.sequence_ids(sae_id)
            self._texts = [decode(store.sequence_tokens(sae_id, s) or []) for s in ids]
            self._index = LexicalIndex(self._texts)
            self._ids = ids

    def sequences(self) -> int:
        self._ready()
        assert self._ids is not None
        return len(self._ids)

    def by_words(self, query: str, top_k: int) -> list[dict]:
        self._ready()
        assert self._ids is not None
        words = [w.lower() for w in re.findall(r"\w+", query)]
        out = []
        for position, score in self._index.search(query, top_k):
            text = self._texts[position]
            out.append({"sequence_id": self._ids[position], "score": round(score, 3), "text": snippet(text, words)})
        return out

    def by_meaning(self, query: str, top_k: int, features: int = 8) -> list[dict]:
        from steerlab.agents.tools import example_text

        lab = self.lab
        hits = lab.search.search(query, top_k=features)
        found = lab.store.get_features(lab.sae_id, [h.index for h in hits], with_examples=True)
        by_sequence: dict[int, dict] = {}
        for rank, feature in enumerate(found):
            for example in feature.examples_of("top"):
                if example.sequence_id is None:
                    continue
                entry = by_sequence.setdefault(
                    example.sequence_id, {"sequence_id": example.sequence_id, "score": 0.0, "features": []}
                )
                entry["score"] += 1.0 / (rank + 1)
                if feature.index not in [f["index"] for f in entry["features"]]:
                    entry["features"].append({"index": feature.index, "label": lab.labels.get(feature.index, "")})
                if "text" not in entry:
                    entry["text"] = example_text(example, before=30, after=12)
        ranked = sorted(by_sequence.values(), key=lambda e: -e["score"])[:top_k]
        for e in ranked:
            e["score"] = round(e["score"], 3)
        return ranked


def snippet(text: str, words: list[str], width: int = SNIPPET_CHARS) -> str:
    """``width`` characters of ``text`` around the first of ``words`` it holds (case-insensitive)."""
    lower = text.lower()
    hits = [lower.find(w) for w in words if w and lower.find(w) >= 0]
    at = min(hits) if hits else 0
    start = max(0, at - width // 3)
    piece = text[start : start + width].replace("\n", "↵")
    return ("…" if start else "") + piece + ("…" if start + width < len(text) else "")


def check_query(query: object) -> str:
    if not isinstance(query, str) or not query.strip():
        raise InvalidInputError("must be a non-empty string", field="query")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInputError(f"is {len(query)} characters; at most {MAX_QUERY_CHARS}", field="query")
    return query.strip()
