"""Packed linear layers: the compact form rebuilds every weight bit for bit, the kernels multiply like
F.linear, and a model whose weights came from GGUF-style blocks decodes the same tokens packed or not."""

import pytest
import torch
import torch.nn.functional as F

from steerlab.models import packed_linear as pl
from tests.conftest import make_tiny_llama

needs_kernels = pytest.mark.skipif(not pl.kernels_available(), reason="no AVX-512 CPU or no C++ compiler here")


def q4_1(shape, seed=0) -> torch.Tensor:
    """Floats as GGUF's Q4_1 de-quantizer returns them: per 32 weights, d * q + m with q in 0..15, d and m fp16."""
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(shape[0], shape[1] // 32, 32, generator=g)
    low, high = raw.amin(-1), raw.amax(-1)
    d, m = ((high - low) / 15).half().float(), low.half().float()
    q = ((raw - m[..., None]) / d[..., None]).round().clamp(0, 15)
    return (q * d[..., None] + m[..., None]).reshape(shape)


def q8_0(shape, seed=0) -> torch.Tensor:
    """As Q8_0's de-quantizer: d * q, q in -127..127, d = fp16(absmax / 127)."""
    raw = torch.randn(shape[0], shape[1] // 32, 32, generator=torch.Generator().manual_seed(seed))
    d = (raw.abs().amax(-1) / 127).half().float()
    return (d[..., None] * (raw / d[..., None]).round()).reshape(shape)


def q4_0(shape, seed=0) -> torch.Tensor:
    """As Q4_0's: d * (q - 8), d = fp16(signed absmax / -8)."""
    raw = torch.randn(shape[0], shape[1] // 32, 32, generator=torch.Generator().manual_seed(seed))
    peak = raw.gather(-1, raw.abs().argmax(-1, keepdim=True)).squeeze(-1)
    d = (peak / -8).half().float()
    return (d[..., None] * (raw / d[..., None]).round().clamp(-8, 7)).reshape(shape)


@pytest.mark.parametrize("make", [q4_1, q8_0, q4_0])
def test_gguf_blocks_pack_exactly_as_q8(make):
    w = make((40, 96))
    form, tensors = pl.pack_weight(w)
    assert form == "q8" and tensors["q"].dtype == torch.int8
    assert torch.equal(pl.PackedLinear(96, 40, form, tensors).weight, w)  # bit for bit


def test_bf16_values_pack_as_bf16_and_plain_floats_do_not_pack():
    bf16 = torch.randn(8, 48).bfloat16().float()
    form, tensors = pl.pack_weight(bf16)
    assert form == "bf16" and torch.equal(pl.PackedLinear(48, 8, form, tensors).weight, bf16)
    assert pl.pack_weight(torch.randn(8, 64)) is None  # random float32: no exact compact form
    assert pl.pack_weight(torch.randn(8, 40).bfloat16().float()) is None  # 40 columns: the kernel needs 16s
    assert pl.pack_weight(torch.randn(8, 64, dtype=torch.float64)) is None
    zeros = torch.zeros(4, 64)
    assert pl.pack_weight(zeros)[0] == "q8"  # an all-zero block has scale 0: still exact, no division by zero


@needs_kernels
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 17, 130])  # 130: past LARGE_BATCH_ROWS, MKL on unpacked weights
@pytest.mark.parametrize("out_features", [1, 3, 4, 9, 70])
def test_kernels_match_float_linear(rows, out_features):
    x = torch.randn(rows, 96)
    for w in (q4_1((out_features, 96)), torch.randn(out_features, 96).bfloat16().float()):
        layer = pl.PackedLinear(96, out_features, *pl.pack_weight(w))
        expected = F.linear(x, w)
        assert torch.allclose(layer(x), expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())
    batched = torch.randn(2, rows, 96)  # leading dimensions are kept
    assert layer(batched).shape == (2, rows, out_features)


@needs_kernels
def test_gradients_and_other_dtypes_take_the_plain_product():
    w = q4_1((6, 64))
    layer = pl.PackedLinear(64, 6, *pl.pack_weight(w))
    x = torch.randn(3, 64, requires_grad=True)
    layer(x).square().sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    F.linear(x2, w).square().sum().backward()
    assert torch.allclose(x.grad, x2.grad, atol=1e-5)
    assert layer(torch.randn(2, 64).bfloat16()).dtype == torch.bfloat16


@needs_kernels
def test_kernel_rejects_mismatched_shapes_with_a_clear_error():
    layer = pl.PackedLinear(64, 6, *pl.pack_weight(q4_1((6, 64))))
    with pytest.raises(RuntimeError, match="columns"):
        torch.ops.steerlab_cpu.linear_q8(torch.randn(2, 32), layer.q, layer.scale, layer.offset)


@needs_kernels
def test_quantized_tiny_llama_decodes_the_same_tokens_packed():
    model = make_tiny_llama(300, num_layers=3)
    with torch.no_grad():
        for i, module in enumerate(m for m in model.modules() if type(m) is torch.nn.Linear):
            module.weight.copy_(q4_1(tuple(module.weight.shape), seed=i))
    packed = make_tiny_llama(300, num_layers=3)
    packed.load_state_dict(model.state_dict())
    counts = pl.pack_linears(packed)
    linears = sum(type(m) is torch.nn.Linear for m in model.modules())
    assert counts == {"q8": linears} and not any(type(m) is torch.nn.Linear for m in packed.modules())
    ids = torch.tensor([[5, 17, 42, 9, 100, 7]])
    with torch.inference_mode():
        assert torch.allclose(model(ids).logits, packed(ids).logits, atol=1e-4)
        expected = model.generate(ids, max_new_tokens=12, do_sample=False)
        assert torch.equal(packed.generate(ids, max_new_tokens=12, do_sample=False), expected)
    assert packed.get_output_embeddings().out_features == 300
