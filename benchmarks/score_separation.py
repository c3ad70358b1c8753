"""Do label scores separate right labels from wrong ones? Real vs shuffled labels on held-out contexts.

    python benchmarks/score_separation.py --db features.db [--sae ID] [--features 200] [--seed 0]
        [--contexts tokens] [--out FILE.json]

Scores each sampled feature's label with the held-out scorer (``features/score_heldout.py``: ROC AUC
of label-vs-context similarity on contexts the explainer never saw: >= 20 firing across the
activation range, >= 20 non-firing, random and near-miss) and, in the same run, the same features
with their labels shuffled across the sample. The target of issue 14: the real labels' median
held-out score >= the shuffled labels' p90. Also reports the stored decisions (concept / fires-on /
unclear) of the sampled labels when the database has them.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from pathlib import Path

import numpy as np


def stats(values: list[float]) -> dict:
    a = np.array(values, dtype=np.float64)
    if not a.size:
        return {"n": 0}
    q = {f"p{int(p * 100)}": round(float(np.quantile(a, p)), 4) for p in (0.1, 0.25, 0.5, 0.75, 0.9)}
    return {"n": int(a.size), "mean": round(float(a.mean()), 4), **q}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--sae", default=None)
    ap.add_argument("--features", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--contexts", default="tokens", choices=["sentence", "tokens"])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from steerlab.features.identity import pick_sae_id
    from steerlab.features.score_heldout import HeldOutScorer, claims_concept
    from steerlab.features.store import FeatureStore

    with FeatureStore(args.db, readonly=True) as store:
        sae_id = pick_sae_id(store, args.sae)
        d_sae = store.get_sae(sae_id).d_sae
        sample = sorted(random.Random(args.seed).sample(range(d_sae), min(args.features, d_sae)))
        features = [f for f in store.get_features(sae_id, sample, with_examples=True) if f.label is not None]
    scorer = HeldOutScorer(contexts=args.contexts, decide=False)
    labels = [f.label for f in features]
    shuffled = labels[:]
    random.Random(args.seed + 1).shuffle(shuffled)
    real = scorer.score(features, labels)
    fake = scorer.score(features, shuffled)
    real_scores = [lab.score for lab in real if lab.score is not None]
    fake_scores = [lab.score for lab in fake if lab.score is not None]
    concept = [
        lab.score
        for lab, orig in zip(real, labels)
        if lab.score is not None
        and orig.score_details.get("decision", "concept") == "concept"
        and claims_concept(orig.text)
    ]
    r, s = stats(real_scores), stats(fake_scores)
    report = {
        "db": args.db,
        "sae": sae_id,
        "features": len(features),
        "seed": args.seed,
        "scorer": scorer.name,
        "real": r,
        "shuffled": s,
        "real_median_minus_shuffled_p90": round(r["p50"] - s["p90"], 4) if r["n"] and s["n"] else None,
        "target_met": bool(r["n"] and s["n"] and r["p50"] >= s["p90"]),
        "real_shown_as_concept": stats(concept),
        "stored_decisions": dict(Counter(lab.score_details.get("decision", "none") for lab in labels)),
        "counts": stats([lab.score_details.get("n_pos", 0) for lab in real])
        | {"neg": stats([lab.score_details.get("n_neg", 0) for lab in real])},
    }
    text = json.dumps(report, indent=2, ensure_ascii=False)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
