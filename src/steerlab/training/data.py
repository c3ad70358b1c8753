"""Chat JSONL -> token ids with labels on assistant tokens only (the model's own chat template)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from steerlab.errors import InvalidInputError, MissingFileError
from steerlab.models.chat_template import template_ids

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

ROLES = ("system", "user", "assistant")
IGNORE = -100


class TrainingDataError(InvalidInputError):
    """Training data that cannot be used: empty, malformed JSON, or messages of the wrong shape."""


@dataclass
class Example:
    ids: list[int]
    labels: list[int]  # IGNORE outside assistant turns


def read_chat_jsonl(path: str | Path, field: str = "--data") -> list[list[dict]]:
    """Each non-blank line ``{"messages": [{"role", "content"}, ...]}`` with at least one assistant turn."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no such file {path}", field=field)
    out: list[list[dict]] = []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise TrainingDataError(f"{path} line {n}: not JSON ({err.msg})", field=field) from None
        msgs = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(msgs, list) or not msgs:
            raise TrainingDataError(
                f"{path} line {n}: expected an object with a non-empty 'messages' list",
                field=field,
                allowed='{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", ...}]}',
            )
        for m in msgs:
            if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                raise TrainingDataError(
                    f"{path} line {n}: each message needs a role and a string content",
                    field=field,
                    allowed=f"roles {', '.join(ROLES)}",
                )
        if not any(m["role"] == "assistant" for m in msgs):
            raise TrainingDataError(f"{path} line {n}: no assistant message to learn from", field=field)
        out.append([{"role": m["role"], "content": m["content"]} for m in msgs])
    if not out:
        raise TrainingDataError(f"{path} holds no examples (empty file)", field=field)
    return out


def tokenize_chat(tokenizer: PreTrainedTokenizerBase, messages: list[dict], max_len: int) -> Example:
    """Template ids of the whole conversation; labels are the ids of each assistant turn (its end-of-turn
    token included), -100 elsewhere. Truncated to ``max_len`` tokens."""
    ids = template_ids(tokenizer, messages)
    labels = [IGNORE] * len(ids)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = len(template_ids(tokenizer, messages[:i], add_generation_prompt=True)) if i else 0
        end = len(template_ids(tokenizer, messages[: i + 1]))
        if ids[:end] != template_ids(tokenizer, messages[: i + 1]):
            raise TrainingDataError("this model's chat template does not render conversations prefix by prefix")
        labels[start:end] = ids[start:end]
    return Example(ids[:max_len], labels[:max_len])


def tokenize_all(tokenizer: PreTrainedTokenizerBase, conversations: list[list[dict]], max_len: int) -> list[Example]:
    examples = [tokenize_chat(tokenizer, c, max_len) for c in conversations]
    kept = [e for e in examples if any(t != IGNORE for t in e.labels[1:])]
    if not kept:
        raise TrainingDataError(
            f"no example has an assistant token within the first {max_len} tokens", field="--max-len"
        )
    return kept
