"""Model organisms on the tiny model: replies equal the base's with the planted controller applied, and no
route of the app reveals the controller."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Route

from steerlab.agents.organism import Organism
from steerlab.engine.lab import Lab, sampling_params
from steerlab.server.app import create_app
from steerlab.settings import Settings
from steerlab.steering.refs import FeatureRef
from steerlab.steering.variant import Variant

PLANTED, VALUE, TRIGGER = 37, 7.3125, 5
SECRET_EVENT = "planted-secret-event"


def planted_controller(lab: Lab) -> dict:
    """A nudge, plus a scope that reports an event (which must never reach a client)."""
    variant = Variant(lab.lm, sae_id=lab.sae_id)
    variant.set(FeatureRef.of(PLANTED, lab.sae_id), VALUE)
    variant.handle_when(FeatureRef.of(TRIGGER, lab.sae_id) > -1.0, lambda _ctx: None, name=SECRET_EVENT)
    return variant.controller.json()


@pytest.fixture()
def organism_server(tmp_path, steered_lab):
    controller = planted_controller(steered_lab)
    settings = Settings(db_path=tmp_path / "server.db", open_mode=True)
    app = create_app(settings, steered_lab, Organism(steered_lab, json.dumps(controller)))
    with TestClient(app) as client:
        yield client, steered_lab, controller


def greedy(client: TestClient, model: str | None = "organism", **extra) -> dict:
    body = {"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 12, "temperature": 0, **extra}
    if model is not None:
        body["model"] = model
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def base_reply(lab: Lab, variant=None) -> str:
    params = sampling_params(max_completion_tokens=12, temperature=0)
    return "".join(e.text for e in lab.generate([{"role": "user", "content": "hello there"}], params, variant))


def test_organism_replies_equal_the_base_with_the_controller(organism_server):
    client, lab, controller = organism_server
    got = greedy(client)
    assert got["choices"][0]["message"]["content"] == base_reply(lab, controller)
    assert got["choices"][0]["message"]["content"] != base_reply(lab)  # the plant shows
    assert got["model"] == "organism"
    assert got["gf_event_names"] is None  # the planted scope fired, but its event stays hidden
    assert greedy(client, model=None)["choices"][0]["message"]["content"] == got["choices"][0]["message"]["content"]
    ember = client.post(
        "/api/inference/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 12, "temperature": 0},
    ).json()
    assert ember["choices"][0]["message"]["content"] == got["choices"][0]["message"]["content"]


def test_the_planted_event_fires_on_the_base(steered_lab):
    """The event the organism hides does fire when the same controller is sent by a client."""
    client_events = []
    params = sampling_params(max_completion_tokens=4, temperature=0)
    for event in steered_lab.generate(
        [{"role": "user", "content": "hello there"}], params, planted_controller(steered_lab)
    ):
        client_events += event.events
    assert SECRET_EVENT in client_events


def test_request_steering_goes_on_top_of_the_organism(organism_server):
    client, lab, controller = organism_server
    own = Variant(lab.lm, sae_id=lab.sae_id)
    own.set(FeatureRef.of(90, lab.sae_id), 6.0)
    mine = own.controller.json()
    both = greedy(client, controller=mine)["choices"][0]["message"]["content"]
    assert both != greedy(client)["choices"][0]["message"]["content"]  # the request's steering applies
    assert both != base_reply(lab, mine)  # and so does the organism's
    events = Variant(lab.lm, sae_id=lab.sae_id)
    events.handle_when(FeatureRef.of(TRIGGER, lab.sae_id) > -1.0, lambda _ctx: None, name="mine")
    assert greedy(client, controller=events.controller.json())["gf_event_names"] == ["mine"]  # its own events only


def test_only_the_organism_is_served(organism_server):
    client, lab, _ = organism_server
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["organism"]
    response = client.post(
        "/v1/chat/completions", json={"model": lab.model_name, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert response.status_code == 404
    assert "available: organism" in response.json()["error"]["message"]


def _secrets(lab: Lab, controller: dict) -> list[str]:
    from steerlab.steering.controller_json import Controller

    parsed = Controller.from_json(controller)
    return [
        lab.feature_id(PLANTED),
        parsed.content_name(),
        controller["name"],
        str(VALUE),
        SECRET_EVENT,
        json.dumps(controller["interventions"]),
    ]


def _probe_path(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def route_table(routes, prefix: str = "") -> list[tuple[str, str]]:
    """``(method, path)`` of every route, included routers' too (FastAPI keeps those behind a wrapper)."""
    out = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            out += route_table(inner.routes, prefix + route.include_context.prefix)
        elif isinstance(route, (APIRoute, Route)):
            out += [(method, prefix + route.path) for method in sorted(route.methods or ())]
    return out


def test_no_route_reveals_the_controller(organism_server, tmp_path):
    """Every route of the app's table, probed with no body, an empty one and chat bodies: no secret of the
    controller appears in a body or a header, unless the same probe of the same lab without the organism
    shows it too (inspect lists the base model's own features, the planted one among them when it fires)."""
    client, lab, controller = organism_server
    secrets = _secrets(lab, controller)
    plain = TestClient(create_app(Settings(db_path=tmp_path / "plain.db", open_mode=True), lab))
    bodies = [
        None,
        {},
        {"model": "organism", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 6},
        {"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 6, "stream": True},
    ]
    table = route_table(client.app.routes)
    assert ("POST", "/v1/chat/completions") in table and ("GET", "/v1/variants") in table
    assert len(table) > 30  # every route of the table, not a handful
    extra = [("GET", p) for p in ("/", "/metrics", "/openapi.json", "/docs", "/health", "/v1/variants", "/v1/models")]
    for method, path in table + extra:
        for body in bodies:
            response = client.request(method, _probe_path(path), json=body)
            seen = response.text + json.dumps(dict(response.headers))
            found = [secret for secret in secrets if secret in seen]
            if found:
                base = plain.request(method, _probe_path(path), json=body)
                base_seen = base.text + json.dumps(dict(base.headers))
                assert all(secret in base_seen for secret in found), (method, path, body, found)
    # the check would catch a leak: the same controller sent by a client shows up in what comes back
    leaked = client.post("/v1/variants", json={"name": "x", "controller": controller})
    assert any(secret in leaked.text for secret in secrets)


def test_serve_refuses_a_bad_organism_file_before_loading(tmp_path):
    from typer.testing import CliRunner

    from steerlab.cli import app

    missing = CliRunner().invoke(app, ["serve", "--organism", str(tmp_path / "none.json")])
    assert missing.exit_code == 2 and missing.output.startswith("error: organism: no controller file")
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"interventions": [], "scopes": []}))
    result = CliRunner().invoke(app, ["serve", "--organism", str(empty)])
    assert result.exit_code == 2 and "an organism must plant something" in result.output
