"""Label precision audit: does each label describe what its feature fires on?

    python benchmarks/label_precision.py --db features.db [--sae ID] [--features 200] [--seed 0] [--out FILE.json]

Takes seeded random features and, for each label that claims something an automatic check can hold
it to (languages, code, tokens and punctuation, keyword topics: ``concepts.matcher_for_label``),
asks whether the label describes at least 6 of the feature's 10 strongest windows (20 tokens before
the strongest token, 4 after). Labels no matcher covers are counted apart as "no automatic check"
(never guessed); labels that claim no concept (the feature is declared unclear) are counted apart too.
Baseline in the same run: the same labels shuffled across the sampled features (how often a label
would "hold" on a feature it was not written for).
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from pathlib import Path


def audit(pairs: list[tuple[str, list]]) -> dict:
    """``pairs``: (label text, the feature's strongest windows). Precision over checkable labels."""
    from steerlab.features.concept_windows import judge
    from steerlab.features.concepts import matcher_for_label
    from steerlab.features.score_heldout import claims_concept

    kinds: Counter[str] = Counter()
    rows = []
    for text, windows in pairs:
        if not claims_concept(text):
            kinds["unclear"] += 1
            continue
        matcher = matcher_for_label(text)
        if matcher is None:
            kinds["no_automatic_check"] += 1
            continue
        ok, shown = judge(windows, matcher)
        kinds["holds" if ok else "fails"] += 1
        rows.append({"label": text, "shown": shown, "holds": ok})
    checked = kinds["holds"] + kinds["fails"]
    return {
        "labels": len(pairs),
        "checked": checked,
        "holds": kinds["holds"],
        "precision": round(kinds["holds"] / checked, 4) if checked else None,
        "no_automatic_check": kinds["no_automatic_check"],
        "unclear": kinds["unclear"],
        "rows": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--sae", default=None)
    ap.add_argument("--features", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from steerlab.features.concept_windows import strongest_windows
    from steerlab.features.identity import pick_sae_id
    from steerlab.features.store import FeatureStore

    with FeatureStore(args.db, readonly=True) as store:
        sae_id = pick_sae_id(store, args.sae)
        d_sae = store.get_sae(sae_id).d_sae
        rng = random.Random(args.seed)
        sample = sorted(rng.sample(range(d_sae), min(args.features, d_sae)))
        features = [f for f in store.get_features(sae_id, sample, with_examples=True) if f.label is not None]
    windows = [strongest_windows(f) for f in features]
    labels = [f.label_text for f in features]
    shuffled = labels[:]
    random.Random(args.seed + 1).shuffle(shuffled)
    real = audit(list(zip(labels, windows)))
    base = audit(list(zip(shuffled, windows)))
    explainers = Counter(f.label.explainer for f in features)
    report = {
        "db": args.db,
        "sae": sae_id,
        "features": len(features),
        "seed": args.seed,
        "explainers": dict(explainers),
        "rule": "a label holds when it describes >= 6 of its feature's 10 strongest windows (20 before / 4 after)",
        "real": {k: v for k, v in real.items() if k != "rows"},
        "shuffled_baseline": {k: v for k, v in base.items() if k != "rows"},
        "failures": [r for r in real["rows"] if not r["holds"]][:40],
    }
    text = json.dumps(report, indent=2, ensure_ascii=False)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
