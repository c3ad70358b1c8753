"""The one grammar of labels that describe tokens rather than claim a concept, as the offline explainer and the
held-out scorer write them: ``"cat" tokens``, ``the word "email"``, ``the token ","``, ``"aqu" in Catalan text``,
``commas in Python code``, and a class of words: ``weekday words ("monday", "friday")``. The label checks
(``concepts.py``) and label search (``search.py``) both read labels through it."""

from __future__ import annotations

import re

PUNCTUATION_NAMES = {
    ".": "periods",
    ",": "commas",
    ":": "colons",
    ";": "semicolons",
    "?": "question marks",
    "!": "exclamation marks",
    "(": "opening parentheses",
    ")": "closing parentheses",
    "[": "opening brackets",
    "]": "closing brackets",
    "{": "opening braces",
    "}": "closing braces",
    '"': "quotation marks",
    "'": "apostrophes",
    "-": "hyphens",
    "--": "dashes",
    "/": "slashes",
    "\\": "backslashes",
    "_": "underscores",
    "*": "asterisks",
    "#": "hash signs",
    "=": "equals signs",
    "<": "less-than signs",
    ">": "greater-than signs",
    "$": "dollar signs",
    "%": "percent signs",
    "&": "ampersands",
    "@": "at signs",
    "|": "pipes",
    "`": "backticks",
    "...": "ellipses",
    "«": "opening quotation marks (guillemets)",
    "»": "closing quotation marks (guillemets)",
    "“": "opening quotation marks",
    "”": "closing quotation marks",
    "‘": "opening single quotation marks",
    "’": "closing single quotation marks",
    "„": "low opening quotation marks",
    "\n": "line breaks",
    "\n\n": "paragraph breaks",
    "": "whitespace",
}
"""Names of punctuation and whitespace tokens, as labels say them (``commas``, ``line breaks``)."""
_TOKEN_LABEL = re.compile(r'^(?:the word |the token )?"(.+)"(?: tokens?)?(?: in (.+))?$')
_CLASS_LABEL = re.compile(r'^(.+) words \((?:"[^"]+"(?:, )?)+\)$')


def parse_token_label(text: str) -> tuple[str, str | None] | None:
    """``(token, where)`` of a token label (``where``: the context after "in", or None), None for any other
    label (a concept, punctuation by name alone, "unclear: ...")."""
    text = text.strip()
    match = _TOKEN_LABEL.match(text)
    if match:
        return match.group(1), match.group(2)
    for token, name in PUNCTUATION_NAMES.items():
        if text.startswith(name + " in "):
            return token, text[len(name) + 4 :]
    return None


def class_label(text: str) -> str | None:
    """The class a label names its feature's peak words by (``weekday words ("monday", "friday")`` -> ``weekday``),
    or None."""
    match = _CLASS_LABEL.match(text.strip())
    return match.group(1) if match else None
