"""Sampling primitives shared by every decode path: parameters, picking the next token, and how
much text is safe to show while a stop string may be starting.

Each sequence samples with its own ``torch.Generator`` so the same seed gives the same text
regardless of what else the process is doing (other requests, other threads).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from steerlab.errors import InvalidInputError


@dataclass
class SamplingParams:
    max_new_tokens: int = 128
    temperature: float = 0.7
    """0 means greedy."""
    top_p: float = 0.9
    seed: int | None = None
    stop: list[str] = field(default_factory=list)

    def validate(self) -> SamplingParams:
        if self.max_new_tokens < 1:
            raise InvalidInputError(f"must be >= 1, got {self.max_new_tokens}", field="max_new_tokens")
        if not 0 <= self.temperature <= 5:
            raise InvalidInputError(f"must be in [0, 5], got {self.temperature}", field="temperature")
        if not 0 < self.top_p <= 1:
            raise InvalidInputError(f"must be in (0, 1], got {self.top_p}", field="top_p")
        return self


GREEDY_BELOW = 1e-4
"""Temperatures below this pick the argmax."""


def sample_next(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> int:
    """Pick the next token id from logits [vocab] by temperature + nucleus sampling (or argmax)."""
    if params.temperature < GREEDY_BELOW:  # 0 means greedy; tinier values would overflow the softmax anyway
        return int(logits.argmax())
    # A wild edit can overflow one row; that row degrades to argmax instead of crashing the shared batch.
    logits = logits.float().nan_to_num(nan=float("-inf"), posinf=float("inf"), neginf=float("-inf"))
    if torch.isposinf(logits).any() or torch.isneginf(logits).all():
        return int(logits.argmax())
    probs = torch.softmax(logits / params.temperature, dim=-1)
    if params.top_p < 1:
        sorted_p, order = probs.sort(descending=True)
        keep = sorted_p.cumsum(-1) - sorted_p < params.top_p
        keep[0] = True  # the most likely token always survives, however small top_p is
        probs = torch.zeros_like(probs).scatter_(0, order[keep], sorted_p[keep])
    return int(torch.multinomial(probs, 1, generator=generator))


def stream_safe_prefix(text: str, stops: list[str]) -> str:
    """Text that can be shown now: no half multi-byte character, no tail that may begin a stop string."""
    text = text.rstrip("\ufffd")
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:n]):
                text = text[:-n]
                break
    return text
