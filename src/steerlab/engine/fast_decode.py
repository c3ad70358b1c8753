"""One decode step of a Llama-family model without transformers' per-module plumbing.

A decode step on the bundled model spends about as long in Python around its ~1,500 small operations
(module calls, keyword plumbing, a 4-D mask rebuilt every step, the attention-backend lookup) as in
its products. :class:`FastDecoder` runs the same computation from the same weights in one loop: the
query/key/value projections and the gate/up projections each as one product (their weights are made
views of one fused tensor, so nothing is stored twice), one call per RMSNorm (the same formula),
queries and keys rotated together, key/value buffers with room to grow (no per-step copy of the
cache), attention with the query heads that share a key/value head as one product and a padding bias,
and every forward hook a decoder layer carries (the engine's steering) called with that layer's
output as transformers would. Prefill, analysis and anything with hooks on a layer's submodules keep using the
model's own forward. ``STEERLAB_FAST_DECODE=0`` turns it off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast

import torch
import torch.nn.functional as F
from torch import nn

from steerlab.models.cpu_kernels import kernels_available
from steerlab.models.packed_linear import PackedLinear
from steerlab.settings import get_settings

if TYPE_CHECKING:
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer


class _Linear(Protocol):
    """A projection as the decoder reads it (``nn.Linear``, ``PackedLinear``)."""

    in_features: int
    out_features: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


class _RMSNorm(Protocol):
    weight: torch.Tensor
    variance_epsilon: float


class _Attention(Protocol):
    q_proj: _Linear
    k_proj: _Linear
    v_proj: _Linear
    o_proj: _Linear


class _MLP(Protocol):
    gate_proj: _Linear
    up_proj: _Linear
    down_proj: _Linear
    act_fn: Callable[[torch.Tensor], torch.Tensor]


class _DecoderLayer(Protocol):
    """What the decoder reads off one of transformers' ``LlamaDecoderLayer``s (a missing attribute is an
    AttributeError at construction: the engine then decodes with the model's forward)."""

    self_attn: _Attention
    mlp: _MLP
    input_layernorm: _RMSNorm
    post_attention_layernorm: _RMSNorm


class _Config(Protocol):
    num_attention_heads: int
    num_key_value_heads: int
    hidden_size: int


def fuse_linears(linears: Sequence[_Linear]) -> nn.Module | None:
    """One layer computing ``cat([l(x) for l in linears], -1)``, or None. The originals keep working: their
    weights become row slices (views) of the fused tensors."""
    first = linears[0]
    if any(getattr(m, "in_features", None) != first.in_features for m in linears):
        return None
    packed = [m for m in linears if type(m) is PackedLinear]
    if len(packed) == len(linears) and all(m.form == packed[0].form for m in packed):
        form = packed[0].form
        names = ["w"] if form == "bf16" else ["q", "scale", "offset"]
        fused = {name: torch.cat([getattr(m, name) for m in packed]) for name in names}
        start = 0
        for m in packed:
            for name in names:
                setattr(m, name, fused[name][start : start + m.out_features])  # buffers: views, no copy
            m._bind()
            start += m.out_features
        return PackedLinear(first.in_features, start, form, fused)
    plain = [m for m in linears if type(m) is nn.Linear and m.bias is None]
    if len(plain) == len(linears):
        weight = torch.cat([m.weight.detach() for m in plain])
        start = 0
        for m in plain:
            m.weight = nn.Parameter(weight[start : start + m.out_features], requires_grad=m.weight.requires_grad)
            start += m.out_features
        fused = nn.Linear(first.in_features, start, bias=False, device="meta")  # no throwaway random init
        fused.weight = nn.Parameter(weight, requires_grad=False)
        return fused
    return None


@dataclass
class _Layer:
    module: nn.Module
    norm1: _RMSNorm
    qkv: nn.Module
    o_proj: _Linear
    norm2: _RMSNorm
    gate_up: nn.Module
    gate_size: int
    down: _Linear
    act: Callable[[torch.Tensor], torch.Tensor]
    submodules: tuple[nn.Module, ...]


