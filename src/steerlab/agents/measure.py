"""What a steering edit does to a prompt set, measured: the unsteered greedy reply's log-probability under the
edited model (teacher-forced, so the number compares the same tokens) and the KL divergence of the
edited next-token distributions from the unsteered ones along that reply.

Both forwards hold the model once each (``hold``), one prompt + reply at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class EffectOnReply:
    reply_tokens: int
    logprob_unsteered: float
    """Sum of log p(reply token) under the unsteered model."""
    logprob_steered: float
    """The same reply's tokens, scored by the edited model."""
    kl: float
    """Mean over the reply's positions of KL(unsteered || edited) of the next-token distribution (nats)."""
    top_changes: list[tuple[str, float]]
    """Tokens whose probability at the reply's first position moved most: ``(token, change in log-prob)``."""


def log_probs(lab: Any, ids: list[int], editor: Any, hold: Callable[[], AbstractContextManager]) -> torch.Tensor:
    """``[len(ids), vocab]`` log-probabilities of the next token at every position, ``editor`` applied."""
    from steerlab.models.hooks import edit_residual

    model = lab.lm.model
    steering: AbstractContextManager[None] = nullcontext()
    if editor is not None:
        steering = edit_residual(model, lab.sae.cfg.hookpoint, editor)
    with hold(), steering, torch.no_grad():
        logits = model(input_ids=torch.tensor([ids], device=lab.lm.device)).logits[0]
    return torch.log_softmax(logits.float().cpu(), dim=-1)


def effect_on_reply(
    lab: Any,
    prompt: list[int],
    reply: list[int],
    editor: Any,
    hold: Callable[[], AbstractContextManager] = nullcontext,
    changes: int = 5,
) -> EffectOnReply:
    ids = prompt + reply
    positions = torch.arange(len(prompt) - 1, len(ids) - 1)
    base = log_probs(lab, ids, None, hold)[positions]
    edited = log_probs(lab, ids, editor, hold)[positions]
    target = torch.tensor(reply)
    pick = torch.arange(len(reply))
    kl = (base.exp() * (base - edited)).sum(-1)
    moved = edited[0] - base[0]
    # Only tokens with some probability either way: a -30 -> -25 move among the impossible says nothing.
    plausible = torch.maximum(base[0], edited[0]) > -8.0
    moved = torch.where(plausible, moved, torch.zeros_like(moved))
    order = [i for i in moved.abs().topk(min(changes, int(plausible.sum()))).indices.tolist() if abs(moved[i]) > 1e-4]
    tokenizer = lab.lm.tokenizer
    return EffectOnReply(
        len(reply),
        float(base[pick, target].sum()),
        float(edited[pick, target].sum()),
        float(kl.mean()),
        [(tokenizer.decode([i]), float(moved[i])) for i in order],
    )
