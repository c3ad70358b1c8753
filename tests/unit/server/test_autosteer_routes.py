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


def _quota_client(tmp_path, lab, tokens_per_minute: int):
    from fastapi.testclient import TestClient

    from steerlab.server.app import create_app
    from steerlab.server.keys import KeyStore
    from steerlab.settings import Settings

    settings = Settings(db_path=tmp_path / "quota.db", tokens_per_minute=tokens_per_minute)
    info, key = KeyStore(settings.resolved_db_path()).create("tester")
    client = TestClient(create_app(settings, lab))
    client.headers["Authorization"] = f"Bearer {key}"
    return client, info.key_id


@pytest.mark.parametrize(
    "path,body",
    [
        ("/v1/autosteer", {"goal": "talk like a pirate"}),
        ("/api/inference/v1/features/auto-edits", {"specification": "talk like a pirate"}),
        ("/api/inference/v1/features/auto-conditional", {"specification": "when talking about cats"}),
        ("/api/inference/v1/attributions/generate-contrastive-dataset", {"specification": "be terse"}),
    ],
)
def test_autosteer_over_the_keys_token_quota_is_429(tmp_path, steered_server, path, body):
    """Each search is charged to the key's tokens/min before it runs: a quota smaller than it refuses it."""
    _, lab = steered_server
    client, key_id = _quota_client(tmp_path, lab, tokens_per_minute=500)
    with client:
        r = client.post(path, json=body)
        assert r.status_code == 429, r.text[:300]
        assert int(r.headers["Retry-After"]) >= 1
        error = r.json()["error"]
        assert error["code"] == "tokens_per_minute" and "500 tokens per minute" in error["message"], error
        assert "AutoSteer" in error["message"]
        assert client.app.state.rate_limiter.tokens.used(key_id) == 0  # nothing charged for a refusal


def test_a_search_is_charged_what_it_ran_and_a_busy_one_nothing(tmp_path, steered_server):
    from steerlab.analysis.autosteer import AutoSteerConfig
    from steerlab.analysis.stimulus import stimulus_token_estimate

    _, lab = steered_server
    client, key_id = _quota_client(tmp_path, lab, tokens_per_minute=10_000)
    ledger = client.app.state.rate_limiter.tokens
    with client:
        r = client.post("/v1/autosteer", json={"goal": "talk like a pirate"})
        assert r.status_code == 200, r.text[:300]
        config = AutoSteerConfig.quick()
        charged = ledger.used(key_id)
        assert charged == config.token_estimate(trials=r.json()["tried"] + 1) <= config.token_estimate()
        assert charged > 1000  # 10_000 - 3,288 held: a second search still fits, a third would not
        r = client.post("/api/inference/v1/attributions/generate-contrastive-dataset", json={"specification": "x"})
        assert r.status_code == 200 and ledger.used(key_id) == charged + stimulus_token_estimate()
        before = ledger.used(key_id)
        gate = client.app.state.autosteer_gate
        assert gate.acquire(blocking=False)
        try:
            assert client.post("/v1/autosteer", json={"goal": "talk like a pirate"}).status_code == 503
        finally:
            gate.release()
        assert ledger.used(key_id) == before  # refunded: it never ran
        # what remains of the minute's quota is less than one more search: refused, naming the quota
        while ledger.used(key_id) + config.token_estimate() <= 10_000:
            assert client.post("/v1/autosteer", json={"goal": "talk like a pirate"}).status_code == 200
        r = client.post("/v1/autosteer", json={"goal": "talk like a pirate"})
        assert r.status_code == 429 and "10000 tokens per minute" in r.json()["error"]["message"]


def test_a_search_over_the_per_request_budget_is_413_naming_the_field(tmp_path, steered_server):
    from fastapi.testclient import TestClient

    from steerlab.server.app import create_app
    from steerlab.settings import Settings

    _, lab = steered_server
    settings = Settings(db_path=tmp_path / "budget.db", open_mode=True, max_autosteer_tokens=1000)
    with TestClient(create_app(settings, lab)) as client:
        r = client.post("/v1/autosteer", json={"goal": "talk like a pirate"})
        assert r.status_code == 413, r.text[:300]
        error = r.json()["error"]
        assert error["param"] == "goal" and "STEERLAB_MAX_AUTOSTEER_TOKENS" in error["message"]
        r = client.post("/api/inference/v1/attributions/generate-contrastive-dataset", json={"specification": "x"})
        assert r.status_code == 413 and r.json()["error"]["param"] == "specification"  # 2 x 6 x (64 + 32) = 1152
    with TestClient(create_app(settings.model_copy(update={"max_autosteer_tokens": 1200}), lab)) as client:
        r = client.post("/api/inference/v1/attributions/generate-contrastive-dataset", json={"specification": "x"})
        assert r.status_code == 200, r.text[:300]


def test_the_mcp_autosteer_tool_is_charged_like_the_route(tmp_path, steered_server):
    """``/mcp``'s autosteer tool goes through the key's meter: the same estimate reserved, the same 429."""
    from steerlab.agents.tools import LabTools, ResearchLog
    from steerlab.analysis.autosteer import AutoSteerConfig
    from steerlab.errors import SteerlabError
    from steerlab.server.auth import Caller
    from steerlab.server.mcp_http import KeyMeter

    _, lab = steered_server
    client, key_id = _quota_client(tmp_path, lab, tokens_per_minute=500)
    caller = Caller(key_id, "tester")
    with client:
        tools = LabTools(lab, ResearchLog(tmp_path / "logs", "t"), meter=KeyMeter(client.app, caller))
        with pytest.raises(SteerlabError, match="500 tokens per minute") as refused:
            tools.autosteer("talk like a pirate")
        assert refused.value.status == 429
        client.app.state.rate_limiter.tokens.limit = 10_000
        assert tools.autosteer("talk like a pirate")["tried"] > 0
        assert client.app.state.rate_limiter.tokens.used(key_id) == AutoSteerConfig.quick().token_estimate()
