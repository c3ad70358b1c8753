"""Classifiers on the tiny model: training, save/load round trip, explanations, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from steerlab.classifiers import storage
from steerlab.classifiers.data import labelled, read_texts
from steerlab.classifiers.train import train
from steerlab.errors import ConflictError, InvalidInputError, NotFoundError


@pytest.fixture()
def trained(tiny_lab, texts):
    pos, neg = texts
    return train(tiny_lab, labelled(pos, neg), "pirate", kind="sae")


def test_trains_all_three_kinds_in_one_run_and_reports_them(trained):
    report = trained.report
    assert set(report["kinds"]) == {"sae", "raw", "text"}
    for r in report["kinds"].values():
        assert r["test"]["n"] == 4 and r["test"]["n_pos"] == 2
        assert {"auroc", "f1", "ece", "brier", "threshold"} <= set(r["test"])
    assert set(report["kinds"]["sae"]["by_pool"]) == {"max", "mean"}
    assert trained.kind == "sae"
    assert 1 <= len(trained.linear.weights) <= 32
    assert report["split"] == {"train": 12, "val": 4, "test": 4, "seed": 0}


def test_separates_the_classes_it_was_trained_on(tiny_lab, trained, texts):
    pos, neg = texts
    scores = [r["score"] for r in trained.score(tiny_lab, pos + neg)]
    assert np.mean(scores[: len(pos)]) > np.mean(scores[len(pos) :])


@pytest.mark.parametrize("kind", ["sae", "raw", "text"])
def test_save_load_round_trip_gives_the_same_scores(tiny_lab, texts, tmp_path, kind):
    pos, neg = texts
    clf = train(tiny_lab, labelled(pos, neg), "pirate", kind=kind)
    assert clf.kind == kind
    folder = storage.save(clf, tmp_path / "pirate")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["config.json", "weights.safetensors"] + (["vocabulary.json"] if kind == "text" else [])
    )
    back = storage.load(folder, tiny_lab)
    probe = ["arr matey", "def g(a): return a", "gold"]
    before, after = clf.score(tiny_lab, probe), back.score(tiny_lab, probe)
    for a, b in zip(before, after):
        assert a["score"] == pytest.approx(b["score"], abs=1e-6)
        assert a["features"] == b["features"]
    config = json.loads((folder / "config.json").read_text())
    assert config["sae_id"] == tiny_lab.sae_id and config["hookpoint"] == "model.layers.1"


def test_explanations_add_up_to_the_logit(tiny_lab, texts):
    pos, neg = texts
    clf = train(tiny_lab, labelled(pos, neg), "pirate", kind="sae")
    clf.pool = "mean"  # exact per-token decomposition for mean pooling
    text = pos[0]
    out = clf.explain(tiny_lab, text, top=1000)
    logit = np.log(out["score"] / (1 - out["score"]))
    assert sum(t["contribution"] for t in out["tokens"]) + out["bias"] == pytest.approx(logit, abs=1e-4)
    assert sum(f["contribution"] for f in out["features"]) + out["bias"] == pytest.approx(logit, abs=1e-4)


def test_raw_probe_is_explained_with_sae_features(tiny_lab, texts):
    pos, neg = texts
    clf = train(tiny_lab, labelled(pos, neg), "pirate", kind="raw")
    result = clf.score(tiny_lab, [pos[0]], top=3)[0]
    assert len(result["features"]) == 3
    assert all(0 <= f["index"] < tiny_lab.d_sae for f in result["features"])


def test_every_kind_gives_each_kinds_classifier_from_the_same_run(tiny_lab, texts):
    """What the shipped build uses to write the raw default and the SAE classifier from one run."""
    pos, neg = texts
    every = {}
    clf = train(tiny_lab, labelled(pos, neg), "pirate", kind="sae", every_kind=every)
    assert {k: c.kind for k, c in every.items()} == {"sae": "sae", "raw": "raw", "text": "text"}
    assert all(c.report is clf.report for c in every.values())
    assert every["raw"].pool == clf.report["kinds"]["raw"]["pool"] and every["raw"].linear.indices is None
    assert every["sae"].labels and not every["raw"].labels  # labels of the features an SAE probe reads
    probe = [pos[0], neg[0]]
    assert [r["score"] for r in every["sae"].score(tiny_lab, probe)] == [r["score"] for r in clf.score(tiny_lab, probe)]
    raw = train(tiny_lab, labelled(pos, neg), "pirate", kind="raw")
    assert np.allclose(raw.linear.weights, every["raw"].linear.weights)


def test_lab_finds_a_saved_classifier_by_name(tiny_lab, trained, steerlab_home):
    storage.save(trained, storage.user_root(tiny_lab.sae_id) / "pirate")
    assert [c["name"] for c in storage.list_names(tiny_lab)] == ["pirate"]
    out = tiny_lab.classify("pirate", ["arr matey"])
    assert 0.0 <= out[0]["score"] <= 1.0 and "features" in out[0]
    with pytest.raises(NotFoundError) as err:
        tiny_lab.classify("nope", ["x"])
    assert err.value.field == "name"


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("pos", "neg", "field"),
    [([], ["a", "b", "c", "d"], "pos"), (["a", "b", "c", "d"], [], "neg"), (["a", "b"], ["c", "d", "e", "f"], "pos")],
)
def test_empty_or_one_class_or_tiny_training_data_is_refused(pos, neg, field):
    with pytest.raises(InvalidInputError) as err:
        labelled(pos, neg)
    assert err.value.field == field


def test_the_same_texts_in_both_classes_are_refused():
    with pytest.raises(InvalidInputError, match="same texts"):
        labelled(["a", "b", "c", "d"], ["d", "c", "b", "a"])


def test_a_malformed_jsonl_line_is_named(tmp_path):
    path = tmp_path / "pos.jsonl"
    path.write_text('{"text": "ok"}\n{"other": 1}\n')
    with pytest.raises(InvalidInputError, match=r"pos.jsonl:2") as err:
        read_texts(path, "pos")
    assert err.value.field == "pos"
    path.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n"plain"\n')
    assert read_texts(path) == ["hi", "plain"]


def test_an_existing_name_is_refused_unless_overwrite(tiny_lab, trained, tmp_path):
    folder = storage.save(trained, tmp_path / "pirate")
    with pytest.raises(ConflictError) as err:
        storage.save(trained, folder)
    assert err.value.field == "name"
    trained.threshold = 0.25
    storage.save(trained, folder, overwrite=True)
    assert storage.load(folder).threshold == 0.25
    assert [p.name for p in tmp_path.iterdir()] == ["pirate"]


def test_a_save_killed_midway_leaves_the_stored_classifier_intact(tiny_lab, trained, tmp_path, monkeypatch):
    folder = storage.save(trained, tmp_path / "pirate")
    probe = ["arr matey", "def g(a): return a"]
    before = [r["score"] for r in storage.load(folder).score(tiny_lab, probe)]

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    trained.linear.weights = trained.linear.weights * 3  # new weights written, then killed before the config
    monkeypatch.setattr(storage.json, "dumps", killed)
    with pytest.raises(KeyboardInterrupt):
        storage.save(trained, folder, overwrite=True)
    monkeypatch.undo()
    after = [r["score"] for r in storage.load(folder).score(tiny_lab, probe)]
    assert after == before
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["pirate"]


def test_loading_under_another_sae_is_refused(tiny_lm, trained, tmp_path):
    from steerlab.engine.lab import Lab
    from tests.unit.steering.conftest import make_tiny_sae

    folder = storage.save(trained, tmp_path / "pirate")
    other = Lab(tiny_lm, make_tiny_sae(seed=1), max_batch=1)
    try:
        with pytest.raises(ConflictError) as err:
            storage.load(folder, other)
        assert err.value.field == "sae"
    finally:
        other.close()


def test_nan_features_are_refused(tiny_lm, texts):
    from steerlab.engine.lab import Lab
    from tests.unit.steering.conftest import make_tiny_sae

    sae = make_tiny_sae()
    lab = Lab(tiny_lm, sae, max_batch=1)
    try:
        with torch.no_grad():
            tiny_lm.model.model.layers[0].mlp.down_proj.weight[0, 0] = float("nan")
        with pytest.raises(InvalidInputError, match="NaN") as err:
            train(lab, labelled(*texts), "pirate")
        assert err.value.field == "texts"
    finally:
        lab.close()


def test_texts_longer_than_max_tokens_are_cut_and_say_so(tiny_lab, trained):
    trained.max_tokens = 4
    out = trained.score(tiny_lab, ["arr " * 50, "arr"])
    assert [r["truncated"] for r in out] == [True, False]


def test_bad_kind_and_limits_are_refused(tiny_lab, texts):
    with pytest.raises(InvalidInputError) as err:
        train(tiny_lab, labelled(*texts), "x", kind="forest")
    assert err.value.field == "kind" and "best" in err.value.allowed
    with pytest.raises(InvalidInputError) as err:
        storage.check_name("../escape")
    assert err.value.field == "name"


def test_a_save_killed_between_its_renames_is_recovered_and_half_written_folders_are_not_listed(
    tiny_lab, trained, steerlab_home
):
    root = storage.user_root(tiny_lab.sae_id)
    storage.save(trained, root / "pirate")
    probe = ["arr matey", "def g(a): return a"]
    before = [r["score"] for r in tiny_lab.score_texts("pirate", probe)]
    tiny_lab.forget_classifier("pirate")
    real_rename = type(root).rename
    calls = []

    def rename(self, target):  # the first rename (old folder aside) happens, then the process dies
        calls.append(target)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_rename(self, target)

    with pytest.MonkeyPatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(type(root), "rename", rename)
        storage.save(trained, root / "pirate", overwrite=True)
    assert not (root / "pirate").exists()  # what a kill at that moment leaves behind
    assert [c["name"] for c in tiny_lab.classifier_names()] == ["pirate"]  # recovered, the temporary one unlisted
    assert [r["score"] for r in tiny_lab.score_texts("pirate", probe)] == before
    assert sorted(p.name for p in root.iterdir()) == ["pirate"]


def test_batches_keep_to_the_token_budget_but_never_split_a_text(tiny_lab):
    from steerlab.classifiers.pooling import batches, tokenize

    texts = ["a", "a b c d e f g h i j k l", "a b", "a b c"] * 3
    toks = tokenize(tiny_lab, texts, 64)
    widest = max(len(t.ids) for t in toks)
    for budget in (1, widest, 2 * widest, 10_000):
        got = batches(toks, batch_size=4, batch_tokens=budget)
        assert sorted(i for b in got for i in b) == list(range(len(texts)))
        for b in got:
            assert len(b) <= 4
            assert len(b) == 1 or len(b) * max(len(toks[i].ids) for i in b) <= budget
    assert len(batches(toks, batch_size=4, batch_tokens=1)) == len(texts)
    assert len(batches(toks, batch_size=4)) == 3


def test_lab_scores_conversations_as_their_user_turns_and_explains_per_token(tiny_lab, trained, steerlab_home):
    storage.save(trained, storage.user_root(tiny_lab.sae_id) / "pirate")
    conversation = [
        {"role": "user", "content": "arr matey"},
        {"role": "assistant", "content": "def f(a): return 1"},
        {"role": "user", "content": "gold"},
    ]
    as_text = tiny_lab.score_texts("pirate", ["arr matey\n\ngold"])[0]
    as_conv = tiny_lab.score_texts("pirate", [conversation])[0]
    assert as_conv["score"] == pytest.approx(as_text["score"])
    explained = tiny_lab.explain_text("pirate", "arr matey gold")
    assert explained["tokens"] and {"token", "contribution"} == set(explained["tokens"][0])
    with pytest.raises(InvalidInputError) as err:
        tiny_lab.score_texts("pirate", ["fine", ""])
    assert err.value.field == "texts[1]"
    with pytest.raises(InvalidInputError) as err:
        tiny_lab.score_texts("pirate", [[{"role": "assistant", "content": "only me"}]])
    assert err.value.field == "texts[0]"
    info = tiny_lab.classifier_info("pirate", top=3)
    assert len(info["weights"]) == min(3, len(trained.linear.weights))
    assert {"index", "label", "weight"} == set(info["weights"][0])


def test_lab_trains_saves_and_refuses_an_existing_name(tiny_lab, texts, steerlab_home):
    pos, neg = texts
    seen = []
    clf = tiny_lab.train_classifier("pirate", pos, neg, kind="sae", extracted=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (20, 20)
    assert [c["name"] for c in tiny_lab.classifier_names()] == ["pirate"]
    with pytest.raises(ConflictError) as err:
        tiny_lab.train_classifier("pirate", pos, neg)
    assert err.value.field == "name"
    again = tiny_lab.train_classifier("pirate", pos, neg, kind="text", overwrite=True)
    assert tiny_lab.classifier("pirate").kind == again.kind == "text" != clf.kind


WORDS = "alpha beta gamma delta epsilon zeta theta kappa".split()


def _precomputed(examples, sae, raw):
    """A drop-in for ``pooled_features`` that returns fixed rows per text (``train(features=...)``): the same
    matrix for every pooling."""
    from steerlab.classifiers.pooling import POOLS, Pooled

    row = {e.text: i for i, e in enumerate(examples)}

    def features(_lab, texts, _max_tokens, **_kw):
        rows = [row[t] for t in texts]
        return Pooled(
            {p: sae[rows] for p in POOLS}, {p: raw[rows] for p in POOLS}, [8] * len(rows), [False] * len(rows)
        )

    return features


def _shortcut_task(n: int = 40, seed: int = 0):
    """Positives from one source, negatives from two (A and B). The SAE codes hold only a per-source
    shortcut (feature 0 on for A, feature 1 on for B, nothing for positives); the residual holds the class
    itself (dimension 0). Both separate a same-source split perfectly; only the residual carries over to a
    source left out. The texts are noise, so TF-IDF learns nothing."""
    import numpy as np

    from steerlab.classifiers.data import Example

    rng = np.random.default_rng(seed)
    examples = [Example(f"p{i} " + " ".join(rng.choice(WORDS, 4)), 1, "P") for i in range(2 * n)]
    examples += [Example(f"a{i} " + " ".join(rng.choice(WORDS, 4)), 0, "A") for i in range(n)]
    examples += [Example(f"b{i} " + " ".join(rng.choice(WORDS, 4)), 0, "B") for i in range(n)]
    sae = rng.random((len(examples), 128)).astype(np.float32) * 0.1
    raw = rng.normal(size=(len(examples), 64)).astype(np.float32)
    for i, e in enumerate(examples):
        sae[i, 0] += 3.0 * (e.source == "A")
        sae[i, 1] += 3.0 * (e.source == "B")
        raw[i, 0] += 8.0 * e.label
    return examples, _precomputed(examples, sae, raw)


def test_best_chooses_the_kind_that_carries_over_to_a_source_left_out(tiny_lab):
    """In-distribution validation ties (both perfect: the old rule kept the SAE kind, the more interpretable);
    leaving each negative source out shows the SAE kind learnt a per-source shortcut, so ``best`` keeps raw."""
    from steerlab.classifiers.train import TIE

    examples, features = _shortcut_task()
    clf = train(tiny_lab, examples, "x", kind="best", features=features)
    kinds = clf.report["kinds"]
    assert kinds["sae"]["val_auroc"] >= kinds["raw"]["val_auroc"] - TIE  # validation alone would keep sae
    assert clf.report["selected_by"] == "leave-one-source-out"
    assert set(clf.report["source_folds"]) == {"A", "B"}
    assert kinds["raw"]["source_out"]["mean_auroc"] > 0.95
    assert kinds["sae"]["source_out"]["mean_auroc"] < 0.8
    assert clf.kind == "raw"


def test_best_falls_back_to_validation_with_one_source_per_class(tiny_lab):
    from dataclasses import replace

    examples, features = _shortcut_task()
    one_each = [replace(e, source="pos" if e.label else "neg") for e in examples]
    clf = train(tiny_lab, one_each, "x", kind="best", features=features)
    assert clf.report["selected_by"] == "validation" and clf.report["source_folds"] == {}
    assert clf.kind == "sae"  # a tie on validation goes to the more interpretable kind


def _near_miss_task(seed: int = 0):
    """Positives (P) far from one negative source (A) and close to another (B: near misses). The residual's
    dimension 0 carries it: P at +6, A at -6, B at +3, with noise. On a same-source validation split every
    class is well apart; a model that never saw B puts B's texts high."""
    import numpy as np

    from steerlab.classifiers.data import Example

    rng = np.random.default_rng(seed)
    n = 60

    def text(prefix: str, i: int) -> str:
        return f"{prefix}{i} " + " ".join(rng.choice(WORDS, 4))

    examples = [Example(text("p", i), 1, "P") for i in range(2 * n)]
    examples += [Example(text("a", i), 0, "A") for i in range(n)] + [Example(text("b", i), 0, "B") for i in range(n)]
    raw = rng.normal(size=(len(examples), 16)).astype(np.float32)
    centre = {"P": 6.0, "A": -6.0, "B": 3.0}
    for i, e in enumerate(examples):
        raw[i, 0] = centre[e.source] + rng.normal()
    sae = np.abs(rng.normal(size=(len(examples), 32))).astype(np.float32)
    return examples, _precomputed(examples, sae, raw)


