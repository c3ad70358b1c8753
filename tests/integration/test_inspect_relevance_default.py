"""Inspect and contrast on the real default model and its feature database: what a text is about, not
the chat template (issue 18's four texts and pirate-speak contrast)."""

import pytest

from tests.pirate_conversations import PIRATE, PLAIN

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
    return [lab.inspect([{"role": "user", "content": text}]) for text in ISSUE_TEXTS]


@pytest.mark.parametrize("by", ["count", "max"])
def test_the_four_texts_no_longer_share_a_top_8(inspections, by):
    tops = [{a.index for a in found.top(8, by=by, rank_by="specificity")} for found in inspections]
    assert all(len(t) == 8 for t in tops)
    assert not set.intersection(*tops)
    assert all(not (t & TEMPLATE_AND_DENSE) for t in tops)
    assert all(
        a.ranked_by == "specificity" for found in inspections for a in found.top(8, by=by, rank_by="specificity")
    )
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
    result = lab.contrast(PIRATE, PLAIN, top_k=3, rank_by="specificity")
    assert result.ranked_by == "specificity" and "too little data" in result.note
    assert len(result.dataset_1_features) == 3
    for f in result.dataset_1_features:
        assert f.effect_low is not None and f.effect_low <= f.effect <= f.effect_high
    best = result.dataset_1_features[0]
    assert best.rank_biserial == 1.0 and best.effect_low > 0  # higher in both pirate replies than in both plain


# --- relevance (the default with topic vectors): what the text is about -----------------------------------

# Development-set texts (benchmarks/inspect_relevance_dev_data.py) whose top 5 holds a feature about their concept
# under the relevance ranking, with context and label vectors or labels alone, and not under specificity.
ON_TOPIC = [
    ("grief", "We buried my uncle last spring, and my aunt still weeps when she mourns the loss of him."),
    ("biology", "Enzymes are proteins that speed up reactions, and genes encode them in the chromosome."),
    ("plants and flowers", "The orchid needs bright shade, and the sunflower seeds sprouted in the flower pot."),
    ("love and romance", "He kissed her on their first date and whispered that he had fallen in love."),
    ("death", "The coroner confirmed the death, and the obituary ran in the paper before the burial."),
    (
        "computers and software",
        "Install the compiler, then debug the program until the software builds without errors.",
    ),
    ("C code", '#include <stdio.h>\nint main(void) {\n    printf("hi\\n");\n    return 0;\n}'),
    ("emotions", "I was furious at first, then ashamed, and now I just feel lonely and afraid."),
]


def test_relevance_is_the_default_and_finds_what_the_text_is_about(lab):
    from steerlab.features.concept_windows import judge, strongest_windows
    from steerlab.features.concepts import CONCEPTS

    topic = lab.topic_vectors
    assert topic is not None and "labels" in topic.sources  # the shipped database's labels, embedded
    hits = {"relevance": 0, "specificity": 0}
    for concept, text in ON_TOPIC:
        found = lab.inspect([{"role": "user", "content": text}])
        assert found.default_ranking == "relevance"
        for rank_by in hits:
            top = found.top(5, rank_by=rank_by)
            assert len(top) == 5 and all(a.ranked_by == rank_by for a in top)
            features = lab.store.get_features(lab.sae_id, [a.index for a in top], with_examples=True)
            hits[rank_by] += any(judge(strongest_windows(f), CONCEPTS[concept])[0] for f in features)
    assert hits["relevance"] >= 6 and hits["specificity"] <= 2, hits


def test_the_four_texts_under_relevance_share_nothing_and_skip_the_template(lab):
    tops = []
    for text in ISSUE_TEXTS:
        found = lab.inspect([{"role": "user", "content": text}])
        top = found.top(8)
        assert len(top) == 8 and all(a.ranked_by == "relevance" and a.specificity >= 2.5 for a in top)
        tops.append({a.index for a in top})
    assert not set.intersection(*tops)
    assert all(not (t & TEMPLATE_AND_DENSE) for t in tops)
