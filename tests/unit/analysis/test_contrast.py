"""Contrast: a crafted distinguishing feature is found; the statistic resists one outlier; bad input."""

import pytest
import torch

from steerlab.analysis.contrast import contrast, rank_biserial
from steerlab.models.hooks import forward_to_hookpoint
from steerlab.steering.conversation import conversation_ids
from steerlab.steering.errors import ConversationError, DatasetError

PIRATE = ["pirates say arr matey", "arr matey, sail the seven seas for gold", "pirates sail for gold"]
PLAIN = ["the cat sat on the mat", "the dog ran in the park", "What is the capital of France?"]


def convos(texts):
    return [[{"role": "user", "content": t}] for t in texts]


def mean_hidden(lm, sae, texts):
    hs = []
    for conv in convos(texts):
        ids = torch.tensor([conversation_ids(lm.tokenizer, conv)])
        hs.append(forward_to_hookpoint(lm.model, ids, sae.cfg.hookpoint)[0].mean(0))
    return torch.stack(hs).mean(0)


def test_finds_a_crafted_distinguishing_feature(tiny_lm, tiny_sae):
    """Feature 77 is rewired to read the direction that separates pirate talk from plain talk."""
    j = 77
    direction = mean_hidden(tiny_lm, tiny_sae, PIRATE) - mean_hidden(tiny_lm, tiny_sae, PLAIN)
    direction /= direction.norm()
    with torch.no_grad():
        tiny_sae.W_enc[:, j] = direction * 50
        tiny_sae.b_enc[j] = 0.0
    result = contrast(tiny_lm, tiny_sae, convos(PIRATE), convos(PLAIN), top_k=3, labels={j: "pirate-ish"})
    best = result.dataset_1_features[0]
    assert best.index == j and best.label == "pirate-ish" and best.effect == 1.0
    assert best.mean_units_1 > best.mean_units_2
    assert j not in [f.index for f in result.dataset_2_features]
    assert all(f.effect < 0 or f.mean_units_2 > f.mean_units_1 for f in result.dataset_2_features)
    swapped = contrast(tiny_lm, tiny_sae, convos(PLAIN), convos(PIRATE), k_to_add=2, k_to_remove=1)
    assert swapped.dataset_2_features[0].index == j and len(swapped.dataset_1_features) <= 2


def test_one_extreme_conversation_does_not_dominate():
    # side 1 is a little higher in every conversation; side 2 has one huge outlier (a long, intense chat)
    x = torch.tensor([[1.0], [1.1], [0.9], [1.2]])
    y = torch.tensor([[0.1], [0.2], [0.0], [100.0]])
    assert x.mean() < y.mean()  # a pooled mean would say side 2
    assert float(rank_biserial(x, y)[0]) == pytest.approx(0.5)  # 12 of 16 pairs favour side 1


def test_bad_datasets_name_the_field(tiny_lm, tiny_sae):
    with pytest.raises(DatasetError, match="dataset_1"):
        contrast(tiny_lm, tiny_sae, [], convos(PLAIN))
    with pytest.raises(DatasetError, match="dataset_2"):
        contrast(tiny_lm, tiny_sae, convos(PLAIN), [])
    with pytest.raises(ConversationError, match=r"dataset_2\[1\]\[0\]\.role"):
        contrast(tiny_lm, tiny_sae, convos(PLAIN), [convos(PLAIN)[0], [{"role": "pirate", "content": "arr"}]])
    with pytest.raises(DatasetError, match="top_k"):
        contrast(tiny_lm, tiny_sae, convos(PLAIN), convos(PIRATE), top_k=-1)


def _hand_stats(d_sae: int):
    """Every feature with density 1e-2 and quantiles 0.2..1.0 (raw units), maximum 2.0."""
    from steerlab.features.schema import FeatureStats
    from steerlab.features.specificity import CorpusStats

    qs = {str(q): v for q, v in zip((0.1, 0.25, 0.5, 0.75, 0.9, 0.99), (0.2, 0.4, 0.6, 0.8, 0.9, 1.0))}
    record = FeatureStats(density=1e-2, max_act=2.0, mean_act=0.6, quantiles=qs, tokens_scanned=10**6)
    return CorpusStats.from_records([record] * d_sae)


