"""A conversation's SAE codes at the hookpoint, optionally as a variant leaves them.

Edits happen at the SAE's own hookpoint, so they never change what that hookpoint reads at later
tokens (the residual there depends only on earlier layers): the edited codes are exactly the
unedited encoding with each edited feature replaced by its target, and the forward pass can stop at
the hookpoint. Scopes still turn on token by token, as in generation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from steerlab.models.chat_template import token_strings
from steerlab.models.hooks import forward_to_hookpoint
from steerlab.steering.conversation import check_context, conversation_ids
from steerlab.steering.resolve import steering_batch


@dataclass
class ConversationCodes:
    token_ids: list[int]
    tokens: list[str]
    codes: torch.Tensor
    """[tokens, d_sae] raw SAE activations (after the variant's edits, if one was given)."""
    event_names: list[str]


def labeler(labels):
    """``labels`` as a function index -> label ("" when unknown): a dict, a callable, or None."""
    if labels is None:
        return lambda index: ""
    if callable(labels):
        return lambda index: labels(index) or ""
    return lambda index: labels.get(index) or ""


@torch.no_grad()
def conversation_codes(
    lm, sae, messages, variant=None, field: str = "messages", sae_id: str | None = None
) -> ConversationCodes:
    """``sae_id``: the SAE's identity, so a variant naming another SAE's features is refused."""
    ids = conversation_ids(lm.tokenizer, messages, field)
    check_context(lm.model, len(ids), field)
    _, batch = steering_batch(sae, variant, capture=True, sae_id=sae_id)  # validates before the model runs
    hidden = forward_to_hookpoint(lm.model, torch.tensor([ids], device=lm.device), sae.cfg.hookpoint)
    if batch is None:
        codes = sae.encode(hidden.to(sae.W_enc.dtype))[0]
        events: list[str] = []
    else:
        batch(hidden)
        codes = batch.last_codes[0]
        events = [name for name, _ in batch.drain_events()[0]]
    return ConversationCodes(ids, token_strings(lm.tokenizer, ids), codes.float(), events)