def test_the_threshold_is_chosen_where_a_left_out_source_lands(tiny_lab):
    """With sources to leave out, the decision threshold is the best F1 on the folds' pooled out-of-source
    predictions (near misses from a source the fold never saw score high), not on the same-source
    validation split; with one source per class, validation as before. Asked kinds get it too."""
    from dataclasses import replace

    import numpy as np

    from steerlab.classifiers import metrics
    from steerlab.classifiers.fit import sigmoid
    from steerlab.classifiers.train import _fit, _logits, _source_folds, _split, _subset

    examples, features = _near_miss_task()
    clf = train(tiny_lab, examples, "x", kind="raw", features=features)
    raw = clf.report["kinds"]["raw"]
    assert raw["threshold_from"] == "leave-one-source-out" and clf.threshold == raw["threshold"]
    assert set(raw["source_out"]["by_source"]) == {"A", "B"}
    # the same threshold from the same folds, recomputed here
    y = np.array([e.label for e in examples])
    train_i, val_i, _ = _split(y, 0)
    folds = _source_folds([e.source for e in examples], y, np.sort(np.concatenate([train_i, val_i])), 0)
    pooled = features(None, [e.text for e in examples], 8)
    ys, ps = [], []
    for _src, rest, held in folds:
        model = _fit("raw", raw["pool"], raw["C"], _subset(pooled, rest), [], y[rest], 32, 0)
        ps.append(sigmoid(_logits("raw", raw["pool"], model, _subset(pooled, held), [])))
        ys.append(y[held])
    assert clf.threshold == metrics.best_f1_threshold(np.concatenate(ys), np.concatenate(ps))

    one_each = [replace(e, source="pos" if e.label else "neg") for e in examples]
    plain = train(tiny_lab, one_each, "x", kind="raw", features=features)
    assert plain.report["kinds"]["raw"]["threshold_from"] == "validation"
    assert "source_out" not in plain.report["kinds"]["raw"]
