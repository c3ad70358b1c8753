"""Everything a build accumulates while scanning, and its checkpoint on disk.

The state is a set of fixed-size tensors (stats, example slots, context pool, co-firing tables)
updated by pure functions of each batch, so saving it after batch ``n`` and continuing from batch
``n + 1`` gives bit-for-bit the result of a run that never stopped. The checkpoint is one
safetensors file written to a temp name and renamed, with the run's identity in its metadata so a
checkpoint of another SAE, corpus or configuration is refused instead of silently mixed in.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from steerlab.errors import ConflictError, InvalidInputError
from steerlab.features.batch_codes import BatchCodes, uniform_priority
from steerlab.features.cofiring import CofiringCounter
from steerlab.features.examples_pool import ContextPool
from steerlab.features.examples_slots import SlotTable
from steerlab.features.stats import StatsAccumulator
from steerlab.tensor_files import save_safetensors

CHECKPOINT = "state.safetensors"


@dataclass
class BuildConfig:
    """How much the build keeps per feature. Defaults keep a 9k-latent database around 30 MB."""

    top_examples: int = 12
    """Strongest contexts kept per feature (at most one per sequence)."""
    sample_size: int = 20
    """Uniform sample of firing tokens per feature, from which the quantile examples are drawn."""
    quantile_buckets: int = 5
    """Quantile examples come from this many equal-count buckets of the sample (0.1, 0.3, ... 0.9)."""
    per_bucket: int = 2
    nonactivating: int = 4
    """Random contexts per feature in which it never fires."""
    pool_size: int = 64
    """Shared random windows the non-activating examples are chosen from."""
    window: int = 40
    """Tokens per example context."""
    window_after: int = 8
    """Tokens after the activating one (the rest come before it)."""
    hist_bins: int = 40
    calibrate: bool = False
    """Measure histogram ranges on the first ``calibrate_tokens`` even if the SAE has a feature_scale."""
    calibrate_tokens: int = 65_536
    cofiring_sample: int = 16
    """Co-firing is estimated on the tokens entering the first this-many places of the sample."""
    cofiring_slots: int = 32
    """Candidate partners tracked per feature (a heavy-hitters table); the top ``cofiring_top`` are stored."""
    cofiring_top: int = 10
    logit_top: int = 10
    batch_tokens: int = 4096
    checkpoint_tokens: int = 1_048_576
    """Save the state every this many tokens (and at the end of the scan)."""

    def __post_init__(self) -> None:
        for name in (
            "top_examples",
            "sample_size",
            "window",
            "hist_bins",
            "batch_tokens",
            "checkpoint_tokens",
            "quantile_buckets",
        ):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"must be >= 1, got {getattr(self, name)}", field=name)
        if not 1 <= self.cofiring_sample <= self.sample_size:
            raise InvalidInputError(
                f"must be in 1..sample_size = 1..{self.sample_size}, got {self.cofiring_sample}",
                field="cofiring_sample",
            )
        if not 0 <= self.window_after < self.window:
            raise InvalidInputError(
                f"must be in 0..window-1 = 0..{self.window - 1}, got {self.window_after}", field="window_after"
            )


class FeatureAccumulator:
    """The streaming state of a build; ``update`` folds in one batch of codes."""

    def __init__(self, d_sae: int, hist_hi: torch.Tensor, cfg: BuildConfig):
        self.cfg = cfg
        self.stats = StatsAccumulator(hist_hi, bins=cfg.hist_bins)
        self.top = SlotTable(d_sae, cfg.top_examples, cfg.window, cfg.window_after)
        self.sample = SlotTable(d_sae, cfg.sample_size, cfg.window, cfg.window_after)
        self.pool = ContextPool(d_sae, cfg.pool_size, cfg.window)
        self.cofiring = CofiringCounter(d_sae, cfg.cofiring_slots)
        self.batches_done = 0

    @property
    def tokens_done(self) -> int:
        return int(self.stats.tokens)

    def update(self, codes: BatchCodes) -> None:
        n = len(codes.batch)
        self.stats.update(codes.values, codes.cols, n)
        every = torch.arange(codes.values.numel())
        self.top.offer(codes, every, codes.values.double(), one_per_sequence=True)
        rows = codes.rows
        priority = uniform_priority(codes.seq_of_row[rows], codes.batch.pos[rows], codes.cols)
        owners, rows, slot = self.sample.offer(codes, every, priority, one_per_sequence=False)
        first = slot < self.cfg.cofiring_sample  # = entered the top-cofiring_sample priorities
        self.cofiring.update(codes, owners[first], rows[first], self.stats.fire_count, self.cfg.cofiring_sample)
        self.pool.offer(codes)
        self.batches_done += 1

    def _parts(self) -> dict:
        return {
            "stats": self.stats,
            "top": self.top,
            "sample": self.sample,
            "pool": self.pool,
            "cofiring": self.cofiring,
        }

    def save(self, folder: Path, identity: dict) -> None:
        """Write the checkpoint atomically (temp file + rename)."""
        folder.mkdir(parents=True, exist_ok=True)
        self.cofiring.flush()
        tensors = {
            f"{part}.{name}": t.contiguous()
            for part, obj in self._parts().items()
            for name, t in obj.state_dict().items()
        }
        meta = {"identity": json.dumps(identity, sort_keys=True), "batches_done": str(self.batches_done)}
        save_safetensors(tensors, folder / CHECKPOINT, metadata=meta)

    def load(self, folder: Path, identity: dict) -> bool:
        """Restore from ``folder``'s checkpoint if there is one; False if there is none."""
        path = folder / CHECKPOINT
        if not path.is_file():
            return False
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        except Exception as err:  # safetensors raises several types for a damaged file
            raise InvalidInputError(
                f"{path}: unreadable build checkpoint ({str(err).splitlines()[0]}); delete it or pass --no-resume"
            ) from None
        stored = json.loads(meta.get("identity", "{}"))
        differs = sorted(k for k in set(stored) | set(identity) if stored.get(k) != identity.get(k))
        if differs:
            raise ConflictError(
                f"{path} is the checkpoint of a different build (differs in: {', '.join(differs)}); "
                "pass --no-resume to start over"
            )
        for part, obj in self._parts().items():
            obj.load_state_dict({k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(part + ".")})
        self.batches_done = int(meta["batches_done"])
        return True


def checkpoint_identity(sae_id: str, source_fingerprint: dict, cfg: BuildConfig) -> dict:
    """What must match for a checkpoint to be continued (the token budget may grow, so not max_tokens)."""
    fingerprint = {k: v for k, v in source_fingerprint.items() if k != "max_tokens"}
    return {
        "sae_id": sae_id,
        "source": json.dumps(fingerprint, sort_keys=True),
        "config": json.dumps({k: v for k, v in asdict(cfg).items() if k != "checkpoint_tokens"}, sort_keys=True),
    }
