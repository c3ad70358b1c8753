"""AutoSteer on the tiny model: a crafted feature whose decoder direction promotes the goal's word is
found by the gradient source and chosen; the harmonic mean with fluency picks a gentler strength;
the stimulus, the result's shapes and AutoConditional's parsing and trigger."""

import numpy as np
import pytest
import torch

from steerlab.analysis.autosteer import SCORING_PROMPTS, AutoSteerConfig, _combinations, auto_steer, strengths_for
from steerlab.analysis.autosteer_candidates import (
    goal_words,
    gradient_candidates,
    merge_candidates,
    nudge_gradient,
    steerable,
    word_token_ids,
)
from steerlab.analysis.autosteer_conditional import auto_conditional, parse_specification
from steerlab.analysis.stimulus import generate_contrastive_stimulus, goal_instruction, goal_system_prompt
from steerlab.models.hooks import output_hidden, replace_output_hidden
from steerlab.server.wire import auto_conditional_response, auto_edits_response, contrastive_dataset_response
from steerlab.steering.conversation import prompt_ids
from steerlab.steering.refs import FeatureRef

CRAFTED = 77
GOAL = "talk about pi"  # "pi" is one token of the tiny vocabulary (most words are several)


def no_embedding(texts):
    """Embeddings that carry no information, so only the lexical checker can see the concept."""
    return np.zeros((len(texts), 8), dtype=np.float32)


def pi_checker(text: str) -> float:
    return min(1.0, text.count("pi") / 4)


def promote_token(lm, sae, index: int, token: str) -> None:
    """Rewire feature ``index``'s decoder row to the direction that most raises ``token``'s log-prob."""
    target = lm.tokenizer.encode(token)[0]
    delta = torch.zeros(lm.model.config.hidden_size, requires_grad=True)
    hook = lm.model.get_submodule(sae.cfg.hookpoint).register_forward_hook(
        lambda _m, _i, out: replace_output_hidden(out, output_hidden(out) + delta)
    )
    try:
        with torch.enable_grad():
            total = 0
            for q in ("hello there", "the cat sat", "What is the capital of France?"):
                ids = torch.tensor([prompt_ids(lm.tokenizer, [{"role": "user", "content": q}])])
                total = total + torch.log_softmax(lm.model(input_ids=ids).logits[0], -1)[:, target].mean()
            total.backward()
    finally:
        hook.remove()
    with torch.no_grad():
        sae.W_dec[index] = delta.grad / delta.grad.norm()
        sae.feature_scale[index] = 1.0


@pytest.fixture()
def crafted_sae(tiny_lm, tiny_sae):
    promote_token(tiny_lm, tiny_sae, CRAFTED, "pi")
    return tiny_sae


def small_config(**kw) -> AutoSteerConfig:
    base = dict(
        n_candidates=4,
        per_source=3,
        n_prompts=2,
        stimulus_size=3,
        stimulus_tokens=12,
        max_new_tokens=12,
        push=(0.5, 1.0, 2.0, 4.0),
    )
    return AutoSteerConfig(**{**base, **kw})


def test_goal_words_and_their_tokens(tiny_tokenizer):
    assert goal_words("talk like a pirate") == ["pirate"]
    assert goal_words("Be more formal.") == ["formal"]
    ids = word_token_ids(tiny_tokenizer, ["pi"])
    assert tiny_tokenizer.encode("pi")[0] in ids
    assert tiny_tokenizer.encode(" ")[0] not in ids  # a bare space would stand for every word


def test_stimulus_pairs_the_same_prompts_with_and_without_the_goal(tiny_lm, tiny_sae):
    stimulus = generate_contrastive_stimulus(tiny_lm, "talk like a pirate", n=3, max_new_tokens=6, sae=tiny_sae)
    assert len(stimulus.dataset_1) == len(stimulus.dataset_2) == 3
    for yes, no in zip(stimulus.dataset_1, stimulus.dataset_2):
        assert yes[1] == no[1] and yes[1]["role"] == "user"  # the same user prompt
        assert "talk like a pirate" in yes[0]["content"] and "pirate" not in no[0]["content"]
        assert yes[-1]["role"] == no[-1]["role"] == "assistant"
    assert contrastive_dataset_response(stimulus) == [stimulus.dataset_1, stimulus.dataset_2]
    assert goal_instruction("pirates") == "talk about pirates"
    assert goal_system_prompt(None).replace("answer as you normally would", "X") == goal_system_prompt(
        "talk like a pirate"
    ).replace("talk like a pirate", "X")
    with pytest.raises(ValueError, match="specification"):
        goal_instruction("  ")


