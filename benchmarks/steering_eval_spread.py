"""How much of a steering-evaluation figure is sampling luck: re-score runs' chosen edits with other seeds.

    OMP_NUM_THREADS=1 python benchmarks/steering_eval_spread.py docs/bench_steering_eval.json \
        docs/bench_steering_eval_main_baseline.json --seeds 0,1,2

AutoSteer is not run again: each file's per-concept edits are evaluated by ``evaluate_steering`` (the
same concepts, held-out prompts and reply length as the file) with each sampling seed. Prints JSON:
per file and seed the mean combined score of steering and prompting and their ratio, and per file the
mean and range over seeds. Seed 0 reproduces the file's own figure.
"""

from __future__ import annotations

import argparse
import json
import sys

from steering_eval import CONCEPTS, DEV_CONCEPTS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="JSON files written by steering_eval.py")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()

    from steerlab.analysis.steering_eval import Concept, evaluate_steering
    from steerlab.engine.lab import Lab

    lab = Lab.load("default")
    known = {c[0]: c for c in CONCEPTS + DEV_CONCEPTS}
    seeds = [int(s) for s in args.seeds.split(",")]
    report = {}
    for path in args.runs:
        run = json.load(open(path))
        per_seed = {}
        for seed in seeds:
            steered, prompted = [], []
            for row in run["per_concept"]:
                name, description, instruction, words = known[row["concept"]]
                concept = Concept(name, description, instruction, words)
                prompts = run_prompts(run)
                edits = [(int(i), float(v)) for i, v in row["edits"]]
                result = evaluate_steering(
                    lab.lm, lab.sae, concept, edits, prompts, max_new_tokens=run["tokens"], seed=seed
                )
                steered.append(result.methods["steered"].combined)
                prompted.append(result.methods["prompted"].combined)
            s, p = sum(steered) / len(steered), sum(prompted) / len(prompted)
            per_seed[seed] = {"steered": round(s, 4), "prompted": round(p, 4), "ratio": round(s / p, 3) if p else None}
            print(f"{path} seed {seed}: {per_seed[seed]}", file=sys.stderr, flush=True)
        ratios = [v["ratio"] for v in per_seed.values() if v["ratio"] is not None]
        steered_means = [v["steered"] for v in per_seed.values()]
        report[path] = {
            "per_seed": per_seed,
            "mean_steered": round(sum(steered_means) / len(steered_means), 4),
            "mean_ratio": round(sum(ratios) / len(ratios), 3) if ratios else None,
            "ratio_range": [min(ratios), max(ratios)] if ratios else None,
        }
    text = json.dumps(report, indent=1)
    print(text)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(text)


def run_prompts(run: dict) -> list[str]:
    from steerlab.analysis.steering_eval import EVAL_PROMPTS

    n = run["prompts"]
    return list(EVAL_PROMPTS[:n] if run.get("split", "test") == "test" else EVAL_PROMPTS[-n:])


if __name__ == "__main__":
    main()
