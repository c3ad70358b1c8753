"""AutoConditional's trigger: does the feature it picks for "when the user talks about X" fire on a message about X
and stay off on messages about other things?

    OMP_NUM_THREADS=1 python benchmarks/autoconditional_trigger.py --split test --search label,hybrid,none \
        --json-out docs/bench_autoconditional_trigger.json

For every text of ``inspect_relevance_data.TEXTS`` (``--split test``: 48 short user messages, each about one topic,
written for the inspect benchmark and never used to build AutoConditional) or of the development texts
(``--split dev``: 42 others, for choosing anything), ``find_trigger`` picks a feature and threshold for the topic's
name, as ``auto_conditional("when the user talks about <topic>, ...")`` does, with the feature database's search
as a candidate source (``--search``: ``label``, what AutoConditional asks for; ``hybrid``, the database's default
search, labels re-scored by contexts, which it used before; ``none``). Each text is then sent as a one-message
conversation; a trigger **works** when its feature reaches the threshold on its own topic's text and on at most
``--max-false`` of the other texts (the peak over every token, per-feature units, as the threshold was set). Also
reported: how many triggers fire on their own text, the mean share of other texts they fire on, and how often the
own text has the trigger's highest peak of all texts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("test", "dev"), default="test")
    ap.add_argument("--search", default="label,hybrid,none", help="Comma-separated: label, hybrid, none.")
    ap.add_argument("--max-false", type=float, default=0.1, help="Largest share of other texts a working trigger "
                    "may fire on (topics overlap: food and cooking, dogs and animals).")  # fmt: skip
    ap.add_argument("--only", default=None, help="Comma-separated topics (default: every text of the split).")
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()
    sources = args.search.split(",")
    unknown = [s for s in sources if s not in ("label", "hybrid", "none")]
    if unknown:
        sys.exit(f"--search: unknown {unknown}; allowed: label, hybrid, none")

    import torch
    from steering_eval import BySearch

    from steerlab.analysis.autosteer_conditional import find_trigger, peak_activations
    from steerlab.engine.lab import Lab

    if args.split == "test":
        from inspect_relevance_data import TEXTS
    else:
        from inspect_relevance_dev_data import TEXTS
    texts = [(t, x) for t, x in TEXTS if args.only is None or t in args.only.split(",")]
    lab = Lab.load("default")
    if "none" not in sources and lab.search is None:
        sys.exit("--search label/hybrid needs the model's feature database")
    labels = lab.labels if lab.search is not None else {}
    started = time.perf_counter()
    every = list(range(lab.sae.cfg.d_sae))
    conversations = [[{"role": "user", "content": text}] for _, text in TEXTS]
    peaks = peak_activations(lab.lm, lab.sae, conversations, every)  # [texts, d_sae]: every feature, once
    position = {topic: i for i, (topic, _) in enumerate(TEXTS)}
    report: dict = {"split": args.split, "texts": len(TEXTS), "max_false": args.max_false, "sources": {}}
    for source in sources:
        search = None if source == "none" else BySearch(lab.search, source)
        rows = []
        for topic, _ in texts:
            t0 = time.perf_counter()
            index, threshold = find_trigger(lab.lm, lab.sae, topic, search=search)
            column = peaks[:, index]
            own = position[topic]
            others = torch.cat([column[:own], column[own + 1 :]])
            fires_own = bool(column[own] >= threshold)
            false_share = float((others >= threshold).float().mean())
            rows.append(
                {
                    "topic": topic,
                    "feature": index,
                    "label": labels.get(index),
                    "threshold": threshold,
                    "own_peak": round(float(column[own]), 3),
                    "fires_on_own": fires_own,
                    "false_share": round(false_share, 3),
                    "own_highest": bool(column[own] >= column.max()),
                    "works": fires_own and false_share <= args.max_false,
                    "seconds": round(time.perf_counter() - t0, 1),
                }
            )
            r = rows[-1]
            print(
                f"{source:7s} {topic:22s} #{index:<5d} {str(r['label'])[:34]:34s} fires {fires_own!s:5s} "
                f"others {false_share:.2f} {'WORKS' if r['works'] else ''}",
                file=sys.stderr,
                flush=True,
            )
        n = len(rows)
        report["sources"][source] = {
            "works": sum(r["works"] for r in rows),
            "fires_on_own": sum(r["fires_on_own"] for r in rows),
            "own_highest": sum(r["own_highest"] for r in rows),
            "mean_false_share": round(sum(r["false_share"] for r in rows) / max(1, n), 4),
            "topics": n,
            "rows": rows,
        }
    report["seconds"] = round(time.perf_counter() - started, 1)
    summary = {s: {k: v for k, v in r.items() if k != "rows"} for s, r in report["sources"].items()}
    print(json.dumps(summary, indent=1), file=sys.stderr)
    text = json.dumps(report, indent=1)
    print(text)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