def test_gradient_source_ranks_the_crafted_feature_first(tiny_lm, crafted_sae):
    stimulus = generate_contrastive_stimulus(tiny_lm, GOAL, n=3, max_new_tokens=12, sae=crafted_sae)
    ranked = gradient_candidates(tiny_lm, crafted_sae, stimulus, GOAL, 3)
    assert ranked[0][0] == CRAFTED


def test_gradient_scores_are_per_calibrated_steering_unit(tiny_lm, crafted_sae):
    """Ranked in the unit users steer in: with a calibrated SAE a unit nudge moves the residual the same
    distance for every feature, so the score follows the decoder *direction*, not how strongly the
    feature fires (feature_scale) nor its decoder norm. In quantile units a feature firing 8x harder
    along the same direction scored 8x higher, though at the values a user sets both push the same."""
    stimulus = generate_contrastive_stimulus(tiny_lm, GOAL, n=3, max_new_tokens=12, sae=crafted_sae)
    twin, weaker = 5, 6
    with torch.no_grad():
        direction = crafted_sae.W_dec[CRAFTED] / crafted_sae.W_dec[CRAFTED].norm()
        crafted_sae.W_dec[twin] = 3 * direction  # the same direction, 3x the decoder norm
        crafted_sae.W_dec[weaker] = (
            0.5 * direction + 0.01 * crafted_sae.W_dec[weaker] / crafted_sae.W_dec[weaker].norm()
        )
        crafted_sae.feature_scale[twin] = crafted_sae.feature_scale[weaker] = 8.0  # both fire 8x harder
        crafted_sae.feature_scale[CRAFTED] = 1.0
    crafted_sae.cfg.residual_norm, crafted_sae.cfg.steering_push = 40.0, 0.5
    scores = nudge_gradient(tiny_lm, crafted_sae, stimulus, GOAL)
    assert scores[CRAFTED] > 0
    assert float(scores[twin] / scores[CRAFTED]) == pytest.approx(1.0, rel=1e-3)
    assert float(scores[weaker] / scores[CRAFTED]) == pytest.approx(1.0, abs=0.05)  # ~ the same direction
    assert gradient_candidates(tiny_lm, crafted_sae, stimulus, GOAL, 3)[0][0] in (CRAFTED, twin, weaker)
    crafted_sae.cfg.residual_norm = None  # no calibration: the reading unit (feature_scale), as before
    old = nudge_gradient(tiny_lm, crafted_sae, stimulus, GOAL)
    assert float(old[twin] / old[CRAFTED]) == pytest.approx(24.0, rel=1e-3)  # 3x norm x 8x scale


def test_autosteer_picks_the_crafted_feature_and_fluency_tempers_its_strength(tiny_lm, crafted_sae):
    concept_only = auto_steer(
        tiny_lm,
        crafted_sae,
        GOAL,
        config=small_config(parts=("concept",)),
        sae_id="tiny",
        embed=no_embedding,
        lexical=pi_checker,
    )
    ((feature, strength),) = concept_only.edits
    assert feature.index == CRAFTED and strength > 0
    assert "gradient" in {c.index: c for c in concept_only.candidates}[CRAFTED].evidence
    assert concept_only.best.concept > concept_only.unsteered.concept
    assert concept_only.trials == sorted(concept_only.trials, key=lambda t: t.key, reverse=True)

    balanced = auto_steer(
        tiny_lm,
        crafted_sae,
        GOAL,
        config=small_config(parts=("concept", "fluency")),
        sae_id="tiny",
        embed=no_embedding,
        lexical=pi_checker,
    )
    ((feature_b, strength_b),) = balanced.edits
    assert feature_b.index == CRAFTED and 0 < strength_b < strength  # less push: more fluent, still on goal
    assert balanced.best.fluency > concept_only.best.fluency and balanced.best.concept > 0

    variant = balanced.variant()
    assert [(f.index, v, m) for f, v, m in variant.edits] == [(CRAFTED, strength_b, "nudge")]
    assert balanced.as_dict()[feature_b] == strength_b and len(balanced) == 1
    ember = auto_edits_response(balanced)["edits"]
    assert ember[0][0]["index_in_sae"] == CRAFTED and ember[0][1] == strength_b
    assert feature_b.uuid == FeatureRef.of(CRAFTED, "tiny").uuid


