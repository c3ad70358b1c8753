"""Does the goodfire SDK's ``top(5)`` show what a text is about, now that compute-features ranks by relevance?

    python benchmarks/sdk_top_relevance.py [--data dev|heldout] [--out docs/bench_sdk_top_relevance.json]

The SDK computes ``top(k)`` on the client: it counts the tokens each feature is listed on in compute-features'
per-token lists (activation over 0.1), keeps the ``k`` most counted (ties: first listed first), then orders
those by ``aggregate_by``. So under the relevance ranking the route lists, per content token, its notable
firings of the conversation's top ``K`` features by relevance (``Inspection.per_token_ranked``, what the route
calls) and the SDK picks among those ``K``. For each text of the inspect benchmark (``inspect_relevance_data``,
or the development texts with ``--data dev``), is a feature about the text's concept (the strict window check,
``features.concept_windows``) among the SDK's top 5, for ``K`` = 5, 10 (the route's default), 20, against the
in-process relevance top 5 and the SDK under the specificity listing (the route's default before)? ``K`` was
chosen on the development texts. One forward per text (``Lab.inspect``), the SDK's counting redone here exactly
as ``goodfire/api/features/client.py: ContextInspector`` does it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
KS = (5, 10, 20)


def sdk_top(tokens: list, k: int) -> list[int]:
    """The goodfire SDK's ``ContextInspector.top(k)`` membership over per-token lists (``TokenFeatures``)."""
    counts: dict[int, int] = {}
    for token in tokens:
        for act in token.features:
            counts.setdefault(act.index, 0)
            if act.act_units > 0.1:
                counts[act.index] += 1
    return [i for i, _ in sorted(counts.items(), key=lambda kv: kv[1], reverse=True)][:k]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", choices=("heldout", "dev"), default="heldout")
    ap.add_argument("--out", default="docs/bench_sdk_top_relevance.json")
    args = ap.parse_args()
    data = importlib.import_module("inspect_relevance_data" if args.data == "heldout" else "inspect_relevance_dev_data")

    from steerlab.engine.lab import Lab
    from steerlab.features.concept_windows import judge, strongest_windows
    from steerlab.features.concepts import CONCEPTS

    lab = Lab.load(max_batch=2)
    assert lab.store is not None and lab.topic_vectors is not None, "needs the shipped database and topic vectors"
    windows = {f.index: strongest_windows(f) for f in lab.store.iter_features(lab.sae_id, with_examples=True)}

    def about(index: int, concept: str) -> bool:
        return judge(windows.get(index, []), CONCEPTS[concept])[0]

    views = ["in process: relevance top 5", *(f"SDK top(5), relevance listing K={k}" for k in KS)]
    views.append("SDK top(5), specificity listing (the route's default before)")
    hits = dict.fromkeys(views, 0)
    rows = []
    for concept, text in data.TEXTS:
        found = lab.inspect([{"role": "user", "content": text}])
        top = found.top(max(KS))
        tops = {views[0]: [a.index for a in top[:5]]}
        for k, view in zip(KS, views[1:]):
            tops[view] = sdk_top(found.per_token_ranked(top[:k]), 5)
        tops[views[-1]] = sdk_top(found.per_token(specific_only=True, scored_only=True), 5)
        row = {"concept": concept, "text": text, "about": {}}
        for view, indices in tops.items():
            row["about"][view] = [i for i in indices if about(i, concept)]
            hits[view] += bool(row["about"][view])
        rows.append(row)
    n = len(rows)
    out = {
        "data": args.data,
        "texts": n,
        "top5_about_the_concept": {v: {"texts": h, "rate": round(h / n, 3)} for v, h in hits.items()},
        "route_default_K": 10,
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=1))
    lab.close()


if __name__ == "__main__":
    main()
