"""``steerlab classify``: train and score through the CLI on the tiny model; bad input is one line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from steerlab.cli.app import app
from tests.unit.classifiers.conftest import CODE, PIRATE


@pytest.fixture()
def tiny_sae_dir(tmp_path, tiny_sae, tiny_model_dir):
    tiny_sae.cfg.model_name = str(tiny_model_dir)
    return tiny_sae.save(tmp_path / "sae")


@pytest.fixture()
def files(tmp_path):
    (tmp_path / "pos.txt").write_text("\n".join(PIRATE) + "\n")
    (tmp_path / "neg.txt").write_text("\n".join(CODE) + "\n")
    (tmp_path / "score.txt").write_text("arr matey gold\ndef g(a): return a\n")
    return tmp_path


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_train_then_score_prints_one_json_object_per_line(files, tiny_model_dir, tiny_sae_dir, steerlab_home):
    where = ["--model", tiny_model_dir, "--sae", tiny_sae_dir]
    result = invoke(
        "classify", "train", "pirate", "--pos", files / "pos.txt", "--neg", files / "neg.txt", "--kind", "sae", *where
    )
    assert result.exit_code == 0, result.output
    assert "saved pirate (sae" in result.output
    result = invoke("classify", "score", "pirate", "--text-file", files / "score.txt", "--json", *where)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert len(out) == 2
    for row in out:
        assert 0.0 <= row["score"] <= 1.0
        assert all({"index", "label", "contribution"} <= set(f) for f in row["features"])
    shown = invoke("classify", "show", "pirate", "--top", "3", *where)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0].startswith("pirate: sae on model.layers.1") and "weight" in lines[1] and "feature" in lines[1]
    rows = [ln.split() for ln in lines[2:] if ln.strip().startswith(("+", "-"))]
    assert 1 <= len(rows) <= 3 and all(float(r[0]) != 0 and r[1].isdigit() for r in rows)
    assert any(ln.startswith(" *sae  test AUROC") for ln in lines) and any("raw" in ln for ln in lines)
    assert "  kind chosen by: asked" in lines  # --kind sae; best says leave-one-source-out or validation
    again = invoke("classify", "train", "pirate", "--pos", files / "pos.txt", "--neg", files / "neg.txt", *where)
    assert again.exit_code == 2
    assert "exists" in again.output and "--overwrite" in again.output
    assert len(again.output.strip().splitlines()) == 1


def test_show_and_score_of_a_raw_probe_name_sae_features(files, tiny_model_dir, tiny_sae, tiny_sae_dir, steerlab_home):
    """The shipped default is a raw probe: ``show`` says it reads residual dimensions and lists SAE features
    (through the decoder), and ``score --json`` explains each score with SAE feature indices."""
    where = ["--model", tiny_model_dir, "--sae", tiny_sae_dir]
    result = invoke(
        "classify", "train", "probe", "--pos", files / "pos.txt", "--neg", files / "neg.txt", "--kind", "raw", *where
    )
    assert result.exit_code == 0, result.output
    shown = invoke("classify", "show", "probe", "--top", "3", *where)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0].startswith("probe: raw on model.layers.1") and lines[0].endswith("residual dimensions")
    assert "feature (through the SAE's decoder)" in lines[1]
    rows = [ln.split() for ln in lines[2:] if ln.strip().startswith(("+", "-"))]
    assert len(rows) == 3 and all(r[1].isdigit() for r in rows)
    scored = invoke("classify", "score", "probe", "--text-file", files / "score.txt", "--json", *where)
    assert scored.exit_code == 0, scored.output
    for row in json.loads(scored.stdout):
        assert row["features"] and all(0 <= f["index"] < tiny_sae.cfg.d_sae and "label" in f for f in row["features"])


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["classify", "train", "x", "--pos", "/no/such.txt", "--neg", "/no/such.txt"], "does not exist"),
        (["classify", "train", "../x", "--pos", "a", "--neg", "b"], "not a classifier name"),
        (["classify", "train", "x", "--pos", "POS"], "both --pos and --neg"),
        (["classify", "train", "x", "--pos", "POS", "--neg", "EMPTY"], "holds no texts"),
        (["classify", "train", "x", "--task", "chess"], "unknown task"),
        (["classify", "score", "x"], "nothing to score"),
    ],
)
def test_bad_input_is_one_line(files, args, needle):
    (files / "empty.txt").write_text("\n")
    args = [str(files / "pos.txt") if a == "POS" else str(files / "empty.txt") if a == "EMPTY" else a for a in args]
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error:") and needle in result.output
    assert len(result.output.strip().splitlines()) == 1
