"""The feature store: round trips, labels, read-only opens, schema versions, vectors, atomicity."""

from __future__ import annotations

import sqlite3

import pytest
import torch

from steerlab.features import store_schema
from steerlab.features.schema import (
    Example,
    Feature,
    FeatureStats,
    Histogram,
    Label,
    SAEInfo,
    TokenEffect,
    feature_uuid,
)
from steerlab.features.store import (
    FeatureIndexError,
    FeatureStore,
    StoreError,
    StoreSchemaError,
    UnknownFeatureError,
    UnknownSAEError,
)

SAE_ID = "tiny/model.layers.1/topk-16-abc"
VOCAB = ["<pad>", " the", " cat", " sat", "\n", "é"]


def info(sae_id: str = SAE_ID, d_sae: int = 16) -> SAEInfo:
    return SAEInfo(
        sae_id=sae_id,
        model="tiny",
        hookpoint="model.layers.1",
        d_in=8,
        d_sae=d_sae,
        architecture="topk",
        path="/somewhere",
    )


def full_feature(index: int = 3, label: Label | None = None) -> Feature:
    """A record with every field set, including values a compact encoding could lose."""
    examples = [
        Example(
            kind="top",
            rank=0,
            tokens=[" the", " cat", " sat"],
            token_ids=[1, 2, 3],
            acts=[0.0, 2.5, 0.125],
            max_act=2.5,
            max_position=1,
            sequence_id=7,
        ),
        Example(
            kind="top",
            rank=1,
            tokens=["x", "\n", "<b>"],
            token_ids=[70_000, 4, 1],
            acts=[0.1, 0.0, 0.3],
            max_act=0.3,
            max_position=2,
            sequence_id=None,
        ),  # strings not from the vocab, ids > uint16
        Example(
            kind="quantile",
            rank=0,
            quantile=0.5,
            tokens=["é", " the"],
            token_ids=[5, 1],
            acts=[1.0, 0.0],
            max_act=1.0,
            max_position=0,
            sequence_id=2,
        ),
        Example(
            kind="nonactivating",
            rank=0,
            tokens=[" cat"],
            token_ids=[2],
            acts=[0.0],
            max_act=0.0,
            max_position=0,
            sequence_id=9,
        ),
    ]
    stats = FeatureStats(
        density=0.0125,
        max_act=2.5,
        mean_act=1.1,
        quantiles={"0.5": 1.0, "0.99": 2.4},
        histogram=Histogram(edges=[0.0, 1.0, 2.0, 2.5], counts=[3, 1, 1]),
        tokens_scanned=400,
    )
    return Feature(
        uuid=feature_uuid(SAE_ID, index),
        sae_id=SAE_ID,
        index=index,
        stats=stats,
        examples=examples,
        promoted=[TokenEffect(token=" cat", token_id=2, value=0.75)],
        suppressed=[TokenEffect(token=" the", token_id=1, value=-0.5)],
        cofiring=[(4, 0.5), (9, 0.125)],
        label=label,
    )


@pytest.fixture()
def store(tmp_path):
    with FeatureStore(tmp_path / "features.db") as s:
        s.add_sae(info())
        s.set_vocab(SAE_ID, VOCAB)
        yield s


def test_round_trip_every_field(store):
    label = Label(text="cats sitting", explainer="test", score=0.8, scorer="unit", score_details={"auc": 0.8})
    feature = full_feature(label=label)
    store.put_feature(feature)
    assert store.get_feature(SAE_ID, 3) == feature
    assert store.get_feature_by_uuid(feature.uuid) == feature
    assert store.get_feature(SAE_ID, 3, with_examples=False) == feature.model_copy(update={"examples": []})
    assert store.get_sae(SAE_ID) == info() and store.list_saes() == [info()]
    assert store.vocab(SAE_ID) == VOCAB


def test_acts_that_are_not_float32_survive_exactly(store):
    feature = full_feature()
    feature.examples[0].acts = [0.1, 1.1, 1e-300]
    store.put_feature(feature)
    assert store.get_feature(SAE_ID, 3).examples[0].acts == [0.1, 1.1, 1e-300]


def test_empty_fields_keep_what_is_stored(store):
    store.put_feature(full_feature(label=Label(text="cats", explainer="x")))
    bare = Feature(uuid=feature_uuid(SAE_ID, 3), sae_id=SAE_ID, index=3)
    store.put_feature(bare)  # e.g. a record read without examples, written back
    kept = store.get_feature(SAE_ID, 3)
    assert kept.label.text == "cats" and len(kept.examples) == 4 and kept.stats is not None
    store.put_features([bare], replace_examples=True)
    assert store.get_feature(SAE_ID, 3).examples == []


