"""What the model's tokenizer says about chat: its template, its stop tokens, its context window.

Model facts only, no checks on the messages: ``steering.conversation`` validates requests on top of
these, and capture, generation and the engine use them directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedTokenizerBase

STOP_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")
"""End-of-turn tokens of common chat templates: ChatML (SmolLM, Qwen), Llama 3, Gemma, Phi-3."""


def template_ids(tokenizer: PreTrainedTokenizerBase, messages: list[dict], **options: Any) -> list[int]:
    """The chat template applied to ``messages`` as token ids (``options`` go to ``apply_chat_template``)."""
    if not has_chat_template(tokenizer):
        return plain_completion_ids(tokenizer, messages)
    ids: Any = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False, **options)
    return list(ids["input_ids"] if isinstance(ids, dict) else ids)


def has_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the tokenizer carries a chat template (base models such as GPT-NeoX or Pythia do not)."""
    return bool(getattr(tokenizer, "chat_template", None))


def plain_completion_ids(tokenizer: PreTrainedTokenizerBase, messages: list[dict]) -> list[int]:
    """A base model without a chat template continues plain text: the messages' contents, one paragraph
    each, tokenized as the tokenizer would any text (its BOS in front when it adds one)."""
    text = "\n\n".join(str(m["content"]) for m in messages)
    return list(tokenizer(text)["input_ids"])


def chat_input_ids(tokenizer: PreTrainedTokenizerBase, messages: list[dict]) -> list[int]:
    """Ids that open the assistant's turn after ``messages``: what generation continues."""
    return template_ids(tokenizer, messages, add_generation_prompt=True)


def stop_token_ids(tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """EOS and every end-of-turn token this tokenizer knows: generation stops at any of them."""
    ids: set[int] = set()
    for tid in (tokenizer.eos_token_id, *(tokenizer.convert_tokens_to_ids(special) for special in STOP_TOKENS)):
        if isinstance(tid, int) and (tid == tokenizer.eos_token_id or tid != tokenizer.unk_token_id):
            ids.add(tid)
    return ids


def context_length(model: nn.Module) -> int | None:
    """The longest sequence the model reads in one window, when its config says."""
    return getattr(model.config, "max_position_embeddings", None)


def token_strings(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> list[str]:
    """Each token as text (decoded alone), for display next to per-token numbers."""
    return [str(tokenizer.decode([i])) for i in ids]
