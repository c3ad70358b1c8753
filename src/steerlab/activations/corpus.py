"""Corpora -> token sequences: local JSONL/Parquet (plain ``text`` or chat ``messages``), HF datasets.

Every record becomes one token sequence: chat records go through the model's own chat template,
plain text is cut into windows of ``context_length`` tokens. The order is deterministic for a seed,
which is what lets a harvest resume exactly where it stopped.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from steerlab.errors import InvalidInputError
from steerlab.models.chat_template import template_ids


class CorpusError(InvalidInputError):
    """A corpus file or spec that cannot be read; the message names the file/field and what is allowed."""


@dataclass
class CorpusSource:
    """One source of records and how many tokens to take from it (None = all)."""

    path: str
    """A local .jsonl/.json/.parquet file, or ``hf:NAME[:CONFIG]`` for an HF dataset (split 'train')."""
    max_tokens: int | None = None
    text_field: str = "text"
    messages_field: str = "messages"


@dataclass
class CorpusSpec:
    sources: list[CorpusSource] = field(default_factory=list)
    context_length: int = 256
    seed: int = 0

    def to_dict(self) -> dict:
        return {"sources": [vars(s) for s in self.sources], "context_length": self.context_length, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict) -> CorpusSpec:
        return cls(
            sources=[CorpusSource(**s) for s in d["sources"]], context_length=d["context_length"], seed=d["seed"]
        )


def _iter_jsonl(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as err:
                raise CorpusError(f"{path}:{n}: not valid JSON ({err.msg})") from err


def _iter_parquet(path: Path) -> Iterator[dict]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a bad file
        raise CorpusError(f"{path}: not a readable Parquet file ({err})") from err
    for batch in table.iter_batches(batch_size=1024):
        yield from batch.to_pylist()


def _iter_hf(spec: str) -> Iterator[dict]:
    try:
        import datasets
    except ImportError as err:
        raise CorpusError("HF datasets need the 'datasets' package: pip install 'steerlab[hf]'") from err
    name, _, config = spec.removeprefix("hf:").partition(":")
    try:
        ds = datasets.load_dataset(name, config or None, split="train", streaming=True)
    except Exception as err:  # network, missing dataset, bad config
        raise CorpusError(f"cannot load HF dataset {name!r}: {str(err).splitlines()[0]}") from err
    yield from ds


def iter_records(source: CorpusSource) -> Iterator[dict]:
    if source.path.startswith("hf:"):
        yield from _iter_hf(source.path)
        return
    path = Path(source.path).expanduser()
    if not path.is_file():
        raise CorpusError(f"corpus file {path} does not exist")
    if path.suffix in (".jsonl", ".json"):
        yield from _iter_jsonl(path)
    elif path.suffix == ".parquet":
        yield from _iter_parquet(path)
    else:
        raise CorpusError(f"corpus file {path}: suffix must be .jsonl, .json or .parquet")


def record_to_sequences(record: dict, tokenizer, source: CorpusSource, context_length: int) -> list[list[int]]:
    """Tokenize one record: chat through the chat template (truncated), text in windows."""
    messages = record.get(source.messages_field)
    if messages is not None:
        if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m for m in messages):
            raise CorpusError(f"{source.path}: field '{source.messages_field}' must be a list of {{role, content}}")
        return [template_ids(tokenizer, messages)[:context_length]]  # a base model without one: plain text
    text = record.get(source.text_field)
    if not isinstance(text, str):
        raise CorpusError(
            f"{source.path}: each record needs a string field '{source.text_field}' or a list '{source.messages_field}'"
        )
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    # every window starts as the model reads any text: with the BOS its tokenizer puts in front (Gemma's
    # <bos>; SmolLM2's adds none). Without it a Gemma turns the first token into its attention sink and
    # the activations after it are not those of a chat, which always starts with <bos>.
    lead = bos_prefix(tokenizer)
    width = max(context_length - len(lead), 1)
    windows = [ids[i : i + width] for i in range(0, len(ids), width)]
    return [lead + w for w in windows if len(w) >= min(32, width)]


def bos_prefix(tokenizer) -> list[int]:
    """``[bos]`` when the tokenizer puts it in front of every text it encodes, else ``[]``."""
    empty = list(tokenizer("", add_special_tokens=True)["input_ids"])
    bos = getattr(tokenizer, "bos_token_id", None)
    return [bos] if bos is not None and empty[:1] == [bos] else []


def build_sequences(spec: CorpusSpec, tokenizer, progress: bool = True) -> list[list[int]]:
    """All sequences of the corpus, budgets applied, in a seeded shuffled order."""
    from tqdm import tqdm

    if not spec.sources:
        raise CorpusError("a corpus needs at least one source")
    sequences: list[list[int]] = []
    for source in spec.sources:
        taken = 0
        bar = tqdm(total=source.max_tokens, desc=f"tokenize {Path(source.path).name}", unit="tok", disable=not progress)
        for record in iter_records(source):
            for seq in record_to_sequences(record, tokenizer, source, spec.context_length):
                if source.max_tokens is not None and taken >= source.max_tokens:
                    break
                sequences.append(seq)
                taken += len(seq)
                bar.update(len(seq))
            if source.max_tokens is not None and taken >= source.max_tokens:
                break
        bar.close()
    random.Random(spec.seed).shuffle(sequences)
    return sequences
