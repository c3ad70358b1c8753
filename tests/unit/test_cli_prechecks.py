"""What the CLI can check without a model is checked before it loads one (issue 15), and the keys
commands never create a database they were only asked to read."""

import json
from pathlib import Path

from typer.testing import CliRunner

from steerlab.bundled_saes import bundled_sae_path
from steerlab.cli import app

runner = CliRunner()
NO_MODEL = "/no/such/model-folder"  # loading it fails at once: an error about it means the model was reached


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_feature_index_is_checked_against_the_sae_config_before_the_model_loads():
    sae = bundled_sae_path("default")
    d_sae = json.loads((sae / "cfg.json").read_text())["d_sae"]
    res = _run("chat", "hi", "--feature", f"{d_sae}=1", "--sae", sae, "--model", NO_MODEL)
    assert res.exit_code == 2, res.output
    assert "--feature" in res.output and f"0..{d_sae - 1}" in res.output and NO_MODEL not in res.output


def test_missing_sae_folder_is_reported_before_the_model_loads(tmp_path):
    res = _run("chat", "hi", "--feature", "1=1", "--sae", tmp_path / "nope", "--model", NO_MODEL)
    assert res.exit_code == 2 and "--sae" in res.output and NO_MODEL not in res.output, res.output


def test_missing_text_file_is_reported_before_the_model_loads(tmp_path):
    missing = tmp_path / "missing.txt"
    res = _run("sae", "eval", "--text-file", missing, "--model", NO_MODEL)
    assert res.exit_code == 2 and "--text-file" in res.output and NO_MODEL not in res.output, res.output
    res = _run("features", "build", "--text-file", missing, "--model", NO_MODEL)
    assert res.exit_code == 2 and "--text-file" in res.output and NO_MODEL not in res.output, res.output


def test_keys_list_and_revoke_never_create_a_database(tmp_path):
    db = tmp_path / "new" / "dir" / "x.db"
    for args in (("keys", "list"), ("keys", "revoke", "abc")):
        res = _run(*args, "--server-db", db)
        assert res.exit_code == 2, res.output
        assert "--server-db" in res.output and len(res.output.strip().splitlines()) == 1
        assert not (tmp_path / "new").exists()


def test_keys_create_makes_an_owner_only_database(tmp_path):
    db = tmp_path / "keys" / "x.db"
    res = _run("keys", "create", "alice", "--server-db", db)
    assert res.exit_code == 0, res.output
    assert Path(db).stat().st_mode & 0o777 == 0o600
    listed = _run("keys", "list", "--server-db", db)
    assert listed.exit_code == 0 and json.loads(listed.stdout)["name"] == "alice"
