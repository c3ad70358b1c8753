"""The concept vocabulary: plain-English phrases (``data/concepts.txt``) the offline explainer labels with.

Labels drawn from a fixed vocabulary are phrases people actually search for, and their embeddings
are computed once per process (optionally cached on disk, keyed by the file's hash).
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from steerlab.features.embeddings import embed

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
    digest = hashlib.sha256("\n".join(phrases).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"concepts-{digest}.npy" if cache_dir else None
    if cache is not None and cache.exists():
        vectors = np.load(cache, allow_pickle=False)
        if vectors.shape[0] == len(phrases):
            return ConceptVocabulary(phrases, vectors)
    vectors = embed(phrases, batch_size=128)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, suffix=".npy")
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, vectors)
        os.replace(tmp, cache)  # atomic: a crash never leaves a half-written cache that loads
    return ConceptVocabulary(phrases, vectors)
