"""The strict window check (concept_windows.py) on crafted contexts: it accepts what it should and
rejects the issue's examples (the Unix `cat` feature as "cats", the Catalan `aqu` feature as "weather")
and a case the old lenient check (24 tokens before / 8 after, any keyword) accepted."""

from __future__ import annotations

import re

from steerlab.features.concept_windows import example_window, judge, looks_like_code, strongest_windows
from steerlab.features.concepts import CONCEPTS, matcher_for_label
from steerlab.features.schema import Example, Feature


def example(text: str, peak: str, rank: int = 0, kind: str = "top") -> Example:
    """An example whose tokens are the words of ``text`` (with their leading spaces), peaking on ``peak``."""
    tokens = re.findall(r"\s*\S+|\s+", text)
    position = next(i for i, t in enumerate(tokens) if peak in t)
    acts = [0.0] * len(tokens)
    acts[position] = 5.0
    return Example(
        kind=kind, rank=rank, tokens=tokens, token_ids=list(range(len(tokens))), acts=acts, max_act=5.0,
        max_position=position,
    )  # fmt: skip


def feature(examples: list[Example]) -> Feature:
    return Feature(uuid="u", sae_id="s", index=0, examples=examples)


def holds(concept: str, texts_and_peaks: list[tuple[str, str]]) -> tuple[bool, int]:
    f = feature([example(t, p, rank=i) for i, (t, p) in enumerate(texts_and_peaks)])
    return judge(strongest_windows(f), CONCEPTS[concept])


SHELL_CAT = [
    ("To see the file run\n$ cat /etc/passwd | grep root", "cat"),
    ("CONSOLEOWNER=`cat /var/run/console.lock`", "`cat"),
    ("# cat >ssl.ldif <<EOF", "cat"),
    ("for f in *.log; do cat $f | wc -l; done", "cat"),
    ("sudo cat /proc/cpuinfo | head -n 20", "cat"),
    ("then cat ~/.bashrc && echo done", "cat"),
    ("$ cat -n notes.txt | less", "cat"),
    ("zcat /usr/share/doc/README.gz | cat -A", "-A"),
    ("git show HEAD:main.c | cat > /tmp/old_main.c", "cat"),
    ("cat /dev/null > /var/log/syslog", "cat"),
]
CATALAN_AQU = [
    ("Les passes de configuració descrites en aquest capítol", "aquest"),
    ("En aquest cas, una solució possible", "aquest"),
    ("Com podeu veure aquí, el servidor", "aquí"),
    ("Aquesta opció permet configurar el sistema", "Aquesta"),
    ("per a aquest motiu el paquet no", "aquest"),
    ("aquestes eines són útils per administrar", "aquestes"),
    ("Si aquesta variable no està definida", "aquesta"),
    ("la forma més exhaustiva possible en aquest capítol", "aquest"),
    ("Are you sure the blob was defined here", "Are"),
    ("the package for amd64 is built here", "amd64"),
]


def test_unix_cat_feature_is_not_about_cats():
    ok, shown = holds("cats", SHELL_CAT)
    assert not ok and shown == 0
    # ... yet the same windows are shell commands: the check knows what it is looking at
    assert holds("shell commands", SHELL_CAT)[0]
    # "the cat" inside a shell command is still a shell command, not prose about a cat
    assert looks_like_code("$ echo the cat | grep -c cat") and not looks_like_code("The black cat slept by the fire")
    assert holds("cats", [("$ echo the cat | grep -c cat", "cat")] * 6) == (False, 0)


def test_real_cat_windows_are_about_cats():
    texts = [
        ("The black cat slept by the fire all afternoon", "cat"),
        ("My cat purred when I came home", "cat"),
        ("Kittens need to eat more often than adult cats", "cats"),
        ("She adopted a stray cat from the shelter", "cat"),
        ("The tabby chased a mouse across the garden", "tabby"),
        ("Our cat loves to sit on the windowsill", "cat"),
    ]
    assert holds("cats", texts) == (True, 6)


def test_catalan_aqu_feature_is_not_about_weather():
    assert holds("weather", CATALAN_AQU) == (False, 0)
    assert holds("Catalan text" if "Catalan text" in CONCEPTS else "Spanish text", CATALAN_AQU)[0] is False


def test_weather_word_outside_the_strict_window_does_not_count():
    """The old check read 24 tokens before and 8 after the peak: a weather word 6 tokens after the
    strongest token made the window pass. The strict window (4 after) does not reach it."""
    text = "The committee met on Tuesday and agreed to postpone because heavy rain was expected"
    e = example(text, "agreed")
    old_window = "".join(e.tokens[max(0, e.max_position - 24) : e.max_position + 9])
    assert "rain" in old_window
    assert not CONCEPTS["weather"](example_window(e))
    assert CONCEPTS["weather"](example_window(example(text + " today", "expected")))


def test_six_of_ten_needed():
    good = ("It will rain tomorrow with strong winds and a storm", "rain")
    bad = ("The meeting is at noon in the main office building", "meeting")
    assert holds("weather", [good] * 6 + [bad] * 4) == (True, 6)
    assert holds("weather", [good] * 5 + [bad] * 5) == (False, 5)


