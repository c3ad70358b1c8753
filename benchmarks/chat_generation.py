"""Bulk chat-reply generation: our ``generate_batch`` vs HF ``model.generate`` on the same prompts.

    python benchmarks/chat_generation.py --prompts 48 --max-new-tokens 96

Same prompts (real ones from the default corpus recipe), same batch, same sampling settings
(temperature 0.6, top-p 0.9, repetition penalty 1.1). Prints JSON: generated tokens/s of each and
the ratio. Both stop rows at the chat end token; HF keeps decoding finished rows until all finish.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from steerlab.activations.offline_sources import default_chat_prompts
from steerlab.generation.batch_generate import BatchSampling, generate_batch
from steerlab.models.chat_template import chat_input_ids, stop_token_ids
from steerlab.models.loader import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--prompts", type=int, default=48)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    args = ap.parse_args()
    lm = load_model(args.model)
    tok = lm.tokenizer
    prompts = [
        chat_input_ids(tok, [{"role": "user", "content": p["prompt"][:400]}])
        for p in default_chat_prompts(seed=0)[: args.prompts]
    ]
    cfg = BatchSampling(max_new_tokens=args.max_new_tokens, temperature=0.6, top_p=0.9, repetition_penalty=1.1)
    stops = stop_token_ids(tok)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    start = time.perf_counter()
    ours = generate_batch(lm.model, prompts, cfg, stops, pad, seed=0)
    ours_s = time.perf_counter() - start
    ours_tokens = sum(len(g.token_ids) for g in ours)

    width = max(map(len, prompts))
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    torch.manual_seed(0)
    start = time.perf_counter()
    with torch.inference_mode():
        gen = lm.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=args.max_new_tokens,
            do_sample=True,
            temperature=0.6,
            top_p=0.9,
            repetition_penalty=1.1,
            pad_token_id=pad,
            eos_token_id=sorted(stops),
        )
    hf_s = time.perf_counter() - start
    new = gen[:, width:]
    hf_tokens = int(sum(next((i for i, t in enumerate(row.tolist()) if t in stops), len(row)) for row in new))

    ours_rate, hf_rate = ours_tokens / ours_s, hf_tokens / hf_s
    print(
        json.dumps(
            {
                "prompts": args.prompts,
                "max_new_tokens": args.max_new_tokens,
                "threads": torch.get_num_threads(),
                "hf_generate": {"tokens": hf_tokens, "seconds": round(hf_s, 2), "tokens_per_s": round(hf_rate, 1)},
                "generate_batch": {
                    "tokens": ours_tokens,
                    "seconds": round(ours_s, 2),
                    "tokens_per_s": round(ours_rate, 1),
                },
                "ratio": round(ours_rate / hf_rate, 2),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
