"""Do inspect and contrast show what a text is about? Before (frequency ranking over every token), the
specificity ranking over the content tokens, and after (the default: relevance, specificity weighted by
what the text is about, ``features.topic``), in one run, on the bundled default model.

    python benchmarks/inspect_relevance.py [--out docs/bench_inspect_relevance.json] [--data dev]

``--data dev`` runs the development set (``inspect_relevance_dev_data.py``: the texts and pairs the
ranking may be tuned on) instead of the held-out one (``inspect_relevance_data.py``, never tuned on).

Inspect: for each of the texts of ``inspect_relevance_data.TEXTS`` (short, distinct topics, each tagged
with a concept of the concept benchmark), is a feature *about the concept* among the top 5 of the
default inspect view (``aggregate_by="count"``, the SDK's default)? A feature is about it by the strict
window check of ``benchmarks/concept_check.py`` (``features.concept_windows``: at least 6 of its 10
strongest corpus contexts show the concept around the peak). Also: how many texts' top 10 the most
common feature appears in, and the ceiling (texts where *any* feature active on the content passes the
check: no ranking can do better). Contrast: for each of ``PAIRS`` (two conversations a side, style and
topic pairs), is a feature about dataset_1's concept among its top 3? And its ceiling: pairs where any
feature active on dataset_1's content passes the check.

Latency: each text's inspect (the model's forward) and its top-10 under specificity and under relevance
(which embeds the text), and the one-off cost of loading the topic vectors, in the same run.

The check is shown to reject: each text's after-top-5 judged against another text's concept (a
mismatched concept should rarely pass), and the before view's features judged against the texts'
own concepts (named rejections).
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from collections import Counter
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="docs/bench_inspect_relevance.json")
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--data", choices=("heldout", "dev"), default="heldout")
    args = ap.parse_args()
    data = importlib.import_module("inspect_relevance_data" if args.data == "heldout" else "inspect_relevance_dev_data")
    TEXTS, PAIRS = data.TEXTS, data.PAIRS

    from steerlab.analysis.contrast import contrast
    from steerlab.analysis.inspect import RELEVANCE_DEFINITION, inspect
    from steerlab.engine.lab import Lab
    from steerlab.features.concept_windows import judge, strongest_windows
    from steerlab.features.concepts import CONCEPTS
    from steerlab.features.specificity import DEFINITION, SPECIFIC_AT

    t0 = time.perf_counter()
    lab = Lab.load(max_batch=2)
    stats = lab.corpus_stats
    assert stats is not None and lab.store is not None and lab.sae_id is not None
    t_topic = time.perf_counter()
    topic = lab.topic_vectors
    assert topic is not None, "the embedding model or the label vectors are missing"
    from steerlab.features.topic import embed_text

    embed_text("warm the query encoder")
    topic_load_s = time.perf_counter() - t_topic
    # every feature's strongest windows, read once (one query per feature was most of the run's time)
    windows = {f.index: strongest_windows(f) for f in lab.store.iter_features(lab.sae_id, with_examples=True)}
    judged: dict[tuple[int, str], bool] = {}

    def about(index: int, concept: str) -> bool:
        if (index, concept) not in judged:
            judged[(index, concept)] = judge(windows.get(index, []), CONCEPTS[concept])[0]
        return judged[(index, concept)]

    views = {
        "before: frequency, every token": dict(rank_by="frequency", include_template=True),
        "frequency, content tokens only": dict(rank_by="frequency", include_template=False),
        "specificity, content tokens (the previous default)": dict(rank_by="specificity", include_template=False),
        "after: relevance, content tokens (default)": dict(rank_by=None, include_template=False),
    }
    by_views = ("count", "max")
    rows, tops = [], {(v, by): [] for v in views for by in by_views}
    timing: dict[str, list[float]] = {"inspect_forward": [], "top10_specificity": [], "top10_relevance": []}
    for concept, text in TEXTS:
        messages = [{"role": "user", "content": text}]
        t = time.perf_counter()
        found = inspect(
            lab.lm, lab.sae, messages, labels=lab.labels, sae_id=lab.sae_id, corpus_stats=stats, topic=topic
        )
        timing["inspect_forward"].append(time.perf_counter() - t)
        found.specificity  # noqa: B018 (computed once per inspection, shared by both rankings: timed apart)
        t = time.perf_counter()
        found.top(10, rank_by="specificity")
        timing["top10_specificity"].append(time.perf_counter() - t)
        t = time.perf_counter()
        found.top(10)
        timing["top10_relevance"].append(time.perf_counter() - t)  # includes embedding the text
        row = {"concept": concept, "text": text, "views": {}}
        for view, opts in views.items():
            found.include_template = opts["include_template"]
            for by in by_views:
                top = found.top(10, by=by, rank_by=opts["rank_by"])
                hit = [f.index for f in top[: args.top] if about(f.index, concept)]
                tops[(view, by)].append([f.index for f in top])
                row["views"][f"{view} / {by}"] = {
                    "top5": [(f.index, f.label) for f in top[: args.top]],
                    "about": hit,
                    "ranked_by": top[0].ranked_by if top else None,
                    "relevance": [None if f.relevance is None else round(f.relevance, 3) for f in top[: args.top]],
                }
        found.include_template = False
        content = found.codes_raw[found.scored]
        active = (content > 0).any(0).nonzero().flatten().tolist()
        row["ceiling"] = [i for i in active if about(i, concept)][:10]
        rows.append(row)

    n = len(rows)
    summary = {}
    for view in views:
        for by in by_views:
            key = f"{view} / {by}"
            hits = sum(1 for r in rows if r["views"][key]["about"])
            counts = Counter(i for top in tops[(view, by)] for i in set(top))
            common, times = counts.most_common(1)[0] if counts else (None, 0)
            summary[key] = {
                "top5_relevant": hits,
                "top5_relevant_rate": round(hits / n, 3),
                "most_common_top10_feature": [common, lab.labels.get(common, "") if common is not None else ""],
                "most_common_top10_share": round(times / n, 3),
                "features_in_over_30pct_of_top10s": sum(1 for c in counts.values() if c / n > 0.30),
            }
    ceiling = sum(1 for r in rows if r["ceiling"])
    default = "after: relevance, content tokens (default) / count"
    previous = "specificity, content tokens (the previous default) / count"
    reachable = [r for r in rows if r["ceiling"]]

    # the check rejects: mismatched concepts, and the before view's features on the texts' own concepts
    shuffled = 0
    for i, r in enumerate(rows):
        other = rows[(i + 7) % n]["concept"]
        shuffled += any(about(idx, other) for idx, _ in r["views"][default]["top5"])
    rejected = []
    for r in rows[:6]:
        for idx, label in r["views"]["before: frequency, every token / count"]["top5"][:2]:
            ok, shown = judge(windows[idx], CONCEPTS[r["concept"]])
            if not ok:
                rejected.append({"feature": idx, "label": label, "concept": r["concept"], "windows_showing_it": shown})

    pair_rows = []
    for name, concept, d1, d2 in PAIRS:
        pr = {"pair": name, "concept": concept, "ceiling": []}
        for messages in d1:
            got = inspect(lab.lm, lab.sae, messages, labels=lab.labels, sae_id=lab.sae_id)
            active = (got.codes_raw[got.scored] > 0).any(0).nonzero().flatten().tolist()
            pr["ceiling"] += [i for i in active if about(i, concept) and i not in pr["ceiling"]]
        contrast_views = (
            ("before", dict(rank_by="frequency", include_template=True)),
            ("specificity", dict(rank_by="specificity")),
            ("after", {}),
        )
        for view, opts in contrast_views:
            t = time.perf_counter()
            res = contrast(lab.lm, lab.sae, d1, d2, top_k=3, labels=lab.labels, corpus_stats=stats, topic=topic, **opts)
            timing.setdefault(f"contrast_{view}", []).append(time.perf_counter() - t)
            pr[view] = {
                "top3": [
                    (f.index, f.label, round(f.effect, 3), None if f.effect_low is None else round(f.effect_low, 3))
                    for f in res.dataset_1_features
                ],
                "about": [f.index for f in res.dataset_1_features if about(f.index, concept)],
                "support": [f.support for f in res.dataset_1_features],
                "ranked_by": res.ranked_by,
                "note": res.note,
            }
        pair_rows.append(pr)
    pairs_n = len(pair_rows)

    out = {
        "what": "inspect top-5 / contrast top-3 relevance by the strict window check (features.concept_windows)",
        "command": "python benchmarks/inspect_relevance.py" + (" --data dev" if args.data == "dev" else ""),
        "data": args.data,
        "model": lab.model_name,
        "sae_id": lab.sae_id,
        "statistic": {
            "default": {"name": "relevance", "definition": RELEVANCE_DEFINITION, "evidence": list(topic.sources)},
            "specificity": {"name": "specificity", "definition": DEFINITION, "specific_at": SPECIFIC_AT},
        },
        "latency_ms": {
            "topic_vectors_load_and_encoder_warm_once": round(topic_load_s * 1000, 1),
            **{
                name: {"median": round(1000 * sorted(v)[len(v) // 2], 2), "max": round(1000 * max(v), 2)}
                for name, v in timing.items()
            },
        },
        "texts": n,
        "inspect": summary,
        "inspect_ceiling": {
            "texts_with_any_passing_active_feature": ceiling,
            "rate": round(ceiling / n, 3),
            "default_view_hits_where_reachable": sum(1 for r in reachable if r["views"][default]["about"]),
            "before_view_hits_where_reachable": sum(
                1 for r in reachable if r["views"]["before: frequency, every token / count"]["about"]
            ),
            "specificity_view_hits_where_reachable": sum(1 for r in reachable if r["views"][previous]["about"]),
            "reachable_texts": len(reachable),
        },
        "check_rejects": {
            "after_top5_judged_against_a_mismatched_concept": shuffled,
            "rate": round(shuffled / n, 3),
            "before_top_features_rejected_for_their_text": rejected,
        },
        "contrast": {
            "pairs": pairs_n,
            "views": {
                "before": "frequency (rank-biserial), every token",
                "specificity": "specificity with support, content tokens (the previous default)",
                "after": "relevance: specificity with support, weighted by the side's topical relevance (default)",
            },
            "before_top3_relevant": sum(1 for p in pair_rows if p["before"]["about"]),
            "specificity_top3_relevant": sum(1 for p in pair_rows if p["specificity"]["about"]),
            "after_top3_relevant": sum(1 for p in pair_rows if p["after"]["about"]),
            "before_rate": round(sum(1 for p in pair_rows if p["before"]["about"]) / pairs_n, 3),
            "specificity_rate": round(sum(1 for p in pair_rows if p["specificity"]["about"]) / pairs_n, 3),
            "after_rate": round(sum(1 for p in pair_rows if p["after"]["about"]) / pairs_n, 3),
            "ceiling_pairs_with_any_passing_dataset_1_feature": sum(1 for p in pair_rows if p["ceiling"]),
            "ceiling_rate": round(sum(1 for p in pair_rows if p["ceiling"]) / pairs_n, 3),
        },
        "seconds": round(time.perf_counter() - t0, 1),
        "texts_detail": rows,
        "pairs_detail": pair_rows,
    }
    text = json.dumps(out, indent=1, ensure_ascii=False)
    Path(args.out).write_text(text + "\n")
    brief = {k: out[k] for k in ("inspect", "inspect_ceiling", "check_rejects", "contrast", "latency_ms", "seconds")}
    print(json.dumps(brief, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
