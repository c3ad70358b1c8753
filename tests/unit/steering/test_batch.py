"""Compiled controllers in the hook: edit modes, error preservation, scopes, events, batching."""

import pytest
import torch

from steerlab.steering.batch import SteeringBatch
from steerlab.steering.controller_json import Controller
from steerlab.steering.plan import compile_controller
from steerlab.steering.variant import Variant
from tests.unit.steering.conftest import SAE_ID, hidden_at_hookpoint


def plan_of(variant, sae):
    return compile_controller(variant.controller, sae)


def run(sae, variant, h, **kw):
    batch = SteeringBatch(sae, [plan_of(variant, sae)], capture=True, **kw)
    return batch, batch(h) - h


@pytest.fixture()
def h(tiny_lm, tiny_sae):
    return hidden_at_hookpoint(tiny_lm, tiny_sae)


def strongest(sae, h) -> int:
    return int(sae.encode(h)[0].sum(0).argmax())


@pytest.mark.parametrize("mode,value", [("pin", 0.7), ("mul", 3.0), ("nudge", 0.4)])
def test_pin_sets_mul_scales_nudge_adds(tiny_sae, h, variant, mode, value):
    f = tiny_sae.encode(h)[0]
    j = strongest(tiny_sae, h)
    scale = tiny_sae.feature_scale[j]
    expected = {
        "pin": torch.full_like(f[:, j], value) * scale,
        "mul": f[:, j] * value,
        "nudge": f[:, j] + value * scale,
    }[mode]
    variant.set(j, value, mode=mode)
    batch, delta = run(tiny_sae, variant, h)
    torch.testing.assert_close(batch.last_codes[0, :, j], expected)
    others = torch.ones(f.shape[1], dtype=torch.bool)
    others[j] = False
    torch.testing.assert_close(batch.last_codes[0][:, others], f[:, others])  # the others are untouched
    # error-preserving: the residual moves by exactly (target - current) along W_dec[j], nothing else
    torch.testing.assert_close(delta[0], (expected - f[:, j])[:, None] * tiny_sae.W_dec[j], rtol=1e-5, atol=1e-5)


def test_edits_compose_in_order_and_respect_max_activation_strength(tiny_sae, h, variant):
    f = tiny_sae.encode(h)[0]
    j = strongest(tiny_sae, h)
    s = tiny_sae.feature_scale[j]
    variant.set(j, 0.5)
    ctrl = variant.controller
    feature = {"uuid": "", "label": "", "index_in_sae": j}
    ctrl.interventions += Controller.from_json(
        {
            "interventions": [
                {"mode": "mul", "features": {"features": [feature]}, "value": 2.0},
                {"mode": "nudge", "features": {"features": [{**feature, "max_activation_strength": 4}]}, "value": 1.0},
            ]
        }
    ).interventions
    batch = SteeringBatch(tiny_sae, [compile_controller(ctrl, tiny_sae)], capture=True)
    batch(h)
    torch.testing.assert_close(batch.last_codes[0, :, j], (f[:, j] + 0.5 * s) * 2 + 0.25 * s)


def first_crossing(units: torch.Tensor, min_pos: int = 2):
    """A feature, threshold and position where the feature first exceeds the threshold (late enough)."""
    for j in units.max(0).values.argsort(descending=True).tolist():
        p = int(units[:, j].argmax())
        if p >= min_pos and units[:p, j].max() < units[p, j]:
            return j, float(units[:p, j].max() + units[p, j]) / 2, p
    pytest.skip("no feature crosses late in this sequence")


