"""Inspect and contrast on the real default model and its feature database: what a text is about, not
the chat template (issue 18's four texts and pirate-speak contrast)."""

import pytest

from steerlab.analysis.contrast import contrast
from steerlab.analysis.inspect import inspect

ISSUE_TEXTS = [
    "What's the weather going to be like this weekend? I heard it might rain.",
    "How long should I roast a chicken in the oven, and at what temperature?",
    "My cat keeps scratching the sofa. How do I get her to stop?",
    "My father died last month and I can't stop crying. How do people cope with grief?",
]
TEMPLATE_AND_DENSE = {8982, 8886, 2212}  # "counting" and "line breaks" on the template; "Python None" everywhere


@pytest.fixture(scope="module")
def lab(default_lm, default_sae):
    from steerlab.bundled_saes import bundled_sae_path
    from steerlab.engine.lab import Lab
    from steerlab.features.identity import DB_FILENAME
    from steerlab.features.store import FeatureStore

    store = FeatureStore(bundled_sae_path(default_lm.name) / DB_FILENAME, readonly=True)
    lab = Lab.with_database(default_lm, default_sae, store, max_batch=2)
    yield lab
    lab.close()


@pytest.fixture(scope="module")
def inspections(lab):
    out = []
    for text in ISSUE_TEXTS:
        messages = [{"role": "user", "content": text}]
        out.append(
            inspect(lab.lm, lab.sae, messages, labels=lab.labels, sae_id=lab.sae_id, corpus_stats=lab.corpus_stats)
        )
    return out


@pytest.mark.parametrize("by", ["count", "max"])
def test_the_four_texts_no_longer_share_a_top_8(inspections, by):
    tops = [{a.index for a in found.top(8, by=by)} for found in inspections]
    assert all(len(t) == 8 for t in tops)
    assert not set.intersection(*tops)
    assert all(not (t & TEMPLATE_AND_DENSE) for t in tops)
    assert all(a.ranked_by == "specificity" for found in inspections for a in found.top(8, by=by))
    # the old ranking, by name and with the template, is what the issue saw: one shared set
    old = []
    for found in inspections:
        found.include_template = True
        old.append({a.index for a in found.top(8, by=by, rank_by="frequency")})
        found.include_template = False
    assert set.intersection(*old) & TEMPLATE_AND_DENSE


def test_the_template_and_the_default_system_prompt_are_not_scored(inspections):
    found = inspections[0]
    template = [t for t, c in zip(found.tokens, found.content) if not c]
    assert "".join(template).count("You are a helpful AI assistant named SmolLM") == 1
    assert "weather" in "".join(t for t, c in zip(found.tokens, found.content) if c)
    assert all(not t.features for t in found.per_token(specific_only=True, scored_only=True) if t.template)


def test_pirate_contrast_with_two_conversations_a_side(lab):
    def convo(user, reply):
        return [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]

    plain = [
        convo("How was your trip?", "It went well. The flight was on time and the hotel was comfortable."),
        convo("What are you doing today?", "I am going to the market and then I will read a book at home."),
    ]
    pirate = [
        convo("How was your trip?", "Arr, matey! The voyage be smooth, and the grog be plenty aboard me ship!"),
        convo("What are you doing today?", "Ahoy! I be hoistin' the sails and searchin' for buried treasure, arr!"),
    ]
    result = contrast(lab.lm, lab.sae, pirate, plain, top_k=3, labels=lab.labels, corpus_stats=lab.corpus_stats)
    assert result.ranked_by == "specificity" and "too little data" in result.note
    assert len(result.dataset_1_features) == 3
    for f in result.dataset_1_features:
        assert f.effect_low is not None and f.effect_low <= f.effect <= f.effect_high
    best = result.dataset_1_features[0]
    assert best.rank_biserial == 1.0 and best.effect_low > 0  # higher in both pirate replies than in both plain
