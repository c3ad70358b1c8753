"""Train an SAE on a stream of activations: resumable, logged, and fast on a CPU.

The recipe is EleutherAI sparsify's: FVU loss (+ AuxK for dead latents), Adam with a
width-scaled learning rate, unit-norm decoder rows with the radial gradient removed, b_dec
initialized to the geometric median of the first batch. Every ``checkpoint_every_steps`` the
full training state is written atomically, so a killed run resumes onto exactly the
trajectory it would have followed. When training ends, the SAE's ``feature_scale`` is
measured on a held-back slice of the stream and the SAE is saved to ``out_dir/sae``.

Massive activations (attention sinks past position 0: a residual norm over ``massive_factor`` times the
batch median, ``steerlab.activations.massive``) are left out of every batch before it reaches the SAE: out of
the loss, the input scale, b_dec's initialization, the dead-latent counters, the holdout FVU and
feature_scale. One such token's squared error is ~10,000x an ordinary token's, so a handful of them would
otherwise steer the loss and deflate the logged FVU. ``metrics.jsonl`` counts them per interval
(``massive_tokens``) and the saved SAE's ``cfg.extra`` over the run (``massive_tokens_dropped``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from steerlab.activations.massive import drop_massive, massive_factor
from steerlab.errors import ConflictError, InvalidInputError
from steerlab.sae.base import SAE
from steerlab.sae.checkpoint import (
    TrainerState,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from steerlab.sae.config import SAEConfig
from steerlab.sae.curves import append_metrics, plot_training_curves, truncate_metrics
from steerlab.sae.metrics import RunningFVU
from steerlab.sae.optim import adam, geometric_median, lr_at
from steerlab.sae.registry import create_sae
from steerlab.sae.sources import ActivationSource
from steerlab.sae.storage import SAEFormatError

log = logging.getLogger(__name__)
PLOT_EVERY_S = 60.0  # refresh training_curves.png at checkpoints, at most this often (and at the end)

# Fields that shape the trajectory: a resumed run must agree on all of them.
TRAJECTORY_FIELDS = (
    "lr",
    "batch_size",
    "total_tokens",
    "warmup_steps",
    "decay",
    "decay_fraction",
    "auxk_alpha",
    "dead_tokens_threshold",
    "b_dec_init",
    "holdout_tokens",
    "seed",
    "massive_factor",
)
# A checkpoint written before a field existed trained with this value of it.
TRAJECTORY_DEFAULTS: dict[str, Any] = {"massive_factor": 0.0}


@dataclass
class TrainConfig:
    """How to train (what to train is ``SAEConfig``). None means "derive from the run"."""

    lr: float | None = None
    """Adam learning rate. None: sparsify's 2e-4 / sqrt(d_sae / 16384)."""
    batch_size: int = 4096
    """Tokens per optimizer step."""
    total_tokens: int | None = None
    """Tokens to train on. None: the whole source except the held-back slice."""
    warmup_steps: int | None = None
    """Linear lr warmup from ~0. None: min(1000, 5% of the steps)."""
    decay: str = "linear"
    """lr decay to 0 over the last ``decay_fraction`` of steps: linear, cosine or none."""
    decay_fraction: float = 0.2
    """Share of the run spent decaying the learning rate."""
    auxk_alpha: float = 1 / 32
    """Weight of the AuxK dead-latent loss (topk/batchtopk)."""
    dead_tokens_threshold: int | None = None
    """A latent is dead after this many tokens without firing. None: min(10M, tokens / 10)."""
    b_dec_init: str = "geometric_median"
    """Initial b_dec from the first batch: geometric_median, mean or zeros."""
    holdout_tokens: int = 131_072
    """Tail of the stream kept out of training, for feature_scale (capped at 10% of it)."""
    feature_scale_quantile: float = 0.99
    """feature_scale = this quantile of each latent's nonzero activations on the holdout."""
    checkpoint_every_steps: int = 500
    """Steps between checkpoints (plus one at the end)."""
    keep_checkpoints: int = 2
    """Checkpoints to keep (oldest deleted first)."""
    log_every_steps: int = 10
    """Steps between metrics.jsonl records (averaged over the interval)."""
    seed: int = 0
    """Seeds the initialization and the data order."""
    device: str = "cpu"
    """Torch device to train on."""
    compute_dtype: str = "float32"
    """Dtype of the forward and backward (bfloat16: autocast, the weights and the optimizer stay float32)."""
    massive_factor: float | None = None
    """Leave out tokens whose norm is over this many times their batch's median (attention sinks); 0 keeps every
    token. None: ``STEERLAB_MASSIVE_FACTOR`` (10)."""

    def __post_init__(self) -> None:
        if self.decay not in ("linear", "cosine", "none"):
            raise InvalidInputError(f"unknown {self.decay!r}", field="decay", allowed="linear, cosine, none")
        if self.b_dec_init not in ("geometric_median", "mean", "zeros"):
            raise InvalidInputError(
                f"unknown {self.b_dec_init!r}", field="b_dec_init", allowed="geometric_median, mean, zeros"
            )
        if not 0.0 <= self.decay_fraction <= 1.0:
            raise InvalidInputError(f"must be in [0, 1], got {self.decay_fraction}", field="decay_fraction")
        from steerlab.models.loader import check_dtype_on, parse_device, parse_dtype

        if self.compute_dtype not in ("float32", "bfloat16"):
            raise InvalidInputError(f"unknown {self.compute_dtype!r}", field="dtype", allowed="float32, bfloat16")
        check_dtype_on(parse_dtype(self.compute_dtype), parse_device(self.device))
        if self.massive_factor is not None and not self.massive_factor >= 0:
            raise InvalidInputError(
                f"must be >= 0 (0 keeps every token), got {self.massive_factor}", field="massive_factor"
            )
        for name in ("batch_size", "checkpoint_every_steps", "log_every_steps", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"must be >= 1, got {getattr(self, name)}", field=name)


