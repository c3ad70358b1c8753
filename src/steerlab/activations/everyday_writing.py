"""Everyday writing the model writes itself: the modern prose no offline package ships.

Debian and PyPI offer 19th-century novels, the Bible and reference text, and an SAE trained on them
reads today's news badly (docs/corpus.md). So the recipe asks the model for writing in today's registers
(news reports, blog posts, emails, reviews, stories, speeches, forum posts) about common nouns of WordNet's
topical files, and harvests the replies as plain text, without the chat template, as a page of prose
would be read. The topics are WordNet's own, never the concept check's catalogue.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

REGISTERS = (
    "Write a short news report about {}.",
    "Write a blog post about {}.",
    "Write an email to a friend about {}.",
    "Write a customer review that mentions {}.",
    "Write a short story about {}.",
    "Write a diary entry about {}.",
    "Write a letter to the editor of a local newspaper about {}.",
    "Explain {} to a teenager in a few paragraphs.",
    "Write a short speech about {}.",
    "Write a forum post asking for advice about {}.",
)
"""Registers of today's everyday writing; each prompt pairs one with a topic."""

TOPICAL_LEXFILES = frozenset(
    {
        "act", "animal", "artifact", "body", "cognition", "communication", "event", "feeling", "food", "group",
        "location", "object", "phenomenon", "plant", "possession", "process", "state", "substance", "time",
    }
)  # fmt: skip
"""WordNet lexicographer files whose nouns make topics (no people, relations, shapes, quantities, attributes)."""

MIN_TAGGED = 1
"""A topic has a sense the SemCor sense-tagged corpus saw: ~9,100 common nouns, not rare ones."""

MIN_CHARS = 200
"""Shorter replies (refusals, one-liners) are not kept as documents."""

# The vocabulary file lives with the explainer's data; read as a file, so this layer imports nothing above it.
WORDNET_NOUNS = Path(__file__).resolve().parent.parent / "features" / "data" / "wordnet_nouns.tsv"


def _plain_word(text: str) -> bool:
    return text.isascii() and text.islower() and text[0].isalpha()


def writing_topics(path: Path = WORDNET_NOUNS) -> list[str]:
    """Common lower-case nouns of the topical lexicographer files (no capitalised names, none starting with a
    digit), sorted (the draw below is seeded)."""
    topics = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            text, tagged, lexfile, _ = line.split("\t")
            if int(tagged) >= MIN_TAGGED and lexfile in TOPICAL_LEXFILES and _plain_word(text):
                topics.add(text)
    return sorted(topics)


def everyday_writing_prompts(n: int, seed: int = 0) -> list[dict]:
    """``n`` prompts ({'id', 'source', 'prompt'}), each a register and a topic drawn with a fixed seed.

    The first ``n`` of a longer list are the same prompts, so a corpus can grow without changing what it holds.
    """
    rng, topics = random.Random(seed), writing_topics()
    return [
        {"id": i, "source": "everyday-writing", "prompt": rng.choice(REGISTERS).format(rng.choice(topics))}
        for i in range(n)
    ]


def writing_documents(transcripts: Iterable[dict]) -> list[dict]:
    """The replies as plain documents ({'id', 'source', 'text'}): what a reader of the page would see, without
    the request or the chat template. Replies cut at the token cap are kept (prose to the last token)."""
    out = []
    for row in transcripts:
        reply = row["messages"][-1]["content"].strip()
        if row["messages"][-1]["role"] == "assistant" and len(reply) >= MIN_CHARS:
            out.append({"id": row["id"], "source": "everyday-writing", "text": reply})
    return out
