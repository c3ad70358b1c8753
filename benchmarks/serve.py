"""Engine throughput on the default model, each figure next to its baseline from the same run.

    python benchmarks/serve.py --tokens 64 --streams 16

- batch-1 decode: our engine vs HF ``model.generate`` on the model as HF loads it (float32 ``nn.Linear``;
  greedy, same prompt, same token count); also HF ``generate`` on our packed model, which separates what
  the packed weights give (``models/packed_linear.py``) from what the engine gives;
- steered vs unsteered decode (a nudge on one feature, batch 1);
- aggregate tokens/s with N concurrent streams, each with a different variant, vs one stream;
- time to first token p50/p99 across the N concurrent streams.
Every figure is the median of ``--repeats`` timed runs after a full-length warm-up. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import torch

from steerlab.engine.lab import Lab
from steerlab.generation.sampler import SamplingParams
from steerlab.models.loader import load_model
from steerlab.steering.batch import RowSteering
from steerlab.steering.edits import FeatureEdit
from steerlab.torch_threads import in_passing_thread


def timed_stream(stream, start: float | None = None):
    """(tokens, seconds, time to first token), timed from ``start`` (default: now)."""
    start = time.perf_counter() if start is None else start
    first, n = None, 0
    for event in stream:
        if first is None:
            first = time.perf_counter() - start
        n += event.token_id is not None
    return n, time.perf_counter() - start, first


def memory_floor_tokens_per_s(model) -> dict:
    """Batch-1 decode must read every weight once per token: weight bytes / measured copy bandwidth."""
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    src = torch.empty(256 * 2**20 // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    start = time.perf_counter()
    for _ in range(5):
        dst.copy_(src)
    seconds = (time.perf_counter() - start) / 5
    bandwidth = 2 * src.numel() * 4 / seconds  # bytes read + written
    return {
        "weight_mb": round(weight_bytes / 2**20),
        "copy_bandwidth_gb_s": round(bandwidth / 1e9, 1),
        "floor_tok_s": round(bandwidth / weight_bytes, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="Timed runs of each measurement; the median is reported (one 48-token run varies ~10%%).",
    )
    args = ap.parse_args()
    # Heavy one-off work runs in passing threads, so that each measured loop (HF generate, the engine) is the
    # only thread with OpenMP workers while it runs (see steerlab/torch_threads.py).
    lab = in_passing_thread(Lab.load, "default", max_batch=max(32, args.streams))
    prompt = lab.prompt_ids([{"role": "user", "content": "Write a long story about a lighthouse keeper."}])
    # greedy with no stop token ever sampled: ignore_eos-style fixed length for both sides
    params = SamplingParams(max_new_tokens=args.tokens, temperature=0)
    lab.engine.stop_token_ids = set()
    stock = in_passing_thread(load_model, "default", packed=False).model  # float32 nn.Linear, as HF loads it

    def hf_generate_rate(model) -> tuple[float, torch.Tensor]:
        with torch.inference_mode():
            ids = torch.tensor([prompt])
            model.generate(ids, max_new_tokens=args.tokens, min_new_tokens=args.tokens, do_sample=False)  # warm-up
            rates = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                out = model.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=args.tokens,
                    min_new_tokens=args.tokens,
                    do_sample=False,
                )
                rates.append((out.shape[1] - ids.shape[1]) / (time.perf_counter() - start))
            return statistics.median(rates), out

    floor = in_passing_thread(memory_floor_tokens_per_s, stock)  # of the float32 model HF runs
    hf_rate, hf_out = in_passing_thread(hf_generate_rate, stock)  # before the engine's thread exists
    del stock
    hf_packed_rate, hf_packed_out = in_passing_thread(hf_generate_rate, lab.lm.model)
    lab.engine.generate(prompt, params)  # warm-up, as long as the timed runs (HF's too)
    packed_layers = sum(type(m).__name__ == "PackedLinear" for m in lab.lm.model.modules())
    read_per_token = sum(
        t.numel() * t.element_size() for name, t in lab.lm.model.state_dict().items() if "embed_tokens" not in name
    )  # the embedding table is looked up, not read whole

    def engine_rate(editor=None) -> float:
        runs = [timed_stream(lab.engine.submit(prompt, params, editor)) for _ in range(args.repeats)]
        return statistics.median(n / seconds for n, seconds, _ in runs)

    ours_rate = engine_rate()
    steered_rate = engine_rate(RowSteering.for_edits(lab.sae, [FeatureEdit(100, 1.0)]))
    pinned_rate = engine_rate(RowSteering.for_edits(lab.sae, [FeatureEdit(100, 1.0, "pin")]))

    prompts = [
        lab.prompt_ids([{"role": "user", "content": f"Tell me fact number {i} about the sea."}])
        for i in range(args.streams)
    ]
    editors = [RowSteering.for_edits(lab.sae, [FeatureEdit(17 * i + 1, 0.5)]) for i in range(args.streams)]

    def concurrent_run() -> tuple[float, list[float]]:
        start = time.perf_counter()
        streams = [(lab.engine.submit(p, params, e), time.perf_counter()) for p, e in zip(prompts, editors)]
        with ThreadPoolExecutor(len(streams)) as pool:  # read every stream as it arrives, like real clients
            results = list(pool.map(lambda sub: timed_stream(*sub), streams))
        return sum(r[0] for r in results) / (time.perf_counter() - start), sorted(r[2] for r in results)

    runs = sorted((concurrent_run() for _ in range(args.repeats)), key=lambda run: run[0])
    agg_rate, ttft = runs[len(runs) // 2]  # the median run, with its own times to first token
    lab.close()
    print(
        json.dumps(
            {
                "tokens": args.tokens,
                "repeats": args.repeats,
                "threads": torch.get_num_threads(),
                "batch1": {
                    "hf_generate_tok_s": round(hf_rate, 1),
                    "engine_tok_s": round(ours_rate, 1),
                    "ratio": round(ours_rate / hf_rate, 2),
                    "packed_layers": packed_layers,
                    "hf_generate_packed_tok_s": round(hf_packed_rate, 1),
                    "hf_packed_same_tokens": bool(torch.equal(hf_out, hf_packed_out)),
                    "packed_mb_read_per_token": round(read_per_token / 2**20),
                    **floor,
                    "hf_fraction_of_floor": round(hf_rate / floor["floor_tok_s"], 2),
                },
                "steered": {
                    "unsteered_tok_s": round(ours_rate, 1),
                    "nudge_tok_s": round(steered_rate, 1),
                    "nudge_ratio": round(steered_rate / ours_rate, 2),
                    "pin_tok_s": round(pinned_rate, 1),
                    "pin_ratio": round(pinned_rate / ours_rate, 2),
                },
                "concurrent": {
                    "streams": args.streams,
                    "aggregate_tok_s": round(agg_rate, 1),
                    "one_stream_tok_s": round(ours_rate, 1),
                    "ratio": round(agg_rate / ours_rate, 2),
                    "ttft_p50_s": round(statistics.median(ttft), 3),
                    "ttft_p99_s": round(ttft[min(len(ttft) - 1, int(0.99 * len(ttft)))], 3),
                },
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
