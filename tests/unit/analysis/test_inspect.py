"""Inspect: per-token codes in units and raw, aggregates, top features, through a variant."""

import pytest
import torch

from steerlab.analysis.inspect import inspect
from steerlab.models.hooks import forward_to_hookpoint
from steerlab.steering.conversation import conversation_ids
from steerlab.steering.errors import ContextLengthError, SteeringError, UnknownFeatureError
from steerlab.steering.variant import Variant

CONVO = [
    {"role": "user", "content": "the cat sat on the mat"},
    {"role": "assistant", "content": "and the dog ran in the park"},
]


def raw_codes(lm, sae, messages):
    ids = conversation_ids(lm.tokenizer, messages)
    return sae.encode(forward_to_hookpoint(lm.model, torch.tensor([ids]), sae.cfg.hookpoint))[0]


def test_codes_in_units_and_raw(tiny_lm, tiny_sae):
    result = inspect(tiny_lm, tiny_sae, CONVO)
    raw = raw_codes(tiny_lm, tiny_sae, CONVO)
    assert len(result) == raw.shape[0] == len(result.tokens)
    torch.testing.assert_close(result.codes_raw, raw)
    torch.testing.assert_close(torch.from_numpy(result.matrix([3, 7], units=False)), raw[:, [3, 7]])
    torch.testing.assert_close(torch.from_numpy(result.matrix([3, 7])), raw[:, [3, 7]] / tiny_sae.feature_scale[[3, 7]])
    top = result.token(5, k=3)
    assert [a.act_units for a in top] == sorted((a.act_units for a in top), reverse=True)
    assert top[0].act_raw == pytest.approx(top[0].act_units * float(tiny_sae.feature_scale[top[0].index]))


def test_aggregates_and_top(tiny_lm, tiny_sae):
    result = inspect(tiny_lm, tiny_sae, CONVO, labels=lambda i: f"feature {i}", include_template=True)
    units = result.codes_units
    fired = units > 0
    for by, expected in [
        ("count", fired.sum(0).float()),
        ("sum", units.sum(0)),
        ("max", units.max(0).values),
        ("mean", units.sum(0) / fired.sum(0).clamp_min(1)),
    ]:
        torch.testing.assert_close(result.aggregate(by)[0], expected)
    top = result.top(4, by="mean")
    assert [a.act_units for a in top] == sorted((a.act_units for a in top), reverse=True)
    assert top[0].label == f"feature {top[0].index}" and top[0].count == int(fired[:, top[0].index].sum())
    assert result.top(2, by="frequency")[0].count == int(fired.sum(0).max())
    only = result.top(5, features=[1, 2])
    assert {a.index for a in only} <= {1, 2}
    assert all(tf.features == [] or tf.features[0].index in (1, 2) for tf in result.per_token(features=[1, 2]))


def test_through_a_variant_edits_show(tiny_lm, tiny_sae):
    v = Variant("tiny-llama", sae_id="x")
    v.set(7, 0.8, mode="pin")
    v.set(9, 0.5)
    plain, steered = inspect(tiny_lm, tiny_sae, CONVO), inspect(tiny_lm, tiny_sae, CONVO, v)
    torch.testing.assert_close(torch.from_numpy(steered.matrix([7]))[:, 0], torch.full((len(steered),), 0.8))
    torch.testing.assert_close(steered.codes_units[:, 9], plain.codes_units[:, 9] + 0.5)
    others = [i for i in range(128) if i not in (7, 9)]
    torch.testing.assert_close(steered.codes_raw[:, others], plain.codes_raw[:, others])


def test_bad_input(tiny_lm, tiny_sae):
    result = inspect(tiny_lm, tiny_sae, CONVO)
    with pytest.raises(UnknownFeatureError, match=r"features\[1\]"):
        result.matrix([3, 128])
    with pytest.raises(SteeringError, match="aggregate_by"):
        result.top(by="median")
    with pytest.raises(ContextLengthError, match="messages"):
        inspect(tiny_lm, tiny_sae, [{"role": "user", "content": "the cat " * 400}])


