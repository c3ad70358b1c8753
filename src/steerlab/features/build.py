"""Build the feature database of an SAE: scan activations once, then write every feature's record.

The scan streams batches of whole sequences through the SAE's sparse encoder and folds them into a
fixed-size state (``build_state``): exact counts, max and mean; a histogram per feature; the top
contexts and a uniform sample of contexts, each with its window of activations; a shared pool of
random windows for non-activating examples; co-firing partners. Work per batch is proportional to
the active latents, memory to ``d_sae`` (never tokens, never ``d_sae^2``). The state is checkpointed
every ``checkpoint_tokens`` and at the end of the scan, so a killed build resumes where it stopped.

Massive activations (attention sinks past position 0, ``activations/massive.py``: a residual norm over
``STEERLAB_MASSIVE_FACTOR`` times the batch median) fire no feature here: with ~100x the usual norm they would
be the strongest example of every feature they touch. They stay in the windows as context, with activation 0.

Writing happens in one transaction: a build that fails halfway leaves the database as it was.
Labels already stored for the SAE survive a rebuild (same SAE, same UUIDs, same meaning).
"""

from __future__ import annotations

import itertools
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from steerlab.activations.massive import drop_massive, massive_mask
from steerlab.errors import InvalidInputError
from steerlab.features.batch_codes import BatchCodes, TokenBatch
from steerlab.features.build_records import feature_records, needed_sequences
from steerlab.features.build_state import BuildConfig, FeatureAccumulator, checkpoint_identity
from steerlab.features.identity import sae_info
from steerlab.features.logit_effects import logit_effects
from steerlab.features.stats import histogram_range

DECODER_VECTORS = "decoder"  # the name search.py reads for neighbor queries
WRITE_CHUNK = 256


@dataclass
class BuildResult:
    sae_id: str
    db_path: str
    tokens: int
    features: int
    dead_features: int
    scan_seconds: float
    write_seconds: float
    resumed_from_tokens: int

    @property
    def tokens_per_second(self) -> float:
        return (self.tokens - self.resumed_from_tokens) / max(self.scan_seconds, 1e-9)


@torch.no_grad()
def encode_batch(sae, batch: TokenBatch) -> BatchCodes:
    """Sparse codes of a batch (TopK/BatchTopK never build the dense ``[tokens, d_sae]`` codes); massive tokens
    get none (BatchCodes keeps values > 0)."""
    codes = sae.sparse_encode(batch.acts.to(sae.W_enc.device, sae.W_enc.dtype))
    values, rows = codes.values.detach().float().cpu(), codes.rows.cpu()
    massive = massive_mask(batch.acts).cpu()
    if bool(massive.any()):
        values = values.masked_fill(massive[rows], 0.0)
    return BatchCodes(batch, values, rows, codes.cols.cpu(), sae.cfg.d_sae)


def check_compatible(sae, source) -> None:
    """Refuse activations of another width or (for harvests) another hookpoint, naming both."""
    if source.d_in != sae.cfg.d_in:
        raise InvalidInputError(
            f"d_in mismatch: the SAE reads d_in={sae.cfg.d_in} but the activations have "
            f"d_model={source.d_in} ({source.model_name}); use an SAE trained on this model"
        )
    hookpoint = getattr(source, "hookpoint", None)
    if hookpoint and sae.cfg.hookpoint and hookpoint != sae.cfg.hookpoint:
        raise InvalidInputError(
            f"hookpoint mismatch: the SAE reads {sae.cfg.hookpoint} but the activations were "
            f"recorded at {hookpoint}; harvest at the SAE's hookpoint"
        )


