"""Controller JSON: byte-for-byte the goodfire 0.3.5 SDK's, round-trips, and errors that name the field."""

import json
import uuid

import pytest

from steerlab.features.schema import feature_uuid
from steerlab.steering.controller_json import Controller
from steerlab.steering.errors import ControllerError, UnknownFeatureError
from steerlab.steering.plan import compile_controller
from steerlab.steering.resolve import Steering
from steerlab.steering.variant import Variant
from tests.unit.steering.conftest import SAE_ID

goodfire = pytest.importorskip("goodfire")
NAME = "controller__12345678"


@pytest.fixture()
def fixed_ids(monkeypatch):
    """The SDK names controllers from id() and events from uuid4(); pin both so bytes can match."""
    import goodfire.controller.controller as sdk_controller

    monkeypatch.setattr(sdk_controller, "id", lambda obj: 1234567890, raising=False)
    counter = {"n": 0}

    def uuid4():
        counter["n"] += 1
        return uuid.UUID(int=counter["n"])

    monkeypatch.setattr(uuid, "uuid4", uuid4)
    return lambda: counter.update(n=0)  # call before each build so event names line up


def sdk_features():
    labels = ["pirate speech", "formal tone", "question"]
    return [goodfire.Feature(uuid.UUID(feature_uuid(SAE_ID, i)), labels[n], i) for n, i in enumerate((5, 17, 42))]


def our_features(v):
    return [v.feature(5, "pirate speech"), v.feature(17, "formal tone"), v.feature(42, "question")]


def _plain(v, f):
    v.set(f[0], 0.5)
    v.set(f[1], -0.3)
    v.set(f[0], 0.7)  # replaces in place
    v.set(f[2], 1)  # an int becomes 1.0


def _conditional(v, f):
    v.set(f[0], 0.4)
    v.set_when((f[0] > 0.5) & (f[1] < 0.2), {f[2]: 0.4})
    v.set_when(f[0] >= f[1], {f[1]: 1})
    v.abort_when(f[2] > 1)
    v.handle_when(f[1] != 0, lambda ctx: None)


def _groups(v, f):
    v.set_when((f[0] > 0.1) | (f[1] <= 0.3), {f[2]: -0.2})
    v.set_when((f[2] > 0.2) & ((f[0] > 0.1) | (f[1] > 0.1)), {f[0]: 0.1})
    v.set_when((f[0] > 0.1) & (f[1] > 0.2) & (f[2] > 0.3), {f[1]: 0.2, f[2]: 0.3})
    v.set_when((f[0] | f[1]) > 0.5, {f[0]: 0.25})
    v.set(f[1] | f[2], 0.05)
    v.set({f[0]: 0.2, f[2]: 0.3})


BUILDS = [_plain, _conditional, _groups]


@pytest.mark.parametrize("build", BUILDS)
def test_same_bytes_as_goodfire_sdk(build, fixed_ids):
    fixed_ids()
    theirs = goodfire.Variant("tiny-llama")
    build(theirs, sdk_features())
    sdk_json = json.dumps(theirs.controller.json())
    fixed_ids()
    ours = Variant("tiny-llama", sae_id=SAE_ID)
    build(ours, our_features(ours))
    assert ours.controller_named(NAME).to_json() == sdk_json
    # SDK Feature objects work in our Variant too, with the same result
    fixed_ids()
    mixed = Variant("tiny-llama", sae_id=SAE_ID)
    build(mixed, sdk_features())
    assert mixed.controller_named(NAME).to_json() == sdk_json


@pytest.mark.parametrize("build", BUILDS)
def test_sdk_json_round_trips_byte_for_byte(build, fixed_ids):
    theirs = goodfire.Variant("tiny-llama")
    build(theirs, sdk_features())
    text = json.dumps(theirs.controller.json())
    assert Controller.from_json(text).to_json() == text
    assert Variant.from_controller(text, sae_id=SAE_ID).controller_named(NAME).to_json() == text


def test_sdk_variant_object_is_accepted_directly(fixed_ids):
    theirs = goodfire.Variant("tiny-llama")
    _conditional(theirs, sdk_features())
    assert Steering.of(theirs).controller.to_json() == json.dumps(theirs.controller.json())


def test_sdk_parses_our_json():
    v = Variant("tiny-llama", sae_id=SAE_ID)
    f = our_features(v)
    v.set(f[0], 0.5, mode="pin")
    v.set_when((f[1] > 0.2) & (f[2] < 0.5), {f[0]: 0.3})
    from goodfire.controller.controller import Controller as SDKController

    parsed = SDKController.from_json(json.loads(v.controller.to_json()))
    assert parsed._interventions[0].mode == "pin" and parsed._scopes[0].conditionals.operator == "AND"


def test_name_is_reproducible_and_settings_round_trip():
    v = Variant("tiny-llama", sae_id=SAE_ID)
    v.set(3, 0.5)
    assert v.controller.to_json() == v.controller.to_json()
    v.nonzero_strength_threshold, v.min_nudge_entropy, v.max_nudge_entropy = 0.1, 0.5, 6
    text = v.controller.to_json()
    again = Controller.from_json(text)
    assert again.to_json() == text
    assert (again.nonzero_strength_threshold, again.min_nudge_entropy, again.max_nudge_entropy) == (0.1, 0.5, 6)


