"""Variant bookkeeping: set / clear / reset, validation before mutation, condition building."""

import pytest

from steerlab.steering.conditions import Comparison, ConditionGroup
from steerlab.steering.errors import ControllerError, EditError
from steerlab.steering.refs import FeatureRef
from steerlab.steering.variant import Variant


def test_set_clear_reset(variant):
    variant.set(3, 0.5)
    variant.set(4, 0.0, mode="pin")
    variant.set(3, 0.9)
    assert [(f.index, v, m) for f, v, m in variant.edits] == [(3, 0.9, "nudge"), (4, 0.0, "pin")]
    variant.set(4, None)  # None clears, as in the SDK
    assert [f.index for f, _, _ in variant.edits] == [3]
    variant.set_when(variant.feature(1) > 0.5, {2: 0.3})
    variant.abort_when(variant.feature(1) > 0.9, name="too-much")
    variant.clear([3, 99])  # clearing an unedited feature is fine
    assert variant.edits == [] and len(variant.scopes) == 2
    variant.reset()
    assert variant.edits == [] and variant.scopes == [] and variant.handlers == {} and not variant.abort_events


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "0.5", None.__class__])
def test_bad_value_rejected(variant, value):
    with pytest.raises(EditError, match="finite"):
        variant.set(3, value)


def test_bad_mode_and_index(variant):
    with pytest.raises(EditError, match="mode"):
        variant.set(3, 0.5, mode="shout")
    with pytest.raises(EditError, match="index_in_sae"):
        variant.set(-1, 0.5)


def test_dict_set_is_all_or_nothing(variant):
    variant.set(1, 0.1)
    with pytest.raises(EditError, match="feature 3"):
        variant.set({2: 0.2, 3: float("nan")})
    assert [f.index for f, _, _ in variant.edits] == [1]


def test_feature_refs_and_labels():
    v = Variant("m", sae_id="sae-a", labels={7: "cats"})
    ref = v.feature(7)
    assert ref.label == "cats" and len(ref.uuid) == 32 and ref.index == 7
    assert Variant("m", sae_id="sae-b").feature(7).uuid != ref.uuid
    assert FeatureRef.of(7, "sae-a").uuid == ref.uuid


def test_conditions_nest_where_the_sdk_would_lose_meaning(variant):
    a, b, c = variant.feature(1), variant.feature(2), variant.feature(3)
    cond = ((a > 0.5) & (b < 0.2)) | (c >= a)
    assert isinstance(cond, ConditionGroup) and cond.op == "OR"
    assert isinstance(cond.items[0], ConditionGroup) and cond.items[0].op == "AND"
    flat = (a > 0.1) & (b > 0.1) & (c > 0.1)
    assert flat.op == "AND" and len(flat.items) == 3 and all(isinstance(i, Comparison) for i in flat.items)


def test_condition_misuse_is_loud(variant):
    a = variant.feature(1)
    with pytest.raises(TypeError, match="&"):
        bool(a > 0.5)
    with pytest.raises(ControllerError, match="right_hand"):
        a > float("nan")  # noqa: B015
    with pytest.raises(ControllerError, match="operator"):
        Comparison(a | a, "=>", 1)


def test_nested_scopes_and_from_controller_round_trip(variant):
    outer = variant.set_when(variant.feature(1) > 0.5, {2: 0.3})
    outer.set_when(variant.feature(4) > 0.2, {5: 2.0}, mode="mul")
    variant.nonzero_strength_threshold = 0.05
    text = variant.controller.to_json()
    again = Variant.from_controller(text, base_model="tiny-llama", sae_id="x")
    assert again.controller.to_json() == text
    assert again.scopes[0].scopes[0].edits[0][2] == "mul"


def test_dict_none_clears(variant):
    variant.set({1: 0.1, 2: 0.2})
    variant.set({1: None, 3: 0.3})
    assert [f.index for f, _, _ in variant.edits] == [2, 3]