def test_confirmation_rescores_the_best_edit_sets_on_fresh_prompts(tiny_lm, crafted_sae):
    """The best of many noisy trials is partly luck: with ``confirm`` the top edit sets are generated again
    on prompts the scoring did not use and chosen by their mean over both sets (so is doing nothing)."""
    cfg = small_config(parts=("concept", "fluency"), confirm=2, n_confirm_prompts=2)
    assert cfg.confirmation_prompts() == list(SCORING_PROMPTS[2:4])
    assert not set(cfg.confirmation_prompts()) & set(cfg.scoring_prompts())
    result = auto_steer(tiny_lm, crafted_sae, GOAL, config=cfg, sae_id="tiny", embed=no_embedding, lexical=pi_checker)
    assert len(result.best.replies) == 4 and len(result.unsteered.replies) == 4  # 2 scoring + 2 fresh prompts
    assert [len(t.replies) for t in result.trials[:2]] == [4, 4] and len(result.trials[2].replies) == 2
    assert result.trials[0].key >= result.trials[1].key
    ((feature, strength),) = result.edits
    assert feature.index == CRAFTED and strength > 0
    base = small_config(parts=("concept", "fluency"), confirm=0)
    assert cfg.token_estimate() > base.token_estimate() and base.confirmation_prompts() == []
    assert AutoSteerConfig().confirm > 0 and AutoSteerConfig.quick().confirm == 0  # the server's quick search: off


def test_strength_grid_lands_in_embers_range_with_a_calibrated_unit(tiny_sae):
    """With the steering unit calibrated (``sae.units``), the default grid is push / steering_push for every
    feature, whatever its scale or decoder norm: all of AutoSteer's strengths are in 0..1."""
    tiny_sae.cfg.residual_norm, tiny_sae.cfg.steering_push = 40.0, 0.5
    with torch.no_grad():
        tiny_sae.feature_scale[5], tiny_sae.feature_scale[7] = 2.0, 9.0
        tiny_sae.W_dec[7] = 3 * tiny_sae.W_dec[7] / tiny_sae.W_dec[7].norm()
    for index in (5, 7):
        grid = strengths_for(tiny_sae, index, AutoSteerConfig(), resid_norm=55.0)
        assert grid == [0.4, 0.7, 1.0]
        assert all(0 < s <= 1 for s in grid)


def test_strength_grid_is_relative_to_the_residual_norm(tiny_sae):
    cfg = AutoSteerConfig(push=(0.1, 0.2))
    with torch.no_grad():
        tiny_sae.feature_scale[5] = 2.0
        tiny_sae.W_dec[5] = tiny_sae.W_dec[5] / tiny_sae.W_dec[5].norm()
    assert strengths_for(tiny_sae, 5, cfg, resid_norm=40.0) == [2.0, 4.0]  # 0.1 * 40 / (2 * 1)
    assert strengths_for(tiny_sae, 5, AutoSteerConfig(strengths=(0.5,)), 40.0) == [0.5]
    with torch.no_grad():
        tiny_sae.feature_scale[6] = 1000.0  # an attention-sink latent: never a candidate
    assert not steerable(tiny_sae)[6] and steerable(tiny_sae)[5]


def test_merge_is_round_robin_and_combinations_use_the_best_strengths():
    merged = merge_candidates({"search": [(1, 0.9), (2, 0.8)], "contrast": [(3, 1.0), (1, 0.5)], "gradient": []}, 3)
    assert [c.index for c in merged] == [1, 3, 2]
    assert merged[0].evidence == {"search": 0.9, "contrast": 0.5}
    from steerlab.analysis.autosteer import Trial

    trials = [
        Trial([(1, 2.0)], 0.5, 0, 0, 0),
        Trial([(1, 4.0)], 0.2, 0, 0, 0),
        Trial([(2, 1.0)], 0.4, 0, 0, 0),
        Trial([(3, 1.0)], 0.0, 0, 0, 0),
    ]
    combos = _combinations(trials, 3)
    assert combos == [[(1, 2.0), (2, 1.0)], [(1, 1.0), (2, 0.5)]]  # 3 never helped: left out


def test_parse_conditional_specifications():
    assert parse_specification("when the user talks about cooking, talk like a pirate") == (
        "cooking",
        "talk like a pirate",
    )
    assert parse_specification("If France comes up then speak French.") == ("France comes up", "speak French")
    assert parse_specification("whenever dogs are mentioned") == ("dogs are mentioned", None)
    with pytest.raises(ValueError, match="specification"):
        parse_specification(" ")


