import pytest
from fastapi.testclient import TestClient

from steerlab.engine.lab import Lab
from steerlab.server.app import create_app
from steerlab.server.config import ServerSettings
from steerlab.server.keys import KeyStore


@pytest.fixture()
def tiny_lab(tiny_lm):
    lab = Lab(tiny_lm, max_batch=4, max_queue=8)
    yield lab
    lab.close()


@pytest.fixture()
def server(tmp_path, tiny_lab):
    """(TestClient, API key) for an app over the tiny model."""
    settings = ServerSettings(db_path=tmp_path / "server.db", max_completion_tokens=64, max_prompt_tokens=200)
    _, key = KeyStore(settings.resolved_db_path()).create("tester")
    with TestClient(create_app(settings, tiny_lab)) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        yield client, key