class SAETrainer:
    """One training run: ``SAETrainer(...).fit()`` (see ``train_sae``)."""

    def __init__(self, cfg: SAEConfig, train_cfg: TrainConfig, source: ActivationSource, out_dir: str | Path) -> None:
        if source.d_in != cfg.d_in:
            raise InvalidInputError(f"the SAE expects {cfg.d_in}, the activations have {source.d_in}", field="d_in")
        # A private copy: the run records provenance in cfg.extra without touching the caller's.
        self.cfg = dataclasses.replace(cfg, extra=dict(cfg.extra))
        self.train_cfg, self.source, self.out_dir = train_cfg, source, Path(out_dir)
        self.plan = self._plan()
        self.metrics_path = self.out_dir / "metrics.jsonl"
        self.curves_path = self.out_dir / "training_curves.png"

    def _plan(self) -> dict[str, Any]:
        """Resolve every None in TrainConfig into the number this run will use."""
        t, n = self.train_cfg, self.source.num_tokens
        holdout = min(t.holdout_tokens, n // 10)
        available = n - holdout
        total = available if t.total_tokens is None else t.total_tokens
        if total > available:
            raise InvalidInputError(
                f"{total} requested but the source has {available} after holding back "
                f"{holdout} (num_tokens={n}); add data, epochs, or lower total_tokens",
                field="total_tokens",
            )
        steps = total // t.batch_size
        if steps < 1:
            raise InvalidInputError(f"{total} is less than one batch of {t.batch_size}", field="total_tokens")
        return {
            **dataclasses.asdict(t),
            "lr": t.lr if t.lr is not None else 2e-4 / math.sqrt(self.cfg.d_sae / 2**14),
            "total_tokens": steps * t.batch_size,
            "total_steps": steps,
            "warmup_steps": t.warmup_steps if t.warmup_steps is not None else min(1000, steps // 20),
            "dead_tokens_threshold": t.dead_tokens_threshold
            if t.dead_tokens_threshold is not None
            else min(10_000_000, steps * t.batch_size // 10),
            "holdout_tokens": holdout,
            "massive_factor": massive_factor(t.massive_factor),
        }

    # ------------------------------------------------------------------ setup
    def _start(self, resume: bool) -> tuple[SAE, torch.optim.Optimizer, TrainerState, torch.Generator]:
        p = self.plan
        generator = torch.Generator().manual_seed(p["seed"])
        sae = create_sae(self.cfg, device=p["device"], generator=generator)
        optimizer = adam(sae, p["lr"])
        state = TrainerState(tokens_since_fired=torch.zeros(self.cfg.d_sae, dtype=torch.int64, device=p["device"]))
        checkpoints = list_checkpoints(self.out_dir)
        if not resume:
            shutil.rmtree(self.out_dir / "checkpoints", ignore_errors=True)
            for path in (self.metrics_path, self.curves_path):
                path.unlink(missing_ok=True)
            checkpoints = []
        for path in reversed(checkpoints):
            try:
                state, saved_plan = load_checkpoint(path, sae, optimizer)
            except (SAEFormatError, KeyError) as exc:
                log.warning("skipping unreadable checkpoint %s: %s", path, exc)
                # the failed load may have written some tensors: start the next try clean
                generator = torch.Generator().manual_seed(p["seed"])
                sae = create_sae(self.cfg, device=p["device"], generator=generator)
                optimizer = adam(sae, p["lr"])
                continue
            diff = [k for k in TRAJECTORY_FIELDS if saved_plan.get(k, TRAJECTORY_DEFAULTS.get(k)) != p[k]]
            if diff:
                raise ConflictError(
                    f"{path}: checkpoint was trained with different {', '.join(diff)}; "
                    "use the same TrainConfig, a new out_dir, or resume=False"
                )
            if state.rng_state is not None:
                generator.set_state(state.rng_state)
            truncate_metrics(self.metrics_path, state.step)
            log.info("resuming from %s (step %d, %d tokens)", path, state.step, state.tokens)
            break
        return sae, optimizer, state, generator

    @torch.no_grad()
    def _init_from_first_batch(self, sae: SAE, x: Tensor, state: TrainerState) -> None:
        if self.cfg.normalize_input:
            state.input_scale = float(math.sqrt(self.cfg.d_in / x.float().pow(2).sum(dim=1).mean().item()))
        x = x * state.input_scale
        init = self.plan["b_dec_init"]
        if init == "geometric_median":
            sae.b_dec.copy_(geometric_median(x))
        elif init == "mean":
            sae.b_dec.copy_(x.mean(dim=0))

    # ------------------------------------------------------------------ train
    def fit(self, resume: bool = True, progress: bool = True) -> SAE:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        sae, optimizer, state, generator = self._start(resume)
        p = self.plan
        if state.step < p["total_steps"]:
            self._train(sae, optimizer, state, generator, progress)
        return self._finish(sae, state)

    def _train(
        self,
        sae: SAE,
        optimizer: torch.optim.Optimizer,
        state: TrainerState,
        generator: torch.Generator,
        progress: bool,
    ) -> None:
        p, device = self.plan, self.plan["device"]
        batch_size, total_steps = p["batch_size"], p["total_steps"]
        schedule = (p["total_steps"], p["lr"], p["warmup_steps"], p["decay"], p["decay_fraction"])
        sums: dict[str, Tensor] = {}
        interval_steps, interval_start = 0, time.perf_counter()
        last_plot = interval_start
        bar = tqdm(
            total=p["total_tokens"],
            initial=state.tokens,
            unit="tok",
            unit_scale=True,
            desc=f"train {self.cfg.architecture} SAE",
            disable=not progress,
            dynamic_ncols=True,
        )
        sae.train()
        compute = p.get("compute_dtype", "float32")
        autocast = torch.autocast(torch.device(device).type, torch.bfloat16, enabled=compute == "bfloat16")
        batches = self.source.iter_batches(batch_size, start_token=state.tokens, seed=p["seed"])
        massive = p["massive_factor"]
        interval_massive = 0
        for x in batches:
            if state.step >= total_steps:
                break
            x, dropped = drop_massive(x.to(device, torch.float32, non_blocking=True), massive)
            state.massive_tokens += dropped
            interval_massive += dropped
            if state.step == 0:
                self._init_from_first_batch(sae, x, state)
            if state.input_scale != 1.0:
                x = x * state.input_scale
            lr = lr_at(state.step, *schedule)
            for group in optimizer.param_groups:
                group["lr"] = lr
            dead = state.tokens_since_fired > p["dead_tokens_threshold"]
            with autocast:
                out = sae(x, dead_mask=dead, dense_latents=False)
                loss = out.fvu + p["auxk_alpha"] * out.aux_loss + out.sparsity_loss
            loss.backward()
            sae.remove_gradient_parallel_to_decoder_directions()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            sae.constrain_parameters()
            state.tokens_since_fired += x.shape[0]
            state.tokens_since_fired[out.fired] = 0
            state.step += 1
            state.tokens += batch_size
            for key, value in (
                ("loss", loss),
                ("fvu", out.fvu),
                ("l0", out.l0),
                ("auxk", out.aux_loss),
                ("sparsity_loss", out.sparsity_loss),
                ("dead_fraction", dead.float().mean()),
            ):
                sums[key] = sums.get(key, 0.0) + value.detach().float()
            interval_steps += 1
            bar.update(batch_size)
            last = state.step == total_steps
            checkpoint_now = state.step % p["checkpoint_every_steps"] == 0 or last
            if state.step % p["log_every_steps"] == 0 or checkpoint_now:
                elapsed = time.perf_counter() - interval_start
                state.elapsed_s += elapsed
                record = {
                    "step": state.step,
                    "tokens": state.tokens,
                    "lr": lr,
                    **{k: round(float(v) / interval_steps, 6) for k, v in sums.items()},
                    "massive_tokens": interval_massive,
                    "tokens_per_s": round(interval_steps * batch_size / max(elapsed, 1e-9), 1),
                    "elapsed_s": round(state.elapsed_s, 2),
                }
                append_metrics(self.metrics_path, record)
                bar.set_postfix(
                    fvu=f"{record['fvu']:.4f}",
                    l0=f"{record['l0']:.1f}",
                    dead=f"{record['dead_fraction']:.3f}",
                    refresh=False,
                )
                sums, interval_steps, interval_massive = {}, 0, 0
            if checkpoint_now:
                state.rng_state = generator.get_state()
                save_checkpoint(self.out_dir, sae, optimizer, state, p, keep=p["keep_checkpoints"])
                if time.perf_counter() - last_plot >= PLOT_EVERY_S:  # a plot costs ~0.5 s
                    plot_training_curves(self.metrics_path, self.curves_path)
                    last_plot = time.perf_counter()
            if state.step % p["log_every_steps"] == 0 or checkpoint_now:
                interval_start = time.perf_counter()
        bar.close()
        if state.step < total_steps:
            raise InvalidInputError(
                f"the activation source ended after {state.tokens} tokens; the run needs {p['total_tokens']}",
                field="total_tokens",
            )

    # ----------------------------------------------------------------- finish
    @torch.no_grad()
    def _finish(self, sae: SAE, state: TrainerState) -> SAE:
        """Fold the input scale, measure feature_scale and holdout FVU, save ``out_dir/sae``."""
        p = self.plan
        sae.eval()
        if state.input_scale != 1.0:
            sae.fold_input_scale(state.input_scale)
        start = self.source.num_tokens - p["holdout_tokens"]
        eval_batch = min(p["batch_size"], p["holdout_tokens"])

        holdout_massive = 0

        def holdout() -> Iterator[Tensor]:
            nonlocal holdout_massive
            holdout_massive = 0
            for x in self.source.iter_batches(eval_batch, start_token=start, seed=p["seed"]):
                x, dropped = drop_massive(x.to(p["device"], torch.float32), p["massive_factor"])
                holdout_massive += dropped
                yield x

        if p["holdout_tokens"] >= eval_batch > 0:
            sae.calibrate(holdout())
            sae.compute_feature_scale(holdout(), quantile=p["feature_scale_quantile"])
            fvu = RunningFVU()
            l0_sum, seen = 0.0, 0
            for x in holdout():
                out = sae(x, dense_latents=False)
                fvu.update(x, out.sae_out)
                l0_sum += float(out.l0) * x.shape[0]
                seen += x.shape[0]
                if seen >= 16_384:  # enough for a stable estimate; the evals do the full job
                    break
            self.cfg.extra["holdout_fvu"] = round(fvu.compute(), 6) if seen >= 2 else None
            self.cfg.extra["holdout_l0"] = round(l0_sum / max(seen, 1), 3)
            self.cfg.extra["holdout_massive_tokens"] = holdout_massive
        self.cfg.extra["trained_tokens"] = state.tokens
        self.cfg.extra["massive_factor"] = p["massive_factor"]
        self.cfg.extra["massive_tokens_dropped"] = state.massive_tokens
        sae.save(self.out_dir / "sae")
        plot_training_curves(self.metrics_path, self.curves_path)
        return sae


def train_sae(
    cfg: SAEConfig,
    train_cfg: TrainConfig,
    activations: ActivationSource,
    out_dir: str | Path,
    resume: bool = True,
    progress: bool = True,
) -> SAE:
    """Train an SAE of ``cfg`` on ``activations``; writes checkpoints, ``metrics.jsonl``,
    ``training_curves.png`` and the final ``sae/`` folder under ``out_dir``. With ``resume``
    an interrupted run in ``out_dir`` continues exactly where its last checkpoint left off."""
    return SAETrainer(cfg, train_cfg, activations, out_dir).fit(resume=resume, progress=progress)