def test_scope_turns_on_exactly_at_first_token_where_condition_holds(tiny_sae, h, variant):
    units = tiny_sae.encode(h)[0] / tiny_sae.feature_scale
    x, thr, p = first_crossing(units)
    y = (x + 1) % tiny_sae.cfg.d_sae
    variant.set_when(variant.feature(x) > thr, {y: 1.0})
    name = variant.handle_when(variant.feature(x) > thr, lambda ctx: None, name="crossed")
    batch, delta = run(tiny_sae, variant, h)
    moved = delta[0].norm(dim=-1) > 1e-6
    assert not moved[:p].any() and moved[p:].all()
    torch.testing.assert_close(delta[0, p], tiny_sae.feature_scale[y] * tiny_sae.W_dec[y], rtol=1e-5, atol=1e-5)
    assert batch.drain_events() == [[(name, p)]]
    # split into a prefill and one-token decode steps: same edits, the event once, same position
    batch = SteeringBatch(tiny_sae, [plan_of(variant, tiny_sae)])
    parts = [batch(h[:, :2]) - h[:, :2]] + [batch(h[:, t : t + 1]) - h[:, t : t + 1] for t in range(2, h.shape[1])]
    torch.testing.assert_close(torch.cat(parts, 1), delta)
    assert batch.drain_events() == [[(name, p)]] and batch.drain_events() == [[]]


def test_nested_scope_waits_for_its_parent_and_starts_active(tiny_sae, h, variant):
    units = tiny_sae.encode(h)[0] / tiny_sae.feature_scale
    x, thr, p = first_crossing(units)
    outer = variant.set_when(variant.feature(x) > thr, {})
    outer.handle_when(variant.feature(0) >= 0, lambda ctx: None, name="inner")  # always true once reachable
    outer.handle_when(variant.feature(0) < 0, lambda ctx: None, name="never")
    variant.handle_when(variant.feature(0) >= 0, lambda ctx: None, name="top")
    ctrl = variant.controller
    ctrl.scopes[-1].is_active = True  # already on: never reports
    batch = SteeringBatch(tiny_sae, [compile_controller(ctrl, tiny_sae)])
    batch(h)
    assert batch.drain_events() == [[("inner", p)]]
    assert batch.states[0].active == [True, True, False, True]


def test_comparisons_and_groups_per_token(tiny_sae, h, variant):
    units = tiny_sae.encode(h)[0] / tiny_sae.feature_scale
    a_idx, b_idx = units.sum(0).argsort(descending=True)[:2].tolist()
    a, b = variant.feature(a_idx), variant.feature(b_idx)
    ua, ub = units[:, a_idx], units[:, b_idx]
    t1, t2 = float(ua.median()), float(ub.median())
    cases = [
        (a > t1, ua > t1),
        (a < t1, ua < t1),
        (a >= t1, ua >= t1),
        (a <= t1, ua <= t1),
        (a == 0, ua == 0),
        (a != 0, ua != 0),
        (a > b, ua > ub),
        ((a | b) > t1, torch.maximum(ua, ub) > t1),
        (((a > t1) & (b < t2)) | (a >= b), ((ua > t1) & (ub < t2)) | (ua >= ub)),
        ((a > t1) & ((b > t2) | (a < b)), (ua > t1) & ((ub > t2) | (ua < ub))),
    ]
    for cond, _ in cases:
        variant.handle_when(cond, lambda ctx: None)
    batch = SteeringBatch(tiny_sae, [plan_of(variant, tiny_sae)])
    codes = tiny_sae.encode(h)
    got = batch.t.conditions(codes, torch.ones(h.shape[:2], dtype=torch.bool))[0]
    for k, (_, expected) in enumerate(cases):
        assert torch.equal(got[k], expected), k


def test_nonzero_strength_threshold_hides_faint_firing(tiny_sae, h, variant):
    x = strongest(tiny_sae, h)
    variant.handle_when(variant.feature(x) > 0, lambda ctx: None, name="fired")
    variant.nonzero_strength_threshold = 1e9
    batch, _ = run(tiny_sae, variant, h)
    assert batch.drain_events() == [[]]
    variant.nonzero_strength_threshold = None
    batch, _ = run(tiny_sae, variant, h)
    assert batch.drain_events()[0][0][0] == "fired"


def test_entropy_guard_pauses_nudges_only(tiny_sae, h, variant):
    j = strongest(tiny_sae, h)
    variant.set(j, 0.5)
    variant.set((j + 1) % tiny_sae.cfg.d_sae, 0.0, mode="pin")
    variant.max_nudge_entropy = -1.0  # every distribution is "too uncertain": nudges pause after each token
    batch, before = run(tiny_sae, variant, h)
    batch.observe_logits(torch.randn(1, 50))
    assert batch.states[0].nudges_on is False
    after = batch(h) - h
    pin_only = Variant("tiny-llama", sae_id=SAE_ID)
    pin_only.set((j + 1) % tiny_sae.cfg.d_sae, 0.0, mode="pin")
    torch.testing.assert_close(after, run(tiny_sae, pin_only, h)[1])
    assert not torch.allclose(after, before)


