"""Strict concept check: search a plain-English concept, is the top hit about it?

    python benchmarks/concept_check.py --db features.db [--sae ID] [--mode hybrid] [--by default,label,contexts,hybrid]
        [--out FILE.json]

For each concept (``steerlab.features.concepts.CONCEPTS``: languages, code, token-level
concepts and everyday topics), search the labels and take the top 3 hits. A hit is about the concept
when at least 6 of its 10 strongest contexts show it in a window around the strongest token (20
tokens before, 4 after): keywords for topics (whole word; code-like windows do not count for
everyday topics), the fastText identifier for languages, syntax patterns for code, the strongest
token for token-level concepts. Reports top-1 and top-3 over all concepts and over the issue's
held-out 20 everyday concepts, next to a random-feature baseline from the same run (the same
matchers on seeded random features: how often a feature passes by chance).

``--by`` names what each search rests on (``features/search.py``): ``label``, ``contexts`` (the features'
strongest windows, contrasted against the corpus), ``hybrid`` (the label ranking re-scored with the contexts) and
``default`` (what a search without ``by`` does on this database: ``FeatureSearch.default_by``, recorded in the JSON
as ``default_by``); several, comma-separated, are reported side by side from one run. ``tuning`` is every concept
but the issue's held-out 20: weights may be chosen on it, never on ``held_out_20``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

HELD_OUT_20 = (
    "weather", "cooking", "football", "French text", "Spanish text", "Python code", "SQL queries", "algebra",
    "poetry", "symptoms", "refusals", "pirate speech", "history", "grief", "money", "cats", "letters", "biology",
    "music", "questions",
)  # fmt: skip
"""The issue's held-out everyday concepts (issue 14), reported separately."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--sae", default=None, help="SAE id inside the database (default: its only SAE).")
    ap.add_argument("--mode", default="hybrid", choices=["semantic", "lexical", "hybrid"])
    ap.add_argument(
        "--by",
        default="default",
        help="Comma-separated: default (what a search without by does here), label, contexts, hybrid.",
    )
    ap.add_argument(
        "--ceiling",
        action="store_true",
        help="Also judge every feature for every concept: how many concepts any feature passes (the best any "
        "search could do on this database).",
    )
    ap.add_argument(
        "--ceiling-only",
        action="store_true",
        help="Only the ceiling: no search, so it also reads a database without labels (which concepts an SAE's "
        "features can pass on a corpus, before labeling).",
    )
    ap.add_argument("--baseline-features", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="Also write the JSON here.")
    args = ap.parse_args()

    from steerlab.features.concept_windows import AFTER, BEFORE, NEED, TOP, judge, strongest_windows
    from steerlab.features.concepts import CONCEPTS
    from steerlab.features.identity import pick_sae_id
    from steerlab.features.search import FeatureSearch
    from steerlab.features.store import FeatureStore

    t0 = time.perf_counter()
    with FeatureStore(args.db, readonly=True) as store:
        sae_id = pick_sae_id(store, args.sae)
        d_sae = store.get_sae(sae_id).d_sae
        search = FeatureSearch(store, sae_id)
        default_by = search.default_by()
        runs = {}
        for by in [] if args.ceiling_only else args.by.split(","):
            rows = []
            for concept, matcher in CONCEPTS.items():
                hits = search.search(concept, top_k=3, mode=args.mode, by=None if by == "default" else by)
                features = store.get_features(sae_id, [h.index for h in hits], with_examples=True)
                checked = []
                for hit, feature in zip(hits, features):
                    ok, shown = judge(strongest_windows(feature), matcher)
                    checked.append(
                        {"index": hit.index, "label": hit.label, "reason": hit.reason, "shown": shown, "hit": ok}
                    )
                rows.append(
                    {
                        "concept": concept,
                        "held_out_20": concept in HELD_OUT_20,
                        "top1": bool(checked and checked[0]["hit"]),
                        "top3": any(c["hit"] for c in checked),
                        "hits": checked,
                    }
                )
            runs[by] = rows
        passing = None
        if args.ceiling or args.ceiling_only:
            every = [strongest_windows(f) for f in store.iter_features(sae_id, with_examples=True, batch_size=512)]
            passing = {c: sum(judge(w, m)[0] for w in every) for c, m in CONCEPTS.items()}
        sample = random.Random(args.seed).sample(range(d_sae), min(args.baseline_features, d_sae))
        windows = [strongest_windows(f) for f in store.get_features(sae_id, sample, with_examples=True)]
    chance = {c: sum(judge(w, m)[0] for w in windows) / max(1, len(windows)) for c, m in CONCEPTS.items()}

    def summary(selected: list[dict]) -> dict:
        n = len(selected)
        p = [chance[r["concept"]] for r in selected]
        return {
            "concepts": n,
            "top1": sum(r["top1"] for r in selected),
            "top3": sum(r["top3"] for r in selected),
            "top1_rate": round(sum(r["top1"] for r in selected) / n, 4),
            "top3_rate": round(sum(r["top3"] for r in selected) / n, 4),
            "random_top1_rate": round(sum(p) / n, 4),
            "random_top3_rate": round(sum(1 - (1 - q) ** 3 for q in p) / n, 4),
        }

    for rows in runs.values():
        for row in rows:
            row["chance"] = round(chance[row["concept"]], 3)
    by_summary = {
        by: {
            "all": summary(rows),
            "held_out_20": summary([r for r in rows if r["held_out_20"]]),
            "tuning": summary([r for r in rows if not r["held_out_20"]]),
        }
        for by, rows in runs.items()
    }
    first = next(iter(runs), None)
    report = {
        "db": args.db,
        "sae": sae_id,
        "mode": args.mode,
        "default_by": default_by,
        "rule": f"top hit's {TOP} strongest contexts, window {BEFORE} tokens before / {AFTER} after the strongest "
        f"token; a hit when >= {NEED} of {TOP} windows show the concept",
        **(
            {
                "by": first,
                "all": by_summary[first]["all"],
                "held_out_20": by_summary[first]["held_out_20"],
                "by_evidence": by_summary,
            }
            if first
            else {}
        ),
        **(
            {
                "ceiling": {
                    "name": "concepts some feature of the database passes (no search can do better)",
                    "all": sum(n > 0 for n in passing.values()),
                    "held_out_20": sum(passing[c] > 0 for c in HELD_OUT_20),
                    "features_passing": passing,
                }
            }
            if passing is not None
            else {}
        ),
        "baseline": {
            "name": "same matchers on seeded random features (chance of passing); top-3 = 1-(1-p)^3",
            "features": len(windows),
            "seed": args.seed,
        },
        "seconds": round(time.perf_counter() - t0, 1),
        **({"results": runs[first], "results_by_evidence": runs} if first else {}),
    }
    text = json.dumps(report, indent=2, ensure_ascii=False)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
