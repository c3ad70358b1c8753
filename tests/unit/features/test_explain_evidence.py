"""The evidence explainer (issue 14 item 3): candidates from contrast, keywords, hypernyms, tokens, logit
effects and language, chosen by AUC on the examples it is shown; WordNet as its vocabulary."""

from __future__ import annotations

import pytest

from steerlab.features.explain.evidence import EvidenceExplainer
from steerlab.features.explain.language import claimed_language
from steerlab.features.explain.wordnet import lemmas, lemmatize, vocabulary_phrases
from tests.unit.features.labeling_fixtures import ENGLISH, crafted_features, make_feature

BAKING = [
    "Mix the flour with the sugar and a pinch of salt before adding the butter.",
    "Whisk two eggs into the flour, then fold in the melted butter slowly.",
    "Bake the dough for twenty minutes until the bread is golden brown.",
    "Add a cup of sugar to the flour and stir in the butter and eggs.",
    "Knead the dough on a floured board, then let the bread rise for an hour.",
    "Cream the butter with the sugar until pale, then beat in the eggs.",
    "Sift the flour twice so the cake is light; grease the tin with butter.",
    "Pour the batter into the pan and bake the cake at a moderate heat.",
    "Brush the loaf with egg and bake until the crust of the bread is crisp.",
    "Rub the butter into the flour with your fingertips until it looks like crumbs.",
    "Leave the dough to rest, then roll it out and cut the biscuits.",
    "Stir the sugar into the warm milk, then add the yeast and the flour.",
]


@pytest.fixture(scope="module")
def explainer(tmp_path_factory) -> EvidenceExplainer:
    return EvidenceExplainer(cache_dir=tmp_path_factory.mktemp("vocab"))


def test_wordnet_vocabulary_and_lemmatizer():
    table = lemmas()
    assert len(table) > 15_000
    assert table["flour"].lexfile == "food" and "foodstuff" in table["flour"].hypernyms
    assert lemmatize("cats") == "cat" and lemmatize("mice") == "mouse" and lemmatize("dishes") == "dish"
    assert lemmatize("the") is None and lemmatize("xqzzy") is None
    assert "half-breed" not in table and "bastard" not in table  # slurs and insults are never labels
    assert "black" in table and "boy" in table  # words whose commonest sense is not one
    phrases = vocabulary_phrases()
    assert "Python code" in phrases and "SQL code" in phrases  # formats from Pygments' lexers
    assert not any(claimed_language(p) for p in phrases)  # languages are the identifier's, not the vocabulary's


def test_topic_feature_gets_a_topic_label_from_its_contexts(explainer):
    feature = make_feature(5, BAKING, lambda t: True, ENGLISH[:8])
    label = explainer.explain([feature])[0]
    words = {"flour", "butter", "sugar", "dough", "bread", "cake", "food", "foodstuff", "baking", "bake", "ingredient"}
    assert any(w in label.text.lower() for w in words), label.text
    assert label.explainer == "offline:evidence"
    assert label.score_details["candidates"] >= 5 and label.score_details["choice_auc"] > 0.8


def test_candidates_include_keywords_hypernyms_and_promoted_words(explainer):
    feature = make_feature(6, BAKING, lambda t: True, ENGLISH[:8], promoted=[" ovens", " oven", "(", " recipe"])
    view = [e for e in feature.examples if e.kind == "top"]
    import numpy as np

    cands = explainer.candidates(feature, view, np.zeros(explainer.vocabulary.vectors.shape[1], dtype=np.float32))
    assert len({"flour", "butter", "sugar", "egg", "dough"} & set(cands)) >= 2  # keywords, lemmatized
    assert "food" in cands or "foodstuff" in cands  # a hypernym several keywords share
    assert "oven" in cands and "recipe" in cands  # logit effects: words the feature promotes


def test_languages_and_single_tokens_still_decide_outright(explainer):
    features = crafted_features()
    labels = dict(zip(features, explainer.explain(list(features.values()))))
    assert "french" in labels["french"].text.lower()
    assert "because" in labels["because"].text.lower()
    assert "python" in labels["python"].text.lower()


def test_dead_feature_gets_no_label(explainer):
    dead = crafted_features()["french"].model_copy(update={"examples": []})
    assert explainer.explain([dead]) == [None]
