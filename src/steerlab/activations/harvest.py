"""Harvest residual-stream activations into shards on disk: batched, resumable, atomic.

Layout of a harvest folder::

    manifest.json             model, hookpoint, dtype, corpus spec, sequences per shard, totals
    sequences.safetensors     the token sequences, flattened (tokens + offsets), fixed before shard 0
    shard_00000.safetensors   acts [n, d_model] (float32 or bfloat16), token_ids [n], seq_index [n], position [n]

Shard i always holds sequences [i*S, (i+1)*S), so a killed harvest restarts at the first missing
shard and produces exactly the files an uninterrupted run would. Position 0 of every sequence is
skipped: its residual norm is orders of magnitude larger (attention sink) and it carries no context.

Shards keep every other token, massive activations included (a second attention sink at position 1 where a
window starts on a newline or a digit: ``activations/massive.py``), so harvests written before and after agree
and stay usable; the trainer and ``sae eval`` leave those tokens out when they read them. Each shard's metadata
counts them (``massive_tokens``, over ``STEERLAB_MASSIVE_FACTOR`` times the shard's median norm) and the finished
manifest sums them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from tqdm import tqdm

from steerlab.activations.corpus import CorpusSpec, build_sequences
from steerlab.activations.massive import count_massive, massive_factor
from steerlab.errors import InvalidInputError
from steerlab.models.hooks import forward_to_hookpoint, resolve_hookpoint
from steerlab.models.loader import LoadedModel, parse_dtype
from steerlab.tensor_files import save_safetensors

ShardRunner = Callable[[str, dict[int, tuple[int, list[list[int]]]], "HarvestConfig"], Iterable[tuple[int, dict]]]
"""``(hookpoint, {shard index: (first sequence id, sequences)}, cfg) -> (shard index, tensors)`` in any
order: how the shards of a harvest get computed (here, one after the other; ``cluster/jobs.py``: on Ray)."""


class HarvestError(InvalidInputError):
    """A harvest folder that does not match the requested run, or is damaged."""


@dataclass
class HarvestConfig:
    layer: int | str = 18
    """Block index or HF module name; the residual stream after it is recorded."""
    batch_size: int = 32
    """Sequences per forward pass."""
    sequences_per_shard: int = 1024
    """About a quarter million tokens per shard at context 256."""
    store_dtype: str = "bfloat16"
    """Shard dtype: bfloat16 halves the disk footprint; float32 keeps the exact values."""
    skip_first_position: bool = True


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _save_sequences(sequences: list[list[int]], path: Path) -> None:
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
    tokens = torch.tensor([t for s in sequences for t in s], dtype=torch.int32)
    save_safetensors({"tokens": tokens, "offsets": offsets}, path)


def load_sequences(path: Path) -> list[list[int]]:
    data = load_file(str(path))
    tokens, offsets = data["tokens"].tolist(), data["offsets"].tolist()
    return [tokens[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


def shard_path(out_dir: Path, index: int) -> Path:
    return out_dir / f"shard_{index:05d}.safetensors"


def write_shard(tensors: dict[str, torch.Tensor], path: Path, hookpoint: str) -> int:
    """Write one shard atomically, its massive-token count in the file's metadata; returns that count."""
    factor = massive_factor()
    n = count_massive(tensors["acts"], factor)
    meta = {"hookpoint": hookpoint, "massive_tokens": str(n), "massive_factor": str(factor)}
    save_safetensors(tensors, path, metadata=meta)
    return n


def shard_massive_tokens(path: Path, factor: float | None = None) -> int:
    """Massive tokens of a shard: from its metadata where it was counted with ``factor``, else counted now
    (a shard written before the count existed)."""
    factor = massive_factor(factor)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if "massive_tokens" in meta and float(meta.get("massive_factor", "nan")) == factor:
            return int(meta["massive_tokens"])
        return count_massive(f.get_tensor("acts"), factor)


def count_harvest_massive(out_dir: Path, manifest: dict) -> bool:
    """Put ``massive_tokens`` (summed over the shards) and ``massive_factor`` in a finished harvest's manifest
    where they are missing or were counted with another factor; returns whether the manifest changed."""
    factor = massive_factor()
    if "massive_tokens" in manifest and manifest.get("massive_factor") == factor:
        return False
    shards = [shard_path(out_dir, i) for i in range(manifest["num_shards"])]
    manifest.update(massive_tokens=sum(shard_massive_tokens(p, factor) for p in shards), massive_factor=factor)
    return True


