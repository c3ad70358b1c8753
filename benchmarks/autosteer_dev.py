"""AutoSteer settings compared on the *development* split of the steering evaluation, one process.

    OMP_NUM_THREADS=1 python benchmarks/autosteer_dev.py --prompts 4 --tokens 32 \
        --variant base --variant 'confirm;confirm=4' --variant 'hybrid;search=hybrid;confirm=4'

Each variant is ``name;key=value;...`` (``search`` = none|label|hybrid, anything else an
``AutoSteerConfig`` field). Every variant runs AutoSteer and ``evaluate_steering`` on each of
``steering_eval.DEV_CONCEPTS`` with the *last* ``--prompts`` of ``EVAL_PROMPTS``: neither the
held-out concepts nor the held-out prompts of ``benchmarks/steering_eval.py`` are touched, so a
setting chosen here can then be measured there honestly. Prints JSON: per variant the mean combined
score of steering and of prompting, their ratio, and per concept the edits and scores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from steering_eval import DEV_CONCEPTS, BySearch, parse_override


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", action="append", default=[], help="name;key=value;... (repeatable)")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--only", default=None, help="Comma-separated dev concept names (default: all).")
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()

    from steerlab.analysis.autosteer import AutoSteerConfig, auto_steer
    from steerlab.analysis.steering_eval import EVAL_PROMPTS, Concept, evaluate_steering
    from steerlab.engine.lab import Lab

    lab = Lab.load("default")
    prompts = EVAL_PROMPTS[-args.prompts :]
    concepts = [c for c in DEV_CONCEPTS if not args.only or c[0] in args.only.split(",")]
    variants = {}
    for spec in args.variant or ["base"]:
        name, *pairs = spec.split(";")
        options = dict(parse_override(p) for p in pairs if p)
        by = options.pop("search", "none")
        search = BySearch(lab.search, by) if by != "none" and lab.search is not None else None
        variants[name] = (AutoSteerConfig(**options), search, spec)
    out = {name: {"spec": spec, "per_concept": []} for name, (_, _, spec) in variants.items()}
    started = time.perf_counter()
    for name_c, description, instruction, words in concepts:
        concept = Concept(name_c, description, instruction, words)
        for name, (config, search, _) in variants.items():
            t0 = time.perf_counter()
            steer = auto_steer(
                lab.lm, lab.sae, concept.goal, config=config, search=search, labels=lab.labels, sae_id=lab.sae_id
            )
            result = evaluate_steering(lab.lm, lab.sae, concept, steer, prompts, max_new_tokens=args.tokens)
            m = result.methods
            row = {
                "concept": name_c,
                "edits": [[f.index, round(v, 3)] for f, v in steer.edits],
                "sources": {
                    c.index: sorted(c.evidence) for c in steer.candidates if c.index in {i for i, _ in steer.best.edits}
                },
                "autosteer_score": round(steer.best.score, 3),
                **{
                    k: {p: round(getattr(m[k], p), 3) for p in ("concept", "relevance", "fluency", "combined")}
                    for k in m
                },
                "seconds": round(time.perf_counter() - t0, 1),
            }
            out[name]["per_concept"].append(row)
            print(
                f"{name_c} [{name}]: steered {row['steered']['combined']:.3f} prompted "
                f"{row['prompted']['combined']:.3f} edits {row['edits']} ({row['seconds']}s)",
                file=sys.stderr,
                flush=True,
            )
    for data in out.values():
        rows = data["per_concept"]
        steered = sum(r["steered"]["combined"] for r in rows) / len(rows)
        prompted = sum(r["prompted"]["combined"] for r in rows) / len(rows)
        data.update(
            steered=round(steered, 4),
            prompted=round(prompted, 4),
            ratio=round(steered / prompted, 3) if prompted else None,
            wins=sum(r["steered"]["combined"] > r["prompted"]["combined"] for r in rows),
        )
    report = {"split": "dev", "prompts": list(prompts), "wall_s": round(time.perf_counter() - started, 1), **out}
    text = json.dumps(report, indent=1)
    print(text)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
