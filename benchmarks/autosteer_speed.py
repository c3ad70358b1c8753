"""Wall time of AutoSteer on the bundled default, quick (the server's default) vs thorough config.

    python benchmarks/autosteer_speed.py --goal "talk like a pirate" --out docs/bench_autosteer.json

The goodfire SDK gives ``features/auto-edits`` 60 s; this shows whether a search fits on this machine.
"""

from __future__ import annotations

import argparse
import json
import time

from steerlab.analysis.autosteer import AutoSteerConfig, auto_steer
from steerlab.engine.lab import Lab


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--goal", default="talk like a pirate")
    ap.add_argument("--out", default=None, help="Also write the JSON here.")
    args = ap.parse_args()
    lab = Lab.load("default")
    runs = {}
    try:
        for name, cfg in (("quick", AutoSteerConfig.quick()), ("thorough", AutoSteerConfig())):
            start = time.perf_counter()
            result = auto_steer(
                lab.lm, lab.sae, args.goal, config=cfg, search=lab.search, labels=lab.labels, sae_id=lab.sae_id
            )
            runs[name] = {
                "seconds": round(time.perf_counter() - start, 1),
                "trials": len(result.trials),
                "edits": [[f.index, f.label, round(s, 3)] for f, s in result.edits],
                "score": round(result.best.score, 3),
                "unsteered_score": round(result.unsteered.score, 3),
            }
    finally:
        lab.close()
    report = {
        "goal": args.goal,
        **runs,
        "quick_over_thorough_time": round(runs["quick"]["seconds"] / runs["thorough"]["seconds"], 2),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
