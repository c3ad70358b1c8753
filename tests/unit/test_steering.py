import pytest
import torch

from steerlab.sae.config import SAEConfig
from steerlab.sae.registry import create_sae
from steerlab.steering.batch import RowSteering
from steerlab.steering.edits import EditError, FeatureEdit, parse_edit


def delta_of(sae, h, edits):
    """What plain edits add to ``h [tokens, d_in]``, through the one steering arithmetic (plan + batch)."""
    return edit_rows(sae, edits)(h) - h


def edit_rows(sae, edits):
    editor = RowSteering.for_edits(sae, edits)
    return lambda h: editor(h[None])[0]


@pytest.fixture()
def sae():
    torch.manual_seed(0)
    s = create_sae(SAEConfig(d_in=16, d_sae=64, architecture="topk", k=8))
    s.feature_scale.uniform_(0.5, 2.0)
    return s.requires_grad_(False)


def test_parse_edit_forms():
    assert parse_edit("12=0.5") == FeatureEdit(12, 0.5, "nudge")
    assert parse_edit("3=-1:pin") == FeatureEdit(3, -1.0, "pin")
    for bad in ["12", "x=1", "1=nan", "1=2:shout", "=3"]:
        with pytest.raises(EditError):
            parse_edit(bad)


def test_out_of_range_index_and_nonfinite_value(sae):
    with pytest.raises(EditError, match="0..63"):
        delta_of(sae, torch.randn(2, 16), [FeatureEdit(64, 1.0)])
    with pytest.raises(EditError, match="finite"):
        delta_of(sae, torch.randn(2, 16), [FeatureEdit(1, float("inf"))])


def test_pin_to_current_value_changes_nothing(sae):
    h = torch.randn(5, 16)
    f = sae.encode(h)
    j = int(f[0].argmax())
    edits = [FeatureEdit(j, float(f[0, j] / sae.feature_scale[j]), "pin")]
    out = edit_rows(sae, edits)(h)
    torch.testing.assert_close(out[0], h[0], rtol=0, atol=1e-6)


def test_pin_sets_mul_scales_nudge_adds(sae):
    h = torch.randn(4, 16)
    f = sae.encode(h)
    j = int(f.sum(0).argmax())
    scale = sae.feature_scale[j]
    for edit, expected in [
        (FeatureEdit(j, 0.7, "pin"), torch.full((4,), 0.7) * scale),
        (FeatureEdit(j, 3.0, "mul"), f[:, j] * 3.0),
        (FeatureEdit(j, 0.4, "nudge"), f[:, j] + 0.4 * scale),
    ]:
        delta = delta_of(sae, h, [edit])
        # the added vector is exactly (target - current) times the feature's decoder row
        torch.testing.assert_close(delta, (expected - f[:, j])[:, None] * sae.W_dec[j], rtol=1e-5, atol=1e-6)


def test_edit_leaves_other_features_untouched(sae):
    """Error-preserving: the residual moves only along the edited feature's decoder direction."""
    h = torch.randn(6, 16)
    j = 7
    delta = edit_rows(sae, [FeatureEdit(j, 1.5)])(h) - h
    direction = sae.W_dec[j] / sae.W_dec[j].norm()
    residual = delta - (delta @ direction)[:, None] * direction
    assert float(residual.abs().max()) < 1e-5
    assert float(delta.norm(dim=-1).min()) > 0.1
