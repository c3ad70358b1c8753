"""``steerlab features build/show/export/dashboard`` end to end on the tiny model, and bad input."""

from __future__ import annotations

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from steerlab.cli import app
from steerlab.features.schema import Label
from steerlab.features.store import FeatureStore
from tests.unit.features.conftest import CRAFTED, D_SAE, corpus_texts, make_crafted_sae

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_model_dir):
    """A crafted SAE saved as a folder and its database built by the CLI from a text corpus."""
    from steerlab.models.loader import load_model

    root = tmp_path_factory.mktemp("features-cli")
    corpus = root / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in corpus_texts()))
    lm = load_model(str(tiny_model_dir))
    make_crafted_sae(lm, model_name=str(tiny_model_dir)).save(root / "sae")
    res = _run(
        "features",
        "build",
        "--sae",
        root / "sae",
        "--text-file",
        corpus,
        "--context-length",
        64,
        "--batch-tokens",
        128,
        "--top-examples",
        5,
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    return root, summary


def test_build_writes_next_to_the_sae(built):
    root, summary = built
    assert summary["db"] == str(root / "sae" / "features.db") and summary["features"] == D_SAE
    assert summary["tokens"] > 1000 and summary["tokens_per_second"] > 0
    assert not (root / "sae" / "features.db.build").exists()


def test_show_is_a_readable_dashboard(built):
    root, _ = built
    res = _run("features", "show", CRAFTED, "--sae", root / "sae")
    assert res.exit_code == 0, res.output
    for needle in (
        "feature 5",
        "(unlabeled)",
        "density",
        "histogram",
        "top activations",
        " mat",
        "promotes",
        "suppresses",
        "co-firing",
    ):
        assert needle in res.stdout, needle


def test_export_json(built, tmp_path):
    root, summary = built
    res = _run("features", "export", "--sae", root / "sae", "--indices", f"{CRAFTED},1-2")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["sae"]["sae_id"] == summary["sae_id"]
    assert [f["index"] for f in data["features"]] == [CRAFTED, 1, 2]
    crafted = data["features"][0]
    top = [e for e in crafted["examples"] if e["kind"] == "top"]
    assert len(top) == 5 and all(e["tokens"][e["max_position"]] == " mat" for e in top)
    res = _run(
        "features", "export", "--db", root / "sae" / "features.db", "--out", tmp_path / "all.json", "--no-examples"
    )
    assert res.exit_code == 0, res.output
    everything = json.loads((tmp_path / "all.json").read_text())["features"]
    assert [f["index"] for f in everything] == list(range(D_SAE)) and all(f["examples"] == [] for f in everything)


def test_dashboard_html_and_png(built, tmp_path):
    root, summary = built
    db = tmp_path / "copy.db"
    db.write_bytes((root / "sae" / "features.db").read_bytes())
    with FeatureStore(db) as store:
        store.set_label(summary["sae_id"], CRAFTED, Label(text='<script>alert("x")</script> mats', explainer="t"))
    res = _run("features", "dashboard", CRAFTED, "--db", db, "--out", tmp_path / "f.html")
    assert res.exit_code == 0, res.output
    page = (tmp_path / "f.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; mats" in page
    assert "<svg" in page and "background:rgba(255,120,0,1.00)" in page and "> mat</span>" in page
    res = _run("features", "dashboard", CRAFTED, "--db", db, "--out", tmp_path / "f.png")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "f.png").stat().st_size > 5000


def test_bad_input_is_one_line(built, tmp_path):
    root, _ = built
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 64)
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.commit()
    sae, db = root / "sae", root / "sae" / "features.db"
    cases = [
        (["features", "show", 99, "--sae", sae], "index must be in 0..d_sae-1 = 0..31"),
        (["features", "show", 0, "--db", garbage], "not a feature database"),
        (["features", "export", "--db", foreign], "not a steerlab feature database"),
        (["features", "show", 0, "--db", tmp_path / "missing.db"], "no feature database there"),
        (["features", "show", 0, "--db", db, "--sae-id", "nope/x"], "unknown SAE 'nope/x'"),
        (["features", "export", "--db", db, "--indices", "3,a-b"], "--indices"),
        (["features", "dashboard", 0, "--db", db, "--out", tmp_path / "f.txt"], ".html or .png"),
        (["features", "build", "--sae", sae], "exactly one input"),
        (["features", "build", "--sae", sae, "--acts", tmp_path], "not a harvest folder"),
    ]
    for args, needle in cases:
        res = _run(*args)
        assert res.exit_code == 2, (args, res.output)
        assert needle in res.output and "Traceback" not in res.output, (args, res.output)
        assert len(res.output.strip().splitlines()) == 1, res.output
    assert garbage.read_bytes() == b"not a database" * 64


def test_build_refuses_an_sae_of_another_width(tiny_model_dir, tmp_path, steerlab_home):
    from steerlab.sae.config import SAEConfig
    from steerlab.sae.variants.topk import TopKSAE

    TopKSAE(SAEConfig(d_in=32, d_sae=8, k=2, hookpoint="model.layers.1", model_name=str(tiny_model_dir))).save(
        tmp_path / "narrow"
    )
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"text": corpus_texts(1)[0]}) + "\n")
    res = _run("features", "build", "--sae", tmp_path / "narrow", "--text-file", corpus)
    assert res.exit_code == 2 and "d_in=32" in res.output and "d_model=64" in res.output, res.output
    assert not (tmp_path / "narrow" / "features.db").exists()


def test_a_database_with_several_saes(built, tmp_path):
    root, summary = built
    db = tmp_path / "two.db"
    db.write_bytes((root / "sae" / "features.db").read_bytes())
    with FeatureStore(db) as store:
        other = store.get_sae(summary["sae_id"]).model_copy(update={"sae_id": "other/model.layers.1/topk-32-x"})
        store.add_sae(other)
    res = _run("features", "show", CRAFTED, "--db", db)
    assert res.exit_code == 2 and "holds 2 SAEs" in res.output and "--sae-id" in res.output, res.output
    res = _run("features", "show", CRAFTED, "--db", db, "--sae", root / "sae")  # picked by the SAE's identity
    assert res.exit_code == 0 and summary["sae_id"] in res.stdout.replace("\n", ""), res.output
    res = _run("features", "show", 0, "--db", db, "--sae-id", "other/model.layers.1/topk-32-x")
    assert res.exit_code == 0 and "not built" in res.stdout, res.output