def test_missing_and_out_of_range_indices(store):
    empty = store.get_feature(SAE_ID, 15)
    assert empty.uuid == feature_uuid(SAE_ID, 15) and empty.stats is None and empty.examples == []
    for bad in (16, -1):
        with pytest.raises(FeatureIndexError, match=r"index must be in 0..d_sae-1 = 0..15"):
            store.get_feature(SAE_ID, bad)
    with pytest.raises(FeatureIndexError):
        store.set_label(SAE_ID, 99, Label(text="x", explainer="y"))
    with pytest.raises(UnknownSAEError, match=SAE_ID):  # the message names the known SAEs
        store.get_feature("other/sae", 0)
    with pytest.raises(UnknownFeatureError):
        store.get_feature_by_uuid(feature_uuid("other/sae", 0))


def test_get_iter_count(store):
    store.put_features([full_feature(i) for i in (5, 1, 9)])
    assert [f.index for f in store.get_features(SAE_ID, [9, 1, 9, 4])] == [9, 1, 9, 4]
    assert [f.index for f in store.iter_features(SAE_ID, batch_size=2)] == [1, 5, 9]
    assert all(len(f.examples) == 4 for f in store.iter_features(SAE_ID, batch_size=2))
    assert store.count_features(SAE_ID) == 3


def test_labels_set_cleared_and_replaced(store):
    store.put_features([full_feature(i) for i in range(4)])
    store.set_labels(
        SAE_ID,
        {
            0: Label(text="French text", explainer="e"),
            1: Label(text="Python function definitions", explainer="e"),
            2: Label(text="refusals to harmful requests", explainer="e"),
        },
    )
    assert {i: lab.text for i, lab in store.labels(SAE_ID).items()} == {
        0: "French text",
        1: "Python function definitions",
        2: "refusals to harmful requests",
    }
    store.set_label(SAE_ID, 0, None)
    assert 0 not in store.labels(SAE_ID) and store.get_feature(SAE_ID, 0).label is None
    store.set_label(SAE_ID, 1, Label(text="Rust code", explainer="e"))
    assert store.labels(SAE_ID)[1].text == "Rust code"


def _table_names(path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


def test_no_full_text_table_and_an_old_one_is_dropped_on_a_writable_open(tmp_path):
    path = tmp_path / "features.db"
    _filled_db(path)
    assert not any(name.startswith("label_fts") for name in _table_names(path))
    conn = sqlite3.connect(path)  # as written by an older steerlab (the shipped database has one)
    conn.execute("CREATE VIRTUAL TABLE label_fts USING fts5(text, tokenize = 'porter unicode61')")
    conn.execute("INSERT INTO label_fts (rowid, text) VALUES (1, 'cats')")
    conn.commit()
    conn.close()
    with FeatureStore(path, readonly=True) as ro:  # read-only: opened as it is, left alone
        assert ro.get_feature(SAE_ID, 3).label.text == "cats"
    assert "label_fts" in _table_names(path)
    with FeatureStore(path) as s:
        s.set_label(SAE_ID, 3, Label(text="dogs", explainer="x"))
        assert s.labels(SAE_ID)[3].text == "dogs"
    assert not any(name.startswith("label_fts") for name in _table_names(path))


def test_failed_transaction_keeps_what_was_stored(store):
    store.put_feature(full_feature(3, label=Label(text="cats", explainer="x")))
    with pytest.raises(RuntimeError), store.transaction():
        store.put_feature(full_feature(4))
        store.set_label(SAE_ID, 3, None)
        raise RuntimeError("crash halfway")
    assert store.get_feature(SAE_ID, 4).stats is None
    assert store.labels(SAE_ID)[3].text == "cats"


def test_vectors_round_trip_atomically(store, tmp_path):
    vectors = torch.randn(16, 8)
    assert store.load_vectors(SAE_ID, "decoder") is None
    store.save_vectors(SAE_ID, "decoder", vectors)
    assert torch.equal(store.load_vectors(SAE_ID, "decoder"), vectors)
    folder = tmp_path / "features.db.vectors"
    assert [p.name for p in folder.rglob("*") if p.is_file()] == ["decoder.safetensors"]
    for bad in ("../escape", "", ".hidden", "a/b"):
        with pytest.raises(StoreError):
            store.save_vectors(SAE_ID, bad, vectors)
    with pytest.raises(UnknownSAEError):
        store.save_vectors("nope", "decoder", vectors)


def _filled_db(path):
    with FeatureStore(path) as s:
        s.add_sae(info())
        s.put_feature(full_feature(label=Label(text="cats", explainer="x")))
        s.save_vectors(SAE_ID, "decoder", torch.ones(16, 8))


def test_readonly_open_in_a_read_only_folder(tmp_path):
    folder = tmp_path / "pkg"
    _filled_db(folder / "features.db")
    folder.joinpath("features.db.vectors").chmod(0o555)
    folder.chmod(0o555)  # as installed by a system package manager
    try:
        with FeatureStore(folder / "features.db", readonly=True) as ro:
            assert ro.get_feature(SAE_ID, 3).label.text == "cats"
            assert ro.labels(SAE_ID)[3].text == "cats"
            assert ro.load_vectors(SAE_ID, "decoder").shape == (16, 8)
            with pytest.raises(StoreError, match="read-only"):
                ro.set_label(SAE_ID, 3, None)
    finally:
        folder.chmod(0o755)


def test_readonly_reads_a_live_wal_without_its_index(tmp_path):
    """A non-root reader of a read-only folder cannot create the -shm index; reproduced even as root
    by a directory in its place, while a writer still holds uncheckpointed commits in the -wal."""
    path = tmp_path / "features.db"
    _filled_db(path)
    with FeatureStore(path) as writer:
        writer.set_label(SAE_ID, 3, Label(text="dogs", explainer="x"))
        copy = tmp_path / "copy"
        copy.mkdir()
        for suffix in ("", "-wal"):
            copy.joinpath("features.db" + suffix).write_bytes(tmp_path.joinpath("features.db" + suffix).read_bytes())
    copy.joinpath("features.db-shm").mkdir()
    with FeatureStore(copy / "features.db", readonly=True) as ro:
        assert ro.labels(SAE_ID)[3].text == "dogs"


def test_readonly_falls_back_to_an_immutable_snapshot(tmp_path, monkeypatch):
    """Where SQLite refuses a mode=ro open (e.g. an old build on a read-only medium), read immutably."""
    path = tmp_path / "features.db"
    _filled_db(path)
    real_connect = sqlite3.connect
    opened = []

    def connect(target, *args, **kwargs):
        opened.append(target)
        if "mode=ro" in str(target):
            raise sqlite3.OperationalError("unable to open database file")
        return real_connect(target, *args, **kwargs)

    monkeypatch.setattr("steerlab.features.store.sqlite3.connect", connect)
    with FeatureStore(path, readonly=True) as ro:
        assert ro.labels(SAE_ID)[3].text == "cats"
    assert "immutable=1" in opened[-1]


def test_compact_leaves_a_single_file(tmp_path):
    path = tmp_path / "features.db"
    _filled_db(path)
    with FeatureStore(path) as s:
        s.compact()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    with FeatureStore(path, readonly=True) as ro:
        assert ro.count_features(SAE_ID) == 1


def test_readonly_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="no feature database there"):
        FeatureStore(tmp_path / "nope.db", readonly=True)
    assert not (tmp_path / "nope.db").exists()


