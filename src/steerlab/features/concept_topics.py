"""Everyday topics of the concept catalogue (``concepts.py``): a search phrase -> the strict matcher
(``concept_windows.py``: keywords, patterns or peak tokens in the windows around a feature's strongest
tokens) that says whether a feature's contexts are about it. A table, kept apart from the catalogue's logic."""

from __future__ import annotations

import re

from steerlab.features.concept_windows import AFTER, Matcher, any_of, at_peak, keywords, near_peak, pattern

_WH = r"(what|why|how|who|whom|whose|when|where|which)"

# keywords packed by hand: one a line (the formatter's way) made this table 860 lines
# fmt: off
TOPICS: dict[str, Matcher] = {
    "weather": keywords(
        "weather", "rain", "rains", "raining", "rainy", "snow", "snowing", "snowy", "storm", "storms", "stormy",
        "windy", "sunny", "sunshine", "cloudy", "clouds", "fog", "foggy", "thunder", "lightning", "hail", "frost",
        "forecast", "drizzle", "hurricane", "tornado", "humid", "humidity", "blizzard", "rainfall", "showers",
    ),
    "cooking": keywords(
        "cook", "cooks", "cooking", "cooked", "recipe", "recipes", "bake", "baked", "baking", "oven", "ingredients",
        "tablespoon", "tablespoons", "teaspoon", "teaspoons", "simmer", "boil", "boiling", "fry", "fried", "frying",
        "saute", "sauté", "stir", "chop", "chopped", "dough", "flour", "whisk", "roast", "roasted", "grill", "grilled",
        "kitchen", "chef", "sauce", "marinate", "preheat",
    ),
    "football": keywords(
        "football", "soccer", "goalkeeper", "striker", "midfielder", "defender", "penalty", "league", "World Cup",
        "FIFA", "UEFA", "touchdown", "quarterback", "NFL", "kick-off", "kickoff", "premier league", "referee",
        "offside", "halftime", "half-time",
    ),
    "food": keywords(
        "food", "foods", "eat", "eating", "ate", "bread", "meat", "cheese", "fruit", "fruits", "apple", "apples",
        "soup", "cake", "dinner", "lunch", "breakfast", "meal", "meals", "vegetable", "vegetables", "rice", "butter",
        "milk", "eggs", "sugar", "dessert", "snack", "pizza", "chicken", "beef", "pork", "salad", "delicious",
    ),
    "algebra": any_of(
        keywords(
            "algebra", "algebraic", "equation", "equations", "polynomial", "polynomials", "quadratic", "coefficient",
            "coefficients", "solve for", "linear equation", "variable", "variables", "factorize", "factor", "exponent",
            "exponents", prose_only=False,
        ),
        pattern(r"\b\d*[a-z]\s*(\^|\*\*)\s*\d|\b\d+[xyz]\b|\b[xyz]\s*[-+=]\s*\d"),
    ),
    "poetry": keywords(
        "poem", "poems", "poetry", "poet", "poets", "poetic", "verse", "verses", "stanza", "stanzas", "rhyme", "rhymes",
        "sonnet", "sonnets", "haiku", "ode", "lyric", "lyrics", "ballad", "limerick",
    ),
    "symptoms": keywords(
        "symptom", "symptoms", "fever", "cough", "coughing", "headache", "headaches", "nausea", "vomiting", "fatigue",
        "dizziness", "dizzy", "rash", "sore throat", "diarrhea", "diarrhoea", "swelling", "ache", "aches",
        "inflammation", "chills", "shortness of breath", "itching", "pain", "painful", "numbness", "insomnia",
    ),
    "refusals": pattern(
        r"\b(I\s+(can(no|')?t|won't|will not|am (not able|unable)|'m (not able|unable)|must decline|refuse)"
        r"|I'm sorry,? but|I am sorry,? but|unable to (help|assist|provide|comply)|can't (help|assist|provide) "
        r"with|not (able|allowed) to (help|assist|provide)|against my (guidelines|policy|programming)"
        r"|as an AI,? I (can(no|')?t|don't|do not))",
        re.IGNORECASE,
    ),
    "pirate speech": keywords(
        "ahoy", "matey", "mateys", "arr", "arrr", "arrrr", "me hearties", "landlubber", "landlubbers", "scallywag",
        "shiver me timbers", "pirate", "pirates", "buccaneer", "buccaneers", "yo ho", "yo-ho", "plunder", "booty",
        "grog", "avast", "doubloons", "me bucko", "walk the plank",
    ),
    "history": keywords(
        "history", "historical", "historian", "historians", "historically", "century", "centuries", "ancient",
        "medieval", "empire", "dynasty", "revolution", "reign", "reigned", "monarchy", "colonial", "antiquity", "era",
        "BC", "BCE", "Middle Ages", "civilization", "kingdom", "archaeological",
    ),
    "grief": keywords(
        "grief", "grieve", "grieving", "grieved", "mourning", "mourn", "mourned", "bereavement", "bereaved",
        "condolences", "funeral", "sorrow", "widow", "widowed", "heartbroken", "passed away", "loss of", "lost my",
        "died", "death of", "sympathy",
    ),
    "money": any_of(
        keywords(
            "money", "dollar", "dollars", "cent", "cents", "price", "prices", "cost", "costs", "pay", "paid", "payment",
            "payments", "coin", "coins", "cash", "bank", "banks", "wealth", "salary", "wage", "wages", "euro", "euros",
            "pound sterling", "budget", "loan", "loans", "debt", "currency", "income", "fee", "fees", "profit", "rich",
            "poor", "afford", "expensive", "cheap", "invest", "investment",
        ),
        pattern(r"[$£€¥]\s?\d"),
    ),
    "cats": any_of(
        keywords(
            "cats", "kitten", "kittens", "feline", "felines", "kitty", "meow", "meowed", "purr", "purring", "purred",
            "tabby", "tomcat", "whiskers", "litter box",
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
            "letter", "letters", "alphabet", "alphabetical", "uppercase", "lowercase", "capital letter", "vowel",
            "vowels", "consonant", "consonants", "Dear", "Sincerely", "Yours truly", "yours faithfully",
        ),
        at_peak(r"[A-Za-z]"),
    ),
    "biology": keywords(
        "biology", "biological", "cell", "cells", "organism", "organisms", "species", "gene", "genes", "genetic", "DNA",
        "RNA", "protein", "proteins", "enzyme", "enzymes", "evolution", "bacteria", "bacterial", "tissue", "tissues",
        "photosynthesis", "chromosome", "chromosomes", "mitochondria", "membrane", "ecology", "genus", "anatomy",
        "cellular", "molecular", "virus", "viruses", "neurons", "immune",
    ),
    "music": keywords(
        "music", "musical", "musician", "musicians", "song", "songs", "sing", "singing", "sang", "singer", "melody",
        "piano", "guitar", "tune", "tunes", "band", "opera", "violin", "drum", "drums", "chord", "chords", "composer",
        "symphony", "orchestra", "concert", "album", "rhythm", "jazz",
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
        "happy", "happiness", "sad", "sadness", "angry", "anger", "fear", "afraid", "joy", "love", "hate", "anxious",
        "anxiety", "grief", "lonely", "sorrow", "delight", "glad", "upset", "jealous", "proud", "shame", "emotion",
        "emotions", "feel", "feeling", "feelings", "cheerful", "miserable", "furious", "scared", "worried", "excited",
    ),
    "animals": keywords(
        "animal", "animals", "dogs", "cats", "horse", "horses", "bird", "birds", "cow", "cows", "sheep", "lion",
        "tiger", "bear", "bears", "wolf", "fox", "snake", "insect", "insects", "mammal", "mammals", "beetle", "frog",
        "duck", "eagle", "whale", "monkey", "pig", "goat", "deer", "rabbit", "owl", "spider", "puppy", "kitten",
        "wildlife",
    ),
    "plants and flowers": keywords(
        "plant", "plants", "flower", "flowers", "tree", "trees", "leaf", "leaves", "rose", "roses", "seed", "seeds",
        "herb", "herbs", "shrub", "shrubs", "fern", "grass", "vine", "blossom", "petal", "petals", "moss", "bloom",
        "botanical", "foliage",
    ),
    "colors": keywords(
        "red", "blue", "green", "yellow", "purple", "orange", "pink", "brown", "gray", "grey", "color", "colour",
        "colors", "colours", "violet", "scarlet", "crimson", "turquoise", "beige",
    ),
    "greetings": keywords("hello", "hi", "hey", "greetings", "good morning", "good evening", "good afternoon", "howdy"),
    "apologies": keywords("sorry", "apologize", "apologise", "apology", "apologies", "excuse me", "forgive me"),
    "thanks": keywords("thank", "thanks", "thank you", "grateful", "gratitude", "appreciate", "appreciated"),
    "religion": keywords(
        "god", "gods", "lord", "jesus", "christ", "church", "prayer", "pray", "heaven", "bible", "holy", "religion",
        "religious", "faith", "sin", "sins", "soul", "angel", "angels", "saint", "priest", "worship", "divine",
    ),
    "love and romance": keywords(
        "love", "loves", "loved", "lover", "lovers", "kiss", "kissed", "romance", "romantic", "darling", "beloved",
        "sweetheart", "in love", "valentine", "affection", "passion",
    ),
    "law and legal terms": keywords(
        "law", "laws", "legal", "court", "courts", "judge", "jury", "lawyer", "attorney", "statute", "plaintiff",
        "defendant", "lawsuit", "crime", "illegal", "legislation", "liability", "verdict",
    ),
    "war and military": keywords(
        "war", "wars", "army", "armies", "soldier", "soldiers", "battle", "battles", "weapon", "weapons", "military",
        "troops", "enemy", "sword", "navy", "artillery", "invasion", "regiment",
    ),
    "death": keywords(
        "death", "die", "dies", "died", "dead", "dying", "kill", "killed", "funeral", "grave", "mortal", "murder",
        "corpse", "buried", "deceased",
    ),
    "sports": keywords(
        "sport", "sports", "football", "soccer", "basketball", "baseball", "tennis", "golf", "hockey", "cricket",
        "athlete", "athletes", "tournament", "championship", "olympic", "olympics", "coach", "team", "teams",
    ),
    "medicine and health": keywords(
        "medicine", "medical", "health", "doctor", "doctors", "patient", "patients", "hospital", "disease", "diseases",
        "treatment", "therapy", "drug", "drugs", "symptoms", "diagnosis", "nurse", "clinical",
    ),
    "education and school": keywords(
        "school", "schools", "student", "students", "teacher", "teachers", "class", "classroom", "university",
        "college", "education", "learning", "lesson", "lessons", "homework", "exam", "exams", "curriculum",
    ),
    "travel": keywords(
        "travel", "travelling", "traveling", "trip", "trips", "journey", "tourist", "tourists", "tourism", "hotel",
        "flight", "flights", "vacation", "holiday", "passport", "airport", "destination", "sightseeing",
    ),
    "family": keywords(
        "family", "families", "mother", "father", "mom", "dad", "parents", "parent", "son", "daughter", "brother",
        "sister", "children", "child", "grandmother", "grandfather", "wife", "husband", "uncle", "aunt",
    ),
    "computers and software": keywords(
        "computer", "computers", "software", "program", "programs", "application", "applications", "file", "files",
        "system", "install", "installed", "version", "user", "users", "server", "database", "configuration",
        prose_only=False,
    ),
    "networking": keywords(
        "network", "networks", "ip", "tcp", "udp", "dns", "router", "ethernet", "packet", "packets", "port", "ports",
        "hostname", "gateway", "subnet", "firewall", "proxy", "http", "https", "socket", "bandwidth", prose_only=False,
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
# fmt: on
