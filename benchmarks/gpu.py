"""The GPU figures of issue 20 in one short run, on any CUDA machine; names the GPU it ran on.

    python benchmarks/gpu.py --out docs/bench_gpu.json            # default model + its SAE, bf16, ~2-3 min
    python benchmarks/gpu.py --dtype float32 --tokens 256

Measures, on the same GPU in the same run:

- decode tokens/s through the engine (``Lab``): batch 1 and 32 concurrent streams, unsteered and steered
  (the bundled SAE's feature 5081 nudged at +2 on every stream, each stream its own editor);
- HF ``generate`` (greedy, KV cache, SDPA) at batch 1 and 32 for the same token counts: the baseline;
- the weight-read floor: one decode step reads every weight once, so batch-1 decode can go no faster than
  ``memory bandwidth / weight bytes`` tokens/s. Bandwidth is measured here (a device-to-device copy of
  1 GiB: bytes read + written per second) and, where torch reports the memory clock and bus width,
  also given as the data-sheet peak; each decode figure is reported as a fraction of the measured floor;
- harvest tokens/s (``harvest_shard``: forward to the SAE's hookpoint, activations back to host memory);
- SAE training tokens/s (``train_sae``, TopK, on activations already on the GPU's host side).

Without CUDA it exits at once with one line (``--device cpu`` runs the same code on the CPU, for the
tests; its figures mean nothing for a GPU).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

GIB = 1 << 30


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of every parameter and buffer a decode step reads (tied weights counted once)."""
    seen: set[int] = set()
    total = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.data_ptr() in seen or not tensor.is_floating_point():
            continue
        seen.add(tensor.data_ptr())
        total += tensor.numel() * tensor.element_size()
    return total


def peak_bandwidth(props: object) -> float | None:
    """Data-sheet bandwidth in bytes/s from the memory clock (kHz) and bus width (bits), double data rate;
    None when torch does not report them."""
    clock_khz = getattr(props, "memory_clock_rate", None)
    bus_bits = getattr(props, "memory_bus_width", None)
    if not clock_khz or not bus_bits:
        return None
    return 2.0 * clock_khz * 1e3 * bus_bits / 8


def floor_tokens_per_s(bandwidth: float, weights: int) -> float:
    """Batch-1 decode ceiling: one full read of the weights per token."""
    return bandwidth / weights


