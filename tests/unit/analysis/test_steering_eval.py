"""Steering evaluation: the AxBench aggregate and its zero rule, each score part's definition, and a
whole evaluation on the tiny model (steered vs prompted vs unsteered, one batched pass)."""

import math

import numpy as np
import pytest

from steerlab.analysis.autosteer_generate import Reply, Row, generate_rows
from steerlab.analysis.scoring import (
    ReplyScore,
    ReplyScorer,
    harmonic_mean,
    repeated_trigram_fraction,
    reply_perplexities,
    word_list_checker,
)
from steerlab.analysis.steering_eval import (
    METHODS,
    Concept,
    as_variant,
    evaluate_steering,
    prompting_system_prompt,
)
from steerlab.steering.conversation import prompt_ids
from steerlab.steering.variant import Variant
from tests.unit.analysis.test_autosteer import CRAFTED, pi_checker, promote_token


def letter_embed(texts):
    """A deterministic stand-in for MiniLM: normalized letter counts (texts sharing letters are close)."""
    out = np.zeros((len(texts), 26), dtype=np.float32)
    for r, text in enumerate(texts):
        for ch in text.lower():
            if "a" <= ch <= "z":
                out[r, ord(ch) - 97] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)


def test_harmonic_mean_and_the_zero_rule():
    assert harmonic_mean([1.0, 1.0, 1.0]) == 1.0
    assert harmonic_mean([0.5, 1.0]) == pytest.approx(2 / 3)
    assert harmonic_mean([0.9, 0.8, 0.0]) == 0.0  # any part at 0 -> 0, however good the rest
    assert harmonic_mean([0.9, -0.1]) == 0.0 and harmonic_mean([]) == 0.0
    score = ReplyScore(concept=0.5, relevance=1.0, fluency=0.0, concept_similarity=0.3, perplexity=9.0)
    assert score.combined() == 0.0 and score.combined(("concept", "relevance")) == pytest.approx(2 / 3)


def test_repetition_and_word_lists():
    assert repeated_trigram_fraction([1, 2, 3, 4, 5]) == 0.0
    assert repeated_trigram_fraction([7] * 12) == pytest.approx(0.9)  # 10 trigrams, 1 distinct
    assert repeated_trigram_fraction([1, 2]) == 0.0
    check = word_list_checker(["arr", "matey"], density_full=0.25)
    assert check("Arr, matey!") == 1.0
    assert check("arr the ship sails today") == pytest.approx(0.8)  # 1 of 5 words, / 0.25
    assert check("") == 0.0 and check("plain words only") == 0.0


def test_scorer_measures_against_the_unsteered_replies(tiny_lm):
    prompts = [[{"role": "user", "content": "the cat sat on the mat"}], [{"role": "user", "content": "bonjour"}]]
    unsteered = generate_rows(tiny_lm, None, [Row(p) for p in prompts], max_new_tokens=8)
    scorer = ReplyScorer(tiny_lm, "zzz quiz jazz", prompts, unsteered, embed=letter_embed, lexical=pi_checker)
    again = scorer.score([0, 1], unsteered)
    assert all(s.relevance == pytest.approx(1.0, abs=1e-5) for s in again if s.relevance > 0)  # itself: full
    tok = tiny_lm.tokenizer
    on_concept = Reply("zzz jazz quiz zzz", tok.encode("zzz jazz quiz zzz"), [], "stop")
    empty = Reply("", [], [], "stop")
    looped = Reply("pipipipi", tok.encode("pi") * 12, [], "length")
    s_on, s_empty, s_loop = scorer.score([0, 0, 0], [on_concept, empty, looped])
    assert s_on.concept > 0.9 and s_on.concept_similarity > 0.9
    assert s_empty.fluency == 0.0 and s_empty.combined() == 0.0 and math.isinf(s_empty.perplexity)
    assert s_loop.lexical == 1.0 and s_loop.concept == 1.0  # the word list sees what the embedder does not
    assert s_loop.fluency <= 0.1  # 90% repeated trigrams


def test_perplexity_is_that_of_the_reply_given_the_prompt(tiny_lm):
    prompt = prompt_ids(tiny_lm.tokenizer, [{"role": "user", "content": "hello"}])
    greedy = generate_rows(tiny_lm, None, [Row([{"role": "user", "content": "hello"}])], max_new_tokens=6)[0]
    odd = tiny_lm.tokenizer.encode("zq zq xv")
    ppl_greedy, ppl_odd, ppl_empty = reply_perplexities(tiny_lm, [prompt] * 3, [greedy.token_ids, odd, []])
    assert 1.0 <= ppl_greedy < ppl_odd and math.isinf(ppl_empty)


