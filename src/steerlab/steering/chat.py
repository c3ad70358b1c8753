"""Steered chat: the model's chat template, feature edits in a hook, tokens streamed as sampled."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import nullcontext

from steerlab.generation.sampler import SamplingParams, StreamEvent, stream_tokens
from steerlab.models.chat_template import chat_input_ids, stop_token_ids
from steerlab.models.hooks import edit_residual
from steerlab.steering.apply import make_editor
from steerlab.steering.edits import FeatureEdit


def stream_chat(
    lm, messages: list[dict], params: SamplingParams, sae=None, edits: Sequence[FeatureEdit] = ()
) -> Iterator[StreamEvent]:
    """Stream the assistant's reply; edits (validated first) apply to prompt and generated tokens."""
    edits = list(edits)
    if edits:
        if sae is None:
            raise ValueError("feature edits need an SAE")
        edits = [e.validate(sae.cfg.d_sae) for e in edits]
    ids = chat_input_ids(lm.tokenizer, messages)
    context = edit_residual(lm.model, sae.cfg.hookpoint, make_editor(sae, edits)) if edits else nullcontext()
    with context:
        yield from stream_tokens(lm.model, lm.tokenizer, ids, params, stop_token_ids(lm.tokenizer))
