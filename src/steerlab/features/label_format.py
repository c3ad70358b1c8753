"""The one grammar of labels that describe tokens rather than claim a concept, as the offline explainer and the
held-out scorer write them: ``"cat" tokens``, ``the word "email"``, ``the token ","``, ``"aqu" in Catalan text``.
The label checks (``concepts.py``) and label search (``search.py``) both read labels through it."""

from __future__ import annotations

import re

_TOKEN_LABEL = re.compile(r'^(?:the word |the token )?"(.+)"(?: tokens?)?(?: in (.+))?$')


def token_label(text: str) -> tuple[str, str | None] | None:
    """``(token, where)`` of a token label (``where``: the context after "in", or None), None for any other
    label (a concept, punctuation by name, "unclear: ...")."""
    match = _TOKEN_LABEL.match(text.strip())
    return (match.group(1), match.group(2)) if match else None