def test_one_stray_token_per_conversation_does_not_win_with_two_conversations_a_side():
    """Feature 0 runs through both dataset_1 replies at its typical strength; feature 1 fires once per
    reply, 50x over its corpus maximum (a stray token). Two conversations a side."""
    from steerlab.analysis.contrast import pool, rank_profiles

    d, scale, stats = 4, torch.ones(4), _hand_stats(4)

    def reply(stray: bool, steady: bool, tokens: int = 20):
        codes = torch.zeros(tokens, d)
        codes[:, 2] = 0.6  # fires everywhere on both sides
        if steady:
            codes[:, 0] = 0.8
        if stray:
            codes[3, 1] = 100.0
        return codes

    side_1 = pool([reply(True, True), reply(True, True, 30)], scale, stats)
    side_2 = pool([reply(False, False), reply(False, False, 25)], scale, stats)
    old = rank_profiles(side_1, side_2, "frequency", 3, 3)
    assert old.dataset_1_features[0].index == 1  # the old ranking crowns the stray token
    new = rank_profiles(side_1, side_2, "specificity", 3, 3)
    best = new.dataset_1_features[0]
    assert best.index == 0 and best.ranked_by == "specificity"
    assert best.effect_low <= best.effect <= best.effect_high and best.effect_low > 0
    assert 2 not in [f.index for f in new.dataset_1_features + new.dataset_2_features]  # same on both sides
    assert "too little data" in new.note and "dataset_1 has 2" in new.note


def test_a_stray_token_in_one_conversation_has_an_interval_reaching_zero():
    from steerlab.analysis.contrast import pool, rank_profiles

    d, scale, stats = 3, torch.ones(3), _hand_stats(3)
    once = torch.zeros(20, d)
    once[5, 1] = 100.0
    steady = torch.zeros(20, d)
    steady[:, 0] = 0.8
    side_1 = pool([once + steady, steady.clone(), steady.clone(), steady.clone(), steady.clone()], scale, stats)
    side_2 = pool([torch.zeros(20, d) for _ in range(5)], scale, stats)
    result = rank_profiles(side_1, side_2, "specificity", 2, 2)
    assert result.note is None  # five a side
    first, second = result.dataset_1_features
    assert (first.index, second.index) == (0, 1)
    assert second.effect_low == pytest.approx(0.0) and second.effect_high > 0  # one conversation of five


def test_a_feature_in_every_conversation_outranks_one_a_bit_more_active_throughout():
    """Feature 0 sits at its corpus median on every token of dataset_1's replies (specificity 2.3, never
    notable: a "hope" feature); feature 1 fires at its corpus maximum on two tokens of each (specificity
    6). The mean pooled specificity favours feature 0 (2.3 vs 0.6 a conversation); support puts feature 1,
    present in both conversations, first."""
    from steerlab.analysis.contrast import FIRES_AT, pool, rank_profiles
    from steerlab.features.specificity import specificity

    d, scale, stats = 3, torch.ones(3), _hand_stats(3)

    def reply(tokens: int):
        codes = torch.zeros(tokens, d)
        codes[:, 0] = 0.6
        codes[[2, 7], 1] = 2.0
        return codes

    assert specificity(reply(20), stats)[:, 0].max() < FIRES_AT <= specificity(reply(20), stats)[:, 1].max()
    side_1 = pool([reply(20), reply(24)], scale, stats)
    side_2 = pool([torch.zeros(20, d), torch.zeros(22, d)], scale, stats)
    result = rank_profiles(side_1, side_2, "specificity", 2, 2)
    first, second = result.dataset_1_features
    assert (first.index, second.index) == (1, 0)
    assert first.support == 1.0 and second.support == 0.0
    assert second.effect_low > first.effect_low  # the interval alone would have put feature 0 first
    old = rank_profiles(side_1, side_2, "frequency", 2, 2)
    assert all(f.support is None for f in old.dataset_1_features)


def test_support_needs_most_conversations_of_the_favoured_side():
    """Feature 1 fires notably in one of dataset_1's four conversations, feature 0 in three of four:
    only feature 0 has support (>= 0.75); feature 1 ranks after it however strong its one firing."""
    from steerlab.analysis.contrast import SUPPORT, pool, rank_profiles

    d, scale, stats = 2, torch.ones(2), _hand_stats(2)
    convos_1 = [torch.zeros(20, d) for _ in range(4)]
    for c in convos_1[:3]:
        c[4, 0] = 1.0
    convos_1[3][:, 1] = 2.0
    side_1 = pool(convos_1, scale, stats)
    side_2 = pool([torch.zeros(20, d) for _ in range(4)], scale, stats)
    first, second = rank_profiles(side_1, side_2, "specificity", 2, 2).dataset_1_features
    assert (first.index, first.support) == (0, 0.75) and first.support >= SUPPORT
    assert (second.index, second.support) == (1, 0.25) and second.effect > first.effect


def test_contrast_with_statistics_ranks_by_specificity_and_says_when_data_is_thin(tiny_lm, tiny_sae):
    stats = _hand_stats(tiny_sae.cfg.d_sae)
    result = contrast(tiny_lm, tiny_sae, convos(PIRATE), convos(PLAIN), top_k=3, corpus_stats=stats)
    assert result.ranked_by == "specificity" and result.dataset_1_features
    assert all(f.ranked_by == "specificity" and f.effect_low is not None for f in result.dataset_1_features)
    assert "too little data" in result.note
    old = contrast(tiny_lm, tiny_sae, convos(PIRATE), convos(PLAIN), corpus_stats=stats, rank_by="frequency")
    assert old.ranked_by == "frequency" and all(f.effect_low is None for f in old.dataset_1_features)
    with pytest.raises(DatasetError, match="rank_by"):
        contrast(tiny_lm, tiny_sae, convos(PIRATE), convos(PLAIN), rank_by="specificity")


