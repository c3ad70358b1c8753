import pytest
import torch

from steerlab.engine.batcher import Engine
from steerlab.engine.lab import Lab
from steerlab.generation.sampler import SamplingParams, sample_next, stream_safe_prefix
from steerlab.models.chat_template import chat_input_ids, stop_token_ids


def _run(lm, **kw):
    """One sequence through the engine, the one single-sequence decode path."""
    ids = chat_input_ids(lm.tokenizer, [{"role": "user", "content": "the cat"}])
    engine = Engine(lm.model, lm.tokenizer, None, stop_token_ids(lm.tokenizer))
    try:
        events = list(engine.submit(ids, SamplingParams(**kw)))
    finally:
        engine.close()
    return "".join(e.text for e in events), events


def test_same_seed_same_text_different_seed_differs(tiny_lm):
    a, _ = _run(tiny_lm, max_new_tokens=20, temperature=1.0, seed=1)
    b, _ = _run(tiny_lm, max_new_tokens=20, temperature=1.0, seed=1)
    c, _ = _run(tiny_lm, max_new_tokens=20, temperature=1.0, seed=2)
    assert a == b and a != c


def test_stream_concatenation_equals_full_decode_and_finish_reason(tiny_lm):
    text, events = _run(tiny_lm, max_new_tokens=15, temperature=0, seed=0)
    generated = [e.token_id for e in events]
    assert events[-1].finish_reason in ("length", "stop")
    if events[-1].finish_reason == "length":
        assert text == tiny_lm.tokenizer.decode(generated, skip_special_tokens=True)


def test_stop_sequence_cuts_text(tiny_lm):
    full, _ = _run(tiny_lm, max_new_tokens=30, temperature=0)
    assert len(full) > 4
    stop = full[3:5]
    cut, events = _run(tiny_lm, max_new_tokens=30, temperature=0, stop=[stop])
    assert events[-1].finish_reason == "stop" and stop not in cut and full.startswith(cut)


def test_safe_prefix_holds_back_partial_stop():
    assert stream_safe_prefix("hello wor", ["world"]) == "hello "
    assert stream_safe_prefix("abc\ufffd", []) == "abc"


def test_top_p_keeps_only_the_nucleus():
    logits = torch.tensor([5.0, 4.0, -10.0, -10.0])
    g = torch.Generator().manual_seed(0)
    picks = {sample_next(logits, SamplingParams(temperature=1.0, top_p=0.5), g) for _ in range(50)}
    assert picks == {0}


@pytest.mark.parametrize("kw", [{"max_new_tokens": 0}, {"temperature": -1}, {"top_p": 0}])
def test_bad_sampling_params(kw):
    with pytest.raises(ValueError):
        SamplingParams(**kw).validate()


def test_steered_chat_differs_and_unsteered_is_restored(tiny_lm):
    from steerlab.sae.config import SAEConfig
    from steerlab.sae.registry import create_sae
    from steerlab.steering.edits import FeatureEdit
    from steerlab.steering.plan import edits_controller

    torch.manual_seed(0)
    sae = create_sae(SAEConfig(d_in=64, d_sae=256, k=8, hookpoint="model.layers.1")).requires_grad_(False)
    msgs = [{"role": "user", "content": "the cat"}]
    params = SamplingParams(max_new_tokens=12, temperature=0)
    lab = Lab(tiny_lm, sae, max_batch=2)
    try:
        base = "".join(e.text for e in lab.generate(msgs, params))
        steered = "".join(e.text for e in lab.generate(msgs, params, edits_controller([FeatureEdit(3, 40.0)])))
        again = "".join(e.text for e in lab.generate(msgs, params))
    finally:
        lab.close()
    assert steered != base and again == base