def _valid() -> dict:
    v = Variant("tiny-llama", sae_id=SAE_ID)
    v.set(3, 0.5)
    v.set_when(v.feature(4) > 0.5, {5: 0.2})
    return v.controller.json()


@pytest.mark.parametrize(
    "mutate,field",
    [
        (lambda d: d["interventions"][0].update(mode="shout"), "interventions[0].mode"),
        (lambda d: d["interventions"][0].update(value=float("nan")), "interventions[0].value"),
        (lambda d: d["interventions"][0].update(value="big"), "interventions[0].value"),
        (lambda d: d["interventions"][0]["features"].update(features=[]), "interventions[0].features.features"),
        (
            lambda d: d["interventions"][0]["features"]["features"][0].update(index_in_sae=-1),
            "interventions[0].features.features[0].index_in_sae",
        ),
        (
            lambda d: d["interventions"][0]["features"]["features"][0].update(max_activation_strength=0),
            "interventions[0].features.features[0].max_activation_strength",
        ),
        (
            lambda d: d["scopes"][0]["conditionals"]["conditionals"][0].update(operator="=>"),
            "scopes[0].conditionals.conditionals[0].operator",
        ),
        (
            lambda d: d["scopes"][0]["conditionals"]["conditionals"][0].pop("left_hand"),
            "scopes[0].conditionals.conditionals[0].left_hand",
        ),
        (
            lambda d: d["scopes"][0]["conditionals"]["conditionals"][0].update(right_hand=float("inf")),
            "scopes[0].conditionals.conditionals[0].right_hand",
        ),
        (lambda d: d["scopes"][0]["conditionals"].update(operator="XOR"), "scopes[0].conditionals.operator"),
        (
            lambda d: d["scopes"][0]["controller"]["interventions"][0].update(mode=None),
            "scopes[0].controller.interventions[0].mode",
        ),
        (lambda d: d["scopes"][0].update(is_active="yes"), "scopes[0].is_active"),
        (lambda d: d.update(scopes={}), "scopes"),
    ],
)
def test_malformed_controller_names_the_field(mutate, field):
    data = _valid()
    mutate(data)
    with pytest.raises(ControllerError) as err:
        Controller.from_json(json.dumps(data))
    assert err.value.field == field and str(err.value).startswith(field + ":")


def test_not_json_and_not_an_object():
    for text in ("{oops", "[1, 2]", "3"):
        with pytest.raises(ControllerError, match="controller"):
            Controller.from_json(text)


def test_unknown_feature_index_names_its_path(tiny_sae):
    data = _valid()
    data["scopes"][0]["controller"]["interventions"][0]["features"]["features"][0]["index_in_sae"] = 500
    with pytest.raises(UnknownFeatureError, match=r"0\.\.127") as err:
        compile_controller(Controller.from_json(data), tiny_sae)
    assert err.value.field == "scopes[0].controller.interventions[0].features.features[0].index_in_sae"


def test_lenient_forms_are_accepted():
    """Hand-written JSON: bare feature objects, missing optional keys, NaN settings (= unset)."""
    text = (
        '{"interventions": [{"mode": "pin", "features": {"index_in_sae": 3}, "value": 0}],'
        ' "scopes": [{"conditionals": {"conditionals": [{"left_hand": {"index_in_sae": 1}, "operator": ">",'
        ' "right_hand": {"uuid": "u", "label": "b", "index_in_sae": 2}}], "operator": "OR"},'
        ' "controller": {}}], "min_nudge_entropy": NaN}'
    )
    ctrl = Controller.from_json(text)
    assert ctrl.interventions[0].features[0].index == 3 and ctrl.min_nudge_entropy is None
    assert ctrl.scopes[0].condition.items[0].right.indices == [2]


def test_sdk_variant_runs_in_process_with_its_own_abort(tiny_lm, tiny_sae):
    from steerlab.engine.lab import Lab, sampling_params

    theirs = goodfire.Variant("tiny-llama")
    feature = goodfire.Feature(uuid.UUID(feature_uuid(SAE_ID, 0)), "anything", 0)
    theirs.abort_when(feature >= 0)
    lab = Lab(tiny_lm, tiny_sae, sae_id=SAE_ID, max_batch=1)
    try:
        with pytest.raises(goodfire.InferenceAbortedException):
            list(lab.generate([{"role": "user", "content": "hi"}], sampling_params(max_completion_tokens=3), theirs))
    finally:
        lab.close()


def test_uuid_from_another_sae_is_refused_when_the_sae_id_is_known(tiny_sae):
    v = Variant("tiny-llama", sae_id=SAE_ID)
    v.set(3, 0.5)
    compile_controller(v.controller, tiny_sae, SAE_ID)  # hex form matches
    data = v.controller.json()
    data["interventions"][0]["features"]["features"][0]["uuid"] = feature_uuid(SAE_ID, 3)  # dashed form too
    compile_controller(Controller.from_json(data), tiny_sae, SAE_ID)
    other = Variant("tiny-llama", sae_id="some-other-sae")
    other.set(3, 0.5)
    with pytest.raises(UnknownFeatureError, match=r"interventions\[0\]\.features\.features\[0\]\.uuid"):
        compile_controller(other.controller, tiny_sae, SAE_ID)