def test_auto_conditional_builds_a_working_scope(tiny_lm, crafted_sae):
    result = auto_conditional(
        tiny_lm,
        crafted_sae,
        "when talking about France, talk about pi",
        config=small_config(parts=("concept",)),
        sae_id="tiny",
        embed=no_embedding,
        lexical=pi_checker,
    )
    assert result.trigger_text == "France" and result.effect_text == "talk about pi"
    assert result.threshold > 0
    cond = result.condition
    assert cond.items[0].left.indices == [result.trigger.index] and cond.items[0].right == result.threshold
    assert result.operator == "AND" and result.json()["conditionals"][0]["operator"] == ">"
    variant = result.variant()
    assert len(variant.scopes) == 1 and variant.scopes[0].condition.json() == cond.json()
    assert [f.index for f, _, _ in variant.scopes[0].edits] == [f.index for f, _ in result.edits] == [CRAFTED]
    assert auto_conditional_response(result) == {"conditional": cond.json()}
    # it reads as the SDK's ConditionalGroup, so set_when accepts the result itself
    from steerlab.steering.variant import Variant

    other = Variant("tiny-llama", sae_id="tiny")
    other.set_when(result, {3: 0.5})
    assert other.scopes[0].condition.json() == cond.json()


def test_search_candidates_come_from_label_search_not_the_default(tmp_path, steerlab_home, tiny_sae):
    """AutoSteer asks the database for label search even when the default would re-score by contexts (hybrid):
    features about the goal are detectors, label matches steer better (docs/steering.md). The French and Python
    features share the label "source code"; label search puts the French one (stronger evidence) first, hybrid
    the Python one (its contexts are Python)."""
    from steerlab.analysis.autosteer_candidates import search_candidates
    from steerlab.features import context_vectors
    from steerlab.features.search import FeatureSearch
    from tests.unit.features.labeling_fixtures import SAE_ID
    from tests.unit.features.test_search import FRENCH, PYTHON
    from tests.unit.features.test_search_evidence import same_label_store

    with same_label_store(tmp_path / "features.db") as store:
        context_vectors.load(store, SAE_ID)  # computed and cached: the default search is hybrid now
        search = FeatureSearch(store, SAE_ID)
        assert search.default_by() == "hybrid"
        assert [h.index for h in search.search("Python source code", top_k=2)] == [PYTHON, FRENCH]
        got = search_candidates(search, tiny_sae, "Python source code", 2)
    assert [index for index, _ in got] == [FRENCH, PYTHON]


def test_a_topic_is_not_contrasted_with_itself():
    """The neutral side of "weather" used to hold "Tell me about the weather." (and "food" "lunch"): a trigger for
    the topic then learnt nothing about it. With ``avoid`` the neutral topics are the pool's least like it."""
    from steerlab.analysis.stimulus import NEUTRAL_TOPICS, TOPIC_TEMPLATES, neutral_conversations

    def said(conversations):
        return " ".join(c[0]["content"] for c in conversations)

    assert said(neutral_conversations()) == " ".join(t.format(n) for t, n in zip(TOPIC_TEMPLATES, NEUTRAL_TOPICS))
    weather, food = neutral_conversations(avoid="weather"), neutral_conversations(avoid="food")
    assert len(weather) == len(food) == len(TOPIC_TEMPLATES)
    assert "weather" not in said(weather) and "lunch" not in said(food)
    assert "weather" in said(food)  # only what is like the topic is left out


def test_trigger_candidates_come_from_label_search(tmp_path, steerlab_home, tiny_lm, tiny_sae):
    """AutoConditional asks the database for label search, whatever its default (docs/steering.md: on the trigger
    benchmark's development texts label search gave the most working triggers)."""
    from steerlab.analysis.autosteer_conditional import find_trigger
    from steerlab.features import context_vectors
    from steerlab.features.search import FeatureSearch
    from tests.unit.features.labeling_fixtures import SAE_ID
    from tests.unit.features.test_search_evidence import same_label_store

    class Asked:
        """The real search, noting what each call asked for."""

        def __init__(self, inner):
            self.inner, self.by = inner, []

        def search(self, query, top_k=10, by=None):
            self.by.append(by)
            return self.inner.search(query, top_k=top_k, by=by)

    with same_label_store(tmp_path / "features.db") as store:
        context_vectors.load(store, SAE_ID)
        asked = Asked(FeatureSearch(store, SAE_ID))
        assert asked.inner.default_by() == "hybrid"
        index, threshold = find_trigger(tiny_lm, tiny_sae, "Python source code", search=asked)
    assert asked.by == ["label"]
    assert 0 <= index < tiny_sae.cfg.d_sae and threshold > 0
