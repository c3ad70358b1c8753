"""The concept catalogue: plain-English search phrases and feature labels, each mapped to a strict matcher
of ``concept_windows.py`` (the windows around a feature's strongest tokens).

``CONCEPTS`` maps search phrases to matchers (the strict concept check: languages, code and token concepts
here, everyday topics in ``concept_topics.py``); the same matchers judge labels
(``matcher_for_label``: language, token, punctuation, code and topic labels), so a label claims a concept
only where a matcher can hold it to it.
"""

from __future__ import annotations

import re

from steerlab.features.concept_topics import TOPICS
from steerlab.features.concept_windows import (
    C_CODE,
    CODE,
    HTML,
    JAVASCRIPT,
    LATEX,
    LISP,
    PYTHON,
    SHELL,
    SQL,
    Matcher,
    all_of,
    at_peak,
    language,
    near_peak,
    pattern,
    peak_is,
)
from steerlab.features.explain.language import CODES
from steerlab.features.label_format import PUNCTUATION_NAMES, class_label, parse_token_label

MONTHS = "January February March April May June July August September October November December".split()

LANGUAGE_CONCEPTS = ("French", "German", "Spanish", "Latin", "Italian", "Portuguese", "Dutch", "Russian")

TOKEN_CONCEPTS: dict[str, Matcher] = {
    "numbers": near_peak(r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|hundred|thousand)\b", re.I, 0, 0),
    "years": near_peak(r"\b(1[5-9]\d\d|20\d\d)\b|^\s*(1[5-9]|20)$|^\d\d$", 0, 1, 1),
    "months of the year": near_peak(r"\b(" + "|".join(m[:3] for m in MONTHS) + r")", re.I, 1, 1),
    "days of the week": near_peak(r"\b(mon|tues|wednes|thurs|fri|satur|sun)day\b", re.I, 2, 1),
    "quotation marks": near_peak(r"[\"“”«»„]|''|``", 0, 0, 0),
    "parentheses": near_peak(r"[()]", 0, 0, 0),
    "commas": at_peak(r",+"),
    "periods": at_peak(r"\.+"),
    "line breaks": lambda w: not w.peak_token.strip() and "\n" in w.peak_token,
    "math equations": near_peak(r"[-+*/^=<>]|\b(sqrt|sin|cos|log|sum)\b|\d", 0, 2, 1),
    "email addresses": pattern(r"[\w.+-]+@[\w-]+\.[\w.]+|<[^>@\s]+@[^>\s]+>"),
    "URLs and web addresses": pattern(r"https?://|\bwww\.|\.(com|org|net|edu|io)\b"),
    "file paths": near_peak(r"/|\\|\.\w{1,4}\b", 0, 2, 1),
    "command-line options": near_peak(r"(^|\s|\[)--?[a-zA-Z]", 0, 2, 1),
}

CODE_CONCEPTS: dict[str, Matcher] = {
    "Python code": PYTHON,
    "Python function definitions": pattern(r"\bdef\s+\w*"),
    "Python import statements": pattern(r"(^|\n)\s*(import\s+\w|from\s+[\w.]+\s+import)"),
    "SQL queries": SQL,
    "C code": C_CODE,
    "shell commands": SHELL,
    "JavaScript code": JAVASCRIPT,
    "Lisp code": LISP,
    "HTML tags": HTML,
    "LaTeX markup": LATEX,
    "source code": CODE,
}


def _concepts() -> dict[str, Matcher]:
    out: dict[str, Matcher] = {f"{name} text": language(CODES[name]) for name in LANGUAGE_CONCEPTS}
    out.update(CODE_CONCEPTS)
    out.update(TOKEN_CONCEPTS)
    out.update(TOPICS)
    return out


CONCEPTS: dict[str, Matcher] = _concepts()
"""Search phrase -> matcher, for the strict concept check (every matcher has a crafted-window test)."""


# --- labels ----------------------------------------------------------------------------------------

_LANGUAGE_LABEL = re.compile(r"^(\w+) text$")


_PUNCTUATION_TOKENS = {name: token for token, name in PUNCTUATION_NAMES.items()}
"""Punctuation name -> its token (``commas`` -> ``,``)."""


def word_at_peak(forms: set[str]) -> Matcher:
    """The strongest token is one of ``forms``, or a piece of one (``"bian"`` of ``Debian``)."""
    return lambda w: w.peak_token.strip().lower() in forms or w.peak_word in forms


def peak_in_class(name: str) -> Matcher:
    """The strongest token is a word of the WordNet class ``name`` (``weekday``: ``monday``, ``fridays``)."""
    from steerlab.features.explain.wordnet import in_class

    return lambda w: in_class(w.peak_token.strip().lower(), name)


def matcher_for_label(text: str) -> Matcher | None:
    """The matcher that can hold a label to its claim, or None when no automatic check exists.

    Handles language labels (``French text``), token labels (``"import" tokens``, ``the word "to"``,
    ``"aqu" in Catalan text``, ``commas in C code``), punctuation names (``commas``), classes of words (``weekday
    words ("monday", "friday")``: the strongest token is one), code labels and the topics above.
    """
    text = text.strip()
    lowered = text.lower()
    token = parse_token_label(text)
    if token:
        word = token[0].strip()
        if text.startswith("the word ") and word.isalpha():  # a word, as written: singular or plural, or a piece of it
            lower = word.lower()
            peak = word_at_peak({lower, lower + "s", lower + "es"} | ({lower[:-1]} if lower.endswith("s") else set()))
        else:
            peak = peak_is(token[0])
        if token[1]:
            rest = matcher_for_label(token[1])
            return all_of(peak, rest) if rest is not None else None
        return peak
    kind = class_label(text)
    if kind is not None:
        return peak_in_class(kind)
    lang = _LANGUAGE_LABEL.match(text)
    if lang and lang.group(1).capitalize() in CODES:
        return language(CODES[lang.group(1).capitalize()])
    if lowered in _PUNCTUATION_TOKENS:
        return peak_is(_PUNCTUATION_TOKENS[lowered])
    for table in (CODE_CONCEPTS, TOKEN_CONCEPTS, TOPICS):
        for name, matcher in table.items():
            if lowered == name.lower():
                return matcher
    return None


def is_description(text: str) -> bool:
    """Whether a label names tokens rather than a concept (``"cat" tokens in shell commands``, ``commas``,
    ``the word "to"``): such labels are checked against the peak tokens, not scored as concepts."""
    text = text.strip()
    return (
        parse_token_label(text) is not None
        or class_label(text) is not None
        or text.lower() in _PUNCTUATION_TOKENS
        or text == "whitespace"
    )
