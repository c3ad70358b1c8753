"""A model organism on the real default model, served by a real server (uvicorn, real HTTP, API keys), and
the offline auditor run against it over HTTP: the organism's replies are the base's with the controller
applied, byte for byte, and the auditor names the planted feature."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
from typer.testing import CliRunner

from steerlab.agents.auditor import AuditConfig, Target, audit
from steerlab.agents.organism import Organism
from steerlab.engine.lab import sampling_params
from steerlab.steering.refs import FeatureRef
from steerlab.steering.variant import Variant

PLANTED = 8519  # "ships and boats" in the shipped database; 0.38 (3 quantile units) change every reply (measured)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def organism_url(default_lab, tmp_path_factory):
    import uvicorn

    from steerlab.server.app import create_app
    from steerlab.server.keys import KeyStore
    from steerlab.settings import Settings

    variant = Variant(default_lab.lm, sae_id=default_lab.sae_id)
    variant.set(FeatureRef.of(PLANTED, default_lab.sae_id), 0.38)
    controller = variant.controller.json()
    path = tmp_path_factory.mktemp("organism") / "controller.json"
    path.write_text(json.dumps(controller))
    settings = Settings(db_path=path.parent / "server.db")
    _, key = KeyStore(settings.resolved_db_path()).create("auditor")
    app = create_app(settings, default_lab, Organism.load(default_lab, path))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=_free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{server.config.port}", key, controller
    server.should_exit = True
    thread.join(timeout=10)


def test_organism_replies_equal_the_steered_base(organism_url, default_lab):
    url, key, controller = organism_url
    messages = [{"role": "user", "content": "Tell me about your weekend plans."}]
    got = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "organism", "messages": messages, "max_tokens": 20, "temperature": 0},
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,
    ).json()
    params = sampling_params(max_completion_tokens=20, temperature=0)
    steered = "".join(e.text for e in default_lab.generate(messages, params, controller))
    plain = "".join(e.text for e in default_lab.generate(messages, params))
    assert got["choices"][0]["message"]["content"] == steered != plain
    assert got["model"] == "organism"


def test_auditor_names_the_planted_feature_over_http(organism_url, default_lab):
    url, key, _ = organism_url
    result = audit(default_lab, Target(url, "organism", api_key=key), AuditConfig(n_prompts=4, candidates=6))
    ranked = [c.index for c in result.candidates]
    assert PLANTED in ranked[:5], [c.json() for c in result.candidates]
    found = next(c for c in result.candidates if c.index == PLANTED)
    assert found.effect > 0  # (the fixture lab has no feature database, so no labels)


def test_cli_audit_names_an_unknown_model_in_one_line(organism_url):
    from steerlab.cli import app

    url, key, _ = organism_url
    result = CliRunner().invoke(app, ["audit", "--target", url, "--model", "nope", "--api-key", key, "--json"])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: model: 'nope' is not served by {url}/v1; it serves organism"