def _two_variants(sae, h):
    units = sae.encode(h)[0] / sae.feature_scale
    x, thr, p = first_crossing(units)
    a = Variant("tiny-llama", sae_id=SAE_ID)
    a.set(3, 2.0)
    a.set_when(a.feature(x) > thr, {5: 3.0})
    a.handle_when(a.feature(x) > thr, lambda ctx: None, name="a-event")
    b = Variant("tiny-llama", sae_id=SAE_ID)
    b.set(x, 0.0, mode="pin")
    b.set(7, 1.5, mode="mul")
    b.handle_when(b.feature(9) > 0.01, lambda ctx: None, name="b-event")
    return [compile_controller(v.controller, sae) for v in (a, b)]


def test_rows_with_different_controllers_match_each_row_alone(tiny_lm, tiny_sae):
    from transformers import DynamicCache

    from steerlab.models.hooks import edit_residual

    tok = tiny_lm.tokenizer
    texts = ["the cat sat on the mat and the dog", "pirates say arr matey and sail the seven"]
    ids = [tok(t)["input_ids"] for t in texts]
    n = min(len(i) for i in ids)
    ids = torch.tensor([i[:n] for i in ids])
    plans = _two_variants(tiny_sae, hidden_at_hookpoint(tiny_lm, tiny_sae, texts[0]))

    def generate(rows, batch):
        cache, step, logits = DynamicCache(), ids[rows], []
        with edit_residual(tiny_lm.model, tiny_sae.cfg.hookpoint, batch), torch.no_grad():
            for _ in range(4):
                out = tiny_lm.model(input_ids=step, cache=cache, use_cache=True).logits[:, -1]
                logits.append(out)
                step = out.argmax(-1, keepdim=True)
        return torch.stack(logits, 1), batch.drain_events()

    together, events = generate([0, 1], SteeringBatch(tiny_sae, plans))
    for r in (0, 1):
        alone, alone_events = generate([r], SteeringBatch(tiny_sae, [plans[r]]))
        torch.testing.assert_close(together[r], alone[0], rtol=1e-4, atol=1e-4)
        assert events[r] == alone_events[0]
    assert [name for name, _ in events[0]] == ["a-event"]


def test_padding_neither_triggers_nor_gets_edited_and_select_concat_keep_state(tiny_sae, h):
    plans = _two_variants(tiny_sae, h)
    solo = [SteeringBatch(tiny_sae, [p]) for p in plans]
    solo_delta = [b(h) - h for b in solo]
    pad = 3
    padded = torch.cat([torch.zeros(1, pad, h.shape[2]), h], 1)
    both = torch.cat([padded, torch.cat([h, torch.zeros(1, pad, h.shape[2])], 1)])
    valid = torch.ones(both.shape[:2], dtype=torch.bool)
    valid[0, :pad] = False
    valid[1, -pad:] = False
    batch = SteeringBatch(tiny_sae, plans)
    delta = batch(both, valid) - both
    assert delta[0, :pad].abs().max() == 0 and delta[1, -pad:].abs().max() == 0
    torch.testing.assert_close(delta[0, pad:], solo_delta[0][0])
    torch.testing.assert_close(delta[1, :-pad], solo_delta[1][0])
    assert batch.drain_events() == [b.drain_events()[0] for b in solo]
    # rows leave and join: each keeps its own scope state
    assert batch.states[0].active == solo[0].states[0].active
    second = batch.select([1])
    joined = SteeringBatch.concat([second, batch.select([0])])
    assert joined.states[1] is batch.states[0] and joined.plans[0] is plans[1]
    step = h[:, -1:].expand(2, 1, -1)
    torch.testing.assert_close((joined(step) - step)[1], solo[0](h[:, -1:])[0] - h[0, -1:])
