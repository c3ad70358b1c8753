"""The feature database shipped next to the bundled SAE: it describes that SAE, every feature has
evidence and a scored label, and a search for a concept finds features that fire on it."""

import pytest

from steerlab.bundled_saes import bundled_sae_path
from steerlab.features.explain.base import context_text
from steerlab.features.explain.language import detect_language
from steerlab.features.identity import DB_FILENAME, sae_identity
from steerlab.features.schema import feature_uuid
from steerlab.features.search import FeatureSearch
from steerlab.features.store import FeatureStore
from tests.default_features import FRENCH

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def shipped(default_lm, default_sae):
    path = bundled_sae_path(default_lm.name) / DB_FILENAME
    assert path.is_file(), f"{path} is not shipped (scripts/build_default_features.sh builds it)"
    with FeatureStore(path, readonly=True) as store:
        yield store, store.list_saes()


def test_describes_the_bundled_sae(shipped, default_sae):
    store, saes = shipped
    assert [s.sae_id for s in saes] == [sae_identity(default_sae)]
    assert store.count_features(saes[0].sae_id) == default_sae.cfg.d_sae


def test_features_carry_evidence_and_scored_labels(shipped):
    store, saes = shipped
    sae_id = saes[0].sae_id
    labels = store.labels(sae_id)
    assert len(labels) >= 0.95 * saes[0].d_sae, "nearly every feature is labeled"
    assert sum(lab.score is not None for lab in labels.values()) >= 0.95 * len(labels), "labels are scored"
    french = store.get_feature(sae_id, FRENCH)
    assert french.uuid == feature_uuid(sae_id, FRENCH)
    assert french.stats.density > 0 and french.examples_of("top") and french.promoted


def test_search_for_french_finds_features_that_fire_on_french(shipped, default_sae):
    """Labels are checked against evidence: the features a search for "French text" returns fire on
    French (by the language identifier, which the labels were not scored with)."""
    store, saes = shipped
    search = FeatureSearch(store, saes[0].sae_id, decoder=default_sae.W_dec.detach().float().numpy())
    french_hits = 0
    for hit in search.search("French text", top_k=5):
        tops = store.get_feature(saes[0].sae_id, hit.index).examples_of("top")[:10]
        french_hits += sum(detect_language(context_text(e, 24, 8)) == "fr" for e in tops) >= len(tops) / 2
    assert french_hits >= 3


def test_ships_compacted_for_read_only_installs(default_lm):
    """A shipped database left in WAL mode makes every reader create -wal/-shm files beside it (in a
    read-only site-packages: fails); scripts/build_default_features.sh compacts it before copying."""
    import sqlite3

    path = bundled_sae_path(default_lm.name) / DB_FILENAME
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
    finally:
        conn.close()
    assert not path.with_name(path.name + "-wal").exists()


def test_ships_its_context_vectors(shipped, tmp_path, monkeypatch):
    """The context vectors ship beside the database (else a context or hybrid search computes them for ~1,000 s
    on first use and inspect ranks by labels alone): found with a cold cache, one unit-scale row per feature."""
    import numpy as np

    from steerlab.features import context_vectors

    monkeypatch.setenv("STEERLAB_HOME", str(tmp_path))  # nothing cached on this "machine"
    store, saes = shipped
    vectors = context_vectors.available(store, saes[0].sae_id)
    assert vectors is not None, "features.db.vectors/<sae>/context_embeddings.safetensors is not shipped"
    assert vectors.raw.shape == (saes[0].d_sae, context_vectors.EMBED_DIM)
    norms = np.linalg.norm(vectors.raw, axis=1)
    assert np.isfinite(vectors.raw).all() and np.median(norms) > 0.1
