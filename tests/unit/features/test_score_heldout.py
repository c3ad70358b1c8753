"""The held-out scorer: explainers and scorer never see the same examples; a label that only renames the
strongest token, or that does not beat random concept phrases, is not shown as a concept."""

from __future__ import annotations

import re

import pytest

from steerlab.features.schema import Example, Feature, Label
from steerlab.features.score_heldout import (
    HeldOutScorer,
    choice_view,
    claims_concept,
    held_out_contexts,
    is_held_out,
)

FILLER = (
    "The installation guide explains each step of the setup so that a new administrator can follow it without "
    "help and check the result before moving on to the next chapter of the manual"
).split() * 2


def ex(kind: str, rank: int, words: list[str], fire_at: list[int], seq: int | None = None) -> Example:
    tokens = [(" " + w) if i else w for i, w in enumerate(words)]
    acts = [0.0] * len(tokens)
    for j, p in enumerate(fire_at):
        acts[p] = 5.0 - 0.5 * j
    peak = max(range(len(acts)), key=lambda i: acts[i])
    return Example(
        kind=kind, rank=rank, tokens=tokens, token_ids=list(range(len(tokens))), acts=acts, max_act=acts[peak],
        max_position=peak if acts[peak] > 0 else 0, sequence_id=seq,
    )  # fmt: skip


def shell_line(i: int) -> list[str]:
    words = FILLER[i % 7 : i % 7 + 24] + ["$", "cat", f"/etc/conf{i}.d/main.cfg", "|", "grep", "-n", "root"]
    words += ["&&", "cat", "/var/log/syslog", "|", "tail", "-n", "20"]
    return words


def cat_feature() -> Feature:
    """Fires on the Unix `cat` command (twice per context), as feature #3724 of the shipped database."""
    examples = []
    for r in range(12):
        w = shell_line(r)
        examples.append(ex("top", r, w, [w.index("cat"), len(w) - 7], seq=100 + r))
    for r in range(10):
        w = shell_line(r + 20)
        examples.append(ex("quantile", r, w, [w.index("cat"), len(w) - 7], seq=200 + r))
    for r in range(4):
        examples.append(ex("nonactivating", r, FILLER[r : r + 30], [], seq=300 + r))
    return Feature(uuid="u", sae_id="s", index=3724, examples=examples)


def test_split_is_disjoint_and_held_out_has_enough_contexts():
    f = cat_feature()
    chosen = choice_view(f).examples
    assert chosen and not any(is_held_out(e) for e in chosen)
    assert {(e.kind, e.rank) for e in chosen} == {(e.kind, e.rank) for e in f.examples if not is_held_out(e)}
    positives, negatives, counts = held_out_contexts(f)
    assert counts["n_pos"] >= 20 and counts["n_neg"] >= 20 and counts["n_random"] > 0 and counts["n_near_miss"] > 0
    assert all(p.acts[p.max_position] > 0 for p in positives)
    assert all(max(n.acts) == 0 and n.max_act == 0 for n in negatives)
    # every positive comes from a held-out example, never from what the explainer saw
    seen = {tuple(e.tokens) for e in chosen}
    assert not any(tuple(p.tokens) in seen for p in positives)


@pytest.fixture(scope="module")
def scorer() -> HeldOutScorer:
    return HeldOutScorer(contexts="tokens")


def test_cats_label_on_the_unix_cat_feature_is_replaced_by_what_fires(scorer):
    f = cat_feature()
    (out,) = scorer.score([f], [Label(text="cats", explainer="offline")])
    assert out.score_details["decision"] == "fires-on"
    assert out.text == '"cat" tokens in shell commands'
    assert out.score_details["concept_label"] == "cats" and claims_concept(out.text)


def test_unclear_when_nothing_fires_consistently(scorer):
    examples = []
    for r in range(12):
        w = FILLER[r : r + 30]
        examples.append(ex("top", r, w, [20 + r % 5]))  # a different word each time
    for r in range(10):
        examples.append(ex("quantile", r, FILLER[r + 1 : r + 31], [22 - r % 4]))
    for r in range(4):
        examples.append(ex("nonactivating", r, FILLER[r : r + 30], [], seq=2 * r + 1))
    f = Feature(uuid="u", sae_id="s", index=1, examples=examples)
    (out,) = scorer.score([f], [Label(text="weather", explainer="offline")])
    assert out.score_details["decision"] == "unclear" and out.text.startswith("unclear: fires on ")
    assert not claims_concept(out.text) and out.score_details["concept_label"] == "weather"


