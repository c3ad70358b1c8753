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
    return list(tokenizer(_plain_text(messages))["input_ids"])


def _plain_text(messages: list[dict]) -> str:
    return "\n\n".join(str(m["content"]) for m in messages)


def template_text(tokenizer: PreTrainedTokenizerBase, messages: list[dict]) -> str:
    """The text ``template_ids`` tokenizes: the chat template's rendering, or for a model without one the
    plain completion text behind what its tokenizer adds in front (Gemma's ``<bos>``)."""
    if has_chat_template(tokenizer):
        return str(tokenizer.apply_chat_template(messages, tokenize=False))
    lead = str(tokenizer.decode(list(tokenizer("")["input_ids"])))
    return lead + _plain_text(messages)


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


def content_mask(tokenizer: PreTrainedTokenizerBase, messages: list[dict], ids: list[int]) -> list[bool]:
    """Per token of ``ids`` (the conversation as ``template_ids`` renders it, every message closed): True
    where it is text of one of ``messages``' contents, False for the chat template around it (role
    headers, special tokens, a default system prompt the template adds). A token straddling content
    and template counts as content. Each content is found in the rendering of the messages up to it
    (its last occurrence there), so text repeated from the template is not mistaken for it."""
    text = template_text(tokenizer, messages)
    spans: list[tuple[int, int]] = []
    start = 0
    for i, message in enumerate(messages):
        content = str(message.get("content") or "")
        if not content.strip():
            continue
        upto = template_text(tokenizer, messages[: i + 1])
        for needle in (content, content.strip()):
            at = upto.rfind(needle) if text.startswith(upto) else text.find(needle, start)
            if at >= start:
                spans.append((at, at + len(needle)))
                start = at + len(needle)
                break
    offsets = _token_offsets(tokenizer, text, ids)
    special = set(tokenizer.all_special_ids)
    return [
        tid not in special and any(a < e and s < b for s, e in spans) for tid, (a, b) in zip(ids, offsets, strict=True)
    ]


def _token_offsets(tokenizer: PreTrainedTokenizerBase, text: str, ids: list[int]) -> list[tuple[int, int]]:
    """Character span of each token of ``ids`` in ``text``: the tokenizer's offsets when re-tokenizing
    ``text`` gives ``ids`` back, else the running length of the tokens decoded one by one."""
    try:
        enc: Any = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        if list(enc["input_ids"]) == list(ids):
            return [(int(a), int(b)) for a, b in enc["offset_mapping"]]
    except (NotImplementedError, ValueError, TypeError):  # slow tokenizers have no offsets
        pass
    out, at = [], 0
    for piece in token_strings(tokenizer, ids):
        out.append((at, at + len(piece)))
        at += len(piece)
    return out
