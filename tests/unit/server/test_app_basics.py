import json

import pytest
from fastapi.testclient import TestClient

from steerlab.server.app import create_app
from steerlab.server.keys import KeyStore
from steerlab.settings import Settings


@pytest.fixture()
def settings(tmp_path):
    return Settings(db_path=tmp_path / "server.db", requests_per_minute=5, max_body_bytes=2048)


def test_keys_are_stored_hashed_and_revocation_is_immediate(settings):
    store = KeyStore(settings.resolved_db_path())
    info, key = store.create("alice")
    assert key.startswith("sl-") and key not in settings.resolved_db_path().read_bytes().decode("latin1")
    client = TestClient(create_app(settings))
    auth = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/whoami", headers=auth).json() == {"key_id": info.key_id, "name": "alice"}
    assert store.revoke(info.key_id)
    assert client.get("/v1/whoami", headers=auth).status_code == 401
    assert [k.revoked_at is not None for k in store.list()] == [True]


def test_missing_and_wrong_keys_get_401_with_openai_error_shape(settings):
    client = TestClient(create_app(settings))
    missing = client.get("/v1/whoami")
    assert missing.status_code == 401 and "steerlab keys create" in missing.json()["error"]["message"]
    wrong = client.get("/v1/whoami", headers={"Authorization": "Bearer sl-nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"


def test_over_the_request_limit_gets_429_with_retry_after(settings):
    _, key = KeyStore(settings.resolved_db_path()).create("bob")
    client = TestClient(create_app(settings))
    codes = [client.get("/v1/whoami", headers={"Authorization": f"Bearer {key}"}).status_code for _ in range(7)]
    assert codes[:5] == [200] * 5 and codes[5:] == [429, 429]
    limited = client.get("/v1/whoami", headers={"Authorization": f"Bearer {key}"})
    assert int(limited.headers["Retry-After"]) >= 1 and limited.json()["error"]["code"] == "requests_per_minute"


def test_oversized_body_is_413_and_open_mode_needs_no_key(settings):
    settings.open_mode = True
    client = TestClient(create_app(settings))
    assert client.get("/v1/whoami").status_code == 200
    big = client.post("/v1/whoami", content=b"x" * 4096, headers={"content-type": "application/json"})
    assert big.status_code == 413 and big.json()["error"]["code"] == "max_body_bytes"


def test_health_and_metrics(settings):
    client = TestClient(create_app(settings))
    assert client.get("/health").json()["status"] == "ok"
    client.get("/v1/whoami")
    _, key = KeyStore(settings.resolved_db_path()).create("ops")  # /metrics needs a key (issue 15)
    text = client.get("/metrics", headers={"Authorization": f"Bearer {key}"}).text
    assert 'steerlab_requests_total{route="/v1/whoami",status="401"}' in text
    assert json.loads(json.dumps(client.get("/openapi.json").json()))["info"]["title"] == "steerlab"


def test_keys_cli_create_list_revoke(tmp_path):
    from typer.testing import CliRunner

    from steerlab.cli.app import app

    db = str(tmp_path / "s.db")
    runner = CliRunner()
    created = json.loads(runner.invoke(app, ["keys", "create", "carol", "--server-db", db]).stdout)
    assert created["api_key"].startswith("sl-")
    listed = runner.invoke(app, ["keys", "list", "--server-db", db]).stdout
    assert created["key_id"] in listed and created["api_key"] not in listed
    assert runner.invoke(app, ["keys", "revoke", created["key_id"], "--server-db", db]).exit_code == 0
    again = runner.invoke(app, ["keys", "revoke", created["key_id"], "--server-db", db])
    assert again.exit_code == 2 and "no active key" in again.stderr
    assert KeyStore(db).verify(created["api_key"]) is None