def test_a_topic_label_that_fits_is_kept_as_a_concept(scorer):
    weather = (
        "heavy rain and strong wind are expected tonight with snow on the hills and thunder storms near the coast "
        "while the forecast for tomorrow promises sunshine after the fog clears and the temperature rises"
    ).split()
    examples = []
    for r in range(22):
        kind, rank = ("top", r) if r < 12 else ("quantile", r - 12)
        w = weather[r % 5 :] + FILLER[:3]
        fire = [i for i, t in enumerate(w) if t in {"rain", "wind", "snow", "thunder", "storms", "fog", "sunshine"}]
        examples.append(ex(kind, rank, w, fire))
    for r in range(4):
        examples.append(ex("nonactivating", r, FILLER[r : r + 30], [], seq=2 * r + 1))
    f = Feature(uuid="u", sae_id="s", index=2, examples=examples)
    (out,) = scorer.score([f], [Label(text="weather", explainer="offline")])
    assert out.text == "weather" and out.score_details["decision"] == "concept"
    assert out.score > out.score_details["null_p90"]


def test_token_labels_are_checked_on_held_out_peaks(scorer):
    f = cat_feature()
    (out,) = scorer.score([f], [Label(text='"cat" tokens', explainer="offline")])
    assert out.score_details["decision"] == "fires-on" and re.match(r'^"cat" tokens', out.text)


def test_punctuation_is_described_by_name_so_search_finds_it(scorer):
    examples = []
    for r in range(22):
        kind, rank = ("top", r) if r < 12 else ("quantile", r - 12)
        w = FILLER[r % 9 : r % 9 + 30]
        w = [t + "," if i % 6 == 5 else t for i, t in enumerate(w)]
        words = [x for t in w for x in ([t[:-1], ","] if t.endswith(",") else [t])]
        examples.append(ex(kind, rank, words, [i for i, t in enumerate(words) if t == ","][-3:][::-1]))
    for r in range(4):
        examples.append(ex("nonactivating", r, FILLER[r : r + 30], [], seq=2 * r + 1))
    f = Feature(uuid="u", sae_id="s", index=4, examples=examples)
    (out,) = scorer.score([f], [Label(text="grammar", explainer="offline")])
    assert out.text == "commas" and out.score_details["decision"] == "fires-on"


def test_a_language_label_is_kept_when_the_identifier_confirms_it_on_held_out_windows(scorer):
    from tests.unit.features.labeling_fixtures import FRENCH

    text = " ".join(FRENCH).split()
    examples = []
    for r in range(22):
        kind, rank = ("top", r) if r < 12 else ("quantile", r - 12)
        w = text[r * 3 : r * 3 + 32]
        examples.append(ex(kind, rank, w, [28 - r % 4, 20, 24]))
    for r in range(4):
        examples.append(ex("nonactivating", r, FILLER[r : r + 30], [], seq=2 * r + 1))
    f = Feature(uuid="u", sae_id="s", index=5, examples=examples)
    (out,) = scorer.score([f], [Label(text="French text", explainer="offline")])
    assert out.text == "French text" and out.score_details["decision"] in ("concept", "fires-on")
    (wrong,) = scorer.score([f], [Label(text="German text", explainer="offline")])
    assert wrong.text != "German text"


MONEY_WORDS = ["money", "cash", "money", "salary", "money", "pay", "money", "wages", "money", "money", "cash", "money"]


def prose_feature(peaks: list[str], texts: list[list[str]] | None = None) -> Feature:
    """Fires once per context, on ``peaks[r]`` placed inside ordinary prose."""
    examples = []
    for r, word in enumerate(peaks):
        words = texts[r] if texts else FILLER[r % 5 : r % 5 + 20] + [word] + FILLER[:4]
        pos = len(words) - 5 if not texts else r % 3 + 8
        words = list(words)
        words[pos] = word
        examples.append(ex("top", r, words, [pos], seq=100 + r))
    for r in range(4):
        examples.append(ex("nonactivating", r, FILLER[r : r + 30], [], seq=300 + r))
    return Feature(uuid="u", sae_id="s", index=7, examples=examples)