# --- what is scored (content, not the template) and how it is ranked (specificity) ---------------------


def test_content_mask_marks_the_messages_text_only(tiny_tokenizer):
    from steerlab.models.chat_template import content_mask

    # the user repeats the default system prompt word for word: only the user's copy is content
    messages = [
        {"role": "user", "content": "You are a helpful assistant"},
        {"role": "assistant", "content": "the cat sat"},
    ]
    ids = conversation_ids(tiny_tokenizer, messages)
    mask = content_mask(tiny_tokenizer, messages, ids)
    text = lambda keep: "".join(tiny_tokenizer.decode([i]) for i, m in zip(ids, mask) if m == keep)  # noqa: E731
    assert text(True) == "You are a helpful assistantthe cat sat"
    assert "system" in text(False) and "You are a helpful assistant" in text(False)  # the template's copy
    assert all(not m for i, m in zip(ids, mask) if i in tiny_tokenizer.all_special_ids)


def test_template_tokens_are_shown_marked_but_not_scored(tiny_lm, tiny_sae):
    result = inspect(tiny_lm, tiny_sae, CONVO)
    content = torch.tensor(result.content)
    assert 0 < int(content.sum()) < len(result)  # the template (system prompt, role headers) is there
    fired = result.codes_units > 0
    top = result.top(5, by="count")
    assert top[0].ranked_by == "frequency"  # no feature database: the old ranking, named
    assert [a.count for a in top] == [int(fired[content, a.index].sum()) for a in top]
    everything = inspect(tiny_lm, tiny_sae, CONVO, include_template=True).top(5, by="count")
    assert [a.count for a in everything] == [int(fired[:, a.index].sum()) for a in everything]
    assert everything[0].count > top[0].count
    tokens = result.per_token()
    assert [t.template for t in tokens] == [not c for c in result.content]
    assert any(t.features for t in tokens if t.template)  # still shown
    assert all(not t.features for t in result.per_token(scored_only=True) if t.template)


def _hand_stats(sae, dense: int):
    """Every feature rare (density 1e-3) with quantiles at its feature_scale; ``dense`` fires on 90% of
    tokens with the same quantiles."""
    from steerlab.features.schema import FeatureStats
    from steerlab.features.specificity import CorpusStats

    records = []
    for i, s in enumerate(sae.feature_scale.tolist()):
        qs = {str(q): s * f for q, f in zip((0.1, 0.25, 0.5, 0.75, 0.9, 0.99), (0.2, 0.4, 0.6, 0.8, 0.9, 1.0))}
        density = 0.9 if i == dense else 1e-3
        records.append(FeatureStats(density=density, max_act=2 * s, mean_act=s, quantiles=qs, tokens_scanned=10**6))
    return CorpusStats.from_records(records)


def test_specific_ranking_drops_a_dense_feature_the_frequency_ranking_crowns(tiny_lm, tiny_sae):
    plain = inspect(tiny_lm, tiny_sae, CONVO)
    dense = plain.top(1, by="count", rank_by="frequency")[0].index  # fires on the most content tokens
    found = inspect(tiny_lm, tiny_sae, CONVO, corpus_stats=_hand_stats(tiny_sae, dense))
    assert found.default_ranking == "specificity"
    specific = found.top(10, by="count")
    assert specific and all(a.ranked_by == "specificity" and a.specificity > 0 for a in specific)
    assert dense not in [a.index for a in specific]
    assert found.top(1, by="count", rank_by="frequency")[0].index == dense  # the old ranking, by name
    # the count is the specific firings on content tokens, and each token's specific list agrees
    spec = found.specificity
    for a in specific:
        assert a.count == int(((spec[:, a.index] >= 3.0) & torch.tensor(found.content)).sum())
    listed = sum(
        1
        for t in found.per_token(specific_only=True, scored_only=True)
        for f in t.features
        if f.index == specific[0].index
    )
    assert listed == specific[0].count
    by_max = found.top(3, by="max")
    assert [a.specificity for a in by_max] == sorted((a.specificity for a in by_max), reverse=True)


