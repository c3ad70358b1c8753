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
