"""Many (conversation, steering) rows generated in one batched pass, for scoring candidate edits.

AutoSteer and the steering evaluation compare dozens of edit sets on the same prompts. Each row gets
its own compiled controller in one multi-row ``SteeringBatch`` (row r of the batch is row r of the
generation), so a whole grid of candidate strengths shares each forward pass and KV cache.

``generate_batch`` drops rows that finish early, which would misalign the steering rows; so it is
called with no stop tokens (every row runs ``max_new_tokens``) and each reply is cut at its first
stop token afterwards. The tokens past a stop are wasted work, a fair price for short replies.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from steerlab.generation.batch_generate import BatchSampling, generate_batch
from steerlab.models.chat_template import stop_token_ids
from steerlab.steering.batch import SteeringBatch
from steerlab.steering.controller_json import Controller
from steerlab.steering.conversation import check_context, prompt_ids
from steerlab.steering.plan import compile_controller
from steerlab.steering.resolve import Steering, steered


@dataclass
class Row:
    messages: list[dict]
    steering: object = None
    """A Variant, Controller, controller JSON, or None (unsteered)."""


@dataclass
class Reply:
    text: str
    token_ids: list[int]
    """The reply's tokens, cut before the first stop token."""
    prompt_ids: list[int]
    finish_reason: str
    """"stop" (a stop token came) or "length"."""


class _PrefillMask:
    """The first call of a generation is the left-padded prefill: mark padding so it is neither
    edited nor able to trigger a condition. Later calls are one real token per row."""

    def __init__(self, batch: SteeringBatch, mask: torch.Tensor):
        self.batch, self.mask = batch, mask

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        valid, self.mask = self.mask, None
        return self.batch(hidden, valid)


def generate_rows(
    lm,
    sae,
    rows: list[Row],
    *,
    max_new_tokens: int = 32,
    temperature: float = 0.0,
    top_p: float = 0.9,
    seed: int = 0,
    chunk_rows: int = 32,
) -> list[Reply]:
    """Generate every row's reply (order kept). Every controller is compiled before anything runs.
    ``temperature=0`` is greedy: the same rows always give the same replies."""
    prompts = [prompt_ids(lm.tokenizer, row.messages, field=f"rows[{i}].messages") for i, row in enumerate(rows)]
    for i, ids in enumerate(prompts):
        check_context(lm.model, len(ids) + max_new_tokens, field=f"rows[{i}].messages")
    empty = compile_controller(Controller(), sae) if sae is not None else None
    plans = []
    for row in rows:
        steering = Steering.of(row.steering)
        plan = steering.plan(sae) if steering else None
        plans.append(plan if plan is not None else empty)
    stops = stop_token_ids(lm.tokenizer)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else min(stops)
    cfg = BatchSampling(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    replies: list[Reply] = []
    for n, start in enumerate(range(0, len(rows), chunk_rows)):
        chunk = prompts[start : start + chunk_rows]
        chunk_plans = plans[start : start + chunk_rows]
        editor = None
        if any(p is not None and not p.is_noop for p in chunk_plans):
            editor = _PrefillMask(SteeringBatch(sae, chunk_plans), _left_pad_mask(chunk))
        with steered(lm.model, sae, editor):
            out = generate_batch(lm.model, chunk, cfg, set(), pad, seed=seed + n)
        for ids, got in zip(chunk, out):
            tokens = got.token_ids
            cut = next((i for i, t in enumerate(tokens) if t in stops), None)
            reply = tokens if cut is None else tokens[:cut]
            text = lm.tokenizer.decode(reply, skip_special_tokens=True)
            replies.append(Reply(text, reply, ids, "length" if cut is None else "stop"))
    return replies


def _left_pad_mask(prompts: list[list[int]]) -> torch.Tensor:
    width = max(len(p) for p in prompts)
    mask = torch.zeros(len(prompts), width, dtype=torch.bool)
    for r, p in enumerate(prompts):
        mask[r, width - len(p) :] = True
    return mask
