"""Search beyond labels: by what a feature's contexts are about, by example text, and both fused with labels;
every hit says why it was returned. Real stores, the real embedding model, the tiny model and a crafted SAE."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from steerlab.cli import app as steerlab_app
from steerlab.errors import InvalidInputError
from steerlab.features import context_vectors
from steerlab.features.schema import FeatureStats, Histogram
from steerlab.features.search import MAX_EXAMPLE_CHARS, FeatureSearch, SearchInputError, check_example_text
from steerlab.features.specificity import CorpusStats, reason, specificity
from steerlab.features.store import FeatureStore
from tests.unit.features.labeling_fixtures import SAE_ID, crafted_features
from tests.unit.features.test_search import (
    BECAUSE,
    D_SAE,
    FRENCH,
    PYTHON,
    labeled_db,  # noqa: F401 (a module fixture, used below)
    new_store,
)

UNKNOWN_SCRIPT = "ⵜⴰⵎⴰⵣⵉⵖⵜ 𒀀𒀁"
"""Tifinagh and cuneiform: every word piece of the embedding model is [UNK]."""


@pytest.fixture()
def unlabeled_db(tmp_path, steerlab_home):
    """The crafted features (French, Python, "because") with their examples and no labels at all."""
    path = tmp_path / "features.db"
    new_store(path).close()
    return path


def test_contexts_find_unlabeled_features_by_what_their_windows_are_about(unlabeled_db):
    with FeatureStore(unlabeled_db, readonly=True) as store:
        search = FeatureSearch(store, SAE_ID)
        assert search.search("French", top_k=3, mode="semantic") == []  # nothing to find by label
        for query, expected in (("French sentences", FRENCH), ("Python source code", PYTHON)):
            hits = search.search(query, top_k=3, by="contexts")
            assert hits[0].index == expected, (query, hits)
            assert hits[0].reason == "contexts" and hits[0].snippet
        assert {h.index for h in search.contexts("anything", top_k=D_SAE)} == {FRENCH, PYTHON, BECAUSE}


def test_context_vectors_are_cached_once_and_recomputed_after_a_rebuild(unlabeled_db, steerlab_home, monkeypatch):
    with FeatureStore(unlabeled_db, readonly=True) as store:
        first = context_vectors.load(store, SAE_ID)
    (cached,) = (steerlab_home / "cache").glob("context-vectors-*.npz")
    compute = context_vectors.compute
    monkeypatch.setattr(context_vectors, "compute", lambda *a, **k: pytest.fail("computed again"))
    with FeatureStore(unlabeled_db, readonly=True) as store:
        again = context_vectors.load(store, SAE_ID)
    assert np.allclose(first.raw, again.raw, atol=1e-3) and first.snippets == again.snippets
    monkeypatch.setattr(context_vectors, "compute", compute)  # (undo() would also drop STEERLAB_HOME)
    with FeatureStore(unlabeled_db) as store:  # a rebuild changes a feature's strongest examples
        french = crafted_features()["because"].model_copy(update={"index": FRENCH})
        store.put_features([french])
        changed = context_vectors.load(store, SAE_ID)
    assert len(list((steerlab_home / "cache").glob("context-vectors-*.npz"))) == 2 and cached.exists()
    assert not np.allclose(changed.raw[FRENCH], first.raw[FRENCH], atol=1e-3)
    contrasted = changed.contrasted()
    assert np.allclose(np.linalg.norm(contrasted[[FRENCH, PYTHON, BECAUSE]], axis=1), 1.0, atol=1e-5)
    assert not contrasted[D_SAE - 1].any()  # a feature with no contexts stays a zero row


def test_stored_vectors_load_without_reading_every_feature(unlabeled_db, steerlab_home, monkeypatch):
    """The shipped database stores its vectors; their snippets were read from all 9,216 features' examples at load
    (~9 s, inside a fresh server's first default search: the SDK timed out). Now each hit's is read when shown."""
    with FeatureStore(unlabeled_db) as store:
        computed = context_vectors.compute(store, SAE_ID)
        context_vectors.save_context_vectors(store, SAE_ID, computed)
    assert not list((steerlab_home / "cache").glob("context-vectors-*.npz"))  # stored only: nothing cached here
    with FeatureStore(unlabeled_db, readonly=True) as store:
        monkeypatch.setattr(store, "iter_features", lambda *a, **k: pytest.fail("read every feature"))
        search = FeatureSearch(store, SAE_ID)
        search.warm()  # loads the stored vectors
        hits = search.search("French sentences", top_k=3, by="contexts")
        assert hits[0].index == FRENCH and hits[0].snippet == computed.snippets[FRENCH]
        assert [h.snippet for h in hits] == [computed.snippets[h.index] or None for h in hits]


def test_hybrid_fuses_label_and_context_evidence_and_says_why(labeled_db_with_home):
    with FeatureStore(labeled_db_with_home, readonly=True) as store:
        search = FeatureSearch(store, SAE_ID)
        hits = search.search("Python code", top_k=3, by="hybrid")
        label_only = search.search("Python code", top_k=3, by="label")
    assert hits[0].index == PYTHON and set(hits[0].reason.split("+")) == {"label", "contexts"}
    assert hits[0].snippet and all(h.reason for h in hits)
    assert all(h.reason == "label" and h.snippet is None for h in label_only)


@pytest.fixture()
def labeled_db_with_home(labeled_db, steerlab_home):  # noqa: F811 (the imported fixture)
    return labeled_db


def test_a_query_in_an_unknown_script_is_refused_by_meaning_and_matched_by_words(labeled_db_with_home):
    with FeatureStore(labeled_db_with_home, readonly=True) as store:
        search = FeatureSearch(store, SAE_ID)
        for by, mode in (("label", "semantic"), ("contexts", "hybrid")):
            with pytest.raises(SearchInputError) as err:
                search.search(UNKNOWN_SCRIPT, top_k=3, mode=mode, by=by)
            assert err.value.field == "query" and "English" in str(err.value)
        assert search.search(UNKNOWN_SCRIPT, top_k=3, mode="hybrid", by="hybrid") == []  # words only: no match
        assert search.search("погода", top_k=1, mode="semantic")  # Cyrillic: known to the embedding model
        with pytest.raises(SearchInputError, match="by"):
            search.search("French", by="vibes")


@pytest.mark.parametrize(
    "text, needle",
    [
        ("", "non-empty"),
        ("   \n", "non-empty"),
        ("x" * (MAX_EXAMPLE_CHARS + 1), "at most"),
        ("PK\x03\x04\x00\x00binary", "binary"),
        ("\ufffd\ufffd\x01\x02\x03 garbage \ufffd\ufffd\x7f", "binary"),
    ],
)
def test_bad_example_texts_name_the_field(text, needle):
    with pytest.raises(InvalidInputError, match=needle) as err:
        check_example_text(text)
    assert err.value.field == "text"


def test_ordinary_example_texts_pass():
    for text in ("Le chat est sur la table.", "def f(x):\n\treturn x  # tabs and newlines", "天气很好 🙂"):
        assert check_example_text(text) == text


def _stats(density: float, q99: float, tokens: int = 100_000) -> FeatureStats:
    edges = [0.0, q99 / 2, q99, 2 * q99]
    return FeatureStats(
        density=density,
        max_act=2 * q99,
        mean_act=q99 / 2,
        quantiles={"0.5": q99 / 2, "0.99": q99},
        histogram=Histogram(edges=edges, counts=[50, 49, 1]),
        tokens_scanned=tokens,
    )


def test_specificity_prefers_rare_features_at_their_own_strong_level():
    stats = CorpusStats.from_records([_stats(0.2, 40.0), _stats(1e-4, 3.0), None, _stats(1e-4, 3.0)])
    got = specificity(torch.tensor([40.0, 3.0, 5.0, 0.0]), stats)
    assert got[1] > got[0] > 0  # the same relative level (its 0.99 quantile): the rare feature is the unusual one
    assert got[3] == 0  # did not fire
    assert got[2] > got[0]  # never seen firing in the corpus: scored as if it had fired once
    assert specificity(torch.tensor([80.0, 0, 0, 0]), stats)[0] > got[0]  # stronger than usual: more unusual
    assert reason(float(got[1])).startswith(f"this active on 1 in {10 ** float(got[1]):,.0f} corpus tokens")


@pytest.fixture()
def crafted_lab(tiny_lm, crafted_sae, small_build_config, tmp_path, steerlab_home):
    """A lab over the tiny model, the crafted SAE (feature CRAFTED fires only on " mat") and its built database."""
    from steerlab.engine.lab import Lab
    from tests.unit.features.test_build import run_build

    result = run_build(tiny_lm, crafted_sae, tmp_path / "f.db", small_build_config)
    store = FeatureStore(tmp_path / "f.db", readonly=True)
    lab = Lab.with_database(tiny_lm, crafted_sae, store, max_batch=2)
    assert lab.sae_id == result.sae_id
    yield lab
    lab.close()


def test_search_by_example_finds_the_feature_the_text_wakes(crafted_lab):
    from tests.unit.features.conftest import CRAFTED

    # The random tiny features are dense, and one at its corpus maximum is as unusual as CRAFTED at its median
    # (specificity: corpus tail probability), so CRAFTED is among the first few, not necessarily first.
    hits = crafted_lab.find_features(example_text="the cat sat on the mat", top_k=5)
    crafted = next(h for h in hits if h.index == CRAFTED)
    assert crafted.reason == "example"
    assert "' mat'" in crafted.snippet and "corpus tokens" in crafted.snippet
    assert CRAFTED not in [h.index for h in crafted_lab.find_features(example_text="the dog sat on a rug", top_k=5)]
    with pytest.raises(InvalidInputError) as err:
        crafted_lab.find_features(example_text="\x00\x01\x02")
    assert err.value.field == "text"
    with pytest.raises(SearchInputError):
        crafted_lab.find_features()


def test_search_routes_say_why_and_refuse_bad_input(crafted_lab, tmp_path):
    from fastapi.testclient import TestClient

    from steerlab.server.app import create_app
    from steerlab.settings import Settings
    from tests.unit.features.conftest import CRAFTED

    settings = Settings(db_path=tmp_path / "server.db", open_mode=True)
    with TestClient(create_app(settings, crafted_lab)) as client:
        ember = client.post(
            "/api/inference/v1/features/search", json={"example_text": "the cat sat on the mat", "top_k": 5}
        )
        assert ember.status_code == 200, ember.text
        found = {f["index_in_sae"]: f for f in ember.json()["features"]}
        assert found[CRAFTED]["reason"] == "example" and found[CRAFTED]["id"]
        native = client.post("/v1/features/search", json={"example_text": "the cat sat on the mat", "top_k": 5})
        assert CRAFTED in [f["index"] for f in native.json()["features"]]
        for body, field in (({"example_text": "\x01\x02\x03\x04"}, "text"), ({"top_k": 3}, "query")):
            bad = client.post("/v1/features/search", json=body)
            assert bad.status_code == 400 and field in bad.text, bad.text
        busy = client.get("/v1/features/search", params={"q": "mat", "by": "contexts"})
        assert busy.status_code in (200, 503)  # 503 while the context vectors are computed in the background
        for _ in range(600):
            got = client.get("/api/inference/v1/features/search", params={"query": "mat", "by": "hybrid"})
            if got.status_code != 503:
                break
            import time

            time.sleep(0.1)
        assert got.status_code == 200 and all(f["reason"] for f in got.json()["features"]), got.text
        assert client.get("/v1/features/search", params={"q": "mat", "by": "vibes"}).status_code in (400, 422)


def test_cli_search_by_contexts_prints_json_with_reasons(unlabeled_db):
    result = CliRunner().invoke(
        steerlab_app,
        ["features", "search", "Python source code", "--db", str(unlabeled_db), "--by", "contexts", "--json"],
    )
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert hits[0]["index"] == PYTHON and "label" in hits[0] and hits[0]["reason"] == "contexts"


def test_cli_refuses_a_binary_example_file_before_loading_anything(unlabeled_db, tmp_path):
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 4)
    result = CliRunner().invoke(
        steerlab_app, ["features", "search", "--example-file", str(blob), "--db", str(unlabeled_db)]
    )
    assert result.exit_code != 0 and "binary" in result.output and "text" in result.output
    result = CliRunner().invoke(steerlab_app, ["features", "search", "--db", str(unlabeled_db)])
    assert result.exit_code != 0 and "query" in result.output


def same_label_store(path) -> FeatureStore:
    """The crafted store with the French and Python features both labeled "source code", the French one with the
    stronger evidence (so label search puts it first among the two; their contexts tell them apart)."""
    from steerlab.features.schema import Label

    store = new_store(path)
    store.set_labels(
        SAE_ID,
        {
            FRENCH: Label(text="source code", explainer="test", score_details={"evidence": 0.9}),
            PYTHON: Label(text="source code", explainer="test", score_details={"evidence": 0.1}),
        },
    )
    return store


@pytest.fixture()
def same_label_db(tmp_path, steerlab_home):
    path = tmp_path / "features.db"
    same_label_store(path).close()
    return path


def test_hybrid_lets_the_contexts_decide_between_labels_that_match_alike(same_label_db):
    """Labels propose, contexts decide: the feature whose strongest windows are Python comes first for "Python
    source code" by hybrid, though label search (a tie on the label, broken by evidence) puts the French one first."""
    with FeatureStore(same_label_db, readonly=True) as store:
        search = FeatureSearch(store, SAE_ID)
        by_label = search.search("Python source code", top_k=2, by="label")
        hybrid = search.search("Python source code", top_k=2, by="hybrid")
    assert [h.index for h in by_label] == [FRENCH, PYTHON]
    assert [h.index for h in hybrid] == [PYTHON, FRENCH]
    assert hybrid[0].reason == "label+contexts" and hybrid[0].snippet and hybrid[0].score > hybrid[1].score


def test_the_default_rests_on_contexts_only_when_they_are_at_hand(same_label_db, monkeypatch):
    """Unsaid, ``by`` is hybrid when the context vectors are stored or cached and label otherwise; a default search
    never starts their computation (minutes on a CPU)."""
    with FeatureStore(same_label_db, readonly=True) as store:
        compute = context_vectors.compute
        monkeypatch.setattr(context_vectors, "compute", lambda *a, **k: pytest.fail("computed for a default search"))
        search = FeatureSearch(store, SAE_ID)
        assert search.default_by() == "label"
        assert [h.reason for h in search.search("Python source code", top_k=2)] == ["label", "label"]
        monkeypatch.setattr(context_vectors, "compute", compute)
        context_vectors.load(store, SAE_ID)  # computed and cached on this machine, as `--by hybrid` would
        fresh = FeatureSearch(store, SAE_ID)
        assert fresh.default_by() == "hybrid"
        hits = fresh.search("Python source code", top_k=2)
        assert [h.index for h in hits] == [PYTHON, FRENCH] and hits[0].reason == "label+contexts"
    result = CliRunner().invoke(
        steerlab_app, ["features", "search", "Python source code", "--db", str(same_label_db), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert [h["index"] for h in json.loads(result.stdout)][:2] == [PYTHON, FRENCH]


def test_hybrid_first_hits_do_not_change_with_top_k(labeled_db_with_home):
    with FeatureStore(labeled_db_with_home, readonly=True) as store:
        search = FeatureSearch(store, SAE_ID)
        few = search.search("code", top_k=2, by="hybrid")
        many = search.search("code", top_k=D_SAE, by="hybrid")
    assert [h.index for h in many[:2]] == [h.index for h in few]
