"""The concept vocabulary: plain-English phrases (``data/concepts.txt``) the offline explainer labels with.

Labels drawn from a fixed vocabulary are phrases people actually search for, and their embeddings
are computed once per process (optionally cached on disk, keyed by the file's hash).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from steerlab.features.embeddings import embed_phrases_cached

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "data" / "concepts.txt"


def read_phrases(path: Path = DEFAULT_PATH) -> list[str]:
    """Distinct non-comment lines, in file order."""
    lines = (line.split("#", 1)[0].strip() for line in Path(path).read_text(encoding="utf-8").splitlines())
    return list(dict.fromkeys(line for line in lines if line))


class ConceptVocabulary:
    """Phrases and their normalized embeddings ``[K, 384]``."""

    def __init__(self, phrases: list[str], vectors: np.ndarray):
        if len(phrases) != len(vectors):
            raise ValueError(f"{len(phrases)} phrases but {len(vectors)} vectors")
        self.phrases = phrases
        self.vectors = vectors

    def __len__(self) -> int:
        return len(self.phrases)

    @classmethod
    def load(cls, path: Path | str = DEFAULT_PATH, cache_dir: Path | None = None) -> ConceptVocabulary:
        path = Path(path)
        return _load_cached(str(path.resolve()), str(cache_dir) if cache_dir else None, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, cache_dir: str | None, _mtime: int) -> ConceptVocabulary:
    phrases = read_phrases(Path(path))
    return ConceptVocabulary(phrases, embed_phrases_cached(phrases, cache_dir, "concepts", batch_size=128))
