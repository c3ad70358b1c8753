"""Linear layers that keep their weights in the checkpoint's compact form and compute in float32.

Decoding one token on a CPU reads every weight once, so its speed is bytes per weight. Models are run in
float32 here (SAEs are trained on float32 activations), but their checkpoints rarely hold more than 16
bits of information per weight: a bf16 checkpoint holds bf16 values, and a GGUF checkpoint de-quantized
to float (the bundled default: Q4_1 layers, a Q8_0 embedding) holds ``d * q + m`` per block of 32 with
``q`` a small integer. :func:`pack_weight` finds such an *exact* compact form — every float32 weight is
rebuilt bit for bit, or the layer is left alone — and :class:`PackedLinear` multiplies with it through a
small AVX-512 kernel (``csrc/packed_linear.cpp``) that widens weights in registers for a few rows, or each
weight tile once in L1 for every row of a larger batch. Outputs equal the float32 layer's up to the order
of the sums. ``benchmarks/serve.py`` measures it against HF ``generate`` on the stock float32 model.

The kernels are compiled once (``cpu_kernels.py``); without them layers stay ``nn.Linear``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from steerlab.models.cpu_kernels import kernels_available

BLOCK = 32
"""Weights per (scale, offset) pair in the q8 form: GGUF's block size for Q4_0, Q4_1 and Q8_0."""
LARGE_BATCH_ROWS = 96
"""From about this many rows (a prefill) the kernels' arithmetic, not the bytes, is the cost, and MKL's blocked
product on the float32 weight (rebuilt by ``unpack_q8``) wins: 1536x576 at 96 rows 0.90 vs 1.05 ms, at 480 rows
3.6 vs 8.0 ms here (weights in cache; streaming from memory favours the kernels, hence not lower)."""


def _f16(values: torch.Tensor) -> torch.Tensor:
    return values.to(torch.float16).to(torch.float32)


def _q8_candidates(blocks: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(scale, offset) per block that GGUF's quantizers would have stored: Q4_1 (offset = block min,
    scale = range / 15), Q8_0 (absmax / 127) and Q4_0 (absmax / 8), each scale rounded to float16."""
    low, high = blocks.amin(-1), blocks.amax(-1)
    absmax = blocks.abs().amax(-1)
    zero = torch.zeros_like(low)
    yield _f16((high - low) / 15), low
    yield _f16(absmax / 127), zero
    yield _f16(absmax / 8), zero


def pack_weight(weight: torch.Tensor) -> tuple[str, dict[str, torch.Tensor]] | None:
    """The exact compact form of a float32 ``[N, K]`` weight: ``("q8", {q, scale, offset})``, ``("bf16", {w})``,
    or None when neither rebuilds every weight bit for bit."""
    if weight.dim() != 2 or weight.dtype != torch.float32:
        return None
    w = weight.detach()
    N, K = w.shape
    if K % BLOCK == 0 and K > 0:
        blocks = w.reshape(N, K // BLOCK, BLOCK)
        q = torch.zeros(blocks.shape, dtype=torch.int8)
        scale, offset = torch.zeros(N, K // BLOCK), torch.zeros(N, K // BLOCK)
        solved = torch.zeros(N, K // BLOCK, dtype=torch.bool)
        for s, o in _q8_candidates(blocks):
            safe = torch.where(s == 0, torch.ones_like(s), s)
            steps = ((blocks - o[..., None]) / safe[..., None]).round()
            steps = torch.where((s == 0)[..., None], torch.zeros_like(steps), steps)
            fits = (steps.abs() <= 127).all(-1)
            steps = steps.clamp(-127, 127)
            exact = fits & ((steps * s[..., None] + o[..., None]) == blocks).all(-1) & ~solved
            q[exact], scale[exact], offset[exact] = steps[exact].to(torch.int8), s[exact], o[exact]
            solved |= exact
            if bool(solved.all()):
                return "q8", {"q": q.reshape(N, K), "scale": scale, "offset": offset}
    if K % 16 == 0 and K > 0:
        bf16 = w.to(torch.bfloat16)
        if bool((bf16.to(torch.float32) == w).all()):
            return "bf16", {"w": bf16}
    return None


class PackedLinear(nn.Module):
    """``nn.Linear`` without bias, its weight held in an exact compact form (see the module doc)."""

    w: torch.Tensor  # the bf16 form's buffer
    q: torch.Tensor  # the q8 form's buffers
    scale: torch.Tensor
    offset: torch.Tensor
    _kernel: Callable[..., torch.Tensor]
    _weights: tuple[torch.Tensor, ...]

    def __init__(self, in_features: int, out_features: int, form: str, tensors: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.in_features, self.out_features, self.form = in_features, out_features, form
        for name, tensor in tensors.items():
            self.register_buffer(name, tensor.contiguous())
        self._bind()

    def _bind(self) -> None:
        """The kernel and its weight tensors as plain attributes: a decode step makes ~200 of these calls,
        and nn.Module's attribute lookup cost ~15 us of Python each."""
        if self.form == "bf16":
            self._kernel, self._weights = torch.ops.steerlab_cpu.linear_bf16, (self.w,)
        else:
            self._kernel, self._weights = torch.ops.steerlab_cpu.linear_q8, (self.q, self.scale, self.offset)

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], *args: Any, **kwargs: Any) -> PackedLinear:
        module = super()._apply(fn, *args, **kwargs)
        self._bind()  # .to() / .float() replaced the buffers
        return module

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> PackedLinear | None:
        if linear.bias is not None or linear.weight.device.type != "cpu":
            return None
        packed = pack_weight(linear.weight)
        return None if packed is None else cls(linear.in_features, linear.out_features, *packed)

    @property
    def weight(self) -> torch.Tensor:
        """The float32 weight, rebuilt (for code that reads weights: logit effects, autograd)."""
        if self.form == "bf16":
            return self.w.to(torch.float32)
        if self.q.device.type == "cpu" and kernels_available():
            return torch.ops.steerlab_cpu.unpack_q8(self.q, self.scale, self.offset)
        blocks = self.q.reshape(self.out_features, -1, BLOCK).to(torch.float32)
        return (blocks * self.scale[..., None] + self.offset[..., None]).reshape(self.out_features, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.requires_grad
            or x.dtype is not torch.float32
            or x.device.type != "cpu"
            or x.numel() >= LARGE_BATCH_ROWS * self.in_features
        ):
            return F.linear(x, self.weight.to(x.dtype))  # gradients, other dtypes, long prefills: the plain product
        if x.dim() == 2:
            return self._kernel(x, *self._weights)
        return self._kernel(x.reshape(-1, self.in_features), *self._weights).view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, form={self.form}"


def pack_linears(model: nn.Module) -> dict[str, int]:
    """Replace every bias-free CPU ``nn.Linear`` whose weight has an exact compact form; returns how many
    layers took each form (empty when the kernels are unavailable). Embedding lookups keep their table."""
    if not kernels_available():
        return {}
    counts: dict[str, int] = {}
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear:
                packed = PackedLinear.from_linear(child)
                if packed is not None:
                    setattr(parent, name, packed)
                    counts[packed.form] = counts.get(packed.form, 0) + 1
    return counts
