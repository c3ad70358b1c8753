"""Strict checks of what a feature fires on: windows around its strongest tokens, judged by matchers.

A feature is *about* a concept when at least 6 of its 10 strongest contexts show the concept in a
window around the strongest token: 20 tokens before it, 4 after (the residual stream at a position
sees only what came before, so the window leans left). Short windows matter: a 40-token context
nearly always holds a digit, a parenthesis or some common keyword, which is how a lenient check
accepted the Unix ``cat`` feature as "cats".

Matchers decide whether one window shows a concept:

- topics: whole-word, case-insensitive keywords from a specific set; windows that look like code or
  shell commands do not count for everyday topics (``cat /etc/passwd`` is not about cats);
- languages: the fastText identifier the labeler already uses (``explain/language.py``);
- code: syntax patterns specific to each language;
- token-level concepts (numbers, punctuation, single tokens): the strongest token itself, or the
  couple of tokens around it.

``CONCEPTS`` maps plain-English search phrases to matchers (the strict concept check); the same
matchers judge labels (``matcher_for_label``: language, token, punctuation, code and topic labels),
so a label claims a concept only where a matcher can hold it to it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from steerlab.features.explain.base import window
from steerlab.features.explain.language import CODES, detect_language
from steerlab.features.schema import Example, Feature

BEFORE = 20
AFTER = 4
TOP = 10
NEED = 6
"""A feature shows a concept when at least NEED of its TOP strongest windows do."""


@dataclass(frozen=True)
class Window:
    """The tokens around one example's strongest activation; ``peak`` indexes ``tokens``."""

    tokens: tuple[str, ...]
    peak: int

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def peak_token(self) -> str:
        return self.tokens[self.peak] if self.tokens else ""

    def around_peak(self, before: int = 2, after: int = 1) -> str:
        """Text of the few tokens at the peak (token-level concepts are judged there)."""
        return "".join(self.tokens[max(0, self.peak - before) : self.peak + after + 1])


def example_window(example: Example, before: int = BEFORE, after: int = AFTER) -> Window:
    start, end = window(example, before, after)
    center = min(max(example.max_position, 0), max(len(example.tokens) - 1, 0))
    return Window(tuple(example.tokens[start:end]), center - start)


def strongest_windows(feature: Feature, n: int = TOP) -> list[Window]:
    """Windows of the feature's ``n`` strongest firing contexts (its top examples), strongest first."""
    tops = [e for e in feature.examples_of("top") if e.max_act > 0][:n]
    return [example_window(e) for e in tops]


Matcher = Callable[[Window], bool]


def judge(windows: Sequence[Window], matcher: Matcher, need: int = NEED) -> tuple[bool, int]:
    """``(holds, windows that show it)``: holds when at least ``need`` windows show the concept."""
    shown = sum(1 for w in windows if matcher(w))
    return shown >= need, shown


# --- matcher building blocks ---------------------------------------------------------------------

_CODE_SIGNS = [
    re.compile(p, re.MULTILINE)
    for p in (
        r"(^|\n)\s*[$#>]\s+[a-z]",  # a shell prompt
        r"\|\s*(grep|sort|less|more|head|tail|wc|awk|sed|xargs|tee)\b",
        r"(^|\s)--?[a-zA-Z][\w-]*",  # command-line options
        r"(^|[\s\"'=(])(~|\.{1,2})?/(usr|etc|var|bin|dev|tmp|home|opt|lib|proc|sys)\b",
        r"[{};]\s*$",
        r"\w\(\)|\w+\([\w\s,.'\"=*]*\)",  # calls
        r"\b\w+\.\w+\(",
        r"#include|\bdef\s+\w+\(|\bimport\s+[\w.]+|\breturn\b\s*[\w(]",
        r"[=!<>]=|&&|\|\||->|=>|::",
        r"\b[a-z]+_[a-z_]+\b",  # snake_case identifiers
    )
]


def looks_like_code(text: str, signs: int = 2) -> bool:
    """At least ``signs`` distinct code / shell signs in ``text`` (prose rarely has two)."""
    return sum(1 for sign in _CODE_SIGNS if sign.search(text)) >= signs


