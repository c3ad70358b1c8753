"""Conversations to token ids, checked: roles, text, and the model's context window.

The template and the window themselves are model facts (``models.chat_template``); this module checks
a request's messages against them and raises the errors a caller is shown.

Two formats: the *prompt* (what generation and next-token logits continue: the chat template with
the assistant's turn opened, or, when the last message is the assistant's, that message left open
so it is continued) and the *conversation* (every message closed; what inspect, contrast and
attribution read).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from steerlab.models.chat_template import context_length, template_ids
from steerlab.steering.errors import ContextLengthError, ConversationError

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedTokenizerBase

    from steerlab.steering.probes import PromptSpan

ROLES = ("system", "user", "assistant")


class MessageLike(Protocol):
    """A message object (a pydantic request model, a goodfire SDK message): read for its role and content."""

    @property
    def role(self) -> str: ...

    @property
    def content(self) -> str: ...


Messages = Sequence[Mapping[str, object] | MessageLike]
"""What callers pass: ``{"role", "content"}`` dicts or message objects (checked by ``check_messages``)."""


def check_messages(messages: object, field: str = "messages") -> list[dict]:
    """A non-empty list of ``{"role", "content"}`` with known roles and text content (``messages`` is
    unchecked input: anything else is a ``ConversationError`` naming ``field``)."""
    if not isinstance(messages, (list, tuple)) or not messages:
        raise ConversationError("must be a non-empty list of {role, content} messages", field=field)
    out: list[dict] = []
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else getattr(m, "role", None)
        content = m.get("content") if isinstance(m, dict) else getattr(m, "content", None)
        if role not in ROLES:
            raise ConversationError(f"must be one of {', '.join(ROLES)}, got {role!r}", field=f"{field}[{i}].role")
        if not isinstance(content, str):
            raise ConversationError(f"must be text, got {type(content).__name__}", field=f"{field}[{i}].content")
        check_text(content, f"{field}[{i}].content")
        out.append({"role": role, "content": content})
    return out


def check_text(text: str, field: str) -> str:
    """Text a tokenizer can take: no NUL characters, no unpaired UTF-16 surrogates (which UTF-8 cannot
    encode; JSON's ``"\\ud800"`` decodes to one). Refused rather than repaired, so nothing runs on a
    prompt other than the one sent."""
    if "\x00" in text:
        raise ConversationError("must not contain NUL characters (\\u0000)", field=field)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ConversationError(
            f"holds an unpaired UTF-16 surrogate at character {err.start}; send valid Unicode", field=field
        ) from None
    return text


def prompt_ids(tokenizer: PreTrainedTokenizerBase, messages: Messages, field: str = "messages") -> list[int]:
    """Ids that generation continues: the assistant's turn opened, or its last message continued."""
    messages = check_messages(messages, field)
    if messages[-1]["role"] == "assistant":
        return template_ids(tokenizer, messages, continue_final_message=True)
    return template_ids(tokenizer, messages, add_generation_prompt=True)


def conversation_ids(tokenizer: PreTrainedTokenizerBase, messages: Messages, field: str = "messages") -> list[int]:
    """Ids of the whole conversation, every message closed (for inspect/contrast/attribution)."""
    return template_ids(tokenizer, check_messages(messages, field), add_generation_prompt=False)


GUARD_READS = ("turn", "prompt", "conversation")


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def guard_span(
    tokenizer: PreTrainedTokenizerBase, messages: Messages, prompt: list[int], reads: str = "turn"
) -> PromptSpan:
    """Where a guard (a classifier condition) reads the prompt ``prompt`` of ``messages``: ``turn``, the
    latest user message's text and end-of-turn tokens (what a classifier is trained on: one user turn in
    the chat format, the template's prefix left out; the probe keeps the classifier's token cut);
    ``conversation``, everything from the first message's text to the prompt's end, uncut. Either way the
    first score is at the prompt's last token, then one after each reply token (the reply joining the pool);
    ``prompt``: the latest user turn as with ``turn``, one score at the prompt's last token and none after."""
    from steerlab.steering.probes import PromptSpan

    if reads not in GUARD_READS:
        raise ValueError(f"reads: must be one of {GUARD_READS}, got {reads!r}")
    messages = check_messages(messages)
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    at = users[-1] if reads != "conversation" and users else 0
    role = messages[at]["role"]
    before = messages[:at]
    start = _common_prefix(
        conversation_ids(tokenizer, [*before, {"role": role, "content": "a"}]),
        conversation_ids(tokenizer, [*before, {"role": role, "content": "b"}]),
    )
    end = (
        len(prompt)
        if reads == "conversation" or not users
        else _common_prefix(conversation_ids(tokenizer, messages[: at + 1]), prompt)
    )
    start = min(start, end)
    return PromptSpan(start, end, len(prompt), cut=reads != "conversation", reply=reads != "prompt")


def check_context(model: nn.Module, n_tokens: int, field: str = "messages") -> None:
    """A conversation the model cannot read in one window is an error, not a silent truncation."""
    limit = context_length(model)
    if limit is not None and n_tokens > limit:
        raise ContextLengthError(
            f"the conversation is {n_tokens} tokens but the model's context is {limit}", field=field
        )
