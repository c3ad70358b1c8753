"""Strict checks of what a feature fires on: windows around its strongest tokens, judged by matchers.

A feature is *about* a concept when at least 6 of its 10 strongest contexts show the concept in a
window around the strongest token: 20 tokens before it, 4 after (the residual stream at a position
sees only what came before, so the window leans left). Short windows matter: a 40-token context
nearly always holds a digit, a parenthesis or some common keyword, which is how a lenient check
accepted the Unix ``cat`` feature as "cats".

Matchers decide whether one window shows a concept:

- topics: whole-word, case-insensitive keywords from a specific set; windows that look like code or
  shell commands do not count for everyday topics (``cat /etc/passwd`` is not about cats);
- languages: the fastText identifier the labeler already uses (``explain/language.py``);
- code: syntax patterns specific to each language;
- token-level concepts (numbers, punctuation, single tokens): the strongest token itself, or the
  couple of tokens around it.

The catalogue of concepts built from these matchers (search phrases and labels -> matchers) is
``features/concepts.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from steerlab.features.explain.base import window
from steerlab.features.explain.language import detect_language
from steerlab.features.schema import Example, Feature

BEFORE = 20
AFTER = 4
TOP = 10
NEED = 6
"""A feature shows a concept when at least NEED of its TOP strongest windows do."""


_LETTERS = re.compile(r"\s?[A-Za-z]+")


@dataclass(frozen=True)
class Window:
    """The tokens around one example's strongest activation; ``peak`` indexes ``tokens``."""

    tokens: tuple[str, ...]
    peak: int

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def peak_token(self) -> str:
        return self.tokens[self.peak] if self.tokens else ""

    @property
    def peak_word(self) -> str:
        """The whole word the strongest token is a piece of, lowercase (``"bian"`` in `` Debian`` -> ``debian``): the
        letters-only tokens joined up to the word's leading space; "" when the peak token is not letters."""
        tokens = self.tokens
        if not tokens or not _LETTERS.fullmatch(tokens[self.peak]):
            return ""
        start = self.peak
        while start > 0 and not tokens[start][:1].isspace() and _LETTERS.fullmatch(tokens[start - 1]):
            start -= 1
        end = self.peak + 1
        while end < len(tokens) and _LETTERS.fullmatch(tokens[end]) and not tokens[end][:1].isspace():
            end += 1
        return "".join(tokens[start:end]).strip().lower()

    def around_peak(self, before: int = 2, after: int = 1) -> str:
        """Text of the few tokens at the peak (token-level concepts are judged there)."""
        return "".join(self.tokens[max(0, self.peak - before) : self.peak + after + 1])


def example_window(example: Example, before: int = BEFORE, after: int = AFTER) -> Window:
    start, end = window(example, before, after)
    center = min(max(example.max_position, 0), max(len(example.tokens) - 1, 0))
    return Window(tuple(example.tokens[start:end]), center - start)


def strongest_windows(feature: Feature, n: int = TOP) -> list[Window]:
    """Windows of the feature's ``n`` strongest firing contexts (its top examples), strongest first."""
    tops = [e for e in feature.examples_of("top") if e.max_act > 0][:n]
    return [example_window(e) for e in tops]


Matcher = Callable[[Window], bool]


def judge(windows: Sequence[Window], matcher: Matcher, need: int = NEED) -> tuple[bool, int]:
    """``(holds, windows that show it)``: holds when at least ``need`` windows show the concept."""
    shown = sum(1 for w in windows if matcher(w))
    return shown >= need, shown


# --- matcher building blocks ---------------------------------------------------------------------

_CODE_SIGNS = [
    re.compile(p, re.MULTILINE)
    for p in (
        r"(^|\n)\s*[$#>]\s+[a-z]",  # a shell prompt
        r"\|\s*(grep|sort|less|more|head|tail|wc|awk|sed|xargs|tee)\b",
        r"(^|\s)--?[a-zA-Z][\w-]*",  # command-line options
        r"(^|[\s\"'=(])(~|\.{1,2})?/(usr|etc|var|bin|dev|tmp|home|opt|lib|proc|sys)\b",
        r"[{};]\s*$",
        r"\w\(\)|\w+\([\w\s,.'\"=*]*\)",  # calls
        r"\b\w+\.\w+\(",
        r"#include|\bdef\s+\w+\(|\bimport\s+[\w.]+|\breturn\b\s*[\w(]",
        r"[=!<>]=|&&|\|\||->|=>|::",
        r"\b[a-z]+_[a-z_]+\b",  # snake_case identifiers
    )
]


def looks_like_code(text: str, signs: int = 2) -> bool:
    """At least ``signs`` distinct code / shell signs in ``text`` (prose rarely has two)."""
    return sum(1 for sign in _CODE_SIGNS if sign.search(text)) >= signs


