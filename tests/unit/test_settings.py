"""One settings object: the environment reaches every layer, a flag beats it only when given, typos are
warned about, bad values are one line naming the variable, and docs/settings.md lists every variable."""

import importlib.util
import logging
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import steerlab.settings as settings_module
from steerlab.cli import app
from steerlab.cli import serve as serve_module
from steerlab.engine.lab import Lab
from steerlab.models import loader
from steerlab.server.keys import KeyStore
from steerlab.settings import Settings, get_settings
from tests.unit.engine.test_lab_load import saved_sae

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No STEERLAB_* variable from the calling shell, nothing warned about yet, and whatever a test
    installs as the process-wide settings undone afterwards."""
    for name in list(__import__("os").environ):
        if name.upper().startswith("STEERLAB_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(settings_module, "_current", None)
    monkeypatch.setattr(settings_module, "_warned", set())


@pytest.fixture()
def served(monkeypatch):
    """Run ``steerlab serve ARGS`` up to the point it would load the model; returns the settings it got."""
    seen = []
    monkeypatch.setattr(serve_module, "run_server", lambda settings, *args: seen.append(settings))

    def serve(*args: str) -> Settings:
        result = CliRunner().invoke(app, ["serve", *args])
        assert result.exit_code == 0, result.output
        return seen.pop()

    return serve


def test_environment_reaches_serve(monkeypatch, served):
    for name, value in {"HOST": "0.0.0.0", "PORT": "9123", "OPEN_MODE": "1", "MAX_BATCH": "5"}.items():
        monkeypatch.setenv(f"STEERLAB_{name}", value)
    monkeypatch.setenv("STEERLAB_DTYPE", "bfloat16")
    settings = served()
    assert (settings.host, settings.port, settings.open_mode, settings.max_batch) == ("0.0.0.0", 9123, True, 5)
    assert settings.dtype == "bfloat16"
    assert get_settings() is settings  # the layers beneath read the very object the server got


def test_flags_win_only_when_given(monkeypatch, served, tmp_path):
    monkeypatch.setenv("STEERLAB_PORT", "9123")
    monkeypatch.setenv("STEERLAB_OPEN_MODE", "true")
    monkeypatch.setenv("STEERLAB_HOST", "0.0.0.0")
    settings = served("--port", "8001", "--no-open", "--max-batch", "7", "--server-db", str(tmp_path / "s.db"))
    assert (settings.port, settings.open_mode, settings.max_batch) == (8001, False, 7)
    assert settings.resolved_db_path() == tmp_path / "s.db"
    assert settings.host == "0.0.0.0"  # not given: the environment's
    assert served().port == 9123 and served().max_batch == 32  # nothing given: environment, then default


def test_device_and_dtype_reach_lab_load(monkeypatch, tiny_model_dir, tmp_path):
    devices = []
    monkeypatch.setattr(loader, "parse_device", lambda device: devices.append(device) or torch.device(device))
    monkeypatch.setenv("STEERLAB_DTYPE", "bfloat16")
    monkeypatch.setenv("STEERLAB_DEVICE", "cpu:0")
    saved_sae(tmp_path / "sae", seed=0)
    lab = Lab.load(str(tiny_model_dir), tmp_path / "sae")
    try:
        assert next(lab.lm.model.parameters()).dtype == torch.bfloat16
        assert devices == ["cpu:0"]
    finally:
        lab.close()


def test_unknown_variable_is_warned_about_once_naming_the_closest(monkeypatch, caplog):
    monkeypatch.setenv("STEERLAB_PROT", "9000")
    with caplog.at_level(logging.WARNING, logger="steerlab.settings"):
        get_settings()
        monkeypatch.setenv("STEERLAB_PORT", "9001")  # read again: STEERLAB_PROT is not warned about twice
        assert get_settings().port == 9001
    warnings = [r.getMessage() for r in caplog.records if r.name == "steerlab.settings"]
    assert warnings == ["unknown environment variable STEERLAB_PROT is ignored; did you mean STEERLAB_PORT?"]


def test_a_clean_environment_warns_about_nothing(monkeypatch, caplog, tmp_path):
    monkeypatch.setenv("STEERLAB_TORCH", "torch")  # the installer's variable is known
    KeyStore(tmp_path / "server.db").close()  # 'keys list' reads an existing database (never makes one)
    with caplog.at_level(logging.DEBUG, logger="steerlab.settings"):
        result = CliRunner().invoke(app, ["keys", "list", "--server-db", str(tmp_path / "server.db")])
    assert result.exit_code == 0, result.output
    assert not [r for r in caplog.records if r.name == "steerlab.settings"], result.output


def test_the_cli_warns_at_start_up(monkeypatch, caplog, tmp_path):
    monkeypatch.setenv("STEERLAB_MAXBATCH", "3")
    KeyStore(tmp_path / "server.db").close()  # 'keys list' reads an existing database (never makes one)
    with caplog.at_level(logging.WARNING, logger="steerlab.settings"):
        result = CliRunner().invoke(app, ["keys", "list", "--server-db", str(tmp_path / "server.db")])
    assert result.exit_code == 0, result.output
    assert "STEERLAB_MAXBATCH is ignored; did you mean STEERLAB_MAX_BATCH?" in caplog.text


def test_a_bad_value_is_one_line_naming_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("STEERLAB_PORT", "abc")
    result = CliRunner().invoke(app, ["keys", "list", "--server-db", str(tmp_path / "server.db")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: STEERLAB_PORT: 'abc' is not valid: Input should be a valid integer, unable to parse string as an "
        "integer"
    ]


def test_a_bad_flag_is_one_line_naming_the_flag(monkeypatch):
    monkeypatch.setattr(serve_module, "run_server", lambda *args: pytest.fail("served with a bad dtype"))
    result = CliRunner().invoke(app, ["serve", "--dtype", "int4"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: --dtype: 'int4' is not valid: Input should be 'float32', 'bfloat16' or 'float16'"
    ]


def test_every_setting_is_described_and_documented():
    spec = importlib.util.spec_from_file_location("write_settings_doc", ROOT / "scripts" / "write_settings_doc.py")
    doc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(doc)
    assert all(field.description for field in Settings.model_fields.values())
    page = (ROOT / "docs" / "settings.md").read_text()
    assert doc.with_table(page) == page, "docs/settings.md is stale: run python scripts/write_settings_doc.py"
    for name in settings_module.known_variables():
        assert f"`{name}`" in page
