"""Topic vectors for inspect's relevance ranking (``features.topic``): read from the database (or the machine's
cache), never computed on the way to an inspection; without them inspect ranks by specificity and says so.
The tiny model, the crafted SAE and its built database; the real embedding model."""

from __future__ import annotations

import numpy as np
import pytest

from steerlab.features import context_vectors
from steerlab.features.store import FeatureStore
from steerlab.features.topic import MAX_CHUNKS, embed_text


@pytest.fixture()
def built_db(tiny_lm, crafted_sae, small_build_config, tmp_path, steerlab_home):
    from tests.unit.features.test_build import run_build

    run_build(tiny_lm, crafted_sae, tmp_path / "f.db", small_build_config)
    return tmp_path / "f.db"


def _lab(tiny_lm, crafted_sae, path):
    from steerlab.engine.lab import Lab

    return Lab.with_database(tiny_lm, crafted_sae, FeatureStore(path, readonly=True), max_batch=2)


def _inspect(lab, text: str = "the cat sat on the mat"):
    return lab.inspect([{"role": "user", "content": text}])


def test_without_vectors_inspect_ranks_by_specificity_and_says_so(tiny_lm, crafted_sae, built_db, monkeypatch):
    monkeypatch.setattr(context_vectors, "compute", lambda *a, **k: pytest.fail("inspect must not compute vectors"))
    lab = _lab(tiny_lm, crafted_sae, built_db)
    try:
        assert lab.corpus_stats is not None and not lab.labels  # a database with statistics and no labels
        assert lab.topic_vectors is None
        found = _inspect(lab)
        assert found.default_ranking == "specificity" and "topic vectors" in found.note
        assert found.top(3) and found.top(3)[0].ranked_by == "specificity"
    finally:
        lab.close()


def test_stored_context_vectors_make_relevance_the_default(tiny_lm, crafted_sae, built_db, monkeypatch):
    with FeatureStore(built_db) as store:
        sae_id = store.list_saes()[0].sae_id
        vectors = context_vectors.compute(store, sae_id)
        context_vectors.save_context_vectors(store, sae_id, vectors)
    monkeypatch.setattr(context_vectors, "compute", lambda *a, **k: pytest.fail("inspect must not compute vectors"))
    lab = _lab(tiny_lm, crafted_sae, built_db)
    try:
        topic = lab.topic_vectors
        assert topic is not None and topic.sources == ("contexts",) and "context vectors only" in topic.note
        # stored fp16 rows, contrasted: unit rows where a feature has contexts
        norms = np.linalg.norm(topic.contexts, axis=1)
        assert np.allclose(norms[vectors.present], 1.0, atol=1e-3) and np.all(norms[~vectors.present] == 0)
        found = _inspect(lab)
        top = found.top(5)
        assert found.default_ranking == "relevance" and top and all(a.ranked_by == "relevance" for a in top)
        assert all(a.relevance is not None for a in top)
        assert [a.index for a in found.top(5, rank_by="specificity")]  # the specificity ranking, by name
        keys = [a.specificity * max(a.relevance, 0.0) for a in top]
        assert keys == sorted(keys, reverse=True)
    finally:
        lab.close()


def test_embed_text_reads_a_long_text_in_pieces():
    short = embed_text("grilled salmon with rice and a salad")
    assert short.shape == (384,) and abs(float(np.linalg.norm(short)) - 1.0) < 1e-3
    cooking = "Season the chicken, roast it in the oven, and baste it with butter. " * 60  # ~720 words
    code = "import numpy as np; x = np.zeros(3); print(x.sum()) " * 90
    long_cooking, long_code = embed_text(cooking), embed_text(code)
    assert abs(float(np.linalg.norm(long_cooking)) - 1.0) < 1e-3
    # a long text keeps its topic: closer to a short text on the same topic than to one on another
    assert float(long_cooking @ short) > float(long_code @ short)
    assert MAX_CHUNKS * 150 < len((cooking + code).split())  # more pieces than are read: spread over the text
    mixed = embed_text(cooking + code)
    assert float(mixed @ long_cooking) > 0.5 and float(mixed @ long_code) > 0.5


def test_compute_features_ranks_by_relevance_as_inspect_does(tiny_lm, crafted_sae, built_db, tmp_path):
    """The goodfire SDK's per-token route: by default each content token lists its notable firings of the
    conversation's top features by relevance (the ones ``/v1/inspect`` ranks first), in that order, so the SDK's
    count-based ``top(k)`` picks among them; ``top_features`` carries the ranking; specificity stays by name."""
    from fastapi.testclient import TestClient

    from steerlab.features.specificity import NOTABLE_AT, SPECIFIC_AT
    from steerlab.server.app import create_app
    from steerlab.settings import Settings

    with FeatureStore(built_db) as store:
        sae_id = store.list_saes()[0].sae_id
        context_vectors.save_context_vectors(store, sae_id, context_vectors.compute(store, sae_id))
    lab = _lab(tiny_lm, crafted_sae, built_db)
    messages = [{"role": "user", "content": "the cat sat on the mat and the dog ran in the park"}]
    route = "/api/inference/v1/chat-attribution/compute-features"
    try:
        with TestClient(create_app(Settings(db_path=tmp_path / "server.db", open_mode=True), lab)) as client:
            body = client.post(route, json={"messages": messages, "top_k": 3}).json()
            native = client.post("/v1/inspect", json={"messages": messages, "top_k": 3}).json()
            specific = client.post(route, json={"messages": messages, "rank_by": "specificity"}).json()
            first = client.post(route, json={"messages": messages, "top_k": 1}).json()
    finally:
        lab.close()
    assert body["ranked_by"] == native["ranked_by"] == "relevance"
    ranked = [f["index_in_sae"] for f in body["top_features"]]
    assert 2 <= len(ranked) <= 3 and ranked == [f["index"] for f in native["top_features"]]
    listed = [[a["index_in_sae"] for a in t["attributions"]] for t in body["tokens"]]
    assert all(not ids for ids, t in zip(listed, body["tokens"]) if t["template"])
    assert all(ids == sorted(ids, key=ranked.index) for ids in listed)  # each token in the ranking's order
    attributions = [a for t in body["tokens"] for a in t["attributions"]]
    assert set(ranked) == {a["index_in_sae"] for a in attributions}  # every top feature, and only those
    assert all(a["specificity"] >= NOTABLE_AT and a["relevance"] is not None for a in attributions)
    assert {a["index_in_sae"] for t in first["tokens"] for a in t["attributions"]} == {ranked[0]}  # top_k=1
    # the old default, by name: each token's specific firings, however topical
    assert specific["ranked_by"] == "specificity"
    specific_listed = [a for t in specific["tokens"] for a in t["attributions"]]
    assert all(a["specificity"] >= SPECIFIC_AT and "relevance" not in a for a in specific_listed)