def keywords(*words: str, prose_only: bool = True) -> Matcher:
    """Any of ``words`` (whole words or phrases, case-insensitive) in the window; with ``prose_only``
    a window that looks like code or shell does not count (everyday topics are about prose)."""
    pattern = re.compile(r"(?<![\w-])(" + "|".join(re.escape(w) for w in words) + r")(?![\w-])", re.IGNORECASE)

    def match(w: Window) -> bool:
        text = w.text
        return bool(pattern.search(text)) and not (prose_only and looks_like_code(text))

    return match


def pattern(regex: str, flags: int = 0, prose_only: bool = False) -> Matcher:
    compiled = re.compile(regex, flags)

    def match(w: Window) -> bool:
        return bool(compiled.search(w.text)) and not (prose_only and looks_like_code(w.text))

    return match


def near_peak(regex: str, flags: int = 0, before: int = 1, after: int = 1) -> Matcher:
    """The pattern in the few tokens at the strongest one (token-level concepts)."""
    compiled = re.compile(regex, flags)
    return lambda w: bool(compiled.search(w.around_peak(before, after)))


def at_peak(regex: str, flags: int = 0) -> Matcher:
    """The strongest token itself (stripped) matches the pattern in full."""
    compiled = re.compile(regex, flags)
    return lambda w: bool(compiled.fullmatch(w.peak_token.strip()))


def language(code: str) -> Matcher:
    """The fastText identifier puts the window in language ``code`` (ISO 639-1)."""
    return lambda w: detect_language(w.text) == code


def peak_is(token: str) -> Matcher:
    """The strongest token is ``token`` (case-insensitive, surrounding whitespace ignored)."""
    want = token.strip().lower()
    if not want:  # whitespace tokens: compare the newlines they hold
        return lambda w: not w.peak_token.strip() and ("\n" in w.peak_token) == ("\n" in token)
    return lambda w: w.peak_token.strip().lower() == want


def any_of(*matchers: Matcher) -> Matcher:
    return lambda w: any(m(w) for m in matchers)


def all_of(*matchers: Matcher) -> Matcher:
    return lambda w: all(m(w) for m in matchers)


# --- code --------------------------------------------------------------------------------------

PYTHON = pattern(
    r"\bdef\s+\w+\s*\(|^\s*(from\s+[\w.]+\s+)?import\s+\w|\bself\.\w|\belif\b|\bNone\b|__\w+__|\blambda\b"
    r"|\bexcept(\s+\w+)?\s*:|\bprint\(|\b(True|False)\b\s*[,):]|^\s*(class|if|for|while|with|try)\b[^\n]*:\s*$",
    re.MULTILINE,
)
SQL = pattern(
    r"\bSELECT\b[\s\S]*\bFROM\b|\bINSERT\s+INTO\b|\bCREATE\s+(TABLE|INDEX|VIEW)\b|\bDELETE\s+FROM\b"
    r"|\bUPDATE\s+\w+\s+SET\b|\b(INNER|LEFT|RIGHT)\s+JOIN\b|\bGROUP\s+BY\b|\bORDER\s+BY\b|\bWHERE\s+\w+\s*(=|<|>|IN\b|LIKE\b)"
)  # upper-case keywords: "select the best from what remains" is English
C_CODE = pattern(
    r"#include|\bprintf\s*\(|\bmalloc\s*\(|\bsizeof\s*\(|\b(int|char|void|long|unsigned|static|const|struct)\s+\**\w+"
    r"\s*[(;=\[,)]|\w->\w"
)
SHELL = pattern(
    r"(^|\n)\s*[$#]\s+\w|\bsudo\s+\w|\b(apt-get|apt|dpkg|systemctl|chmod|chown|mkdir|grep|ls|cd|echo|tar|ssh|rm|cp|mv"
    r"|cat|curl|wget|make)\s+(-{1,2}\w|/|~|\.|[\w.-]+\.\w+\b|\$)|\|\s*(grep|sort|less|head|tail|wc|awk|sed)\b",
)
JAVASCRIPT = pattern(
    r"\bfunction\s*\w*\s*\(|\b(const|let|var)\s+\w+\s*=|=>|console\.log|document\.\w|\brequire\(['\"]|\bexport\s+"
    r"(default|function|const)"
)
LISP = pattern(r"\((def(un|var|macro|custom|const|face|group)|setq|let\*?|lambda|interactive|require|provide)\b")
HTML = pattern(r"</?[a-zA-Z][\w-]*(\s[^<>]*)?/?>")
LATEX = pattern(r"\\(begin|end|frac|section|usepackage|documentclass|textbf|emph|item|label|ref|cite)\b")
CODE = any_of(PYTHON, SQL, C_CODE, SHELL, JAVASCRIPT, LISP, HTML, LATEX)