class FastDecoder:
    """``step(ids [B, 1], mask [B, past + 1], positions [B, 1], cache) -> logits [B, vocab]``.

    The model's module tree is read once, here, into typed attributes (transformers' ``LlamaForCausalLM``
    layout: ``model.{embed_tokens, layers, norm, rotary_emb}``, ``lm_head``); a module missing from it is an
    AttributeError, a layout that differs a ValueError (the engine then decodes with the model's forward)."""

    def __init__(self, model: nn.Module) -> None:
        inner = model.get_submodule("model")
        config = cast(_Config, model.config)  # a LlamaConfig (``supports``: model_type "llama")
        layers = inner.get_submodule("layers")
        if not isinstance(layers, nn.ModuleList):
            raise ValueError("decoder layers that are not a ModuleList")
        self.model = model
        self.embed_tokens = inner.get_submodule("embed_tokens")
        self.rotary_emb = inner.get_submodule("rotary_emb")
        final_norm = inner.get_submodule("norm")
        self.final_norm = cast(_RMSNorm, final_norm)  # used as the layers' norms are (``_norm``)
        self.lm_head = model.get_submodule("lm_head")
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim: int = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.scaling = self.head_dim**-0.5
        self.layers: list[_Layer] = []
        for module in layers:
            layer = cast(_DecoderLayer, module)  # a LlamaDecoderLayer (see the class doc)
            attn, mlp = layer.self_attn, layer.mlp
            sizes = (attn.q_proj.out_features, attn.k_proj.out_features, attn.v_proj.out_features)
            if sizes != (self.heads * self.head_dim, self.kv_heads * self.head_dim, self.kv_heads * self.head_dim):
                raise ValueError("projection sizes that do not match the heads")
            if any(
                norm.weight.shape != (config.hidden_size,) or not hasattr(norm, "variance_epsilon")
                for norm in (layer.input_layernorm, layer.post_attention_layernorm)
            ):
                raise ValueError("norms that are not RMSNorm over the hidden size")
            qkv = fuse_linears([attn.q_proj, attn.k_proj, attn.v_proj])
            gate_up = fuse_linears([mlp.gate_proj, mlp.up_proj])
            if qkv is None or gate_up is None:
                raise ValueError("projections that cannot be fused")
            self.layers.append(
                _Layer(
                    module,
                    layer.input_layernorm,
                    qkv,
                    attn.o_proj,
                    layer.post_attention_layernorm,
                    gate_up,
                    mlp.gate_proj.out_features,
                    mlp.down_proj,
                    mlp.act_fn,
                    tuple(m for m in module.modules() if m is not module),
                )
            )
        self._norm_shape = (config.hidden_size,)
        self._fused_norm = kernels_available() and config.hidden_size % 16 == 0
        self._watched = (model, inner, self.embed_tokens, final_norm, self.rotary_emb, self.lm_head)

    def _norm(self, x: torch.Tensor, norm: _RMSNorm) -> torch.Tensor:
        """The RMSNorm module's formula in one call: our kernel (``csrc/rms_norm.cpp``) or ``F.rms_norm``."""
        if self._fused_norm and x.dtype is torch.float32:
            return torch.ops.steerlab_cpu.rms_norm(x, norm.weight, norm.variance_epsilon)
        return F.rms_norm(x, self._norm_shape, norm.weight, norm.variance_epsilon)

    @staticmethod
    def supports(model: nn.Module) -> bool:
        """Llama-architecture decoders (Llama, SmolLM, Mistral-style without sliding windows) on the CPU."""
        return get_settings().fast_decode and FastDecoder.unsupported_reason(model) is None

    @staticmethod
    def unsupported_reason(model: nn.Module) -> str | None:
        """Why this model's decode steps need transformers' forward (None: they need not). Every family but
        Llama (Qwen, Gemma, Mistral, Phi-3, OLMo 2, GPT-NeoX, ...) decodes through the model's own forward:
        the same tokens, without this loop's speed-up."""
        config = getattr(model, "config", None)
        model_type = getattr(config, "model_type", None)
        if config is None or model_type != "llama":
            return f"the engine's fast loop covers Llama-family models; this is {model_type or 'an unknown type'}"
        if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
            return "a Llama with attention or MLP biases"
        if getattr(config, "pretraining_tp", 1) != 1 or getattr(config, "_attn_implementation", "sdpa") != "sdpa":
            return "a Llama with tensor-parallel slicing or a non-SDPA attention backend"
        device = next(model.parameters()).device.type
        return None if device == "cpu" else f"the fast loop runs on the CPU; this model is on {device}"

    def usable(self) -> bool:
        """False while anything but a whole decoder layer carries a hook (analysis code hooking a
        projection, a norm or the model itself expects transformers' forward)."""
        if nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks:
            return False
        for module in self._watched:
            if module._forward_hooks or module._forward_pre_hooks:
                return False
        for layer in self.layers:
            if layer.module._forward_pre_hooks or any(
                m._forward_hooks or m._forward_pre_hooks for m in layer.submodules
            ):
                return False
        return True

    def step(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: DynamicCache) -> torch.Tensor:
        batch = ids.shape[0]
        x = self.embed_tokens(ids)  # [B, 1, d]
        cos, sin = self.rotary_emb(x, position_ids=positions)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # [B, 1, 1, head_dim]
        bias = torch.zeros(mask.shape, dtype=x.dtype).masked_fill_(mask == 0, float("-inf"))[:, None, None, :]
        cache_layers = cast("list[DynamicLayer]", cache.layers)  # what DynamicCache holds without sliding windows
        for index, layer in enumerate(self.layers):
            h = self._norm(x, layer.norm1)
            qkv = layer.qkv(h).view(batch, 1, self.heads + 2 * self.kv_heads, self.head_dim).transpose(1, 2)
            qk = _rotate(qkv[:, : self.heads + self.kv_heads], cos, sin)  # queries and keys in one rotation
            q, k, v = qk[:, : self.heads], qk[:, self.heads :], qkv[:, self.heads + self.kv_heads :]
            k, v = _append(cache_layers[index], k, v)
            # One query per row: the query heads sharing a key/value head as one product (what SDPA with
            # grouped heads computes, ~20% faster at 16 rows), padding masked by a 0 / -inf bias.
            scores = torch.matmul(q.reshape(batch, self.kv_heads, -1, self.head_dim), k.transpose(-1, -2))
            weights = torch.softmax(scores * self.scaling + bias, dim=-1)
            x = x + layer.o_proj(torch.matmul(weights, v).reshape(batch, 1, -1))
            gate_up = layer.gate_up(self._norm(x, layer.norm2))
            gate, up = gate_up[..., : layer.gate_size], gate_up[..., layer.gate_size :]
            x = x + layer.down(layer.act(gate) * up)
            for hook in layer.module._forward_hooks.values():  # as nn.Module calls them
                replaced = hook(layer.module, (x,), x)
                if replaced is not None:
                    x = replaced[0] if isinstance(replaced, tuple) else replaced
        return self.lm_head(self._norm(x, self.final_norm))[:, -1]