def test_bad_rank_by(tiny_lm, tiny_sae):
    result = inspect(tiny_lm, tiny_sae, CONVO)
    with pytest.raises(SteeringError, match="rank_by"):
        result.top(rank_by="popularity")
    with pytest.raises(SteeringError, match="rank_by"):
        result.top(rank_by="specificity")  # no feature database statistics


# --- relevance: specificity weighted by what the text is about (features.topic) -----------------------------


def _on_topic(found, index: int, d_sae: int):
    """Topic vectors in which only ``index``'s contexts are about the inspected text (its context vector is the
    text's own embedding) and no feature has a label vector."""
    import numpy as np

    from steerlab.features.topic import TopicVectors, embed_text

    contexts = np.zeros((d_sae, 384), dtype=np.float32)
    contexts[index] = embed_text(found.content_text)
    return TopicVectors(contexts, None)


def test_relevance_puts_the_feature_about_the_text_first(tiny_lm, tiny_sae):
    from steerlab.features.specificity import NOTABLE_AT

    plain = inspect(tiny_lm, tiny_sae, CONVO)
    dense = plain.top(1, by="count", rank_by="frequency")[0].index
    stats = _hand_stats(tiny_sae, dense)
    found = inspect(tiny_lm, tiny_sae, CONVO, corpus_stats=stats)
    assert found.content_text == "the cat sat on the mat\nand the dog ran in the park"
    by_specificity = found.top(128, by="max")
    last = by_specificity[-1].index  # the least specific of the specific features: last under specificity
    assert len(by_specificity) > 5 and last not in [a.index for a in found.top(5, by="max")]
    found = inspect(tiny_lm, tiny_sae, CONVO, corpus_stats=stats, topic=_on_topic(found, last, 128))
    assert found.default_ranking == "relevance" and "context vectors only" in found.note
    for by in ("count", "max", "mean", "sum"):
        top = found.top(5, by=by)
        assert top[0].index == last and top[0].ranked_by == "relevance"
        assert top[0].relevance == pytest.approx(1.0, abs=0.02)  # cosine of the text to its own embedding
        assert all(a.relevance == 0.0 for a in top[1:])  # no evidence for the others: by peak specificity
        assert [a.specificity for a in top[1:]] == sorted((a.specificity for a in top[1:]), reverse=True)
    # reported activations: the aggregate over the notable firings (specificity >= NOTABLE_AT) of the content
    spec = found.specificity
    notable = (spec[:, last] >= NOTABLE_AT) & torch.tensor(found.content)
    assert found.top(1, by="count")[0].count == int(notable.sum())
    assert found.top(1, by="max")[0].specificity == pytest.approx(float(spec[notable, last].max()))
    # the specificity ranking is still there by name
    assert found.top(5, by="max", rank_by="specificity")[0].index != last


def test_relevance_needs_topic_vectors_and_says_what_it_lacks(tiny_lm, tiny_sae):
    import numpy as np

    from steerlab.features.topic import TopicVectors

    stats = _hand_stats(tiny_sae, 0)
    found = inspect(tiny_lm, tiny_sae, CONVO, corpus_stats=stats)
    assert found.default_ranking == "specificity" and "topic vectors" in found.note
    with pytest.raises(SteeringError) as err:
        found.top(rank_by="relevance")
    assert err.value.field == "rank_by"
    with pytest.raises(SteeringError, match="rank_by"):
        inspect(tiny_lm, tiny_sae, CONVO).top(rank_by="relevance")  # no statistics either
    labels_only = TopicVectors(None, np.eye(128, 384, dtype=np.float32))
    assert labels_only.sources == ("labels",) and "no context vectors" in labels_only.note
    found = inspect(tiny_lm, tiny_sae, CONVO, corpus_stats=stats, topic=labels_only)
    assert found.note == labels_only.note
    assert found.top(3)[0].ranked_by == "relevance"
