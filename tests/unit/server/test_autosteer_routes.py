"""AutoSteer-family routes over the tiny model: shapes the SDK parses, errors that name the field,
503 + Retry-After when every search slot is taken."""

import pytest


def test_native_autosteer_returns_edits_and_a_controller(steered_server):
    client, lab = steered_server
    r = client.post("/v1/autosteer", json={"goal": "talk like a pirate"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["goal"] == "talk like a pirate" and body["tried"] > 1
    assert set(body["score"]) == {"steered", "unsteered", "concept", "relevance", "fluency"}
    assert body["score"]["steered"] >= body["score"]["unsteered"]
    interventions = body["controller"]["interventions"]
    assert len(interventions) == len(body["edits"])
    for edit, wire in zip(body["edits"], interventions):
        assert 0 <= edit["index"] < lab.d_sae and edit["mode"] == "nudge" == wire["mode"]
        assert wire["features"]["features"][0]["index_in_sae"] == edit["index"] and wire["value"] == edit["value"]


def test_ember_auto_edits_conditional_and_contrastive_dataset(steered_server):
    client, lab = steered_server
    base = "/api/inference/v1"
    edits = client.post(f"{base}/features/auto-edits", json={"specification": "be happy", "model": lab.model_name})
    assert edits.status_code == 200, edits.text
    for feature, strength in edits.json()["edits"]:
        assert set(feature) == {"id", "label", "index_in_sae"} and isinstance(strength, float)

    cond = client.post(f"{base}/features/auto-conditional", json={"specification": "when talking about cats"})
    assert cond.status_code == 200, cond.text
    group = cond.json()["conditional"]
    assert group["operator"] in ("AND", "OR") and group["conditionals"][0]["operator"] in (">", ">=")

    data = client.post(f"{base}/attributions/generate-contrastive-dataset", json={"specification": "be terse"})
    assert data.status_code == 200, data.text
    first, second = data.json()
    assert len(first) == len(second) > 0
    assert [m["role"] for m in first[0]][-1] == "assistant"


@pytest.mark.parametrize(
    "path,body,field",
    [
        ("/v1/autosteer", {"goal": ""}, "goal"),
        ("/v1/autosteer", {"goal": "   "}, "goal"),
        ("/v1/autosteer", {"goal": "x" * 501}, "goal"),
        ("/v1/autosteer", {"goal": "pirate", "strength": 3}, "strength"),
        ("/api/inference/v1/features/auto-edits", {"specification": 7}, "specification"),
        ("/api/inference/v1/features/auto-conditional", {}, "specification"),
    ],
)
def test_bad_goals_are_400_naming_the_field(steered_server, path, body, field):
    client, _ = steered_server
    r = client.post(path, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == field


def test_unknown_model_is_404_and_a_full_gate_is_503_with_retry_after(steered_server):
    client, _ = steered_server
    r = client.post("/v1/autosteer", json={"goal": "pirate", "model": "gpt-17"})
    assert r.status_code == 404 and r.json()["error"]["param"] == "model"
    gate = client.app.state.autosteer_gate
    assert gate.acquire(blocking=False)
    try:
        r = client.post("/api/inference/v1/features/auto-edits", json={"specification": "pirate"})
        assert r.status_code == 503 and r.headers["Retry-After"] == "30"
        assert r.json()["error"]["code"] == "autosteer_busy"
    finally:
        gate.release()
