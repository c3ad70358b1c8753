"""Conversations to token ids, checked: roles, text, and the model's context window.

Two formats: the *prompt* (what generation and next-token logits continue: the chat template with
the assistant's turn opened, or, when the last message is the assistant's, that message left open
so it is continued) and the *conversation* (every message closed; what inspect, contrast and
attribution read).
"""

from __future__ import annotations

from steerlab.steering.errors import ContextLengthError, ConversationError

ROLES = ("system", "user", "assistant")


def check_messages(messages, field: str = "messages") -> list[dict]:
    """A non-empty list of ``{"role", "content"}`` with known roles and text content."""
    if not isinstance(messages, (list, tuple)) or not messages:
        raise ConversationError("must be a non-empty list of {role, content} messages", field=field)
    out = []
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else getattr(m, "role", None)
        content = m.get("content") if isinstance(m, dict) else getattr(m, "content", None)
        if role not in ROLES:
            raise ConversationError(f"must be one of {', '.join(ROLES)}, got {role!r}", field=f"{field}[{i}].role")
        if not isinstance(content, str):
            raise ConversationError(f"must be text, got {type(content).__name__}", field=f"{field}[{i}].content")
        out.append({"role": role, "content": content})
    return out


def _template(tokenizer, messages: list[dict], **kw) -> list[int]:
    ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False, **kw)
    return list(ids["input_ids"] if isinstance(ids, dict) else ids)


def prompt_ids(tokenizer, messages, field: str = "messages") -> list[int]:
    """Ids that generation continues: the assistant's turn opened, or its last message continued."""
    messages = check_messages(messages, field)
    if messages[-1]["role"] == "assistant":
        return _template(tokenizer, messages, continue_final_message=True)
    return _template(tokenizer, messages, add_generation_prompt=True)


def conversation_ids(tokenizer, messages, field: str = "messages") -> list[int]:
    """Ids of the whole conversation, every message closed (for inspect/contrast/attribution)."""
    return _template(tokenizer, check_messages(messages, field), add_generation_prompt=False)


def context_length(model) -> int | None:
    return getattr(model.config, "max_position_embeddings", None)


def check_context(model, n_tokens: int, field: str = "messages") -> None:
    """A conversation the model cannot read in one window is an error, not a silent truncation."""
    limit = context_length(model)
    if limit is not None and n_tokens > limit:
        raise ContextLengthError(
            f"the conversation is {n_tokens} tokens but the model's context is {limit}", field=field
        )


def token_strings(tokenizer, ids: list[int]) -> list[str]:
    """Each token as text (decoded alone), for display next to per-token numbers."""
    return [tokenizer.decode([i]) for i in ids]