def keywords(*words: str, prose_only: bool = True) -> Matcher:
    """Any of ``words`` (whole words or phrases, case-insensitive) in the window; with ``prose_only``
    a window that looks like code or shell does not count (everyday topics are about prose)."""
    pattern = re.compile(r"(?<![\w-])(" + "|".join(re.escape(w) for w in words) + r")(?![\w-])", re.IGNORECASE)

    def match(w: Window) -> bool:
        text = w.text
        return bool(pattern.search(text)) and not (prose_only and looks_like_code(text))

    return match


def pattern(regex: str, flags: int = 0, prose_only: bool = False) -> Matcher:
    compiled = re.compile(regex, flags)

    def match(w: Window) -> bool:
        return bool(compiled.search(w.text)) and not (prose_only and looks_like_code(w.text))

    return match


def near_peak(regex: str, flags: int = 0, before: int = 1, after: int = 1) -> Matcher:
    """The pattern in the few tokens at the strongest one (token-level concepts)."""
    compiled = re.compile(regex, flags)
    return lambda w: bool(compiled.search(w.around_peak(before, after)))


def at_peak(regex: str, flags: int = 0) -> Matcher:
    """The strongest token itself (stripped) matches the pattern in full."""
    compiled = re.compile(regex, flags)
    return lambda w: bool(compiled.fullmatch(w.peak_token.strip()))


def language(code: str) -> Matcher:
    """The fastText identifier puts the window in language ``code`` (ISO 639-1)."""
    return lambda w: detect_language(w.text) == code


def peak_is(token: str) -> Matcher:
    """The strongest token is ``token`` (case-insensitive, surrounding whitespace ignored)."""
    want = token.strip().lower()
    if not want:  # whitespace tokens: compare the newlines they hold
        return lambda w: not w.peak_token.strip() and ("\n" in w.peak_token) == ("\n" in token)
    return lambda w: w.peak_token.strip().lower() == want


def any_of(*matchers: Matcher) -> Matcher:
    return lambda w: any(m(w) for m in matchers)


def all_of(*matchers: Matcher) -> Matcher:
    return lambda w: all(m(w) for m in matchers)


# --- code --------------------------------------------------------------------------------------

PYTHON = pattern(
    r"\bdef\s+\w+\s*\(|^\s*(from\s+[\w.]+\s+)?import\s+\w|\bself\.\w|\belif\b|\bNone\b|__\w+__|\blambda\b"
    r"|\bexcept(\s+\w+)?\s*:|\bprint\(|\b(True|False)\b\s*[,):]|^\s*(class|if|for|while|with|try)\b[^\n]*:\s*$",
    re.MULTILINE,
)
SQL = pattern(
    r"\bSELECT\b[\s\S]*\bFROM\b|\bINSERT\s+INTO\b|\bCREATE\s+(TABLE|INDEX|VIEW)\b|\bDELETE\s+FROM\b"
    r"|\bUPDATE\s+\w+\s+SET\b|\b(INNER|LEFT|RIGHT)\s+JOIN\b|\bGROUP\s+BY\b|\bORDER\s+BY\b|\bWHERE\s+\w+\s*(=|<|>|IN\b|LIKE\b)"
)  # upper-case keywords: "select the best from what remains" is English
C_CODE = pattern(
    r"#include|\bprintf\s*\(|\bmalloc\s*\(|\bsizeof\s*\(|\b(int|char|void|long|unsigned|static|const|struct)\s+\**\w+"
    r"\s*[(;=\[,)]|\w->\w"
)
SHELL = pattern(
    r"(^|\n)\s*[$#]\s+\w|\bsudo\s+\w|\b(apt-get|apt|dpkg|systemctl|chmod|chown|mkdir|grep|ls|cd|echo|tar|ssh|rm|cp|mv"
    r"|cat|curl|wget|make)\s+(-{1,2}\w|/|~|\.|[\w.-]+\.\w+\b|\$)|\|\s*(grep|sort|less|head|tail|wc|awk|sed)\b",
)
JAVASCRIPT = pattern(
    r"\bfunction\s*\w*\s*\(|\b(const|let|var)\s+\w+\s*=|=>|console\.log|document\.\w|\brequire\(['\"]|\bexport\s+"
    r"(default|function|const)"
)
LISP = pattern(r"\((def(un|var|macro|custom|const|face|group)|setq|let\*?|lambda|interactive|require|provide)\b")
HTML = pattern(r"</?[a-zA-Z][\w-]*(\s[^<>]*)?/?>")
LATEX = pattern(r"\\(begin|end|frac|section|usepackage|documentclass|textbf|emph|item|label|ref|cite)\b")
CODE = any_of(PYTHON, SQL, C_CODE, SHELL, JAVASCRIPT, LISP, HTML, LATEX)