def build_feature_db(
    sae,
    source,
    store,
    *,
    unembedding: tuple[torch.Tensor, torch.Tensor | None],
    vocab: list[str],
    work_dir: str | Path,
    cfg: BuildConfig | None = None,
    resume: bool = True,
    progress: bool = True,
    sae_path: str | Path | None = None,
    on_batch: Callable[[FeatureAccumulator], None] | None = None,
    encoded: Callable[[int], Iterable[BatchCodes]] | None = None,
) -> BuildResult:
    """Scan ``source`` through ``sae`` and write every feature into ``store``.

        ``unembedding`` is ``(W_U [vocab, d_model], final-norm weight or None)`` and ``vocab`` the display
        string of every token id (see ``logit_effects``). ``work_dir`` holds the checkpoint; it is removed
        after a successful build. ``on_batch`` is called after every batch (progress hooks, tests). ``encoded(n)``
    yields the codes of the batches after the first ``n``, in order (default: encode ``source.batches(skip=n)``
    here; ``cluster/jobs.py`` encodes them on Ray): the fold is the same either way."""
    from tqdm import tqdm

    cfg = cfg or BuildConfig()
    check_compatible(sae, source)
    w_u, norm_weight = unembedding
    if len(vocab) < w_u.shape[0]:
        raise ValueError(f"vocab has {len(vocab)} entries but the unembedding has {w_u.shape[0]} rows")
    info = sae_info(sae, sae_path)
    work_dir = Path(work_dir)
    identity = checkpoint_identity(info.sae_id, source.fingerprint(), cfg)
    acc = FeatureAccumulator(sae.cfg.d_sae, torch.ones(sae.cfg.d_sae), cfg)
    if not (resume and acc.load(work_dir, identity)):
        shutil.rmtree(work_dir, ignore_errors=True)
        calibration = (
            drop_massive(b.acts)[0] for b in itertools.islice(source.batches(), _batches_for(cfg.calibrate_tokens, cfg))
        )
        acc = FeatureAccumulator(
            sae.cfg.d_sae, histogram_range(sae, (b.to(sae.W_enc.device) for b in calibration), cfg.calibrate), cfg
        )
    resumed_from = acc.tokens_done

    started = time.perf_counter()
    last_saved = acc.tokens_done
    with tqdm(
        total=source.total_tokens,
        initial=acc.tokens_done,
        unit="tok",
        unit_scale=True,
        desc="features scan",
        disable=not progress,
        dynamic_ncols=True,
    ) as bar:
        done = acc.batches_done
        for codes in encoded(done) if encoded else (encode_batch(sae, b) for b in source.batches(skip=done)):
            acc.update(codes)
            bar.update(len(codes.batch))
            if acc.tokens_done - last_saved >= cfg.checkpoint_tokens:
                acc.save(work_dir, identity)
                last_saved = acc.tokens_done
            if on_batch is not None:
                on_batch(acc)
    if acc.tokens_done == 0:
        raise InvalidInputError("no tokens to scan: the corpus or harvest is empty (or --max-tokens is 0)")
    acc.save(work_dir, identity)  # a failure while writing below does not cost the scan
    scan_seconds = time.perf_counter() - started

    started = time.perf_counter()
    d_sae = sae.cfg.d_sae
    effects = logit_effects(sae.W_dec.detach(), w_u, norm_weight, vocab, top=cfg.logit_top, chunk=WRITE_CHUNK)
    with (
        store.transaction(),
        tqdm(total=d_sae, unit="feat", desc="features write", disable=not progress, dynamic_ncols=True) as bar,
    ):
        store.add_sae(info)
        store.set_vocab(info.sae_id, vocab)
        stored: set[int] = set()
        for start in range(0, d_sae, WRITE_CHUNK):
            stop = min(start + WRITE_CHUNK, d_sae)
            chunk_effects = list(itertools.islice(effects, stop - start))
            needed = needed_sequences(acc, start, stop)
            store.put_sequences(info.sae_id, source.sequence_tokens(needed - stored))  # examples point into them
            stored |= needed
            tokens = {s: store.sequence_tokens(info.sae_id, s) for s in needed}
            store.put_features(
                feature_records(acc, info.sae_id, start, stop, tokens, vocab, chunk_effects), replace_examples=True
            )
            bar.update(stop - start)
    store.save_vectors(info.sae_id, DECODER_VECTORS, sae.W_dec.detach().cpu().half())
    shutil.rmtree(work_dir, ignore_errors=True)
    return BuildResult(
        sae_id=info.sae_id,
        db_path=str(store.path),
        tokens=acc.tokens_done,
        features=d_sae,
        dead_features=int((acc.stats.fire_count == 0).sum()),
        scan_seconds=scan_seconds,
        write_seconds=time.perf_counter() - started,
        resumed_from_tokens=resumed_from,
    )


def _batches_for(tokens: int, cfg: BuildConfig) -> int:
    return max(1, -(-tokens // cfg.batch_tokens))
