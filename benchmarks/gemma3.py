"""Gemma 3 270M figures in one model load: harvest tokens/s (stop-at-layer forward) and steered vs unsteered
decode speed through the engine (Gemma decodes with the model's forward: the fast loop is Llama-only).

    python benchmarks/gemma3.py --sae RUN/sae [--rows 4 --tokens 32]

Prints JSON (and writes docs/bench_gemma3.json with --write): harvest tokens/s at the SAE's block, decode
tokens/s of ``rows`` concurrent greedy replies unsteered and steered (one feature nudged on every row), and
their ratio. Without --sae a random TopK SAE at block 9 stands in (the steering arithmetic costs the same).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from steerlab.engine.lab import Lab
from steerlab.generation.sampler import SamplingParams
from steerlab.models.hooks import forward_to_hookpoint
from steerlab.models.loader import load_model
from steerlab.steering.batch import RowSteering
from steerlab.steering.edits import FeatureEdit

PROMPTS = ["The capital of France is", "Once upon a time, in a small village,", "def fibonacci(n):", "The ocean is"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sae", default=None)
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    started = time.perf_counter()
    lm = load_model("gemma3-270m")
    load_s = time.perf_counter() - started
    if args.sae:
        from steerlab.sae.bundled import load_sae_for

        sae = load_sae_for(lm, args.sae)
    else:
        from steerlab.sae.config import SAEConfig
        from steerlab.sae.registry import create_sae

        torch.manual_seed(0)
        sae = create_sae(SAEConfig(d_in=lm.d_model, d_sae=4 * lm.d_model, k=16, hookpoint="model.layers.9"))
        sae.requires_grad_(False)
    ids = torch.randint(0, lm.config.vocab_size, (args.batch, args.seq), generator=torch.Generator().manual_seed(0))
    forward_to_hookpoint(lm.model, ids, sae.cfg.hookpoint)  # warm-up
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        forward_to_hookpoint(lm.model, ids, sae.cfg.hookpoint)
        times.append(time.perf_counter() - t)
    harvest_tps = ids.numel() / statistics.median(times)

    lab = Lab(lm, sae, max_batch=args.rows)
    params = SamplingParams(max_new_tokens=args.tokens, temperature=0)
    prompts = [[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}] for i in range(args.rows)]

    def decode(steered: bool) -> float:
        t = time.perf_counter()
        streams = [
            lab.chat(m, params, RowSteering.for_edits(sae, [FeatureEdit(3, 2.0)]) if steered else None) for m in prompts
        ]
        n = sum(len([e for e in s if e.token_id is not None]) for s in streams)
        return n / (time.perf_counter() - t)

    try:
        decode(False)  # warm-up
        runs = {name: [decode(name == "steered") for _ in range(args.repeats)] for name in ("unsteered", "steered")}
    finally:
        lab.close()
    unsteered, steered = statistics.median(runs["unsteered"]), statistics.median(runs["steered"])
    result = {
        "model": "gemma3-270m",
        "hookpoint": sae.cfg.hookpoint,
        "sae": args.sae or "random topk 4x (k=16)",
        "threads": torch.get_num_threads(),
        "load_avg_1min": os.getloadavg()[0],
        "cached_load_s": round(load_s, 1),
        "harvest": {"batch": args.batch, "seq": args.seq, "tokens_per_s": round(harvest_tps, 1)},
        "decode": {
            "rows": args.rows,
            "new_tokens_per_row": args.tokens,
            "unsteered_tokens_per_s": round(unsteered, 2),
            "steered_tokens_per_s": round(steered, 2),
            "steered_over_unsteered": round(steered / unsteered, 3),
            "fast_decode": lab.engine._fast is not None,
        },
    }
    print(json.dumps(result, indent=2))
    if args.write:
        Path("docs/bench_gemma3.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
