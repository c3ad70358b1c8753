"""Re-score, with the current held-out scorer, the labels a database shows as concepts; write what changed.

    python scripts/rescore_concepts.py --db COPY.db [--sae ID] [--contexts tokens] [--batch-size 64] [--json]

A targeted post-pass after a scorer rule that can only take a concept away (docs/labels.md, "Labels that rest
on their own word"): the explainer's choice does not depend on the scorer, so re-scoring the stored concept
labels (decision ``concept``) gives the labels a full relabel with the new scorer would give, in minutes instead
of ~25. Other labels (descriptions, ``unclear``) are left as they are. Writes the changed labels and their
label embeddings; prints one JSON summary (changed count, old -> new for each change).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--sae", default=None)
    ap.add_argument("--contexts", default="tokens", choices=["sentence", "tokens"])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--indices", default=None, help="Only these features (comma-separated), for a quick look.")
    args = ap.parse_args()

    from steerlab.features.embeddings import EmbeddingCache
    from steerlab.features.identity import pick_sae_id
    from steerlab.features.score_heldout import HeldOutScorer
    from steerlab.features.search import update_label_embeddings
    from steerlab.features.store import FeatureStore

    t0 = time.perf_counter()
    changes = []
    decisions: Counter[str] = Counter()
    with FeatureStore(args.db) as store:
        sae_id = pick_sae_id(store, args.sae)
        labels = store.labels(sae_id)
        targets = sorted(i for i, lab in labels.items() if lab.score_details.get("decision") == "concept")
        if args.indices:
            wanted = {int(i) for i in args.indices.split(",")}
            targets = [i for i in targets if i in wanted]
        scorer = HeldOutScorer(encode=EmbeddingCache(), contexts=args.contexts)
        for start in range(0, len(targets), args.batch_size):
            features = store.get_features(sae_id, targets[start : start + args.batch_size], with_examples=True)
            new = scorer.score(features, [labels[f.index] for f in features])
            updates = {}
            for f, lab in zip(features, new):
                if lab is None:
                    continue
                decisions[lab.score_details.get("decision", "none")] += 1
                if lab.text != labels[f.index].text or lab.score_details.get("decision") != "concept":
                    updates[f.index] = lab
                    changes.append({"index": f.index, "old": labels[f.index].text, "new": lab.text})
            if updates:
                store.set_labels(sae_id, updates)
                update_label_embeddings(store, sae_id, updates)
    summary = {
        "db": args.db,
        "sae": sae_id,
        "concept_labels": len(targets),
        "decisions_after": dict(decisions),
        "changed": len(changes),
        "seconds": round(time.perf_counter() - t0, 1),
        "changes": changes,
    }
    print(json.dumps(summary, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
