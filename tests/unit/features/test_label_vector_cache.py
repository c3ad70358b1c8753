"""Label vectors of a database that stores none are embedded once a machine, then read back unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from steerlab.features import label_vector_cache
from steerlab.features.embeddings import embed_unique

TEXTS = ["French text", "Python code", "French text", "pirate speech"]


def test_embedded_once_then_read_back(steerlab_home, monkeypatch):
    first = label_vector_cache.embed_labels(TEXTS)
    assert np.array_equal(first, embed_unique(TEXTS, batch_size=label_vector_cache.BATCH_SIZE))
    monkeypatch.setattr(label_vector_cache, "embed", lambda *a, **k: pytest.fail("embedded again"))
    assert np.array_equal(label_vector_cache.embed_labels(TEXTS), first)
    assert len(list((steerlab_home / "cache").glob("label-vectors-*.npy"))) == 1


def test_other_labels_or_a_damaged_file_are_embedded_again(steerlab_home):
    label_vector_cache.embed_labels(TEXTS)
    (cached,) = (steerlab_home / "cache").glob("label-vectors-*.npy")
    cached.write_bytes(cached.read_bytes()[:100])
    assert np.array_equal(label_vector_cache.embed_labels(TEXTS), embed_unique(TEXTS, label_vector_cache.BATCH_SIZE))
    other = label_vector_cache.embed_labels(["cats"])
    assert other.shape == (1, 384) and len(list((steerlab_home / "cache").glob("label-vectors-*.npy"))) == 2