def measured_bandwidth(device: torch.device, size: int = GIB, repeats: int = 5) -> float:
    """Bytes/s of a device-to-device copy (each byte read once and written once)."""
    src = torch.empty(size // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        dst.copy_(src)
    synchronize(device)
    return 2 * size * repeats / (time.perf_counter() - started)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def engine_decode(lab, streams: int, tokens: int, variant) -> float:
    """Generated tokens/s of ``streams`` concurrent requests of ``tokens`` each through the engine."""
    from steerlab.engine.lab import sampling_params

    params = sampling_params(max_completion_tokens=tokens, temperature=0)
    messages = [{"role": "user", "content": "Tell me a long story about the sea."}]
    _, editor = lab.steering_for(variant)
    lab.chat(messages, params, editor).text()  # warm-up (kernels, allocator)
    started = time.perf_counter()
    handles = [lab.chat(messages, params, lab.steering_for(variant)[1]) for _ in range(streams)]
    for handle in handles:
        handle.text()
    elapsed = time.perf_counter() - started
    return sum(h.completion_tokens for h in handles) / elapsed


def hf_generate(lab, streams: int, tokens: int) -> float:
    """Tokens/s of ``model.generate`` (greedy, its KV cache) on ``streams`` copies of the engine runs' prompt."""
    lm = lab.lm
    ids = lab.prompt_ids([{"role": "user", "content": "Tell me a long story about the sea."}])
    batch = torch.tensor([ids] * streams, device=lm.device)
    kwargs = {"max_new_tokens": tokens, "min_new_tokens": tokens, "do_sample": False, "pad_token_id": 0}
    lm.model.generate(batch, attention_mask=torch.ones_like(batch), **kwargs)  # warm-up
    synchronize(lm.device)
    started = time.perf_counter()
    out = lm.model.generate(batch, attention_mask=torch.ones_like(batch), **kwargs)
    synchronize(lm.device)
    return (out.shape[1] - batch.shape[1]) * streams / (time.perf_counter() - started)


def harvest_rate(lm, hookpoint: str, sequences: int, length: int) -> float:
    from steerlab.activations.harvest import HarvestConfig, harvest_shard

    g = torch.Generator().manual_seed(0)
    vocab = lm.model.config.vocab_size
    seqs = torch.randint(4, vocab, (sequences, length), generator=g).tolist()
    cfg = HarvestConfig(layer=hookpoint, batch_size=32, store_dtype="bfloat16")
    harvest_shard(lm, hookpoint, seqs[:32], 0, cfg)  # warm-up
    synchronize(lm.device)
    started = time.perf_counter()
    out = harvest_shard(lm, hookpoint, seqs, 0, cfg)
    synchronize(lm.device)
    return len(out["acts"]) / (time.perf_counter() - started)


def sae_training_rate(d_in: int, device: str, dtype: str, tokens: int, batch_size: int) -> float:
    from steerlab.sae import SAEConfig, TensorActivationSource, TrainConfig, train_sae

    g = torch.Generator().manual_seed(0)
    acts = torch.randn(tokens + tokens // 8, d_in, generator=g)
    cfg = SAEConfig(d_in=d_in, d_sae=16 * d_in, architecture="topk", k=64)
    train = TrainConfig(
        total_tokens=tokens,
        batch_size=batch_size,
        holdout_tokens=tokens // 8,
        device=device,
        compute_dtype=dtype if dtype in ("float32", "bfloat16") else "float32",
        checkpoint_every_steps=1 << 30,
        log_every_steps=max(1, tokens // batch_size // 4),
    )
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        train_sae(cfg, train, TensorActivationSource(acts), out, resume=False, progress=False)
        records = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    wall = time.perf_counter() - started
    loop_rates = [r["tokens_per_s"] for r in records[1:]] or [r["tokens_per_s"] for r in records]
    return max(sum(loop_rates) / len(loop_rates), tokens / wall)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--sae", default=None, help="SAE folder (default: the model's bundled SAE).")
    ap.add_argument("--device", default="cuda", help="cuda or cuda:N (cpu: only for the tests).")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--tokens", type=int, default=128, help="Tokens decoded per stream.")
    ap.add_argument("--streams", type=int, default=32)
    ap.add_argument("--feature", type=int, default=5081, help="Feature nudged in the steered runs.")
    ap.add_argument("--harvest-sequences", type=int, default=256)
    ap.add_argument("--train-tokens", type=int, default=1 << 20)
    ap.add_argument("--bandwidth-bytes", type=int, default=GIB)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu.py: no CUDA GPU visible to torch here; run it on a CUDA machine")

    from steerlab.engine.lab import Lab
    from steerlab.models.loader import load_model
    from steerlab.sae.bundled import load_sae_for
    from steerlab.steering.variant import Variant

    lm = load_model(args.model, dtype=args.dtype, device=str(device))
    sae = load_sae_for(lm, args.sae)
    lab = Lab(lm, sae, max_batch=max(32, args.streams))
    variant = Variant(lm.name)
    variant.set(variant.feature(args.feature % sae.cfg.d_sae), 0.6)
    try:
        props = torch.cuda.get_device_properties(device) if device.type == "cuda" else None
        bandwidth = measured_bandwidth(device, args.bandwidth_bytes)
        weights = weight_bytes(lm.model)
        floor = floor_tokens_per_s(bandwidth, weights)
        peak = peak_bandwidth(props) if props is not None else None
        decode = {
            "engine_b1_unsteered": engine_decode(lab, 1, args.tokens, None),
            "engine_b1_steered": engine_decode(lab, 1, args.tokens, variant),
            f"engine_b{args.streams}_unsteered": engine_decode(lab, args.streams, args.tokens, None),
            f"engine_b{args.streams}_steered": engine_decode(lab, args.streams, args.tokens, variant),
            "hf_generate_b1": hf_generate(lab, 1, args.tokens),
            f"hf_generate_b{args.streams}": hf_generate(lab, args.streams, args.tokens),
        }
        result = {
            "gpu": torch.cuda.get_device_name(device) if props is not None else f"none ({device})",
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "model": lm.name,
            "dtype": args.dtype,
            "tokens_per_stream": args.tokens,
            "weight_bytes": weights,
            "bandwidth_measured_gb_s": round(bandwidth / 1e9, 1),
            "bandwidth_peak_gb_s": round(peak / 1e9, 1) if peak else None,
            "weight_read_floor_tok_s": round(floor, 1),
            "decode_tok_s": {k: round(v, 1) for k, v in decode.items()},
            "b1_steered_fraction_of_floor": round(decode["engine_b1_steered"] / floor, 3),
            "b1_unsteered_fraction_of_floor": round(decode["engine_b1_unsteered"] / floor, 3),
            "harvest_tok_s": round(harvest_rate(lm, sae.cfg.hookpoint, args.harvest_sequences, 256), 1),
            "sae_training_tok_s": round(
                sae_training_rate(lm.d_model, str(device), args.dtype, args.train_tokens, 4096), 1
            ),
        }
    finally:
        lab.close()
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