def test_foreign_and_corrupt_files_are_refused(tmp_path):
    foreign = tmp_path / "other.db"
    sqlite3.connect(foreign).execute("CREATE TABLE users (name TEXT)").connection.commit()
    with pytest.raises(StoreSchemaError, match="not a steerlab feature database"):
        FeatureStore(foreign)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreSchemaError, match="not a feature database"):
        FeatureStore(garbage, readonly=True)
    assert garbage.read_bytes() == b"this is not sqlite at all" * 100


def _set_version(path, version: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    conn.commit()
    conn.close()


def _make_v1(path) -> None:
    """Turn a current database into the v1 layout: no ``sequences`` table, no ``examples.start``."""
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE sequences")
    conn.execute("ALTER TABLE examples DROP COLUMN start")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()


def test_a_v1_database_is_migrated_in_place(tmp_path):
    path = tmp_path / "features.db"
    _filled_db(path)
    _make_v1(path)
    with pytest.raises(StoreSchemaError, match="open it once writable"):
        FeatureStore(path, readonly=True)
    with FeatureStore(path) as s:
        feature = s.get_feature(SAE_ID, 3)
        assert feature.label.text == "cats" and feature.examples == full_feature().examples
        s.put_sequences(SAE_ID, {7: [0, 1, 2, 3, 1]})  # the new table works
    with FeatureStore(path, readonly=True) as ro:
        assert ro.sequence_tokens(SAE_ID, 7) == [0, 1, 2, 3, 1]
        assert sqlite3.connect(path).execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            str(store_schema.SCHEMA_VERSION),
        )


def test_unmigratable_and_newer_schemas_are_refused(tmp_path):
    path = tmp_path / "features.db"
    _filled_db(path)
    _set_version(path, 0)
    with pytest.raises(StoreSchemaError, match=r"older steerlab \(schema 0.*rebuild"):
        FeatureStore(path)
    _set_version(path, 99)
    with pytest.raises(StoreSchemaError, match="newer steerlab"):
        FeatureStore(path, readonly=True)


def test_examples_cut_from_stored_sequences_keep_only_their_start(store):
    store.put_sequences(SAE_ID, {7: [0, 1, 2, 3, 1, 2]})
    feature = full_feature()
    feature.examples[0].start = 1  # tokens [1, 2, 3] are sequence 7 from position 1
    feature.examples[2].start = 0  # ids [5, 1] are not sequence 2 (not stored): kept as they are
    store.put_feature(feature)
    assert store.get_feature(SAE_ID, 3) == feature
    blobs = store._conn.execute("SELECT rank, kind, length(token_ids) FROM examples ORDER BY kind, rank").fetchall()
    assert (0, "top", 0) in blobs and (0, "quantile", 5) in blobs