# --- everyday topics -------------------------------------------------------------------------------

MONTHS = "January February March April May June July August September October November December".split()
_WH = r"(what|why|how|who|whom|whose|when|where|which)"

TOPICS: dict[str, Matcher] = {
    "weather": keywords(
        "weather",
        "rain",
        "rains",
        "raining",
        "rainy",
        "snow",
        "snowing",
        "snowy",
        "storm",
        "storms",
        "stormy",
        "windy",
        "sunny",
        "sunshine",
        "cloudy",
        "clouds",
        "fog",
        "foggy",
        "thunder",
        "lightning",
        "hail",
        "frost",
        "forecast",
        "drizzle",
        "hurricane",
        "tornado",
        "humid",
        "humidity",
        "blizzard",
        "rainfall",
        "showers",
    ),
    "cooking": keywords(
        "cook",
        "cooks",
        "cooking",
        "cooked",
        "recipe",
        "recipes",
        "bake",
        "baked",
        "baking",
        "oven",
        "ingredients",
        "tablespoon",
        "tablespoons",
        "teaspoon",
        "teaspoons",
        "simmer",
        "boil",
        "boiling",
        "fry",
        "fried",
        "frying",
        "saute",
        "sauté",
        "stir",
        "chop",
        "chopped",
        "dough",
        "flour",
        "whisk",
        "roast",
        "roasted",
        "grill",
        "grilled",
        "kitchen",
        "chef",
        "sauce",
        "marinate",
        "preheat",
    ),
    "football": keywords(
        "football",
        "soccer",
        "goalkeeper",
        "striker",
        "midfielder",
        "defender",
        "penalty",
        "league",
        "World Cup",
        "FIFA",
        "UEFA",
        "touchdown",
        "quarterback",
        "NFL",
        "kick-off",
        "kickoff",
        "premier league",
        "referee",
        "offside",
        "halftime",
        "half-time",
    ),
    "food": keywords(
        "food",
        "foods",
        "eat",
        "eating",
        "ate",
        "bread",
        "meat",
        "cheese",
        "fruit",
        "fruits",
        "apple",
        "apples",
        "soup",
        "cake",
        "dinner",
        "lunch",
        "breakfast",
        "meal",
        "meals",
        "vegetable",
        "vegetables",
        "rice",
        "butter",
        "milk",
        "eggs",
        "sugar",
        "dessert",
        "snack",
        "pizza",
        "chicken",
        "beef",
        "pork",
        "salad",
        "delicious",
    ),
    "algebra": any_of(
        keywords(
            "algebra",
            "algebraic",
            "equation",
            "equations",
            "polynomial",
            "polynomials",
            "quadratic",
            "coefficient",
            "coefficients",
            "solve for",
            "linear equation",
            "variable",
            "variables",
            "factorize",
            "factor",
            "exponent",
            "exponents",
            prose_only=False,
        ),
        pattern(r"\b\d*[a-z]\s*(\^|\*\*)\s*\d|\b\d+[xyz]\b|\b[xyz]\s*[-+=]\s*\d"),
    ),
    "poetry": keywords(
        "poem",
        "poems",
        "poetry",
        "poet",
        "poets",
        "poetic",
        "verse",
        "verses",
        "stanza",
        "stanzas",
        "rhyme",
        "rhymes",
        "sonnet",
        "sonnets",
        "haiku",
        "ode",
        "lyric",
        "lyrics",
        "ballad",
        "limerick",
    ),
    "symptoms": keywords(
        "symptom",
        "symptoms",
        "fever",
        "cough",
        "coughing",
        "headache",
        "headaches",
        "nausea",
        "vomiting",
        "fatigue",
        "dizziness",
        "dizzy",
        "rash",
        "sore throat",
        "diarrhea",
        "diarrhoea",
        "swelling",
        "ache",
        "aches",
        "inflammation",
        "chills",
        "shortness of breath",
        "itching",
        "pain",
        "painful",
        "numbness",
        "insomnia",
    ),
    "refusals": pattern(
        r"\b(I\s+(can(no|')?t|won't|will not|am (not able|unable)|'m (not able|unable)|must decline|refuse)"
        r"|I'm sorry,? but|I am sorry,? but|unable to (help|assist|provide|comply)|can't (help|assist|provide) "
        r"with|not (able|allowed) to (help|assist|provide)|against my (guidelines|policy|programming)"
        r"|as an AI,? I (can(no|')?t|don't|do not))",
        re.IGNORECASE,
    ),
    "pirate speech": keywords(
        "ahoy",
        "matey",
        "mateys",
        "arr",
        "arrr",
        "arrrr",
        "me hearties",
        "landlubber",
        "landlubbers",
        "scallywag",
        "shiver me timbers",
        "pirate",
        "pirates",
        "buccaneer",
        "buccaneers",
        "yo ho",
        "yo-ho",
        "plunder",
        "booty",
        "grog",
        "avast",
        "doubloons",
        "me bucko",
        "walk the plank",
    ),
    "history": keywords(
        "history",
        "historical",
        "historian",
        "historians",
        "historically",
        "century",
        "centuries",
        "ancient",
        "medieval",
        "empire",
        "dynasty",
        "revolution",
        "reign",
        "reigned",
        "monarchy",
        "colonial",
        "antiquity",
        "era",
        "BC",
        "BCE",
        "Middle Ages",
        "civilization",
        "kingdom",
        "archaeological",
    ),
    "grief": keywords(
        "grief",
        "grieve",
        "grieving",
        "grieved",
        "mourning",
        "mourn",
        "mourned",
        "bereavement",
        "bereaved",
        "condolences",
        "funeral",
        "sorrow",
        "widow",
        "widowed",
        "heartbroken",
        "passed away",
        "loss of",
        "lost my",
        "died",
        "death of",
        "sympathy",
    ),
    "money": any_of(
        keywords(
            "money",
            "dollar",
            "dollars",
            "cent",
            "cents",
            "price",
            "prices",
            "cost",
            "costs",
            "pay",
            "paid",
            "payment",
            "payments",
            "coin",
            "coins",
            "cash",
            "bank",
            "banks",
            "wealth",
            "salary",
            "wage",
            "wages",
            "euro",
            "euros",
            "pound sterling",
            "budget",
            "loan",
            "loans",
            "debt",
            "currency",
            "income",
            "fee",
            "fees",
            "profit",
            "rich",
            "poor",
            "afford",
            "expensive",
            "cheap",
            "invest",
            "investment",
        ),
        pattern(r"[$£€¥]\s?\d"),
    ),
    "cats": any_of(
        keywords(
            "cats",
            "kitten",
            "kittens",
            "feline",
            "felines",
            "kitty",
            "meow",
            "meowed",
            "purr",
            "purring",
            "purred",
            "tabby",
            "tomcat",
            "whiskers",
            "litter box",
        ),
        pattern(
            r"\b(the|a|my|your|his|her|our|their|black|white|pet|house|stray|wild|this|that)\s+cat\b",
            re.IGNORECASE,
            prose_only=True,
        ),
    ),
    "dogs": any_of(
        keywords("dogs", "puppy", "puppies", "canine", "bark", "barking", "barked", "leash", "doggy", "hound"),
        pattern(r"\b(the|a|my|your|his|her|our|their|pet|stray|this|that)\s+dog\b", re.IGNORECASE, prose_only=True),
    ),
    "letters": any_of(
        keywords(
            "letter",
            "letters",
            "alphabet",
            "alphabetical",
            "uppercase",
            "lowercase",
            "capital letter",
            "vowel",
            "vowels",
            "consonant",
            "consonants",
            "Dear",
            "Sincerely",
            "Yours truly",
            "yours faithfully",
        ),
        at_peak(r"[A-Za-z]"),
    ),
    "biology": keywords(
        "biology",
        "biological",
        "cell",
        "cells",
        "organism",
        "organisms",
        "species",
        "gene",
        "genes",
        "genetic",
        "DNA",
        "RNA",
        "protein",
        "proteins",
        "enzyme",
        "enzymes",
        "evolution",
        "bacteria",
        "bacterial",
        "tissue",
        "tissues",
        "photosynthesis",
        "chromosome",
        "chromosomes",
        "mitochondria",
        "membrane",
        "ecology",
        "genus",
        "anatomy",
        "cellular",
        "molecular",
        "virus",
        "viruses",
        "neurons",
        "immune",
    ),
    "music": keywords(
        "music",
        "musical",
        "musician",
        "musicians",
        "song",
        "songs",
        "sing",
        "singing",
        "sang",
        "singer",
        "melody",
        "piano",
        "guitar",
        "tune",
        "tunes",
        "band",
        "opera",
        "violin",
        "drum",
        "drums",
        "chord",
        "chords",
        "composer",
        "symphony",
        "orchestra",
        "concert",
        "album",
        "rhythm",
        "jazz",
    ),
    "questions": any_of(
        near_peak(r"\?", before=3, after=AFTER),
        pattern(rf"(^|[.!?\n]\s*){_WH}\b[^.!\n]*$", re.IGNORECASE),
        pattern(
            r"(^|[.!?\n]\s*)(can|could|would|will|do|does|did|is|are|should)\s+(you|i|we|it|there|he|she|they)"
            r"\b[^.!\n]*$",
            re.IGNORECASE,
        ),
    ),
    "emotions": keywords(
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
    "animals": keywords(
        "animal",
        "animals",
        "dogs",
        "cats",
        "horse",
        "horses",
        "bird",
        "birds",
        "cow",
        "cows",
        "sheep",
        "lion",
        "tiger",
        "bear",
        "bears",
        "wolf",
        "fox",
        "snake",
        "insect",
        "insects",
        "mammal",
        "mammals",
        "beetle",
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
        "puppy",
        "kitten",
        "wildlife",
    ),
    "plants and flowers": keywords(
        "plant",
        "plants",
        "flower",
        "flowers",
        "tree",
        "trees",
        "leaf",
        "leaves",
        "rose",
        "roses",
        "seed",
        "seeds",
        "herb",
        "herbs",
        "shrub",
        "shrubs",
        "fern",
        "grass",
        "vine",
        "blossom",
        "petal",
        "petals",
        "moss",
        "bloom",
        "botanical",
        "foliage",
    ),
    "colors": keywords(
        "red",
        "blue",
        "green",
        "yellow",
        "purple",
        "orange",
        "pink",
        "brown",
        "gray",
        "grey",
        "color",
        "colour",
        "colors",
        "colours",
        "violet",
        "scarlet",
        "crimson",
        "turquoise",
        "beige",
    ),
    "greetings": keywords("hello", "hi", "hey", "greetings", "good morning", "good evening", "good afternoon", "howdy"),
    "apologies": keywords("sorry", "apologize", "apologise", "apology", "apologies", "excuse me", "forgive me"),
    "thanks": keywords("thank", "thanks", "thank you", "grateful", "gratitude", "appreciate", "appreciated"),
    "religion": keywords(
        "god",
        "gods",
        "lord",
        "jesus",
        "christ",
        "church",
        "prayer",
        "pray",
        "heaven",
        "bible",
        "holy",
        "religion",
        "religious",
        "faith",
        "sin",
        "sins",
        "soul",
        "angel",
        "angels",
        "saint",
        "priest",
        "worship",
        "divine",
    ),
    "love and romance": keywords(
        "love",
        "loves",
        "loved",
        "lover",
        "lovers",
        "kiss",
        "kissed",
        "romance",
        "romantic",
        "darling",
        "beloved",
        "sweetheart",
        "in love",
        "valentine",
        "affection",
        "passion",
    ),
    "law and legal terms": keywords(
        "law",
        "laws",
        "legal",
        "court",
        "courts",
        "judge",
        "jury",
        "lawyer",
        "attorney",
        "statute",
        "plaintiff",
        "defendant",
        "lawsuit",
        "crime",
        "illegal",
        "legislation",
        "liability",
        "verdict",
    ),
    "war and military": keywords(
        "war",
        "wars",
        "army",
        "armies",
        "soldier",
        "soldiers",
        "battle",
        "battles",
        "weapon",
        "weapons",
        "military",
        "troops",
        "enemy",
        "sword",
        "navy",
        "artillery",
        "invasion",
        "regiment",
    ),
    "death": keywords(
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
        "deceased",
    ),
    "sports": keywords(
        "sport",
        "sports",
        "football",
        "soccer",
        "basketball",
        "baseball",
        "tennis",
        "golf",
        "hockey",
        "cricket",
        "athlete",
        "athletes",
        "tournament",
        "championship",
        "olympic",
        "olympics",
        "coach",
        "team",
        "teams",
    ),
    "medicine and health": keywords(
        "medicine",
        "medical",
        "health",
        "doctor",
        "doctors",
        "patient",
        "patients",
        "hospital",
        "disease",
        "diseases",
        "treatment",
        "therapy",
        "drug",
        "drugs",
        "symptoms",
        "diagnosis",
        "nurse",
        "clinical",
    ),
    "education and school": keywords(
        "school",
        "schools",
        "student",
        "students",
        "teacher",
        "teachers",
        "class",
        "classroom",
        "university",
        "college",
        "education",
        "learning",
        "lesson",
        "lessons",
        "homework",
        "exam",
        "exams",
        "curriculum",
    ),
    "travel": keywords(
        "travel",
        "travelling",
        "traveling",
        "trip",
        "trips",
        "journey",
        "tourist",
        "tourists",
        "tourism",
        "hotel",
        "flight",
        "flights",
        "vacation",
        "holiday",
        "passport",
        "airport",
        "destination",
        "sightseeing",
    ),
    "family": keywords(
        "family",
        "families",
        "mother",
        "father",
        "mom",
        "dad",
        "parents",
        "parent",
        "son",
        "daughter",
        "brother",
        "sister",
        "children",
        "child",
        "grandmother",
        "grandfather",
        "wife",
        "husband",
        "uncle",
        "aunt",
    ),
    "computers and software": keywords(
        "computer",
        "computers",
        "software",
        "program",
        "programs",
        "application",
        "applications",
        "file",
        "files",
        "system",
        "install",
        "installed",
        "version",
        "user",
        "users",
        "server",
        "database",
        "configuration",
        prose_only=False,
    ),
    "networking": keywords(
        "network",
        "networks",
        "ip",
        "tcp",
        "udp",
        "dns",
        "router",
        "ethernet",
        "packet",
        "packets",
        "port",
        "ports",
        "hostname",
        "gateway",
        "subnet",
        "firewall",
        "proxy",
        "http",
        "https",
        "socket",
        "bandwidth",
        prose_only=False,
    ),
    "Debian packages": pattern(r"\b(apt(-get)?|dpkg|aptitude|\.deb|debian|package|packages)\b", re.IGNORECASE),
    "copyright and licenses": pattern(
        r"\b(copyright|licen[cs]e[ds]?|GPL|LGPL|warranty|trademark|all rights reserved|MIT License|Apache)\b"
        r"|\(C\)|©",
        re.IGNORECASE,
    ),
    "dictionary definitions": pattern(
        r"\\[\w*\"'-]+\\,|\b(n|v|a|adv|adj)\.\s|\bv\.\s?[ti]\.|\[1913 Webster\]|\[Obs\.\]|\bDefn:",
    ),
    "etymology": pattern(
        r"\bEtym|\b(L|Gr|F|OF|OE|AS|LL|It|Sp|G|D|Icel|Skr)\.\s|\bfrom (Latin|Greek|French|Old English)"
        r"|\[(L|Gr|F|OF|AS)\.|\betymology\b",
        re.IGNORECASE,
    ),
    "negation": near_peak(
        r"(?i)\b(not|no|never|none|nobody|nothing|neither|nor|cannot|without)\b|n't", before=2, after=1
    ),
    "time of day": pattern(
        r"\b\d{1,2}:\d{2}\b|\b(morning|evening|night|noon|midnight|afternoon|o'clock|dawn|dusk|a\.m\.|p\.m\.)\b",
        re.IGNORECASE,
    ),
}

LANGUAGE_CONCEPTS = ("French", "German", "Spanish", "Latin", "Italian", "Portuguese", "Dutch", "Russian")

TOKEN_CONCEPTS: dict[str, Matcher] = {
    "numbers": near_peak(r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|hundred|thousand)\b", re.I, 0, 0),
    "years": near_peak(r"\b(1[5-9]\d\d|20\d\d)\b|^\s*(1[5-9]|20)$|^\d\d$", 0, 1, 1),
    "months of the year": near_peak(r"\b(" + "|".join(m[:3] for m in MONTHS) + r")", re.I, 1, 1),
    "days of the week": near_peak(r"\b(mon|tues|wednes|thurs|fri|satur|sun)day\b", re.I, 2, 1),
    "quotation marks": near_peak(r"[\"“”«»„]|''|``", 0, 0, 0),
    "parentheses": near_peak(r"[()]", 0, 0, 0),
    "commas": at_peak(r",+"),
    "periods": at_peak(r"\.+"),
    "line breaks": lambda w: not w.peak_token.strip() and "\n" in w.peak_token,
    "math equations": near_peak(r"[-+*/^=<>]|\b(sqrt|sin|cos|log|sum)\b|\d", 0, 2, 1),
    "email addresses": pattern(r"[\w.+-]+@[\w-]+\.[\w.]+|<[^>@\s]+@[^>\s]+>"),
    "URLs and web addresses": pattern(r"https?://|\bwww\.|\.(com|org|net|edu|io)\b"),
    "file paths": near_peak(r"/|\\|\.\w{1,4}\b", 0, 2, 1),
    "command-line options": near_peak(r"(^|\s|\[)--?[a-zA-Z]", 0, 2, 1),
}

CODE_CONCEPTS: dict[str, Matcher] = {
    "Python code": PYTHON,
    "Python function definitions": pattern(r"\bdef\s+\w*"),
    "Python import statements": pattern(r"(^|\n)\s*(import\s+\w|from\s+[\w.]+\s+import)"),
    "SQL queries": SQL,
    "C code": C_CODE,
    "shell commands": SHELL,
    "JavaScript code": JAVASCRIPT,
    "Lisp code": LISP,
    "HTML tags": HTML,
    "LaTeX markup": LATEX,
    "source code": CODE,
}


def _concepts() -> dict[str, Matcher]:
    out: dict[str, Matcher] = {f"{name} text": language(CODES[name]) for name in LANGUAGE_CONCEPTS}
    out.update(CODE_CONCEPTS)
    out.update(TOKEN_CONCEPTS)
    out.update(TOPICS)
    return out


CONCEPTS: dict[str, Matcher] = _concepts()
"""Search phrase -> matcher, for the strict concept check (every matcher has a crafted-window test)."""


# --- labels ----------------------------------------------------------------------------------------

_TOKEN_LABEL = re.compile(r'^(?:the word |the token )?"(.+)"(?: tokens?)?(?: in (.+))?$')
_LANGUAGE_LABEL = re.compile(r"^(\w+) text$")


def _punctuation_names() -> dict[str, str]:
    from steerlab.features.explain.offline import PUNCTUATION_NAMES

    return {name: token for token, name in PUNCTUATION_NAMES.items()}


def matcher_for_label(text: str) -> Matcher | None:
    """The matcher that can hold a label to its claim, or None when no automatic check exists.

    Handles language labels (``French text``), token labels (``"import" tokens``, ``the word "to"``,
    ``"aqu" in Catalan text``), punctuation names (``commas``), code labels and the topics above.
    """
    text = text.strip()
    lowered = text.lower()
    token = _TOKEN_LABEL.match(text)
    if token:
        peak = peak_is(token.group(1))
        if token.group(2):
            rest = matcher_for_label(token.group(2))
            return all_of(peak, rest) if rest is not None else None
        return peak
    lang = _LANGUAGE_LABEL.match(text)
    if lang and lang.group(1).capitalize() in CODES:
        return language(CODES[lang.group(1).capitalize()])
    names = _punctuation_names()
    if lowered in names:
        return peak_is(names[lowered])
    for table in (CODE_CONCEPTS, TOKEN_CONCEPTS, TOPICS):
        for name, matcher in table.items():
            if lowered == name.lower():
                return matcher
    return None


def is_description(text: str) -> bool:
    """Whether a label names tokens rather than a concept (``"cat" tokens in shell commands``, ``commas``,
    ``the word "to"``): such labels are checked against the peak tokens, not scored as concepts."""
    text = text.strip()
    return bool(_TOKEN_LABEL.match(text)) or text.lower() in _punctuation_names() or text == "whitespace"