CAPACITY_STEP = 64
"""Positions added to a layer's key/value buffers when they fill up."""
_BUFFERS = "_steerlab_buffers"
"""The attribute on a ``DynamicLayer`` that holds its ``(keys, values)`` buffers (ours, not transformers')."""


def _append(layer: DynamicLayer, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``layer.update(k, v)`` without copying the whole cache every step: keys and values live in buffers with
    room for ``CAPACITY_STEP`` more positions, and the layer holds views of their filled part. Whatever
    rebuilds the cache (joining or dropping sequences, transformers' own forward) sees ordinary tensors."""
    keys, values = layer.keys, layer.values
    assert keys is not None and values is not None  # decode steps follow a prefill, which filled every layer
    buffers: tuple[torch.Tensor, torch.Tensor] | None = getattr(layer, _BUFFERS, None)
    length = keys.shape[2]
    if (
        buffers is None
        or buffers[0].shape[:2] != keys.shape[:2]
        or buffers[0].shape[2] <= length
        or keys.data_ptr() != buffers[0].data_ptr()
        or values.data_ptr() != buffers[1].data_ptr()
    ):
        shape = (*keys.shape[:2], length + CAPACITY_STEP, keys.shape[3])
        buffers = (keys.new_empty(shape), values.new_empty(shape))
        buffers[0][:, :, :length] = keys
        buffers[1][:, :, :length] = values
        setattr(layer, _BUFFERS, buffers)
    buffers[0][:, :, length] = k[:, :, 0]
    buffers[1][:, :, length] = v[:, :, 0]
    keys, values = buffers[0][:, :, : length + 1], buffers[1][:, :, : length + 1]
    layer.keys, layer.values = keys, values
    return keys, values


def _rotate(t: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding, the same products as transformers' ``apply_rotary_pos_emb``."""
    half = t.shape[-1] // 2
    return t * cos + torch.cat((-t[..., half:], t[..., :half]), dim=-1) * sin
