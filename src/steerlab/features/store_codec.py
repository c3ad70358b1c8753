"""Compact, exact encodings of feature records for SQLite columns.

The database ships inside the package, so size matters: an example is ~40 tokens and a build writes
~30 of them per latent. Three choices keep it small without losing anything a reader gave us:

* an example cut from a stored corpus sequence keeps only its start in it (``sequences`` table);
  other token ids pack into uint16 when they fit (every vocabulary up to 65,536), else int32;
* activations are mostly zero, so only the nonzero ones are stored (position + value), as float32
  when every value is exactly a float32 (builder output always is), else float64;
* token strings are omitted when they equal the SAE's stored vocabulary entries (``vocab`` table),
  which is the case for every built example and logit effect; hand-made ones keep their own strings.
"""

from __future__ import annotations

import json
import struct
from array import array

from steerlab.features.schema import Example, TokenEffect

_HEADER = struct.Struct("<cHH")  # value dtype ('f' or 'd'), dense length, nonzero count
MAX_TOKENS = 65_535


def pack_token_ids(ids: list[int]) -> bytes:
    """``b'H'`` + uint16 array when every id fits, else ``b'i'`` + int32 array."""
    code = "H" if all(0 <= i < 65_536 for i in ids) else "i"
    return code.encode() + array(code, ids).tobytes()


def unpack_token_ids(blob: bytes) -> list[int]:
    return array(chr(blob[0]), blob[1:]).tolist()


def _is_float32(values: list[float]) -> bool:
    packed = array("f", values)
    return all(a == b for a, b in zip(packed, values))


def pack_acts(acts: list[float]) -> bytes:
    """Sparse activations: header, uint16 positions of the nonzeros, their values."""
    if len(acts) > MAX_TOKENS:
        raise ValueError(f"an example may hold at most {MAX_TOKENS} tokens, got {len(acts)}")
    positions = [i for i, a in enumerate(acts) if a != 0.0]
    values = [float(acts[i]) for i in positions]
    code = "f" if _is_float32(values) else "d"
    return (
        _HEADER.pack(code.encode(), len(acts), len(positions))
        + array("H", positions).tobytes()
        + array(code, values).tobytes()
    )


def unpack_acts(blob: bytes) -> list[float]:
    code, length, nnz = _HEADER.unpack_from(blob)
    offset = _HEADER.size
    positions = array("H", blob[offset : offset + 2 * nnz])
    values = array(code.decode(), blob[offset + 2 * nnz :])
    dense = [0.0] * length
    for p, v in zip(positions, values):
        dense[p] = v
    return dense


EXAMPLE_COLUMNS = (
    "kind",
    "rank",
    "quantile",
    "sequence_id",
    "start",
    "max_act",
    "max_position",
    "token_ids",
    "acts",
    "tokens",
)
FROM_SEQUENCE = b""  # token_ids blob meaning "the sequence's tokens from ``start``"


def example_row(example: Example, vocab: list[str] | None, sequence: list[int] | None) -> tuple:
    """Values for ``EXAMPLE_COLUMNS``; ``sequence`` is the stored token ids of the example's sequence."""
    ids = list(example.token_ids)
    if len(example.tokens) > MAX_TOKENS or len(ids) > MAX_TOKENS:
        raise ValueError(f"an example may hold at most {MAX_TOKENS} tokens, got {len(example.tokens)}")
    start = example.start
    in_sequence = (
        sequence is not None
        and start is not None
        and start >= 0
        and len(ids) == len(example.acts)
        and sequence[start : start + len(ids)] == ids
    )
    same = (
        vocab is not None
        and len(ids) == len(example.tokens)
        and all(0 <= i < len(vocab) and vocab[i] == t for i, t in zip(ids, example.tokens))
    )
    tokens = None if same else json.dumps(example.tokens, ensure_ascii=False)
    return (
        example.kind,
        example.rank,
        example.quantile,
        example.sequence_id,
        start,
        float(example.max_act),
        example.max_position,
        FROM_SEQUENCE if in_sequence else pack_token_ids(ids),
        pack_acts(list(example.acts)),
        tokens,
    )


def example_from_row(row, vocab: list[str] | None, sequence_of) -> Example:
    """Inverse of ``example_row``; ``sequence_of(sequence_id)`` gives a stored sequence's token ids."""
    kind, rank, quantile, sequence_id, start, max_act, max_position, ids_blob, acts_blob, tokens = row
    acts = unpack_acts(acts_blob)
    if ids_blob == FROM_SEQUENCE:
        ids = (sequence_of(sequence_id) or [])[start : start + len(acts)]
    else:
        ids = unpack_token_ids(ids_blob)
    if tokens is not None:
        token_strings = json.loads(tokens)
    elif vocab is not None:
        token_strings = [vocab[i] if 0 <= i < len(vocab) else "" for i in ids]
    else:  # a vocabulary row went missing: show ids rather than fail
        token_strings = [f"<{i}>" for i in ids]
    return Example(
        kind=kind,
        rank=rank,
        quantile=quantile,
        tokens=token_strings,
        token_ids=ids,
        acts=acts,
        max_act=max_act,
        max_position=max_position,
        sequence_id=sequence_id,
        start=start,
    )


def effects_json(effects: list[TokenEffect], vocab: list[str] | None) -> str | None:
    """``[[id, value], ...]``; a token string is kept only where it differs from the vocabulary's."""
    if not effects:
        return None
    rows = [
        [e.token_id, e.value]
        if vocab is not None and 0 <= e.token_id < len(vocab) and vocab[e.token_id] == e.token
        else [e.token_id, e.value, e.token]
        for e in effects
    ]
    return dumps(rows)


def effects_from_json(text: str | None, vocab: list[str] | None) -> list[TokenEffect]:
    out = []
    for row in loads(text) or []:
        token = row[2] if len(row) > 2 else (vocab[row[0]] if vocab and 0 <= row[0] < len(vocab) else f"<{row[0]}>")
        out.append(TokenEffect(token=token, token_id=row[0], value=row[1]))
    return out


def dumps(value) -> str | None:
    """Compact JSON for a column (None stays NULL)."""
    return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def loads(text: str | None):
    return None if text is None else json.loads(text)