def test_as_variant_accepts_what_callers_hold():
    v = Variant("x", sae_id="s")
    v.set(3, 0.5)
    assert as_variant(v) is v
    for edits in ({3: 0.5}, [(3, 0.5)]):
        assert [(f.index, val) for f, val, _ in as_variant(edits).edits] == [(3, 0.5)]


def test_evaluation_compares_steered_prompted_and_unsteered(tiny_lm, tiny_sae):
    promote_token(tiny_lm, tiny_sae, CRAFTED, "pi")
    concept = Concept("pi", "the token pi", "talk about pi")
    concept.checker = lambda: pi_checker
    result = evaluate_steering(
        tiny_lm,
        tiny_sae,
        concept,
        {CRAFTED: 0.2},
        ["hello there", "the cat sat"],
        max_new_tokens=12,
        temperature=0.0,
        embed=letter_embed,
    )
    assert set(result.methods) == set(METHODS) and result.edits == [(CRAFTED, 0.2)]
    steered, unsteered = result.methods["steered"], result.methods["unsteered"]
    assert steered.lexical > unsteered.lexical and steered.concept > 0
    assert all(
        0.0 <= getattr(m, p) <= 1.0
        for m in result.methods.values()
        for p in ("concept", "relevance", "fluency", "combined")
    )
    assert len(steered.replies) == 2 and any("pi" in r for r in steered.replies)
    assert result.winner in ("steered", "prompted")
    data = result.to_dict()
    assert data["methods"]["prompted"]["method"] == "prompted" and data["winner"] == result.winner
    assert "talk about pi" in prompting_system_prompt(concept)


def test_language_goals_are_judged_by_the_language_and_drift_is_not_an_answer(tiny_lm):
    """The embedder puts any foreign reply near "speak French"; the language identifier does not."""
    prompts = [[{"role": "user", "content": "Tell me about your day."}]]
    tok = tiny_lm.tokenizer

    def reply(text):
        return Reply(text, tok.encode(text), [], "stop")

    english = reply("I had a quiet day at home, reading a book and cooking dinner for my family.")
    french = reply("J'ai passé une journée tranquille à la maison, à lire un livre et à cuisiner.")
    spanish = reply("Pasé un día tranquilo en casa, leyendo un libro y cocinando la cena para mi familia.")
    scorer = ReplyScorer(tiny_lm, "speak French", prompts, [english], embed=letter_embed)
    assert (scorer.target_language, scorer.base_language) == ("fr", "en")
    s_fr, s_es, s_en = scorer.score([0, 0, 0], [french, spanish, english])
    assert (s_fr.concept, s_es.concept, s_en.concept) == (1.0, 0.0, 0.0)
    assert s_es.relevance == 0.0 and s_fr.relevance > 0.0  # Spanish answers nobody here
    pirate = ReplyScorer(tiny_lm, "talk like a pirate", prompts, [english], embed=letter_embed)
    assert pirate.target_language is None and pirate.score([0], [spanish])[0].relevance == 0.0


def test_controls_scored_like_the_methods_are_rejected(tiny_lm, tiny_sae):
    """The evaluation must be able to fail: replies scored by the evaluation's own scorer that carry the
    concept's words but no sentence (word salad) or read fine but are off-concept score low."""
    promote_token(tiny_lm, tiny_sae, CRAFTED, "pi")
    concept = Concept("pi", "the token pi", "talk about pi")
    concept.checker = lambda: pi_checker
    prompts = ["hello there", "the cat sat"]
    result = evaluate_steering(
        tiny_lm, tiny_sae, concept, {CRAFTED: 0.2}, prompts, max_new_tokens=12, temperature=0.0, embed=letter_embed
    )
    salad = result.score_texts("word_salad", ["pi pi the pi pi pi of pi pi pi pi pi pi pi pi"] * 2)
    assert salad.method == "word_salad" and salad.concept == 1.0  # every word list hit ...
    assert salad.fluency < 0.3 and salad.combined < 0.4  # ... but no sentence: rejected
    unsteered = result.methods["unsteered"].replies
    off = result.score_texts("off_concept", unsteered)  # fluent and on the question, no concept
    assert off.concept == result.methods["unsteered"].concept < 0.5 and off.combined == pytest.approx(
        result.methods["unsteered"].combined
    )
    with pytest.raises(ValueError, match="one text per prompt"):
        result.score_texts("x", ["only one"])
