"""Labelled texts from files, and the limits a training set must respect.

A file is either plain text (one text per non-empty line) or JSON Lines (``.jsonl``): each line an
object with ``text`` (or ``prompt``), or ``messages`` (a conversation: its user turns are joined),
or a bare JSON string. Errors name the file and line.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from steerlab.errors import InvalidInputError, MissingFileError

MIN_PER_CLASS = 4
"""Fewer texts of a class leave nothing to validate on."""
MAX_TEXTS = 20_000
"""Per class: feature extraction is the cost (about 1k texts/min on two CPU cores at 256 tokens)."""
MAX_CHARS = 100_000
"""Per text; longer texts are refused (tokens past the classifier's ``max_tokens`` are cut anyway)."""


@dataclass(frozen=True)
class Example:
    text: str
    label: int
    source: str = ""


def read_texts(path: str | Path, field: str = "text_file") -> list[str]:
    """The texts of ``path`` (plain lines or JSON Lines), refused with the line when malformed."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path} does not exist", field=field)
    raw = path.read_text(encoding="utf-8", errors="replace").splitlines()
    jsonl = path.suffix == ".jsonl"
    texts = []
    for n, line in enumerate(raw, 1):
        if not line.strip():
            continue
        text = _parse_line(line, path, n, field) if jsonl else line
        if len(text) > MAX_CHARS:
            raise InvalidInputError(f"{path}:{n} is {len(text)} characters; at most {MAX_CHARS} per text", field=field)
        texts.append(text)
    return texts


def _parse_line(line: str, path: Path, n: int, field: str) -> str:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as err:
        raise InvalidInputError(f"{path}:{n} is not JSON ({err.msg})", field=field) from None
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        for key in ("text", "prompt"):
            if isinstance(item.get(key), str):
                return item[key]
        messages = item.get("messages")
        if isinstance(messages, list):
            turns = _user_turns(messages)
            if turns:
                return "\n\n".join(turns)
    raise InvalidInputError(
        f"{path}:{n} has no text; each line must be a string or an object with 'text', 'prompt' or 'messages'",
        field=field,
    )


def _user_turns(messages: list) -> list[str]:
    turns = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return [t for t in turns if isinstance(t, str)] if turns and all(isinstance(t, str) for t in turns) else []


def conversation_text(messages: list[dict], field: str = "messages") -> str:
    """What a classifier reads of a conversation: its user turns, joined by a blank line (as in a
    ``messages`` line of a training file)."""
    turns = _user_turns(messages) if isinstance(messages, list) else []
    if not turns:
        raise InvalidInputError("has no user turn with text content; a classifier reads the user's turns", field=field)
    return "\n\n".join(turns)


def check_text(text: object, field: str) -> str:
    """One text to score or train on: a non-empty string of at most ``MAX_CHARS`` characters."""
    if not isinstance(text, str):
        raise InvalidInputError(f"must be a string, got {type(text).__name__}", field=field)
    if not text.strip():
        raise InvalidInputError("is empty", field=field)
    if len(text) > MAX_CHARS:
        raise InvalidInputError(f"is {len(text)} characters; at most {MAX_CHARS} per text", field=field)
    return text


def labelled(pos: list[str], neg: list[str], pos_source: str = "pos", neg_source: str = "neg") -> list[Example]:
    """Positive and negative texts as examples, checked: both classes present and within the limits."""
    for name, texts in (("pos", pos), ("neg", neg)):
        if not texts:
            raise InvalidInputError("holds no texts; a classifier needs both classes", field=name)
        if len(texts) < MIN_PER_CLASS:
            raise InvalidInputError(
                f"holds {len(texts)} texts; at least {MIN_PER_CLASS} per class are needed", field=name
            )
        if len(texts) > MAX_TEXTS:
            raise InvalidInputError(
                f"holds {len(texts)} texts; at most {MAX_TEXTS} per class (sample them down)", field=name
            )
    overlap = set(pos) & set(neg)
    if len(overlap) == len(set(pos)) or len(overlap) == len(set(neg)):
        raise InvalidInputError("pos and neg hold the same texts; the classes must differ", field="neg")
    return [Example(t, 1, pos_source) for t in pos] + [Example(t, 0, neg_source) for t in neg]


def check_finite(values: object, what: str, field: str = "texts") -> None:
    """NaN or infinite features (a broken model or SAE in half precision) are refused, never trained on."""
    import numpy as np

    arr = np.asarray(values)
    if arr.size and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)).ravel()
        raise InvalidInputError(
            f"{what} are NaN or infinite for {len(bad)} text(s) (first: line {int(bad[0]) + 1}); "
            "check the model's dtype (float32 is safe)",
            field=field,
        )


def finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