def test_a_one_word_concept_that_is_its_own_peak_words_is_named_as_a_word_family():
    from steerlab.features.score_heldout import word_family

    f = prose_feature(MONEY_WORDS)
    family = word_family(f, "money")
    assert family is not None and family.startswith('words about money ("money"')
    assert word_family(f, "weather") is None  # not what it peaks on
    assert word_family(f, '"money" tokens') is None  # already a token label
    assert word_family(cat_feature(), "cats") is None  # `cat` in shell commands is not about cats


def test_a_token_in_a_language_falls_back_to_the_language_when_only_the_language_holds():
    from steerlab.features.score_heldout import token_language_fallback
    from tests.unit.features.labeling_fixtures import FRENCH

    french = [s.split() * 2 for s in FRENCH]
    f = prose_feature([w[8 + r % 3] for r, w in enumerate(french)], french)
    assert token_language_fallback(f, '"le" tokens in French text') == "French text"
    assert token_language_fallback(f, '"le" tokens in German text') is None  # the identifier finds French
    assert token_language_fallback(f, "French text") is None  # not a token label
    assert token_language_fallback(prose_feature(MONEY_WORDS), '"money" tokens in French text') is None


def test_many_different_digits_are_described_as_digit_tokens():
    from steerlab.features.score_heldout import confirmed_description

    f = prose_feature([str((3 * r + 1) % 10) for r in range(12)])
    assert confirmed_description(f) == "digit tokens"
    assert confirmed_description(prose_feature(MONEY_WORDS)) != "digit tokens"


WEATHER_PROSE = (
    "heavy rain and strong wind are expected tonight with snow on the hills and thunder storms near the coast "
    "while the forecast for tomorrow promises sunshine after the fog clears and the temperature rises"
).split()


def test_a_concept_label_that_rests_on_its_own_word_is_named_as_the_word(scorer):
    """#6482 of the shipped database: labeled "email", it fires on the word "email" in contexts about anything
    else. A concept is claimed only when the windows show it without the word; else the label says the word."""
    from steerlab.features.score_heldout import label_word_forms, lexical_word

    email = prose_feature(["email", "emails", "email", "Email"] * 3)  # the word, in installation-guide prose
    assert lexical_word(email, label_word_forms("email")) == "email"
    word, details = scorer.rests_on_word(email, "email")
    assert word == 'the word "email"' and details["lexical"]
    assert details["masked_auc"] <= max(details["masked_null_p90"], 0.5)
    # the same word inside weather prose: the windows show weather without the word, so the concept stays
    weather = prose_feature(["weather"] * 12, [WEATHER_PROSE[r % 5 : r % 5 + 24] for r in range(12)])
    word, details = scorer.rests_on_word(weather, "weather")
    assert word is None and not details["lexical"] and details["masked_auc"] > details["masked_null_p90"]
    # a label that is not the word the feature peaks on is not a word label
    assert scorer.rests_on_word(email, "weather") == (None, {})
    # fires right beside the word ("many years"): not the word itself, so described by what fires instead
    texts = [FILLER[r % 5 : r % 5 + 24] for r in range(12)]
    for r, words in enumerate(texts):
        words[r % 3 + 9] = "years"  # prose_feature puts the peak at r % 3 + 8: "many years"
    past = prose_feature(["many"] * 12, texts)
    word, details = scorer.rests_on_word(past, "years")
    assert word == "" and details["lexical"]


def test_word_forms_match_inflections_and_token_pieces():
    from steerlab.features.explain.wordnet import spells, word_forms

    assert {"number", "numbers"} <= word_forms("numbers")  # "numbers" is its own WordNet lemma (the Book)
    forms = word_forms("computer")
    assert spells("computers", forms) and spells("comput", forms) and not spells("com", forms)
    assert spells("https", word_forms("http")) and not spells("cat", word_forms("cats and dogs"))


def test_the_word_rule_decides_without_held_out_random_windows(scorer):
    """A feature none of whose pool windows is held out (13 of the shipped database's 1,943 concept labels) is
    judged on its near misses, not left with an undefined masked AUC."""
    import math

    email = prose_feature(["email", "emails", "email", "Email"] * 3)
    email = email.model_copy(
        update={"examples": [e for e in email.examples if e.kind == "top" or (e.sequence_id or 0) % 2 == 0]}
    )
    assert held_out_contexts(email)[2]["n_random"] == 0
    word, details = scorer.rests_on_word(email, "email")
    assert not math.isnan(details["masked_auc"]) and word == 'the word "email"'


