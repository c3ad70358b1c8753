"""Cold start of the feature look-up commands against ``steerlab --help``, each in a fresh interpreter.

    python benchmarks/cli_start.py [--runs 5] [--against OTHER/src] [--out docs/bench_cli_start.json]

Times, on the shipped feature database, the wall time of a new process running ``steerlab --help``,
``steerlab features search cats --json``, ``steerlab features show 5081`` and ``steerlab features export
--indices 1,2``: the median of ``--runs`` runs (commands interleaved, after one untimed run of each that
fills the caches: on a new machine it exports the query-encoder graph and embeds the labels), and its ratio
to ``--help`` in the same run. Each run also reports whether the process imported torch or transformers.
``--against`` times the same commands with another checkout's ``src`` first on PYTHONPATH (e.g. a worktree
of the previous commit), interleaved with this one's. Uses ``$STEERLAB_HOME`` (its cache) as it is.
Target: search under 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "help": ["--help"],
    "search": ["features", "search", "cats", "--json"],
    "show": ["features", "show", "5081"],
    "export": ["features", "export", "--indices", "1,2"],
}
HEAVY = ("torch", "transformers", "sentence_transformers")
RUN_CLI = f"""
import sys
from steerlab.cli import app
try:
    app()
finally:
    print("\\nheavy modules:", ",".join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)
"""
TARGET_SEARCH_S = 2.0


def run_once(argv: list[str], src: str | None) -> tuple[float, list[str]]:
    """(wall seconds, heavy modules imported) of one fresh ``steerlab ARGV``."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUN_CLI, *argv], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"steerlab {' '.join(argv)} failed:\n{done.stderr}")
    heavy = done.stderr.rsplit("heavy modules:", 1)[-1].strip()
    return elapsed, heavy.split(",") if heavy else []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--against", type=Path, help="another checkout's src folder, timed in the same run")
    ap.add_argument("--out", type=Path, default=Path("docs/bench_cli_start.json"))
    args = ap.parse_args()
    trees = {"current": None, **({"against": str(args.against.resolve())} if args.against else {})}
    first = {tree: {name: run_once(argv, src)[0] for name, argv in COMMANDS.items()} for tree, src in trees.items()}
    times = {tree: {name: [] for name in COMMANDS} for tree in trees}
    heavy = {tree: {} for tree in trees}
    for _ in range(args.runs):
        for name, argv in COMMANDS.items():
            for tree, src in trees.items():
                seconds, imported = run_once(argv, src)
                times[tree][name].append(seconds)
                heavy[tree][name] = imported
    report = {"runs": args.runs, "cpus": os.cpu_count(), "target_search_s": TARGET_SEARCH_S, "trees": {}}
    for tree, src in trees.items():
        help_s = statistics.median(times[tree]["help"])
        report["trees"][tree] = {
            "src": src or "(as installed / PYTHONPATH)",
            "commands": {
                name: {
                    "argv": ["steerlab", *argv],
                    "median_s": round(statistics.median(times[tree][name]), 3),
                    "ratio_to_help": round(statistics.median(times[tree][name]) / help_s, 2),
                    "runs_s": [round(t, 3) for t in times[tree][name]],
                    "first_run_s": round(first[tree][name], 3),
                    "imports_heavy": heavy[tree][name],
                }
                for name, argv in COMMANDS.items()
            },
        }
    if "against" in trees:
        report["search_speedup"] = round(
            statistics.median(times["against"]["search"]) / statistics.median(times["current"]["search"]), 1
        )
    report["search_under_target"] = statistics.median(times["current"]["search"]) < TARGET_SEARCH_S
    print(json.dumps(report, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
