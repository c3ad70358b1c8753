"""A forward pass over one sequence in chunks of tokens, the KV cache carried from chunk to chunk.

A long conversation need not hold the model for its whole forward: each chunk is a forward of its own
(``hold()`` is entered around it, e.g. the engine's ``outside()``), so between chunks the model is
free for other work, such as the batching engine's decode steps. Each chunk's queries attend to the
cached keys and values of every earlier chunk, so the result is the unchunked forward's (equal up to
floating-point summation order; the tests compare them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import nn
from transformers import DynamicCache

from steerlab.models.hooks import BlockOutput, HookpointError, _StopForward, output_hidden, register_own_thread_hook

Hold = Callable[[], AbstractContextManager[Any]]


def chunk_bounds(length: int, chunk_tokens: int) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` covering ``range(length)`` in pieces of at most ``chunk_tokens``."""
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    return [(start, min(length, start + chunk_tokens)) for start in range(0, length, chunk_tokens)]


def forward_chunks(
    model: nn.Module,
    input_ids: torch.Tensor,
    chunk_tokens: int,
    hookpoint: str | None = None,
    hold: Hold = nullcontext,
) -> Iterator[torch.Tensor]:
    """Run ``input_ids [1, T]`` through ``model`` ``chunk_tokens`` at a time, each chunk inside ``hold()``.

    With ``hookpoint``: yields each chunk's hidden state there, ``[1, n, d_model]``, and the forward
    stops at that module (later blocks never run, nor fill the cache). Without: yields each chunk's
    last-position logits ``[1, vocab]`` (the last chunk's are the sequence's next-token logits). The
    consumer's work on a yielded chunk still runs inside that chunk's ``hold()``.
    """
    if input_ids.dim() != 2 or input_ids.shape[0] != 1:
        raise ValueError(f"input_ids must be [1, tokens], got {tuple(input_ids.shape)}")
    cache = DynamicCache()
    captured: list[torch.Tensor] = []

    def stop(_module: nn.Module, _inputs: tuple[Any, ...], output: BlockOutput) -> None:
        captured.append(output_hidden(output))
        raise _StopForward

    for start, end in chunk_bounds(input_ids.shape[1], chunk_tokens):
        with hold():
            positions = torch.arange(start, end, device=input_ids.device)
            kwargs: dict[str, Any] = {
                "input_ids": input_ids[:, start:end],
                "position_ids": positions[None],
                "cache_position": positions,
                "cache": cache,
                "use_cache": True,
            }
            with torch.inference_mode():
                if hookpoint is None:
                    out = model(**kwargs, logits_to_keep=1).logits[:, -1]
                else:
                    handle = register_own_thread_hook(model.get_submodule(hookpoint), stop)
                    try:
                        model(**kwargs)
                    except _StopForward:
                        pass
                    finally:
                        handle.remove()
                    if not captured:
                        raise HookpointError(f"hookpoint {hookpoint!r} was not reached during the forward pass")
                    out = captured.pop()
            yield out
