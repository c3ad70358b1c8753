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
