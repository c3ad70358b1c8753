"""Harvest tokens/s on a local Ray cluster with 2 workers vs 1, and in this process alone, in one run.

    python benchmarks/ray_harvest.py --out docs/bench_ray_harvest.json

The corpus is this repository's docs/*.md (text the model and the harvest were never tuned on), cut into
``--context`` token sequences, ``--sequences-per-shard`` per shard. Each configuration harvests the same
corpus into a fresh folder: alone (``harvest`` in this process, the baseline), then ``--ray local:1`` and
``--ray local:2`` (a private cluster started for the run, one CPU per worker). Times are of the harvest call
alone (Ray's start-up is reported apart); the workers' model loads are inside it, as in a real run. Every
Ray run's shards are checked bit-for-bit against the baseline's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from steerlab.activations.corpus import CorpusSource, CorpusSpec
from steerlab.activations.harvest import HarvestConfig, harvest, shard_path
from steerlab.cluster.connect import connect, disconnect
from steerlab.cluster.jobs import RayHarvestRunner
from steerlab.models.loader import load_model

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--layer", default="18")
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--max-tokens", type=int, default=49_152)
    ap.add_argument("--sequences-per-shard", type=int, default=32)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ray-harvest-"))
    corpus = work / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"text": p.read_text()}) + "\n" for p in sorted((ROOT / "docs").glob("*.md"))))
    spec = CorpusSpec(sources=[CorpusSource(str(corpus), max_tokens=args.max_tokens)], context_length=args.context)
    layer = int(args.layer) if args.layer.isdigit() else args.layer
    cfg = HarvestConfig(layer=layer, batch_size=16, sequences_per_shard=args.sequences_per_shard)
    lm = load_model(args.model, dtype="float32", device="cpu")

    started = time.perf_counter()
    base = harvest(lm, spec, work / "alone", cfg, progress=False)
    alone_s = time.perf_counter() - started
    tokens = sum(len(load_file(str(shard_path(work / "alone", i)))["acts"]) for i in range(base["num_shards"]))
    runs = {"alone": {"seconds": round(alone_s, 2), "tokens_per_s": round(tokens / alone_s, 1)}}
    for workers in [int(w) for w in args.workers.split(",")]:
        t0 = time.perf_counter()
        connect(f"local:{workers}")
        startup = time.perf_counter() - t0
        try:
            out = work / f"ray{workers}"
            runner = RayHarvestRunner(lm.name, "float32", "cpu")
            t0 = time.perf_counter()
            harvest(lm, spec, out, cfg, progress=False, runner=runner)
            seconds = time.perf_counter() - t0
        finally:
            disconnect()
        identical = all(
            all(torch.equal(a[k], b[k]) for k in a)
            for i in range(base["num_shards"])
            for a, b in [(load_file(str(shard_path(work / "alone", i))), load_file(str(shard_path(out, i))))]
        )
        runs[f"ray_local_{workers}_workers"] = {
            "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1),
            "ray_start_s": round(startup, 2),
            "identical_to_alone": identical,
        }
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "model": lm.name,
        "hookpoint": base["hookpoint"],
        "tokens": tokens,
        "shards": base["num_shards"],
        "runs": runs,
    }
    if "ray_local_1_workers" in runs and "ray_local_2_workers" in runs:
        result["speedup_2_vs_1_workers"] = round(
            runs["ray_local_2_workers"]["tokens_per_s"] / runs["ray_local_1_workers"]["tokens_per_s"], 2
        )
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
