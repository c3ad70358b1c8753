"""Hookpoints: read and write the residual stream after any block, by the HF module's own name.

Hooks do not rewrite the model: we attach plain forward hooks to the module named e.g.
``model.layers.18`` (the residual stream after block 18) and remove them afterwards, which restores
the computation before them bit for bit. (Loading does replace weights: on a CPU, linear layers
become ``PackedLinear`` (``packed_linear.py``), and the engine's fast decoder makes the q/k/v and
gate/up weights views of fused tensors (``engine/fast_decode.py``). Both keep each block's output
up to the order of the sums, and the block outputs are where these hooks read and write.)

Every hook here acts only on forwards run by the thread that installed it. The server's engine
thread decodes on the same model object while another thread runs an analysis (AutoSteer takes a
minute); without the guard one's hooks would edit, or stop, the other's forward passes.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from steerlab.errors import InvalidInputError

Editor = Callable[[torch.Tensor], torch.Tensor]  # hidden [batch, seq, d_model] -> same shape
BlockOutput = Any  # what a block's forward returns: its hidden state, or a tuple that starts with it


def register_own_thread_hook(module: nn.Module, hook: Callable) -> torch.utils.hooks.RemovableHandle:
    """``module.register_forward_hook(hook)``, but the hook runs only for this thread's forwards."""
    owner = threading.get_ident()

    def guarded(module: nn.Module, inputs: tuple[Any, ...], output: BlockOutput) -> BlockOutput:
        if threading.get_ident() != owner:
            return None
        return hook(module, inputs, output)

    return module.register_forward_hook(guarded)


class HookpointError(InvalidInputError):
    """A layer index or module name that the model does not have."""


def block_list(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """Find the transformer's list of blocks (``model.layers`` for Llama, ``transformer.h`` for GPT-2, ...)."""
    best: tuple[str, nn.ModuleList] | None = None
    n_layers = getattr(model.config, "num_hidden_layers", None)
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers:
            if best is None or name.count(".") < best[0].count("."):
                best = (name, module)
    if best is None:
        raise HookpointError("cannot find the list of transformer blocks in this model")
    return best


def resolve_hookpoint(model: nn.Module, layer: int | str) -> str:
    """Turn a block index (negative counts from the end) or a module name/glob into a module name."""
    prefix, blocks = block_list(model)
    if isinstance(layer, int) or (isinstance(layer, str) and layer.lstrip("-").isdigit()):
        idx = int(layer)
        if not -len(blocks) <= idx < len(blocks):
            raise HookpointError(f"layer must be in 0..{len(blocks) - 1} (or -{len(blocks)}..-1), got {idx}")
        return f"{prefix}.{idx % len(blocks)}"
    names = [n for n, _ in model.named_modules() if n]
    matches = [n for n in names if fnmatch.fnmatchcase(n, layer)]
    if len(matches) != 1:
        raise HookpointError(
            f"hookpoint {layer!r} matches {len(matches)} modules; give a block index 0..{len(blocks) - 1} "
            f"or one module name such as '{prefix}.0'"
        )
    return matches[0]


def layer_index(model: nn.Module, hookpoint: str) -> int | None:
    prefix, _ = block_list(model)
    head, _, tail = hookpoint.rpartition(".")
    return int(tail) if head == prefix and tail.isdigit() else None


def output_hidden(output: BlockOutput) -> torch.Tensor:
    """The hidden state in a block's forward output (HF blocks return a tuple or, in newer releases, the tensor)."""
    return output[0] if isinstance(output, tuple) else output


def replace_output_hidden(output: BlockOutput, hidden: torch.Tensor) -> BlockOutput:
    """``output`` with its hidden state swapped for ``hidden``, in the same shape: what a hook returns to edit."""
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


@contextmanager
def edit_residual(model: nn.Module, hookpoint: str, editor: Editor) -> Iterator[None]:
    """Replace the module's output hidden state with ``editor(hidden)`` for the duration of the block."""
    module = model.get_submodule(hookpoint)

    def hook(_module: nn.Module, _inputs: tuple[Any, ...], output: BlockOutput) -> BlockOutput:
        return replace_output_hidden(output, editor(output_hidden(output)))

    handle = register_own_thread_hook(module, hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def capture_residual(model: nn.Module, hookpoints: list[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Record each hookpoint's output hidden state of the last forward into the yielded dict."""
    captured: dict[str, torch.Tensor] = {}
    handles = []
    for name in hookpoints:

        def hook(_module: nn.Module, _inputs: tuple[Any, ...], output: BlockOutput, name: str = name) -> None:
            captured[name] = output_hidden(output).detach()

        handles.append(register_own_thread_hook(model.get_submodule(name), hook))
    try:
        yield captured
    finally:
        for h in handles:
            h.remove()


class _StopForward(Exception):
    """Raised inside a hook to skip the rest of the network once we have what we need."""


@torch.inference_mode()
def forward_to_hookpoint(
    model: nn.Module, input_ids: torch.Tensor, hookpoint: str, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Run the model only up to ``hookpoint`` and return its hidden state [batch, seq, d_model].

    Later blocks and the LM head never run, which is what makes harvesting cheap.
    """
    module = model.get_submodule(hookpoint)
    result: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: tuple[Any, ...], output: BlockOutput) -> None:
        result.append(output_hidden(output))
        raise _StopForward

    handle = register_own_thread_hook(module, hook)
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if not result:
        raise HookpointError(f"hookpoint {hookpoint!r} was not reached during the forward pass")
    return result[0]
