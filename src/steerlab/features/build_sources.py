"""Where the builder's activations come from: harvest shards (no model forward) or a corpus.

Both cut the stream into batches of whole sequences (so every context window is inside its
batch) in a fixed order, so batch ``n`` is the same batch on every run: a resumed build skips the
batches its checkpoint already counted and continues exactly where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open

from steerlab.activations.harvest import HarvestError, shard_path
from steerlab.errors import InvalidInputError
from steerlab.features.batch_codes import TokenBatch


def sequence_cuts(seq_index: torch.Tensor, batch_tokens: int) -> list[tuple[int, int]]:
    """Row ranges of about ``batch_tokens`` rows that never split a sequence (rows sorted by sequence)."""
    n = int(seq_index.numel())
    if n == 0:
        return []
    bounds = (torch.nonzero(seq_index[1:] != seq_index[:-1]).squeeze(1) + 1).tolist() + [n]
    cuts, start = [], 0
    for end in bounds:
        if end - start >= batch_tokens or end == n:
            cuts.append((start, end))
            start = end
    return cuts


class HarvestActivations:
    """The finished shards of harvest folders (or single shard files), read slice by slice."""

    def __init__(self, paths: list[str | Path], batch_tokens: int = 4096, max_tokens: int | None = None):
        self.batch_tokens, self.max_tokens = batch_tokens, max_tokens
        self.paths = [str(p) for p in paths]  # as given: another process rebuilds the same source from them
        self.shards: list[tuple[Path, int]] = []  # (shard file, sequence-id offset of its folder)
        self.folders: list[tuple[Path, int, int]] = []  # (folder, offset, number of sequences)
        manifest0 = None
        offset = 0
        for raw in paths:
            path = Path(raw).expanduser()
            folder = path.parent if path.is_file() else path
            manifest_file = folder / "manifest.json"
            if not manifest_file.is_file():
                raise HarvestError(f"{path} is not a harvest folder or shard (no manifest.json in {folder})")
            manifest = json.loads(manifest_file.read_text())
            if manifest0 is None:
                manifest0 = manifest
            for key in ("model", "hookpoint", "d_model"):
                if manifest.get(key) != manifest0.get(key):
                    raise HarvestError(
                        f"{folder} was harvested with {key}={manifest.get(key)!r} but {paths[0]} "
                        f"with {manifest0.get(key)!r}; use harvests of one model and hookpoint"
                    )
            if path.is_file():
                files = [path]
            else:
                files = [shard_path(folder, i) for i in range(manifest["num_shards"]) if shard_path(folder, i).exists()]
            if "num_sequences" not in manifest:
                raise HarvestError(
                    f"{folder} has no token sequences yet (a chat capture writes them when it "
                    "finishes: rerun its 'steerlab corpus build-default ... --capture-out' command)"
                )
            self.shards += [(f, offset) for f in files]
            self.folders.append((folder, offset, int(manifest["num_sequences"])))
            offset += int(manifest["num_sequences"])
        if not self.shards:
            raise HarvestError(f"{', '.join(map(str, paths)) or '(none)'}: no finished shards to read")
        self.manifest = manifest0
        self.model_name, self.hookpoint, self.d_in = manifest0["model"], manifest0["hookpoint"], manifest0["d_model"]
        self._sizes = [self._rows(f) for f, _ in self.shards]
        self._sequences: dict[Path, tuple[torch.Tensor, torch.Tensor]] = {}

    @staticmethod
    def _rows(path: Path) -> int:
        with safe_open(str(path), framework="pt") as fh:
            return fh.get_slice("acts").get_shape()[0]

    @property
    def total_tokens(self) -> int:
        total = sum(self._sizes)
        return total if self.max_tokens is None else min(total, self.max_tokens)

    def fingerprint(self) -> dict:
        return {
            "kind": "harvest",
            "shards": [str(f) for f, _ in self.shards],
            "batch_tokens": self.batch_tokens,
            "max_tokens": self.max_tokens,
        }

    def num_batches(self) -> int:
        """How many batches ``batches()`` yields (reads only the shards' sequence ids)."""
        number, emitted = 0, 0
        for path, _ in self.shards:
            with safe_open(str(path), framework="pt") as fh:
                for start, end in sequence_cuts(fh.get_tensor("seq_index"), self.batch_tokens):
                    if self.max_tokens is not None and emitted >= self.max_tokens:
                        return number
                    emitted += end - start
                    number += 1
        return number

    def batches(self, skip: int = 0) -> Iterator[TokenBatch]:
        """Batches after the first ``skip`` (a shard wholly before ``skip`` is never read)."""
        number, emitted = 0, 0
        for path, offset in self.shards:
            with safe_open(str(path), framework="pt") as fh:
                seq_index = fh.get_tensor("seq_index")
                loaded = None
                for start, end in sequence_cuts(seq_index, self.batch_tokens):
                    if self.max_tokens is not None and emitted >= self.max_tokens:
                        return
                    emitted += end - start
                    number += 1
                    if number <= skip:
                        continue
                    if loaded is None:
                        loaded = fh.get_tensor("token_ids"), fh.get_tensor("position"), fh.get_slice("acts")
                    token_ids, position, acts = loaded
                    yield TokenBatch(
                        acts=acts[start:end].float(),
                        token_ids=token_ids[start:end].long(),
                        seq=seq_index[start:end].long() + offset,
                        pos=position[start:end].long(),
                    )

    def sequence_tokens(self, seq_ids: set[int]) -> dict[int, list[int]]:
        """Token ids of the given global sequence ids (from each folder's sequences.safetensors)."""
        out = {}
        for folder, offset, count in self.folders:
            wanted = [s for s in seq_ids if offset <= s < offset + count]
            if not wanted:
                continue
            if folder not in self._sequences:
                with safe_open(str(folder / "sequences.safetensors"), framework="pt") as fh:
                    self._sequences[folder] = (fh.get_tensor("tokens"), fh.get_tensor("offsets"))
            tokens, offsets = self._sequences[folder]
            for s in wanted:
                local = s - offset
                out[s] = tokens[offsets[local] : offsets[local + 1]].tolist()
        return out


class CorpusActivations:
    """Token sequences run through the model up to the hookpoint, a few sequences per forward."""

    def __init__(
        self,
        lm,
        hookpoint: str,
        sequences: list[list[int]],
        batch_tokens: int = 4096,
        max_tokens: int | None = None,
        skip_first_position: bool = True,
        description: dict | None = None,
    ):
        if not sequences:
            raise InvalidInputError("the corpus holds no sequences to scan", field="corpus")
        self.lm, self.hookpoint, self.sequences = lm, hookpoint, sequences
        self.batch_tokens, self.max_tokens = batch_tokens, max_tokens
        self.first = 1 if skip_first_position else 0  # position 0 is an attention sink (see harvest.py)
        self.description = description or {}
        self.model_name, self.d_in = lm.name, lm.d_model
        self._groups: list[list[int]] = []  # sequence ids of each batch, ~batch_tokens tokens each
        filled = batch_tokens
        for i, seq in enumerate(sequences):
            if len(seq) <= self.first:
                continue
            if filled >= batch_tokens:
                self._groups.append([])
                filled = 0
            self._groups[-1].append(i)
            filled += len(seq) - self.first

    @property
    def total_tokens(self) -> int:
        total = sum(max(len(s) - self.first, 0) for s in self.sequences)
        return total if self.max_tokens is None else min(total, self.max_tokens)

    def fingerprint(self) -> dict:
        return {
            "kind": "corpus",
            **self.description,
            "sequences": len(self.sequences),
            "tokens": sum(map(len, self.sequences)),
            "batch_tokens": self.batch_tokens,
            "max_tokens": self.max_tokens,
            "first_position": self.first,
        }

    def num_batches(self) -> int:
        """How many batches ``batches()`` yields."""
        emitted = 0
        for number, chosen in enumerate(self._groups):
            if self.max_tokens is not None and emitted >= self.max_tokens:
                return number
            emitted += sum(len(self.sequences[i]) - self.first for i in chosen)
        return len(self._groups)

    def batches(self, skip: int = 0) -> Iterator[TokenBatch]:
        from steerlab.models.hooks import forward_to_hookpoint

        emitted = 0
        for number, chosen in enumerate(self._groups):
            if self.max_tokens is not None and emitted >= self.max_tokens:
                return
            emitted += sum(len(self.sequences[i]) - self.first for i in chosen)
            if number < skip:
                continue
            width = max(len(self.sequences[i]) for i in chosen)
            ids = torch.full((len(chosen), width), self.lm.tokenizer.pad_token_id or 0, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, i in enumerate(chosen):  # right padding: real tokens keep positions 0..n-1
                ids[r, : len(self.sequences[i])] = torch.tensor(self.sequences[i])
                mask[r, : len(self.sequences[i])] = 1
            device = self.lm.device
            hidden = forward_to_hookpoint(self.lm.model, ids.to(device), self.hookpoint, mask.to(device)).float().cpu()
            keep = mask.bool()
            keep[:, : self.first] = False
            rows, cols = keep.nonzero(as_tuple=True)
            yield TokenBatch(
                acts=hidden[rows, cols], token_ids=ids[rows, cols], seq=torch.tensor(chosen)[rows], pos=cols
            )

    def sequence_tokens(self, seq_ids: set[int]) -> dict[int, list[int]]:
        return {s: list(self.sequences[s]) for s in seq_ids}
