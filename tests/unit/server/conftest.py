import pytest
from fastapi.testclient import TestClient

from steerlab.engine.lab import Lab
from steerlab.server.app import create_app
from steerlab.server.keys import KeyStore
from steerlab.settings import Settings


@pytest.fixture()
def tiny_lab(tiny_lm):
    lab = Lab(tiny_lm, max_batch=4, max_queue=8)
    yield lab
    lab.close()


@pytest.fixture()
def server(tmp_path, tiny_lab):
    """(TestClient, API key) for an app over the tiny model."""
    settings = Settings(db_path=tmp_path / "server.db", max_completion_tokens=64, max_prompt_tokens=200)
    _, key = KeyStore(settings.resolved_db_path()).create("tester")
    with TestClient(create_app(settings, tiny_lab)) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        yield client, key


@pytest.fixture()
def steered_server(tmp_path, tiny_lm):
    """(TestClient, Lab) over the tiny model with a random tiny SAE at block 1, open mode."""
    import torch

    from steerlab.sae.config import SAEConfig
    from steerlab.sae.registry import create_sae

    torch.manual_seed(0)
    sae = create_sae(SAEConfig(d_in=64, d_sae=128, architecture="topk", k=8, hookpoint="model.layers.1"))
    sae.requires_grad_(False).feature_scale.fill_(3.0)
    lab = Lab(tiny_lm, sae, max_batch=8)
    settings = Settings(db_path=tmp_path / "server.db", open_mode=True)
    with TestClient(create_app(settings, lab)) as client:
        yield client, lab
    lab.close()