def _prepare(lm: LoadedModel, spec: CorpusSpec, cfg: HarvestConfig, out_dir: Path, progress: bool):
    hookpoint = resolve_hookpoint(lm.model, cfg.layer)
    wanted = {
        "model": lm.name,
        "hookpoint": hookpoint,
        "store_dtype": cfg.store_dtype,
        "corpus": spec.to_dict(),
        "sequences_per_shard": cfg.sequences_per_shard,
        "skip_first_position": cfg.skip_first_position,
        "d_model": lm.d_model,
    }
    manifest_path = out_dir / "manifest.json"
    seq_path = out_dir / "sequences.safetensors"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        differs = [k for k in wanted if manifest.get(k) != wanted[k]]
        if differs:
            raise HarvestError(
                f"{out_dir} holds a different harvest (differs in: {', '.join(differs)}); "
                "use a new output folder or delete this one"
            )
        if not seq_path.exists():
            raise HarvestError(f"{out_dir} has a manifest but no sequences.safetensors; delete the folder and rerun")
        return hookpoint, manifest, load_sequences(seq_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    sequences = build_sequences(spec, lm.tokenizer, progress=progress)
    _save_sequences(sequences, seq_path)
    manifest = {
        **wanted,
        "num_sequences": len(sequences),
        "num_shards": -(-len(sequences) // cfg.sequences_per_shard),
        "complete": False,
    }
    _write_json(manifest_path, manifest)
    return hookpoint, manifest, sequences


@torch.inference_mode()
def harvest_shard(
    lm: LoadedModel, hookpoint: str, sequences: list[list[int]], first_seq: int, cfg: HarvestConfig
) -> dict[str, torch.Tensor]:
    """Forward a shard's sequences to the hookpoint, batched by similar length, keep real tokens only."""
    store = parse_dtype(cfg.store_dtype)
    pad = lm.tokenizer.pad_token_id or 0
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    acts, toks, seqs, poss = [], [], [], []
    start = 1 if cfg.skip_first_position else 0
    for b in range(0, len(order), cfg.batch_size):
        idx = order[b : b + cfg.batch_size]
        width = max(len(sequences[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):  # right padding: real tokens keep positions 0..n-1
            ids[r, : len(sequences[i])] = torch.tensor(sequences[i])
            mask[r, : len(sequences[i])] = 1
        hidden = forward_to_hookpoint(lm.model, ids.to(lm.device), hookpoint, mask.to(lm.device)).float().cpu()
        for r, i in enumerate(idx):
            n = len(sequences[i])
            acts.append(hidden[r, start:n].to(store))
            toks.append(ids[r, start:n].to(torch.int32))
            seqs.append(torch.full((n - start,), first_seq + i, dtype=torch.int64))
            poss.append(torch.arange(start, n, dtype=torch.int32))
    # restore corpus order inside the shard so shards read like text
    by_seq = torch.cat(seqs).argsort(stable=True)
    return {
        "acts": torch.cat(acts)[by_seq].contiguous(),
        "token_ids": torch.cat(toks)[by_seq],
        "seq_index": torch.cat(seqs)[by_seq],
        "position": torch.cat(poss)[by_seq],
    }


def harvest(
    lm: LoadedModel,
    spec: CorpusSpec,
    out_dir: Path,
    cfg: HarvestConfig = HarvestConfig(),
    progress: bool = True,
    max_shards: int | None = None,
    runner: ShardRunner | None = None,
) -> dict:
    """Harvest (or resume harvesting) ``spec`` into ``out_dir``; returns the manifest. ``runner`` computes
    the missing shards (default: in this process); whoever computes them, this process writes each one
    exactly once, atomically, so a shard is either whole on disk or redone by the next run."""
    out_dir = Path(out_dir)
    hookpoint, manifest, sequences = _prepare(lm, spec, cfg, out_dir, progress)
    per = cfg.sequences_per_shard
    missing = [i for i in range(manifest["num_shards"]) if not shard_path(out_dir, i).exists()]
    total_tokens = sum(len(s) - int(cfg.skip_first_position) for s in sequences)
    done_tokens = total_tokens - sum(
        len(s) - int(cfg.skip_first_position) for i in missing for s in sequences[i * per : (i + 1) * per]
    )
    bar = tqdm(
        total=total_tokens,
        initial=done_tokens,
        desc=f"harvest {hookpoint}",
        unit="tok",
        unit_scale=True,
        disable=not progress,
    )
    todo = {i: (i * per, sequences[i * per : (i + 1) * per]) for i in missing[:max_shards]}

    def here(hookpoint: str, chunks: dict[int, tuple[int, list[list[int]]]], cfg: HarvestConfig):
        for i, (first, chunk) in chunks.items():
            yield i, harvest_shard(lm, hookpoint, chunk, first, cfg)

    for i, tensors in (runner or here)(hookpoint, todo, cfg):
        write_shard(tensors, shard_path(out_dir, i), hookpoint)
        bar.update(len(tensors["acts"]))
    bar.close()
    complete = all(shard_path(out_dir, i).exists() for i in range(manifest["num_shards"]))
    if complete:
        changed = not manifest.get("complete")
        manifest.update(complete=True, num_tokens=total_tokens)
        if count_harvest_massive(out_dir, manifest) or changed:  # reads every shard once if older than the count
            _write_json(out_dir / "manifest.json", manifest)
    return manifest
