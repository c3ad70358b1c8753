"""Stop-at-layer harvest vs a full forward on the same batch; and bfloat16 vs float32.

    python benchmarks/harvest.py --layer 18 --batch 16 --seq 256

Prints JSON: tokens/s of the full forward (LM head included, what a naive harvester runs), of our
stop-at-layer forward, their ratio, and the same for bfloat16 weights.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from steerlab.models.hooks import forward_to_hookpoint, resolve_hookpoint
from steerlab.models.loader import load_model


def tokens_per_s(fn, n_tokens: int, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return n_tokens / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--layer", type=int, default=18)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    result = {
        "model": args.model,
        "layer": args.layer,
        "batch": args.batch,
        "seq": args.seq,
        "threads": torch.get_num_threads(),
    }
    for dtype in ("float32", "bfloat16"):
        lm = load_model(args.model, dtype=dtype)
        hookpoint = resolve_hookpoint(lm.model, args.layer)
        ids = torch.randint(0, lm.config.vocab_size, (args.batch, args.seq), generator=torch.Generator().manual_seed(0))
        n = ids.numel()

        def full():
            with torch.inference_mode():
                lm.model(input_ids=ids, use_cache=False)

        def partial():
            forward_to_hookpoint(lm.model, ids, hookpoint)

        full_tps = tokens_per_s(full, n, args.repeats)
        part_tps = tokens_per_s(partial, n, args.repeats)
        result[dtype] = {
            "full_forward_tokens_per_s": round(full_tps, 1),
            "stop_at_layer_tokens_per_s": round(part_tps, 1),
            "speedup": round(part_tps / full_tps, 3),
        }
    result["bf16_vs_fp32_stop_at_layer"] = round(
        result["bfloat16"]["stop_at_layer_tokens_per_s"] / result["float32"]["stop_at_layer_tokens_per_s"], 3
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
