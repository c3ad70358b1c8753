"""Choose the default SAE's layer by measurement.

For each candidate block we harvest the same tokens (one forward pass captures all of them), train
a quick TopK SAE with an equal budget, and measure on held-out tokens:

- ``ce_loss_score``: how well the spliced SAE preserves the model's predictions;
- ``context_fraction``: the share of the SAE's activation variance NOT explained by the current
  token's identity alone (1 - R^2 of a per-token-id mean). Early layers are dominated by
  token-identity features; steering wants features of meaning, which need context.

Score = ce_loss_score * context_fraction. The score keeps rising into the last third of the network
(where features increasingly predict the next token rather than describe the input, which this score
does not see), so the choice is the best-scoring layer in the middle third of depth; the JSON also
names the best layer overall. Prints JSON.

    python benchmarks/layer_choice.py --tokens 60000 > layer_choice.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from steerlab.activations.corpus import CorpusSource, CorpusSpec, build_sequences
from steerlab.activations.default_recipe import default_corpus_dir
from steerlab.models.hooks import capture_residual, resolve_hookpoint
from steerlab.models.loader import load_model
from steerlab.sae.config import SAEConfig
from steerlab.sae.evals import evaluate_sae
from steerlab.sae.sources import TensorActivationSource
from steerlab.sae.train import TrainConfig, train_sae


def context_fraction(codes: torch.Tensor, token_ids: torch.Tensor) -> float:
    """1 - R^2 of predicting every latent's activation from the token id (pooled over latents)."""
    codes = codes.float()
    total = ((codes - codes.mean(0)) ** 2).sum()
    uniq, inverse = token_ids.unique(return_inverse=True)
    sums = torch.zeros(len(uniq), codes.shape[1]).index_add_(0, inverse, codes)
    counts = torch.bincount(inverse, minlength=len(uniq)).float()[:, None]
    explained = codes - (sums / counts)[inverse]
    return float((explained**2).sum() / total)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", default="6,9,12,15,18,21,24")
    ap.add_argument("--tokens", type=int, default=60_000, help="training tokens per layer (before epochs)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--eval-tokens", type=int, default=6_000)
    ap.add_argument("--expansion", type=int, default=8)
    ap.add_argument("--k", type=int, default=32)
    args = ap.parse_args()

    lm = load_model()
    corpus = default_corpus_dir()
    sources = [CorpusSource(str(corpus / "chat.jsonl"), max_tokens=args.tokens // 5)]
    sources += [
        CorpusSource(str(corpus / "text" / f"{n}.jsonl"), max_tokens=args.tokens // 5)
        for n in ("debian-handbook", "python-stdlib", "manpages", "gcide")
    ]
    total = args.tokens + args.eval_tokens
    for s in sources:
        s.max_tokens = total // len(sources)
    sequences = build_sequences(CorpusSpec(sources, context_length=128, seed=1), lm.tokenizer, progress=False)
    split = int(len(sequences) * args.tokens / total)
    train_seqs, eval_seqs = sequences[:split], sequences[split:]
    layers = [int(x) for x in args.layers.split(",")]
    hookpoints = [resolve_hookpoint(lm.model, layer) for layer in layers]

    start = time.time()
    acts: dict[str, list[torch.Tensor]] = {h: [] for h in hookpoints}
    token_ids: list[torch.Tensor] = []
    for b in range(0, len(train_seqs), 16):
        batch = [s for s in train_seqs[b : b + 16] if len(s) == 128]
        if not batch:
            continue
        ids = torch.tensor(batch)
        with torch.inference_mode(), capture_residual(lm.model, hookpoints) as cap:
            lm.model.model(input_ids=ids, use_cache=False)  # no LM head needed
        for h in hookpoints:
            acts[h].append(cap[h][:, 1:].reshape(-1, lm.d_model).clone())
        token_ids.append(ids[:, 1:].reshape(-1))
    tok = torch.cat(token_ids)
    print(f"harvested {len(tok)} tokens x {len(layers)} layers in {time.time() - start:.0f}s", file=sys.stderr)

    results = []
    for layer, h in zip(layers, hookpoints):
        x = torch.cat(acts[h])
        cfg = SAEConfig(
            d_in=lm.d_model, d_sae=args.expansion * lm.d_model, k=args.k, model_name=lm.name, hookpoint=h, layer=layer
        )
        with tempfile.TemporaryDirectory() as tmp:
            sae = train_sae(
                cfg,
                TrainConfig(batch_size=2048, holdout_tokens=4096, checkpoint_every_steps=10**9),
                TensorActivationSource(x, epochs=args.epochs),
                Path(tmp),
                resume=False,
                progress=False,
            )
        sae.requires_grad_(False)
        with torch.no_grad():
            ctx = context_fraction(sae.encode(x[:20_000]), tok[:20_000])
        ev = evaluate_sae(lm, sae, eval_seqs, batch_size=8, progress=False)
        row = {
            "layer": layer,
            "depth": round((layer + 1) / lm.num_layers, 3),
            "fvu": round(ev["fvu"], 4),
            "ce_loss_score": round(ev["ce_loss_score"], 4),
            "context_fraction": round(ctx, 4),
            "score": round(ev["ce_loss_score"] * ctx, 4),
        }
        print(json.dumps(row), file=sys.stderr)
        results.append(row)
    middle = [r for r in results if 1 / 3 <= r["depth"] <= 2 / 3] or results
    best = max(middle, key=lambda r: r["score"])
    print(
        json.dumps(
            {
                "chosen_layer": best["layer"],
                "rule": "argmax ce_loss_score * context_fraction over layers at 1/3..2/3 depth",
                "best_layer_overall": max(results, key=lambda r: r["score"])["layer"],
                "train_tokens_per_layer": len(tok),
                "epochs": args.epochs,
                "expansion": args.expansion,
                "k": args.k,
                "layers": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
