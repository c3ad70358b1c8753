"""One request being generated: its sampling state, its steering, and its text so far."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from steerlab.engine.stream import Stream, TokenEvent
from steerlab.generation.sampler import GREEDY_BELOW, SamplingParams, sample_next, stream_safe_prefix

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

RowEditor = Callable[[torch.Tensor], torch.Tensor]
"""Rewrites one sequence's residual ``[1, seq, d_model]`` at the hookpoint. It may keep per-sequence
state (sticky conditional scopes) and expose ``drain_events() -> list[str]``, ``aborted: bool`` and
``observe_logits(logits)`` (see ``steerlab.steering.batch.RowSteering``)."""


@dataclass
class SequenceState:
    prompt_ids: list[int]
    params: SamplingParams
    stream: Stream
    editor: RowEditor | None = None
    stop_token_ids: set[int] = field(default_factory=set)
    generated: list[int] = field(default_factory=list)
    emitted: str = ""
    generator: torch.Generator | None = None

    def __post_init__(self) -> None:
        if self.params.seed is not None:
            self.generator = torch.Generator(device="cpu").manual_seed(self.params.seed)

    @property
    def length(self) -> int:
        """Tokens already in the KV cache once the last sampled token is fed back."""
        return len(self.prompt_ids) + len(self.generated)

    def drain_events(self) -> tuple[list[str], bool]:
        drain = getattr(self.editor, "drain_events", None)
        events = list(drain()) if drain else []
        return events, bool(getattr(self.editor, "aborted", False))

    def step(self, logits: torch.Tensor, tokenizer: PreTrainedTokenizerBase, argmax: int | None = None) -> bool:
        """Sample from ``logits [vocab]`` and push the event; returns True when the sequence is done.
        ``argmax``: ``logits.argmax()`` when the caller has it already (one call for a whole batch)."""
        events, aborted = self.drain_events()
        index = len(self.generated)
        if aborted:
            return self._finish(TokenEvent("", None, index, "abort", events))
        if self.stream.cancelled.is_set():
            return self._finish(TokenEvent("", None, index, "cancelled", events))
        if argmax is not None and self.params.temperature < GREEDY_BELOW:
            token = argmax
        else:
            token = sample_next(logits, self.params, self.generator)
        observe = getattr(self.editor, "observe_logits", None)
        if observe is not None:  # entropy-bounded nudges decide for the next token
            observe(logits)
        if token in self.stop_token_ids:
            rest = _decode(tokenizer, self.generated)[len(self.emitted) :]
            return self._finish(TokenEvent(rest, token, index, "stop", events))
        self.generated.append(token)
        text = _decode(tokenizer, self.generated)
        hit = min((text.index(s) for s in self.params.stop if s and s in text), default=None)
        if hit is not None:
            return self._finish(TokenEvent(text[len(self.emitted) : hit], token, index, "stop", events))
        if len(self.generated) >= self.params.max_new_tokens:
            return self._finish(TokenEvent(text[len(self.emitted) :], token, index, "length", events))
        safe = stream_safe_prefix(text, self.params.stop)
        delta = safe[len(self.emitted) :] if len(safe) > len(self.emitted) else ""
        self.emitted += delta
        self.stream.completion_tokens = len(self.generated)
        self.stream.push(TokenEvent(delta, token, index, None, events))
        return False

    def _finish(self, event: TokenEvent) -> bool:
        self.stream.completion_tokens = len(self.generated)
        self.stream.push(event)
        return True


def _decode(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> str:
    """The text of ``ids``, special tokens skipped."""
    text = tokenizer.decode(ids, skip_special_tokens=True)
    assert isinstance(text, str)  # one sequence of ids decodes to one string (a batch of them, to a list)
    return text
