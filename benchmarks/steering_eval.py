"""Steering evaluation: AutoSteer's edits vs a prompting baseline, AxBench-style, over many concepts.

    OMP_NUM_THREADS=1 python benchmarks/steering_eval.py --concepts 10 --prompts 4 --tokens 32

For each concept, AutoSteer picks features and strengths from the goal text (on its own scoring
prompts; by default with the shipped database's label search as one candidate source, as the server runs it:
``--search``); then ``steering_eval.evaluate_steering`` scores steered, prompted (a system prompt
asking for the concept) and unsteered replies to *held-out* prompts (``EVAL_PROMPTS``): concept
presence (sentence-embedding gain over the unsteered replies, or a word list, whichever is larger),
instruction relevance, fluency (perplexity under the unsteered model, repetition-penalised), and
their harmonic mean (0 if any part is 0). AutoSteer runs once per concept; its edits and the prompting
baseline are scored with each sampling seed of ``--seeds`` (default 0,1,2) and the figure pools them:
4 prompts drawn with one seed swing the ratio 0.93-1.98x. Prints a readable table (the first seed), then
JSON with per-concept figures, the mean combined score of both methods over the seeds and their ratio
(steered / prompted), each seed's own means and ratio (``per_seed``), every value
AutoSteer chose, and **controls** the evaluation must reject, scored by each concept's own scorer:
the unsteered replies, the replies prompted for the *next* concept (fluent and on the question, off
concept) and on-concept word salad (the concept's words, no sentences).

Splits: ``--split test`` (default, the figure) runs ``CONCEPTS`` on the first ``--prompts`` of
``EVAL_PROMPTS``; ``--split dev`` runs ``DEV_CONCEPTS`` on the last ones. AutoSteer's settings are
chosen on the dev split only (``benchmarks/autosteer_dev.py`` compares several in one process).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

# French function words that Spanish, Italian and Portuguese do not share (no "la", "que", "un", "de"):
# over-steered replies in Romance-flavoured word salad must not count as French.
FRENCH = (
    "le les des est une et dans pour qui pas sur avec du au ce il elle nous vous je tu mais très "
    "bien avez suis sont être faire plus aux cette"
).split()
CONCEPTS = [
    (
        "pirate",
        "pirate speech: arr, matey, ahoy, ships and treasure",
        "talk like a pirate",
        "arr arrr matey mateys ahoy aye ye yer pirate pirates treasure ship ships captain sail crew plunder grog "
        "sea seas buccaneer hearty".split(),
    ),
    ("french", "text written in French", "speak French", FRENCH),
    (
        "formal",
        "formal, polite, professional language",
        "be very formal and polite",
        "sir madam kindly regards sincerely furthermore therefore hence shall respectfully pleased moreover "
        "thus accordingly indeed".split(),
    ),
    (
        "food",
        "cooking and food",
        "talk about food",
        "food cook cooking recipe recipes delicious eat eating dish dishes flavor flavour taste kitchen bake "
        "meal meals bread cheese sauce".split(),
    ),
    (
        "weather",
        "the weather: rain, sun, wind and clouds",
        "talk about the weather",
        "weather rain rainy sun sunny cloud clouds cloudy wind windy storm snow temperature forecast".split(),
    ),
    (
        "dogs",
        "dogs and puppies",
        "talk about dogs",
        "dog dogs puppy puppies bark barking leash paw paws fetch canine pup".split(),
    ),
    (
        "space",
        "outer space, planets and stars",
        "talk about outer space",
        "space planet planets star stars galaxy moon orbit astronaut universe rocket cosmic nasa".split(),
    ),
    (
        "music",
        "music and songs",
        "talk about music",
        "music song songs melody guitar piano sing singing rhythm band concert notes musical".split(),
    ),
    (
        "joy",
        "joyful, enthusiastic, happy tone",
        "be very enthusiastic and happy",
        "happy joy love wonderful amazing excited exciting great fantastic delighted awesome yay".split(),
    ),
    (
        "sadness",
        "sad, gloomy, melancholic tone",
        "be sad and gloomy",
        "sad sorrow gloomy tears lonely grief melancholy unfortunately miss lost dark despair".split(),
    ),
]
"""The held-out concepts: the figure is measured on the first ``--concepts`` of these, on the first
``--prompts`` of ``EVAL_PROMPTS``. Nothing about AutoSteer is chosen on them."""
DEV_CONCEPTS = [
    (
        "fantasy",
        "dragons, knights and castles",
        "talk about dragons and knights",
        "dragon dragons knight knights castle castles sword king queen kingdom quest wizard".split(),
    ),
    (
        "sports",
        "football and sports",
        "talk about football",
        "football soccer goal goals team match player players ball score league coach".split(),
    ),
    (
        "cats",
        "cats and kittens",
        "talk about cats",
        "cat cats kitten kittens meow purr purring feline whiskers paw paws litter tabby".split(),
    ),
    (
        "ocean",
        "the ocean, the sea and waves",
        "talk about the ocean",
        "ocean oceans sea seas wave waves beach shore tide tides coral reef fish whale salt".split(),
    ),
    (
        "anger",
        "angry, furious, irritated tone",
        "be angry and irritated",
        "angry anger furious rage mad annoyed irritated hate outrageous ridiculous sick tired fed".split(),
    ),
    (
        "spanish",
        "text written in Spanish",
        "speak Spanish",
        "el los las es una y en para que por con del muy pero como está son también".split(),
    ),
]
"""The development concepts, for choosing anything about AutoSteer (``--split dev``): none of them is
in ``CONCEPTS``, and they are scored on the other half of ``EVAL_PROMPTS``."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--concepts", type=int, default=10, help=f"How many concepts (up to {len(CONCEPTS)}).")
    ap.add_argument("--prompts", type=int, default=4, help="Held-out evaluation prompts per concept.")
    ap.add_argument("--tokens", type=int, default=32, help="Reply length for the evaluation.")
    ap.add_argument(
        "--seeds",
        default="0,1,2",
        help="Sampling seeds the evaluation replies are drawn with (comma-separated). AutoSteer runs once per "
        "concept; its edits and the prompting baseline are scored with every seed and the figure pools them "
        "(one seed of 4 prompts swings the ratio 0.93-1.98x). Each seed's own ratio is reported beside it.",
    )
    ap.add_argument("--only", default=None, help="Comma-separated concept names to run (default: the first N).")
    ap.add_argument(
        "--split",
        choices=("test", "dev"),
        default="test",
        help="test: CONCEPTS on the first --prompts of EVAL_PROMPTS (the figure); dev: DEV_CONCEPTS on the "
        "last --prompts of EVAL_PROMPTS (for choosing AutoSteer's settings).",
    )
    ap.add_argument(
        "--search",
        choices=("none", "label", "hybrid"),
        default="label",
        help="AutoSteer's search source over the shipped feature database: label search (default: as the server, "
        "the SDK and the MCP tool run AutoSteer with a database), none, or label + contexts (hybrid).",
    )
    ap.add_argument("--set", action="append", default=[], help="AutoSteerConfig override, e.g. --set n_prompts=4.")
    ap.add_argument("--model", default="default")
    ap.add_argument("--json-out", default=None, help="Also write the JSON to this file.")
    args = ap.parse_args()

    from steerlab.analysis.autosteer import AutoSteerConfig, auto_steer
    from steerlab.analysis.steering_eval import EVAL_PROMPTS, Concept, evaluate_steering
    from steerlab.engine.lab import Lab

    lab = Lab.load(args.model)
    lm, sae = lab.lm, lab.sae
    search = None
    if args.search != "none":
        if lab.search is None:
            sys.exit("--search needs the model's feature database")
        search = BySearch(lab.search, args.search)
    config = AutoSteerConfig(**dict(parse_override(o) for o in args.set))
    pool = CONCEPTS if args.split == "test" else DEV_CONCEPTS
    prompts = EVAL_PROMPTS[: args.prompts] if args.split == "test" else EVAL_PROMPTS[-args.prompts :]
    seeds = parse_seeds(args.seeds)
    rows, evaluations, started = [], [], time.perf_counter()
    by_seed: dict[int, list[tuple[float, float]]] = {seed: [] for seed in seeds}
    chosen = [c for c in pool if c[0] in args.only.split(",")] if args.only else pool[: args.concepts]
    for name, description, instruction, words in chosen:
        concept = Concept(name, description, instruction, words)
        t0 = time.perf_counter()
        steer = auto_steer(lm, sae, concept.goal, config=config, search=search, labels=lab.labels, sae_id=lab.sae_id)
        t1 = time.perf_counter()
        results = {
            seed: evaluate_steering(lm, sae, concept, steer, prompts, max_new_tokens=args.tokens, seed=seed)
            for seed in seeds
        }
        for seed, each in results.items():
            by_seed[seed].append((each.methods["steered"].combined, each.methods["prompted"].combined))
        result = results[seeds[0]]
        evaluations.append((concept, result))
        row = result.to_dict()
        row["per_seed"] = {
            seed: {m: round(each.methods[m].combined, 4) for m in ("steered", "prompted")}
            for seed, each in results.items()
        }
        best = {i for i, _ in steer.best.edits}
        row.update(
            autosteer_s=round(t1 - t0, 1),
            eval_s=round(time.perf_counter() - t1, 1),
            autosteer_score=round(steer.best.score, 3),
            autosteer_unsteered=round(steer.unsteered.score, 3),
            candidates=[
                {
                    "index": c.index,
                    "label": c.label,
                    "sources": {k: round(float(v), 4) for k, v in c.evidence.items()},
                    "chosen": c.index in best,
                }
                for c in steer.candidates
            ],
        )
        rows.append(row)
        pooled = [sum(row["per_seed"][seed][m] for seed in seeds) / len(seeds) for m in ("steered", "prompted")]
        print(
            f"{name}: steered {pooled[0]:.3f} prompted {pooled[1]:.3f} over seeds {args.seeds} "
            f"({row['autosteer_s']}s + {row['eval_s']}s)",
            file=sys.stderr,
            flush=True,
        )
    controls = run_controls(evaluations, rows)

    per_seed = {}
    for seed, pairs in by_seed.items():
        s_mean, p_mean = (sum(x) / len(pairs) for x in zip(*pairs))
        per_seed[seed] = {"steered": round(s_mean, 4), "prompted": round(p_mean, 4), "ratio": ratio(s_mean, p_mean)}
    steered = sum(v["steered"] for v in per_seed.values()) / len(seeds)
    prompted = sum(v["prompted"] for v in per_seed.values()) / len(seeds)
    print_table(rows)
    print(
        f"seed {seeds[0]} in the table; pooled over seeds {args.seeds}: steered {steered:.3f} prompted "
        f"{prompted:.3f} ratio {ratio(steered, prompted)} (concepts resampled, 90%: "
        f"{concept_bootstrap(rows, seeds)})\n"
    )
    report = {
        "model": lm.name,
        "split": args.split,
        "concepts": len(rows),
        "prompts": len(prompts),
        "tokens": args.tokens,
        "seeds": seeds,
        "search": args.search,
        "autosteer_config": vars(config),
        "mean_combined": {"steered": round(steered, 4), "prompted": round(prompted, 4)},
        "ratio_steered_over_prompted": ratio(steered, prompted),
        "per_seed": per_seed,
        "ratio_interval_90": concept_bootstrap(rows, seeds),
        "steered_wins": sum(
            sum(v["steered"] for v in r["per_seed"].values()) > sum(v["prompted"] for v in r["per_seed"].values())
            for r in rows
        ),
        "chosen_values": sorted(v for r in rows for _, v in r["edits"]),
        "controls": controls,
        "wall_s": round(time.perf_counter() - started, 1),
        "per_concept": rows,
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(text)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        sys.exit(f"--seeds: comma-separated integers, e.g. 0,1,2 (got {text!r})")
    if len(set(seeds)) != len(seeds):
        sys.exit(f"--seeds: each seed once (got {text!r})")
    return seeds


def ratio(steered: float, prompted: float) -> float | None:
    return round(steered / prompted, 3) if prompted else None


def concept_bootstrap(rows: list[dict], seeds: list[int], n_boot: int = 10000) -> list[float] | None:
    """90% percentile interval of the pooled ratio with the concepts resampled (fixed seed): how much the figure
    rests on which 10 concepts were picked. Each concept's score is its mean over the sampling seeds."""
    import random

    pairs = [
        [sum(r["per_seed"][seed][m] for seed in seeds) / len(seeds) for m in ("steered", "prompted")] for r in rows
    ]
    rng, ratios = random.Random(0), []
    for _ in range(n_boot):
        pick = [rng.choice(pairs) for _ in pairs]
        prompted = sum(p for _, p in pick)
        if prompted:
            ratios.append(sum(s for s, _ in pick) / prompted)
    if not ratios:
        return None
    ratios.sort()
    return [round(ratios[int(0.05 * len(ratios))], 3), round(ratios[int(0.95 * len(ratios)) - 1], 3)]


class BySearch:
    """The feature database's search as AutoSteer's ``search`` source, resting on labels or on labels and
    contexts (``FeatureSearch.search``'s ``by``)."""

    def __init__(self, search, by: str):
        self.inner, self.by = search, by

    def search(self, query: str, top_k: int = 10, by: str | None = None):
        """``by``: what AutoSteer asks for, overridden by this source's own (the variant under test)."""
        return self.inner.search(query, top_k=top_k, by=self.by)


def parse_override(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    parsed = json.loads(value) if value[:1] in "[{0123456789.-tfn" else value
    return key, tuple(parsed) if isinstance(parsed, list) else parsed


def word_salad(words: list[str], n: int, seed: int) -> list[str]:
    """On-concept word salad: the concept's own words shuffled among a few fillers (~30 words per reply)."""
    import random

    rng = random.Random(seed)
    filler = "the of and very much is a to in my".split()
    return [" ".join(rng.choice(words if rng.random() < 0.6 else filler) for _ in range(30)) for _ in range(n)]


def run_controls(evaluations, rows) -> dict:
    """Cases a strict evaluation must rate low, scored by each concept's own scorer: its unsteered replies
    (no concept), the replies *prompted for the next concept* (fluent, relevant, off-concept) and on-concept
    word salad (concept words, no sentence). Each control's mean combined score next to both methods'."""
    names = ("unsteered", "off_concept", "word_salad")
    per = {k: [] for k in names}
    for k, (concept, result) in enumerate(evaluations):
        other = evaluations[(k + 1) % len(evaluations)][1] if len(evaluations) > 1 else None
        n = len(result.prompts)
        found = {"unsteered": result.methods["unsteered"]}
        if other is not None:
            found["off_concept"] = result.score_texts("off_concept", other.methods["prompted"].replies[:n])
        found["word_salad"] = result.score_texts("word_salad", word_salad(list(concept.words), n, seed=k))
        rows[k]["controls"] = {
            name: {p: round(getattr(m, p), 3) for p in ("concept", "relevance", "fluency", "combined")}
            for name, m in found.items()
        }
        rows[k]["controls"]["word_salad"]["replies"] = found["word_salad"].replies[:1]
        for name, m in found.items():
            per[name].append(m)
    out = {}
    for name, scores in per.items():
        if scores:
            out[name] = {
                p: round(sum(getattr(m, p) for m in scores) / len(scores), 4)
                for p in ("concept", "relevance", "fluency", "combined")
            }
    return out


def print_table(rows: list[dict]) -> None:
    head = f"{'concept':10s} {'edits':24s} | {'steered: C   R   F   H':24s} | {'prompted: C   R   F   H':24s} | winner"
    print(head)
    print("-" * len(head))
    for r in rows:
        edits = ",".join(f"{i}@{v:.2g}" for i, v in r["edits"]) or "(none)"
        cells = []
        for method in ("steered", "prompted"):
            m = r["methods"][method]
            cells.append(f"{m['concept']:.2f} {m['relevance']:.2f} {m['fluency']:.2f} {m['combined']:.2f}".rjust(24))
        print(f"{r['concept']:10s} {edits[:24]:24s} | {cells[0]} | {cells[1]} | {r['winner']}")
    print()


if __name__ == "__main__":
    main()
