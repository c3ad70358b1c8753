"""The engine's decode loop computes what transformers' forward computes: same logits for a padded batch,
with packed or plain weights, with a steering hook on a layer; it steps aside when a submodule is hooked."""

import copy

import pytest
import torch
from transformers import DynamicCache

from steerlab.engine.fast_decode import FastDecoder
from steerlab.models import packed_linear as pl
from tests.conftest import make_tiny_llama
from tests.unit.test_packed_linear import q4_1


def padded_prefill(model):
    ids = torch.tensor([[1, 1, 5, 17, 42], [9, 100, 7, 8, 33]])  # row 0 left-padded (pad id 1)
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache()
    with torch.inference_mode():
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True)
    return out.logits[:, -1].argmax(-1, keepdim=True), mask, positions[:, -1:] + 1, cache


def both_ways(model, fast):
    token, mask, position, cache = padded_prefill(model)
    mask = torch.cat([mask, mask.new_ones((2, 1))], dim=1)
    theirs_cache, ours_cache = cache, copy.deepcopy(cache)
    with torch.inference_mode():
        theirs = model(
            input_ids=token, attention_mask=mask, position_ids=position, cache=theirs_cache, use_cache=True
        ).logits[:, -1]
        ours = fast.step(token, mask, position, ours_cache)
        for layer in range(len(model.model.layers)):  # the caches hold the same keys and values after it
            assert torch.allclose(theirs_cache.layers[layer].keys, ours_cache.layers[layer].keys, atol=1e-5)
    return theirs, ours


def test_plain_weights_match_transformers_forward():
    model = make_tiny_llama(300, num_layers=3)
    theirs, ours = both_ways(model, FastDecoder(model))
    assert torch.allclose(theirs, ours, atol=1e-5)


@pytest.mark.skipif(not pl.kernels_available(), reason="no AVX-512 CPU or no C++ compiler here")
def test_packed_weights_match_and_originals_still_work():
    model = make_tiny_llama(300, num_layers=3)
    with torch.no_grad():
        for i, module in enumerate(m for m in model.modules() if type(m) is torch.nn.Linear):
            module.weight.copy_(q4_1(tuple(module.weight.shape), seed=i))
    pl.pack_linears(model)
    fast = FastDecoder(model)  # fuses q/k/v and gate/up: the projections become views of the fused weights
    theirs, ours = both_ways(model, fast)
    assert torch.allclose(theirs, ours, atol=1e-4)
    attn = model.model.layers[0].self_attn
    assert attn.k_proj.q.data_ptr() == fast.layers[0].qkv.q.data_ptr() + attn.q_proj.q.numel()


def test_layer_hooks_run_and_submodule_hooks_hand_back_to_transformers():
    model = make_tiny_llama(300, num_layers=3)
    fast = FastDecoder(model)
    shift = torch.randn(64)
    handle = model.model.layers[1].register_forward_hook(lambda m, i, o: o + shift)
    theirs, ours = both_ways(model, fast)
    handle.remove()
    plain, _ = both_ways(model, fast)
    assert torch.allclose(theirs, ours, atol=1e-5) and not torch.allclose(theirs, plain, atol=1e-3)
    assert fast.usable()
    handle = model.model.layers[2].mlp.register_forward_hook(lambda m, i, o: None)
    assert not fast.usable()
    handle.remove()
    assert fast.usable()


def test_only_llama_on_the_cpu_and_switch(monkeypatch):
    model = make_tiny_llama(300, num_layers=1)
    assert FastDecoder.supports(model)
    monkeypatch.setenv("STEERLAB_FAST_DECODE", "0")
    assert not FastDecoder.supports(model)


def test_many_steps_past_the_buffer_room_and_a_rebuilt_cache():
    from steerlab.engine import kv_cache
    from steerlab.engine.fast_decode import CAPACITY_STEP

    model = make_tiny_llama(300, num_layers=2)
    fast = FastDecoder(model)
    token, mask, position, cache = padded_prefill(model)
    theirs = copy.deepcopy(cache)
    with torch.inference_mode():
        for step in range(CAPACITY_STEP + 6):  # the buffers fill up once and grow
            if step == 10:  # the engine drops a finished row: a fresh cache of ordinary tensors
                keep = torch.tensor([1])
                cache, _ = kv_cache.select(cache, mask, keep)
                theirs, mask = kv_cache.select(theirs, mask, keep)
                token, position = token[keep], position[keep]
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
            expected = model(
                input_ids=token, attention_mask=mask, position_ids=position, cache=theirs, use_cache=True
            ).logits[:, -1]
            got = fast.step(token, mask, position, cache)
            assert torch.allclose(expected, got, atol=1e-5), step
            token, position = expected.argmax(-1, keepdim=True), position + 1
    assert cache.layers[0].keys.shape == theirs.layers[0].keys.shape
