"""Concept check: for plain-English concepts, does the top search hit's evidence contain the concept?

    python benchmarks/concept_check.py --db features.db [--sae SAE_ID] [--mode hybrid]

For each concept, search the labels; take the top hit's top-activating examples and look at the text
around the strongest activation (24 tokens before, 8 after). A per-concept checker (regex / word
list / stopword counts, no language-ID model) decides whether a window contains the concept; the hit
counts when at least half of its top examples do. Baseline in the same run: the same checkers on
randomly chosen labeled features (how often a checker fires by chance). Prints JSON with the hit
rate, the baseline rate and their ratio, plus every concept's label, index and example pass share.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Callable

Checker = Callable[[str], bool]


def words_any(*words: str) -> Checker:
    pattern = re.compile(r"\b(" + "|".join(words) + r")\b", re.IGNORECASE)
    return lambda text: bool(pattern.search(text))


def words_count(words: str, at_least: int) -> Checker:
    vocabulary = set(words.split())
    return lambda text: sum(w in vocabulary for w in re.findall(r"[a-zà-ÿ']+", text.lower())) >= at_least


def regex(pattern: str, flags: int = 0) -> Checker:
    compiled = re.compile(pattern, flags)
    return lambda text: bool(compiled.search(text))


MONTHS = "january february march april may june july august september october november december".split()
CONCEPTS: dict[str, Checker] = {
    "French text": words_count("le la les des est une et dans pour que qui pas sur avec du au ce il nous vous", 3),
    "German text": words_count("der die das und ist nicht ein eine mit zu den von auf für sich dem", 3),
    "Spanish text": words_count("el la los las y es una por con para que del se su al lo como", 3),
    "Latin text": words_count("et in est non ad cum sed ut quod qui quae de ex per", 3),
    "Python code": regex(r"\b(def|import|return|self|elif|None|lambda|yield|__\w+__)\b|^\s{4}\w", re.MULTILINE),
    "Python function definitions": regex(r"\bdef\s+\w+\s*\("),
    "Python import statements": regex(r"^\s*(import\s+\w|from\s+[\w.]+\s+import)", re.MULTILINE),
    "C code": regex(r"#include|\bprintf\s*\(|\bint\s+\w+\s*[(;=]|\bchar\s*\*|->|\bstruct\s+\w+"),
    "shell commands": regex(
        r"(^|\n)\s*[$#]\s+\w|\b(sudo|apt(-get)?|ls|cd|grep|echo|cat|mkdir|chmod|rm|cp|mv|"
        r"dpkg|systemctl|tar|ssh)\s"
    ),
    "command-line options": regex(r"(^|[\s\[])--?[a-zA-Z][\w-]*"),
    "file paths": regex(r"(^|[\s\"'(=])(~|\.)?/\w[\w.-]*/|\b\w+\.(conf|txt|py|c|h|sh|deb|cfg|log)\b"),
    "URLs and web addresses": regex(r"https?://|\bwww\.|\.(com|org|net|edu)\b"),
    "email addresses": regex(r"[\w.+-]+@[\w-]+\.[\w.]+|<[^>@\s]+@[^>\s]+>"),
    "HTML tags": regex(r"</?[a-zA-Z][\w-]*(\s[^<>]*)?>"),
    "numbers": regex(r"\d"),
    "years": regex(r"\b(1[5-9]\d\d|20\d\d)\b"),
    "months of the year": words_any(
        *MONTHS, "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "oct", "nov", "dec"
    ),
    "days of the week": words_any("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
    "math equations": regex(r"\d\s*[-+*/^=<>]\s*\d|[a-z]\s*[=^]\s*[\d(a-z]|\b(sqrt|sin|cos|log|sum)\b"),
    "questions": regex(
        r"\?|^\s*(what|why|how|who|when|where|which|is|are|do|does|can|could|would)\b", re.IGNORECASE | re.MULTILINE
    ),
    "emotions": words_any(
        "happy",
        "happiness",
        "sad",
        "sadness",
        "angry",
        "anger",
        "fear",
        "afraid",
        "joy",
        "love",
        "hate",
        "anxious",
        "anxiety",
        "grief",
        "lonely",
        "sorrow",
        "delight",
        "glad",
        "upset",
        "jealous",
        "proud",
        "shame",
        "emotion",
        "emotions",
        "feel",
        "feeling",
        "feelings",
        "cheerful",
        "miserable",
        "furious",
        "scared",
        "worried",
        "excited",
    ),
    "animals": words_any(
        "animal",
        "animals",
        "dog",
        "dogs",
        "cat",
        "cats",
        "horse",
        "horses",
        "bird",
        "birds",
        "fish",
        "cow",
        "sheep",
        "lion",
        "tiger",
        "bear",
        "wolf",
        "fox",
        "mouse",
        "rat",
        "snake",
        "insect",
        "bee",
        "ant",
        "mammal",
        "mammals",
        "genus",
        "species",
        "beetle",
        "moth",
        "frog",
        "duck",
        "eagle",
        "whale",
        "monkey",
        "pig",
        "goat",
        "deer",
        "rabbit",
        "owl",
        "spider",
    ),
    "plants and flowers": words_any(
        "plant",
        "plants",
        "flower",
        "flowers",
        "tree",
        "trees",
        "leaf",
        "leaves",
        "rose",
        "seed",
        "seeds",
        "herb",
        "shrub",
        "genus",
        "fern",
        "grass",
        "vine",
        "blossom",
        "petal",
        "petals",
        "root",
        "roots",
        "moss",
        "bush",
        "fruit",
    ),
    "colors": words_any(
        "red",
        "blue",
        "green",
        "yellow",
        "black",
        "white",
        "purple",
        "orange",
        "pink",
        "brown",
        "gray",
        "grey",
        "color",
        "colour",
        "colors",
        "violet",
        "scarlet",
        "crimson",
    ),
    "food": words_any(
        "food",
        "eat",
        "eating",
        "bread",
        "meat",
        "cheese",
        "fruit",
        "apple",
        "soup",
        "cake",
        "dinner",
        "lunch",
        "breakfast",
        "meal",
        "cook",
        "cooking",
        "sugar",
        "salt",
        "milk",
        "egg",
        "eggs",
        "rice",
        "wine",
        "beer",
        "coffee",
        "tea",
        "vegetable",
        "vegetables",
        "pie",
        "butter",
    ),
    "refusals": regex(
        r"\b(I can(no|')t|I'm (sorry|not able|unable)|I am (sorry|not able|unable)|I won't|"
        r"I will not|unable to (help|assist|provide)|can't (help|assist|provide))",
        re.IGNORECASE,
    ),
    "greetings": words_any("hello", "hi", "hey", "greetings", "good morning", "good evening", "welcome", "howdy"),
    "apologies": words_any("sorry", "apologize", "apologise", "apology", "apologies", "excuse me", "forgive"),
    "thanks": words_any("thank", "thanks", "grateful", "gratitude", "appreciate", "appreciated"),
    "dictionary definitions": regex(
        r"\\[\w*\"'-]+\\,|\b(n|v|a|adv|adj)\.\s|\bv\.\s?[ti]\.|\[1913 Webster\]|"
        r"\[Obs\.\]|\bDefn:|^[\w' -]+: [a-z]",
        re.MULTILINE,
    ),
    "etymology": regex(
        r"\bEtym|\b(L|Gr|F|OF|OE|AS|LL|It|Sp|G|D|Icel|Skr)\.\s|\bfrom (Latin|Greek|French|Old "
        r"English)|\[(L|Gr|F|OF|AS)\."
    ),
    "money": regex(
        r"[$£€]\s?\d|\b(dollars?|cents?|money|price|prices|pay|paid|cost|costs|coins?|wealth|rich)\b", re.IGNORECASE
    ),
    "religion": words_any(
        "god",
        "gods",
        "lord",
        "jesus",
        "christ",
        "church",
        "prayer",
        "pray",
        "heaven",
        "hell",
        "bible",
        "holy",
        "religion",
        "religious",
        "faith",
        "sin",
        "soul",
        "angel",
        "devil",
        "saint",
        "priest",
    ),
    "love": words_any(
        "love",
        "loves",
        "loved",
        "lover",
        "heart",
        "kiss",
        "romance",
        "romantic",
        "darling",
        "beloved",
        "marriage",
        "married",
        "sweetheart",
    ),
    "weather": words_any(
        "rain",
        "snow",
        "wind",
        "sunny",
        "storm",
        "weather",
        "cloud",
        "clouds",
        "cloudy",
        "fog",
        "thunder",
        "lightning",
        "hail",
        "frost",
        "temperature",
        "climate",
    ),
    "music": words_any(
        "music",
        "song",
        "songs",
        "sing",
        "singing",
        "melody",
        "piano",
        "guitar",
        "tune",
        "musical",
        "band",
        "opera",
        "violin",
        "drum",
        "chord",
        "composer",
        "symphony",
    ),
    "law and legal terms": words_any(
        "law",
        "laws",
        "legal",
        "court",
        "judge",
        "jury",
        "lawyer",
        "attorney",
        "statute",
        "contract",
        "plaintiff",
        "defendant",
        "rights",
        "crime",
        "illegal",
    ),
    "copyright and licenses": regex(
        r"\b(copyright|licen[cs]e[ds]?|GPL|warranty|trademark|all rights reserved)\b"
        r"|\(C\)|©",
        re.IGNORECASE,
    ),
    "networking": words_any(
        "network",
        "networks",
        "ip",
        "tcp",
        "udp",
        "dns",
        "router",
        "interface",
        "ethernet",
        "packet",
        "packets",
        "port",
        "ports",
        "host",
        "hostname",
        "gateway",
        "subnet",
        "firewall",
        "server",
        "proxy",
        "http",
    ),
    "Debian packages": regex(r"\b(apt(-get)?|dpkg|aptitude|\.deb|debian|package|packages|repository)\b", re.IGNORECASE),
    "quotation marks": regex(r"[\"“”«»]|''|``"),
    "parentheses": regex(r"[()]"),
    "negation": words_any(
        "not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "cannot", "without", r"\w+n't"
    ),
    "war and military": words_any(
        "war",
        "wars",
        "army",
        "soldier",
        "soldiers",
        "battle",
        "weapon",
        "weapons",
        "military",
        "troops",
        "enemy",
        "attack",
        "fight",
        "sword",
        "gun",
        "navy",
    ),
    "death": words_any(
        "death",
        "die",
        "dies",
        "died",
        "dead",
        "dying",
        "kill",
        "killed",
        "funeral",
        "grave",
        "mortal",
        "murder",
        "corpse",
        "buried",
    ),
    "time of day": regex(
        r"\b\d{1,2}:\d{2}\b|\b(morning|evening|night|noon|midnight|afternoon|o'clock|dawn|dusk)\b", re.IGNORECASE
    ),
}


def window_texts(feature, max_examples: int) -> list[str]:
    from steerlab.features.explain.base import context_text

    tops = [e for e in feature.examples_of("top") if e.max_act > 0][:max_examples]
    return [context_text(e, 24, 8) for e in tops]


def passes(checker: Checker, texts: list[str]) -> tuple[bool, float]:
    if not texts:
        return False, 0.0
    share = sum(bool(checker(t)) for t in texts) / len(texts)
    return share >= 0.5, share


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--sae", default=None, help="SAE id inside the database (default: its only SAE).")
    ap.add_argument("--mode", default="hybrid", choices=["semantic", "lexical", "hybrid"])
    ap.add_argument("--examples", type=int, default=10, help="Top examples of the hit to check.")
    ap.add_argument("--baseline-features", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from steerlab.features.identity import pick_sae_id
    from steerlab.features.search import FeatureSearch
    from steerlab.features.store import FeatureStore

    with FeatureStore(args.db, readonly=True) as store:
        sae_id = pick_sae_id(store, args.sae)
        search = FeatureSearch(store, sae_id)
        rows = []
        for concept, checker in CONCEPTS.items():
            hits = search.search(concept, top_k=1, mode=args.mode)
            if not hits:
                rows.append({"concept": concept, "hit": False, "index": None, "label": None, "share": 0.0})
                continue
            feature = store.get_feature(sae_id, hits[0].index, with_examples=True)
            ok, share = passes(checker, window_texts(feature, args.examples))
            rows.append(
                {
                    "concept": concept,
                    "hit": ok,
                    "index": hits[0].index,
                    "label": hits[0].label,
                    "share": round(share, 2),
                }
            )
        labeled = sorted(search.labels)
        sample = random.Random(args.seed).sample(labeled, min(args.baseline_features, len(labeled)))
        texts = {
            f.index: window_texts(f, args.examples) for f in store.get_features(sae_id, sample, with_examples=True)
        }
    chance = {c: sum(passes(chk, t)[0] for t in texts.values()) / max(1, len(texts)) for c, chk in CONCEPTS.items()}
    hit_rate = sum(r["hit"] for r in rows) / len(rows)
    baseline = sum(chance.values()) / len(chance)
    for row in rows:
        row["chance"] = round(chance[row["concept"]], 2)
    print(
        json.dumps(
            {
                "db": args.db,
                "sae": sae_id,
                "mode": args.mode,
                "concepts": len(rows),
                "labeled": len(labeled),
                "hit_rate": round(hit_rate, 4),
                "hits": sum(r["hit"] for r in rows),
                "baseline": {
                    "name": "same checkers on random labeled features",
                    "rate": round(baseline, 4),
                    "features": len(texts),
                },
                "ratio": round(hit_rate / baseline, 2) if baseline else None,
                "results": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
