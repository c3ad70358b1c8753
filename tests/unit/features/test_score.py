"""Scorers: offline embedding AUC on held-out examples, LLM detection via a real local server, and the report."""

from __future__ import annotations

import re

import numpy as np
import pytest

from steerlab.features.explain import LLMConfig
from steerlab.features.schema import Label
from steerlab.features.score import EmbeddingScorer, format_report, score_report
from steerlab.features.score_detection import DetectionScorer, parse_answers
from tests.unit.features.labeling_fixtures import FakeLLMServer, crafted_features

FRENCH_WORDS = {"le", "la", "les", "est", "et", "nous", "dans", "une", "des", "de", "du", "il", "elle"}


def label(text: str) -> Label:
    return Label(text=text, explainer="test")


@pytest.fixture(scope="module")
def scorer() -> EmbeddingScorer:
    return EmbeddingScorer()


def test_right_labels_score_high_and_wrong_labels_low(scorer):
    features = crafted_features()
    right = scorer.score(
        list(features.values()), [label("French text"), label("Python code"), label('"because" tokens')]
    )
    wrong = scorer.score(list(features.values()), [label("Python code"), label("French text"), label("animals")])
    for good, bad in zip(right, wrong):
        assert good.scorer == "embedding-auc"
        assert good.score_details["in_sample"] is False  # judged on quantile examples the explainer never saw
        assert good.score > 0.8
        assert good.score > bad.score
    assert right[0].score_details["n_pos"] == 4 and right[0].score_details["n_neg"] == 8


def test_scoring_keeps_the_explainers_evidence(scorer):
    feature = crafted_features()["french"]
    given = Label(text="French text", explainer="offline", score_details={"evidence": 0.4, "stale": 1})
    (result,) = scorer.score([feature], [given])
    assert result.score_details["evidence"] == 0.4 and "stale" not in result.score_details
    assert result.score_details["auc"] == result.score


def test_unlabeled_features_stay_unlabeled(scorer):
    feature = crafted_features()["french"]
    assert scorer.score([feature], [None]) == [None]


def test_feature_without_negatives_falls_back_to_background():
    features = crafted_features()
    bare = features["french"].model_copy(
        update={"examples": [e for e in features["french"].examples if e.kind != "nonactivating"]}
    )
    background = features["python"].examples_of("nonactivating")
    assert EmbeddingScorer().score([bare], [label("French text")])[0].score is None
    scored = EmbeddingScorer(background=background).score([bare], [label("French text")])[0]
    assert scored.score > 0.8


def detection_answers(messages: list[dict]) -> str:
    """A stand-in LLM that judges each excerpt by French stopwords when asked about French text."""
    user = messages[-1]["content"]
    excerpts = re.findall(r"^\d+\. (.*)$", user.split("Excerpts:")[1], flags=re.MULTILINE)
    about_french = "French" in user.split("\n")[0]
    calls = [int(about_french and len(FRENCH_WORDS & set(x.lower().split())) >= 1) for x in excerpts]
    return f"Here you go: {calls}"


def test_detection_scorer_balanced_accuracy_through_a_real_server():
    features = crafted_features()
    french = features["french"]
    config = LLMConfig(base_url="", model="stand-in", timeout_s=2.0, max_retries=0)
    with FakeLLMServer(detection_answers) as server:
        config.base_url = server.base_url
        right, wrong = DetectionScorer(config).score([french, french], [label("French text"), label("cats")])
    assert right.score == 1.0 and right.scorer == "detection:stand-in"
    assert right.score_details["n_pos"] == 4 and right.score_details["n_neg"] == 5
    assert wrong.score == 0.5  # says "no" to everything: balanced accuracy of chance


def test_detection_garbage_keeps_the_label_unscored():
    config = LLMConfig(base_url="", model="stand-in", timeout_s=2.0, max_retries=0)
    with FakeLLMServer(lambda messages: "I think maybe the first few?") as server:
        config.base_url = server.base_url
        (scored,) = DetectionScorer(config).score([crafted_features()["french"]], [label("French text")])
    assert scored.text == "French text" and scored.score is None


@pytest.mark.parametrize(
    "answer, n, expected",
    [
        ("[1, 0, 1]", 3, [1, 0, 1]),
        ("answers: [true, false]", 2, [1, 0]),
        ("[1, 0]", 3, None),
        ("[1, 2, 0]", 3, None),
        ("no list", 2, None),
        (None, 2, None),
        ("[1, 0", 2, None),
    ],
)
def test_parse_answers(answer, n, expected):
    assert parse_answers(answer, n) == expected


def test_score_report_quantiles_and_histogram():
    labels = {
        i: Label(text="x", explainer="offline", score=s, scorer="embedding-auc")
        for i, s in enumerate([0.1, 0.5, 0.55, 0.9, 0.95, 1.0])
    }
    labels[10] = Label(text="unscored", explainer="offline")
    report = score_report(labels, d_sae=20)
    assert (report["features"], report["labeled"], report["scored"]) == (20, 7, 6)
    assert report["quantiles"]["0.5"] == pytest.approx(0.725)
    assert sum(report["histogram"]["counts"]) == 6 and report["histogram"]["counts"][-1] == 3
    text = format_report(report)
    assert "labeled 7 of 20 features, scored 6" in text and "p50=0.725" in text


def test_score_report_of_an_unlabeled_sae():
    report = score_report({}, d_sae=5)
    assert report["scored"] == 0 and report["mean"] is None
    assert "labeled 0 of 5" in format_report(report)


def test_auc_counts_ties_half_and_handles_empty_sides():
    from steerlab.features.explain.views import auc

    assert auc(np.array([2.0, 3.0]), np.array([1.0])) == 1.0
    assert auc(np.array([1.0]), np.array([1.0, 2.0])) == 0.25
    assert np.isnan(auc(np.array([1.0]), np.array([])))
    assert auc(np.array([[2.0], [0.0]]), np.array([[1.0], [1.0]])).tolist() == [1.0, 0.0]


def test_token_bag_scorer_agrees_on_crafted_features():
    features = crafted_features()
    scored = EmbeddingScorer(contexts="tokens").score(
        [features["french"], features["python"]], [label("French text"), label("Python code")]
    )
    assert all(s.score > 0.8 and s.scorer == "embedding-auc:tokens" for s in scored)