def test_language_by_identifier():
    french = [
        ("Le chat dort sur le canapé pendant que nous mangeons le dîner", "chat"),
        ("Nous avons décidé de partir en vacances au mois de juillet", "vacances"),
        ("Il faut toujours vérifier la configuration avant de redémarrer", "configuration"),
        ("Je ne sais pas pourquoi la porte est restée ouverte toute la nuit", "porte"),
        ("Les enfants jouent dans le jardin après l'école", "jardin"),
        ("Cette méthode permet de réduire le temps de calcul", "temps"),
    ]
    assert holds("French text", french) == (True, 6)
    assert holds("Spanish text", french)[1] == 0


def test_questions_and_token_concepts():
    questions = [("Where did you put the keys? I looked everywhere", "keys"),
                 ("Can you tell me how to get to the station", "station")] * 3  # fmt: skip
    assert holds("questions", questions) == (True, 6)
    statements = [("I put the keys on the table and left. Then we went home.", "keys")] * 6
    assert holds("questions", statements)[0] is False
    numbers = [("The total was 1234 dollars", "1234")] * 6
    assert holds("numbers", numbers)[0]
    # a digit far from the peak is not a numbers feature
    assert not holds(
        "numbers", [("In 1999 the small town decided to build a new library for everyone", "library")] * 6
    )[0]


def test_code_matchers_are_specific():
    python = [("import os\n\ndef main(args):\n    return os.path.join(args)", "def")] * 6
    assert holds("Python code", python)[0]
    prose = [("We decided to import more coffee from Brazil this year because demand grew", "import")] * 6
    assert not holds("Python code", prose)[0]
    sql = [("SELECT name, age FROM users WHERE age > 30", "FROM")] * 6
    assert holds("SQL queries", sql)[0]
    assert not holds("SQL queries", [("Select the best from what remains where possible", "best")] * 6)[0]


def test_labels_get_matchers_where_a_check_exists():
    windows = [example_window(example("Les passes de configuració descrites en aquest capítol", "aquest"))]
    assert matcher_for_label('"aquest" tokens')(windows[0])
    assert not matcher_for_label('"aqu" tokens')(windows[0])
    assert matcher_for_label("French text") is not None and matcher_for_label("Catalan text") is not None
    assert matcher_for_label("commas")(example_window(example("one , two", ",")))
    assert matcher_for_label("weather") is CONCEPTS["weather"]
    assert matcher_for_label('the word "to"')(example_window(example("I want to go", "to")))
    assert matcher_for_label("hope") is None  # no automatic check: reported apart, not guessed


def test_a_word_label_holds_for_the_word_as_written_singular_or_plural():
    check = matcher_for_label('the word "number"')
    assert check(example_window(example("pick a number please", "number")))
    assert check(example_window(example("pick two numbers please", "numbers")))
    assert not check(example_window(example("pick two digits please", "digits")))
    assert not matcher_for_label('"number" tokens')(example_window(example("pick two numbers please", "numbers")))


def test_punctuation_in_a_context_and_classes_of_words_are_descriptions_with_checks():
    from steerlab.features.concepts import is_description
    from steerlab.features.label_format import class_label, parse_token_label

    assert parse_token_label("dashes in shell commands") == ("--", "shell commands")
    assert parse_token_label("line breaks in Python code") == ("\n", "Python code")
    assert parse_token_label("dashes") is None and parse_token_label("weather in Paris") is None
    assert class_label('weekday words ("monday", "friday")') == "weekday"
    assert class_label("weekday words") is None and class_label("weekday") is None
    assert is_description("less-than signs in C code") and is_description('emotion words ("fear", "love")')
    assert not is_description("emotion") and not is_description("Python code")

    c_include = example_window(example("#include < stdio.h >", "<"))
    assert matcher_for_label("less-than signs in C code")(c_include)
    assert not matcher_for_label("less-than signs in Python code")(c_include)  # the context must hold too
    weekdays = matcher_for_label('weekday words ("monday", "friday")')
    assert weekdays(example_window(example("See you on Friday at noon", "Friday")))
    assert weekdays(example_window(example("Closed on Mondays", "Mondays")))
    assert not weekdays(example_window(example("See you in April at noon", "April")))


def test_the_word_at_the_peak_is_the_whole_word_its_token_is_a_piece_of():
    from steerlab.features.concept_windows import Window

    assert Window(("apt", " install", " De", "bian", "-", "keyring"), 3).peak_word == "debian"
    assert Window((" Write", " a", " ha", "iku", " about", " rain"), 3).peak_word == "haiku"
    assert Window((" access", "Token", "File", " ="), 1).peak_word == "accesstokenfile"
    assert Window(("$", " cat", " /"), 1).peak_word == "cat" and Window(("one", " ,"), 1).peak_word == ""
    check = matcher_for_label('the word "debian"')
    assert check(Window(("apt", " install", " De", "bian", "-", "keyring"), 3))
    assert check(Window(("all", " Debian", " packages"), 1))
    assert not check(Window(("a", " bian", "ca"), 1))  # the piece in another word