def test_different_words_of_one_kind_are_described_by_their_class():
    """#4270 of the shipped database fires on "august", "april", "may", "january": no single token holds, the
    words share a WordNet class, and the held-out half confirms it."""
    from steerlab.features.score_heldout import confirmed_description

    months = ["august", "april", "may", "january", "june", "march"] * 2
    described = confirmed_description(prose_feature(months))
    assert described is not None and described.startswith('Gregorian calendar month words ("')
    assert confirmed_description(prose_feature(["fear", "love", "anger"] * 4)).startswith("emotion words")
    # the choice half's class must hold on the held-out half (odd ranks): months, then ordinary words
    mixed = [w if r % 2 == 0 else ("manual", "chapter", "result")[r % 3] for r, w in enumerate(months)]
    assert confirmed_description(prose_feature(mixed)) is None
    # abstract words share only abstract hypernyms: no class
    abstract = ["data", "traffic", "packet", "idea", "topic", "way"] * 2
    assert "words (" not in (confirmed_description(prose_feature(abstract)) or "")


def test_where_a_token_fires_is_read_from_the_strongest_windows():
    """#6016: its top examples are `#include` lines of C, its weaker quantile examples are anything; a reader
    (and the strict check) sees the top windows, so the description says C code."""
    from steerlab.features.score_heldout import confirmed_description

    c_lines = ["#", "include", "<stdio.h>", "int", "main(void)", "{", 'printf("%d\\n",', "x);", "return", "0;", "}"]
    examples = []
    for r in range(12):
        words = FILLER[r % 5 : r % 5 + 12] + c_lines + ["#", "include", f"<lib{r}.h>"]
        examples.append(ex("top", r, words, [len(words) - 2, 13 + r % 5]))
    for r in range(10):
        words = FILLER[r : r + 20] + ["include"] + FILLER[:6]
        examples.append(ex("quantile", r, words, [20]))
    for r in range(4):
        examples.append(ex("nonactivating", r, FILLER[r : r + 30], [], seq=300 + r))
    f = Feature(uuid="u", sae_id="s", index=6016, examples=examples)
    assert confirmed_description(f) == '"include" tokens in C code'
    prose_only = f.model_copy(update={"examples": [e for e in examples if e.kind != "top"]})
    assert confirmed_description(prose_only) == '"include" tokens'


def test_a_code_label_is_shown_only_when_its_patterns_hold_on_the_held_out_windows(scorer):
    """#3724 (the Unix `cat` command) was shown as "C code" on embedding AUC alone: code and markup labels are
    judged by the same patterns as the descriptions' "in C code", as languages are by the identifier."""
    from steerlab.features.score_heldout import held_out_code

    f = cat_feature()
    assert held_out_code(f, "C code") is False
    assert held_out_code(f, "shell commands") is True
    assert held_out_code(f, "cats") is None  # not a format: the embedding scorer alone decides
    (out,) = scorer.score([f], [Label(text="C code", explainer="offline")])
    assert out.score_details["code_holds"] is False
    assert out.score_details["decision"] != "concept" and out.text != "C code"


def test_a_piece_of_one_word_is_described_as_the_word():
    """#21 of the shipped database fires on "bian" of "Debian" in all its strongest contexts: a reader knows the
    word, not the piece. A piece shared by different words stays a token label."""
    from steerlab.features.score_heldout import confirmed_description

    def split_word_feature(words: list[str]) -> Feature:
        examples = []
        for r, word in enumerate(words):
            head, piece = word[:-4], word[-4:]
            tokens = [(" " + w) for w in FILLER[r % 5 : r % 5 + 20]] + [" " + head, piece, " packages", " are", "."]
            acts = [0.0] * len(tokens)
            acts[21] = 5.0
            examples.append(
                Example(
                    kind="top",
                    rank=r,
                    tokens=tokens,
                    token_ids=list(range(len(tokens))),
                    acts=acts,
                    max_act=5.0,
                    max_position=21,
                    sequence_id=100 + r,
                )  # fmt: skip
            )
        return Feature(uuid="u", sae_id="s", index=21, examples=examples)

    assert confirmed_description(split_word_feature(["Debian"] * 12)) == 'the word "debian"'
    assert confirmed_description(split_word_feature(["Debian", "Fabian", "Serbian"] * 4)) == '"bian" tokens'
