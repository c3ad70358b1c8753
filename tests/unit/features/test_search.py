"""Labeling a real store end to end (offline), then every search mode over it, and the two CLI commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from steerlab.cli import app as steerlab_app
from steerlab.features.explain import OfflineExplainer
from steerlab.features.explain.base import Explainer
from steerlab.features.explain.run import background_examples, label_features
from steerlab.features.schema import Label, SAEInfo
from steerlab.features.score import EmbeddingScorer
from steerlab.features.search import LABEL_VECTORS, MAX_QUERY_CHARS, FeatureSearch, SearchInputError
from steerlab.features.store import FeatureStore
from tests.unit.features.labeling_fixtures import SAE_ID, crafted_features

D_SAE = 8
FRENCH, PYTHON, BECAUSE, UNFIRED, TWIN_OF_FRENCH = 0, 1, 2, 3, 4


def new_store(path) -> FeatureStore:
    """Three crafted features, the rest never fired; decoder row 4 is nearly row 0."""
    store = FeatureStore(path)
    store.add_sae(
        SAEInfo(sae_id=SAE_ID, model="tiny", hookpoint="model.layers.1", d_in=4, d_sae=D_SAE, architecture="topk")
    )
    store.put_features(list(crafted_features().values()))
    decoder = torch.eye(D_SAE, 4 * D_SAE)[:, : 4 * D_SAE]
    decoder[TWIN_OF_FRENCH] = decoder[FRENCH] + 0.1 * decoder[TWIN_OF_FRENCH]
    store.save_vectors(SAE_ID, "decoder", decoder)
    return store


@pytest.fixture(scope="module")
def labeled_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("features") / "features.db"
    with new_store(path) as store:
        background = background_examples(store, SAE_ID, D_SAE)
        result = label_features(
            store,
            SAE_ID,
            OfflineExplainer(background=background),
            EmbeddingScorer(background=background),
            progress=False,
        )
    assert (result.attempted, result.labeled, result.failed) == (D_SAE, 3, D_SAE - 3)
    return path


@pytest.fixture()
def searcher(labeled_db):
    with FeatureStore(labeled_db, readonly=True) as store:
        yield FeatureSearch(store, SAE_ID)


def test_labels_scores_and_embeddings_are_stored(labeled_db):
    with FeatureStore(labeled_db, readonly=True) as store:
        labels = store.labels(SAE_ID)
        vectors = store.load_vectors(SAE_ID, LABEL_VECTORS)
    assert sorted(labels) == [FRENCH, PYTHON, BECAUSE]
    assert all(lab.score is not None and lab.scorer == "embedding-auc" for lab in labels.values())
    assert tuple(vectors.shape) == (D_SAE, 384)
    norms = vectors.float().norm(dim=1)
    assert torch.allclose(norms[[FRENCH, PYTHON, BECAUSE]], torch.ones(3), atol=1e-2) and norms[UNFIRED] == 0


@pytest.mark.parametrize("mode", ["semantic", "lexical", "hybrid"])
@pytest.mark.parametrize("query, expected", [("French", FRENCH), ("Python", PYTHON), ("because", BECAUSE)])
def test_search_finds_the_crafted_feature_for_its_concept(searcher, mode, query, expected):
    hits = searcher.search(query, top_k=3, mode=mode)
    assert hits[0].index == expected
    assert hits[0].label == searcher.labels[expected].text and hits[0].uuid


@pytest.mark.parametrize("query", ["langue française", "def functions in code", "explanations giving a reason"])
def test_semantic_search_understands_paraphrases(searcher, query):
    top = searcher.semantic(query, top_k=1)[0].index
    assert top == {"langue française": FRENCH, "def functions in code": PYTHON}.get(query, BECAUSE)


@pytest.mark.parametrize(
    "query",
    [
        '"',
        '"French',
        "NEAR(French text)",
        "*",
        "Fren*",
        "(((",
        "French)",
        "AND OR NOT",
        "text:French",
        "^French",
        "French - text",
        "'; DROP TABLE features; --",
        "🙂",
    ],
)
def test_hostile_fts_syntax_never_errors(searcher, query):
    for mode in ("lexical", "hybrid"):
        assert isinstance(searcher.search(query, top_k=5, mode=mode), list)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"query": ""}, "query"),
        ({"query": "   "}, "query"),
        ({"query": "x" * (MAX_QUERY_CHARS + 1)}, "query"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": 1001}, "top_k"),
        ({"top_k": True}, "top_k"),
        ({"mode": "fuzzy"}, "mode"),
    ],
)
def test_bad_input_names_the_field(searcher, kwargs, field):
    args = {"query": "French", "top_k": 5, "mode": "semantic", **kwargs}
    with pytest.raises(SearchInputError) as err:
        searcher.search(**args)
    assert err.value.field == field and field in str(err.value) and isinstance(err.value, ValueError)


def test_unlabeled_features_never_come_back(searcher):
    hits = searcher.semantic("anything at all", top_k=D_SAE)
    assert sorted(h.index for h in hits) == [FRENCH, PYTHON, BECAUSE]


def test_neighbors_by_decoder_cosine(searcher):
    hits = searcher.neighbors(FRENCH, top_k=2)
    assert hits[0].index == TWIN_OF_FRENCH and hits[0].score > 0.99 and FRENCH not in [h.index for h in hits]
    with pytest.raises(SearchInputError, match="indices"):
        searcher.neighbors(D_SAE)


def test_neighbors_from_a_given_decoder(labeled_db):
    decoder = np.zeros((D_SAE, 3), dtype=np.float32)
    decoder[:, 0], decoder[PYTHON] = 1.0, [0.0, 1.0, 0.0]
    decoder[BECAUSE] = [0.1, 1.0, 0.0]
    with FeatureStore(labeled_db, readonly=True) as store:
        assert FeatureSearch(store, SAE_ID, decoder=decoder).neighbors(PYTHON, 1)[0].index == BECAUSE


def test_rerank_and_lookup(searcher):
    order = [h.index for h in searcher.rerank([UNFIRED, PYTHON, BECAUSE, FRENCH], "French text")]
    assert order[0] == FRENCH and order[-1] == UNFIRED
    features = searcher.lookup([BECAUSE, FRENCH])
    assert [f.index for f in features] == [BECAUSE, FRENCH] and features[0].label is not None
    with pytest.raises(SearchInputError, match="indices"):
        searcher.rerank([-1], "x")


def test_unknown_sae_is_a_clear_error(labeled_db):
    with FeatureStore(labeled_db, readonly=True) as store, pytest.raises(KeyError, match="unknown SAE"):
        FeatureSearch(store, "nope")


class FailingExplainer(Explainer):
    name = "broken"

    def explain(self, features):
        return [None] * len(features)


def test_relabel_with_a_failing_explainer_loses_nothing(tmp_path, labeled_db):
    import shutil

    path = tmp_path / "copy.db"
    shutil.copy(labeled_db, path)
    shutil.copytree(str(labeled_db) + ".vectors", str(path) + ".vectors")
    with FeatureStore(path) as store:
        before = store.labels(SAE_ID)
        result = label_features(store, SAE_ID, FailingExplainer(), relabel=True, progress=False)
        assert (result.labeled, result.failed) == (0, D_SAE)
        assert store.labels(SAE_ID) == before


def test_rescore_keeps_label_texts_and_replaces_scores(tmp_path, labeled_db):
    import shutil

    path = tmp_path / "copy.db"
    shutil.copy(labeled_db, path)
    with FeatureStore(path) as store:
        before = store.labels(SAE_ID)
        result = label_features(store, SAE_ID, None, EmbeddingScorer(contexts="tokens"), rescore=True, progress=False)
        after = store.labels(SAE_ID)
    assert result.attempted == 3 and result.scored == 3
    assert {i: lab.text for i, lab in after.items()} == {i: lab.text for i, lab in before.items()}
    assert {lab.scorer for lab in after.values()} == {"embedding-auc:tokens"}


def test_features_sharing_a_label_come_strongest_first(tmp_path):
    def lab(evidence, score):
        return Label(text="pirate speech", explainer="offline", score=score, score_details={"evidence": evidence})

    with new_store(tmp_path / "f.db") as store:
        store.set_labels(SAE_ID, {5: lab(0.1, 0.9), 6: lab(0.3, 0.2), 7: lab(0.3, 0.5)})
        hits = FeatureSearch(store, SAE_ID).semantic("pirates", top_k=3)
    assert [h.index for h in hits] == [7, 6, 5] and hits[0].score == hits[2].score


def test_search_sees_labels_written_without_embeddings(tmp_path):
    with new_store(tmp_path / "f.db") as store:
        store.set_label(SAE_ID, UNFIRED, Label(text="pirate speech", explainer="human"))
        assert FeatureSearch(store, SAE_ID).semantic("pirates", top_k=1)[0].index == UNFIRED


def run_cli(args: list[str]):
    return CliRunner().invoke(steerlab_app, ["features", *args])


def test_cli_label_then_search(tmp_path):
    path = tmp_path / "cli.db"
    new_store(path).close()
    out = run_cli(["label", "--db", str(path), "--limit", "2", "--json"])
    assert out.exit_code == 0, out.output
    first = json.loads(out.stdout)
    assert (first["attempted"], first["labeled"]) == (2, 2) and first["report"]["scored"] == 2
    out = run_cli(["label", "--db", str(path)])  # resumes: only the rest
    assert out.exit_code == 0 and "labeled 1 of 6 attempted" in out.stdout and "quantiles:" in out.stdout
    out = run_cli(["search", "French", "--db", str(path), "--json", "--top-k", "1"])
    assert out.exit_code == 0 and json.loads(out.stdout)[0]["index"] == FRENCH


@pytest.mark.parametrize(
    "args, message",
    [
        (["search", "", "--db", "{db}"], "query"),
        (["search", "x", "--db", "{db}", "--top-k", "0"], "top_k"),
        (["search", "x", "--db", "{db}", "--mode", "fuzzy"], "--mode"),
        (["search", "x", "--db", "{db}", "--sae-id", "nope"], "unknown SAE"),
        (["search", "x", "--db", "{missing}"], "--db"),
        (["label", "--db", "{db}", "--backend", "gpt"], "--backend"),
        (["label", "--db", "{db}", "--explainer", "wordnet"], "--explainer"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path, args, message):
    path = tmp_path / "cli.db"
    new_store(path).close()
    args = [a.format(db=path, missing=tmp_path / "missing.db") for a in args]
    out = run_cli(args)
    assert out.exit_code == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]


def test_a_feature_that_fires_on_the_query_word_comes_after_one_that_claims_the_concept(tmp_path):
    """Searching "numbers", a feature labeled 'the word "number"' (it fires on the word, #5555) is a weaker
    answer than one labeled "numeral", though its label embeds a little closer to the query (0.77 vs 0.76)."""
    from steerlab.features.search import WORD_PENALTY, label_word

    assert WORD_PENALTY > 0.77 - 0.76
    assert label_word('the word "number"') == "number" and label_word('"email" tokens in French text') == "email"
    assert label_word("numeral") is None and label_word("commas") is None and label_word('"," tokens') is None
    with new_store(tmp_path / "f.db") as store:
        store.set_labels(
            SAE_ID, {5: Label(text='the word "number"', explainer="t"), 6: Label(text="numeral", explainer="t")}
        )
        search = FeatureSearch(store, SAE_ID)
        assert [h.index for h in search.semantic("numbers", top_k=2)] == [6, 5]
        assert [h.index for h in search.semantic("numeral systems", top_k=2)] == [6, 5]
        # lexical search: word matches in the label go after the others that match
        store.set_labels(
            SAE_ID, {5: Label(text='"number" tokens', explainer="t"), 6: Label(text="number theory", explainer="t")}
        )
        search.refresh()
        assert [h.index for h in search.lexical("numbers", top_k=2)] == [6, 5]


def test_a_description_is_found_by_where_its_token_fires(tmp_path):
    """'"g" tokens in shell commands' (#7405: its windows are shell commands, confirmed on held-out examples)
    is found by "shell commands" ahead of a "command" label (cosine 0.76 vs 0.49 for the whole description)."""
    from steerlab.features.search import label_where

    assert label_where('"g" tokens in shell commands') == "shell commands"
    assert label_where('the word "email"') is None and label_where("French text") is None
    with new_store(tmp_path / "f.db") as store:
        store.set_labels(
            SAE_ID,
            {5: Label(text="command", explainer="t"), 6: Label(text='"g" tokens in shell commands', explainer="t")},
        )
        search = FeatureSearch(store, SAE_ID)
        assert [h.index for h in search.semantic("shell commands", top_k=2)] == [6, 5]
        assert [h.index for h in search.semantic("commands", top_k=2)] == [5, 6]  # the whole label still counts
        # a label that is the concept outright comes before a description that fires in it
        store.set_labels(
            SAE_ID,
            {5: Label(text='"x" tokens in Python code', explainer="t"), 6: Label(text="Python code", explainer="t")},
        )
        search.refresh()
        assert [h.index for h in search.semantic("Python code", top_k=2)] == [6, 5]
