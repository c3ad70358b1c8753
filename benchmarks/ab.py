"""A/B a benchmark across two commits in one run: did a change keep the figures?

Checks out BASE into a temporary git worktree, then runs the same benchmark script alternately on
BASE's tree and on this working tree (each with its own ``src/`` first on ``PYTHONPATH``, each
running its own copy of the script), ``--rounds`` times each. Every benchmark here prints one JSON
object; the numeric leaves of both sides are printed side by side with their ratio (medians over
rounds), and written to ``--out``.

    python benchmarks/ab.py --base 1de1b7a -- benchmarks/search.py --db DB
    python benchmarks/ab.py --base HEAD~3 --rounds 2 -- benchmarks/serve.py --tokens 48 --streams 16
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def flatten(obj, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a JSON value, keyed by their dotted path (lists by index)."""
    if isinstance(obj, bool):
        return {}
    if isinstance(obj, (int, float)):
        return {prefix: float(obj)}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    out: dict[str, float] = {}
    for key, value in items:
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def last_json_object(text: str) -> dict:
    """The last top-level JSON object in a benchmark's stdout (progress lines may come before it)."""
    decoder = json.JSONDecoder()
    found, i = None, text.find("{")
    while i != -1:
        try:
            value, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            i = text.find("{", i + 1)
            continue
        if isinstance(value, dict):
            found = value
        i = text.find("{", end)  # past this object: its nested objects are not top-level
    if found is None:
        raise SystemExit("error: the benchmark printed no JSON object")
    return found


def run_side(tree: Path, script: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    done = subprocess.run([sys.executable, *script], cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"error: {script[0]} failed in {tree} (exit {done.returncode})")
    return last_json_object(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="git commit to compare against (e.g. the commit before a change)")
    ap.add_argument("--rounds", type=int, default=1, help="runs per side, alternating base/head (medians reported)")
    ap.add_argument("--out", type=Path, default=None, help="write the comparison as JSON here")
    ap.add_argument("script", nargs=argparse.REMAINDER, help="-- benchmarks/NAME.py [its arguments]")
    args = ap.parse_args()
    script = args.script[1:] if args.script[:1] == ["--"] else args.script
    if not script:
        raise SystemExit("error: script: give the benchmark to run after --, e.g. -- benchmarks/search.py --db DB")
    base_sha = subprocess.run(
        ["git", "rev-parse", "--verify", args.base + "^{commit}"], cwd=HERE, capture_output=True, text=True
    )
    if base_sha.returncode != 0:
        raise SystemExit(f"error: --base: {args.base!r} is not a commit in this repository")
    sha = base_sha.stdout.strip()
    runs: dict[str, list[dict[str, float]]] = {"base": [], "head": []}
    with tempfile.TemporaryDirectory(prefix="steerlab-ab-") as tmp:
        base_tree = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(base_tree), sha], cwd=HERE, check=True)
        try:
            for r in range(args.rounds):
                for side, tree in (("base", base_tree), ("head", HERE)):
                    print(f"round {r + 1}/{args.rounds}: {side}", file=sys.stderr, flush=True)
                    runs[side].append(flatten(run_side(tree, script)))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=HERE, check=False)
    keys = [k for k in runs["head"][0] if all(k in run for side in runs.values() for run in side)]
    table = {}
    for key in keys:
        base = statistics.median(run[key] for run in runs["base"])
        head = statistics.median(run[key] for run in runs["head"])
        table[key] = {"base": base, "head": head, "head_over_base": head / base if base else None}
    width = max((len(k) for k in table), default=10)
    print(f"{'figure':<{width}}  {'base':>12}  {'head':>12}  head/base")
    for key, row in table.items():
        ratio = f"{row['head_over_base']:.3f}" if row["head_over_base"] is not None else "-"
        print(f"{key:<{width}}  {row['base']:>12.4g}  {row['head']:>12.4g}  {ratio}")
    result = {"base": sha, "script": script, "rounds": args.rounds, "figures": table}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
