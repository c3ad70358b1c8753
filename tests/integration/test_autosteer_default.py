"""AutoSteer on the real default model, searching the shipped feature database: a goal yields edits
that raise the goal score on prompts AutoSteer never saw (its own scoring prompts differ from the
evaluation's), greedy so the run is deterministic. Sized for about 1.5 minutes on two CPU cores."""

import pytest

from steerlab.analysis.autosteer import SCORING_PROMPTS, AutoSteerConfig, auto_steer
from steerlab.analysis.steering_eval import EVAL_PROMPTS, Concept, evaluate_steering

pytestmark = pytest.mark.integration
GOAL = "talk about dogs"
CONCEPT = Concept(
    "dogs", "dogs and puppies", GOAL, "dog dogs puppy puppies bark barking leash paw paws fetch canine pup".split()
)
SMALL = AutoSteerConfig(
    pool=10,
    n_candidates=3,
    per_source=3,
    push=(0.25, 0.4),
    n_prompts=2,
    stimulus_size=4,
    stimulus_tokens=24,
    max_new_tokens=16,
    combine_top=2,
)


def test_autosteer_raises_the_goal_score_on_held_out_prompts(default_lm, default_sae, default_search):
    labels = {i: label.text for i, label in default_search.labels.items()}
    result = auto_steer(
        default_lm, default_sae, GOAL, config=SMALL, search=default_search, labels=labels, sae_id=default_search.sae_id
    )
    assert result.edits, "AutoSteer found nothing better than leaving the model alone"
    assert result.best.score > result.unsteered.score and result.best.concept > result.unsteered.concept
    assert all(0 < strength <= 1 for _, strength in result.edits)  # Ember's range (sae.units)

    held_out = [p for p in EVAL_PROMPTS if p not in SCORING_PROMPTS][:3]
    evaluation = evaluate_steering(
        default_lm, default_sae, CONCEPT, result, held_out, max_new_tokens=24, temperature=0.0
    )
    steered, unsteered = evaluation.methods["steered"], evaluation.methods["unsteered"]
    # the goal score: sentence-embedding similarity to the goal, and the combined AxBench-style score
    assert steered.similarity > unsteered.similarity + 0.05, (steered.replies, unsteered.replies)
    assert steered.combined > unsteered.combined
    assert steered.fluency > 0.2, steered.replies  # steered, not wrecked
