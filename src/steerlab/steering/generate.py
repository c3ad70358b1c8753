"""Chat with a variant, in-process: completions (streamed or whole), next-token logits, tokenize.

These are the functions ``client.chat.completions.create(messages, model=variant)`` and the Ember
routes wrap. Sampling reuses ``generation.sampler`` (own ``torch.Generator``: same seed, same
text). Steering events are reported on the chunk whose token was sampled from the forward pass in
which the condition first held; a Variant's handlers run right then, so ``abort_when`` stops
generation before that token is shown.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from steerlab.generation.sampler import SamplingParams, sample_next, stream_safe_prefix
from steerlab.models.chat_template import context_length, stop_token_ids, token_strings
from steerlab.steering.conversation import check_context, prompt_ids
from steerlab.steering.errors import ConversationError
from steerlab.steering.resolve import steered, steering_batch
from steerlab.steering.variant import InferenceContext


@dataclass
class ChatChunk:
    text: str
    """Text that became safe to show with this token (may be empty: a stop string may be starting)."""
    token_id: int | None
    token_index: int
    """Index of the generated token (``gf_token_index``)."""
    finish_reason: str | None = None
    """On the last chunk: "stop" (stop token or string) or "length"."""
    event_names: list[str] = field(default_factory=list)


@dataclass
class ChatCompletion:
    text: str
    finish_reason: str
    event_names: list[str]
    token_ids: list[int]
    prompt_tokens: int

    @property
    def completion_tokens(self) -> int:
        return len(self.token_ids)


def sampling_params(
    max_completion_tokens: int = 128,
    temperature: float = 0.6,
    top_p: float = 0.9,
    stop: str | list[str] | None = None,
    seed: int | None = None,
) -> SamplingParams:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if not all(isinstance(s, str) for s in stops):
        raise ConversationError("must be a string or a list of strings", field="stop")
    try:
        return SamplingParams(max_completion_tokens, temperature, top_p, seed, stops).validate()
    except ValueError as err:
        raise ConversationError(str(err).replace("max_new_tokens", "max_completion_tokens")) from None


@torch.inference_mode()
def stream_chat_completion(
    lm,
    messages,
    variant=None,
    *,
    sae=None,
    max_completion_tokens: int = 128,
    temperature: float = 0.6,
    top_p: float = 0.9,
    stop: str | list[str] | None = None,
    seed: int | None = None,
) -> Iterator[ChatChunk]:
    """Stream the assistant's reply token by token; ``variant`` as in ``resolve.Steering.of``."""
    from transformers import DynamicCache

    params = sampling_params(max_completion_tokens, temperature, top_p, stop, seed)
    ids = prompt_ids(lm.tokenizer, messages)
    check_context(lm.model, len(ids))
    steering, batch = steering_batch(sae, variant)
    handlers = steering.handlers if steering else {}
    limit = context_length(lm.model)
    budget = params.max_new_tokens if limit is None else min(params.max_new_tokens, limit - len(ids))
    if budget < 1:
        raise ConversationError(f"leaves no room to generate in the model's context of {limit}", field="messages")
    generator = torch.Generator(device="cpu").manual_seed(params.seed) if params.seed is not None else None
    stops, tokenizer = stop_token_ids(lm.tokenizer), lm.tokenizer
    cache, step_ids = DynamicCache(), torch.tensor([ids], device=lm.device)
    generated: list[int] = []
    emitted = ""
    with steered(lm.model, sae, batch):
        for index in range(budget):
            logits = lm.model(input_ids=step_ids, past_key_values=cache, use_cache=True).logits[0, -1].float().cpu()
            events = [name for name, _ in batch.drain_events()[0]] if batch else []
            for name in events:
                if name in handlers:
                    handlers[name](InferenceContext(list(messages), emitted))
            if batch:
                batch.observe_logits(logits[None])
            token = sample_next(logits, params, generator)
            if token in stops:
                rest = tokenizer.decode(generated, skip_special_tokens=True)[len(emitted) :]
                yield ChatChunk(rest, token, index, "stop", events)
                return
            generated.append(token)
            text = tokenizer.decode(generated, skip_special_tokens=True)
            hit = min((text.index(s) for s in params.stop if s and s in text), default=None)
            if hit is not None:
                yield ChatChunk(text[len(emitted) : hit], token, index, "stop", events)
                return
            if index == budget - 1:
                yield ChatChunk(text[len(emitted) :], token, index, "length", events)
                return
            safe = stream_safe_prefix(text, params.stop)
            delta = safe[len(emitted) :] if len(safe) > len(emitted) else ""
            emitted += delta
            yield ChatChunk(delta, token, index, None, events)
            step_ids = torch.tensor([[token]], device=lm.device)


def chat_completion(lm, messages, variant=None, *, sae=None, **sampling) -> ChatCompletion:
    """The whole reply at once (same arguments as ``stream_chat_completion``)."""
    text, events, token_ids, finish = "", [], [], "length"
    stops = stop_token_ids(lm.tokenizer)
    for chunk in stream_chat_completion(lm, messages, variant, sae=sae, **sampling):
        text += chunk.text
        events += chunk.event_names
        if not (chunk.finish_reason == "stop" and chunk.token_id in stops):
            token_ids.append(chunk.token_id)
        finish = chunk.finish_reason or finish
    return ChatCompletion(text, finish, events, token_ids, len(prompt_ids(lm.tokenizer, messages)))


@torch.inference_mode()
def next_token_logits(
    lm, messages, variant=None, *, sae=None, top_k: int | None = 10, filter_vocabulary: list[str] | None = None
) -> dict[str, float]:
    """Logits of the token that would come next (the assistant's first, or the continuation of a
    final assistant message), highest first: the top ``top_k``, optionally only among
    ``filter_vocabulary`` (strings that must each be one token)."""
    if top_k is not None and top_k < 1:
        raise ConversationError(f"must be >= 1, got {top_k}", field="top_k")
    ids = prompt_ids(lm.tokenizer, messages)
    check_context(lm.model, len(ids))
    if filter_vocabulary is not None and not filter_vocabulary:
        raise ConversationError("must list at least one token (or be omitted)", field="filter_vocabulary")
    allowed = _single_token_ids(lm.tokenizer, filter_vocabulary) if filter_vocabulary is not None else None
    _, batch = steering_batch(sae, variant)
    with steered(lm.model, sae, batch):
        logits = lm.model(input_ids=torch.tensor([ids], device=lm.device)).logits[0, -1].float().cpu()
    candidates = torch.tensor(allowed) if allowed is not None else torch.arange(logits.shape[0])
    values = logits[candidates]
    k = len(candidates) if top_k is None else min(top_k, len(candidates))
    top = values.topk(k)
    out: dict[str, float] = {}
    for value, i in zip(top.values.tolist(), candidates[top.indices].tolist()):
        out.setdefault(lm.tokenizer.decode([i]), value)
    return out


def tokenize(lm, messages) -> list[str]:
    """The conversation's tokens as text, exactly as inspect and attribution index them."""
    from steerlab.steering.conversation import conversation_ids

    return token_strings(lm.tokenizer, conversation_ids(lm.tokenizer, messages))


def _single_token_ids(tokenizer, vocabulary: list[str]) -> list[int]:
    ids = []
    for i, text in enumerate(vocabulary):
        encoded = tokenizer.encode(text, add_special_tokens=False) if isinstance(text, str) else []
        if len(encoded) != 1:
            raise ConversationError(
                f"{text!r} is {len(encoded)} tokens for this model; each entry must be one token",
                field=f"filter_vocabulary[{i}]",
            )
        ids.append(encoded[0])
    return ids