def test_relevance_puts_the_feature_about_the_favoured_side_first():
    """Features 0 and 1 both fire notably in every dataset_1 conversation and never in dataset_2; feature 0 more
    (the specificity ranking puts it first). Only feature 1's contexts are about what dataset_1 talks about."""
    import numpy as np

    from steerlab.analysis.contrast import pool, rank_profiles
    from steerlab.features.topic import TopicVectors, embed_texts

    d, scale, stats = 3, torch.ones(3), _hand_stats(3)
    convos_1 = [torch.zeros(10, d) for _ in range(4)]
    for c in convos_1:
        c[2:6, 0] = 1.5  # four tokens at the 0.99 quantile and beyond
        c[3, 1] = 1.0
    side_1 = pool(convos_1, scale, stats)
    side_2 = pool([torch.zeros(10, d) for _ in range(4)], scale, stats)
    side_1.texts = ["Arr matey, hoist the sails!", "Ahoy, the ship be full of treasure.", "Arr!", "Yo ho, me hearty."]
    side_2.texts = ["The meeting moved to three.", "Here is the file.", "Thanks.", "The office closes at six."]
    contexts = np.zeros((d, 384), dtype=np.float32)
    contexts[1] = embed_texts(side_1.texts)
    topic = TopicVectors(contexts, None)
    specific = rank_profiles(side_1, side_2, "specificity", 2, 2).dataset_1_features
    assert [f.index for f in specific] == [0, 1]
    relevant = rank_profiles(side_1, side_2, "relevance", 2, 2, topic=topic).dataset_1_features
    assert [f.index for f in relevant] == [1, 0]
    assert relevant[0].ranked_by == "relevance" and relevant[0].relevance == pytest.approx(1.0, abs=0.02)
    assert relevant[1].relevance == 0.0 and all(f.support == 1.0 and f.effect_low > 0 for f in relevant)


def test_relevance_needs_topic_vectors(tiny_lm, tiny_sae):
    stats = _hand_stats(tiny_sae.cfg.d_sae)
    with pytest.raises(DatasetError, match="rank_by"):
        contrast(tiny_lm, tiny_sae, convos(PIRATE), convos(PLAIN), corpus_stats=stats, rank_by="relevance")


def test_a_loosely_related_feature_that_separates_better_does_not_outrank_the_one_about_the_side():
    """Feature 0 separates the sides about three times as well as feature 1 (four notable tokens a
    conversation against one) but is only loosely about dataset_1's text (relevance 0.5, as a token feature
    shared by Spanish and Portuguese is about Portuguese replies); feature 1 is about it (relevance 1).
    Weighed by relevance to the first power feature 0 would win; the cube (``RELEVANCE_POWER``) puts feature 1
    first."""
    import numpy as np

    from steerlab.analysis.contrast import RELEVANCE_POWER, pool, rank_profiles
    from steerlab.features.topic import TopicVectors, embed_texts

    d, scale, stats = 2, torch.ones(2), _hand_stats(2)
    convos_1 = [torch.zeros(10, d) for _ in range(4)]
    for c in convos_1:
        c[2:6, 0] = 1.5
        c[3, 1] = 1.5
    side_1 = pool(convos_1, scale, stats)
    side_2 = pool([torch.zeros(10, d) for _ in range(4)], scale, stats)
    side_1.texts = ["Arr matey, hoist the sails!", "Ahoy, the ship be full of treasure.", "Arr!", "Yo ho, me hearty."]
    side_2.texts = ["The meeting moved to three.", "Here is the file.", "Thanks.", "The office closes at six."]
    about = embed_texts(side_1.texts)
    other = np.zeros(384, dtype=np.float32)
    other[int(np.argmin(np.abs(about)))] = 1.0
    other -= (other @ about) * about
    other /= np.linalg.norm(other)
    contexts = np.stack([0.5 * about + np.sqrt(0.75) * other, about]).astype(np.float32)
    ranked = rank_profiles(side_1, side_2, "relevance", 2, 2, topic=TopicVectors(contexts, None))
    first, second = ranked.dataset_1_features
    assert (first.index, second.index) == (1, 0)
    assert first.relevance == pytest.approx(1.0, abs=0.02) and second.relevance == pytest.approx(0.5, abs=0.02)
    assert second.effect_low * second.relevance > first.effect_low * first.relevance  # the first power's order
    assert second.effect_low * second.relevance**RELEVANCE_POWER < first.effect_low * first.relevance**RELEVANCE_POWER
