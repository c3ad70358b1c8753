"""``steerlab features search/show/export`` run in a fresh process without importing torch or transformers
(importing them is most of a 10 s start): they need only SQLite, numpy, the tokenizer and ONNX Runtime, once
the query-encoder graph and the label vectors are cached (``benchmarks/cli_start.py`` times it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import steerlab
from steerlab.features.label_vector_cache import embed_labels
from steerlab.features.schema import Label, SAEInfo
from steerlab.features.search import update_label_embeddings
from steerlab.features.store import FeatureStore
from tests.unit.features.labeling_fixtures import SAE_ID, crafted_features

HEAVY = ("torch", "transformers", "sentence_transformers")
RUN_CLI = f"""
import sys
from steerlab.cli import app
sys.argv = ["steerlab", *sys.argv[1:]]
try:
    app()
finally:
    print("heavy modules:", sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)
"""
LABELS = {0: "French text", 1: "Python code", 2: "the word because"}


def make_db(path: Path, store_label_vectors: bool = False) -> Path:
    """Three features with examples and labels; label vectors stored as ``features label`` stores them, or none
    (like the shipped database)."""
    with FeatureStore(path) as store:
        store.add_sae(
            SAEInfo(sae_id=SAE_ID, model="tiny", hookpoint="model.layers.1", d_in=4, d_sae=8, architecture="topk")
        )
        store.put_features(list(crafted_features().values()))
        store.set_labels(SAE_ID, {i: Label(text=text, explainer="human") for i, text in LABELS.items()})
        if store_label_vectors:
            update_label_embeddings(store, SAE_ID)
    return path


@pytest.fixture(scope="module")
def labeled_db(tmp_path_factory) -> Path:
    return make_db(tmp_path_factory.mktemp("cold-cli") / "features.db")


def cold_cli(home: Path, *args) -> str:
    """stdout of ``steerlab ARGS`` in a new interpreter; fails if it imported torch or transformers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEERLAB_")}
    env["STEERLAB_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(steerlab.__file__).parents[1]), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", RUN_CLI, *map(str, args)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "heavy modules: []" in done.stderr, done.stderr
    return done.stdout


def test_export_reads_only_sqlite(labeled_db, tmp_path):
    out = json.loads(cold_cli(tmp_path, "features", "export", "--db", labeled_db, "--indices", "0,2"))
    assert out["sae"]["sae_id"] == SAE_ID
    assert [(f["index"], f["label"]["text"]) for f in out["features"]] == [(0, "French text"), (2, "the word because")]
    example = out["features"][0]["examples"][0]
    assert example["kind"] == "top" and example["rank"] == 0 and len(example["tokens"]) == len(example["acts"]) > 0


def test_show_reads_only_sqlite(labeled_db, tmp_path):
    page = cold_cli(tmp_path, "features", "show", "1", "--db", labeled_db)
    assert "feature 1" in page and "Python code" in page and "top activations" in page


@pytest.mark.parametrize("stored", [False, True], ids=["label-vectors-cached", "label-vectors-stored"])
def test_search_with_a_cached_encoder(stored, encoder_home, tmp_path, monkeypatch):
    db = make_db(tmp_path / "features.db", store_label_vectors=stored)
    if not stored:
        monkeypatch.setenv("STEERLAB_HOME", str(encoder_home))
        embed_labels(list(LABELS.values()))  # what the first search on a machine leaves in the cache
    hits = json.loads(cold_cli(encoder_home, "features", "search", "French", "--db", db, "--json"))
    assert [(hit["index"], hit["label"]) for hit in hits][:1] == [(0, "French text")]
    assert {hit["index"] for hit in hits} <= set(LABELS)
