"""Benchmark: steerlab's TopK SAE trainer vs SAELens's, same data, same settings, same run.

Both trainers see the same activation batches in the same order (TopK, same width, k,
batch size, learning rate and schedule, same number of tokens), on the threads torch is
given. We time each trainer's training loop and then score both SAEs on the same held-out
activations. Prints one JSON object.

    python benchmarks/train_sae.py                       # synthetic d=576 data, ~4-5 min on 2 cores
    python benchmarks/train_sae.py --acts acts.safetensors --tokens 1000000 --batch-size 4096

The defaults (80k tokens in 80 steps of 1024, lr 1e-3) keep the run short enough to repeat,
yet long enough for both SAEs to learn well past their initialization; the trainer's own lr
default (sparsify's 2e-4 / sqrt(width / 16384)) is meant for runs of ~1e5 steps.

``--acts`` takes a .safetensors (first tensor, or the one named ``acts``) or .npy file of
[N, d] float32 activations. The synthetic default is a Gaussian mixture whose component
means are sparse combinations of random unit directions (plus a shared offset and noise),
so there is real sparse structure for an SAE to find.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from steerlab.sae import SAEConfig, TensorActivationSource, TrainConfig, train_sae
from steerlab.sae.metrics import RunningFVU
from steerlab.sae.optim import geometric_median


def synthetic_acts(n: int, d: int, seed: int, n_atoms: int = 4096, active: int = 24) -> torch.Tensor:
    """[n, d] sparse-superposition Gaussian mixture with power-law atom frequencies."""
    g = torch.Generator().manual_seed(seed)
    atoms = torch.nn.functional.normalize(torch.randn(n_atoms, d, generator=g), dim=1)
    freq = 1.0 / torch.arange(1, n_atoms + 1).float() ** 0.6
    offset = torch.randn(d, generator=g) * 0.5
    out = torch.empty(n, d)
    for start in range(0, n, 65536):
        m = min(65536, n - start)
        idx = torch.multinomial(freq, m * active, replacement=True, generator=g).view(m, active)
        coef = torch.rand(m, active, generator=g).mul_(2.0).add_(0.5)
        x = torch.nn.functional.embedding_bag(idx, atoms, per_sample_weights=coef, mode="sum")
        out[start : start + m] = x + offset + 0.05 * torch.randn(m, d, generator=g)
    return out


def load_acts(path: Path) -> torch.Tensor:
    if path.suffix == ".npy":
        return torch.from_numpy(np.load(path)).float()
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    acts = tensors["acts"] if "acts" in tensors else next(iter(tensors.values()))
    return acts.float().reshape(-1, acts.shape[-1])


def holdout_fvu(encode_decode, acts: torch.Tensor, batch: int = 4096) -> float:
    fvu = RunningFVU()
    with torch.no_grad():
        for x in acts.split(batch):
            fvu.update(x, encode_decode(x))
    return fvu.compute()


def run_ours(args, train: torch.Tensor, plan: dict) -> tuple[float, object]:
    cfg = SAEConfig(d_in=train.shape[1], d_sae=args.width, k=args.k)
    tcfg = TrainConfig(
        batch_size=args.batch_size,
        lr=plan["lr"],
        total_tokens=plan["tokens"],
        warmup_steps=plan["warmup_steps"],
        decay="linear",
        decay_fraction=args.decay_fraction,
        dead_tokens_threshold=plan["dead_tokens"],
        holdout_tokens=0,
        checkpoint_every_steps=10**9,
        log_every_steps=10,
        seed=args.seed,
    )
    with tempfile.TemporaryDirectory() as tmp:
        sae = train_sae(cfg, tcfg, TensorActivationSource(train), tmp, resume=False, progress=args.progress)
        records = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    # The training loop's own clock: excludes setup and the checkpoint written at the end.
    return records[-1]["elapsed_s"], sae


def run_saelens(args, train: torch.Tensor, plan: dict) -> tuple[float, object]:
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer

    torch.manual_seed(args.seed)
    sae = TopKTrainingSAE(
        TopKTrainingSAEConfig(d_in=train.shape[1], d_sae=args.width, k=args.k, dtype="float32", device="cpu")
    )
    steps = plan["tokens"] // args.batch_size
    cfg = SAETrainerConfig(
        total_training_samples=steps * args.batch_size,
        train_batch_size_samples=args.batch_size,
        lr=plan["lr"],
        lr_end=plan["lr"],
        lr_scheduler_name="constant",
        lr_warm_up_steps=plan["warmup_steps"],
        lr_decay_steps=round(args.decay_fraction * steps),
        device="cpu",
        dead_feature_window=max(1, plan["dead_tokens"] // args.batch_size),
        feature_sampling_window=10**9,
        logger=LoggingConfig(log_to_wandb=False),
    )
    # The very same batches, in the same order, that our trainer consumed.
    batches = TensorActivationSource(train).iter_batches(args.batch_size, start_token=0, seed=args.seed)
    if args.saelens_bdec_init:  # SAELens 6 starts b_dec at 0; optionally give it our init
        first = next(TensorActivationSource(train).iter_batches(args.batch_size, start_token=0, seed=args.seed))
        with torch.no_grad():
            sae.b_dec.copy_(geometric_median(first))
    trainer = SAETrainer(cfg=cfg, sae=sae, data_provider=batches)
    start = time.perf_counter()
    trainer.fit()
    return time.perf_counter() - start, sae


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--acts", type=Path, help="[N, d] float32 activations (.safetensors or .npy)")
    ap.add_argument("--d", type=int, default=576, help="synthetic data width")
    ap.add_argument("--tokens", type=int, default=81_920, help="training tokens per trainer")
    ap.add_argument("--holdout", type=int, default=16_384, help="held-out tokens for FVU")
    ap.add_argument("--width", type=int, default=None, help="latents (default 16 x d)")
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=1024, help="tokens per step (both trainers)")
    ap.add_argument(
        "--lr", type=float, default=1e-3, help="peak lr (both); 0 = the trainer default 2e-4 / sqrt(width / 16384)"
    )
    ap.add_argument("--decay-fraction", type=float, default=0.2)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-saelens", action="store_true")
    ap.add_argument(
        "--saelens-bdec-init",
        action="store_true",
        help="start SAELens's b_dec at the geometric median of the first batch, as ours does "
        "(SAELens 6 starts it at 0), to separate the init from the rest of the recipe",
    )
    ap.add_argument("--progress", action="store_true", help="show our trainer's progress bar")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    acts = load_acts(args.acts) if args.acts else synthetic_acts(args.tokens + args.holdout, args.d, args.seed)
    # One global scale so E||x||^2 = d for both trainers (SAELens trains on raw inputs).
    acts = acts * math.sqrt(acts.shape[1] / acts[:65536].pow(2).sum(1).mean().item())
    if acts.shape[0] < args.tokens + args.holdout:
        sys.exit(f"need {args.tokens + args.holdout} activations, got {acts.shape[0]}")
    train, held = acts[: args.tokens], acts[args.tokens : args.tokens + args.holdout]
    args.width = args.width or 16 * acts.shape[1]
    steps = args.tokens // args.batch_size
    # --lr 0 means the trainer's own default
    plan = {
        "lr": args.lr or 2e-4 / math.sqrt(args.width / 2**14),
        "tokens": steps * args.batch_size,
        "warmup_steps": min(1000, steps // 20),
        "dead_tokens": max(args.batch_size, steps * args.batch_size // 10),
    }

    ours_s, ours = run_ours(args, train, plan)
    result = {
        "device": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "data": str(args.acts) if args.acts else f"synthetic sparse Gaussian mixture, d={acts.shape[1]}",
        "d_in": acts.shape[1],
        "width": args.width,
        "k": args.k,
        "batch_size": args.batch_size,
        "tokens": plan["tokens"],
        "steps": steps,
        "lr": plan["lr"],
        "holdout_tokens": held.shape[0],
        "ours_tokens_per_s": round(plan["tokens"] / ours_s, 1),
        "ours_train_s": round(ours_s, 2),
        "ours_fvu": round(holdout_fvu(lambda x: ours(x, dense_latents=False).sae_out, held), 5),
    }
    if not args.skip_saelens:
        sl_s, sl = run_saelens(args, train, plan)
        result.update(
            {
                "saelens_tokens_per_s": round(plan["tokens"] / sl_s, 1),
                "saelens_train_s": round(sl_s, 2),
                "saelens_fvu": round(holdout_fvu(lambda x: sl.decode(sl.encode(x)), held), 5),
            }
        )
        result["speedup"] = round(result["ours_tokens_per_s"] / result["saelens_tokens_per_s"], 3)
        result["fvu_gap"] = round(result["ours_fvu"] - result["saelens_fvu"], 5)
        result["saelens_b_dec_init"] = "geometric_median" if args.saelens_bdec_init else "zeros (SAELens default)"
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
