"""A conversation's SAE codes at the hookpoint, optionally as a variant leaves them.

Edits happen at the SAE's own hookpoint, so they never change what that hookpoint reads at later
tokens (the residual there depends only on earlier layers): the edited codes are exactly the
unedited encoding with each edited feature replaced by its target, and the forward pass can stop at
the hookpoint. Scopes still turn on token by token, as in generation.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from steerlab.models.chat_template import content_mask, token_strings
from steerlab.models.chunked import Hold, forward_chunks
from steerlab.models.hooks import forward_to_hookpoint
from steerlab.steering.conversation import check_context, check_messages, conversation_ids
from steerlab.steering.resolve import steering_batch


@dataclass
class ConversationCodes:
    token_ids: list[int]
    tokens: list[str]
    codes: torch.Tensor
    """[tokens, d_sae] raw SAE activations (after the variant's edits, if one was given)."""
    event_names: list[str]
    content: list[bool] | None = None
    """Per token: True for the messages' own text, False for the chat template around it (role headers,
    special tokens, a default system prompt the template adds); see ``models.chat_template.content_mask``."""

    @property
    def content_text(self) -> str:
        """The messages' text (``content_text``)."""
        return content_text(self.tokens, self.content)


def content_text(tokens: list[str], content: list[bool] | None) -> str:
    """The content tokens' text, each run of them (a message) on its own line: what topical relevance embeds."""
    runs, current = [], []
    for token, keep in zip(tokens, content if content is not None else [True] * len(tokens)):
        if keep:
            current.append(token)
        elif current:
            runs.append("".join(current))
            current = []
    if current:
        runs.append("".join(current))
    return "\n".join(r.strip() for r in runs if r.strip())


def labeler(labels):
    """``labels`` as a function index -> label ("" when unknown): a dict, a callable, or None."""
    if labels is None:
        return lambda index: ""
    if callable(labels):
        return lambda index: labels(index) or ""
    return lambda index: labels.get(index) or ""


@torch.no_grad()
def conversation_codes(
    lm,
    sae,
    messages,
    variant=None,
    field: str = "messages",
    sae_id: str | None = None,
    *,
    chunk_tokens: int | None = None,
    hold: Hold = nullcontext,
) -> ConversationCodes:
    """``sae_id``: the SAE's identity, so a variant naming another SAE's features is refused.
    ``chunk_tokens``: run the conversation that many tokens at a time (KV cache carried over), each
    chunk's forward and SAE pass inside ``hold()`` (the model is free between chunks); the codes are
    the unchunked ones (variant scopes carry their state from chunk to chunk, as in generation)."""
    ids = conversation_ids(lm.tokenizer, messages, field)
    check_context(lm.model, len(ids), field)
    _, batch = steering_batch(sae, variant, capture=True, sae_id=sae_id)  # validates before the model runs
    input_ids = torch.tensor([ids], device=lm.device)
    if chunk_tokens is None or chunk_tokens >= len(ids):
        with hold():
            pieces = [_codes(sae, batch, forward_to_hookpoint(lm.model, input_ids, sae.cfg.hookpoint))]
    else:
        pieces = [
            _codes(sae, batch, hidden)
            for hidden in forward_chunks(lm.model, input_ids, chunk_tokens, sae.cfg.hookpoint, hold)
        ]
    codes = torch.cat(pieces)
    events = [name for name, _ in batch.drain_events()[0]] if batch is not None else []
    content = content_mask(lm.tokenizer, check_messages(messages, field), ids)
    return ConversationCodes(ids, token_strings(lm.tokenizer, ids), codes.float(), events, content)


def _codes(sae, batch, hidden: torch.Tensor) -> torch.Tensor:
    """``[tokens, d_sae]`` codes of one piece of a conversation (after ``batch``'s edits when given)."""
    if batch is None:
        return sae.encode(hidden.to(sae.W_enc.dtype))[0]
    batch(hidden)
    return batch.last_codes[0]
