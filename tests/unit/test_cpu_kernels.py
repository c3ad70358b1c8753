"""Building and loading our CPU kernels: switched off by the environment, a broken compiler only costs
speed; the RMSNorm kernel computes transformers' Llama norm."""

import pytest
import torch
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from steerlab.models import cpu_kernels as ck
from steerlab.models.packed_linear import pack_linears
from tests.conftest import make_tiny_llama


def test_switched_off_by_environment(monkeypatch):
    monkeypatch.setattr(ck, "_loaded", None)
    monkeypatch.setenv("STEERLAB_PACKED_WEIGHTS", "0")
    assert ck.kernels_available() is False
    assert pack_linears(make_tiny_llama(300, num_layers=1)) == {}


def test_a_broken_compiler_leaves_pytorch_ops(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(ck, "_loaded", None)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))  # nothing cached: it must compile
    monkeypatch.setenv("CXX", "/bin/false")
    if not set(ck.CPU_FLAGS) <= ck._cpu_flags():
        pytest.skip("this CPU never reaches the compiler")
    assert ck.kernels_available() is False
    assert "PyTorch's own ops are used" in caplog.text


@pytest.mark.skipif(not ck.kernels_available(), reason="no AVX-512 CPU or no C++ compiler here")
@pytest.mark.parametrize("shape", [(1, 1, 64), (16, 1, 576), (3, 7, 32)])
def test_rms_norm_matches_the_llama_norm(shape):
    norm = LlamaRMSNorm(shape[-1], eps=1e-5)
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(shape) * 3
    expected = norm(x).detach()
    got = torch.ops.steerlab_cpu.rms_norm(x, norm.weight.detach(), 1e-5)
    assert got.shape == x.shape and torch.allclose(got, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError, match="last dimension"):
        torch.ops.steerlab_cpu.rms_norm(torch.randn(2, 48), norm.weight.detach(), 1e-5)
