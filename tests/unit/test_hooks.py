import pytest
import torch

from steerlab.models.hooks import (
    HookpointError,
    capture_residual,
    edit_residual,
    forward_to_hookpoint,
    layer_index,
    resolve_hookpoint,
)


def _ids(lm, text="the cat sat on the mat"):
    return lm.tokenizer(text, return_tensors="pt")["input_ids"]


def test_resolve_hookpoint_by_index_name_and_negative(tiny_lm):
    m = tiny_lm.model
    assert resolve_hookpoint(m, 2) == "model.layers.2"
    assert resolve_hookpoint(m, "2") == "model.layers.2"
    assert resolve_hookpoint(m, -1) == "model.layers.3"
    assert resolve_hookpoint(m, "model.layers.1") == "model.layers.1"
    assert layer_index(m, "model.layers.1") == 1


@pytest.mark.parametrize("bad", [4, -5, "model.layers.9", "model.layers.*"])
def test_bad_hookpoint_is_clear(tiny_lm, bad):
    with pytest.raises(HookpointError, match="0..3|matches"):
        resolve_hookpoint(tiny_lm.model, bad)


def test_forward_to_hookpoint_matches_full_forward_hidden_states(tiny_lm):
    ids = _ids(tiny_lm)
    with torch.inference_mode():
        full = tiny_lm.model(ids, output_hidden_states=True).hidden_states
    got = forward_to_hookpoint(tiny_lm.model, ids, "model.layers.1")
    torch.testing.assert_close(got, full[2], rtol=0, atol=0)


def test_stop_forward_skips_later_layers(tiny_lm):
    calls = []
    handle = tiny_lm.model.model.layers[3].register_forward_hook(lambda *a: calls.append(1))
    forward_to_hookpoint(tiny_lm.model, _ids(tiny_lm), "model.layers.1")
    handle.remove()
    assert calls == []


def test_edit_then_remove_restores_bit_identical_logits(tiny_lm):
    ids = _ids(tiny_lm)
    with torch.inference_mode():
        before = tiny_lm.model(ids).logits.clone()
        with edit_residual(tiny_lm.model, "model.layers.1", lambda h: h + 1.0):
            edited = tiny_lm.model(ids).logits.clone()
        after = tiny_lm.model(ids).logits
    assert not torch.equal(before, edited)
    assert torch.equal(before, after)


def test_capture_records_each_hookpoint(tiny_lm):
    ids = _ids(tiny_lm)
    with torch.inference_mode(), capture_residual(tiny_lm.model, ["model.layers.0", "model.layers.2"]) as cap:
        out = tiny_lm.model(ids, output_hidden_states=True)
    assert torch.equal(cap["model.layers.2"], out.hidden_states[3])
    assert cap["model.layers.0"].shape == (1, ids.shape[1], 64)


def test_hooks_act_only_on_forwards_of_the_thread_that_installed_them(tiny_lm):
    """The server's engine thread decodes while another thread runs AutoSteer with its own hooks."""
    import threading

    from steerlab.models.hooks import edit_residual, forward_to_hookpoint

    ids = torch.tensor([[5, 6, 7, 8]])
    clean = tiny_lm.model(ids).logits
    other: dict[str, torch.Tensor] = {}

    def other_thread():
        other["logits"] = tiny_lm.model(ids).logits
        other["stopped"] = forward_to_hookpoint(tiny_lm.model, ids, "model.layers.0")

    with edit_residual(tiny_lm.model, "model.layers.0", lambda h: h * 0):
        edited = tiny_lm.model(ids).logits
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
    assert not torch.equal(edited, clean)
    assert torch.equal(other["logits"], clean)  # the edit never touched the other thread's forward
    assert other["stopped"].shape == (1, 4, tiny_lm.model.config.hidden_size)
