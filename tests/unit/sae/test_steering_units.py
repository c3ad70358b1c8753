"""The steering unit (``sae.units``): Ember's range relative to the residual norm, the old quantile unit on
request, readings untouched, and the calibration measured for an SAE that does not carry one."""

import json

import pytest
import torch

from steerlab.errors import InvalidInputError
from steerlab.sae.config import SAEConfig
from steerlab.sae.registry import create_sae
from steerlab.sae.units import DEFAULT_STEERING_PUSH, measure_residual_norm, steering_unit
from steerlab.steering.controller_json import Controller
from steerlab.steering.edits import FeatureEdit
from steerlab.steering.plan import compile_controller, compile_edits
from steerlab.steering.variant import Variant


def make_sae(residual_norm=None, steering_push=None, d_sae: int = 32):
    torch.manual_seed(0)
    cfg = SAEConfig(
        d_in=64,
        d_sae=d_sae,
        architecture="topk",
        k=4,
        model_name="tiny-llama",
        hookpoint="model.layers.1",
        layer=1,
        residual_norm=residual_norm,
        steering_push=steering_push,
    )
    sae = create_sae(cfg)
    sae.feature_scale.uniform_(0.5, 4.0)
    with torch.no_grad():
        sae.W_dec.mul_(torch.linspace(0.5, 2.0, d_sae).unsqueeze(1))  # uneven decoder norms
    return sae.requires_grad_(False)


def residual_shift(sae, plan, index: int) -> float:
    """Norm of the residual move a plan's nudge on ``index`` makes (its b coefficient times the decoder row)."""
    column = plan.features.index(index)
    b = plan.coefs[0][0][1][column]
    return float((b * sae.W_dec[index]).norm())


def test_calibrated_nudge_moves_the_residual_by_the_push_whatever_the_feature():
    sae = make_sae(residual_norm=10.0, steering_push=0.4)
    for index in (0, 7, 31):  # decoder norms 0.5 .. 2, feature scales 0.5 .. 4: the same move
        plan = compile_edits([FeatureEdit(index, 1.0)], sae)
        assert residual_shift(sae, plan, index) == pytest.approx(0.4 * 10.0, rel=1e-5)
        half = compile_edits([FeatureEdit(index, 0.5)], sae)
        assert residual_shift(sae, half, index) == pytest.approx(2.0, rel=1e-5)


def test_default_push_when_the_sae_names_none():
    sae = make_sae(residual_norm=10.0)
    unit = steering_unit(sae)
    dec = sae.W_dec.norm(dim=1)
    assert torch.allclose(unit * dec, torch.full_like(unit, DEFAULT_STEERING_PUSH * 10.0), rtol=1e-5)


def test_pin_sets_the_activation_to_the_same_amount_as_a_nudge_adds():
    sae = make_sae(residual_norm=10.0, steering_push=0.4)
    nudge = compile_edits([FeatureEdit(3, 0.7)], sae)
    pin = compile_edits([FeatureEdit(3, 0.7, "pin")], sae)
    (a_n,), (b_n,) = nudge.coefs[0][0]
    (a_p,), (b_p,) = pin.coefs[0][0]
    assert (a_n, a_p) == (1.0, 0.0) and b_p == pytest.approx(b_n)
    assert b_n == pytest.approx(0.7 * float(steering_unit(sae)[3]))


def test_conditions_keep_reading_in_quantile_units():
    sae = make_sae(residual_norm=10.0, steering_push=0.4)
    v = Variant("tiny-llama")
    v.set_when(v.feature(5) > 0.5, {6: 0.8})
    plan = compile_controller(Controller.from_json(v.controller.json()), sae)
    (leaf,) = plan.leaves
    assert leaf.left.inv_scales == (pytest.approx(1.0 / float(sae.feature_scale[5])),)
    assert plan.coefs[1][0][1][plan.features.index(6)] == pytest.approx(0.8 * float(steering_unit(sae)[6]))


def test_quantile_setting_and_an_uncalibrated_sae_steer_in_feature_scale(monkeypatch):
    calibrated = make_sae(residual_norm=10.0, steering_push=0.4)
    monkeypatch.setenv("STEERLAB_STEERING_UNIT", "quantile")
    plan = compile_edits([FeatureEdit(2, 1.5)], calibrated)
    assert plan.coefs[0][0][1][0] == pytest.approx(1.5 * float(calibrated.feature_scale[2]))
    monkeypatch.delenv("STEERLAB_STEERING_UNIT")
    assert plan.coefs[0][0][1][0] != pytest.approx(compile_edits([FeatureEdit(2, 1.5)], calibrated).coefs[0][0][1][0])
    uncalibrated = make_sae()
    assert torch.equal(steering_unit(uncalibrated), uncalibrated.feature_scale.float())


def test_an_unknown_unit_setting_is_refused(monkeypatch):
    from steerlab.settings import SettingsError, load_settings

    monkeypatch.setenv("STEERLAB_STEERING_UNIT", "ember")
    with pytest.raises(SettingsError, match="STEERLAB_STEERING_UNIT"):
        load_settings()


@pytest.mark.parametrize("field", ["residual_norm", "steering_push"])
@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), "1", True])
def test_config_refuses_a_bad_calibration(field, bad):
    with pytest.raises(InvalidInputError) as err:
        SAEConfig(d_in=4, d_sae=8, k=2, **{field: bad})
    assert err.value.field == field


def test_calibration_is_saved_with_the_sae_and_measured_when_missing(tmp_path, tiny_model_dir, tiny_lm):
    from steerlab.models.loader import load_model
    from steerlab.sae.bundled import load_sae_for

    make_sae(residual_norm=12.5, steering_push=0.3).save(tmp_path / "kept")
    assert json.loads((tmp_path / "kept" / "cfg.json").read_text())["residual_norm"] == 12.5
    lm = load_model(str(tiny_model_dir))
    kept = load_sae_for(lm, tmp_path / "kept")
    assert (kept.cfg.residual_norm, kept.cfg.steering_push) == (12.5, 0.3)

    make_sae().save(tmp_path / "bare")
    before = (tmp_path / "bare" / "cfg.json").read_text()
    bare = load_sae_for(lm, tmp_path / "bare")
    measured = measure_residual_norm(lm.model, lm.tokenizer, bare.cfg.hookpoint)
    assert measured > 0 and bare.cfg.residual_norm == measured
    assert (tmp_path / "bare" / "cfg.json").read_text() == before  # measured in memory, nothing rewritten
    unit = steering_unit(bare)
    assert torch.allclose(unit * bare.W_dec.norm(dim=1), torch.full_like(unit, DEFAULT_STEERING_PUSH * measured))


def test_the_unit_follows_a_changed_decoder_or_calibration():
    sae = make_sae(residual_norm=10.0, steering_push=0.4)
    first = steering_unit(sae)[3].item()
    with torch.no_grad():
        sae.W_dec[3] *= 2  # in place: the cached norms must not be reused
    assert steering_unit(sae)[3].item() == pytest.approx(first / 2, rel=1e-5)
    sae.cfg.steering_push = 0.8
    assert steering_unit(sae)[3].item() == pytest.approx(first, rel=1e-5)
