"""Specificity: an activation judged against its own feature's corpus distribution (hand-built stats)."""

import math

import pytest
import torch

from steerlab.features.schema import FeatureStats
from steerlab.features.specificity import CorpusStats, specificity

QS = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)


def stats(density: float, quantiles: tuple[float, ...], max_act: float, tokens: int = 1_000_000) -> FeatureStats:
    return FeatureStats(
        density=density,
        max_act=max_act,
        mean_act=quantiles[2],
        quantiles={str(q): v for q, v in zip(QS, quantiles)},
        tokens_scanned=tokens,
    )


DENSE = stats(0.5, (1.0, 2.0, 4.0, 6.0, 8.0, 12.0), 40.0)  # fires on every other token ("the", "None")
RARE = stats(0.001, (1.0, 2.0, 4.0, 6.0, 8.0, 12.0), 40.0)  # same activations, 500x rarer
CORPUS = CorpusStats.from_records([DENSE, RARE, None])


def test_rare_beats_dense_at_the_same_activation_and_order_within_a_feature():
    acts = torch.tensor([[4.0, 4.0, 0.0], [12.0, 12.0, 0.0], [8.0, 1.0, 0.0]])
    s = specificity(acts, CORPUS)
    assert s[0, 1] > s[0, 0] and s[1, 1] > s[1, 0]
    # at its median: -log10(density * 0.5); at its 0.99 quantile: -log10(density * 0.01)
    assert float(s[0, 0]) == pytest.approx(-math.log10(0.5 * 0.5), abs=1e-4)
    assert float(s[1, 1]) == pytest.approx(-math.log10(0.001 * 0.01), abs=1e-4)
    # stronger is more unusual, for each feature
    assert s[1, 0] > s[2, 0] > s[0, 0] and s[1, 1] > s[0, 1] > s[2, 1]
    # a dense feature at its 0.99 quantile is still less specific than a rare one at its 0.1 quantile
    assert s[1, 0] < s[2, 1]


def test_zero_is_zero_beyond_the_max_is_flat_and_unseen_features_score_high():
    acts = torch.tensor([[0.0, 40.0, 0.0], [0.0, 400.0, 0.5]])
    s = specificity(acts, CORPUS)
    assert float(s[0, 0]) == 0.0 and float(s[0, 2]) == 0.0
    assert float(s[1, 1]) == pytest.approx(float(s[0, 1]))  # the corpus maximum is as far as the data goes
    assert float(s[0, 1]) == pytest.approx(-math.log10(0.001 * 0.001), abs=1e-3)  # 1 / (fired = 1000)
    assert float(s[1, 2]) == pytest.approx(math.log10(2 * 1_000_000), abs=1e-3)  # never fired in the corpus


def test_shape_kept_and_mismatch_refused():
    acts = torch.rand(2, 5, 3)
    assert specificity(acts, CORPUS).shape == (2, 5, 3)
    with pytest.raises(ValueError, match="features"):
        specificity(torch.rand(4, 7), CORPUS)
